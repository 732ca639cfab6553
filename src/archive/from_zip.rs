//! RemoteAuth's zip in, sealed archive out: streaming entry by entry, bounded, refusing what could escape.

use std::io::{Read, Seek};

use super::builder::Builder;
use super::{dos_to_unix, EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

fn zip_err(e: impl std::fmt::Display) -> StoreError {
  StoreError::ZipInvalid(e.to_string())
}

/// Builds the archive of the kept directories of a zip. `source_bytes` is the zip's size, kept in the header.
/// Entries stream from the zip through tar into zstd; only the compressed result is held in memory.
pub fn pack_zip<R: Read + Seek>(reader: R, source_bytes: u64, opts: &PackOptions, session: &str) -> Result<Packed> {
  let mut zip = zip::ZipArchive::new(reader).map_err(zip_err)?;
  if zip.len() as u64 > u64::from(opts.limits.max_entries) {
    return Err(StoreError::ArchiveLimit(format!("{} entries, limit {}", zip.len(), opts.limits.max_entries)));
  }
  let mut archive = Builder::new(opts, session, StoreError::ZipInvalid)?;
  for i in 0..zip.len() {
    let mut file = zip.by_index(i).map_err(zip_err)?;
    let entry = EntryPath::parse(&file.name().map_err(zip_err)?)?;
    if !entry.is_kept(&opts.keep) {
      continue;
    }
    let kind = file.unix_mode().map(|m| m & S_IFMT).filter(|&t| t != 0);
    if file.is_symlink() || kind.is_some_and(|t| t != S_IFREG && t != S_IFDIR) {
      return Err(StoreError::UnsafeEntry { name: entry.path, reason: "is a link or special file" });
    }
    if file.encrypted() {
      return Err(StoreError::ZipInvalid(format!("{} is encrypted", entry.path)));
    }
    let is_dir = entry.is_dir || file.is_dir();
    let mode = file.unix_mode().unwrap_or(if is_dir { 0o700 } else { 0o600 });
    let mtime = dos_to_unix(file.last_modified());
    if is_dir {
      archive.add_dir(&entry, mode, mtime)?;
    } else {
      let size = file.size();
      archive.add_file(&entry, mode, mtime, size, &mut file)?;
    }
  }
  archive.finish(source_bytes)
}
