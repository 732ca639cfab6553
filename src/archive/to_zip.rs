//! Sealed archive in, a zip that RemoteAuth's unzip restores out. Nothing is written before the checksum holds.

use std::io::{self, Seek, Write};

use zip::write::SimpleFileOptions;

use super::crypt::{self, Keyring};
use super::header::{open, Header};
use super::{unix_to_dos, EntryPath};
use crate::error::{Result, StoreError};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
  StoreError::ArchiveCorrupt(e.to_string())
}

/// Writes the archive's entries as a zip (stored, not deflated: the zip only lives until RemoteAuth unzips it).
/// Write failures come back as `Io` naming `target`.
pub fn write_zip<W: Write + Seek>(
  archive: &[u8],
  keys: Option<&Keyring>,
  session: &str,
  out: W,
  target: &std::path::Path,
) -> Result<Header> {
  let (header, payload) = open(archive)?;
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  let write_err = |e: zip::result::ZipError| match e {
    zip::result::ZipError::Io(io) => StoreError::io("write", target)(io),
    other => StoreError::ArchiveCorrupt(other.to_string()),
  };
  let decoder = zstd::Decoder::with_buffer(payload).map_err(corrupt)?;
  let mut tar = tar::Archive::new(decoder);
  let mut zip = zip::ZipWriter::new(out);
  let (mut entries, mut files_bytes) = (0u32, 0u64);

  for item in tar.entries().map_err(corrupt)? {
    let mut item = item.map_err(corrupt)?;
    let raw = String::from_utf8(item.path_bytes().into_owned()).map_err(corrupt)?;
    let entry = EntryPath::parse(&raw)?;
    let mode = item.header().mode().map_err(corrupt)?;
    let mtime = item.header().mtime().map_err(corrupt)?;
    let options = SimpleFileOptions::default()
      .compression_method(zip::CompressionMethod::Stored)
      .unix_permissions(mode & 0o777)
      .last_modified_time(unix_to_dos(mtime));
    entries += 1;
    match item.header().entry_type() {
      tar::EntryType::Directory => zip.add_directory(&entry.path, options).map_err(write_err)?,
      tar::EntryType::Regular => {
        files_bytes += item.size();
        if files_bytes > header.files_bytes {
          return Err(corrupt("holds more file bytes than its header says"));
        }
        zip.start_file(&entry.path, options).map_err(write_err)?;
        // The payload's hash already held, so a failure here is the disk's, not the archive's.
        let copied = io::copy(&mut item, &mut zip).map_err(StoreError::io("write", target))?;
        if copied != item.size() {
          return Err(corrupt(format!("{} is shorter than its tar header says", entry.path)));
        }
      }
      other => return Err(corrupt(format!("unexpected entry type {other:?} for {}", entry.path))),
    }
  }
  if entries != header.entries || files_bytes != header.files_bytes {
    return Err(corrupt(format!(
      "holds {entries} entries / {files_bytes} bytes, header says {} / {}",
      header.entries, header.files_bytes
    )));
  }
  zip.finish().map_err(write_err)?.flush().map_err(StoreError::io("write", target))?;
  Ok(header)
}
