//! A fleet of workers over one store: membership by heartbeats in the primary tier, a deterministic balanced
//! assignment (`assign`), and every start through the session's lease, so two workers never run one session at
//! once even while their views of the membership disagree. See docs/fleet.md for the model and `timing` for the
//! rule that orders a cut-off worker's stop before anyone else's start.

pub mod assign;
mod bucket;
mod lifecycle;
mod queue;
mod renewal;
mod state;
mod status;
mod take;
pub mod timing;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use self::assign::Pin;
use self::state::Shared;
pub use self::status::{observe, FleetStatus, Unassigned, WorkerInfo, WorkerStatus};
pub use self::timing::Timing;
use crate::error::{Result, StoreError};
use crate::store::Store;

/// The group's maps (`Membership` maps): who runs what, and the per-session settings.
pub(crate) const OWNERS: &str = "owners";
pub(crate) const PINS: &str = "pins";

/// An owners entry: the worker's id, then ` running` once `onStart` resolved (a handoff counts as done only then).
pub(crate) fn owner_entry(id: &str, running: bool) -> String {
  if running {
    format!("{id} running")
  } else {
    id.to_owned()
  }
}

pub(crate) fn parse_owner(bytes: &[u8]) -> (String, bool) {
  let text = String::from_utf8_lossy(bytes);
  match text.strip_suffix(" running") {
    Some(id) => (id.to_owned(), true),
    None => (text.into_owned(), false),
  }
}

/// What `onStart` receives: the session, and its lease, already taken for this worker.
#[derive(Clone)]
pub struct Lease {
  pub session: String,
  pub token: String,
  pub ttl: Duration,
  pub renew_every: Duration,
  /// Fires when the worker gives the start up: `onStop` follows (once `onStart` settled, or stop_timeout / 2 on).
  pub abort: Abort,
}

/// A start's abort signal: the worker can no longer back it with its lease (cut off from the tier past the
/// deadline), it is closing or draining, or the start took longer than `start_timeout`.
#[derive(Clone)]
pub struct Abort(tokio::sync::watch::Receiver<Option<StopReason>>);

impl Abort {
  pub(crate) fn new(rx: tokio::sync::watch::Receiver<Option<StopReason>>) -> Self {
    Self(rx)
  }

  /// Why the start was given up, if it was.
  pub fn reason(&self) -> Option<StopReason> {
    *self.0.borrow()
  }

  /// Resolves with the reason once the start is given up, or with `None` once it is over without that.
  pub async fn outcome(&mut self) -> Option<StopReason> {
    self.0.wait_for(Option::is_some).await.ok().and_then(|r| *r)
  }

  /// Resolves once the start is given up (never, if it is not).
  pub async fn aborted(&mut self) -> StopReason {
    let reason = self.0.wait_for(Option::is_some).await.ok().and_then(|r| *r);
    match reason {
      Some(reason) => reason,
      None => std::future::pending().await,
    }
  }
}

/// Why a session is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
  /// `drain()`: handed to the other workers.
  Drain,
  /// The assignment moved it to another worker (one joined, or came back).
  Rebalance,
  /// Its lease could not be renewed in time (Redis unreachable) or another owner took it.
  Lost,
  /// It is no longer stored (logged out and deleted).
  Deleted,
  /// Paused by its per-session setting, or pinned to another worker.
  Paused,
  /// `close()`.
  Close,
  /// `onStart` did not resolve within `startTimeoutMs`: given up, its lease left fenced until it expires.
  Timeout,
}

impl StopReason {
  pub fn as_str(self) -> &'static str {
    match self {
      Self::Drain => "drain",
      Self::Rebalance => "rebalance",
      Self::Lost => "lost",
      Self::Deleted => "deleted",
      Self::Paused => "paused",
      Self::Close => "close",
      Self::Timeout => "timeout",
    }
  }
}

/// Something the application may want to hear about.
#[derive(Debug, Clone)]
pub enum FleetEvent {
  /// A session has had no live owner for longer than the configured bound (once per episode).
  Unassigned { session: String, for_ms: u64 },
  /// `onStart` failed; the lease was given back and the start is tried again later.
  StartFailed { session: String, message: String },
  /// `onStop` failed or took longer than `stopTimeoutMs` while its lease could not be renewed.
  StopFailed { session: String, message: String },
  /// `onStart` had not resolved `after_ms` (`startTimeoutMs`) after it was called: its signal aborted (reason
  /// `timeout`), `onStop(session, 'timeout')` follows, and the lease is left fenced until it expires (the client
  /// may still run), so the session starts again, anywhere, only after that.
  StartTimedOut { session: String, after_ms: u64 },
  /// Another live worker instance of the group has this worker's id (`code`: `ERR_FLEET_DUPLICATE_WORKER`): this
  /// one stopped whatever it ran (reason `lost`) and closed.
  DuplicateWorker { id: String, code: &'static str, message: String },
  /// The primary had lost the session (evicted, a Redis restarted without persistence): its newest good backup
  /// was written back to it, and it runs on (or starts).
  Restored { session: String },
  /// The session is missing from the primary and the store could neither restore it nor tell it deleted (the
  /// bucket unreachable): it runs on (or is not started yet) and is tried again. Once per episode.
  RestoreFailed { session: String, message: String },
}

/// The application's side: start and stop one session's client. Errors are the app's messages.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
  async fn start(&self, lease: Lease) -> std::result::Result<(), String>;
  async fn stop(&self, session: String, reason: StopReason) -> std::result::Result<(), String>;
  fn event(&self, event: FleetEvent);
}

