//! What each backup version of a session holds, by header: lets the store place a primary copy in the
//! session's backup history, and a new version among the others, without trusting any writer's clock.

use super::{Backups, Version};
use crate::archive::{self, Header};
use crate::error::{Result, StoreError};
use crate::session::SessionKey;

/// Where a new version of a save stamped `stamp` goes among `versions` (oldest first).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Place {
  /// Named by its stamp.
  At(u64),
  /// The same save is there already: nothing to write.
  Held(String),
  /// The same save is there, in a version that reads a chunk known damaged: written again at its time, under a
  /// name of its own, and then the damaged one goes.
  Replace(u64, String),
}

impl Backups {
  /// The header of every version, oldest first (`None` for one gone or unreadable since the listing). An
  /// incremental version's comes from its manifest, with the fields that name its save.
  pub async fn headers(&self, key: &SessionKey) -> Result<Vec<Option<Header>>> {
    let mut out = Vec::new();
    for version in self.versions(key).await? {
      out.push(self.header(key, &version).await?);
    }
    Ok(out)
  }

  /// One version's header; `None` when it is gone or does not read.
  pub(super) async fn header(&self, key: &SessionKey, version: &Version) -> Result<Option<Header>> {
    Ok(match version.incremental {
      // A bucket that did not answer is an error, not a version that does not read (as for whole versions below).
      true => match self.repo.manifest(key, &version.key).await {
        Err(err @ (StoreError::Backend { .. } | StoreError::TierUnavailable { .. })) => return Err(err),
        read => read.ok().flatten(),
      }
      .map(|m| Header {
        version: archive::FORMAT_VERSION,
        flags: archive::FLAG_ZIP,
        entries: m.entries.len() as u32,
        files_bytes: m.files_bytes(),
        source_bytes: m.source_bytes,
        created_ms: m.created_ms,
        payload_len: 0,
      }),
      false => match self.tier.head(&version.key, archive::HEADER_LEN).await? {
        Some(head) => archive::peek(&head).ok(),
        None => None,
      },
    })
  }

  /// A version's name carries the stamp of the save it holds, so name order is save order however late the
  /// backup is written (a slow backup of an older save lands among the older versions, never after a newer
  /// one). Only when a version already sorts at or after the stamp is its header read: the same save is not
  /// written twice, and a version named before stamps were names (a writer's time bumped past the newest
  /// name) whose save is older is followed, not preceded.
  pub(super) async fn place(&self, key: &SessionKey, versions: &[Version], save: &Header) -> Result<Place> {
    let stamp = save.created_ms;
    for version in versions.iter().rev().take_while(|v| v.ms >= stamp) {
      let Some(held) = self.header(key, version).await? else { continue };
      if held.same_save(save) {
        if version.incremental && self.repo.known_damaged(key, &version.key).await? {
          return Ok(Place::Replace(version.ms, version.key.clone()));
        }
        return Ok(Place::Held(version.key.clone()));
      }
    }
    let Some(newest) = versions.last().filter(|v| v.ms >= stamp) else { return Ok(Place::At(stamp)) };
    match self.header(key, newest).await? {
      // A later save is the newest: this one goes among the older versions, at its stamp.
      Some(held) if held.created_ms > stamp => Ok(Place::At(stamp)),
      // A legacy name bumped past this save's stamp: after it.
      Some(_) => Ok(Place::At(newest.ms + 1)),
      // Gone since the listing (a logout, a prune) or unreadable: it orders nothing, and the save goes at its stamp.
      // Named after a version a logout just deleted, a late backup of a logged-out save would sort past the
      // logout's mark and come back (found by the backup model, seed 1426).
      None => Ok(Place::At(stamp)),
    }
  }
}
