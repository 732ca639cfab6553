//! Versioned backups in an object tier. A version is one sealed archive at `<session>/<ms:013>-<hash8>.wwrs`,
//! or, incremental, a manifest at `<session>/<ms:013>-<hash8>.wwmf` over packs of chunks shared between versions
//! (`incremental`); key order is time order either way, and a session may hold both kinds. A new version is
//! written and confirmed before older ones are pruned, and a restore takes the newest version that reads back
//! whole: the last good copy is never the one deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::archive::{self, PackOptions};
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::incremental::{Collected, Manifest, Repo, MANIFEST_EXT, WORK_PREFIX};
use crate::session::SessionKey;
use crate::tier::{ObjectMeta, ObjectTier};

const EXT: &str = ".wwrs";

/// Which versions a prune keeps: the newest `keep`, and any younger than `keep_within_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
  pub keep: usize,
  pub keep_within_ms: Option<u64>,
}

impl Default for Retention {
  fn default() -> Self {
    Self { keep: 3, keep_within_ms: None }
  }
}

/// One backup version of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
  /// The object's key in the tier.
  pub key: String,
  /// The time in its name, in ms since the Unix epoch: the stamp of the save it holds (a version named before
  /// stamps were names: a writer's time, bumped past the newest). Save order; see `saved_ms` for a time.
  pub ms: u64,
  /// The object's size (a manifest's own size for an incremental version).
  pub size: u64,
  /// When the bucket stored it, by its clock (its last-modified time); 0 when unknown.
  pub stored_ms: u64,
  /// A manifest over chunks rather than a whole archive.
  pub incremental: bool,
}

impl Version {
  /// When its save was made, at the latest: its stamp, or when the bucket stored it (by the bucket's clock) if
  /// that is earlier. A save's stamp runs ahead of time after a writer whose clock did (each save is stamped
  /// after the copy it replaces); the bucket's time then says the save was made by then. What `at` and
  /// `listBackups().savedAt` go by, so `at: now` never goes back to before such a writer.
  pub fn saved_ms(&self) -> u64 {
    match self.stored_ms {
      0 => self.ms,
      // S3 gives whole seconds: stored within the second its time names (so a save stored in the second it was
      // made keeps its stamp, and versions of one second keep their order).
      stored => self.ms.min(stored.saturating_add(999)),
    }
  }
}

/// `<13 digits>-<8 hex>.wwrs` (or `.wwmf`) → its time and whether it is incremental; anything else directly
/// under a session's prefix is not a version.
fn version_ms(name: &str) -> Option<(u64, bool)> {
  let (stem, incremental) = match name.strip_suffix(EXT) {
    Some(stem) => (stem, false),
    None => (name.strip_suffix(MANIFEST_EXT)?, true),
  };
  let (ms, hash) = stem.split_once('-')?;
  let ours = ms.len() == 13
    && ms.bytes().all(|b| b.is_ascii_digit())
    && hash.len() == 8
    && hash.bytes().all(|b| b.is_ascii_hexdigit());
  ours.then(|| ms.parse().ok().map(|ms| (ms, incremental))).flatten()
}

/// `<session>/<version>` → the session and its version, if the key is one of ours.
fn parse_version(object: ObjectMeta) -> Option<(SessionKey, Version)> {
  let (session, name) = object.key.split_once('/')?;
  let (ms, incremental) = version_ms(name)?;
  let session = SessionKey::parse(session).ok()?;
  let stored_ms = object.modified_ms;
  Some((session, Version { key: object.key, ms, size: object.size, stored_ms, incremental }))
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
  pub key: String,
  /// Bytes sent to the tier: the archive, or the new packs and the manifest.
  pub uploaded_bytes: u64,
}

/// Logical and stored bytes of one session's incremental versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalUsage {
  pub versions: u64,
  /// Sum of every version's file sizes: what whole copies would hold before compression.
  pub logical_bytes: u64,
  /// Manifests and chunk objects.
  pub stored_bytes: u64,
  /// What each version uploaded when it was written (its new packs and itself), oldest first.
  pub uploaded_bytes: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct Backups {
  tier: Arc<dyn ObjectTier>,
  retention: Retention,
  /// New versions are written incrementally; both kinds are read either way.
  incremental: bool,
  /// Keys and level: incremental versions are rebuilt into archives, and archives taken apart, here.
  pack: PackOptions,
  repo: Arc<Repo>,
}

impl Backups {
  /// Whole-archive versions, the newest `keep` kept; unencrypted incremental versions are still read.
  pub fn new(tier: Arc<dyn ObjectTier>, keep: usize) -> Self {
    Self::open(tier, Retention { keep, keep_within_ms: None }, false, PackOptions::default())
  }

