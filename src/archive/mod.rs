//! The session archive format: what a store keeps of RemoteAuth's zip. Knows nothing of storage.
//!
//! A sealed archive is a 76-byte header (format version, sizes, BLAKE3 of everything) followed by the payload,
//! encrypted when keys are given: a zip of the kept entries, their compressed bytes as RemoteAuth's zip had them,
//! in the order RemoteAuth's streaming unzip restores whole (version 3), or, in archives written before, a
//! zstd-compressed tar (versions 1 and 2, still read).

mod builder;
pub mod crypt;
mod entries;
mod entry;
mod fingerprint;
mod foreign;
mod from_dir;
mod from_zip;
mod header;
mod leveldb;
mod names;
mod read;
mod seal;
mod stored_zip;
mod stream_safe;
mod to_dir;
mod to_zip;
mod verify;

pub use crypt::{refuse_plain_reseal, Key, Keyring};
pub use entries::{pack_entries, read_entries, Data, Entry};
pub use entry::{default_keep, parse_keep, EntryPath};
pub use fingerprint::{fingerprint, fingerprint_zip, Fingerprint};
pub use foreign::unwrap_zip;
pub use from_dir::pack_dir;
pub use from_zip::{pack_zip, ZipSave};
pub use header::{open, peek, Header, FLAG_ENCRYPTED, FLAG_TAR_ZSTD, FLAG_ZIP, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use stream_safe::{HOLDS_BACK, PAD_NAME};
pub use to_dir::write_dir;
pub use to_zip::{write_zip, write_zip_padded, Written};

/// Bounds on what a zip may expand to, against zip bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
  pub max_entries: u32,
  pub max_unpacked_bytes: u64,
}

impl Default for Limits {
  fn default() -> Self {
    // A long WhatsApp history is tens of MB in a few hundred files; these leave room and still stop bombs.
    Self { max_entries: 20_000, max_unpacked_bytes: 1 << 30 }
  }
}

/// How to turn a zip into an archive.
#[derive(Debug, Clone)]
pub struct PackOptions {
  /// Directories (relative, `/`-separated) to keep; everything else in the zip is dropped.
  pub keep: Vec<String>,
  pub limits: Limits,
  /// zstd level (1–22) of incremental backup chunks. Whole archives keep RemoteAuth's deflate streams; what the
  /// store compresses itself is deflated at `DEFLATE_LEVEL`.
  pub level: i32,
  /// Encrypt with the current key, decrypt with any: `None` stores plain archives (and reads only those).
  pub keys: Option<std::sync::Arc<Keyring>>,
}

/// Same size as gzip -6 on session data at a quarter of its time (README, "Archive format").
pub const DEFAULT_LEVEL: i32 = 3;

impl Default for PackOptions {
  fn default() -> Self {
    Self { keep: default_keep(), limits: Limits::default(), level: DEFAULT_LEVEL, keys: None }
  }
}

/// An archive ready to store, with what its header says.
#[derive(Debug, Clone)]
pub struct Packed {
  pub header: Header,
  pub bytes: Vec<u8>,
}

fn now_ms() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// zip keeps DOS date-times (no zone, 2 s steps); we carry them through tar as if they were UTC,
/// so the zip that comes out shows the same date-time that went in.
fn dos_to_unix(dt: Option<zip::DateTime>) -> u64 {
  dt.and_then(|dt| time::PrimitiveDateTime::try_from(dt).ok())
    .map(|p| p.assume_utc().unix_timestamp().max(0) as u64)
    .unwrap_or(0)
}

fn unix_to_dos(secs: u64) -> zip::DateTime {
  i64::try_from(secs)
    .ok()
    .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
    .and_then(|t| zip::DateTime::try_from(time::PrimitiveDateTime::new(t.date(), t.time())).ok())
    .unwrap_or(zip::DateTime::DEFAULT)
}

#[cfg(test)]
pub(crate) mod tests;

/// Checks an archive of `session` as far as `keys` allow: the checksum always; with keys, that it is encrypted
/// (or plain archives are accepted) and decrypts; and whenever the payload can be read, every file inflated
/// against its CRC and declared size, nothing over `limits`.
pub fn check(bytes: &[u8], keys: Option<&Keyring>, limits: &Limits, session: &str) -> crate::error::Result<Header> {
  let (header, payload) = open(bytes)?;
  if keys.is_none() && header.encrypted() {
    return Ok(header);
  }
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  read::visit(&header, payload, limits, |_, data| {
    std::io::copy(data, &mut std::io::sink()).map_err(|e| crate::error::StoreError::ArchiveCorrupt(e.to_string()))?;
    Ok(())
  })?;
  Ok(header)
}

/// The same archive under `keys`' current key (same fields, `created_ms` included); `None` when it already is.
/// Plain archives get encrypted, archives under a previous key re-encrypted.
pub fn reencrypt(bytes: &[u8], keys: &Keyring, session: &str) -> crate::error::Result<Option<Vec<u8>>> {
  let (header, payload) = open(bytes)?;
  if header.encrypted() && crypt::key_id(payload).as_deref() == Some(&keys.current().id_hex()) {
    return Ok(None);
  }
  let plain = match header.encrypted() {
    true => crypt::decrypt(Some(keys), &header.associated_data(session), payload)?,
    false => zeroize::Zeroizing::new(payload.to_vec()),
  };
  let header = Header {
    // The payload's kind stays; only encryption is added.
    version: if header.is_zip() { header::ZIP_VERSION } else { header::ENCRYPTED_VERSION },
    flags: header.flags | header::FLAG_ENCRYPTED,
    payload_len: (crypt::PREFIX_LEN + plain.len() + crypt::TAG_LEN) as u64,
    ..header
  };
  let mut out = vec![0u8; HEADER_LEN + crypt::PREFIX_LEN];
  out.extend_from_slice(&plain);
  let tag = crypt::encrypt(keys.current(), &header.associated_data(session), &mut out[HEADER_LEN..])?;
  out.extend_from_slice(&tag);
  header::seal(&header, &mut out);
  Ok(Some(out))
}
