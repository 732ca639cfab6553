//! Sealed archive in, the zip RemoteAuth restores out. Nothing is written before the checksum holds.
//!
//! A zip payload is written as it is (already in restore order, `stream_safe`), plus the pad file when its last
//! file is small. An older tar payload is unpacked into a zip of stored entries in the same order.

use std::io::{Cursor, Seek, Write};

use zip::write::SimpleFileOptions;
use zip::{ZipArchive, ZipWriter};

use super::crypt::{self, Keyring};
use super::header::{open, Header};
use super::read::{read_all, visit};
use super::stored_zip::check_stored_zip;
use super::stream_safe::{add_pad, needs_pad, restore_order, HOLDS_BACK};
use super::{unix_to_dos, Limits};
use crate::error::{Result, StoreError};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
  StoreError::ArchiveCorrupt(e.to_string())
}

/// Writes the archive's entries as a zip into `out` (empty, at its start). Write failures come back as `Io`
/// naming `target`; an older archive that declares more than `limits` is refused before it is unpacked, and a zip
/// payload whose entries or names the save path would refuse is refused before a byte is written.
pub fn write_zip<W: Write + Seek>(
  archive: &[u8],
  keys: Option<&Keyring>,
  limits: &Limits,
  session: &str,
  out: &mut W,
  target: &std::path::Path,
) -> Result<Header> {
  write_zip_padded(archive, keys, limits, session, out, target).map(|(header, _)| header)
}

/// What an unzip of the written zip leaves for the store to finish: the pad file when it follows the entries, and
/// the empty folders, which an unzip that skips folder entries (unzipper 0.10, in whatsapp-web.js <= 1.34.6)
/// never makes. `last_file` tells the folder the zip went into when there is no pad.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
  pub padded: bool,
  /// Folder entries no other entry lies in, without the trailing `/`.
  pub empty_folders: Vec<String>,
  /// The file entry written last.
  pub last_file: Option<String>,
}

impl Written {
  /// From the entries `(name, is_dir)` in the order they were written.
  fn of(entries: &[(String, bool)], padded: bool) -> Self {
    let inside = |dir: &str| {
      entries.iter().any(|(n, _)| n.len() > dir.len() + 1 && n.starts_with(dir) && n.as_bytes()[dir.len()] == b'/')
    };
    let empty_folders = entries
      .iter()
      .filter(|(_, is_dir)| *is_dir)
      .map(|(n, _)| n.trim_end_matches('/').to_owned())
      .filter(|dir| !inside(dir))
      .collect();
    let last_file = entries.iter().rev().find(|(_, is_dir)| !is_dir).map(|(n, _)| n.clone());
    Self { padded, empty_folders, last_file }
  }
}

/// `write_zip`, and what the restore leaves for the store to finish (`Written`).
pub fn write_zip_padded<W: Write + Seek>(
  archive: &[u8],
  keys: Option<&Keyring>,
  limits: &Limits,
  session: &str,
  out: &mut W,
  target: &std::path::Path,
) -> Result<(Header, Written)> {
  let (header, payload) = open(archive)?;
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  if !header.is_zip() {
    return write_tar_payload(&header, payload, limits, out, target).map(|written| (header, written));
  }
  // The hash held, but a plain archive's hash is no signature: what unzipper will read is checked as saves are
  // (an encrypted one is authenticated: its structure is still checked, its bytes were sealed by a save).
  check_stored_zip(payload, limits, plain.is_none())?;
  let mut zip = ZipArchive::new(Cursor::new(payload)).map_err(corrupt)?;
  if zip.len() as u64 != u64::from(header.entries) {
    return Err(corrupt(format!("holds {} entries, its header says {}", zip.len(), header.entries)));
  }
  let padded = needs_pad(&mut zip).map_err(corrupt)?;
  let written = Written::of(&written_order(&mut zip)?, padded);
  match padded {
    false => out.write_all(payload).map_err(StoreError::io("write", target))?,
    // The pad goes after the payload's last entry, so its directory is written anew (a copy of the payload; for
    // RemoteAuth's zips only when every file is small, so the copy is too).
    true => {
      let mut zip = ZipWriter::new_append(Cursor::new(payload.to_vec())).map_err(corrupt)?;
      add_pad(&mut zip).map_err(corrupt)?;
      out.write_all(zip.finish().map_err(corrupt)?.get_ref()).map_err(StoreError::io("write", target))?;
    }
  }
  out.flush().map_err(StoreError::io("write", target))?;
  Ok((header, written))
}

