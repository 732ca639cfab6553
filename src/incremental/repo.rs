//! Incremental versions in an object tier:
//!
//! - `<session>/<ms:013>-<hash8>.wwmf`: one manifest per version, beside whole-archive versions, written after all
//!   its chunks are durable;
//! - `~/<session>/chunks/<id>`: chunk objects, shared by every version that has the same bytes;
//! - `~/<session>/locks/<backup|prune>-<ms>-<rand>`: who is working on the session.
//!
//! Chunks and locks live apart, under `~/` (no session name holds a `~`, and `~` sorts after every character a
//! name may hold), so listing versions, one session's or every session's, never pages through chunks.
//!
//! Collecting unreferenced chunks must never race a backup that is about to reference one it found in the
//! listing. Both sides write their lock first and then list the locks, so of two that overlap at least one
//! sees the other: a backup that sees a prune waits for it, a prune that sees anyone else skips this round.
//! Locks of crashed processes go stale after a while and are then ignored and removed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use futures::{StreamExt, TryStreamExt};

use super::chunks::{ChunkCodec, ChunkId};
use super::manifest::{plan, rebuild, Manifest};
use crate::archive::{Entry, Keyring};
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{ObjectMeta, ObjectTier};

/// A manifest's file extension: versions are `<session>/<ms:013>-<hash8>.wwmf`.
pub const MANIFEST_EXT: &str = ".wwmf";
/// Uploads in flight per backup (a backup carries a few chunks; many sessions back up at once).
const PARALLEL: usize = 8;
/// Downloads in flight per restore: a restore is one GET per chunk, and object stores serve many at once.
const PARALLEL_READS: usize = 32;
/// A backup's lock outlives any sane backup of one session; a prune's is short (a listing and some deletes).
const STALE_BACKUP: Duration = Duration::from_secs(3600);
const STALE_PRUNE: Duration = Duration::from_secs(300);
/// How long a backup waits for a prune of its session before giving up with `ERR_BACKUP_BUSY`.
const WAIT_FOR_PRUNE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockKind {
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
fn parse_lock(object: &ObjectMeta) -> Option<(LockKind, u64)> {
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
fn stale(kind: LockKind, at_ms: u64, now: u64) -> bool {
  let limit = match kind {
    LockKind::Backup => STALE_BACKUP,
    LockKind::Prune => STALE_PRUNE,
  };
  now.saturating_sub(at_ms) > limit.as_millis() as u64
}

/// What one incremental backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
  pub new_chunks: u32,
  /// Chunk objects plus the manifest.
  pub uploaded_bytes: u64,
}

/// What a collection of unreferenced chunks did; `skipped` when another process was working on the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
  pub chunks: usize,
  pub bytes: u64,
  pub skipped: bool,
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
  references: Mutex<HashMap<ListedObject, Arc<Vec<ChunkId>>>>,
  /// Chunks restores found damaged, by session: the next collection checks them again and deletes them.
  suspects: Mutex<HashMap<String, HashSet<ChunkId>>>,
}

/// Where chunks and locks begin: every version key sorts before it.
pub const WORK_PREFIX: &str = "~/";

fn work_prefix(session: &SessionKey) -> String {
  format!("{WORK_PREFIX}{session}/")
}

pub fn chunks_prefix(session: &SessionKey) -> String {
  format!("{WORK_PREFIX}{session}/chunks/")
}

