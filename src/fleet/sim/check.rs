//! The invariants, read from one run's timeline and the simulated tier:
//! (a) no session runs on two workers at overlapping times. A worker runs a session from `onStart`'s begin until
//!     its `onStop` succeeded, until its `onStart` failed or was given up, or — when its stop failed or hung, or
//!     the worker crashed — until its lease could have expired (the furthest any grant to its token reached:
//!     the tier refuses others until then, unless the lease was released);
//! (b) once the faults heal, every session runs within `settle` (one live worker that does not drain can hold
//!     them all);
//! (c) `drain()` resolves within its bound after it was called (or after the faults healed), and `close()` too;
//! (d) after a failed stop, the old worker's store cannot write the session while another token holds it;
//! (e) once the faults healed, whenever a worker runs a session under the lease that holds it now, the session's
//!     owner entry names it as running it, from the worker's next round on (`owner_grace`): a late write of an
//!     earlier holder never replaces or erases it (issue #25 item 10).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::hooks::{Entry, What};
use super::scenario::Scenario;
use super::tier::SimTier;
use crate::store::Store;

#[derive(Debug, Clone, Copy)]
pub struct Bounds {
  pub settle: Duration,
  pub drain: Duration,
  pub close: Duration,
  /// How long after it runs (or after the faults healed) a worker's owner entry may take to say so.
  pub owner_grace: Duration,
}

/// The owners map as the tier held it at one instant: per session, the token holding its lease and its entry.
#[derive(Debug)]
pub struct OwnerSample {
  at: Instant,
  entries: Vec<(String, String, Option<String>)>,
}

/// Samples the owners map every `every` from `from` to `to`, reading the tier directly (no worker's view).
pub async fn sample_owners(
  sim: Arc<SimTier>,
  sessions: Vec<String>,
  from: Instant,
  to: Instant,
  every: Duration,
) -> Vec<OwnerSample> {
  let mut out = Vec::new();
  let mut at = from;
  while at <= to {
    tokio::time::sleep_until(at).await;
    let owners = sim.map_all("sim", crate::fleet::OWNERS);
    let entries = sessions
      .iter()
      .filter_map(|s| {
        let entry = owners.get(s).map(|v| String::from_utf8_lossy(v).into_owned());
        sim.holder(s).map(|token| (s.clone(), token, entry))
      })
      .collect();
    out.push(OwnerSample { at, entries });
    at += every;
  }
  out
}

#[derive(Debug, Default)]
pub struct Outcome {
  /// Each begins with the invariant it breaks: `(a)` to `(e)`.
  pub violations: Vec<String>,
  /// From the faults healing to the last session's start before the check (to tune `settle`).
  pub settled_in: Duration,
  /// The longest drain and close, from when each was due (to tune their bounds).
  pub drained_in: Duration,
  pub closed_in: Duration,
  /// The timeline, one line per entry (tokens left out: they are random), for a failing seed's report and to
  /// compare two runs of one seed.
  pub story: Vec<String>,
}

/// One worker's run of one session.
#[derive(Debug, Clone)]
struct Run {
  worker: String,
  session: String,
  token: String,
  begin: Instant,
  /// `onStart` resolved.
  running_from: Option<Instant>,
  stopping_from: Option<Instant>,
  /// `None`: still running when the run ended.
  end: Option<Instant>,
  /// Its stop failed, hung or was given up: the fence must hold.
  failed_stop: bool,
}

