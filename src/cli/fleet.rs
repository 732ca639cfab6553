//! `wwebjs-rust-store fleet`: the fleet as Redis and the bucket hold it (live workers, load, unassigned sessions), and the
//! per-session settings (pin, pause).

use std::io::Write;

use clap::Args;

use crate::error::StoreError;
use crate::fleet::{observe, set_pin, Pin};
use crate::store::Store;

#[derive(Args)]
pub struct FleetArgs {
  /// The fleet's group name, as the workers' `group` option
  #[arg(long, default_value = "default")]
  group: String,
  /// Pause SESSION: whoever runs it stops it, nobody starts it until --unpin
  #[arg(long, value_name = "SESSION", conflicts_with_all = ["pin", "unpin"])]
  pause: Option<String>,
  /// Pin SESSION to the worker given by --to
  #[arg(long, value_name = "SESSION", requires = "to", conflicts_with = "unpin")]
  pin: Option<String>,
  #[arg(long, value_name = "WORKER")]
  to: Option<String>,
  /// Clear SESSION's pin or pause
  #[arg(long, value_name = "SESSION")]
  unpin: Option<String>,
  #[arg(long)]
  json: bool,
}

pub async fn run(store: &Store, args: FleetArgs, out: &mut (dyn Write + Send)) -> Result<i32, StoreError> {
  let write_failed = |e: std::io::Error| StoreError::io("write output", "stdout")(e);
  let change = match (&args.pause, &args.pin, &args.unpin) {
    (Some(s), _, _) => Some((s, Some(Pin::Paused))),
    (_, Some(s), _) => Some((s, Some(Pin::Worker(args.to.clone().unwrap_or_default())))),
    (_, _, Some(s)) => Some((s, None)),
    _ => None,
  };
  if let Some((session, pin)) = change {
    if let Some(Pin::Worker(id)) = &pin {
      crate::tier::check_group(id)
        .map_err(|_| StoreError::InvalidArgument(format!("--to {id:?} is not a worker id")))?;
    }
    set_pin(store, &args.group, session, pin).await?;
  }
  let view = observe(store, &args.group).await?;
  if args.json {
    let text = serde_json::to_string_pretty(&view).map_err(|e| StoreError::Internal(e.to_string()))?;
    writeln!(out, "{text}").map_err(write_failed)?;
    return Ok(0);
  }
  let capacity: u64 = view.workers.iter().filter(|w| !w.info.draining).map(|w| u64::from(w.info.capacity)).sum();
  let running: u64 = view.workers.iter().map(|w| w.info.running).sum();
  let mut text = format!(
    "fleet {}: {} workers, capacity {capacity}, {} sessions, {running} running, {} unassigned, {} paused, {} pinned\n",
    view.group,
    view.workers.len(),
    view.sessions,
    view.unassigned.len(),
    view.paused.len(),
    view.pinned.len()
  );
  text.push_str(&format!(
    "{:<24} {:>8} {:>8} {:>9} {:>9}  state\n",
    "worker", "capacity", "running", "handoffs", "failovers"
  ));
  for w in &view.workers {
    let state = if w.info.draining { "draining" } else { "active" };
    let i = &w.info;
    text.push_str(&format!(
      "{:<24} {:>8} {:>8} {:>9} {:>9}  {state}\n",
      w.id, i.capacity, i.running, i.handoffs, i.failovers
    ));
  }
  let oldest = view.workers.iter().map(|w| w.info.oldest_unassigned_ms).max().unwrap_or(0);
  if !view.unassigned.is_empty() {
    text.push_str(&format!("unassigned (longest {} s): {}\n", oldest / 1000, view.unassigned.join(" ")));
  }
  write!(out, "{text}").map_err(write_failed)?;
  Ok(0)
}
