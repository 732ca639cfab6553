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

/// `write_zip`, and whether the pad file follows the entries (then the restore leaves it in the profile).
pub fn write_zip_padded<W: Write + Seek>(
  archive: &[u8],
  keys: Option<&Keyring>,
  limits: &Limits,
  session: &str,
  out: &mut W,
  target: &std::path::Path,
) -> Result<(Header, bool)> {
  let (header, payload) = open(archive)?;
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  if !header.is_zip() {
    return write_tar_payload(&header, payload, limits, out, target).map(|padded| (header, padded));
  }
  // The hash held, but a plain archive's hash is no signature: what unzipper will read is checked as saves are.
  check_stored_zip(payload, limits)?;
  let mut zip = ZipArchive::new(Cursor::new(payload)).map_err(corrupt)?;
  if zip.len() as u64 != u64::from(header.entries) {
    return Err(corrupt(format!("holds {} entries, its header says {}", zip.len(), header.entries)));
  }
  let padded = needs_pad(&mut zip).map_err(corrupt)?;
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
  Ok((header, padded))
}

/// An archive from before zip payloads: its files (checked) in memory, then written stored, in restore order.
fn write_tar_payload<W: Write + Seek>(
  header: &Header,
  payload: &[u8],
  limits: &Limits,
  out: &mut W,
  target: &std::path::Path,
) -> Result<bool> {
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
  Ok(!last_holds_back)
}