fn runs(entries: &[Entry], sim: &SimTier) -> Vec<Run> {
  let granted = |run: &Run, at: Instant| Some(sim.granted_until(&run.token).map_or(at, |g| g.max(at)));
  let mut open: BTreeMap<(String, String), Run> = BTreeMap::new();
  let mut done = Vec::new();
  for e in entries {
    let key = (e.worker.clone(), e.session.clone());
    match &e.what {
      What::StartBegin { token } => {
        let run = Run {
          worker: e.worker.clone(),
          session: e.session.clone(),
          token: token.clone(),
          begin: e.at,
          running_from: None,
          stopping_from: None,
          end: None,
          failed_stop: false,
        };
        if let Some(mut old) = open.insert(key, run) {
          old.end = Some(e.at);
          done.push(old);
        }
      }
      What::StartEnd { ok: true, .. } => {
        if let Some(run) = open.get_mut(&key) {
          run.running_from = Some(e.at);
        }
      }
      What::StopBegin { .. } => {
        if let Some(run) = open.get_mut(&key) {
          run.stopping_from = Some(e.at);
        }
      }
      What::StartEnd { ok: false, .. } | What::StopEnd { ok: true, .. } => {
        if let Some(mut run) = open.remove(&key) {
          run.end = Some(e.at);
          done.push(run);
        }
      }
      What::StopEnd { ok: false, .. } => {
        if let Some(mut run) = open.remove(&key) {
          run.end = granted(&run, e.at);
          run.failed_stop = true;
          done.push(run);
        }
      }
      What::Crashed => {
        let theirs: Vec<_> = open.keys().filter(|(w, _)| *w == e.worker).cloned().collect();
        for key in theirs {
          let mut run = open.remove(&key).expect("listed");
          run.end = granted(&run, e.at);
          done.push(run);
        }
      }
      _ => {}
    }
  }
  for (_, mut run) in open {
    // A hook that never settled: the client runs on, but the fleet owes nothing past its lease.
    if run.running_from.is_none() || run.stopping_from.is_some() {
      run.end = granted(&run, run.stopping_from.unwrap_or(run.begin));
      run.failed_stop = run.stopping_from.is_some();
    }
    done.push(run);
  }
  done
}

fn ms(from: Instant, at: Instant) -> String {
  format!("{:.3}s", at.saturating_duration_since(from).as_secs_f64())
}

fn show(t0: Instant, run: &Run) -> String {
  let end = run.end.map_or("…".into(), |e| ms(t0, e));
  format!("{} [{}, {}) token {}", run.worker, ms(t0, run.begin), end, &run.token[..run.token.len().min(6)])
}

