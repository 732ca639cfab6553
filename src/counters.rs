//! What happened in this process, counted where it happens (the store's policy, the backup scheduler, a fleet
//! worker's heartbeat) and exposed by `metrics`. A leaf: the store and the scheduler write here, the exposition
//! above the store reads here, and nothing here knows either. Each store has its own registry: two stores in one
//! process count apart.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// `ok` / `failed`, the label of the outcome counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
  Ok,
  Failed,
}

impl Outcome {
  pub fn of<T, E>(result: &std::result::Result<T, E>) -> Self {
    if result.is_ok() {
      Self::Ok
    } else {
      Self::Failed
    }
  }

  fn label(self) -> &'static str {
    match self {
      Self::Ok => "ok",
      Self::Failed => "failed",
    }
  }
}

/// Why a read fell back to the backup tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
  /// The primary did not have the session (evicted, expired, a fresh Redis).
  Missing,
  /// The primary's copy failed its checksum.
  Damaged,
}

/// What a fleet worker joined through this store published at its last heartbeat (`metrics::fleet_families`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetSnapshot {
  pub group: String,
  pub worker: String,
  pub capacity: u32,
  pub draining: bool,
  /// The last heartbeat reached the tier.
  pub connected: bool,
  /// Live workers as of that heartbeat.
  pub workers: u64,
  pub running: u64,
  pub starting: u64,
  pub handoffs: u64,
  pub failovers: u64,
  /// Sessions this worker sees with no live owner, and the longest time one has been so.
  pub unassigned: u64,
  pub oldest_unassigned_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Counters {
  registry: Registry,
  fleet: std::sync::Arc<std::sync::Mutex<Option<FleetSnapshot>>>,
  saves: IntCounterVec,
  backups: IntCounterVec,
  fallbacks: IntCounterVec,
  leases_lost: IntCounter,
  leases_retaken: IntCounter,
}

impl Default for Counters {
  fn default() -> Self {
    Self::new()
  }
}

fn outcome_vec(registry: &Registry, name: &str, help: &str, label: &str, values: &[&str]) -> IntCounterVec {
  let vec = IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid metric name");
  // Every series exists from the start at 0, so `increase()` sees the first event.
  for value in values {
    vec.with_label_values(&[value]);
  }
  registry.register(Box::new(vec.clone())).expect("registered once");
  vec
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
  let counter = IntCounter::new(name, help).expect("a valid metric name");
  registry.register(Box::new(counter.clone())).expect("registered once");
  counter
}

impl Counters {
  pub fn new() -> Self {
    let registry = Registry::new();
    let r = &registry;
    let results = ["ok", "failed"];
    Self {
      saves: outcome_vec(
        r,
        "wwebjs_rust_store_saves_total",
        "Saves (save, saveProfile, import) by outcome.",
        "result",
        &results,
      ),
      backups: outcome_vec(
        r,
        "wwebjs_rust_store_backups_total",
        "Backups to the backup tier by outcome.",
        "result",
        &results,
      ),
      fallbacks: outcome_vec(
        r,
        "wwebjs_rust_store_restore_fallbacks_total",
        "Reads the backup tier answered because the primary's copy was missing or damaged.",
        "reason",
        &["missing", "damaged"],
      ),
      leases_lost: counter(r, "wwebjs_rust_store_leases_lost_total", "Leases this store held that another owner took."),
      leases_retaken: counter(
        r,
        "wwebjs_rust_store_leases_retaken_total",
        "Leases that had expired (the tier was out of reach for longer than the ttl) and were taken again.",
      ),
      registry,
      fleet: Default::default(),
    }
  }

  /// A fleet worker's state as of its heartbeat; `None` once it left.
  pub fn set_fleet(&self, snapshot: Option<FleetSnapshot>) {
    *self.fleet.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
  }

  pub fn fleet(&self) -> Option<FleetSnapshot> {
    self.fleet.lock().unwrap_or_else(|p| p.into_inner()).clone()
  }

  pub fn save(&self, outcome: Outcome) {
    self.saves.with_label_values(&[outcome.label()]).inc();
  }

  pub fn backup(&self, outcome: Outcome) {
    self.backups.with_label_values(&[outcome.label()]).inc();
  }

  /// `n` backups that landed at once (a timer run).
  pub fn backups_ok(&self, n: u64) {
    self.backups.with_label_values(&[Outcome::Ok.label()]).inc_by(n);
  }

  pub fn fallback(&self, why: Fallback) {
    let reason = match why {
      Fallback::Missing => "missing",
      Fallback::Damaged => "damaged",
    };
    self.fallbacks.with_label_values(&[reason]).inc();
  }

  pub fn lease_lost(&self) {
    self.leases_lost.inc();
  }

  pub fn lease_retaken(&self) {
    self.leases_retaken.inc();
  }

  pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
    self.registry.gather()
  }
}

#[cfg(test)]
mod tests {
  /// The arrows run one way: the store, its tiers and the scheduler write counters here and never name the
  /// exposition (`metrics`), which reads the store.
  #[test]
  fn nothing_below_the_exposition_names_it() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // A leaf names no module of this crate.
    let leaf = std::fs::read_to_string(src.join("counters.rs")).unwrap();
    assert!(!leaf.split("#[cfg(test)]").next().unwrap().contains("crate::"), "counters.rs is a leaf");
    let mut files = vec![src.join("scheduler.rs"), src.join("backup.rs")];
    for dir in ["store", "tier", "backup", "archive", "incremental"] {
      let rust = walkdir::WalkDir::new(src.join(dir)).into_iter().filter_map(|e| e.ok()).map(|e| e.into_path());
      files.extend(rust.filter(|p| p.extension().is_some_and(|e| e == "rs")));
    }
    assert!(files.len() > 20, "the walk found the modules");
    for file in files {
      let text = std::fs::read_to_string(&file).unwrap();
      assert!(!text.contains("crate::metrics"), "{} reaches up into the exposition", file.display());
    }
  }
}
