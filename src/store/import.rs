//! Taking in a RemoteAuth zip another store held (`import`): through the same checks as `save`, compared with what
//! this store holds so a repeated import copies only what changed, and read back after the write.

use std::io::Cursor;

use super::{pack_zip_bytes, Saved, Store};
use crate::archive;
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;

/// Clocks of a source (an S3 server) and of this machine may disagree by this much: a stored copy counts as newer
/// than the source's last write only by more.
pub const CLOCK_SKEW_MS: u64 = 120_000;

/// What importing one zip did (or, in a dry run, would do).
#[derive(Debug)]
pub enum Outcome {
  /// Dry run: it passes every check and differs from the stored copy (or there is none).
  Planned {
    stored_bytes: u64,
  },
  Imported {
    stored_bytes: u64,
    backup_error: Option<StoreError>,
  },
  /// The store holds the same entries, byte for byte.
  Unchanged,
}

impl Store {
  /// True when the stored copy was saved after the source's last write (`modified_ms`): nothing the source holds
  /// can be newer, so it need not be read.
  pub async fn holds_since(&self, key: &SessionKey, modified_ms: u64) -> Result<bool> {
    let saved = self.saved_at(key).await?;
    Ok(saved.is_some_and(|saved| saved != u64::MAX && saved > modified_ms.saturating_add(CLOCK_SKEW_MS)))
  }

  /// Checks `zip` as `save` checks the zip RemoteAuth wrote and, unless the store holds the same entries already,
  /// stores it as `key` (with `execute`) and reads it back. The stored copy stays until the new one is durable.
  pub async fn import_zip(&self, key: &SessionKey, zip: Vec<u8>, execute: bool) -> Result<Outcome> {
    let (config, session) = (self.config.clone(), key.to_string());
    let (packed, source) = blocking::run(move || {
      let packed = pack_zip_bytes(&zip, &config.pack, &session)?;
      Ok((packed, archive::fingerprint_zip(Cursor::new(&zip[..]), &config.pack.keep)?))
    })
    .await?;
    let turn = self.save_locks.of(key).lock_owned().await;
    if self.stored_fingerprint(key).await? == Some(source) {
      return Ok(Outcome::Unchanged);
    }
    let stored_bytes = packed.bytes.len() as u64;
    if !execute {
      return Ok(Outcome::Planned { stored_bytes });
    }
    let expected = blake3::hash(&packed.bytes);
    let Saved { backup_error, .. } = self.store_packed(key.clone(), packed, turn).await?;
    // Read back through the store (checksum checked there) and compared with what was written.
    if blake3::hash(&self.fetch(key).await?) != expected {
      return Err(StoreError::ArchiveCorrupt(format!("the stored copy of {key} does not read back as written")));
    }
    Ok(Outcome::Imported { stored_bytes, backup_error })
  }

  /// The fingerprint of the stored copy; `None` when there is none or it is in a format before zip payloads.
  async fn stored_fingerprint(&self, key: &SessionKey) -> Result<Option<archive::Fingerprint>> {
    let bytes = match self.fetch(key).await {
      Ok(bytes) => bytes,
      Err(StoreError::SessionNotFound(_)) => return Ok(None),
      Err(err) => return Err(err),
    };
    let (config, session) = (self.config.clone(), key.to_string());
    blocking::run(move || archive::fingerprint(&bytes, config.pack.keys.as_deref(), &config.pack.keep, &session)).await
  }
}
