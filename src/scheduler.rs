//! When backups are written. A save marks its session dirty. In interval mode a Rust-side timer backs the dirty
//! sessions up from the primary (so the newest copy goes); in every-save mode, and after `close()`, the save
//! backs its session up at once. Passing failures are retried with backoff; a session that still fails stays
//! dirty for the next tick or `close()`, and is reported. A backup racing a delete never resurrects the session.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::archive;
use crate::backup::Backups;
use crate::counters::{Counters, Outcome};
use crate::error::{Result, StoreError};
use crate::locks::KeyLocks;
use crate::session::SessionKey;
use crate::tier::Tier;
use crate::transfer::{transfer, Transfer};

/// Where background failures go (the binding hands them to JS).
pub type Reporter = Arc<dyn Fn(&SessionKey, &StoreError) + Send + Sync>;

/// What the backups have been doing, for stats and health checks.
#[derive(Debug, Clone, Default)]
pub struct BackupStats {
  /// Sessions saved since their last backup.
  pub pending: u32,
  pub backed_up: u64,
  pub failed: u64,
  pub last_success_ms: Option<u64>,
  /// Code and message of the last failure.
  pub last_error: Option<(String, String)>,
  /// Time between backup runs; `None`: within every save.
  pub interval: Option<Duration>,
}

pub struct Scheduler {
  primary: Arc<dyn Tier>,
  backups: Backups,
  /// `None`: back up within every save.
  interval: Option<Duration>,
  report: Reporter,
  locks: Arc<KeyLocks>,
  /// Sessions saved since their last backup, with the number of their latest save: a session saved again
  /// while its backup runs stays dirty.
  dirty: Mutex<BTreeMap<SessionKey, u64>>,
  saves: AtomicU64,
  /// Deleted sessions (until saved again), with the stamp of the copy the delete removed: a backup of it that
  /// lands after the delete is removed again.
  deleted: Mutex<HashMap<SessionKey, u64>>,
  stats: Mutex<BackupStats>,
  timer_started: AtomicBool,
  closed: AtomicBool,
  stop: tokio::sync::watch::Sender<bool>,
  /// A tick and a `close()` flush never run at once.
  flushing: tokio::sync::Mutex<()>,
  counters: Counters,
}

impl std::fmt::Debug for Scheduler {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Scheduler").field("interval", &self.interval).finish_non_exhaustive()
  }
}

/// Worth retrying: the service was away, not the request wrong.
fn transient(e: &StoreError) -> bool {
  e.code().ends_with("_UNAVAILABLE") || e.code().ends_with("_TIMEOUT")
}

