//! Key rotation: every stored copy (primary and each backup version) rewritten under the current key.

use std::collections::BTreeMap;

use super::Store;
use crate::archive;
use crate::error::{Result, StoreError};
use crate::transfer::{transfer, Progress, Transfer};

/// What `rekey` did in each tier: copies re-encrypted (`copied`) or already under the current key (`skipped`).
#[derive(Debug, Default)]
pub struct Rekeyed {
  pub primary: Transfer,
  /// Counted per session: all of its versions together.
  pub backups: Transfer,
}

impl Store {
  /// Re-encrypts every primary copy and every backup version that is under a previous key (or plain, only
  /// when the keyring accepts plain archives), keeping each copy's save time. Primary copies are rewritten under the session's lock, so a save in this process
  /// never interleaves. Copies already under the current key are left alone.
  pub async fn rekey(&self, concurrency: usize, progress: Option<Progress>) -> Result<Rekeyed> {
    let keys = self.config.pack.keys.clone().ok_or_else(|| StoreError::InvalidOption {
      name: "encryption",
      reason: "rotating keys needs a current key (SESSION_ENCRYPTION_KEY or encryption.key)".into(),
    })?;
    let keys = &*keys;
    let mut done = Rekeyed::default();
    if let Some(primary) = &self.primary {
      done.primary = transfer(primary.list().await?, concurrency, progress.as_ref(), |key| async move {
        let _turn = self.save_locks.of(&key).lock_owned().await;
        let Some(bytes) = primary.get(&key).await? else { return Ok(None) };
        let fresh = if super::legacy::is_foreign(&bytes) {
          // Another store's value (plain by nature): sealed as this store's archive under the current key.
          archive::refuse_plain_reseal(keys, false, &key.to_string())?;
          self.convert_foreign(&key, bytes.clone()).await?.bytes
        } else {
          archive::refuse_plain_reseal(keys, archive::peek(&bytes)?.encrypted(), &key.to_string())?;
          let Some(fresh) = archive::reencrypt(&bytes, keys, key.as_str())? else { return Ok(None) };
          fresh
        };
        let len = fresh.len() as u64;
        // Only over the copy that was read: a save (or delete) by another process meanwhile wins, and the
        // session counts as skipped (its new copy is under whatever key that process writes with).
        let replaced = primary.replace_if(&key, &bytes[..archive::HEADER_LEN.min(bytes.len())], fresh).await?;
        Ok(replaced.then_some(len))
      })
      .await;
    }
    if let Some(backups) = &self.backups {
      let index: BTreeMap<_, _> = backups.index().await?;
      let index = &index;
      let sessions = index.keys().cloned().collect();
      done.backups = transfer(sessions, concurrency, progress.as_ref(), |key| async move {
        let (mut written, mut failed) = (0, None);
        for version in index.get(&key).into_iter().flatten() {
          // In place: the version keeps its name (its time) and is replaced whole. One refused (plain) or
          // failed version does not keep the others on the old key.
          match backups.rekey(version).await {
            Ok(len) => written += len.unwrap_or(0),
            Err(err) => failed = failed.or(Some(err)),
          }
        }
        match failed {
          Some(err) => Err(err),
          None => Ok((written > 0).then_some(written)),
        }
      })
      .await;
    }
    Ok(done)
  }
}
