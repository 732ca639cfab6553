//! Chunks known damaged, kept in the bucket so the knowledge outlives the process that found it:
//! `~/<session>/damaged/<pack>.<chunk>`, an empty object per chunk copy (a pack and a chunk in it) that a restore,
//! a `verify` or a prune's read-back found failing its check. A backup never reuses a marked copy (it packs the
//! chunk afresh, so the new version reads whole); a repair puts a whole copy beside it from the primary's data.
//! A mark is collected with its pack: once no version reads the pack, neither is needed.
//!
//! Marked per copy, not per chunk: once a chunk is packed afresh, the new copy is whole and reused again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::locks::Held;
use super::{packs_prefix, work_prefix, Repo};
use crate::archive::{Data, Entry};
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::incremental::chunks::{split, ChunkCodec, ChunkId};
use crate::incremental::manifest::{Location, Manifest};
use crate::session::SessionKey;
use crate::tier::ObjectMeta;

/// A chunk copy: (pack, chunk).
pub(super) type Copy = (String, ChunkId);

pub(super) fn damage_prefix(session: &SessionKey) -> String {
  format!("{}damaged/", work_prefix(session))
}

/// `<pack>.<chunk>` → the copy it marks.
pub(super) fn parse_mark(name: &str) -> Option<Copy> {
  let (pack, chunk) = name.split_once('.')?;
  let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
  (hex(pack) && hex(chunk)).then(|| (pack.to_owned(), chunk.to_owned()))
}

/// What a listing of a session's work prefix says of its chunks: its packs (id → size) and the marked copies.
#[derive(Debug, Default)]
pub(super) struct Stored {
  pub packs: HashMap<String, u64>,
  pub damaged: HashSet<Copy>,
}

impl Stored {
  pub fn from_listing(session: &SessionKey, objects: &[ObjectMeta]) -> Self {
    let (packs_at, marks_at) = (packs_prefix(session), damage_prefix(session));
    let mut stored = Self::default();
    for object in objects {
      if let Some(id) = object.key.strip_prefix(&packs_at) {
        stored.packs.insert(id.to_owned(), object.size);
      } else if let Some(copy) = object.key.strip_prefix(&marks_at).and_then(parse_mark) {
        stored.damaged.insert(copy);
      }
    }
    stored
  }

  /// Whether the copy at `location` is known unreadable: marked, or its pack is gone.
  pub fn bad(&self, id: &str, location: &Location) -> bool {
    !self.packs.contains_key(&location.pack) || self.damaged.contains(&(location.pack.clone(), id.to_owned()))
  }

  /// The chunks of `manifest` known unreadable.
  pub fn bad_in(&self, manifest: &Manifest) -> HashSet<ChunkId> {
    manifest.locations.iter().filter(|(id, at)| self.bad(id, at)).map(|(id, _)| id.clone()).collect()
  }
}

/// What a repair did to one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
  /// Nothing known damaged in it.
  Whole,
  /// Its damaged chunks were packed afresh from the given data; the version now has this key.
  Rewritten { key: String, chunks: usize },
  /// Some damaged chunks are not in the given data (the primary moved on): left as it was.
  Missing { chunks: usize },
}

impl Repo {
  /// The session's packs and marks, from one listing.
  pub(super) async fn stored(&self, session: &SessionKey) -> Result<Stored> {
    Ok(Stored::from_listing(session, &self.tier.list(&work_prefix(session)).await?))
  }

  /// Marks copies found damaged. Best effort: a failed mark is found again by the next read.
  pub(super) async fn mark_damaged(&self, session: &SessionKey, copies: &[Copy]) {
    let at = damage_prefix(session);
    for (pack, id) in copies {
      let _ = self.tier.put(&format!("{at}{pack}.{id}"), Vec::new()).await;
    }
  }

  /// Whether the version at `manifest_key` reads a copy known damaged (or a pack that is gone); `false` for one
  /// gone or unreadable itself (nothing to say of its chunks).
  pub async fn known_damaged(&self, session: &SessionKey, manifest_key: &str) -> Result<bool> {
    let Ok(Some(manifest)) = self.manifest(session, manifest_key).await else { return Ok(false) };
    Ok(!self.stored(session).await?.bad_in(&manifest).is_empty())
  }

  /// Packs afresh, from `entries` (the primary's copy), the chunks of the version at `manifest_key` known
  /// damaged, and writes the version again under `new_key` (same time, its own name: a manifest never changes
  /// under its name), then deletes the old manifest. Under a backup lock, like a backup.
  pub async fn repair(
    &self,
    session: &SessionKey,
    manifest_key: &str,
    new_key: impl FnOnce(&[u8]) -> String,
    entries: Arc<Vec<Entry>>,
  ) -> Result<Repaired> {
    let lock = self.lock_for_backup(session).await?;
    let repaired = self.repair_locked(session, &lock, manifest_key, new_key, entries).await;
    lock.release(self.tier.as_ref()).await;
    repaired
  }

  async fn repair_locked(
    &self,
    session: &SessionKey,
    lock: &Held,
    manifest_key: &str,
    new_key: impl FnOnce(&[u8]) -> String,
    entries: Arc<Vec<Entry>>,
  ) -> Result<Repaired> {
    let Some(mut manifest) = self.manifest(session, manifest_key).await? else { return Ok(Repaired::Whole) };
    let bad = self.stored(session).await?.bad_in(&manifest);
    if bad.is_empty() {
      return Ok(Repaired::Whole);
    }
    let (keys, level, name) = (self.keys.clone(), self.level, session.to_string());
    let wanted = bad.clone();
    let (pack, members) = blocking::run(move || {
      let codec = ChunkCodec { keys: keys.as_deref(), session: &name, level };
      let (mut pack, mut members) = (Vec::new(), Vec::new());
      for entry in entries.iter() {
        let Data::File(bytes) = &entry.data else { continue };
        for (at, len) in split(bytes) {
          let id = codec.id(&bytes[at..at + len]);
          if wanted.contains(&id) && !members.iter().any(|(m, _, _)| m == &id) {
            let object = codec.encode(&id, &bytes[at..at + len])?;
            members.push((id, pack.len() as u64, object.len() as u64));
            pack.extend_from_slice(&object);
          }
        }
      }
      Ok::<_, StoreError>((pack, members))
    })
    .await?;
    if members.len() < bad.len() {
      return Ok(Repaired::Missing { chunks: bad.len() - members.len() });
    }
    let pack_id = blake3::hash(&pack).to_hex().to_string();
    for (id, offset, len) in members {
      manifest.locations.insert(id, Location { pack: pack_id.clone(), offset, len });
    }
    let sealed = manifest.seal(self.keys.as_deref())?;
    let key = new_key(&sealed);
    self.commit(session, lock, vec![(pack_id, pack)], &key, sealed).await?;
    if key != manifest_key {
      self.tier.delete(&[manifest_key.to_owned()]).await?;
    }
    Ok(Repaired::Rewritten { key, chunks: bad.len() })
  }
}
