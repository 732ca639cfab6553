//! The application's side in the simulation: `onStart` / `onStop` that record each begin and end on one shared
//! timeline (tokio instants), and until the faults heal may be slow, fail, or hang, per seed. A hook whose future
//! the fleet drops (gives up on) records that too; a crashed worker's hooks record nothing more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::faults::Faults;
use super::rng::Rng;
use crate::fleet::{FleetEvent, Hooks, Lease, StopReason};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
  StartBegin {
    token: String,
  },
  /// `dropped`: the fleet gave up waiting (its future was dropped before it settled).
  StartEnd {
    ok: bool,
    dropped: bool,
  },
  StopBegin {
    reason: StopReason,
  },
  StopEnd {
    ok: bool,
    dropped: bool,
  },
  Crashed,
  DrainCalled,
  Drained,
  CloseCalled,
  Closed,
  Event(String),
}

#[derive(Debug, Clone)]
pub struct Entry {
  pub at: Instant,
  pub worker: String,
  pub session: String,
  pub what: What,
}

#[derive(Debug, Clone, Default)]
pub struct Timeline(Arc<Mutex<Vec<Entry>>>);

impl Timeline {
  pub fn push(&self, worker: &str, session: &str, what: What) {
    let entry = Entry { at: Instant::now(), worker: worker.to_owned(), session: session.to_owned(), what };
    self.0.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
  }

  pub fn entries(&self) -> Vec<Entry> {
    self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
  }
}

/// How one worker's hooks behave before `until` (after it, every hook is quick and succeeds).
#[derive(Debug, Clone)]
pub struct HookPlan {
  pub until: Instant,
  /// A start takes up to this long; now and then (`long_start_per_mille`) up to `long_start`.
  pub start: Duration,
  pub long_start_per_mille: u64,
  pub long_start: Duration,
  pub start_fail_per_mille: u64,
  pub start_hang_per_mille: u64,
  /// A stop takes up to this long.
  pub stop: Duration,
  pub stop_fail_per_mille: u64,
  pub stop_hang_per_mille: u64,
}

impl HookPlan {
  /// Quick hooks that always succeed.
  pub fn calm(until: Instant) -> Self {
    let ms = Duration::from_millis;
    Self {
      until,
      start: ms(50),
      long_start_per_mille: 0,
      long_start: ms(50),
      start_fail_per_mille: 0,
      start_hang_per_mille: 0,
      stop: ms(50),
      stop_fail_per_mille: 0,
      stop_hang_per_mille: 0,
    }
  }
}

pub struct SimHooks {
  pub seed: u64,
  pub worker: String,
  pub plan: HookPlan,
  pub timeline: Timeline,
  pub faults: Arc<Faults>,
  calls: Mutex<HashMap<String, u64>>,
}

/// Records the end of a hook when its future is dropped before it settled.
struct Pending<'a> {
  hooks: &'a SimHooks,
  session: &'a str,
  end: fn(bool, bool) -> What,
  done: bool,
}

impl Drop for Pending<'_> {
  fn drop(&mut self) {
    if !self.done && !self.hooks.faults.crashed() {
      self.hooks.timeline.push(&self.hooks.worker, self.session, (self.end)(false, true));
    }
  }
}

enum Act {
  Ok(Duration),
  Fail(Duration),
  Hang,
}

impl SimHooks {
  pub fn new(seed: u64, worker: &str, plan: HookPlan, timeline: Timeline, faults: Arc<Faults>) -> Self {
    Self { seed, worker: worker.to_owned(), plan, timeline, faults, calls: Mutex::default() }
  }

  fn draw(&self, what: &str, session: &str) -> Rng {
    let key = format!("{what} {session}");
    let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
    let n = calls.entry(key.clone()).or_default();
    *n += 1;
    Rng::keyed(self.seed, &[&self.worker, "hook", &key], *n)
  }

  fn act(&self, rng: &mut Rng, took: Duration, fail: u64, hang: u64) -> Act {
    if Instant::now() >= self.plan.until {
      return Act::Ok(Duration::from_micros(rng.below(20_000)));
    }
    let took = Duration::from_micros(rng.below(took.as_micros() as u64 + 1));
    let roll = rng.below(1000);
    if roll < hang {
      Act::Hang
    } else if roll < hang + fail {
      Act::Fail(took / 4)
    } else {
      Act::Ok(took)
    }
  }

  /// Plays `act` out; `Err` when it failed. A crashed worker's hook never returns.
  async fn play(&self, act: Act) -> std::result::Result<(), String> {
    let out = match act {
      Act::Hang => std::future::pending().await,
      Act::Ok(took) => {
        tokio::time::sleep(took).await;
        Ok(())
      }
      Act::Fail(took) => {
        tokio::time::sleep(took).await;
        Err("simulated failure".to_owned())
      }
    };
    if self.faults.crashed() {
      std::future::pending::<()>().await;
    }
    out
  }
}

#[async_trait]
impl Hooks for SimHooks {
  async fn start(&self, lease: Lease) -> std::result::Result<(), String> {
    if self.faults.crashed() {
      std::future::pending::<()>().await;
    }
    let session = lease.session.as_str();
    let mut rng = self.draw("start", session);
    let plan = &self.plan;
    let took = if rng.chance(plan.long_start_per_mille) { plan.long_start } else { plan.start };
    let act = self.act(&mut rng, took, plan.start_fail_per_mille, plan.start_hang_per_mille);
    self.timeline.push(&self.worker, session, What::StartBegin { token: lease.token.clone() });
    let mut pending = Pending { hooks: self, session, end: |ok, dropped| What::StartEnd { ok, dropped }, done: false };
    let out = self.play(act).await;
    pending.done = true;
    self.timeline.push(&self.worker, session, What::StartEnd { ok: out.is_ok(), dropped: false });
    out
  }

  async fn stop(&self, session: String, reason: StopReason) -> std::result::Result<(), String> {
    if self.faults.crashed() {
      std::future::pending::<()>().await;
    }
    let mut rng = self.draw("stop", &session);
    let plan = &self.plan;
    let act = self.act(&mut rng, plan.stop, plan.stop_fail_per_mille, plan.stop_hang_per_mille);
    self.timeline.push(&self.worker, &session, What::StopBegin { reason });
    let mut pending =
      Pending { hooks: self, session: &session, end: |ok, dropped| What::StopEnd { ok, dropped }, done: false };
    let out = self.play(act).await;
    pending.done = true;
    self.timeline.push(&self.worker, &session, What::StopEnd { ok: out.is_ok(), dropped: false });
    out
  }

  fn event(&self, event: FleetEvent) {
    // Kept for a failing seed's story; no invariant reads them.
    if !self.faults.crashed() {
      self.timeline.push(&self.worker, "-", What::Event(format!("{event:?}")));
    }
  }
}
