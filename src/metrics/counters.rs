//! What happened in this process, counted where it happens (the store's policy and the backup scheduler) and
//! exposed by `metrics::render`. Each store has its own registry: two stores in one process count apart.

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

#[derive(Debug, Clone)]
pub struct Counters {
  registry: Registry,
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
    }
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
