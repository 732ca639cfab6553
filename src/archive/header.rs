//! The sealed archive: a fixed 76-byte header, then the payload. The BLAKE3 hash covers both, so any
//! truncation or flipped bit is caught before a single byte is decompressed.

use crate::error::{Result, StoreError};

pub const MAGIC: [u8; 4] = *b"WWRS";
pub const FORMAT_VERSION: u16 = 1;
/// Payload is a zstd-compressed tar stream (the only kind in version 1).
pub const FLAG_TAR_ZSTD: u16 = 1;
const FIELDS_LEN: usize = 44;
pub const HEADER_LEN: usize = FIELDS_LEN + 32;

/// What a stored session says about itself, readable without decompressing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
  pub version: u16,
  pub flags: u16,
  /// Files and directories in the archive.
  pub entries: u32,
  /// Sum of the kept files' sizes.
  pub files_bytes: u64,
  /// Size of the zip the archive was made from (0 when not made from a zip).
  pub source_bytes: u64,
  /// When the archive was made, in ms since the Unix epoch.
  pub created_ms: u64,
  pub payload_len: u64,
}

impl Header {
  fn fields(&self) -> [u8; FIELDS_LEN] {
    let mut out = [0u8; FIELDS_LEN];
    out[0..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&self.version.to_le_bytes());
    out[6..8].copy_from_slice(&self.flags.to_le_bytes());
    out[8..12].copy_from_slice(&self.entries.to_le_bytes());
    out[12..20].copy_from_slice(&self.files_bytes.to_le_bytes());
    out[20..28].copy_from_slice(&self.source_bytes.to_le_bytes());
    out[28..36].copy_from_slice(&self.created_ms.to_le_bytes());
    out[36..44].copy_from_slice(&self.payload_len.to_le_bytes());
    out
  }

  /// Total stored size: header plus payload.
  pub fn stored_bytes(&self) -> u64 {
    HEADER_LEN as u64 + self.payload_len
  }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
  u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
  u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
  u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Header plus payload, hashed together.
pub fn seal(header: &Header, payload: &[u8]) -> Vec<u8> {
  let fields = header.fields();
  let mut hasher = blake3::Hasher::new();
  hasher.update(&fields);
  hasher.update(payload);
  let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
  out.extend_from_slice(&fields);
  out.extend_from_slice(hasher.finalize().as_bytes());
  out.extend_from_slice(payload);
  out
}

/// Reads only the header fields (no hash check): for listings that must not fetch whole blobs.
pub fn peek(bytes: &[u8]) -> Result<Header> {
  let corrupt = |why: String| Err(StoreError::ArchiveCorrupt(why));
  if bytes.len() < FIELDS_LEN {
    return corrupt(format!(
      "{} bytes is shorter than the {HEADER_LEN}-byte header",
      bytes.len()
    ));
  }
  if bytes[0..4] != MAGIC {
    return corrupt("it does not start with the WWRS magic".into());
  }
  let header = Header {
    version: u16_at(bytes, 4),
    flags: u16_at(bytes, 6),
    entries: u32_at(bytes, 8),
    files_bytes: u64_at(bytes, 12),
    source_bytes: u64_at(bytes, 20),
    created_ms: u64_at(bytes, 28),
    payload_len: u64_at(bytes, 36),
  };
  if header.version == 0 || header.version > FORMAT_VERSION {
    return Err(StoreError::ArchiveVersion(header.version));
  }
  if header.flags != FLAG_TAR_ZSTD {
    return corrupt(format!("unknown flags {:#x}", header.flags));
  }
  Ok(header)
}

/// Checks length and hash; returns the header and the payload.
pub fn open(bytes: &[u8]) -> Result<(Header, &[u8])> {
  let header = peek(bytes)?;
  let have = bytes.len().saturating_sub(HEADER_LEN) as u64;
  if bytes.len() < HEADER_LEN || have != header.payload_len {
    return Err(StoreError::ArchiveCorrupt(format!(
      "truncated or padded: payload should be {} bytes, is {have}",
      header.payload_len
    )));
  }
  let (fields, rest) = bytes.split_at(FIELDS_LEN);
  let (hash, payload) = rest.split_at(32);
  let mut hasher = blake3::Hasher::new();
  hasher.update(fields);
  hasher.update(payload);
  if hasher.finalize() != blake3::Hash::from_bytes(hash.try_into().expect("32 bytes")) {
    return Err(StoreError::ArchiveCorrupt("checksum mismatch".into()));
  }
  Ok((header, payload))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn sample() -> Vec<u8> {
    let header = Header {
      version: FORMAT_VERSION,
      flags: FLAG_TAR_ZSTD,
      entries: 3,
      files_bytes: 10,
      source_bytes: 99,
      created_ms: 1,
      payload_len: 5,
    };
    seal(&header, b"hello")
  }

  #[test]
  fn round_trips() {
    let bytes = sample();
    let (header, payload) = open(&bytes).unwrap();
    assert_eq!(payload, b"hello");
    assert_eq!(header.entries, 3);
    assert_eq!(header.stored_bytes(), bytes.len() as u64);
  }

  #[test]
  fn every_flipped_bit_is_caught() {
    let good = sample();
    for i in 0..good.len() * 8 {
      let mut bad = good.clone();
      bad[i / 8] ^= 1 << (i % 8);
      let err = open(&bad).unwrap_err();
      assert!(
        matches!(err.code(), "ERR_ARCHIVE_CORRUPT" | "ERR_ARCHIVE_VERSION"),
        "bit {i}: {err}"
      );
    }
  }

  #[test]
  fn truncation_is_caught() {
    let good = sample();
    for len in 0..good.len() {
      assert_eq!(
        open(&good[..len]).unwrap_err().code(),
        "ERR_ARCHIVE_CORRUPT",
        "len {len}"
      );
    }
  }

  #[test]
  fn newer_versions_are_refused_by_code() {
    let mut bytes = sample();
    bytes[4] = 9;
    assert_eq!(open(&bytes).unwrap_err().code(), "ERR_ARCHIVE_VERSION");
  }
}
