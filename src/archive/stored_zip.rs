//! A stored zip payload read the way RemoteAuth's unzip will read it, before `extract` hands it over. unzipper's
//! streaming Extract never looks at the central directory: it walks the local headers from the first byte. So a
//! payload passes only when that walk sees exactly what the directory says: entries back to back from offset 0 to
//! the directory, each local header naming the same entry with the same method, CRC and sizes (no data
//! descriptor), and every name passing the save path's own check (`names`). Anyone who can write the tier can
//! recompute a plain archive's checksum; this is what keeps such an archive out of other folders.

use std::io::Cursor;

use zip::ZipArchive;

use super::names::{entry_name, Names};
use super::verify::{check_part, Method, Shared, Span};
use super::Limits;
use crate::error::{Result, StoreError};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
  StoreError::ArchiveCorrupt(e.to_string())
}

fn u16_at(b: &[u8], i: usize) -> u16 {
  u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
  u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Stored (0) and deflated (8) are all a stored payload holds.
fn method_matches(local: u16, central: zip::CompressionMethod) -> bool {
  matches!((local, central), (0, zip::CompressionMethod::Stored) | (8, zip::CompressionMethod::Deflated))
}

/// Checks `payload` as above; the limits bound what its directory may declare. With `inflate` (a plain archive,
/// whose hash anyone who can write the tier can recompute) every file is also inflated and checked against its
/// size and CRC as a save checks it, so unzipper, which inflates without a bound, gets nothing a save refuses
/// (entries a save of this process verified are remembered and only hashed).
pub(super) fn check_stored_zip(payload: &[u8], limits: &Limits, inflate: bool) -> Result<()> {
  let mut zip = ZipArchive::new(Cursor::new(payload)).map_err(corrupt)?;
  if zip.has_duplicate_names() {
    return Err(StoreError::UnsafeEntry { name: "(one of the archive's entries)".into(), reason: "appears twice" });
  }
  let mut names = Names::new(*limits);
  let mut extents = Vec::with_capacity(zip.len());
  let mut spans = Vec::new();
  for i in 0..zip.len() {
    let file = zip.by_index_raw(i).map_err(corrupt)?;
    let entry = entry_name(file.name_raw(), &file.name().map_err(corrupt)?)?;
    let is_dir = entry.is_dir || file.is_dir();
    if file.is_symlink() {
      return Err(StoreError::UnsafeEntry { name: entry.path, reason: "is a link or special file" });
    }
    if is_dir && (file.size() != 0 || file.compressed_size() != 0) {
      return Err(StoreError::UnsafeEntry { name: entry.path, reason: "is a folder that carries data" });
    }
    names.admit(&entry, (!is_dir).then_some(file.size()))?;
    let at = usize::try_from(file.header_start()).map_err(corrupt)?;
    let local = payload.get(at..at.saturating_add(30)).ok_or_else(|| corrupt("a local header lies past the end"))?;
    let (name_len, extra_len) = (usize::from(u16_at(local, 26)), usize::from(u16_at(local, 28)));
    let local_name = payload.get(at + 30..at + 30 + name_len);
    let fits = |declared: u32, real: u64| u64::from(declared) == real || (declared == u32::MAX && real >= 0xFFFF_FFFF);
    let agrees = &local[..4] == b"PK\x03\x04"
      && u16_at(local, 6) & 0x8 == 0
      && method_matches(u16_at(local, 8), file.compression())
      && u32_at(local, 14) == file.crc32()
      && fits(u32_at(local, 18), file.compressed_size())
      && fits(u32_at(local, 22), file.size())
      && local_name == Some(file.name_raw());
    if !agrees {
      return Err(corrupt(format!("the local header of {} disagrees with the directory", entry.path)));
    }
    let end = (at + 30 + name_len + extra_len) as u64 + file.compressed_size();
    extents.push((at as u64, end));
    if !is_dir {
      let method = if file.compression() == zip::CompressionMethod::Stored { Method::Stored } else { Method::Deflated };
      let data = at + 30 + name_len + extra_len..usize::try_from(end).map_err(corrupt)?;
      spans.push(Span { name: entry.path, data, method, size: file.size(), crc: file.crc32() });
    }
  }
  names.finish()?;
  extents.sort_unstable();
  let mut next = 0;
  for (start, end) in extents {
    if start != next {
      return Err(corrupt("its entries do not follow one another"));
    }
    next = end;
  }
  if next != zip.central_directory_start() {
    return Err(corrupt("bytes between its last entry and its directory"));
  }
  if inflate {
    let all: Vec<usize> = (0..spans.len()).collect();
    check_part(payload, &spans, &all, limits.max_unpacked_bytes, &Shared::default()).map_err(|e| match e {
      StoreError::ZipInvalid(why) => corrupt(why),
      other => other,
    })?;
  }
  Ok(())
}
