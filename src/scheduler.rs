//! Interval backups. A save marks its session dirty; every interval a Rust-side timer backs the dirty sessions
//! up from the primary (so the newest copy goes), retrying passing failures with backoff. A session that still
//! fails stays dirty for the next tick and is reported. `close()` stops the timer and flushes what is pending.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::archive;
use crate::backup::Backups;
use crate::error::{Result, StoreError};
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
}

pub struct Scheduler {
  primary: Arc<dyn Tier>,
  backups: Backups,
  interval: Duration,
  report: Reporter,
  /// Sessions saved since their last backup, with the number of their latest save: a session saved again
  /// while its backup runs stays dirty.
  dirty: Mutex<BTreeMap<SessionKey, u64>>,
  saves: std::sync::atomic::AtomicU64,
  stats: Mutex<BackupStats>,
  timer_started: AtomicBool,
  stop: tokio::sync::watch::Sender<bool>,
  /// A tick and a `close()` flush never run at once.
  flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Scheduler {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Scheduler").field("interval", &self.interval).finish_non_exhaustive()
  }
}

/// Worth retrying within a tick: the service was away, not the request wrong.
fn transient(e: &StoreError) -> bool {
  e.code().ends_with("_UNAVAILABLE") || e.code().ends_with("_TIMEOUT")
}

fn now_ms() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Scheduler {
  pub fn new(primary: Arc<dyn Tier>, backups: Backups, interval: Duration, report: Reporter) -> Arc<Self> {
    Arc::new(Self {
      primary,
      backups,
      interval,
      report,
      dirty: Mutex::default(),
      saves: std::sync::atomic::AtomicU64::new(0),
      stats: Mutex::default(),
      timer_started: AtomicBool::new(false),
      stop: tokio::sync::watch::channel(false).0,
      flushing: tokio::sync::Mutex::new(()),
    })
  }

  fn dirty(&self) -> std::sync::MutexGuard<'_, BTreeMap<SessionKey, u64>> {
    self.dirty.lock().unwrap_or_else(|p| p.into_inner())
  }

  fn stats_mut(&self) -> std::sync::MutexGuard<'_, BackupStats> {
    self.stats.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// Records a save. Starts the timer on first use (from inside the runtime).
  pub fn mark(self: &Arc<Self>, key: &SessionKey) {
    let save = self.saves.fetch_add(1, Ordering::SeqCst);
    self.dirty().insert(key.clone(), save);
    if !self.timer_started.swap(true, Ordering::SeqCst) {
      let weak = Arc::downgrade(self);
      let (interval, mut stop) = (self.interval, self.stop.subscribe());
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
  }

  /// A deleted session has nothing left to back up.
  pub fn forget(&self, key: &SessionKey) {
    self.dirty().remove(key);
  }

  /// Backs up every dirty session now. A session stays pending until its backup is stored.
  pub async fn flush(&self) -> Transfer {
    let _turn = self.flushing.lock().await;
    let snapshot: BTreeMap<SessionKey, u64> = self.dirty().clone();
    let keys: Vec<SessionKey> = snapshot.keys().cloned().collect();
    let summary = transfer(keys, 8, None, |key| async move { self.backup_one(&key).await }).await;
    {
      let mut dirty = self.dirty();
      let failed: Vec<&SessionKey> = summary.failures.iter().map(|(k, _)| k).collect();
      for (key, save) in &snapshot {
        // Done unless it failed or was saved again meanwhile.
        if !failed.contains(&key) && dirty.get(key) == Some(save) {
          dirty.remove(key);
        }
      }
    }
    let mut stats = self.stats_mut();
    stats.backed_up += u64::from(summary.copied);
    if summary.copied > 0 {
      stats.last_success_ms = Some(now_ms());
    }
    for (key, err) in &summary.failures {
      stats.failed += 1;
      stats.last_error = Some((err.code().to_owned(), err.to_string()));
      (self.report)(key, err);
    }
    summary
  }

  async fn backup_one(&self, key: &SessionKey) -> Result<u64> {
    let attempt = || async {
      // Deleted since it was saved: nothing to back up, and not a failure.
      let Some(bytes) = self.primary.get(key).await? else { return Ok(0) };
      let (header, _) = archive::open(&bytes)?;
      self.backups.write(key, &bytes, header.created_ms).await?;
      Ok(bytes.len() as u64)
    };
    let backoff = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(3);
    attempt.retry(backoff).when(transient).await
  }

  /// Stops the timer and backs up what is pending.
  pub async fn close(&self) -> Transfer {
    let _ = self.stop.send(true);
    self.flush().await
  }

  pub fn stats(&self) -> BackupStats {
    let mut stats = self.stats_mut().clone();
    stats.pending = self.dirty().len() as u32;
    stats
  }
}
