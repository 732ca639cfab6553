//! Damaged versions: a prune never deletes the newest version that reads whole, and a repair packs afresh, from
//! the primary's copy, the chunks of each version known damaged (marked in the bucket by the read that found
//! them: `incremental::repo::damage`).

use std::sync::Arc;

use super::{session_of, Backups, Version};
use crate::archive;
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::incremental::{Repaired, MANIFEST_EXT};
use crate::session::SessionKey;

impl Backups {
  /// The newest of `versions` that reads back whole, read newest first (each chunk checked against its name, so a
  /// damaged chunk a new version reused is found here, and marked, before an older whole version is pruned).
  /// `written` is the whole archive just checked and written: it is not read again. An error that says nothing
  /// of the bytes (an unreachable tier, a missing key) stops the search.
  pub(super) async fn newest_readable<'a>(
    &self,
    versions: &'a [Version],
    written: &str,
  ) -> Result<Option<&'a Version>> {
    for version in versions.iter().rev() {
      if !version.incremental && version.key == written {
        return Ok(Some(version));
      }
      let bytes = match self.read(version).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) | Err(StoreError::ArchiveCorrupt(_) | StoreError::ArchiveLimit(_)) => continue,
        Err(err) => return Err(err),
      };
      let (keys, limits, session) = (self.pack.keys.clone(), self.pack.limits, session_of(version)?);
      let check = blocking::run(move || archive::check(&bytes, keys.as_deref(), &limits, session.as_str())).await;
      match check {
        Ok(_) => return Ok(Some(version)),
        Err(StoreError::ArchiveCorrupt(_) | StoreError::ArchiveLimit(_)) => continue,
        Err(err) => return Err(err),
      }
    }
    Ok(None)
  }

  /// Repairs every incremental version of `key` that reads a chunk known damaged, with the chunks of `sealed`
  /// (the primary's copy): each such version is written again at its time, whole, when the primary still holds
  /// every chunk it lacks. Returns each version looked at and what became of it.
  pub async fn repair(&self, key: &SessionKey, sealed: Vec<u8>) -> Result<Vec<(String, Result<Repaired>)>> {
    let (keys, limits, session) = (self.pack.keys.clone(), self.pack.limits, key.clone());
    let (_, entries) =
      blocking::run(move || archive::read_entries(&sealed, keys.as_deref(), &limits, session.as_str())).await?;
    let entries = Arc::new(entries);
    let mut done = Vec::new();
    for version in self.versions(key).await?.into_iter().filter(|v| v.incremental) {
      let name =
        |manifest: &[u8]| format!("{key}/{:013}-{}{MANIFEST_EXT}", version.ms, &blake3::hash(manifest).to_hex()[..8]);
      let repaired = match self.repo.repair(key, &version.key, name, entries.clone()).await {
        // A logout that deleted the session meanwhile is not undone.
        Ok(Repaired::Rewritten { key: written, chunks }) => {
          match self.unless_deleted(key, &written, version.ms).await {
            Ok(()) => Ok(Repaired::Rewritten { key: written, chunks }),
            Err(err) => Err(err),
          }
        }
        other => other,
      };
      if repaired.as_ref().is_ok_and(|r| *r == Repaired::Whole) {
        continue;
      }
      done.push((version.key, repaired));
    }
    Ok(done)
  }
}