/// The entries `(name, is_dir)` as they lie in the zip.
fn written_order<R: std::io::Read + Seek>(zip: &mut ZipArchive<R>) -> Result<Vec<(String, bool)>> {
  let mut entries = Vec::with_capacity(zip.len());
  for i in 0..zip.len() {
    let file = zip.by_index_raw(i).map_err(corrupt)?;
    entries.push((file.header_start(), file.name().map_err(corrupt)?.into_owned(), file.is_dir()));
  }
  entries.sort_by_key(|(start, _, _)| *start);
  Ok(entries.into_iter().map(|(_, name, is_dir)| (name, is_dir)).collect())
}

/// An archive from before zip payloads: its files (checked) in memory, then written stored, in restore order.
fn write_tar_payload<W: Write + Seek>(
  header: &Header,
  payload: &[u8],
  limits: &Limits,
  out: &mut W,
  target: &std::path::Path,
) -> Result<Written> {
  let write_err = |e: zip::result::ZipError| match e {
    zip::result::ZipError::Io(io) => StoreError::io("write", target)(io),
    other => corrupt(other),
  };
  let mut entries = Vec::new();
  visit(header, payload, limits, |meta, data| {
    let bytes = match meta.size {
      Some(_) => Some(read_all(data)?),
      None => None,
    };
    entries.push((meta, bytes));
    Ok(())
  })?;
  let shape: Vec<(bool, u64)> = entries.iter().map(|(m, b)| (b.is_none(), m.size.unwrap_or(0))).collect();
  let order = restore_order(&shape);
  // Many small writes: buffered, where the zip payload above is one write.
  let mut buffered = std::io::BufWriter::new(&mut *out);
  let mut zip = ZipWriter::new(&mut buffered);
  for &at in &order {
    let (meta, bytes) = &entries[at];
    let options = SimpleFileOptions::default()
      .compression_method(zip::CompressionMethod::Stored)
      .unix_permissions(meta.mode)
      .last_modified_time(unix_to_dos(meta.mtime));
    match bytes {
      None => zip.add_directory(format!("{}/", meta.path.path), options).map_err(write_err)?,
      Some(bytes) => {
        zip.start_file(meta.path.path.as_str(), options).map_err(write_err)?;
        zip.write_all(bytes).map_err(StoreError::io("write", target))?;
      }
    }
  }
  let last_holds_back =
    order.last().is_some_and(|&at| entries[at].1.as_ref().is_some_and(|b| b.len() as u64 >= HOLDS_BACK));
  if !last_holds_back {
    add_pad(&mut zip).map_err(write_err)?;
  }
  zip.finish().map_err(write_err)?.flush().map_err(StoreError::io("write", target))?;
  let names: Vec<(String, bool)> =
    order.iter().map(|&at| (entries[at].0.path.path.to_string(), entries[at].1.is_none())).collect();
  Ok(Written::of(&names, !last_holds_back))
}

#[cfg(test)]
mod tests {
  use super::Written;

  #[test]
  fn empty_folders_are_those_nothing_lies_in_and_the_last_file_is_the_last_written() {
    let entries: Vec<(String, bool)> = [
      ("Default/IndexedDB/", true),
      ("Default/IndexedDB/x.blob/", true),
      ("Default/IndexedDB/x.blob/1/", true),
      ("Default/IndexedDB/y/", true),
      ("Default/IndexedDB/yz/", true),
      ("Default/IndexedDB/y/CURRENT", false),
      ("Default/IndexedDB/big.ldb", false),
    ]
    .iter()
    .map(|(n, d)| (n.to_string(), *d))
    .collect();
    let written = Written::of(&entries, false);
    assert_eq!(written.empty_folders, ["Default/IndexedDB/x.blob/1", "Default/IndexedDB/yz"]);
    assert_eq!(written.last_file.as_deref(), Some("Default/IndexedDB/big.ldb"));
    assert!(!written.padded);
  }
}
