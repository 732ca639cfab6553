//! Incremental versions in an object tier:
//!
//! - `<session>/<ms:013>-<hash8>.wwmf`: one manifest per version, beside whole-archive versions, written after its
//!   pack is durable; it names, for every chunk it needs, the pack that holds it and where;
//! - `~/<session>/packs/<blake3>`: the chunks one backup added, one object after another (restic's pack files:
//!   a backup is one PUT however many chunks changed, a restore one GET per pack, not per chunk);
//! - `~/<session>/locks/<backup|prune>-<ms>-<rand>`: who is working on the session;
//! - `~/<session>/damaged/<pack>.<chunk>`: chunk copies found damaged, never reused (`damage`).
//!
//! Packs and locks live apart, under `~/` (no session name holds a `~`, and `~` sorts after every character a
//! name may hold), so listing versions, one session's or every session's, never pages through them. A pack is
//! deleted once no manifest reads from it; a backup packs again the chunks of a pack the newest version uses for
//! less than half its bytes, so every pack the newest version reads is at least half live.
//!
//! Collecting unreferenced packs must never race a backup that is about to reference one it found in the
//! listing. Both sides write their lock first and then list the locks, so of two that overlap at least one
//! sees the other: a backup that sees a prune waits for it, a prune that sees anyone else skips this round.
//! Holders rewrite their locks (a heartbeat); the lock of a process that died or stalled goes stale within a few
//! heartbeats and is then ignored and removed, and a holder that stalled steps down on its own clock (`locks`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

mod damage;
mod locks;

use self::damage::Copy;
pub use self::damage::Repaired;
use self::locks::{lock_time, locks_prefix, parse_lock, stale, Held, LockKind, WAIT_FOR_PRUNE};
use super::chunks::{ChunkCodec, ChunkId};
use super::manifest::{plan, rebuild, Location, Manifest};
use crate::archive::{Entry, Keyring};
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{ObjectMeta, ObjectTier};

/// A manifest's file extension: versions are `<session>/<ms:013>-<hash8>.wwmf`.
pub const MANIFEST_EXT: &str = ".wwmf";
/// Downloads in flight per restore: a restore is one GET per pack, and object stores serve many at once.
const PARALLEL_READS: usize = 32;

/// What one incremental backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
  pub new_chunks: u32,
  /// Chunk objects plus the manifest.
  pub uploaded_bytes: u64,
}

/// What a collection of unreferenced packs did; `skipped` when another process was working on the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
  /// Packs (and stray objects) deleted, or that would be.
  pub objects: usize,
  pub bytes: u64,
  pub skipped: bool,
}

/// What a backup knows of the chunks already stored.
#[derive(Debug, Default)]
struct Known {
  /// Reused where they are.
  reuse: HashMap<ChunkId, Location>,
  /// Stored, but in a pack mostly dead: packed again, apart from fresh chunks.
  moved: HashSet<ChunkId>,
  /// Found damaged by a restore: packed afresh.
  suspects: HashSet<ChunkId>,
}

/// An object as a listing shows it: key, size, modified.
type ListedObject = (String, u64, u64);

/// Incremental versions of sessions in one object tier.
#[derive(Debug)]
pub struct Repo {
  tier: Arc<dyn ObjectTier>,
  keys: Option<Arc<Keyring>>,
  level: i32,
  /// The chunk ids of manifests already read, by (key, size, modified): manifests change only by key rotation.
  references: Mutex<HashMap<ListedObject, Arc<Vec<String>>>>,
  /// Chunks restores found damaged, by session: the next backup uploads them afresh instead of reusing them.
  suspects: Mutex<HashMap<String, HashSet<ChunkId>>>,
}

/// Where chunks and locks begin: every version key sorts before it.
pub const WORK_PREFIX: &str = "~/";

fn work_prefix(session: &SessionKey) -> String {
  format!("{WORK_PREFIX}{session}/")
}

/// A deleted session's mark, `<session>/<stamp>.gone` (see `backup::tombstone`).
pub const DELETED_EXT: &str = ".gone";

pub fn packs_prefix(session: &SessionKey) -> String {
  format!("{WORK_PREFIX}{session}/packs/")
}

