//! RemoteAuth's zip in, sealed archive out: streaming entry by entry, bounded, refusing what could escape.

use std::collections::HashSet;
use std::io::{self, Read, Seek};

use super::header::{seal, Header, FLAG_TAR_ZSTD, FORMAT_VERSION, HEADER_LEN};
use super::{dos_to_unix, now_ms, EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

fn zip_err(e: impl std::fmt::Display) -> StoreError {
  StoreError::ZipInvalid(e.to_string())
}

/// Counts the bytes that pass through, so an entry that inflates to more or less than it declares is caught.
struct Counted<R> {
  inner: R,
  count: u64,
}

impl<R: Read> Read for Counted<R> {
  fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
    let n = self.inner.read(buf)?;
    self.count += n as u64;
    Ok(n)
  }
}

/// Builds the archive of the kept directories of a zip. `source_bytes` is the zip's size, kept in the header.
/// Entries stream from the zip through tar into zstd; only the compressed result is held in memory.
pub fn pack_zip<R: Read + Seek>(reader: R, source_bytes: u64, opts: &PackOptions) -> Result<Packed> {
  let mut zip = zip::ZipArchive::new(reader).map_err(zip_err)?;
  let limits = opts.limits;
  if zip.len() as u64 > u64::from(limits.max_entries) {
    return Err(StoreError::ArchiveLimit(format!("{} entries, limit {}", zip.len(), limits.max_entries)));
  }
  // The header's bytes are reserved up front and filled in last, so the payload is never copied.
  let encoder = zstd::Encoder::new(vec![0u8; HEADER_LEN], opts.level).map_err(zip_err)?;
  let mut tar = tar::Builder::new(encoder);
  let (mut entries, mut files, mut files_bytes) = (0u32, 0u32, 0u64);
  let mut seen = HashSet::new();

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
    if !seen.insert(entry.path.clone()) {
      return Err(StoreError::UnsafeEntry { name: entry.path, reason: "appears twice" });
    }
    let is_dir = entry.is_dir || file.is_dir();
    let mut header = tar::Header::new_gnu();
    // Permission bits only: setuid, setgid and sticky never travel.
    header.set_mode(file.unix_mode().map_or(if is_dir { 0o700 } else { 0o600 }, |m| m & 0o777));
    header.set_mtime(dos_to_unix(file.last_modified()));
    if is_dir {
      header.set_entry_type(tar::EntryType::Directory);
      header.set_size(0);
      tar.append_data(&mut header, format!("{}/", entry.path), io::empty()).map_err(zip_err)?;
    } else {
      let size = file.size();
      files_bytes = files_bytes.saturating_add(size);
      if files_bytes > limits.max_unpacked_bytes {
        return Err(StoreError::ArchiveLimit(format!(
          "kept files unpack to more than {} bytes",
          limits.max_unpacked_bytes
        )));
      }
      header.set_entry_type(tar::EntryType::Regular);
      header.set_size(size);
      // One byte past the declared size is let through so that a longer stream shows up in the count.
      let mut data = Counted { inner: (&mut file).take(size.saturating_add(1)), count: 0 };
      tar.append_data(&mut header, &entry.path, &mut data).map_err(zip_err)?;
      if data.count != size {
        return Err(StoreError::ZipInvalid(format!("{} declares {size} bytes but holds {}", entry.path, data.count)));
      }
      files += 1;
    }
    entries += 1;
  }

  if files == 0 {
    return Err(StoreError::EmptySession(opts.keep.join(", ")));
  }
  let mut bytes = tar.into_inner().and_then(|enc| enc.finish()).map_err(zip_err)?;
  let header = Header {
    version: FORMAT_VERSION,
    flags: FLAG_TAR_ZSTD,
    entries,
    files_bytes,
    source_bytes,
    created_ms: now_ms(),
    payload_len: (bytes.len() - HEADER_LEN) as u64,
  };
  seal(&header, &mut bytes);
  Ok(Packed { header, bytes })
}
