//! Writing a sealed archive entry by entry, whatever the source (a zip, a profile directory): limits,
//! duplicate paths and the header are kept in one place.

use std::collections::HashSet;
use std::io::{self, Read};

use super::crypt::{self, PREFIX_LEN};
use super::header::{seal, Header, ENCRYPTED_VERSION, FLAG_ENCRYPTED, FLAG_TAR_ZSTD, HEADER_LEN, PLAIN_VERSION};
use super::{now_ms, EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};

/// Counts the bytes that pass through, so a source that yields more or less than it declared is caught.
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

pub(super) struct Builder<'a> {
  tar: tar::Builder<zstd::Encoder<'static, Vec<u8>>>,
  opts: &'a PackOptions,
  /// The session it is for: bound into the ciphertext when encrypting.
  session: &'a str,
  /// Turns a failure to read the source into the source's own error (`ZipInvalid`, `Io`, …).
  read_err: fn(String) -> StoreError,
  entries: u32,
  files: u32,
  files_bytes: u64,
  seen: HashSet<String>,
}

impl<'a> Builder<'a> {
  pub fn new(opts: &'a PackOptions, session: &'a str, read_err: fn(String) -> StoreError) -> Result<Self> {
    // The header's (and the key id's and nonce's) bytes are reserved up front and filled in last, so the payload
    // is never copied: it is encrypted where it was compressed.
    let reserved = HEADER_LEN + if opts.keys.is_some() { PREFIX_LEN } else { 0 };
    let encoder =
      zstd::Encoder::new(vec![0u8; reserved], opts.level).map_err(|e| StoreError::Internal(e.to_string()))?;
    let tar = tar::Builder::new(encoder);
    Ok(Self { tar, opts, session, read_err, entries: 0, files: 0, files_bytes: 0, seen: HashSet::new() })
  }

  fn admit(&mut self, entry: &EntryPath) -> Result<()> {
    if !self.seen.insert(entry.path.clone()) {
      return Err(StoreError::UnsafeEntry { name: entry.path.clone(), reason: "appears twice" });
    }
    if self.entries >= self.opts.limits.max_entries {
      return Err(StoreError::ArchiveLimit(format!("more than {} entries", self.opts.limits.max_entries)));
    }
    self.entries += 1;
    Ok(())
  }

  fn header(kind: tar::EntryType, mode: u32, mtime: u64, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    // Permission bits only: setuid, setgid and sticky never travel.
    header.set_mode(mode & 0o777);
    header.set_mtime(mtime);
    header.set_size(size);
    header
  }

  pub fn add_dir(&mut self, entry: &EntryPath, mode: u32, mtime: u64) -> Result<()> {
    self.admit(entry)?;
    let mut header = Self::header(tar::EntryType::Directory, mode, mtime, 0);
    let name = format!("{}/", entry.path);
    self.tar.append_data(&mut header, name, io::empty()).map_err(|e| StoreError::Internal(e.to_string()))
  }

  /// Streams a file of `size` bytes. One byte past `size` is let through, so a longer source shows up.
  pub fn add_file(&mut self, entry: &EntryPath, mode: u32, mtime: u64, size: u64, data: impl Read) -> Result<()> {
    self.admit(entry)?;
    self.files_bytes = self.files_bytes.saturating_add(size);
    let limit = self.opts.limits.max_unpacked_bytes;
    if self.files_bytes > limit {
      return Err(StoreError::ArchiveLimit(format!("kept files unpack to more than {limit} bytes")));
    }
    let mut header = Self::header(tar::EntryType::Regular, mode, mtime, size);
    let mut counted = Counted { inner: data.take(size.saturating_add(1)), count: 0 };
    self.tar.append_data(&mut header, &entry.path, &mut counted).map_err(|e| (self.read_err)(e.to_string()))?;
    if counted.count != size {
      let why = format!("{} declares {size} bytes but holds {}", entry.path, counted.count);
      return Err((self.read_err)(why));
    }
    self.files += 1;
    Ok(())
  }

  /// Seals what was added. `source_bytes`: the size of what it was made from (0 if not a zip).
  pub fn finish(self, source_bytes: u64) -> Result<Packed> {
    self.finish_at(source_bytes, now_ms())
  }

  /// As `finish`, with the save time given (a rebuilt copy keeps the time of the save it holds).
  pub fn finish_at(self, source_bytes: u64, created_ms: u64) -> Result<Packed> {
    if self.files == 0 {
      return Err(StoreError::EmptySession(self.opts.keep.join(", ")));
    }
    let mut bytes =
      self.tar.into_inner().and_then(|enc| enc.finish()).map_err(|e| StoreError::Internal(e.to_string()))?;
    let keys = self.opts.keys.as_deref();
    let tag_len = if keys.is_some() { crypt::TAG_LEN } else { 0 };
    let (version, flags) = match keys {
      Some(_) => (ENCRYPTED_VERSION, FLAG_TAR_ZSTD | FLAG_ENCRYPTED),
      None => (PLAIN_VERSION, FLAG_TAR_ZSTD),
    };
    let header = Header {
      version,
      flags,
      entries: self.entries,
      files_bytes: self.files_bytes,
      source_bytes,
      created_ms,
      payload_len: (bytes.len() - HEADER_LEN + tag_len) as u64,
    };
    if let Some(keys) = keys {
      let tag = crypt::encrypt(keys.current(), &header.associated_data(self.session), &mut bytes[HEADER_LEN..])?;
      bytes.extend_from_slice(&tag);
    }
    seal(&header, &mut bytes);
    Ok(Packed { header, bytes })
  }
}
