//! An archive as a list of entries, and back: for copies rebuilt from elsewhere (incremental backups keep the
//! files as chunks and rebuild the archive on restore).

use super::builder::Builder;
use super::crypt::{self, Keyring};
use super::header::{open, Header};
use super::read::{read_all, visit};
use super::stream_safe::restore_order;
use super::{EntryPath, Limits, PackOptions, Packed};
use crate::error::{Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
  Dir,
  File(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
  /// `/`-separated, as in the archive (directories without the trailing `/`).
  pub path: String,
  pub mode: u32,
  pub mtime: u64,
  pub data: Data,
}

/// The entries of a sealed archive of `session`, in archive order: checksum checked, decrypted with `keys`, every
/// file inflated and checked (CRC, sizes), nothing over `limits`.
pub fn read_entries(
  archive: &[u8],
  keys: Option<&Keyring>,
  limits: &Limits,
  session: &str,
) -> Result<(Header, Vec<Entry>)> {
  let (header, payload) = open(archive)?;
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  let mut out = Vec::new();
  visit(&header, payload, limits, |meta, data| {
    let data = match meta.size {
      Some(_) => Data::File(read_all(data)?),
      None => Data::Dir,
    };
    out.push(Entry { path: meta.path.path, mode: meta.mode, mtime: meta.mtime, data });
    Ok(())
  })?;
  Ok((header, out))
}

/// A sealed archive of `session` from entries, saved at `created_ms`, in restore order.
pub fn pack_entries(
  entries: &[Entry],
  opts: &PackOptions,
  session: &str,
  source_bytes: u64,
  created_ms: u64,
) -> Result<Packed> {
  let mut archive = Builder::new(opts, session, |why| StoreError::Internal(format!("rebuilding an archive: {why}")))?;
  let shape: Vec<(bool, u64)> = entries
    .iter()
    .map(|e| match &e.data {
      Data::Dir => (true, 0),
      Data::File(bytes) => (false, bytes.len() as u64),
    })
    .collect();
  for at in restore_order(&shape) {
    let entry = &entries[at];
    let name = EntryPath::parse(&entry.path)?;
    match &entry.data {
      Data::Dir => archive.add_dir(&name, entry.mode, entry.mtime)?,
      Data::File(bytes) => archive.add_file(&name, entry.mode, entry.mtime, bytes.len() as u64, &bytes[..])?,
    }
  }
  archive.finish_at(source_bytes, created_ms)
}