  pub fn open(tier: Arc<dyn ObjectTier>, retention: Retention, incremental: bool, pack: PackOptions) -> Self {
    let repo = Arc::new(Repo::new(tier.clone(), pack.keys.clone(), pack.level));
    let retention = Retention { keep: retention.keep.max(1), ..retention };
    Self { tier, retention, incremental, pack, repo }
  }

  /// What holds the backups, for stats and messages.
  pub fn kind(&self) -> &'static str {
    self.tier.kind()
  }

  /// The session's versions, oldest first.
  /// Directly under the session only (its packs and locks live under `~/`, and a prefix may hold other folders);
  /// without those a delete covers (`tombstone`).
  pub async fn versions(&self, key: &SessionKey) -> Result<Vec<Version>> {
    let (versions, gone) = self.listing(key).await?;
    Ok(versions.into_iter().filter(|v| v.ms > gone).collect())
  }

  /// Every session's versions, oldest first, from one listing of the tier.
  pub async fn index(&self) -> Result<BTreeMap<SessionKey, Vec<Version>>> {
    let mut index: BTreeMap<SessionKey, Vec<Version>> = BTreeMap::new();
    let mut marks: BTreeMap<SessionKey, u64> = BTreeMap::new();
    // Versions only: packs and locks sort after them, and the listing stops there.
    for object in self.tier.list_before("", WORK_PREFIX).await? {
      if let Some((session, stamp)) = tombstone::mark_in(&object) {
        let mark = marks.entry(session).or_insert(0);
        *mark = stamp.max(*mark);
      } else if let Some((session, version)) = parse_version(object) {
        index.entry(session).or_default().push(version);
      }
    }
    for (session, gone) in marks {
      if let Some(versions) = index.get_mut(&session) {
        versions.retain(|v| v.ms > gone);
      }
    }
    index.retain(|_, versions| !versions.is_empty());
    Ok(index)
  }

  /// One version as a sealed archive; `None` if it went away. Whole versions come back as stored (unchecked);
  /// incremental ones are rebuilt from their chunks, each checked against its name, and sealed under the
  /// current key.
  pub async fn read(&self, version: &Version) -> Result<Option<Vec<u8>>> {
    if !version.incremental {
      return self.tier.get(&version.key).await;
    }
    let session = session_of(version)?;
    let Some(manifest) = self.repo.manifest(&session, &version.key).await? else { return Ok(None) };
    let (created_ms, source_bytes) = (manifest.created_ms, manifest.source_bytes);
    // The zip limits hold for a rebuild too: a damaged or forged manifest must not size the allocation.
    let limits = self.pack.limits;
    if manifest.entries.len() as u64 > u64::from(limits.max_entries)
      || manifest.files_bytes() > limits.max_unpacked_bytes
    {
      return Err(StoreError::ArchiveLimit(format!("backup version {} is larger than the limits", version.key)));
    }
    let entries = self.repo.rebuild(&session, manifest).await?;
    let pack = self.pack.clone();
    let packed =
      blocking::run(move || archive::pack_entries(&entries, &pack, session.as_str(), source_bytes, created_ms)).await?;
    Ok(Some(packed.bytes))
  }

  /// Writes a new version named by the stamp of the save it holds (`history::place`), then prunes what the
  /// retention no longer keeps. A save some version already holds is not written again (`uploaded_bytes` 0).
  pub async fn write(&self, key: &SessionKey, sealed: Vec<u8>) -> Result<Written> {
    let (versions, gone) = self.listing(key).await?;
    let mut versions: Vec<Version> = versions.into_iter().filter(|v| v.ms > gone).collect();
    let save = archive::peek(&sealed)?;
    Self::refuse_deleted(key, save.created_ms, gone)?;
    let (ms, replaces) = match self.place(key, &versions, &save).await? {
      Place::At(ms) => (ms, None),
      Place::Replace(ms, damaged) => (ms, Some(damaged)),
      Place::Held(key) => return Ok(Written { key, uploaded_bytes: 0 }),
    };
    // A replacement of a damaged version of the same save gets a name of its own: a name is never reused.
    let mut hash = blake3::Hasher::new();
    hash.update(&sealed).update(replaces.as_deref().unwrap_or_default().as_bytes());
    let hash = hash.finalize().to_hex();
    let stem = format!("{key}/{ms:013}-{}", &hash[..8]);
    let size = sealed.len() as u64;
    let written = match self.incremental {
      false => {
        // The save copied the zip's compressed bytes unread: their CRCs and sizes are checked here, off the save
        // path, so a bad copy never takes a place in the history (incremental backups inflate them anyway).
        let (keys, limits, session) = (self.pack.keys.clone(), self.pack.limits, key.clone());
        let sealed = blocking::run(move || {
          archive::check(&sealed, keys.as_deref(), &limits, session.as_str())?;
          Ok(sealed)
        })
        .await?;
        let name = format!("{stem}{EXT}");
        self.tier.put(&name, sealed).await?;
        Written { key: name, uploaded_bytes: size }
      }
      true => self.write_incremental(key, format!("{stem}{MANIFEST_EXT}"), sealed).await?,
    };
    // A delete that landed while this was written: its mark covers this save, which goes again.
    self.unless_deleted(key, &written.key, save.created_ms.min(ms)).await?;
    if let Some(damaged) = replaces.filter(|k| *k != written.key) {
      self.tier.delete(std::slice::from_ref(&damaged)).await?;
      versions.retain(|v| v.key != damaged);
    }
    versions.push(Version { key: written.key.clone(), ms, size, stored_ms: 0, incremental: self.incremental });
    versions.sort_by(|a, b| a.key.cmp(&b.key));
    // Pruning is best effort: the new version is already durable, and the next backup prunes again.
    let _ = self.prune(key, versions, &written.key).await;
    Ok(written)
  }

  /// Takes an archive apart into chunks and writes the new ones (a pack) and a manifest at `name`.
  async fn write_incremental(&self, key: &SessionKey, name: String, sealed: Vec<u8>) -> Result<Written> {
    let (keys, limits, session) = (self.pack.keys.clone(), self.pack.limits, key.clone());
    let (header, entries) =
      blocking::run(move || archive::read_entries(&sealed, keys.as_deref(), &limits, session.as_str())).await?;
    let done = self.repo.write(key, &name, entries, header.created_ms, header.source_bytes).await?;
    Ok(Written { key: name, uploaded_bytes: done.uploaded_bytes })
  }

  /// Deletes the versions `retention` does not keep (never the newest, nor the newest that reads whole: see
  /// `newest_readable`), then the packs no manifest reads.
  async fn prune(&self, key: &SessionKey, versions: Vec<Version>, written: &str) -> Result<()> {
    let newest = versions.last().map_or(0, |v| v.ms);
    // Counted by time, not by object: a key rotation briefly holds two manifests of one version (the new name is
    // written before the old one goes), and both are that one version.
    let mut times: Vec<u64> = versions.iter().map(|v| v.ms).collect();
    times.dedup();
    let oldest_kept = times.len().checked_sub(self.retention.keep).map_or(0, |i| times[i]);
    let within = |v: &Version| self.retention.keep_within_ms.is_some_and(|age| newest.saturating_sub(v.ms) <= age);
    let mut old: Vec<&Version> = versions.iter().filter(|v| v.ms < oldest_kept && !within(v)).collect();
    if old.is_empty() {
      return Ok(());
    }
    // None reads whole: nothing is deleted (what is left may be salvaged, and `verify` names it).
    let Some(readable) = self.newest_readable(&versions, written).await? else { return Ok(()) };
    old.retain(|v| v.ms < readable.ms);
    let manifests_gone = old.iter().any(|v| v.incremental);
    self.tier.delete(&old.iter().map(|v| v.key.clone()).collect::<Vec<_>>()).await?;
    if manifests_gone {
      self.repo.collect(key).await?;
    }
    Ok(())
  }

  /// Deletes the packs of `key` that no version reads (left by pruned versions, or by a backup that
  /// failed before its manifest).
  pub async fn collect(&self, key: &SessionKey) -> Result<Collected> {
    self.repo.collect(key).await
  }

  /// `collect` of every session that has chunks, or (without `execute`) what it would delete, counted without
  /// taking locks; first, the versions a delete's mark covers (`tombstone`), each session's counted apart.
  pub async fn collect_all(&self, execute: bool) -> Result<Vec<(SessionKey, Result<Collected>)>> {
    let mut done: Vec<_> = self.sweep_deleted(execute).await?.into_iter().map(|(s, c)| (s, Ok(c))).collect();
    for session in self.repo.sessions_with_chunks().await? {
      let collected = match execute {
        true => self.repo.collect(&session).await,
        false => self.repo.count_unreferenced(&session).await,
      };
      done.push((session, collected));
    }
    Ok(done)
  }

  /// Re-encrypts one version under the current key, keeping its time; `None` when it already is (or went away).
  /// A whole version is replaced in place; an incremental one is chunked afresh (chunk names are keyed) under a
  /// new manifest name with the same time, then the old manifest and the chunks only it used are deleted.
  pub async fn rekey(&self, version: &Version) -> Result<Option<u64>> {
    let keys = self.pack.keys.as_deref().ok_or_else(|| StoreError::Internal("rekey without keys".into()))?;
    let session = session_of(version)?;
    if !version.incremental {
      let Some(bytes) = self.tier.get(&version.key).await? else { return Ok(None) };
      archive::refuse_plain_reseal(keys, archive::peek(&bytes)?.encrypted(), &version.key)?;
      let Some(fresh) = archive::reencrypt(&bytes, keys, session.as_str())? else { return Ok(None) };
      let len = fresh.len() as u64;
      self.tier.put(&version.key, fresh).await?;
      // A logout that deleted it meanwhile is not undone.
      self.unless_deleted(&session, &version.key, version.ms).await?;
      return Ok(Some(len));
    }
    let Some(bytes) = self.tier.get(&version.key).await? else { return Ok(None) };
    let key_id = Manifest::key_id(&bytes);
    if key_id.as_deref() == Some(&keys.current().id_hex()) {
      return Ok(None);
    }
    archive::refuse_plain_reseal(keys, key_id.is_some(), &version.key)?;
    // Plain versions are read too when the keyring accepts them (that is what rotating onto a first key is for).
    let mut lenient = keys.clone();
    lenient.accept_plain = true;
    let reader = Self::open(
      self.tier.clone(),
      self.retention,
      true,
      PackOptions { keys: Some(Arc::new(lenient)), ..self.pack.clone() },
    );
    let Some(sealed) = reader.read(version).await? else { return Ok(None) };
    // A new name at the same time, then the old one goes: manifests are never overwritten, so one that was read
    // (and whose references a collection remembers) never changes under its name.
    let name = format!("{session}/{:013}-{}{MANIFEST_EXT}", version.ms, &blake3::hash(&sealed).to_hex()[..8]);
    let written = self.write_incremental(&session, name, sealed).await?;
    self.unless_deleted(&session, &written.key, version.ms).await?;
    if written.key != version.key {
      self.tier.delete(std::slice::from_ref(&version.key)).await?;
    }
    let _ = self.repo.collect(&session).await;
    Ok(Some(written.uploaded_bytes))
  }

  /// The newest version that reads back whole, skipping damaged ones. `Ok(None)` when there is no version; an
  /// error when there are versions and none of them is good.
  pub async fn newest_good(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    self.newest_good_in(key, self.versions(key).await?).await
  }

  /// `newest_good`, starting from a listing taken earlier.
  async fn newest_good_in(&self, key: &SessionKey, mut versions: Vec<Version>) -> Result<Option<Vec<u8>>> {
    // Three times at most: damaged or vanished versions may have been replaced meanwhile (a key rotation writes a new manifest and
    // collects the old one's chunks); then the listing has changed, and its newest version is the one to read.
    for attempt in 0..3 {
      let (found, damaged) = self.first_good(&versions).await?;
      if damaged && attempt < 2 {
        let now = self.versions(key).await?;
        if now != versions {
          versions = now;
          continue;
        }
      }
      if found.is_some() {
        return Ok(found);
      }
      break;
    }
    match versions.len() {
      0 => Ok(None),
      n => Err(StoreError::ArchiveCorrupt(format!("all {n} backup versions of {key} fail their checksum"))),
    }
  }

  /// The newest of `versions` that reads back whole, and whether a newer one was damaged or gone.
  async fn first_good(&self, versions: &[Version]) -> Result<(Option<Vec<u8>>, bool)> {
    let mut damaged = false;
    for version in versions.iter().rev() {
      match self.read(version).await {
        Ok(Some(bytes)) => match archive::open(&bytes) {
          Ok(_) => return Ok((Some(bytes), damaged)),
          // Newer than this build: an upgrade is due, and an older version is not the newest good copy.
          Err(err @ StoreError::ArchiveVersion { .. }) => return Err(err),
          Err(_) => damaged = true,
        },
        // Gone since the listing: replaced (a key rotation) or pruned; either way the listing has changed.
        Ok(None) | Err(StoreError::ArchiveCorrupt(_)) => damaged = true,
        // A version this build cannot read, a missing key, an unreachable tier: not a reason to go back in time.
        Err(err) => return Err(err),
      }
    }
    Ok((None, damaged))
  }

  /// The version named `id` (its key or its file name), or the newest (in save order) saved at or before `at_ms`
  /// (`Version::saved_ms`).
  pub async fn find(&self, key: &SessionKey, id: Option<&str>, at_ms: Option<u64>) -> Result<Version> {
    let mut versions = self.versions(key).await?;
    let found = match (id, at_ms) {
      (Some(id), _) => versions.into_iter().find(|v| v.key == id || v.key.rsplit('/').next() == Some(id)),
      (None, Some(at)) => versions.into_iter().rev().find(|v| v.saved_ms() <= at),
      (None, None) => versions.pop(),
    };
    let what = match (id, at_ms) {
      (Some(id), _) => format!("{id:?} of {key}"),
      (None, Some(at)) => format!("of {key} saved at or before {at}"),
      (None, None) => format!("of {key}"),
    };
    found.ok_or(StoreError::VersionNotFound(what))
  }

  /// The header of the newest version (a ranged read, or its manifest); `None` without versions.
  pub async fn newest_header(&self, key: &SessionKey) -> Result<Option<archive::Header>> {
    let Some(newest) = self.versions(key).await?.pop() else { return Ok(None) };
    if newest.incremental {
      let Some(m) = self.repo.manifest(key, &newest.key).await? else { return Ok(None) };
      let flags = archive::FLAG_ZIP | if self.pack.keys.is_some() { archive::FLAG_ENCRYPTED } else { 0 };
      // What the version takes in the bucket: its manifest and the packs it reads (shared ones included).
      let sizes = self.repo.pack_sizes(key).await?;
      let stored = newest.size + m.packs().iter().filter_map(|id| sizes.get(*id)).sum::<u64>();
      return Ok(Some(archive::Header {
        version: archive::FORMAT_VERSION,
        flags,
        entries: m.entries.len() as u32,
        files_bytes: m.files_bytes(),
        source_bytes: m.source_bytes,
        created_ms: m.created_ms,
        payload_len: stored.saturating_sub(archive::HEADER_LEN as u64),
      }));
    }
    match self.tier.head(&newest.key, archive::HEADER_LEN).await? {
      Some(head) => archive::peek(&head).map(Some),
      None => Ok(None),
    }
  }

  /// Logical and stored bytes of each session's incremental versions (reads every manifest).
  pub async fn incremental_usage(&self) -> Result<BTreeMap<SessionKey, IncrementalUsage>> {
    let objects = self.tier.list("").await?;
    let mut usage: BTreeMap<SessionKey, IncrementalUsage> = BTreeMap::new();
    let mut manifests = Vec::new();
    for object in objects {
      if let Some(work) = object.key.strip_prefix(WORK_PREFIX) {
        // `~/<session>/packs/<id>` (locks are empty)
        let Some((session, _)) = work.split_once('/') else { continue };
        let Ok(session) = SessionKey::parse(session) else { continue };
        usage.entry(session).or_default().stored_bytes += object.size;
      } else if let Some((session, version)) = parse_version(object).filter(|(_, v)| v.incremental) {
        usage.entry(session.clone()).or_default().stored_bytes += version.size;
        manifests.push((session, version));
      }
    }
    let read = futures::stream::iter(manifests)
      .map(|(session, version)| async move {
        // One unreadable manifest (damaged, under a key not configured here) is left out; `verify` names it.
        let manifest = match self.repo.manifest(&session, &version.key).await {
          Err(StoreError::ArchiveCorrupt(_) | StoreError::Decrypt(_) | StoreError::ArchiveVersion { .. }) => None,
          other => other?,
        };
        Ok::<_, StoreError>((manifest, version.size, session))
      })
      .buffered(16)
      .try_collect::<Vec<_>>()
      .await?;
    for (manifest, manifest_bytes, session) in read {
      let Some(manifest) = manifest else { continue };
      let entry = usage.entry(session).or_default();
      entry.versions += 1;
      entry.logical_bytes += manifest.files_bytes();
      entry.uploaded_bytes.push(manifest.uploaded_bytes + manifest_bytes);
    }
    usage.retain(|_, u| u.versions > 0);
    Ok(usage)
  }

  pub async fn exists(&self, key: &SessionKey) -> Result<bool> {
    Ok(!self.versions(key).await?.is_empty())
  }

  /// Every session with at least one version.
  pub async fn sessions(&self) -> Result<Vec<SessionKey>> {
    Ok(self.index().await?.into_keys().collect())
  }
}

fn session_of(version: &Version) -> Result<SessionKey> {
  let (session, _) = version.key.split_once('/').ok_or_else(|| StoreError::Internal("a version key".into()))?;
  SessionKey::parse(session)
}

mod damage;
mod history;
mod tombstone;
use history::Place;
#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;
