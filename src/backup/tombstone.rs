//! A deleted session's mark in the bucket: `<session>/<stamp:013>.gone`, the stamp of the newest save the delete
//! removed. A version stamped at or before it is deleted data: hidden from every reader, never written again (a
//! backup of an older save landing after the delete, a key rotation's rewrite), and removed by a prune or
//! `cleanup`. A later login is stamped after it (`Store::previous_stamp`) and is not affected.
//!
//! Across processes the order of steps decides: a delete writes its mark before it lists and deletes the
//! versions; a writer writes its version before it looks for a mark, and takes the version down again when one
//! covers it. Either the writer sees the mark, or the delete's listing sees the version.

use super::{parse_version, Backups, Version};
use crate::error::{Result, StoreError};
use crate::incremental::Collected;
use crate::session::SessionKey;
use crate::tier::ObjectMeta;

use crate::incremental::DELETED_EXT as EXT;

/// `<13 digits>.gone` → its stamp.
fn stamp_of(name: &str) -> Option<u64> {
  let ms = name.strip_suffix(EXT)?;
  (ms.len() == 13 && ms.bytes().all(|b| b.is_ascii_digit())).then(|| ms.parse().ok()).flatten()
}

/// A session's versions from a listing of its folder, oldest first, and the stamp of its newest mark (0: none).
/// Versions the mark covers are not left out here.
pub(super) fn split(key: &SessionKey, objects: Vec<ObjectMeta>) -> (Vec<Version>, u64) {
  let mut gone = 0;
  let mut versions = Vec::new();
  for object in objects {
    let name = object.key.strip_prefix(key.as_str()).and_then(|k| k.strip_prefix('/')).unwrap_or_default();
    if let Some(stamp) = stamp_of(name) {
      gone = gone.max(stamp);
    } else if let Some((session, version)) = parse_version(object) {
      if &session == key {
        versions.push(version);
      }
    }
  }
  (versions, gone)
}

/// The mark's stamp in a listing of the whole bucket, if `key` is a session's mark.
pub(super) fn mark_in(object: &ObjectMeta) -> Option<(SessionKey, u64)> {
  let (session, name) = object.key.split_once('/')?;
  Some((SessionKey::parse(session).ok()?, stamp_of(name)?))
}

fn deleted(key: &SessionKey) -> StoreError {
  StoreError::SessionNotFound(format!("{key} (deleted after the save this backup holds)"))
}

impl Backups {
  /// The session's versions, every one (covered or not), and its mark's stamp.
  pub(super) async fn listing(&self, key: &SessionKey) -> Result<(Vec<Version>, u64)> {
    Ok(split(key, self.tier.list_children(&format!("{key}/")).await?))
  }

  /// Marks the session deleted after every save it holds (and after `at_least`, the stamp of the primary's copy
  /// the delete removed), then deletes its versions and chunks. A session the bucket holds no version of is
  /// marked too when the primary had a copy (`at_least` > 0): a backup of that copy may be on its way from another
  /// process (its timer, the CLI's `backup`), which no scheduler of this one can undo, and the mark makes it take
  /// itself down. Only a session no tier held (stamp 0) gets no mark.
  /// Returns the stamp the session's mark covers (0: none).
  pub async fn delete(&self, key: &SessionKey, at_least: u64) -> Result<u64> {
    let (versions, gone) = self.listing(key).await?;
    let stamp = versions.iter().map(|v| v.ms).max().unwrap_or(0).max(at_least);
    if stamp > gone {
      self.tier.put(&format!("{key}/{stamp:013}{EXT}"), Vec::new()).await?;
    }
    self.repo.delete_all(key).await?;
    Ok(stamp.max(gone))
  }

  /// Completes a delete of the saves stamped up to `gone` (a delete in this process that a backup raced): marks
  /// them if no mark does yet (the delete's own bucket part may have failed), then deletes the versions the mark
  /// covers. A later save (a login since, in another process) is never touched, unlike `delete`.
  pub async fn delete_up_to(&self, key: &SessionKey, gone: u64) -> Result<()> {
    let (versions, mark) = self.listing(key).await?;
    if gone > mark {
      self.tier.put(&format!("{key}/{gone:013}{EXT}"), Vec::new()).await?;
    }
    let covered: Vec<String> = versions.into_iter().filter(|v| v.ms <= gone.max(mark)).map(|v| v.key).collect();
    if !covered.is_empty() {
      self.tier.delete(&covered).await?;
      let _ = self.repo.collect(key).await;
    }
    Ok(())
  }

  /// After writing `written` (stamped `ms`): takes it down again when a delete's mark covers it.
  pub(super) async fn unless_deleted(&self, key: &SessionKey, written: &str, ms: u64) -> Result<()> {
    let (_, gone) = self.listing(key).await?;
    if gone < ms {
      return Ok(());
    }
    self.tier.delete(&[written.to_owned()]).await?;
    let _ = self.repo.collect(key).await;
    Err(deleted(key))
  }

  /// Refuses a write of a save stamped `ms` that a mark already covers.
  pub(super) fn refuse_deleted(key: &SessionKey, ms: u64, gone: u64) -> Result<()> {
    match gone >= ms && gone > 0 {
      true => Err(deleted(key)),
      false => Ok(()),
    }
  }

  /// The stamp of the session's mark (0: never deleted).
  pub async fn deleted_at(&self, key: &SessionKey) -> Result<u64> {
    Ok(self.listing(key).await?.1)
  }

  /// The newest stamp the bucket knows for the session, from one listing: its newest version's, or its mark's.
  pub async fn newest_stamp(&self, key: &SessionKey) -> Result<u64> {
    let (versions, gone) = self.listing(key).await?;
    Ok(versions.iter().map(|v| v.ms).max().unwrap_or(0).max(gone))
  }

  /// Deletes (with `execute`; else counts) every session's versions a mark covers: left by a writer that died
  /// between its write and its look for the mark.
  pub async fn sweep_deleted(&self, execute: bool) -> Result<Vec<(SessionKey, Collected)>> {
    let mut marks = std::collections::BTreeMap::new();
    let objects = self.tier.list_before("", crate::incremental::WORK_PREFIX).await?;
    for object in &objects {
      if let Some((session, stamp)) = mark_in(object) {
        let mark = marks.entry(session).or_insert(0);
        *mark = stamp.max(*mark);
      }
    }
    let mut swept: std::collections::BTreeMap<SessionKey, (Vec<String>, Collected)> = Default::default();
    for (session, version) in objects.into_iter().filter_map(parse_version) {
      if marks.get(&session).is_some_and(|&gone| version.ms <= gone) {
        let entry = swept.entry(session).or_default();
        entry.1.objects += 1;
        entry.1.bytes += version.size;
        entry.0.push(version.key);
      }
    }
    let mut out = Vec::new();
    for (session, (keys, counted)) in swept {
      if execute {
        self.tier.delete(&keys).await?;
        let _ = self.repo.collect(&session).await;
      }
      out.push((session, counted));
    }
    Ok(out)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn mark_names() {
    assert_eq!(stamp_of("1764000000000.gone"), Some(1_764_000_000_000));
    for bad in ["176400000000.gone", "1764000000000.gonee", "1764000000000-0a1b2c3d.wwrs", "x.gone"] {
      assert_eq!(stamp_of(bad), None, "{bad}");
    }
  }
}
