//! Versioned backups in an object tier. A version is one sealed archive at `<session>/<ms:013>-<hash8>.wwrs`,
//! so key order is time order. A new version is written and confirmed before older ones are pruned, and a
//! restore takes the newest version whose checksum holds: the last good copy is never the one deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::archive;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{ObjectMeta, ObjectTier};

const EXT: &str = ".wwrs";

#[derive(Debug, Clone)]
pub struct Backups {
  tier: Arc<dyn ObjectTier>,
  keep: usize,
}

/// One backup version of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
  /// The object's key in the tier.
  pub key: String,
  /// When it was written, in ms since the Unix epoch (never before the save it holds).
  pub ms: u64,
  pub size: u64,
}

/// `<13 digits>-<8 hex>.wwrs` → its time; anything else under a session's prefix is not ours and is left alone.
fn version_ms(name: &str) -> Option<u64> {
  let (ms, hash) = name.strip_suffix(EXT)?.split_once('-')?;
  let ours = ms.len() == 13
    && ms.bytes().all(|b| b.is_ascii_digit())
    && hash.len() == 8
    && hash.bytes().all(|b| b.is_ascii_hexdigit());
  ours.then(|| ms.parse().ok()).flatten()
}

/// `<session>/<version>` → the session and its version, if the key is one of ours.
fn parse_version(object: ObjectMeta) -> Option<(SessionKey, Version)> {
  let (session, name) = object.key.split_once('/')?;
  let ms = version_ms(name)?;
  let session = SessionKey::parse(session).ok()?;
  Some((session, Version { key: object.key, ms, size: object.size }))
}

impl Backups {
  pub fn new(tier: Arc<dyn ObjectTier>, keep: usize) -> Self {
    Self { tier, keep: keep.max(1) }
  }

  /// What holds the backups, for stats and messages.
  pub fn kind(&self) -> &'static str {
    self.tier.kind()
  }

  /// The session's versions, oldest first.
  pub async fn versions(&self, key: &SessionKey) -> Result<Vec<Version>> {
    let objects = self.tier.list(&format!("{key}/")).await?;
    Ok(objects.into_iter().filter_map(parse_version).filter(|(session, _)| session == key).map(|(_, v)| v).collect())
  }

  /// Every session's versions, oldest first, from one listing of the tier.
  pub async fn index(&self) -> Result<BTreeMap<SessionKey, Vec<Version>>> {
    let mut index: BTreeMap<SessionKey, Vec<Version>> = BTreeMap::new();
    for (session, version) in self.tier.list("").await?.into_iter().filter_map(parse_version) {
      index.entry(session).or_default().push(version);
    }
    Ok(index)
  }

  /// Replaces one version's bytes (a re-encryption): the object is swapped whole, its name and time stay.
  pub async fn rewrite(&self, version: &Version, sealed: Vec<u8>) -> Result<()> {
    self.tier.put(&version.key, sealed).await
  }

  /// One version's bytes, unchecked; `None` if it went away.
  pub async fn read(&self, version: &Version) -> Result<Option<Vec<u8>>> {
    self.tier.get(&version.key).await
  }

  /// Writes a new version, then prunes all but the newest `keep`. Returns the new version's key. The new
  /// version always sorts last (a writer whose clock lags gets the newest time + 1), so it is never the one
  /// pruned and a restore never prefers an older copy over it.
  pub async fn write(&self, key: &SessionKey, sealed: Vec<u8>, created_ms: u64) -> Result<String> {
    let mut versions = self.versions(key).await?;
    let ms = versions.last().map_or(created_ms, |newest| created_ms.max(newest.ms + 1));
    let hash = blake3::hash(&sealed).to_hex();
    let name = format!("{key}/{ms:013}-{}{EXT}", &hash[..8]);
    let size = sealed.len() as u64;
    self.tier.put(&name, sealed).await?;
    versions.push(Version { key: name.clone(), ms, size });
    // Pruning is best effort: the new version is already durable, and the next backup prunes again.
    if versions.len() > self.keep {
      let old: Vec<String> = versions[..versions.len() - self.keep].iter().map(|v| v.key.clone()).collect();
      let _ = self.tier.delete(&old).await;
    }
    Ok(name)
  }

  /// The newest version whose checksum holds, skipping damaged ones. `Ok(None)` when there is no version;
  /// an error when there are versions and none of them is good.
  pub async fn newest_good(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    let versions = self.versions(key).await?;
    for version in versions.iter().rev() {
      if let Some(bytes) = self.read(version).await? {
        match archive::open(&bytes) {
          Ok(_) => return Ok(Some(bytes)),
          // Newer than this build: an upgrade is due, and an older version is not the newest good copy.
          Err(err @ StoreError::ArchiveVersion(_)) => return Err(err),
          Err(_) => {}
        }
      }
    }
    match versions.len() {
      0 => Ok(None),
      n => Err(StoreError::ArchiveCorrupt(format!("all {n} backup versions of {key} fail their checksum"))),
    }
  }

  /// The header of the newest version, read with a ranged request; `None` without versions.
  pub async fn newest_header(&self, key: &SessionKey) -> Result<Option<archive::Header>> {
    let Some(newest) = self.versions(key).await?.pop() else { return Ok(None) };
    match self.tier.head(&newest.key, archive::HEADER_LEN).await? {
      Some(head) => archive::peek(&head).map(Some),
      None => Ok(None),
    }
  }

  pub async fn exists(&self, key: &SessionKey) -> Result<bool> {
    Ok(!self.versions(key).await?.is_empty())
  }

  pub async fn delete(&self, key: &SessionKey) -> Result<()> {
    let versions = self.versions(key).await?;
    if versions.is_empty() {
      return Ok(());
    }
    self.tier.delete(&versions.into_iter().map(|v| v.key).collect::<Vec<_>>()).await
  }

  /// Every session with at least one version.
  pub async fn sessions(&self) -> Result<Vec<SessionKey>> {
    Ok(self.index().await?.into_keys().collect())
  }
}

#[cfg(test)]
mod tests;
