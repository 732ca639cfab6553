//! What a session holds, as one hash: the kept entries' names, kinds, CRCs, sizes and compressed bytes. A stored
//! archive (version 3) keeps RemoteAuth's compressed bytes as they are, so a zip and the archive made from it
//! hash alike: an import can tell "already stored" from "changed" without inflating anything.

use std::io::{Cursor, Read, Seek};

use zip::ZipArchive;

use super::{crypt, open, EntryPath, Keyring, PAD_NAME};
use crate::error::{Result, StoreError};

pub type Fingerprint = [u8; 32];

/// The fingerprint of the entries of `zip` inside the `keep` directories.
pub fn fingerprint_zip<R: Read + Seek>(zip: R, keep: &[String]) -> Result<Fingerprint> {
  let mut zip = ZipArchive::new(zip).map_err(|e| StoreError::ZipInvalid(e.to_string()))?;
  let mut items = Vec::new();
  for index in 0..zip.len() {
    let mut file = zip.by_index_raw(index).map_err(|e| StoreError::ZipInvalid(e.to_string()))?;
    let entry = EntryPath::parse(&file.name().map_err(|e| StoreError::ZipInvalid(e.to_string()))?)?;
    if entry.path == PAD_NAME || !entry.is_kept(keep) {
      continue;
    }
    let is_dir = entry.is_dir || file.is_dir();
    let mut data = blake3::Hasher::new();
    std::io::copy(&mut file, &mut data).map_err(|e| StoreError::ZipInvalid(e.to_string()))?;
    let line = format!("{}\0{is_dir}\0{:08x}\0{}\0{}", entry.path, file.crc32(), file.size(), data.finalize());
    items.push(line);
  }
  items.sort();
  let mut all = blake3::Hasher::new();
  for item in &items {
    all.update(item.as_bytes()).update(b"\n");
  }
  Ok(*all.finalize().as_bytes())
}

/// The fingerprint of a stored archive of `session`; `None` for the formats before version 3 (a zstd tar, whose
/// bytes cannot match a zip's).
pub fn fingerprint(
  bytes: &[u8],
  keys: Option<&Keyring>,
  keep: &[String],
  session: &str,
) -> Result<Option<Fingerprint>> {
  let (header, payload) = open(bytes)?;
  if !header.is_zip() {
    return Ok(None);
  }
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  fingerprint_zip(Cursor::new(payload), keep).map(Some)
}