pub fn analyse(
  scenario: &Scenario,
  bounds: &Bounds,
  t0: Instant,
  checked_at: Instant,
  entries: &[Entry],
  sim: &SimTier,
  samples: &[OwnerSample],
) -> Outcome {
  let story = entries
    .iter()
    .map(|e| {
      let what = match &e.what {
        What::StartBegin { .. } => "StartBegin".to_owned(),
        other => format!("{other:?}"),
      };
      format!("{:>9} {} {} {what}", ms(t0, e.at), e.worker, e.session)
    })
    .collect();
  let mut out = Outcome { story, ..Outcome::default() };
  let all = runs(entries, sim);
  let mut by_session: HashMap<&str, Vec<&Run>> = HashMap::new();
  for run in &all {
    by_session.entry(&run.session).or_default().push(run);
  }
  // (a)
  for (session, runs) in &by_session {
    for (i, a) in runs.iter().enumerate() {
      for b in &runs[i + 1..] {
        let before = |x: &Run, y: &Run| x.end.is_some_and(|end| end <= y.begin);
        if a.worker != b.worker && !before(a, b) && !before(b, a) {
          out.violations.push(format!("(a) {session} ran on two workers: {} and {}", show(t0, a), show(t0, b)));
        }
      }
    }
  }
  // (b)
  let heal = t0 + scenario.heal;
  let crashed: HashSet<&str> = entries.iter().filter(|e| e.what == What::Crashed).map(|e| e.worker.as_str()).collect();
  let wanted = if scenario.profile.drain_everyone { &[][..] } else { &scenario.sessions[..] };
  for session in wanted {
    let running = by_session.get(session.as_str()).into_iter().flatten().find(|r| {
      r.running_from.is_some_and(|t| t <= checked_at)
        && r.stopping_from.is_none_or(|t| t > checked_at)
        && r.end.is_none_or(|t| t > checked_at)
        && !crashed.contains(r.worker.as_str())
    });
    match running {
      Some(run) => {
        let since = run.running_from.expect("running").saturating_duration_since(heal);
        out.settled_in = out.settled_in.max(since);
      }
      None => out.violations.push(format!(
        "(b) {session} not running {} after the faults healed at {}",
        ms(heal, checked_at),
        ms(t0, heal)
      )),
    }
  }
  // (e)
  for sample in samples {
    for (session, token, entry) in &sample.entries {
      let run = all.iter().find(|r| {
        r.token == *token
          && !crashed.contains(r.worker.as_str())
          && r.running_from.is_some_and(|t| t + bounds.owner_grace <= sample.at)
          && r.stopping_from.is_none_or(|t| t > sample.at)
          && r.end.is_none_or(|t| t > sample.at)
      });
      let Some(run) = run else { continue };
      let want = crate::fleet::owner_entry(&run.worker, true);
      if entry.as_deref() != Some(want.as_str()) {
        out.violations.push(format!(
          "(e) {session} runs on {} under the lease that holds it (since {}), yet its owner entry at {} is {entry:?}",
          run.worker,
          ms(t0, run.running_from.expect("running")),
          ms(t0, sample.at)
        ));
      }
    }
  }
  // (c)
  for (called, done, bound, what) in [
    (What::DrainCalled, What::Drained, bounds.drain, "drain"),
    (What::CloseCalled, What::Closed, bounds.close, "close"),
  ] {
    for call in entries.iter().filter(|e| e.what == called) {
      let due = if called == What::DrainCalled { call.at.max(heal) } else { call.at };
      let end = entries.iter().find(|e| e.worker == call.worker && e.what == done && e.at >= call.at);
      let took = end.map(|e| e.at.saturating_duration_since(due));
      if what == "drain" {
        out.drained_in = out.drained_in.max(took.unwrap_or_default());
      } else {
        out.closed_in = out.closed_in.max(took.unwrap_or_default());
      }
      match took {
        Some(took) if took <= bound => {}
        Some(took) => out.violations.push(format!(
          "(c) {what}() of {} took {:.3}s from {}, over its bound {:.3}s",
          call.worker,
          took.as_secs_f64(),
          ms(t0, due),
          bound.as_secs_f64()
        )),
        None => {
          out.violations.push(format!("(c) {what}() of {} called at {} never resolved", call.worker, ms(t0, call.at)))
        }
      }
    }
  }
  out
}

/// (d): for each failed stop, while another token holds the session's lease, a write through the old worker's
/// store (a delete: fenced like a save) must be refused with `ERR_LEASE_LOST`.
pub async fn probe_fences(entries: &[Entry], stores: &[(String, Store)], sim: &SimTier) -> Vec<String> {
  let crashed: HashSet<&str> = entries.iter().filter(|e| e.what == What::Crashed).map(|e| e.worker.as_str()).collect();
  let mut tokens: HashMap<&str, HashSet<&str>> = HashMap::new();
  for e in entries {
    if let What::StartBegin { token } = &e.what {
      tokens.entry(&e.worker).or_default().insert(token);
    }
  }
  let mut probed = HashSet::new();
  let mut out = Vec::new();
  for run in runs(entries, sim).iter().filter(|r| r.failed_stop && !crashed.contains(r.worker.as_str())) {
    let Some(holder) = sim.holder(&run.session) else { continue };
    let mine = tokens.get(run.worker.as_str()).is_some_and(|t| t.contains(holder.as_str()));
    let Some((_, store)) = stores.iter().find(|(id, _)| *id == run.worker) else { continue };
    if mine || !probed.insert((run.worker.clone(), run.session.clone())) {
      continue;
    }
    let write = tokio::time::timeout(Duration::from_secs(60), store.delete(&run.session)).await;
    match write {
      Ok(Err(err)) if err.code() == "ERR_LEASE_LOST" => {}
      Ok(Ok(())) => out.push(format!(
        "(d) {}'s stop of {} failed, yet its store deleted the session under another token's lease",
        run.worker, run.session
      )),
      other => out.push(format!("(d) {}'s fenced write of {}: {other:?}", run.worker, run.session)),
    }
  }
  out
}
