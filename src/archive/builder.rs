//! Writing an archive entry by entry from files the store compresses itself (a profile folder, entries rebuilt
//! from an incremental backup): deflated into the same zip payload RemoteAuth's zips are kept as.

use std::io::{self, Read};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::names::Names;
use super::read::Counted;
use super::seal::{seal_zip, zip_write_err, Reserved};
use super::{now_ms, unix_to_dos, EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};

/// zlib's default, as archiver (RemoteAuth's zip) uses: what the store deflates stores like RemoteAuth's own.
pub const DEFLATE_LEVEL: i64 = 6;
/// What a profile folder is deflated at (`saveProfile`): its bulk is LevelDB tables, already Snappy-compressed,
/// on which level 6 spends ~3× level 1's time for a few percent (`node bench/profile.mjs`).
pub const PROFILE_DEFLATE_LEVEL: i64 = 1;

pub(super) struct Builder<'a> {
  zip: ZipWriter<Reserved>,
  opts: &'a PackOptions,
  /// The session it is for: bound into the ciphertext when encrypting.
  session: &'a str,
  /// Turns a failure to read the source into the source's own error (`ZipInvalid`, `Io`, …).
  read_err: fn(String) -> StoreError,
  names: Names,
  level: i64,
}

fn options(mode: u32, mtime: u64) -> SimpleFileOptions {
  // Permission bits only: setuid, setgid and sticky never travel.
  SimpleFileOptions::default().unix_permissions(mode & 0o777).last_modified_time(unix_to_dos(mtime))
}

impl<'a> Builder<'a> {
  pub fn new(opts: &'a PackOptions, session: &'a str, read_err: fn(String) -> StoreError) -> Result<Self> {
    let zip = ZipWriter::new(Reserved::new(opts.keys.is_some()));
    Ok(Self { zip, opts, session, read_err, names: Names::new(opts.limits), level: DEFLATE_LEVEL })
  }

  /// Deflates the files added from now on at `level`.
  pub fn with_level(mut self, level: i64) -> Self {
    self.level = level;
    self
  }

  pub fn add_dir(&mut self, entry: &EntryPath, mode: u32, mtime: u64) -> Result<()> {
    self.names.admit(entry, None)?;
    self.zip.add_directory(format!("{}/", entry.path), options(mode, mtime)).map_err(zip_write_err)
  }

  /// Streams a file of `size` bytes. One byte past `size` is let through, so a longer source shows up.
  pub fn add_file(&mut self, entry: &EntryPath, mode: u32, mtime: u64, size: u64, data: impl Read) -> Result<()> {
    self.names.admit(entry, Some(size))?;
    let options = options(mode, mtime)
      .compression_method(CompressionMethod::Deflated)
      .compression_level(Some(self.level))
      .large_file(size >= u64::from(u32::MAX));
    self.zip.start_file(entry.path.as_str(), options).map_err(zip_write_err)?;
    let mut counted = Counted { inner: data.take(size.saturating_add(1)), count: 0 };
    // Writing into memory does not fail: an error here is the source's.
    io::copy(&mut counted, &mut self.zip).map_err(|e| (self.read_err)(e.to_string()))?;
    if counted.count != size {
      let why = format!("{} declares {size} bytes but holds {}", entry.path, counted.count);
      return Err((self.read_err)(why));
    }
    Ok(())
  }

  /// Seals what was added, saved now.
  pub fn finish(self) -> Result<Packed> {
    self.finish_at(0, now_ms())
  }

  /// As `finish`, with the size of the zip it was made from (0 if none) and the save time given (a rebuilt copy
  /// keeps the time of the save it holds).
  pub fn finish_at(self, source_bytes: u64, created_ms: u64) -> Result<Packed> {
    let counts = self.names.finish()?;
    if counts.files == 0 {
      return Err(StoreError::EmptySession(self.opts.keep.join(", ")));
    }
    let payload = self.zip.finish().map_err(zip_write_err)?;
    seal_zip(payload, counts, source_bytes, created_ms, self.opts.keys.as_deref(), self.session)
  }
}
