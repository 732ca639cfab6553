//! The Prometheus surface: the text exposition (format 0.0.4) of what this process counted (`counters`) and of
//! what the tiers say at scrape time (stats, reachability, Redis memory, disk), served by `serve`.
//! Adding a metric family is one `families.gauge(…)` / `families.counter(…)` line in `Exporter::render` or
//! `stats_families`, or a counter in `counters`.

mod health;
mod serve;

pub use health::READY_TIMEOUT;
pub use serve::{bind, serve};

use std::collections::HashMap;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, Encoder, GaugeVec, Opts, Registry};

use crate::counters::FleetSnapshot;
use crate::error::{Result, StoreError};
use crate::store::{DiskStats, Stats, Store};

/// The exposition's content type: `text/plain; version=0.0.4`.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// How long a scrape waits for the tiers at most (Prometheus' default scrape timeout is 10 s): a tier that takes
/// longer counts as down for this scrape.
pub const TIER_TIMEOUT: Duration = Duration::from_secs(5);

/// Families built for one scrape. Counters read from elsewhere (Redis' own) are typed `counter` here too.
#[derive(Default)]
pub struct Families {
  registry: Registry,
  gauges: HashMap<String, GaugeVec>,
  counters: HashMap<String, CounterVec>,
}

fn metric_error(name: &str, e: prometheus::Error) -> StoreError {
  StoreError::Internal(format!("metric {name}: {e}"))
}

/// The family `name` of `map`, created and registered on its first sample with these label names.
fn family<'m, V: Collector + Clone + 'static>(
  registry: &Registry,
  map: &'m mut HashMap<String, V>,
  name: &str,
  labels: &[(&str, &str)],
  new: impl FnOnce(&[&str]) -> prometheus::Result<V>,
) -> Result<&'m V> {
  if !map.contains_key(name) {
    let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
    let vec = new(&names).map_err(|e| metric_error(name, e))?;
    registry.register(Box::new(vec.clone())).map_err(|e| metric_error(name, e))?;
    map.insert(name.to_owned(), vec);
  }
  Ok(&map[name])
}

fn values<'a>(labels: &[(&'a str, &'a str)]) -> Vec<&'a str> {
  labels.iter().map(|(_, v)| *v).collect()
}

impl Families {
  /// One sample of a gauge family.
  pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
    let vec = family(&self.registry, &mut self.gauges, name, labels, |l| GaugeVec::new(Opts::new(name, help), l))?;
    vec.get_metric_with_label_values(&values(labels)).map_err(|e| metric_error(name, e))?.set(value);
    Ok(())
  }

  /// One sample of a counter counted elsewhere (Redis' `evicted_keys`); its name ends in `_total`.
  pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
    let vec = family(&self.registry, &mut self.counters, name, labels, |l| CounterVec::new(Opts::new(name, help), l))?;
    vec.get_metric_with_label_values(&values(labels)).map_err(|e| metric_error(name, e))?.inc_by(value);
    Ok(())
  }

  /// These families and `more`, in name order, as exposition text.
  pub fn encode(&self, more: Vec<MetricFamily>) -> Result<String> {
    let mut all = self.registry.gather();
    all.extend(more);
    all.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&all, &mut out).map_err(|e| metric_error("encode", e))?;
    String::from_utf8(out).map_err(|e| StoreError::Internal(e.to_string()))
  }
}

