//! How files are replaced here: temp file beside the target, then rename, so a reader sees the old file or the
//! new one, never a mix. Stored copies are also fsynced (file and directory), so a crash keeps one of them.

use std::fs::File;
use std::path::Path;

use crate::error::{Result, StoreError};

/// Replaces `target` durably with what `fill` writes. The temp file is 0600 and starts with `.`, and is removed
/// if `fill` or any later step fails.
pub fn atomic_write<T>(target: &Path, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
  replace(target, true, fill)
}

/// Replaces `target` atomically but without fsyncs: for files that live seconds (the zip `extract` hands
/// RemoteAuth, which unzips and deletes it). After a crash RemoteAuth extracts again; the two fsyncs cost
/// ~10 ms per extract on a typical disk (`npm run bench`).
pub fn replace_transient<T>(target: &Path, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
  replace(target, false, fill)
}

fn replace<T>(target: &Path, durable: bool, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
  let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
  let mut tmp =
    tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(StoreError::io("create temp file in", dir))?;
  let value = fill(tmp.as_file_mut())?;
  if durable {
    tmp.as_file().sync_all().map_err(StoreError::io("fsync", tmp.path()))?;
  }
  tmp.persist(target).map_err(|e| StoreError::io("rename into", target)(e.error))?;
  if durable {
    sync_dir(dir)?;
  }
  Ok(value)
}

/// A durable temp file beside its target, not yet in its place: `commit` renames it there; dropped, it is removed.
/// Lets the slow part of a replace (write, fsync) run before it is decided whether the replace happens at all.
pub struct Staged {
  tmp: tempfile::NamedTempFile,
  target: std::path::PathBuf,
}

/// Writes and fsyncs what `fill` writes into a temp file beside `target` (0600, name starting with `.`).
pub fn stage(target: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<Staged> {
  let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
  let mut tmp =
    tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(StoreError::io("create temp file in", dir))?;
  fill(tmp.as_file_mut())?;
  tmp.as_file().sync_all().map_err(StoreError::io("fsync", tmp.path()))?;
  Ok(Staged { tmp, target: target.to_path_buf() })
}

impl Staged {
  /// Replaces the target with the staged file, durably.
  pub fn commit(self) -> Result<()> {
    let target = self.target;
    self.tmp.persist(&target).map_err(|e| StoreError::io("rename into", &target)(e.error))?;
    sync_dir(target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
  }
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
  #[cfg(unix)]
  File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io("fsync", dir))?;
  Ok(())
}
