//! The lock protocol between backups and collections of one session: write a lock object, then list the locks,
//! so of two that overlap at least one sees the other.
//!
//! A holder rewrites its lock every `HEARTBEAT`, and others judge a lock by its age on the tier's clock (its
//! last-modified time against that of a lock just written, so hosts whose clocks disagree still agree): one not
//! rewritten for `STALE` belongs to a process that died or stalled, and is ignored and removed (so a crashed
//! prune holds backups off for seconds, not minutes). A stalled holder may resume after that, so it steps down on
//! its own monotonic clock first: it counts itself the holder only until `RENEW_DEADLINE` after the start of its
//! last rewrite that landed in time, never rewrites a lock past that (a taker's removal is never undone), and
//! checks before every destructive step (`Held::confirm`). Between the latest moment a holder acts and the
//! earliest moment another may judge its lock stale lie `STALE - RENEW_DEADLINE - TIER_RESOLUTION` (3 s): a
//! request the holder sends once it confirmed must reach the tier within that (Kubernetes leader election's
//! renew deadline below its lease duration, the same bet).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use tokio::time::Instant;

use super::{Repo, WORK_PREFIX};
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{ObjectMeta, ObjectTier};

/// How often a holder rewrites its lock.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(4);
/// A lock not rewritten for this long, by the tier's clock, is stale: three heartbeats missed.
pub(super) const STALE: Duration = Duration::from_secs(12);
/// A holder whose last rewrite (that counted) started this long ago, by its own clock, is no longer the holder.
pub(super) const RENEW_DEADLINE: Duration = Duration::from_secs(8);
/// The tier's last-modified times may be whole seconds (S3): a lock can look up to this much older than it is.
const TIER_RESOLUTION: Duration = Duration::from_secs(1);
/// How long a backup waits for a prune of its session before giving up with `ERR_BACKUP_BUSY`: a dead prune's
/// lock goes stale well within it.
pub(super) const WAIT_FOR_PRUNE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockKind {
  Backup,
  Prune,
}

impl LockKind {
  fn name(self) -> &'static str {
    match self {
      Self::Backup => "backup",
      Self::Prune => "prune",
    }
  }
}

/// A listed lock: its kind and when it was last written, by the tier's clock where the tier says (its
/// last-modified time), else by the writer's (the time in its name).
pub(super) fn parse_lock(object: &ObjectMeta) -> Option<(LockKind, u64)> {
  let name = object.key.rsplit('/').next()?;
  let (kind, rest) = name.split_once('-')?;
  let kind = match kind {
    "backup" => LockKind::Backup,
    "prune" => LockKind::Prune,
    _ => return None,
  };
  let named_ms = rest.split_once('-')?.0.parse().ok()?;
  Some((kind, if object.modified_ms > 0 { object.modified_ms } else { named_ms }))
}

