//! RemoteAuth's zip in, sealed archive out. Only the central directory is read and checked (names, kinds,
//! declared sizes, limits); the kept entries' compressed bytes are copied as they are, never inflated here, in
//! the order that restores whole (`stream_safe`). Their CRCs and real sizes are checked where the bytes are read
//! anyway: at backup time, by `verify`, and by every rebuild (`read::visit`).

use std::io::{Read, Seek};

use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::names::Names;
use super::seal::{seal_zip, zip_write_err, Reserved};
use super::stream_safe::restore_order;
use super::{now_ms, EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
/// Deflate's best ratio is about 1032:1: a larger declared size is a lie, whatever the data.
const MAX_DEFLATE_RATIO: u64 = 1032;

fn zip_err(e: impl std::fmt::Display) -> StoreError {
  StoreError::ZipInvalid(e.to_string())
}

/// A kept entry: where it is in the zip, and what its name and size are.
struct Kept {
  index: usize,
  name: String,
  is_dir: bool,
  size: u64,
}

/// Builds the archive of the kept directories of a zip. `source_bytes` is the zip's size, kept in the header.
pub fn pack_zip<R: Read + Seek>(reader: R, source_bytes: u64, opts: &PackOptions, session: &str) -> Result<Packed> {
  let mut zip = ZipArchive::new(reader).map_err(zip_err)?;
  if zip.len() as u64 > u64::from(opts.limits.max_entries) {
    return Err(StoreError::ArchiveLimit(format!("{} entries, limit {}", zip.len(), opts.limits.max_entries)));
  }
  let mut names = Names::new(opts.limits);
  let mut kept = Vec::new();
  for index in 0..zip.len() {
    let file = zip.by_index_raw(index).map_err(zip_err)?;
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
    let (size, packed) = (file.size(), file.compressed_size());
    let plausible = match file.compression() {
      _ if is_dir => size == 0,
      CompressionMethod::Stored => size == packed,
      CompressionMethod::Deflated => size <= packed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(64),
      other => {
        return Err(StoreError::ZipInvalid(format!("{} uses {other}, which RemoteAuth cannot unzip", entry.path)))
      }
    };
    if !plausible {
      return Err(StoreError::ZipInvalid(format!("{} declares {size} bytes from {packed} stored", entry.path)));
    }
    names.admit(&entry, (!is_dir).then_some(size))?;
    let name = if is_dir { format!("{}/", entry.path) } else { entry.path };
    kept.push(Kept { index, name, is_dir, size });
  }
  let counts = names.finish()?;
  if counts.files == 0 {
    return Err(StoreError::EmptySession(opts.keep.join(", ")));
  }

  let shape: Vec<(bool, u64)> = kept.iter().map(|k| (k.is_dir, k.size)).collect();
  let mut out = ZipWriter::new(Reserved::new(opts.keys.is_some()));
  for at in restore_order(&shape) {
    let entry = &kept[at];
    let file = zip.by_index_raw(entry.index).map_err(zip_err)?;
    // The checked name, not the raw one: the local header unzipper reads says exactly what was checked.
    out.raw_copy_file_rename(file, &entry.name).map_err(|e| match e {
      zip::result::ZipError::Io(io) => zip_err(io),
      other => zip_write_err(other),
    })?;
  }
  let payload = out.finish().map_err(zip_write_err)?;
  seal_zip(payload, counts, source_bytes, now_ms(), opts.keys.as_deref(), session)
}