/// The families `stats` gives (what the tiers hold, disk, Redis memory, newest backups): scraped, and printed by
/// `wwebjs-rust-store stats --prometheus`.
pub fn stats_families(f: &mut Families, stats: &Stats) -> Result<()> {
  for t in &stats.tiers {
    let l = [("tier", t.tier), ("role", t.role)];
    f.gauge("wwebjs_rust_store_tier_sessions", "Sessions a tier holds.", &l, t.sessions as f64)?;
    f.gauge(
      "wwebjs_rust_store_tier_objects",
      "Objects a tier holds (a backup version counts one).",
      &l,
      t.objects as f64,
    )?;
    f.gauge("wwebjs_rust_store_tier_bytes", "Bytes a tier holds.", &l, t.bytes as f64)?;
  }
  f.gauge("wwebjs_rust_store_sessions", "Distinct sessions in any tier.", &[], stats.sessions as f64)?;
  let average = stats.average_session_bytes as f64;
  f.gauge("wwebjs_rust_store_session_average_bytes", "Average size of a session's newest stored copy.", &[], average)?;
  let largest = stats.largest_session.as_ref().map_or(0, |l| l.bytes) as f64;
  f.gauge("wwebjs_rust_store_session_max_bytes", "Size of the largest session's newest stored copy.", &[], largest)?;
  if let Some(fit) = stats.sessions_fit_estimate {
    f.gauge(
      "wwebjs_rust_store_sessions_fit_estimate",
      "Sessions that still fit: free x 0.8 / average.",
      &[],
      fit as f64,
    )?;
  }
  if let Some(lag) = stats.backup_lag {
    f.gauge("wwebjs_rust_store_backup_lag_sessions", "Sessions changed since their newest backup.", &[], lag as f64)?;
  }
  for (session, ms) in &stats.newest_backup_ms {
    let help = "When the session's newest backup version was written (Unix time).";
    f.gauge(
      "wwebjs_rust_store_session_last_backup_timestamp_seconds",
      help,
      &[("session", session)],
      *ms as f64 / 1e3,
    )?;
  }
  if let Some(inc) = &stats.incremental {
    f.gauge("wwebjs_rust_store_incremental_versions", "Incremental backup versions kept.", &[], inc.versions as f64)?;
    let logical = inc.logical_bytes as f64;
    f.gauge("wwebjs_rust_store_incremental_logical_bytes", "File bytes the incremental versions hold.", &[], logical)?;
    let stored = inc.stored_bytes as f64;
    f.gauge("wwebjs_rust_store_incremental_stored_bytes", "Manifest and chunk bytes in the bucket.", &[], stored)?;
    if let Some(up) = inc.average_uploaded_bytes {
      f.gauge(
        "wwebjs_rust_store_incremental_upload_average_bytes",
        "Mean bytes a later backup uploaded.",
        &[],
        up as f64,
      )?;
    }
  }
  if let Some(m) = &stats.memory {
    let l = [("policy", m.policy.as_str())];
    f.gauge("wwebjs_rust_store_redis_used_memory_bytes", "Redis used_memory (INFO memory).", &l, m.used_memory as f64)?;
    f.gauge("wwebjs_rust_store_redis_maxmemory_bytes", "Redis maxmemory (0: no limit).", &l, m.maxmemory as f64)?;
    let help = "Keys Redis evicted since it started (INFO stats evicted_keys).";
    f.counter("wwebjs_rust_store_redis_evicted_keys_total", help, &l, m.evicted_keys as f64)?;
  }
  Ok(())
}

/// Free and total space under the data path: read apart from the tiers, so a tier that is down does not hide it.
pub fn disk_families(f: &mut Families, disk: &DiskStats) -> Result<()> {
  let path = disk.path.display().to_string();
  let l = [("path", path.as_str())];
  let total = disk.total_bytes as f64;
  f.gauge("wwebjs_rust_store_disk_total_bytes", "Size of the file system under the data path.", &l, total)?;
  f.gauge("wwebjs_rust_store_disk_free_bytes", "Free space under the data path.", &l, disk.free_bytes as f64)
}

/// `stats --prometheus`: the `stats_families` and the disk alone (a CLI process has counted nothing).
pub fn stats_text(stats: &Stats) -> Result<String> {
  let mut f = Families::default();
  stats_families(&mut f, stats)?;
  if let Some(disk) = &stats.disk {
    disk_families(&mut f, disk)?;
  }
  f.encode(Vec::new())
}

/// What a scrape reads: a store, and the settings it does not know.
#[derive(Debug, Clone)]
pub struct Exporter {
  pub store: Store,
  /// The low-disk threshold (`diskAlert.minFreeBytes`), exposed for the disk alert rule.
  pub min_free_bytes: u64,
}

async fn in_time<T>(budget: Duration, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
  match tokio::time::timeout(budget, work).await {
    Ok(done) => done,
    Err(_) => Err(StoreError::TierUnavailable { tier: "any", reason: format!("no answer within {budget:?}") }),
  }
}

impl Exporter {
  /// The exposition text. A tier that cannot be reached makes `wwebjs_rust_store_tier_up` 0 and leaves out the
  /// families it would have given; it never fails the scrape.
  pub async fn render(&self) -> Result<String> {
    self.render_within(TIER_TIMEOUT).await
  }