fn now_ms() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Whether a lock last written at `at_ms` is stale at `now` (both by the same clock: the tier's, measured by the
/// lock just written). Backups and prunes alike: both heartbeat.
pub(super) fn stale(at_ms: u64, now: u64) -> bool {
  now.saturating_sub(at_ms) > STALE.as_millis() as u64
}

pub(super) fn locks_prefix(session: &SessionKey) -> String {
  format!("{WORK_PREFIX}{session}/locks/")
}

/// What the holder knows of its lock, on its own monotonic clock.
#[derive(Debug)]
struct Renewal {
  /// When the last write of the lock that counts was sent: the tier stamped it no earlier.
  written: Instant,
  /// Stepped down (past the renew deadline, or found removed): never the holder again.
  lost: bool,
}

impl Renewal {
  fn holds(&self, now: Instant) -> bool {
    !self.lost && now.saturating_duration_since(self.written) < RENEW_DEADLINE
  }
}

/// A lock this process holds: rewritten every `HEARTBEAT` by a task of its own until released (or dropped).
#[derive(Debug)]
pub(super) struct Held {
  pub(super) key: String,
  renewal: Arc<Mutex<Renewal>>,
  heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
  fn drop(&mut self) {
    self.heartbeat.abort();
  }
}

impl Held {
  /// Whether this process still counts itself the holder, by its own clock.
  pub(super) fn holds(&self) -> bool {
    self.renewal.lock().unwrap().holds(Instant::now())
  }

  fn step_down(&self) {
    self.renewal.lock().unwrap().lost = true;
  }

  pub(super) fn lost(&self, session: &SessionKey) -> StoreError {
    self.step_down();
    StoreError::BackupLockLost(session.to_string())
  }

  /// Before a destructive step (a delete, a manifest that makes packs count): the lock is still listed, and
  /// still ours by our own clock after the listing. Returns the other fresh locks; `ERR_BACKUP_LOCK_LOST` when
  /// this process is no longer the holder (it stalled past its deadline, or a taker removed the lock).
  pub(super) async fn confirm(&self, repo: &Repo, session: &SessionKey) -> Result<Vec<LockKind>> {
    if !self.holds() {
      return Err(self.lost(session));
    }
    let listed = repo.tier.list(&locks_prefix(session)).await?;
    if !listed.iter().any(|o| o.key == self.key) {
      return Err(self.lost(session));
    }
    let (others, _) = others(repo.tier.kind(), &listed, &self.key)?;
    // Last, on our clock: the listing may have taken a while.
    match self.holds() {
      true => Ok(others),
      false => Err(self.lost(session)),
    }
  }

  /// Stops the heartbeat and deletes the lock (best effort: one left behind goes stale).
  pub(super) async fn release(self, tier: &dyn ObjectTier) {
    self.heartbeat.abort();
    let _ = tier.delete(std::slice::from_ref(&self.key)).await;
  }
}

/// Rewrites `key` every `HEARTBEAT` while this process holds it. A rewrite counts only if it came back before
/// anyone could have judged the previous one stale (`STALE - TIER_RESOLUTION` after it was sent): one that
/// landed later may have recreated a lock a taker had removed, and this process must not act on it. Past the
/// deadline nothing is written again, so a stalled holder that resumes never recreates its lock.
async fn heartbeat(tier: Arc<dyn ObjectTier>, key: String, renewal: Arc<Mutex<Renewal>>) {
  let mut wait = HEARTBEAT;
  loop {
    tokio::time::sleep(wait).await;
    let previous = {
      let mut state = renewal.lock().unwrap();
      if !state.holds(Instant::now()) {
        state.lost = true;
        return;
      }
      state.written
    };
    let sent = Instant::now();
    let landed = tier.put(&key, Vec::new()).await.is_ok();
    let in_time = previous.elapsed() < STALE - TIER_RESOLUTION;
    wait = match (landed, in_time) {
      (true, true) => {
        renewal.lock().unwrap().written = sent;
        HEARTBEAT
      }
      (true, false) => {
        renewal.lock().unwrap().lost = true;
        return;
      }
      // Not written: again soon, while the deadline allows.
      (false, _) => Duration::from_secs(1),
    };
  }
}

/// When `own` was last written, by the tier's clock. Not listed (the tier does not read its own writes): an error
/// rather than a guess by this host's clock.
pub(super) fn lock_time(tier: &'static str, listed: &[ObjectMeta], own: &str) -> Result<u64> {
  let at = listed.iter().find(|o| o.key == own).and_then(parse_lock).map(|(_, at)| at);
  at.ok_or_else(|| StoreError::TierUnavailable {
    tier,
    reason: "a lock just written is missing from the listing".into(),
  })
}

/// The locks of `listed` other than `own`: the kinds of the fresh ones, and the keys of the stale ones. Judged by
/// the tier's clock: `own`'s time (it was written just before the listing, or at most a renew deadline before)
/// is the tier's now, or earlier: measured from it, a lock only looks younger than it is.
fn others(tier: &'static str, listed: &[ObjectMeta], own: &str) -> Result<(Vec<LockKind>, Vec<String>)> {
  let now = lock_time(tier, listed, own)?;
  let (mut fresh, mut stale_keys) = (Vec::new(), Vec::new());
  for object in listed.iter().filter(|o| o.key != own) {
    match parse_lock(object) {
      Some((kind, at)) if !stale(at, now) => fresh.push(kind),
      _ => stale_keys.push(object.key.clone()),
    }
  }
  Ok((fresh, stale_keys))
}

impl Repo {
  /// Writes a lock and starts its heartbeat, then lists the session's locks: returns the lock and the other
  /// fresh ones. Stale ones are removed (their holders stepped down on their own clocks before they went stale),
  /// so a holder that resumes finds its lock gone.
  pub(super) async fn take_lock(&self, session: &SessionKey, kind: LockKind) -> Result<(Held, Vec<LockKind>)> {
    let key = format!("{}{}-{:013}-{:016x}", locks_prefix(session), kind.name(), now_ms(), OsRng.next_u64());
    let sent = Instant::now();
    self.tier.put(&key, Vec::new()).await?;
    let renewal = Arc::new(Mutex::new(Renewal { written: sent, lost: false }));
    let task = tokio::spawn(heartbeat(self.tier.clone(), key.clone(), renewal.clone()));
    let held = Held { key, renewal, heartbeat: task };
    let listed = self.tier.list(&locks_prefix(session)).await;
    match listed.and_then(|listed| others(self.tier.kind(), &listed, &held.key)) {
      Ok((fresh, stale)) => {
        if !stale.is_empty() {
          let _ = self.tier.delete(&stale).await;
        }
        Ok((held, fresh))
      }
      Err(err) => {
        held.release(self.tier.as_ref()).await;
        Err(err)
      }
    }
  }

  /// A backup lock, once no prune of the session runs (waiting up to `WAIT_FOR_PRUNE`).
  pub(super) async fn lock_for_backup(&self, session: &SessionKey) -> Result<Held> {
    let deadline = Instant::now() + WAIT_FOR_PRUNE;
    loop {
      let (lock, others) = self.take_lock(session, LockKind::Backup).await?;
      if !others.contains(&LockKind::Prune) {
        return Ok(lock);
      }
      lock.release(self.tier.as_ref()).await;
      if Instant::now() >= deadline {
        return Err(StoreError::BackupBusy(session.to_string()));
      }
      tokio::time::sleep(Duration::from_millis(250)).await;
    }
  }
}

#[cfg(test)]
#[path = "locks_tests.rs"]
mod tests;
