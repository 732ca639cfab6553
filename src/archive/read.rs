//! Every entry of an opened payload, either kind, with its bytes inflated and checked: the zip's CRC and sizes
//! (the save path copies them unread), or the tar's. Nothing from storage sizes an allocation before it is
//! checked against the header, and the header against the limits. Every name passes the save path's own check
//! (`names::entry_name`, `Names`: no path twice, no file that is also a folder).

use std::io::{self, Read};

use super::header::Header;
use super::names::{entry_name, Names};
use super::{dos_to_unix, EntryPath, Limits};
use crate::error::{Result, StoreError};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
  StoreError::ArchiveCorrupt(e.to_string())
}

/// One entry as the payload describes it; `size` is `None` for a folder.
pub(super) struct Meta {
  pub path: EntryPath,
  pub mode: u32,
  pub mtime: u64,
  pub size: Option<u64>,
}

/// Checks what the payload declares as it goes: entries and bytes against the header, each file's length.
struct Tally<'h> {
  header: &'h Header,
  entries: u32,
  files_bytes: u64,
}

impl Tally<'_> {
  fn entry(&mut self, size: Option<u64>) -> Result<()> {
    self.entries += 1;
    self.files_bytes = self.files_bytes.saturating_add(size.unwrap_or(0));
    if self.entries > self.header.entries || self.files_bytes > self.header.files_bytes {
      return Err(corrupt("it holds more than its header says"));
    }
    Ok(())
  }

  fn finish(self) -> Result<()> {
    if (self.entries, self.files_bytes) != (self.header.entries, self.header.files_bytes) {
      return Err(corrupt(format!(
        "it holds {} entries / {} bytes, its header says {} / {}",
        self.entries, self.files_bytes, self.header.entries, self.header.files_bytes
      )));
    }
    Ok(())
  }
}

/// Calls `each` with every entry and a reader of exactly its bytes (empty for folders), in payload order.
/// `each` must read them all; a file shorter or longer than declared, or failing its CRC, is `ArchiveCorrupt`.
pub(super) fn visit(
  header: &Header,
  payload: &[u8],
  limits: &Limits,
  mut each: impl FnMut(Meta, &mut dyn Read) -> Result<()>,
) -> Result<()> {
  if header.entries > limits.max_entries || header.files_bytes > limits.max_unpacked_bytes {
    return Err(StoreError::ArchiveLimit(format!(
      "the archive declares {} entries / {} bytes, over the limits",
      header.entries, header.files_bytes
    )));
  }
  let mut tally = Tally { header, entries: 0, files_bytes: 0 };
  let mut names = Names::new(*limits);
  let mut one = |meta: Meta, data: &mut dyn Read| -> Result<()> {
    tally.entry(meta.size)?;
    names.admit(&meta.path, meta.size)?;
    let (name, size) = (meta.path.path.clone(), meta.size.unwrap_or(0));
    let mut counted = Counted { inner: data.take(size.saturating_add(1)), count: 0 };
    each(meta, &mut counted)?;
    if counted.count != size {
      return Err(corrupt(format!("{name} holds {} bytes, declares {size}", counted.count)));
    }
    Ok(())
  };
  match header.is_zip() {
    true => visit_zip(payload, &mut one)?,
    false => visit_tar(payload, &mut one)?,
  }
  names.finish()?;
  tally.finish()
}

fn visit_zip(payload: &[u8], each: &mut dyn FnMut(Meta, &mut dyn Read) -> Result<()>) -> Result<()> {
  let mut zip = zip::ZipArchive::new(io::Cursor::new(payload)).map_err(corrupt)?;
  if zip.has_duplicate_names() {
    return Err(StoreError::UnsafeEntry { name: "(one of the archive's entries)".into(), reason: "appears twice" });
  }
  for i in 0..zip.len() {
    let mut file = zip.by_index(i).map_err(corrupt)?;
    let path = entry_name(file.name_raw(), &file.name().map_err(corrupt)?)?;
    if file.is_symlink() {
      return Err(StoreError::UnsafeEntry { name: path.path, reason: "is a link or special file" });
    }
    let is_dir = path.is_dir || file.is_dir();
    let mode = file.unix_mode().map_or(if is_dir { 0o700 } else { 0o600 }, |m| m & 0o777);
    let meta = Meta { mode, mtime: dos_to_unix(file.last_modified()), size: (!is_dir).then(|| file.size()), path };
    each(meta, &mut file)?;
  }
  Ok(())
}

fn visit_tar(payload: &[u8], each: &mut dyn FnMut(Meta, &mut dyn Read) -> Result<()>) -> Result<()> {
  let mut tar = tar::Archive::new(zstd::Decoder::with_buffer(payload).map_err(corrupt)?);
  for item in tar.entries().map_err(corrupt)? {
    let mut item = item.map_err(corrupt)?;
    let raw = String::from_utf8(item.path_bytes().into_owned()).map_err(corrupt)?;
    let path = EntryPath::parse(&raw)?;
    let (mode, mtime) = (item.header().mode().map_err(corrupt)?, item.header().mtime().map_err(corrupt)?);
    let size = match item.header().entry_type() {
      tar::EntryType::Directory => None,
      tar::EntryType::Regular => Some(item.size()),
      other => return Err(corrupt(format!("unexpected entry type {other:?} for {}", path.path))),
    };
    each(Meta { path, mode: mode & 0o777, mtime, size }, &mut item)?;
  }
  Ok(())
}

/// Counts the bytes that pass through, so a source that yields more or less than it declared is caught.
pub(super) struct Counted<R> {
  pub inner: R,
  pub count: u64,
}

impl<R: Read> Read for Counted<R> {
  fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
    let n = self.inner.read(buf)?;
    self.count += n as u64;
    Ok(n)
  }
}

/// Reads all of `data`, the failure of a read being the archive's.
pub(super) fn read_all(data: &mut dyn Read) -> Result<Vec<u8>> {
  let mut bytes = Vec::new();
  data.read_to_end(&mut bytes).map_err(corrupt)?;
  Ok(bytes)
}