fn now_ms() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
  m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
  pub fn new(
    primary: Arc<dyn Tier>,
    backups: Backups,
    interval: Option<Duration>,
    report: Reporter,
    locks: Arc<KeyLocks>,
    counters: Counters,
  ) -> Arc<Self> {
    Arc::new(Self {
      primary,
      backups,
      interval,
      report,
      locks,
      dirty: Mutex::default(),
      saves: AtomicU64::new(0),
      deleted: Mutex::default(),
      stats: Mutex::default(),
      timer_started: AtomicBool::new(false),
      closed: AtomicBool::new(false),
      stop: tokio::sync::watch::channel(false).0,
      flushing: tokio::sync::Mutex::new(()),
      counters,
    })
  }

  /// Records a save. True when the caller should back the session up now: every-save mode, or after
  /// `close()`, when no timer will. Starts the timer on first use (from inside the runtime).
  pub fn mark(self: &Arc<Self>, key: &SessionKey) -> bool {
    let save = self.saves.fetch_add(1, Ordering::SeqCst);
    guard(&self.deleted).remove(key);
    guard(&self.dirty).insert(key.clone(), save);
    let Some(interval) = self.interval else { return true };
    if self.closed.load(Ordering::SeqCst) {
      return true;
    }
    if !self.timer_started.swap(true, Ordering::SeqCst) {
      let weak = Arc::downgrade(self);
      let mut stop = self.stop.subscribe();
      tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
          tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
          }
          let Some(scheduler) = weak.upgrade() else { return };
          scheduler.flush().await;
        }
      });
    }
    false
  }

  /// Called by a delete, under the session's lock: nothing is left to back up, and a backup already
  /// on its way is undone when it lands.
  /// `stamp`: the stamp of the copy the delete removed.
  pub fn forget(&self, key: &SessionKey, stamp: u64) {
    guard(&self.dirty).remove(key);
    guard(&self.deleted).insert(key.clone(), stamp);
  }

  /// Backs up every dirty session now, reporting failures.
  pub async fn flush(&self) -> Transfer {
    let _turn = self.flushing.lock().await;
    let keys: Vec<SessionKey> = guard(&self.dirty).keys().cloned().collect();
    self.flush_keys(keys, true).await
  }

  /// Backs these sessions up now. Failures stay dirty; with `report` they also go to the reporter (a save
  /// that backs up its own session returns the failure to its caller instead).
  pub async fn flush_keys(&self, keys: Vec<SessionKey>, report: bool) -> Transfer {
    let summary = transfer(keys, 8, None, |key| async move { self.backup_one(&key).await }).await;
    let mut stats = guard(&self.stats);
    stats.backed_up += u64::from(summary.copied);
    self.counters.backups_ok(u64::from(summary.copied));
    if summary.copied > 0 {
      stats.last_success_ms = Some(now_ms());
    }
    for (key, err) in &summary.failures {
      stats.failed += 1;
      self.counters.backup(Outcome::Failed);
      stats.last_error = Some((err.code().to_owned(), err.to_string()));
      if report {
        (self.report)(key, err);
      }
    }
    summary
  }

  async fn backup_one(&self, key: &SessionKey) -> Result<Option<u64>> {
    let Some(save) = guard(&self.dirty).get(key).copied() else { return Ok(None) };
    let attempt = || async {
      let Some(bytes) = self.primary.get(key).await? else {
        return Err(StoreError::SessionNotFound(format!("{key} (the primary lost it before its backup)")));
      };
      archive::open(&bytes)?;
      let len = bytes.len() as u64;
      self.backups.write(key, bytes).await?;
      Ok(len)
    };
    let backoff = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(2);
    let result = attempt.retry(backoff).when(transient).await;
    let lock = self.locks.of(key);
    let _turn = lock.lock().await;
    let gone = guard(&self.deleted).get(key).copied();
    if let Some(gone) = gone {
      // Deleted while the upload ran: the saves the delete removed are taken down again (its mark written if its
      // own bucket part failed), or a logout would come back from S3. Only those: a later login, saved by another
      // process meanwhile and stamped after them, is not touched (found by the backup model, seed 725).
      self.backups.delete_up_to(key, gone).await?;
      return Ok(None);
    }
    let mut dirty = guard(&self.dirty);
    match result {
      Ok(len) => {
        if dirty.get(key) == Some(&save) {
          dirty.remove(key);
        }
        Ok(Some(len))
      }
      // Nothing left to retry with: report it once and drop it.
      Err(err @ StoreError::SessionNotFound(_)) => {
        dirty.remove(key);
        Err(err)
      }
      Err(err) => Err(err),
    }
  }

  /// Backs up a save before the primary has it (a primary that may evict it at once), counted like any backup.
  /// Called under the session's lock.
  pub async fn back_up_first(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let attempt = || async { self.backups.write(key, bytes.clone()).await.map(drop) };
    let backoff = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(2);
    let result = attempt.retry(backoff).when(transient).await;
    self.counters.backup(Outcome::of(&result));
    let mut stats = guard(&self.stats);
    match &result {
      Ok(()) => {
        stats.backed_up += 1;
        stats.last_success_ms = Some(now_ms());
        guard(&self.deleted).remove(key);
        // Under the session's lock: this is its newest save, so an older one's pending backup is moot.
        guard(&self.dirty).remove(key);
      }
      Err(err) => {
        stats.failed += 1;
        stats.last_error = Some((err.code().to_owned(), err.to_string()));
      }
    }
    result
  }

  /// Stops the timer and backs up what is pending; later saves back themselves up.
  pub async fn close(&self) -> Transfer {
    self.closed.store(true, Ordering::SeqCst);
    let _ = self.stop.send(true);
    self.flush().await
  }

  pub fn stats(&self) -> BackupStats {
    let mut stats = guard(&self.stats).clone();
    stats.pending = guard(&self.dirty).len() as u32;
    stats.interval = self.interval;
    stats
  }
}
