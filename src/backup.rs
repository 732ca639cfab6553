//! Versioned backups in an object tier. A version is one sealed archive at `<session>/<ms:013>-<hash8>.wwrs`,
//! so key order is time order. A new version is written and confirmed before older ones are pruned, and a
//! restore takes the newest version whose checksum holds: the last good copy is never the one deleted.

use std::sync::Arc;

use crate::archive;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::ObjectTier;

const EXT: &str = ".wwrs";

#[derive(Debug, Clone)]
pub struct Backups {
  tier: Arc<dyn ObjectTier>,
  keep: usize,
}

/// `<13 digits>-<8 hex>.wwrs`: anything else under a session's prefix is not ours and is left alone.
fn is_version(name: &str) -> bool {
  let Some(stem) = name.strip_suffix(EXT) else {
    return false;
  };
  let Some((ms, hash)) = stem.split_once('-') else {
    return false;
  };
  ms.len() == 13
    && ms.bytes().all(|b| b.is_ascii_digit())
    && hash.len() == 8
    && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Backups {
  pub fn new(tier: Arc<dyn ObjectTier>, keep: usize) -> Self {
    Self { tier, keep: keep.max(1) }
  }

  /// The session's versions, oldest first.
  pub async fn versions(&self, key: &SessionKey) -> Result<Vec<String>> {
    let dir = format!("{key}/");
    let keys = self.tier.list(&dir).await?;
    Ok(keys.into_iter().filter(|k| k.strip_prefix(&dir).is_some_and(is_version)).collect())
  }

  /// Writes a new version, then prunes all but the newest `keep`. Returns the new version's key. The new
  /// version always sorts last (a writer whose clock lags gets the newest time + 1), so it is never the one
  /// pruned and a restore never prefers an older copy over it.
  pub async fn write(&self, key: &SessionKey, sealed: Vec<u8>, created_ms: u64) -> Result<String> {
    let mut versions = self.versions(key).await?;
    let newest_ms = versions.last().and_then(|v| v.rsplit('/').next()?.get(..13)?.parse::<u64>().ok());
    let ms = newest_ms.map_or(created_ms, |newest| created_ms.max(newest + 1));
    let hash = blake3::hash(&sealed).to_hex();
    let name = format!("{key}/{ms:013}-{}{EXT}", &hash[..8]);
    self.tier.put(&name, sealed).await?;
    versions.push(name.clone());
    // Pruning is best effort: the new version is already durable, and the next backup prunes again.
    if versions.len() > self.keep {
      let _ = self.tier.delete(&versions[..versions.len() - self.keep]).await;
    }
    Ok(name)
  }

  /// The newest version whose checksum holds, skipping damaged ones. `Ok(None)` when there is no version;
  /// an error when there are versions and none of them is good.
  pub async fn newest_good(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    let versions = self.versions(key).await?;
    for version in versions.iter().rev() {
      if let Some(bytes) = self.tier.get(version).await? {
        if archive::open(&bytes).is_ok() {
          return Ok(Some(bytes));
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
    match self.tier.head(&newest, archive::HEADER_LEN).await? {
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
    self.tier.delete(&versions).await
  }

  /// Every session with at least one version.
  pub async fn sessions(&self) -> Result<Vec<SessionKey>> {
    let mut out: Vec<SessionKey> = Vec::new();
    for key in self.tier.list("").await? {
      let Some((session, version)) = key.split_once('/') else {
        continue;
      };
      // Keys come sorted, so a session's versions are adjacent.
      if !is_version(version) || out.last().is_some_and(|k| k.as_str() == session) {
        continue;
      }
      if let Ok(session) = SessionKey::parse(session) {
        out.push(session);
      }
    }
    Ok(out)
  }
}

#[cfg(test)]
mod tests;
