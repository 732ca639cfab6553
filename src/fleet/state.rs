//! A worker's own state, shared by its loop, its start/stop tasks and the handle.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

use tokio::sync::{watch, Notify};

use super::status::{FleetStatus, WorkerStatus};
use super::{FleetConfig, StopReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
  Starting,
  Running,
  Stopping,
}

/// A session this worker holds the lease of.
pub struct Run {
  pub token: String,
  /// The lease's generation: orders this run's owner entry against other holders' (`Leases::acquire`).
  pub generation: u64,
  pub phase: Phase,
  /// When the last renewal (or the acquire) that succeeded was sent: the lease lasts at least ttl from then, so
  /// the deadline timer stops the session at `renewed + ttl - stop_timeout`.
  pub renewed: Instant,
  /// The worker's epoch the lease is held under (its beats renew it), or `None`: renewed on its own.
  pub epoch: Option<u64>,
  /// Being stopped to hand it to another worker (drain, rebalance): counts against the handoff bound.
  pub handoff: bool,
  /// A start given up (its deadline passed, close, drain): the reason `onStop` gets. Sending it aborts `onStart`.
  pub cancel: watch::Sender<Option<StopReason>>,
}

impl Run {
  pub fn starting(now: Instant) -> Self {
    let cancel = watch::channel(None).0;
    Self {
      token: String::new(),
      generation: 0,
      epoch: None,
      phase: Phase::Starting,
      renewed: now,
      handoff: false,
      cancel,
    }
  }

  /// Gives up a start in flight (once): `onStart`'s signal aborts and its task calls `onStop(reason)`.
  pub fn cancel_start(&self, reason: StopReason) {
    if self.phase == Phase::Starting {
      self.cancel.send_if_modified(|now| now.is_none() && now.replace(reason).is_none());
    }
  }
}

/// A start waiting for a slot: the session, whether it is a failover, whether it is to be restored first.
pub type Queued = (String, bool, bool);

/// The fleet as this worker last saw it, for `status()`.
#[derive(Default, Clone)]
pub struct View {
  pub workers: Vec<WorkerStatus>,
  pub sessions: u64,
  pub paused: u64,
  pub pinned: u64,
}

#[derive(Default)]
pub struct State {
  /// Ordered, so a seed of the simulation (sim/) replays the same stops and renewals in the same order.
  pub runs: BTreeMap<String, Run>,
  pub draining: bool,
  pub closing: bool,
  /// Another live instance holds this worker's id (`ERR_FLEET_DUPLICATE_WORKER`): this one stopped its sessions
  /// as lost, closes, and does not leave (leaving would drop the other's heartbeat).
  pub displaced: bool,
  pub connected: bool,
  pub handoffs: u64,
  pub failovers: u64,
  pub view: View,
  /// Sessions seen with no live owner, since when.
  pub unassigned: BTreeMap<String, Instant>,
  pub alerted: HashSet<String>,
  /// Sessions handed off and not yet seen running elsewhere: they count against the handoff bound.
  pub handed_off: HashMap<String, Instant>,
  /// Sessions whose `onStart` failed, or whose lease another token held, not tried again before then.
  pub retry_after: HashMap<String, Instant>,
  /// Starts the last round found due beyond the free start slots, whose sessions no live worker owns (a dead
  /// worker's, or nobody's): each begins as a start ends, without waiting for a round (queue.rs).
  pub queued: VecDeque<Queued>,
  /// Starts refused because another token held the lease, in a row, per session: the retry backs off.
  pub held_elsewhere: HashMap<String, u32>,
  /// Of those, the ones a round since showed owned by another worker: once a round shows no owner entry for one
  /// (its holder stopped it, as in a handoff, and gave the lease back), it is tried at once, not after the backoff.
  pub owned_elsewhere: HashSet<String>,
}

pub struct Shared {
  pub config: FleetConfig,
  state: Mutex<State>,
  /// Wakes the loop before its next tick (drain, close, a finished start or stop).
  pub wake: Notify,
  /// Wakes the deadline timer: a session's deadline may have moved earlier (a new start, a lease found lost).
  pub deadline: Notify,
  /// How many sessions this worker holds.
  held: watch::Sender<usize>,
  closed: watch::Sender<bool>,
}

impl Shared {
  pub fn new(config: FleetConfig) -> Self {
    let state = State { connected: true, ..State::default() };
    Self {
      config,
      state: Mutex::new(state),
      wake: Notify::new(),
      deadline: Notify::new(),
      held: watch::channel(0).0,
      closed: watch::channel(false).0,
    }
  }

  pub fn lock(&self) -> MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// Call after changing `runs`.
  pub fn changed(&self, state: &State) {
    self.held.send_replace(state.runs.len());
    self.wake.notify_one();
    self.deadline.notify_one();
  }

  /// After `runs` shrank without anything for the loop to do: a drain or close waiting for it hears it.
  pub fn held_changed(&self, state: &State) {
    self.held.send_replace(state.runs.len());
  }

  pub fn set_draining(&self) {
    self.lock().draining = true;
    self.wake.notify_one();
  }

  pub fn set_closing(&self) {
    self.lock().closing = true;
    self.wake.notify_one();
  }

  pub fn mark_closed(&self) {
    self.closed.send_replace(true);
  }

  pub async fn wait_empty(&self) {
    let mut rx = self.held.subscribe();
    let _ = rx.wait_for(|n| *n == 0).await;
  }

  pub async fn wait_closed(&self) {
    let mut rx = self.closed.subscribe();
    let _ = rx.wait_for(|closed| *closed).await;
  }

  pub fn status(&self) -> FleetStatus {
    let state = self.lock();
    let now = Instant::now();
    let count = |phase| state.runs.values().filter(|r| r.phase == phase).count() as u64;
    let mut running: Vec<String> =
      state.runs.iter().filter(|(_, r)| r.phase == Phase::Running).map(|(s, _)| s.clone()).collect();
    running.sort();
    FleetStatus {
      worker_id: self.config.worker_id.clone(),
      group: self.config.group.clone(),
      capacity: self.config.capacity,
      draining: state.draining,
      connected: state.connected,
      running,
      starting: count(Phase::Starting),
      stopping: count(Phase::Stopping),
      handoffs: state.handoffs,
      failovers: state.failovers,
      workers: state.view.workers.clone(),
      sessions: state.view.sessions,
      paused: state.view.paused,
      pinned: state.view.pinned,
      unassigned: state
        .unassigned
        .iter()
        .map(|(s, since)| super::Unassigned {
          session: s.clone(),
          for_ms: now.duration_since(*since).as_millis() as u64,
        })
        .collect(),
      ttl_ms: self.config.timing.ttl.as_millis() as u64,
      renew_every_ms: self.config.timing.renew_every.as_millis() as u64,
    }
  }
}