impl Repo {
  pub fn new(tier: Arc<dyn ObjectTier>, keys: Option<Arc<Keyring>>, level: i32) -> Self {
    Self { tier, keys, level, references: Mutex::default(), suspects: Mutex::default() }
  }

  /// Writes `entries` as a version of `session` at `manifest_key`: the chunks the tier lacks, then the
  /// manifest, under a backup lock.
  pub async fn write(
    &self,
    session: &SessionKey,
    manifest_key: &str,
    entries: Vec<Entry>,
    created_ms: u64,
    source_bytes: u64,
  ) -> Result<Written> {
    let lock = self.lock_for_backup(session).await?;
    let written = self.write_locked(session, &lock, manifest_key, entries, created_ms, source_bytes).await;
    lock.release(self.tier.as_ref()).await;
    written
  }

  async fn write_locked(
    &self,
    session: &SessionKey,
    lock: &Held,
    manifest_key: &str,
    entries: Vec<Entry>,
    created_ms: u64,
    source_bytes: u64,
  ) -> Result<Written> {
    let known = self.known_chunks(session).await?;
    let suspects = known.suspects.clone();
    let (keys, level, name) = (self.keys.clone(), self.level, session.to_string());
    let (plan, sealed) = blocking::run(move || {
      let codec = ChunkCodec { keys: keys.as_deref(), session: &name, level };
      let plan = plan(&codec, created_ms, source_bytes, &entries, &known.reuse, &known.moved)?;
      let sealed = plan.manifest.seal(keys.as_deref())?;
      Ok((plan, sealed))
    })
    .await?;
    let uploaded_bytes = plan.manifest.uploaded_bytes + sealed.len() as u64;
    self.commit(session, lock, plan.packs, manifest_key, sealed).await?;
    // The damaged chunks it knew of were packed afresh: the newest version now locates whole copies.
    if let Some(left) = self.suspects.lock().unwrap().get_mut(session.as_str()) {
      left.retain(|id| !suspects.contains(id));
    }
    Ok(Written { new_chunks: plan.manifest.new_chunks, uploaded_bytes })
  }

  /// Puts the packs, then (unless the lock lapsed or a prune began meanwhile) the manifest: a manifest that
  /// exists names only packs that do.
  async fn commit(
    &self,
    session: &SessionKey,
    lock: &Held,
    packs: Vec<(String, Vec<u8>)>,
    manifest_key: &str,
    sealed: Vec<u8>,
  ) -> Result<()> {
    for (id, pack) in packs {
      self.tier.put(&format!("{}{id}", packs_prefix(session)), pack).await?;
    }
    // A backup that stalled past its deadline may look stale to a prune, which could then have collected packs
    // it counted on (`ERR_BACKUP_LOCK_LOST`: nothing committed, the next backup starts afresh); a prune (a
    // logout, past its wait) that began meanwhile may have deleted packs this version reuses.
    if lock.confirm(self, session).await?.contains(&LockKind::Prune) {
      return Err(StoreError::BackupBusy(session.to_string()));
    }
    // Last: a manifest that exists names only packs that do.
    self.tier.put(manifest_key, sealed).await
  }

  /// What a backup may reuse: the chunks of the newest version sealed under the current key (the newest of all,
  /// except during a key rotation, when chunk names change with the key) whose pack is listed (checked against the
  /// tier every time, whatever a cache believed) and that no read found damaged (in this process, or marked in the
  /// bucket by any). Chunks of a pack that version
  /// uses for less than half its bytes are moved: packed again (in a pack of their own, so fresh data dying fast
  /// does not drag them along next time), so the old pack stops being read and goes with the versions that still
  /// read it. Every pack the newest version reads is thus at least half live.
  async fn known_chunks(&self, session: &SessionKey) -> Result<Known> {
    let stored = self.stored(session).await?;
    let packs = &stored.packs;
    let versions = self.tier.list_children(&format!("{session}/")).await?;
    let current = self.keys.as_deref().map(|k| k.current().id_hex());
    let mut found = None;
    for object in versions.iter().rev().filter(|o| is_manifest(session, &o.key)) {
      let Some(bytes) = self.tier.get(&object.key).await? else { continue };
      if Manifest::key_id(&bytes) != current {
        continue;
      }
      // Unreadable (damaged, newer): upload everything afresh rather than trust it.
      match Manifest::open(&bytes, self.keys.as_deref(), session.as_str()) {
        Ok(manifest) => found = Some(manifest),
        Err(StoreError::ArchiveCorrupt(_) | StoreError::ArchiveVersion { .. } | StoreError::Decrypt(_)) => {}
        Err(err) => return Err(err),
      }
      break;
    }
    let Some(manifest) = found else { return Ok(Known::default()) };
    let mut live: HashMap<&str, u64> = HashMap::new();
    for location in manifest.locations.values() {
      let bytes = live.entry(location.pack.as_str()).or_default();
      *bytes = bytes.saturating_add(location.len);
    }
    let half_live = |pack: &str| live.get(pack).copied().unwrap_or(0).saturating_mul(2) >= packs[pack];
    let suspects = self.suspects.lock().unwrap().get(session.as_str()).cloned().unwrap_or_default();
    let mut known = Known { suspects: suspects.clone(), ..Known::default() };
    for (id, location) in &manifest.locations {
      if suspects.contains(id) || stored.bad(id, location) {
        continue;
      }
      match half_live(&location.pack) {
        true => drop(known.reuse.insert(id.clone(), location.clone())),
        false => drop(known.moved.insert(id.clone())),
      }
    }
    Ok(known)
  }

