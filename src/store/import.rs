//! Taking in a RemoteAuth zip another store held (`import`): through the same checks as `save`, compared with what
//! this store holds so a repeated import copies only what changed, and read back after the write.

use std::io::Cursor;

use super::save::pack_zip_bytes;
use super::{Saved, Store};
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
    // Compared before the save lock is taken: reading a copy from the backups writes it back under that lock. The
    // import then replaces exactly the copy it compared (its header), or nothing.
    let (stored, seen) = self.stored_fingerprint(key).await?;
    if stored == Some(source) {
      return Ok(Outcome::Unchanged);
    }
    let stored_bytes = packed.bytes.len() as u64;
    if !execute {
      return Ok(Outcome::Planned { stored_bytes });
    }
    let expected = blake3::hash(&packed.bytes);
    let turn = self.save_locks.of(key).lock_owned().await;
    // A save (or logout) by a running service since the comparison wins: nothing is written.
    let Some(Saved { backup_error, .. }) = self.store_packed_if(key.clone(), packed, turn, seen).await? else {
      return Err(StoreError::SessionChanged(key.to_string()));
    };
    // Read back through the store (checksum checked there) and compared with what was written.
    if blake3::hash(&self.fetch(key).await?) != expected {
      return Err(StoreError::ArchiveCorrupt(format!("the stored copy of {key} does not read back as written")));
    }
    Ok(Outcome::Imported { stored_bytes, backup_error })
  }

  /// True when the primary holds exactly `value` under `key`: an import source that is this store's own keys.
  pub async fn holds_exactly(&self, key: &SessionKey, value: &[u8]) -> Result<bool> {
    match &self.primary {
      Some(primary) => Ok(primary.get(key).await?.is_some_and(|stored| stored == value)),
      None => Ok(false),
    }
  }

  /// The fingerprint of the stored copy (`None` when there is none or it is in a format before zip payloads), and
  /// the header of the copy read (`None`: none stored).
  async fn stored_fingerprint(&self, key: &SessionKey) -> Result<(Option<archive::Fingerprint>, Option<Vec<u8>>)> {
    // A value another store left under this key is not held in this store's format: an import replaces it with
    // the same login as this store's archive (one write, conditional on the value read, once that copy is complete).
    if let Some(primary) = &self.primary {
      if let Some(head) = primary.head(key, archive::HEADER_LEN).await? {
        if super::legacy::is_foreign(&head) {
          return Ok((None, Some(head)));
        }
      }
    }
    let bytes = match self.fetch(key).await {
      Ok(bytes) => bytes,
      Err(StoreError::SessionNotFound(_)) => return Ok((None, None)),
      Err(err) => return Err(err),
    };
    let head = bytes[..archive::HEADER_LEN.min(bytes.len())].to_vec();
    let (config, session) = (self.config.clone(), key.to_string());
    let keep = move || archive::fingerprint(&bytes, config.pack.keys.as_deref(), &config.pack.keep, &session);
    Ok((blocking::run(keep).await?, Some(head)))
  }
}

#[cfg(test)]
mod tests {
  use std::io::Write;
  use std::sync::Arc;

  use super::*;
  use crate::archive::PackOptions;
  use crate::store::StoreConfig;
  use crate::tier::LocalDirTier;

  fn zip_of(body: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("Default/IndexedDB/db/000003.log", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(body).unwrap();
    zip.finish().unwrap().into_inner()
  }

  #[tokio::test]
  async fn imports_once_then_only_what_changed_and_exports_back_alike() {
    let dir = tempfile::tempdir().unwrap();
    let tier = LocalDirTier::open(dir.path().join("store")).unwrap();
    let config = StoreConfig { data_path: dir.path().join("auth"), pack: PackOptions::default(), local_dir: None };
    let store = Store::new(Some(Arc::new(tier)), None, config).unwrap();
    let key = SessionKey::parse("RemoteAuth-a").unwrap();

    assert!(matches!(store.import_zip(&key, zip_of(b"v1"), false).await.unwrap(), Outcome::Planned { .. }));
    assert!(!store.session_exists("RemoteAuth-a").await.unwrap(), "a dry run writes nothing");
    assert!(matches!(store.import_zip(&key, zip_of(b"v1"), true).await.unwrap(), Outcome::Imported { .. }));
    assert!(matches!(store.import_zip(&key, zip_of(b"v1"), true).await.unwrap(), Outcome::Unchanged));
    assert!(matches!(store.import_zip(&key, zip_of(b"v2"), true).await.unwrap(), Outcome::Imported { .. }));
    // What `extract` writes is what an import of it finds unchanged.
    let out = dir.path().join("out.zip");
    store.extract("RemoteAuth-a", &out).await.unwrap();
    assert!(matches!(store.import_zip(&key, std::fs::read(&out).unwrap(), true).await.unwrap(), Outcome::Unchanged));
    assert!(store.holds_since(&key, 0).await.unwrap());
    assert!(!store.holds_since(&key, u64::MAX / 2).await.unwrap());

    let bad = store.import_zip(&key, b"PK\x03\x04 cut short".to_vec(), true).await.unwrap_err();
    assert_eq!(bad.code(), "ERR_ZIP_INVALID");
    assert!(matches!(store.import_zip(&key, zip_of(b"v2"), true).await.unwrap(), Outcome::Unchanged), "kept");
  }

  /// Seeded mutations of a gzipped session value (flips, cuts, splices): each one is the session exactly or a coded
  /// refusal, and the stored copy stays readable whatever came in.
  #[tokio::test]
  async fn mutated_values_import_whole_or_are_refused_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let tier = LocalDirTier::open(dir.path().join("store")).unwrap();
    let config = StoreConfig { data_path: dir.path().join("auth"), pack: PackOptions::default(), local_dir: None };
    let store = Store::new(Some(Arc::new(tier)), None, config).unwrap();
    let key = SessionKey::parse("RemoteAuth-m").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&zip_of(&b"leveldb log record ".repeat(200))).unwrap();
    let good = gz.finish().unwrap();
    store.import_zip(&key, archive::unwrap_zip(good.clone(), 1 << 24).unwrap().0, true).await.unwrap();
    let mut seed: u64 = 0x5eed_1234;
    let mut next = move |n: usize| {
      seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
      (seed >> 33) as usize % n.max(1)
    };
    for _ in 0..300 {
      let mut value = good.clone();
      match next(3) {
        0 => {
          let at = next(value.len());
          value[at] ^= 1 << next(8);
        }
        1 => value.truncate(next(value.len())),
        _ => {
          let (at, len) = (next(value.len()), next(64));
          value.splice(at..at, std::iter::repeat_n(next(256) as u8, len));
        }
      }
      let outcome = match archive::unwrap_zip(value, 1 << 24) {
        Ok((zip, _)) => store.import_zip(&key, zip, true).await,
        Err(err) => Err(err),
      };
      if let Err(err) = outcome {
        assert_ne!(err.code(), "ERR_INTERNAL", "{err}");
      }
      let stored = store.fetch(&key).await.unwrap();
      archive::check(&stored, None, &archive::Limits::default(), "RemoteAuth-m").unwrap();
    }
  }
}
