//! The sealed archive: a fixed 76-byte header, then the payload. The BLAKE3 hash covers both, so any
//! truncation or flipped bit is caught before a single byte is decompressed.

use crate::error::{Result, StoreError};

pub const MAGIC: [u8; 4] = *b"WWRS";
/// The newest version this build reads. Versions 1 (plain) and 2 (plain or encrypted) hold a tar + zstd payload
/// and are only read now; version 3 holds a zip. A build that predates a version sees a newer version, never a
/// "damaged" copy to replace.
pub const FORMAT_VERSION: u16 = 3;
pub const PLAIN_VERSION: u16 = 1;
pub const ENCRYPTED_VERSION: u16 = 2;
pub const ZIP_VERSION: u16 = 3;
/// Payload is a zstd-compressed tar stream (versions 1 and 2).
pub const FLAG_TAR_ZSTD: u16 = 1;
/// The payload is encrypted (see `crypt`): version 2 and later.
pub const FLAG_ENCRYPTED: u16 = 2;
/// Payload is a zip of the kept entries, their compressed data as RemoteAuth's zip had it (version 3).
pub const FLAG_ZIP: u16 = 4;
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

  /// Both headers describe the same save. A key rotation re-seals a copy (new bytes, new nonce) and an
  /// incremental backup rebuilds it, but neither changes these fields.
  pub fn same_save(&self, other: &Header) -> bool {
    (self.created_ms, self.entries, self.files_bytes, self.source_bytes)
      == (other.created_ms, other.entries, other.files_bytes, other.source_bytes)
  }

  pub fn encrypted(&self) -> bool {
    self.flags & FLAG_ENCRYPTED != 0
  }

  /// The payload (decrypted) is a zip; else a tar + zstd stream of an older version.
  pub fn is_zip(&self) -> bool {
    self.flags & FLAG_ZIP != 0
  }

  /// What encryption binds the ciphertext to: every field but the payload length (known only after), and the
  /// session's name, so a blob copied onto another session's key does not decrypt there.
  pub fn associated_data(&self, session: &str) -> Vec<u8> {
    let mut aad = self.fields()[..36].to_vec();
    aad.extend_from_slice(session.as_bytes());
    aad
  }

  /// Total stored size: header plus payload.
  pub fn stored_bytes(&self) -> u64 {
    self.payload_len.saturating_add(HEADER_LEN as u64)
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

fn hash(fields: &[u8], payload: &[u8]) -> blake3::Hash {
  let mut hasher = blake3::Hasher::new();
  hasher.update(fields);
  hasher.update(payload);
  hasher.finalize()
}

/// Fills in the header of `buf`, whose first `HEADER_LEN` bytes were reserved for it and whose rest is the
/// payload: the payload is never copied.
pub fn seal(header: &Header, buf: &mut [u8]) {
  let fields = header.fields();
  let digest = hash(&fields, &buf[HEADER_LEN..]);
  buf[..FIELDS_LEN].copy_from_slice(&fields);
  buf[FIELDS_LEN..HEADER_LEN].copy_from_slice(digest.as_bytes());
}

fn corrupt<T>(why: impl Into<String>) -> Result<T> {
  Err(StoreError::ArchiveCorrupt(why.into()))
}

/// Reads only the header fields (no hash check): for listings that must not fetch whole blobs.
pub fn peek(bytes: &[u8]) -> Result<Header> {
  if bytes.len() < FIELDS_LEN {
    return corrupt(format!("{} bytes is shorter than the {HEADER_LEN}-byte header", bytes.len()));
  }
  if bytes[0..4] != MAGIC {
    return corrupt("it does not start with the WWRS magic");
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
    return Err(StoreError::ArchiveVersion { what: "archive", found: header.version, max: FORMAT_VERSION });
  }
  let known = match header.version {
    PLAIN_VERSION => header.flags == FLAG_TAR_ZSTD,
    ENCRYPTED_VERSION => header.flags == FLAG_TAR_ZSTD || header.flags == FLAG_TAR_ZSTD | FLAG_ENCRYPTED,
    _ => header.flags == FLAG_ZIP || header.flags == FLAG_ZIP | FLAG_ENCRYPTED,
  };
  if !known {
    return corrupt(format!("unknown flags {:#x} for version {}", header.flags, header.version));
  }
  Ok(header)
}

/// Checks the hash first (so a flipped bit anywhere is `ArchiveCorrupt`, never a misleading version error),
/// then the fields; returns the header and the payload.
pub fn open(bytes: &[u8]) -> Result<(Header, &[u8])> {
  if bytes.len() < HEADER_LEN {
    return corrupt(format!("{} bytes is shorter than the {HEADER_LEN}-byte header", bytes.len()));
  }
  let (head, payload) = bytes.split_at(HEADER_LEN);
  let (fields, digest) = head.split_at(FIELDS_LEN);
  if hash(fields, payload) != blake3::Hash::from_bytes(digest.try_into().expect("32 bytes")) {
    return corrupt("checksum mismatch (truncated or damaged)");
  }
  let header = peek(bytes)?;
  if header.payload_len != payload.len() as u64 {
    return corrupt(format!("payload should be {} bytes, is {}", header.payload_len, payload.len()));
  }
  Ok((header, payload))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn sample() -> Vec<u8> {
    let header = Header {
      version: FORMAT_VERSION,
      flags: FLAG_ZIP,
      entries: 3,
      files_bytes: 10,
      source_bytes: 99,
      created_ms: 1,
      payload_len: 5,
    };
    let mut buf = vec![0u8; HEADER_LEN];
    buf.extend_from_slice(b"hello");
    seal(&header, &mut buf);
    buf
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
      assert!(matches!(err.code(), "ERR_ARCHIVE_CORRUPT" | "ERR_ARCHIVE_VERSION"), "bit {i}: {err}");
    }
  }

  #[test]
  fn truncation_is_caught() {
    let good = sample();
    for len in 0..good.len() {
      assert_eq!(open(&good[..len]).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT", "len {len}");
    }
  }

  #[test]
  fn newer_versions_are_refused_by_code() {
    let header = peek(&sample()).unwrap();
    let mut buf = vec![0u8; HEADER_LEN];
    buf.extend_from_slice(b"hello");
    seal(&Header { version: FORMAT_VERSION + 1, ..header }, &mut buf);
    assert_eq!(open(&buf).unwrap_err().code(), "ERR_ARCHIVE_VERSION");
  }
}
