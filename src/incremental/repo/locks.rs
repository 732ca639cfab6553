//! The lock protocol between backups and collections of one session: write a lock object, then list the locks,
//! so of two that overlap at least one sees the other. Ages are judged by the tier's clock (last-modified times,
//! against that of the lock just written), so hosts whose clocks disagree still agree on which locks are stale.

use std::time::Duration;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;

use super::{Repo, WORK_PREFIX};
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::ObjectMeta;

/// A backup's lock outlives any sane backup of one session; a prune's is short (a listing and some deletes).
pub(super) const STALE_BACKUP: Duration = Duration::from_secs(3600);
pub(super) const STALE_PRUNE: Duration = Duration::from_secs(300);
/// How long a backup waits for a prune of its session before giving up with `ERR_BACKUP_BUSY`.
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

/// A listed lock: its kind and when it was taken, by the tier's clock where the tier says (its last-modified
/// time), else by the writer's (the time in its name).
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

/// Whether a lock taken at `at_ms` is stale at `now` (both by the same clock: the tier's, measured by the lock
/// just written, so hosts whose clocks disagree still agree on which locks are stale).
pub(super) fn stale(kind: LockKind, at_ms: u64, now: u64) -> bool {
  let limit = match kind {
    LockKind::Backup => STALE_BACKUP,
    LockKind::Prune => STALE_PRUNE,
  };
  now.saturating_sub(at_ms) > limit.as_millis() as u64
}

pub(super) fn locks_prefix(session: &SessionKey) -> String {
  format!("{WORK_PREFIX}{session}/locks/")
}

impl Repo {
  /// Writes a lock, then lists the session's locks: returns the lock and the other fresh ones.
  pub(super) async fn take_lock(&self, session: &SessionKey, kind: LockKind) -> Result<(String, Vec<LockKind>)> {
    let key = format!("{}{}-{:013}-{:016x}", locks_prefix(session), kind.name(), now_ms(), OsRng.next_u64());
    self.tier.put(&key, Vec::new()).await?;
    match self.other_locks(session, &key).await {
      Ok(others) => Ok((key, others)),
      Err(err) => {
        let _ = self.tier.delete(&[key]).await;
        Err(err)
      }
    }
  }

  /// The fresh locks of the session other than `own`, judged by the tier's clock: `own` was just written, so its
  /// time is the tier's now.
  pub(super) async fn other_locks(&self, session: &SessionKey, own: &str) -> Result<Vec<LockKind>> {
    let listed = self.tier.list(&locks_prefix(session)).await?;
    let now = self.lock_time(&listed, own)?;
    let fresh = listed.iter().filter(|o| o.key != own).filter_map(parse_lock);
    Ok(fresh.filter(|(kind, at)| !stale(*kind, *at, now)).map(|(kind, _)| kind).collect())
  }

  /// A backup lock, once no prune of the session runs (waiting up to `WAIT_FOR_PRUNE`).
  pub(super) async fn lock_for_backup(&self, session: &SessionKey) -> Result<String> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_PRUNE;
    loop {
      let (lock, others) = self.take_lock(session, LockKind::Backup).await?;
      if !others.contains(&LockKind::Prune) {
        return Ok(lock);
      }
      let _ = self.tier.delete(&[lock]).await;
      if tokio::time::Instant::now() >= deadline {
        return Err(StoreError::BackupBusy(session.to_string()));
      }
      tokio::time::sleep(Duration::from_millis(250)).await;
    }
  }

  /// When `lock` was written, by the tier's clock. Not listed (the tier does not read its own writes): an error
  /// rather than a guess by this host's clock.
  pub(super) fn lock_time(&self, listed: &[ObjectMeta], lock: &str) -> Result<u64> {
    let own = listed.iter().find(|o| o.key == lock).and_then(parse_lock);
    own.map(|(_, at)| at).ok_or_else(|| StoreError::TierUnavailable {
      tier: self.tier.kind(),
      reason: "a lock just written is missing from the listing".into(),
    })
  }
}
