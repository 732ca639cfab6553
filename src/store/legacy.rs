//! Values another RemoteAuth store left under this store's keys. The hand-written Redis store many services run
//! keeps `wa:session:<session>` = gzip(zip), and `wa:session:` is this store's default Redis prefix: swapping the
//! store object on the same Redis must find and restore those logins with no step, or every account would scan a
//! QR code. This store's own values start with the archive magic (`WWRS`); any other value is read as another
//! store's (zip, gzip, base64 or JSON holding one, as `import` reads them), packed in memory as a save packs
//! RemoteAuth's zip, and served from that. The value itself is never written here: RustStore's next save of the
//! session replaces it (one atomic write of the new, complete copy), and until then the old store can still read it.

use super::save::pack_zip_bytes;
use super::Store;
use crate::archive::{self, crypt, PackOptions, Packed};
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;

/// True for a stored value this store did not write (nor any earlier build of it).
pub(super) fn is_foreign(value: &[u8]) -> bool {
  !value.starts_with(&archive::MAGIC)
}

/// The archive a value another store left holds, packed as a save of its zip would be (encrypted when the store
/// has a key). Refused with a code when it holds no zip, when the zip fails a save's checks, or when the store
/// requires encryption: anyone with write access to the tier could have left a plain value.
pub(super) fn convert(value: &[u8], pack: &PackOptions, session: &str) -> Result<Packed> {
  crypt::refuse_plain(pack.keys.as_deref()).map_err(|_| {
    StoreError::Decrypt(format!(
      "the stored value of {session} was left by another store, unencrypted, and this store requires encryption \
       (accept plain copies for the switch, or import with the key set)"
    ))
  })?;
  let (zip, _shape) = archive::unwrap_zip(value.to_vec(), pack.limits.max_unpacked_bytes).map_err(|err| match err {
    StoreError::ImportFormat(what) => StoreError::ArchiveCorrupt(format!(
      "the stored value of {session} is neither this store's archive (it does not start WWRS) nor a RemoteAuth \
       zip another store left: {what}"
    )),
    other => other,
  })?;
  pack_zip_bytes(&zip, pack, session)
}

impl Store {
  /// `convert` off the async threads: inflating and checking a zip is CPU work.
  pub(super) async fn convert_foreign(&self, key: &SessionKey, value: Vec<u8>) -> Result<Packed> {
    let (config, session) = (self.config.clone(), key.to_string());
    blocking::run(move || convert(&value, &config.pack, &session)).await
  }
}

#[cfg(test)]
mod tests {
  use std::io::Write;

  use super::*;

  fn zip_of(body: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("Default/Local Storage/leveldb/000003.log", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(body).unwrap();
    zip.finish().unwrap().into_inner()
  }

  #[test]
  fn every_shape_import_reads_converts_and_garbage_is_corrupt() {
    let zip = zip_of(b"last-wid-md");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&zip).unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &zip);
    let pack = PackOptions::default();
    for value in [zip.clone(), gz.finish().unwrap(), b64.into_bytes()] {
      assert!(is_foreign(&value));
      let packed = convert(&value, &pack, "RemoteAuth-a").unwrap();
      assert!(!is_foreign(&packed.bytes));
      assert_eq!(packed.header.entries, 1);
    }
    let err = convert(b"\x00garbage that is nothing", &pack, "RemoteAuth-a").unwrap_err();
    assert_eq!(err.code(), "ERR_ARCHIVE_CORRUPT");
    assert!(err.to_string().contains("WWRS"), "{err}");
  }
}
