//! A payload written behind room for the header (and, when keyed, the key id and nonce), then sealed where it
//! lies: the payload is never copied, and it is encrypted in place.

use std::io::{self, Cursor, Seek, SeekFrom, Write};

use super::crypt::{self, Keyring, PREFIX_LEN};
use super::header::{seal, Header, FLAG_ENCRYPTED, FLAG_ZIP, HEADER_LEN, ZIP_VERSION};
use super::names::Counts;
use super::Packed;
use crate::error::{Result, StoreError};

/// A buffer whose first bytes are reserved for the header: a zip writer sees the payload start at offset 0, so
/// the offsets it records are the payload's own.
pub(super) struct Reserved {
  buf: Cursor<Vec<u8>>,
  base: u64,
}

impl Reserved {
  pub fn new(keyed: bool) -> Self {
    let base = HEADER_LEN + if keyed { PREFIX_LEN } else { 0 };
    let mut buf = Cursor::new(vec![0u8; base]);
    buf.set_position(base as u64);
    Self { buf, base: base as u64 }
  }

  pub fn into_inner(self) -> Vec<u8> {
    self.buf.into_inner()
  }
}

impl Write for Reserved {
  fn write(&mut self, data: &[u8]) -> io::Result<usize> {
    self.buf.write(data)
  }
  fn flush(&mut self) -> io::Result<()> {
    Ok(())
  }
}

impl Seek for Reserved {
  fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
    let pos = match pos {
      SeekFrom::Start(at) => SeekFrom::Start(at + self.base),
      other => other,
    };
    let at = self.buf.seek(pos)?;
    if at < self.base {
      self.buf.set_position(self.base);
      return Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before the payload"));
    }
    Ok(at - self.base)
  }
}

/// Seals a zip payload written into `Reserved` as an archive of `session`: encrypted under `keys`' current key
/// when given, then the header and its BLAKE3 over everything.
pub(super) fn seal_zip(
  reserved: Reserved,
  counts: Counts,
  source_bytes: u64,
  created_ms: u64,
  keys: Option<&Keyring>,
  session: &str,
) -> Result<Packed> {
  let mut bytes = reserved.into_inner();
  let tag_len = if keys.is_some() { crypt::TAG_LEN } else { 0 };
  let header = Header {
    version: ZIP_VERSION,
    flags: FLAG_ZIP | if keys.is_some() { FLAG_ENCRYPTED } else { 0 },
    entries: counts.entries,
    files_bytes: counts.files_bytes,
    source_bytes,
    created_ms,
    payload_len: (bytes.len() - HEADER_LEN + tag_len) as u64,
  };
  if let Some(keys) = keys {
    let tag = crypt::encrypt(keys.current(), &header.associated_data(session), &mut bytes[HEADER_LEN..])?;
    bytes.extend_from_slice(&tag);
  }
  seal(&header, &mut bytes);
  Ok(Packed { header, bytes })
}

pub(super) fn zip_write_err(e: zip::result::ZipError) -> StoreError {
  StoreError::Internal(format!("writing an archive: {e}"))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_zip_writer_sees_offsets_from_the_payload() {
    let mut out = Reserved::new(true);
    out.write_all(b"abc").unwrap();
    assert_eq!(out.stream_position().unwrap(), 3);
    assert_eq!(out.seek(SeekFrom::Start(1)).unwrap(), 1);
    assert!(out.seek(SeekFrom::Current(-5)).is_err());
    let bytes = out.into_inner();
    assert_eq!(bytes.len(), HEADER_LEN + PREFIX_LEN + 3);
    assert_eq!(&bytes[HEADER_LEN + PREFIX_LEN..], b"abc");
  }
}