  /// `render`, waiting at most `budget` for the tiers (a scraper's own timeout, less a margin).
  pub async fn render_within(&self, budget: Duration) -> Result<String> {
    let budget = budget.min(TIER_TIMEOUT);
    let mut f = Families::default();
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    f.gauge("wwebjs_rust_store_info", "The store's version; always 1.", &version, 1.0)?;
    let (probes, stats) = tokio::join!(self.store.probe(budget), in_time(budget, self.store.stats()));
    for (tier, role, up) in probes {
      let help = "1 when the tier answered a read during this scrape, else 0.";
      f.gauge("wwebjs_rust_store_tier_up", help, &[("tier", tier), ("role", role)], f64::from(u8::from(up)))?;
    }
    let help = "1 when every figure of this scrape could be read (every tier answered), else 0.";
    f.gauge("wwebjs_rust_store_up", help, &[], f64::from(u8::from(stats.is_ok())))?;
    let threshold = self.min_free_bytes as f64;
    f.gauge(
      "wwebjs_rust_store_disk_min_free_bytes",
      "The low-disk threshold (diskAlert.minFreeBytes).",
      &[],
      threshold,
    )?;
    if let Some(b) = self.store.backup_stats() {
      let every = b.interval.map_or(0.0, |d| d.as_secs_f64());
      f.gauge(
        "wwebjs_rust_store_backup_interval_seconds",
        "Time between backup runs (0: within every save).",
        &[],
        every,
      )?;
      let help = "Sessions saved since their last backup, in this process.";
      f.gauge("wwebjs_rust_store_backup_pending_sessions", help, &[], f64::from(b.pending))?;
      if let Some(ms) = b.last_success_ms {
        let help = "When this process last backed a session up (Unix time).";
        f.gauge("wwebjs_rust_store_last_backup_success_timestamp_seconds", help, &[], ms as f64 / 1e3)?;
      }
    }
    if let Ok(stats) = &stats {
      stats_families(&mut f, stats)?;
    }
    let path = self.store.data_path().to_path_buf();
    // A disk that cannot be read leaves its families out, like a tier that cannot.
    if let Ok(disk) = crate::blocking::run(move || crate::store::disk_usage(&path)).await {
      disk_families(&mut f, &disk)?;
    }
    if let Some(fleet) = self.store.counters().fleet() {
      fleet_families(&mut f, &fleet)?;
    }
    f.encode(self.store.counters().gather())
  }
}

/// The fleet worker this store runs (`store.fleet()`), as of its last heartbeat.
pub fn fleet_families(f: &mut Families, s: &FleetSnapshot) -> Result<()> {
  let l = [("group", s.group.as_str()), ("worker", s.worker.as_str())];
  let flag = |b: bool| f64::from(u8::from(b));
  f.gauge("wwebjs_rust_store_fleet_capacity_sessions", "Sessions this worker may run.", &l, f64::from(s.capacity))?;
  f.gauge(
    "wwebjs_rust_store_fleet_running_sessions",
    "Sessions this worker runs (onStart resolved).",
    &l,
    s.running as f64,
  )?;
  f.gauge("wwebjs_rust_store_fleet_starting_sessions", "Sessions this worker is starting.", &l, s.starting as f64)?;
  f.gauge(
    "wwebjs_rust_store_fleet_workers",
    "Live workers of the group as of the last heartbeat.",
    &l,
    s.workers as f64,
  )?;
  f.gauge("wwebjs_rust_store_fleet_draining", "1 while this worker drains or closes.", &l, flag(s.draining))?;
  let help = "1 when this worker's last heartbeat reached Redis.";
  f.gauge("wwebjs_rust_store_fleet_connected", help, &l, flag(s.connected))?;
  let help = "Stored sessions this worker sees with no live owner.";
  f.gauge("wwebjs_rust_store_fleet_unassigned_sessions", help, &l, s.unassigned as f64)?;
  let help = "How long the longest-waiting unassigned session has had no live owner.";
  f.gauge("wwebjs_rust_store_fleet_oldest_unassigned_seconds", help, &l, s.oldest_unassigned_ms as f64 / 1e3)?;
  let help = "Sessions this worker handed off (drain, rebalance), the new owner running them.";
  f.counter("wwebjs_rust_store_fleet_handoffs_total", help, &l, s.handoffs as f64)?;
  let help = "Sessions of a dead worker this worker started.";
  f.counter("wwebjs_rust_store_fleet_failovers_total", help, &l, s.failovers as f64)
}

#[cfg(test)]
mod tests;