  /// The manifest at `key`, `None` if it is gone.
  pub async fn manifest(&self, session: &SessionKey, key: &str) -> Result<Option<Manifest>> {
    let Some(bytes) = self.tier.get(key).await? else { return Ok(None) };
    Manifest::open(&bytes, self.keys.as_deref(), session.as_str()).map(Some)
  }

  /// The entries of a version: its packs fetched (32 at a time), every chunk cut out and checked against its name.
  pub async fn rebuild(&self, session: &SessionKey, manifest: Manifest) -> Result<Vec<Entry>> {
    let prefix = packs_prefix(session);
    let wanted: Vec<String> = manifest.packs().into_iter().map(str::to_owned).collect();
    let packs: HashMap<String, Vec<u8>> = futures::stream::iter(wanted)
      .map(|id| {
        let key = format!("{prefix}{id}");
        async move {
          let pack = self.tier.get(&key).await?;
          let pack = pack.ok_or_else(|| StoreError::ArchiveCorrupt(format!("pack {id} is missing")))?;
          Ok::<_, StoreError>((id, pack))
        }
      })
      .buffer_unordered(PARALLEL_READS)
      .try_collect()
      .await?;
    let (keys, level, name) = (self.keys.clone(), self.level, session.to_string());
    let decoded = blocking::run(move || {
      let codec = ChunkCodec { keys: keys.as_deref(), session: &name, level };
      let (mut chunks, mut bad): (_, Vec<Copy>) = (HashMap::new(), Vec::new());
      for (id, at) in &manifest.locations {
        let object = usize::try_from(at.offset)
          .ok()
          .zip(usize::try_from(at.len).ok())
          .and_then(|(offset, len)| packs.get(&at.pack)?.get(offset..offset.checked_add(len)?));
        let decoded = match object {
          Some(object) => codec.decode(object, id),
          None => Err(StoreError::ArchiveCorrupt(format!("chunk {id} lies outside its pack"))),
        };
        match decoded {
          Ok(bytes) => drop(chunks.insert(id.clone(), bytes)),
          Err(StoreError::ArchiveCorrupt(_)) => bad.push((at.pack.clone(), id.clone())),
          Err(err) => return Err(err),
        }
      }
      if bad.is_empty() {
        let missing = |id: &str| StoreError::ArchiveCorrupt(format!("chunk {id} has no location"));
        return rebuild(&manifest, |id| chunks.get(id).cloned().ok_or_else(|| missing(id))).map(Ok);
      }
      Ok(Err(bad))
    })
    .await?;
    match decoded {
      Ok(entries) => Ok(entries),
      Err(bad) => {
        // Nothing is deleted (other chunks of the pack may be whole, and a backup may be reading it): the copies
        // are marked in the bucket (and remembered here, should the mark fail), so no backup of this session, in
        // any process, reuses them; the next one uploads these chunks afresh.
        let ids: Vec<&str> = bad.iter().map(|(_, id)| id.as_str()).collect();
        let message = format!("{} chunk(s) of this version are damaged: {}", bad.len(), ids.join(", "));
        self.mark_damaged(session, &bad).await;
        let ids = bad.into_iter().map(|(_, id)| id);
        self.suspects.lock().unwrap().entry(session.to_string()).or_default().extend(ids);
        Err(StoreError::ArchiveCorrupt(message))
      }
    }
  }

