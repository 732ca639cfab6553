//! An archive as a list of entries, and back: for copies rebuilt from elsewhere (incremental backups keep the
//! files as chunks and rebuild the archive on restore).

use std::io::Read;

use super::builder::Builder;
use super::crypt::{self, Keyring};
use super::header::{open, Header};
use super::{EntryPath, PackOptions, Packed};
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

fn corrupt(e: impl std::fmt::Display) -> StoreError {
  StoreError::ArchiveCorrupt(e.to_string())
}

/// The entries of a sealed archive of `session`, in archive order (checksum checked, decrypted with `keys`).
pub fn read_entries(archive: &[u8], keys: Option<&Keyring>, session: &str) -> Result<(Header, Vec<Entry>)> {
  let (header, payload) = open(archive)?;
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  let mut tar = tar::Archive::new(zstd::Decoder::with_buffer(payload).map_err(corrupt)?);
  let mut out = Vec::new();
  for item in tar.entries().map_err(corrupt)? {
    let mut item = item.map_err(corrupt)?;
    let raw = String::from_utf8(item.path_bytes().into_owned()).map_err(corrupt)?;
    let path = EntryPath::parse(&raw)?.path;
    let (mode, mtime) = (item.header().mode().map_err(corrupt)?, item.header().mtime().map_err(corrupt)?);
    let data = match item.header().entry_type() {
      tar::EntryType::Directory => Data::Dir,
      tar::EntryType::Regular => {
        let mut bytes = Vec::with_capacity(item.size() as usize);
        item.read_to_end(&mut bytes).map_err(corrupt)?;
        Data::File(bytes)
      }
      other => return Err(corrupt(format!("unexpected entry type {other:?} for {path}"))),
    };
    out.push(Entry { path, mode, mtime, data });
  }
  Ok((header, out))
}

/// A sealed archive of `session` from entries, saved at `created_ms`.
pub fn pack_entries(
  entries: &[Entry],
  opts: &PackOptions,
  session: &str,
  source_bytes: u64,
  created_ms: u64,
) -> Result<Packed> {
  let mut archive = Builder::new(opts, session, |why| StoreError::Internal(format!("rebuilding an archive: {why}")))?;
  for entry in entries {
    let name = EntryPath::parse(&entry.path)?;
    match &entry.data {
      Data::Dir => archive.add_dir(&name, entry.mode, entry.mtime)?,
      Data::File(bytes) => archive.add_file(&name, entry.mode, entry.mtime, bytes.len() as u64, &bytes[..])?,
    }
  }
  archive.finish_at(source_bytes, created_ms)
}
