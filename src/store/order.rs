//! Which of two copies of a session is the newer, across tiers and writers, without trusting their clocks.
//!
//! Backups are copies of what the primary held, so the backup history is the session's order: a primary copy
//! whose save a backup version holds is as old as that version, and one no version holds was saved since the
//! last backup, whatever its save time says. A copy that fails its checksum is never as new as a good one.

use std::sync::Arc;

use super::Store;
use crate::archive::{self, Header};
use crate::backup::Backups;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::Tier;

/// Both headers describe the same save (`Header::same_save`).
pub(crate) fn same_save(a: &Header, b: &Header) -> bool {
  a.same_save(b)
}

/// Whether the backup `candidate` replaces a good primary copy `current`: only when the history (oldest first,
/// in version-name order) holds `current`'s save in a version older than the one `candidate` came from. A
/// version's name carries the stamp of the save it holds (`backup::history`), so name order is save order
/// however late each backup was written.
pub(crate) fn backup_is_newer(current: &Header, candidate: &Header, history: &[Option<Header>]) -> bool {
  if same_save(current, candidate) {
    return false;
  }
  let last = |h: &Header| history.iter().rposition(|v| v.as_ref().is_some_and(|v| same_save(v, h)));
  matches!((last(current), last(candidate)), (Some(p), Some(c)) if p < c)
}

/// What warming one session from its backups did.
pub(crate) enum Warmed {
  /// The primary's copy stands (good and not older); its bytes.
  Kept(Vec<u8>),
  /// The newest good backup replaced a missing, damaged or older primary copy.
  Restored(Vec<u8>),
  /// No backup version.
  NoBackup,
  /// The primary's copy changed (or appeared) since it was read: a save that landed meanwhile, maybe in another
  /// process, which wins. Nothing was written.
  Changed,
  /// A logout's mark landed while the backup was read and written back: the copy written went again.
  Deleted,
}

impl Store {
  /// The stamp of the session's stored copy (0 when there is none, or its header does not read): a new save is
  /// stamped after it. The primary's copy is the newest save wherever there is a primary; without one (or when
  /// the primary has no copy), the bucket's newest version, or the mark a delete left (a login after a logout is
  /// stamped after the logout's mark, so the mark does not cover it).
  pub(super) async fn previous_stamp(&self, key: &SessionKey) -> Result<u64> {
    if let Some(primary) = &self.primary {
      let head = primary.head(key, archive::HEADER_LEN).await?;
      if let Some(header) = head.and_then(|h| archive::peek(&h).ok()) {
        return Ok(header.created_ms);
      }
    }
    match (&self.backups, &self.primary) {
      (Some(backups), None) => backups.newest_stamp(key).await,
      // Best effort beside a primary: a bucket that cannot be asked never fails a save (a new save is stamped
      // now, after a logout's mark unless the clocks disagree).
      (Some(backups), Some(_)) => Ok(backups.newest_stamp(key).await.unwrap_or(0)),
      (None, _) => Ok(0),
    }
  }

  /// Writes the newest good backup to the primary unless the primary's copy is good and not older (see the
  /// module). Under the session's lock from the first read to the write-back, and the write-back is conditional
  /// on the copy read (`Tier::replace_if`, atomic on Redis; for a copy that was absent, a create-if-absent), so
  /// a logout or a save that lands meanwhile wins, in this process or any other. Under a lease this store
  /// holds, the write is fenced by it instead (the lease makes this store the only one saving). With
  /// `best_effort` (an extract, which has its bytes either way) a failed write-back is ignored.
  pub(super) async fn warm(
    &self,
    primary: &Arc<dyn Tier>,
    backups: &Backups,
    key: &SessionKey,
    best_effort: bool,
  ) -> Result<Warmed> {
    let lock = self.save_locks.of(key);
    let _turn = lock.lock().await;
    let mut current = primary.get(key).await?;
    if let Some(value) = current.take_if(|value| super::legacy::is_foreign(value)) {
      // Another store's value that converts is a good copy, newer than any backup (this store never wrote it);
      // one that does not is as good as none, though the write-back below is still conditional on it.
      match self.convert_foreign(key, value.clone()).await {
        Ok(packed) => return Ok(Warmed::Kept(packed.bytes)),
        Err(_) => current = Some(value),
      }
    }
    let current_header = match current.as_deref().map(archive::open) {
      Some(Ok((header, _))) => Some(header),
      // A newer build's copy is never replaced (nor read here).
      Some(Err(StoreError::ArchiveVersion { .. })) => return Ok(Warmed::Kept(current.expect("read"))),
      _ => None,
    };
    let Some(candidate) = backups.newest_good(key).await? else {
      return Ok(match (current, current_header) {
        (Some(bytes), Some(_)) => Warmed::Kept(bytes),
        _ => Warmed::NoBackup,
      });
    };
    if let (Some(bytes), Some(header)) = (&current, &current_header) {
      let newer = backup_is_newer(header, &archive::peek(&candidate)?, &backups.headers(key).await?);
      if !newer {
        return Ok(Warmed::Kept(bytes.clone()));
      }
    }
    let written = match self.held(key).is_some() {
      // Fenced like a save: a store that lost its lease writes nothing, not even a restore.
      true => self.put_primary(primary, key, candidate.clone()).await.map(|()| true),
      false => {
        let expected = current.as_deref().map_or(&[][..], |c| &c[..c.len().min(archive::HEADER_LEN)]);
        primary.replace_if(key, expected, candidate.clone()).await
      }
    };
    match written {
      Ok(false) => Ok(Warmed::Changed),
      Err(err) if !best_effort => Err(err),
      // Written, or (best effort) maybe written: either way a logout's mark is looked for.
      _ => self.unless_logged_out(primary, backups, key, candidate, best_effort).await,
    }
  }