#[derive(Debug, Clone)]
pub struct FleetConfig {
  pub group: String,
  pub worker_id: String,
  pub capacity: u32,
  pub timing: Timing,
  /// Starts in flight at once, and handoffs (drain, rebalance) in flight at once: no herd of Chromium starts.
  pub max_concurrent_starts: usize,
  /// An `Unassigned` event once a session has had no owner for this long.
  pub unassigned_alert: Duration,
  /// How often the worker lists the backup bucket for sessions the primary lost (`bucket`); at least
  /// `renew_every`. `DEFAULT_BACKUP_LIST_EVERY` unless set.
  pub backup_list_every: Duration,
  /// How long `onStart` may take: past it the start is given up (`StopReason::Timeout`), since a start that
  /// never settles would hold its session here for good. At least `renew_every`. `DEFAULT_START_TIMEOUT` unless
  /// set.
  pub start_timeout: Duration,
}

impl FleetConfig {
  pub const DEFAULT_BACKUP_LIST_EVERY: Duration = Duration::from_secs(60);
  /// Room for a Chromium start (launch, WhatsApp Web's load, the session's restore) on a loaded host: a start
  /// that takes this long is hung, not slow.
  pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

  pub fn check(&self) -> Result<()> {
    crate::tier::check_group(&self.group)?;
    if crate::tier::check_group(&self.worker_id).is_err() {
      let reason = "1 to 64 ASCII letters, digits, '-', '_' or '.'".into();
      return Err(StoreError::InvalidOption { name: "fleet.workerId", reason });
    }
    if self.capacity == 0 || self.capacity > 100_000 {
      return Err(StoreError::InvalidOption { name: "fleet.capacity", reason: "must be 1 to 100000".into() });
    }
    if self.backup_list_every < self.timing.renew_every || self.backup_list_every > Duration::from_secs(86_400) {
      let reason = "must be at least renewEveryMs, and at most 24 h".into();
      return Err(StoreError::InvalidOption { name: "fleet.backupListEveryMs", reason });
    }
    if self.start_timeout < self.timing.renew_every || self.start_timeout > Duration::from_secs(86_400) {
      let reason = "must be at least renewEveryMs, and at most 24 h".into();
      return Err(StoreError::InvalidOption { name: "fleet.startTimeoutMs", reason });
    }
    if self.max_concurrent_starts == 0 || self.max_concurrent_starts > 1000 {
      return Err(StoreError::InvalidOption { name: "fleet.maxConcurrentStarts", reason: "must be 1 to 1000".into() });
    }
    Ok(())
  }
}

/// A running worker. Dropping it does not stop it: call `close`.
#[derive(Clone)]
pub struct Fleet {
  shared: Arc<Shared>,
}

impl Fleet {
  /// Joins the fleet: checks the settings and that the store's primary can hold membership and leases, and
  /// returns the worker and its loop (to spawn on the runtime).
  pub fn join(
    store: Store,
    config: FleetConfig,
    hooks: Arc<dyn Hooks>,
  ) -> Result<(Self, impl std::future::Future<Output = ()> + Send + 'static)> {
    config.check()?;
    store.membership()?;
    store.join_fleet()?;
    let shared = Arc::new(Shared::new(config));
    let run = run_until_left(shared.clone(), store, hooks);
    Ok((Self { shared }, run))
  }

  pub fn status(&self) -> FleetStatus {
    self.shared.status()
  }

  /// Hands every session off (bounded, like a rebalance) and resolves once this worker runs none.
  pub async fn drain(&self) {
    self.shared.set_draining();
    self.shared.wait_empty().await;
  }

  /// Stops every session (reason `close`), leaves the fleet and ends the loop.
  pub async fn close(&self) {
    self.shared.set_closing();
    self.shared.wait_closed().await;
  }
}

/// The worker's loop, closed by the store's `close()` as by the fleet's, and leaving the store's member slot free
/// however it ends (a panic too), so the store's `close()` waiting for it never hangs.
async fn run_until_left(shared: Arc<Shared>, store: Store, hooks: Arc<dyn Hooks>) {
  struct Leaves(Store);
  impl Drop for Leaves {
    fn drop(&mut self) {
      self.0.leave_fleet();
    }
  }
  let _leaves = Leaves(store.clone());
  let closing = store.fleet_closing();
  let worker = worker::run(shared.clone(), store, hooks);
  tokio::pin!(worker);
  tokio::select! {
    biased; // a fixed order, so a seed of the simulation (sim/) replays exactly
    () = &mut worker => return,
    () = closing => shared.set_closing(),
  }
  worker.await;
}

/// Sets (or with `None` clears) a session's fleet setting: pinned to a worker, or paused. Stored in the tier,
/// so every worker sees it at its next check.
pub async fn set_pin(store: &Store, group: &str, session: &str, pin: Option<Pin>) -> Result<()> {
  let key = crate::session::SessionKey::parse(session)?;
  let membership = store.membership()?;
  match pin {
    Some(pin) => membership.map_set(group, PINS, key.as_str(), pin.encode().as_bytes()).await,
    None => membership.map_remove(group, PINS, key.as_str(), None).await,
  }
}

#[cfg(test)]
mod bucket_tests;
#[cfg(test)]
mod failover_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod owner_tests;
#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod start_tests;
#[cfg(test)]
mod tests;