  /// Deletes the chunks of `session` that no manifest references, chunks a restore found damaged (fetched again
  /// and still damaged), and stale locks, under a prune lock; skips (and says so) while another process works on
  /// the session. A manifest that cannot be read stops it: what it references is unknown. So does a lock that
  /// lapsed (`ERR_BACKUP_LOCK_LOST`: this process stalled, and others may have written since its listing).
  pub async fn collect(&self, session: &SessionKey) -> Result<Collected> {
    let (lock, others) = self.take_lock(session, LockKind::Prune).await?;
    let collected = match others.is_empty() {
      true => self.collect_locked(session, &lock).await,
      false => Ok(Collected { skipped: true, ..Default::default() }),
    };
    lock.release(self.tier.as_ref()).await;
    collected
  }

  /// What `collect` would delete of unreferenced chunks, counted without a lock (so without holding up a backup):
  /// approximate while one runs.
  pub async fn count_unreferenced(&self, session: &SessionKey) -> Result<Collected> {
    let objects = self.objects_of(session).await?;
    Ok(self.unreferenced(session, &objects).await?.1)
  }

  /// The session's versions (directly under it) and its chunks and locks.
  async fn objects_of(&self, session: &SessionKey) -> Result<Vec<ObjectMeta>> {
    let mut objects = self.tier.list_children(&format!("{session}/")).await?;
    objects.extend(self.tier.list(&work_prefix(session)).await?);
    Ok(objects)
  }

  /// The keys of the session's packs no listed manifest references, with the damage marks of those packs (and
  /// anything else under its work prefix that is neither a pack, a mark nor a lock), with their count and bytes.
  async fn unreferenced(&self, session: &SessionKey, objects: &[ObjectMeta]) -> Result<(Vec<String>, Collected)> {
    let manifests: Vec<&ObjectMeta> = objects.iter().filter(|o| is_manifest(session, &o.key)).collect();
    let mut referenced: HashSet<String> = HashSet::new();
    for manifest in &manifests {
      referenced.extend(self.references(session, manifest).await?.iter().cloned());
    }
    self.forget_references(session, &manifests);
    let (work, packs_at, locks_at) = (work_prefix(session), packs_prefix(session), locks_prefix(session));
    let (mut doomed, mut collected) = (Vec::new(), Collected::default());
    let marks_at = damage::damage_prefix(session);
    let pack_of = |key: &str| match key.strip_prefix(&marks_at) {
      Some(mark) => damage::parse_mark(mark).map(|(pack, _)| pack),
      None => key.strip_prefix(&packs_at).map(str::to_owned),
    };
    for object in objects.iter().filter(|o| o.key.starts_with(&work) && !o.key.starts_with(&locks_at)) {
      if pack_of(&object.key).is_none_or(|id| !referenced.contains(&id)) {
        doomed.push(object.key.clone());
        collected.objects += 1;
        collected.bytes += object.size;
      }
    }
    Ok((doomed, collected))
  }

  /// Stale locks first (so a holder that resumes finds its lock gone), then the doomed packs, each step only
  /// while this process still holds its lock (`Held::confirm`, by its own clock and the listing) and nobody else
  /// works on the session. A prune that stalled and resumed stops with `ERR_BACKUP_LOCK_LOST` before deleting
  /// more: what it would have deleted was judged on a listing older than the backups that ran meanwhile.
  async fn collect_locked(&self, session: &SessionKey, lock: &Held) -> Result<Collected> {
    let objects = self.objects_of(session).await?;
    // Removed by a taker: this process stalled, and its view of the bucket may be older than others' writes.
    let Ok(now) = lock_time(self.tier.kind(), &objects, &lock.key) else { return Err(lock.lost(session)) };
    let (doomed, collected) = self.unreferenced(session, &objects).await?;
    let locks_at = locks_prefix(session);
    let stale_locks: Vec<String> = objects
      .iter()
      .filter(|o| o.key.starts_with(&locks_at) && o.key != lock.key)
      .filter(|o| parse_lock(o).is_none_or(|(_, at)| stale(at, now)))
      .map(|o| o.key.clone())
      .collect();
    let skipped = Collected { skipped: true, ..Default::default() };
    for batch in std::iter::once(&stale_locks[..]).chain(doomed.chunks(1000)).filter(|b| !b.is_empty()) {
      // Whoever came meanwhile wins.
      if !lock.confirm(self, session).await?.is_empty() {
        return Ok(skipped);
      }
      self.tier.delete(batch).await?;
    }
    Ok(collected)
  }