  /// After writing `candidate` back: a logout in another process (no lock of ours orders it) may have deleted the
  /// primary's copy and marked the bucket while the backup was read. Its mark covers the copy written, which goes
  /// again (`Warmed::Deleted`), or the logged-out session would be back in the primary. The logout looks at the
  /// primary again after writing its mark (`take_down_covered`), so of a write-back and a logout that overlap, one
  /// sees the other. A mark that cannot be looked for counts as found: the copy goes (the bucket still has it),
  /// and the error is returned unless `best_effort` (the caller has its bytes).
  async fn unless_logged_out(
    &self,
    primary: &Arc<dyn Tier>,
    backups: &Backups,
    key: &SessionKey,
    candidate: Vec<u8>,
    best_effort: bool,
  ) -> Result<Warmed> {
    let stamp = archive::peek(&candidate)?.created_ms;
    let gone = backups.deleted_at(key).await;
    if matches!(gone, Ok(gone) if gone < stamp) {
      return Ok(Warmed::Restored(candidate));
    }
    let written = candidate[..candidate.len().min(archive::HEADER_LEN)].to_vec();
    primary.delete_if(key, written).await?;
    match gone {
      Ok(_) => Ok(Warmed::Deleted),
      Err(_) if best_effort => Ok(Warmed::Restored(candidate)),
      Err(err) => Err(err),
    }
  }

  /// After a logout wrote its mark (covering saves stamped up to `mark`): a copy the primary holds that the mark
  /// covers was written back by a restore in another process after the logout deleted the primary's copy, and
  /// before the mark was there for it to see (`unless_logged_out`). It is deleted data, and goes.
  pub(super) async fn take_down_covered(&self, primary: &Arc<dyn Tier>, key: &SessionKey, mark: u64) -> Result<()> {
    let Some(head) = primary.head(key, archive::HEADER_LEN).await? else { return Ok(()) };
    if archive::peek(&head).is_ok_and(|h| h.created_ms <= mark) {
      primary.delete_if(key, head).await?;
    }
    Ok(())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn save(created_ms: u64, files_bytes: u64) -> Header {
    Header { version: 1, flags: 1, entries: 3, files_bytes, source_bytes: 9, created_ms, payload_len: 5 }
  }

  #[test]
  fn the_backup_history_orders_copies_not_their_clocks() {
    let (a, b) = (save(200_000, 10), save(300_000, 11));
    // Saved after the backup of `b` by a replica whose clock lags 60 s: in no version, so it is the newer.
    let lagging = save(300_000 - 60_000, 12);
    let history = [Some(a.clone()), Some(b.clone())];
    assert!(!backup_is_newer(&lagging, &b, &history));
    // A primary brought back from a snapshot that holds `a`: the history says `b` came after it.
    assert!(backup_is_newer(&a, &b, &history));
    // A clock running ahead does not make an older copy newer either.
    let ahead = save(900_000, 10);
    assert!(backup_is_newer(&ahead, &b, &[Some(ahead.clone()), Some(b.clone())]));
    // The same save re-sealed (a rotation) is never newer; nor is the copy a newer damaged version holds.
    assert!(!backup_is_newer(&Header { payload_len: 99, ..b.clone() }, &b, &history));
    assert!(!backup_is_newer(&b, &a, &[Some(a.clone()), Some(b.clone()), None]));
  }
}