fn locks_prefix(session: &SessionKey) -> String {
  format!("{WORK_PREFIX}{session}/locks/")
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
    let started = tokio::time::Instant::now();
    let lock = self.lock_for_backup(session).await?;
    let written = self.write_locked(session, manifest_key, entries, created_ms, source_bytes, started).await;
    let _ = self.tier.delete(&[lock]).await; // a lock left behind goes stale; it only delays a prune
    written
  }

  async fn write_locked(
    &self,
    session: &SessionKey,
    manifest_key: &str,
    entries: Vec<Entry>,
    created_ms: u64,
    source_bytes: u64,
    started: tokio::time::Instant,
  ) -> Result<Written> {
    let prefix = chunks_prefix(session);
    // Verified against the tier every time: the listing is what exists, whatever any cache believed.
    let known: HashSet<ChunkId> = self
      .tier
      .list(&prefix)
      .await?
      .into_iter()
      .filter_map(|o| o.key.strip_prefix(&prefix).map(str::to_owned))
      .collect();
    let (keys, level, name) = (self.keys.clone(), self.level, session.to_string());
    let (plan, sealed) = blocking::run(move || {
      let codec = ChunkCodec { keys: keys.as_deref(), session: &name, level };
      let plan = plan(&codec, created_ms, source_bytes, &entries, &known)?;
      let sealed = plan.manifest.seal(keys.as_deref())?;
      Ok((plan, sealed))
    })
    .await?;
    let uploaded_bytes = plan.manifest.uploaded_bytes + sealed.len() as u64;
    futures::stream::iter(plan.new_chunks)
      .map(|(id, object)| {
        let key = format!("{prefix}{id}");
        async move { self.tier.put(&key, object).await }
      })
      .buffer_unordered(PARALLEL)
      .try_collect::<Vec<()>>()
      .await?;
    // A backup this slow may look stale to a prune, which could then have collected chunks it counted on.
    if started.elapsed() > STALE_BACKUP / 2 {
      let reason = "the backup outlived half its lock; nothing was committed (the next backup starts afresh)";
      return Err(StoreError::TierUnavailable { tier: self.tier.kind(), reason: reason.into() });
    }
    // Last: a manifest that exists names only chunks that do.
    self.tier.put(manifest_key, sealed).await?;
    Ok(Written { new_chunks: plan.manifest.new_chunks, uploaded_bytes })
  }

  /// Writes a lock, then lists the session's locks: returns the lock and the other fresh ones.
  async fn take_lock(&self, session: &SessionKey, kind: LockKind) -> Result<(String, Vec<LockKind>)> {
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
  async fn other_locks(&self, session: &SessionKey, own: &str) -> Result<Vec<LockKind>> {
    let listed = self.tier.list(&locks_prefix(session)).await?;
    let now = self.lock_time(&listed, own)?;
    let fresh = listed.iter().filter(|o| o.key != own).filter_map(parse_lock);
    Ok(fresh.filter(|(kind, at)| !stale(*kind, *at, now)).map(|(kind, _)| kind).collect())
  }

  /// A backup lock, once no prune of the session runs (waiting up to `WAIT_FOR_PRUNE`).
  async fn lock_for_backup(&self, session: &SessionKey) -> Result<String> {
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

  /// The manifest at `key`, `None` if it is gone.
  pub async fn manifest(&self, session: &SessionKey, key: &str) -> Result<Option<Manifest>> {
    let Some(bytes) = self.tier.get(key).await? else { return Ok(None) };
    Manifest::open(&bytes, self.keys.as_deref(), session.as_str()).map(Some)
  }

  /// The entries of a version, every chunk fetched and checked against its name.
  pub async fn rebuild(&self, session: &SessionKey, manifest: Manifest) -> Result<Vec<Entry>> {
    let prefix = chunks_prefix(session);
    let wanted: HashSet<ChunkId> = manifest.chunk_ids().cloned().collect();
    let objects: HashMap<ChunkId, Vec<u8>> = futures::stream::iter(wanted)
      .map(|id| {
        let key = format!("{prefix}{id}");
        async move {
          let object = self.tier.get(&key).await?;
          let object = object.ok_or_else(|| StoreError::ArchiveCorrupt(format!("chunk {id} is missing")))?;
          Ok::<_, StoreError>((id, object))
        }
      })
      .buffer_unordered(PARALLEL_READS)
      .try_collect()
      .await?;
    let (keys, level, name) = (self.keys.clone(), self.level, session.to_string());
    let decoded = blocking::run(move || {
      let codec = ChunkCodec { keys: keys.as_deref(), session: &name, level };
      let (mut chunks, mut bad) = (HashMap::new(), Vec::new());
      for (id, object) in objects {
        match codec.decode(&object, &id) {
          Ok(bytes) => drop(chunks.insert(id, bytes)),
          Err(StoreError::ArchiveCorrupt(_)) => bad.push(id),
          Err(err) => return Err(err),
        }
      }
      if bad.is_empty() {
        return rebuild(&manifest, |id| Ok(chunks[id].clone())).map(Ok);
      }
      Ok(Err(bad))
    })
    .await?;
    match decoded {
      Ok(entries) => Ok(entries),
      Err(bad) => {
        // Not deleted here (a backup may be uploading a good copy right now): the next collection, under its
        // lock, fetches them again and deletes those still damaged, so a later backup uploads them afresh.
        let message = format!("{} chunk(s) of this version are damaged: {}", bad.len(), bad.join(", "));
        self.suspects.lock().unwrap().entry(session.to_string()).or_default().extend(bad);
        Err(StoreError::ArchiveCorrupt(message))
      }
    }
  }

  /// Deletes the chunks of `session` that no manifest references, chunks a restore found damaged (fetched again
  /// and still damaged), and stale locks, under a prune lock; skips (and says so) while another process works on
  /// the session. A manifest that cannot be read stops it: what it references is unknown.
  pub async fn collect(&self, session: &SessionKey) -> Result<Collected> {
    let started = tokio::time::Instant::now();
    let (lock, others) = self.take_lock(session, LockKind::Prune).await?;
    let collected = match others.is_empty() {
      true => self.collect_locked(session, &lock, started).await,
      false => Ok(Collected { skipped: true, ..Default::default() }),
    };
    let _ = self.tier.delete(&[lock]).await;
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

  /// The keys of chunks no listed manifest references, with their count and bytes.
  async fn unreferenced(&self, session: &SessionKey, objects: &[ObjectMeta]) -> Result<(Vec<String>, Collected)> {
    let manifests: Vec<&ObjectMeta> = objects.iter().filter(|o| is_manifest(session, &o.key)).collect();
    let mut referenced: HashSet<ChunkId> = HashSet::new();
    for manifest in &manifests {
      referenced.extend(self.references(session, manifest).await?.iter().cloned());
    }
    self.forget_references(session, &manifests);
    let chunks_at = chunks_prefix(session);
    let (mut doomed, mut collected) = (Vec::new(), Collected::default());
    for object in objects {
      if object.key.strip_prefix(&chunks_at).is_some_and(|id| !referenced.contains(id)) {
        doomed.push(object.key.clone());
        collected.chunks += 1;
        collected.bytes += object.size;
      }
    }
    Ok((doomed, collected))
  }

  async fn collect_locked(&self, session: &SessionKey, lock: &str, started: tokio::time::Instant) -> Result<Collected> {
    let objects = self.objects_of(session).await?;
    let now = self.lock_time(&objects, lock)?;
    let (mut doomed, collected) = self.unreferenced(session, &objects).await?;
    let locks_at = locks_prefix(session);
    let stale_locks = objects.iter().filter(|o| o.key.starts_with(&locks_at) && o.key != lock);
    doomed.extend(
      stale_locks.filter(|o| parse_lock(o).is_none_or(|(kind, at)| stale(kind, at, now))).map(|o| o.key.clone()),
    );
    doomed.extend(self.confirmed_damaged(session).await?);
    let skipped = Collected { skipped: true, ..Default::default() };
    // Whoever came meanwhile wins; and a prune never deletes once it may look stale to a backup.
    if !self.other_locks(session, lock).await?.is_empty() {
      return Ok(skipped);
    }
    for batch in doomed.chunks(1000) {
      if started.elapsed() > STALE_PRUNE / 2 {
        return Ok(skipped);
      }
      self.tier.delete(batch).await?;
    }
    Ok(collected)
  }

  /// When `lock` was written, by the tier's clock. Not listed (the tier does not read its own writes): an error
  /// rather than a guess by this host's clock.
  fn lock_time(&self, listed: &[ObjectMeta], lock: &str) -> Result<u64> {
    let own = listed.iter().find(|o| o.key == lock).and_then(parse_lock);
    own.map(|(_, at)| at).ok_or_else(|| StoreError::TierUnavailable {
      tier: self.tier.kind(),
      reason: "a lock just written is missing from the listing".into(),
    })
  }

  /// The chunks restores of `session` found damaged that are still damaged when fetched again now.
  async fn confirmed_damaged(&self, session: &SessionKey) -> Result<Vec<String>> {
    let suspects = self.suspects.lock().unwrap().remove(session.as_str()).unwrap_or_default();
    let prefix = chunks_prefix(session);
    let mut confirmed = Vec::new();
    for id in suspects {
      let key = format!("{prefix}{id}");
      let Some(object) = self.tier.get(&key).await? else { continue };
      let codec = ChunkCodec { keys: self.keys.as_deref(), session: session.as_str(), level: self.level };
      if let Err(StoreError::ArchiveCorrupt(_)) = codec.decode(&object, &id) {
        confirmed.push(key);
      }
    }
    Ok(confirmed)
  }

  /// Drops what is remembered of the session's manifests that are no longer listed (pruned), so the memory
  /// stays bounded by the kept versions.
  fn forget_references(&self, session: &SessionKey, listed: &[&ObjectMeta]) {
    let prefix = format!("{session}/");
    let keep: HashSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    self.references.lock().unwrap().retain(|(key, _, _), _| !key.starts_with(&prefix) || keep.contains(key.as_str()));
  }

  async fn references(&self, session: &SessionKey, object: &ObjectMeta) -> Result<Arc<Vec<ChunkId>>> {
    let cache_key = (object.key.clone(), object.size, object.modified_ms);
    if let Some(ids) = self.references.lock().unwrap().get(&cache_key) {
      return Ok(ids.clone());
    }
    let manifest = self.manifest(session, &object.key).await?;
    let ids: Arc<Vec<ChunkId>> = Arc::new(manifest.map(|m| m.chunk_ids().cloned().collect()).unwrap_or_default());
    self.references.lock().unwrap().insert(cache_key, ids.clone());
    Ok(ids)
  }

  /// The session's chunks and their stored sizes.
  pub async fn chunk_sizes(&self, session: &SessionKey) -> Result<HashMap<ChunkId, u64>> {
    let prefix = chunks_prefix(session);
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
        let _ = self.tier.delete(&[lock]).await;
        return deleted;
      }
      let _ = self.tier.delete(&[lock]).await;
      tokio::time::sleep(Duration::from_millis(250)).await;
    }
  }

  async fn delete_objects(&self, session: &SessionKey) -> Result<()> {
    let mut keys: Vec<String> = self.tier.list(&format!("{session}/")).await?.into_iter().map(|o| o.key).collect();
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
