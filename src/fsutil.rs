//! The one way files are replaced here: temp file beside the target, fsync, rename, fsync the directory.
//! A crash leaves the old file or the new one, never a mix.

use std::fs::File;
use std::path::Path;

use crate::error::{Result, StoreError};

/// Replaces `target` with what `fill` writes. The temp file is 0600 and starts with `.`, and is removed if
/// `fill` or any later step fails.
pub fn atomic_write<T>(target: &Path, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
  let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
  let mut tmp =
    tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(StoreError::io("create temp file in", dir))?;
  let value = fill(tmp.as_file_mut())?;
  tmp.as_file().sync_all().map_err(StoreError::io("fsync", tmp.path()))?;
  tmp.persist(target).map_err(|e| StoreError::io("rename into", target)(e.error))?;
  sync_dir(dir)?;
  Ok(value)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
  #[cfg(unix)]
  File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io("fsync", dir))?;
  Ok(())
}