  /// Drops what is remembered of the session's manifests that are no longer listed (pruned), so the memory
  /// stays bounded by the kept versions.
  fn forget_references(&self, session: &SessionKey, listed: &[&ObjectMeta]) {
    let prefix = format!("{session}/");
    let keep: HashSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    self.references.lock().unwrap().retain(|(key, _, _), _| !key.starts_with(&prefix) || keep.contains(key.as_str()));
  }

  /// The packs a listed manifest reads from (remembered: a manifest never changes under its name).
  async fn references(&self, session: &SessionKey, object: &ObjectMeta) -> Result<Arc<Vec<String>>> {
    let cache_key = (object.key.clone(), object.size, object.modified_ms);
    if let Some(ids) = self.references.lock().unwrap().get(&cache_key) {
      return Ok(ids.clone());
    }
    let manifest = self.manifest(session, &object.key).await?;
    let ids: Arc<Vec<String>> =
      Arc::new(manifest.map(|m| m.packs().into_iter().map(str::to_owned).collect()).unwrap_or_default());
    self.references.lock().unwrap().insert(cache_key, ids.clone());
    Ok(ids)
  }

  /// The session's packs and their stored sizes.
  pub async fn pack_sizes(&self, session: &SessionKey) -> Result<HashMap<String, u64>> {
    let prefix = packs_prefix(session);
    let listed = self.tier.list(&prefix).await?;
    Ok(listed.into_iter().filter_map(|o| Some((o.key.strip_prefix(&prefix)?.to_owned(), o.size))).collect())
  }

  /// Sessions that have chunks or locks (whether or not any version is left).
  pub async fn sessions_with_chunks(&self) -> Result<Vec<SessionKey>> {
    let mut found: Vec<SessionKey> = Vec::new();
    for object in self.tier.list(WORK_PREFIX).await? {
      let name = object.key[WORK_PREFIX.len()..].split('/').next().unwrap_or_default();
      if found.last().is_none_or(|last| last.as_str() != name) {
        found.extend(SessionKey::parse(name).ok());
      }
    }
    Ok(found)
  }

  /// Every object of the session (versions of either format, chunks, locks). Under a prune lock, after waiting
  /// (up to `WAIT_FOR_PRUNE`) for backups in flight to finish, so none commits a manifest over deleted chunks;
  /// a logout goes ahead after the wait all the same.
  pub async fn delete_all(&self, session: &SessionKey) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_PRUNE;
    loop {
      let (lock, others) = self.take_lock(session, LockKind::Prune).await?;
      if others.is_empty() || tokio::time::Instant::now() >= deadline {
        let deleted = self.delete_objects(session).await;
        lock.release(self.tier.as_ref()).await;
        return deleted;
      }
      lock.release(self.tier.as_ref()).await;
      tokio::time::sleep(Duration::from_millis(250)).await;
    }
  }

  /// Every object but the delete's mark (`DELETED_EXT`), which must outlive the versions it covers.
  async fn delete_objects(&self, session: &SessionKey) -> Result<()> {
    let objects = self.tier.list(&format!("{session}/")).await?;
    let mut keys: Vec<String> = objects.into_iter().map(|o| o.key).filter(|k| !k.ends_with(DELETED_EXT)).collect();
    keys.extend(self.tier.list(&work_prefix(session)).await?.into_iter().map(|o| o.key));
    match keys.is_empty() {
      true => Ok(()),
      false => self.tier.delete(&keys).await,
    }
  }
}

/// `<session>/<name>.wwmf`, directly under the session.
fn is_manifest(session: &SessionKey, key: &str) -> bool {
  key
    .strip_prefix(session.as_str())
    .and_then(|r| r.strip_prefix('/'))
    .is_some_and(|n| !n.contains('/') && n.ends_with(MANIFEST_EXT))
}
