//! RemoteAuth's zip in, sealed archive out: streaming entry by entry, bounded, refusing what could escape.

use std::collections::HashSet;
use std::io::{Read, Seek};

use super::header::{seal, Header, FLAG_TAR_ZSTD, FORMAT_VERSION};
use super::{dos_to_unix, now_ms, EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

fn zip_err(e: impl std::fmt::Display) -> StoreError {
  StoreError::ZipInvalid(e.to_string())
}

/// Builds the archive of the kept directories of a zip. `source_bytes` is the zip's size, kept in the header.
pub fn pack_zip<R: Read + Seek>(reader: R, source_bytes: u64, opts: &PackOptions) -> Result<Packed> {
  let mut zip = zip::ZipArchive::new(reader).map_err(zip_err)?;
  let limits = opts.limits;
  if zip.len() as u64 > u64::from(limits.max_entries) {
    return Err(StoreError::ArchiveLimit(format!(
      "{} entries, limit {}",
      zip.len(),
      limits.max_entries
    )));
  }
  let encoder = zstd::Encoder::new(Vec::new(), opts.level).map_err(zip_err)?;
  let mut tar = tar::Builder::new(encoder);
  let (mut entries, mut files, mut files_bytes) = (0u32, 0u32, 0u64);
  let mut seen = HashSet::new();
  let mut data = Vec::new();

  for i in 0..zip.len() {
    let mut file = zip.by_index(i).map_err(zip_err)?;
    let entry = EntryPath::parse(&file.name().map_err(zip_err)?)?;
    if !entry.is_kept(&opts.keep) {
      continue;
    }
    let kind = file.unix_mode().map(|m| m & S_IFMT).filter(|&t| t != 0);
    if file.is_symlink() || kind.is_some_and(|t| t != S_IFREG && t != S_IFDIR) {
      return Err(StoreError::UnsafeEntry {
        name: entry.path,
        reason: "is a link or special file",
      });
    }
    if file.encrypted() {
      return Err(StoreError::ZipInvalid(format!("{} is encrypted", entry.path)));
    }
    if !seen.insert(entry.path.clone()) {
      return Err(StoreError::UnsafeEntry {
        name: entry.path,
        reason: "appears twice",
      });
    }
    let is_dir = entry.is_dir || file.is_dir();
    let mut header = tar::Header::new_gnu();
    let default_mode = if is_dir { 0o755 } else { 0o644 };
    header.set_mode(file.unix_mode().map_or(default_mode, |m| m & 0o7777));
    header.set_mtime(dos_to_unix(file.last_modified()));
    data.clear();
    if is_dir {
      header.set_entry_type(tar::EntryType::Directory);
    } else {
      let size = file.size();
      files_bytes = files_bytes.saturating_add(size);
      if files_bytes > limits.max_unpacked_bytes {
        return Err(StoreError::ArchiveLimit(format!(
          "kept files unpack to more than {} bytes",
          limits.max_unpacked_bytes
        )));
      }
      // Read one byte past the declared size: a stream that inflates beyond it is refused, not trusted.
      (&mut file).take(size + 1).read_to_end(&mut data).map_err(zip_err)?;
      if data.len() as u64 != size {
        return Err(StoreError::ZipInvalid(format!(
          "{} declares {size} bytes but holds {}",
          entry.path,
          data.len()
        )));
      }
      header.set_entry_type(tar::EntryType::Regular);
      files += 1;
    }
    header.set_size(data.len() as u64);
    let name = if is_dir { format!("{}/", entry.path) } else { entry.path };
    tar.append_data(&mut header, &name, data.as_slice()).map_err(zip_err)?;
    entries += 1;
  }

  if files == 0 {
    return Err(StoreError::EmptySession(opts.keep.join(", ")));
  }
  let payload = tar.into_inner().and_then(|enc| enc.finish()).map_err(zip_err)?;
  let header = Header {
    version: FORMAT_VERSION,
    flags: FLAG_TAR_ZSTD,
    entries,
    files_bytes,
    source_bytes,
    created_ms: now_ms(),
    payload_len: payload.len() as u64,
  };
  let bytes = seal(&header, &payload);
  Ok(Packed { header, bytes })
}
