//! How files are replaced here: temp file beside the target, then rename, so a reader sees the old file or the
//! new one, never a mix. Stored copies are also fsynced (file and directory), so a crash keeps one of them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, StoreError};

/// Replaces `target` atomically but without fsyncs: for files that live seconds (the zip `extract` hands
/// RemoteAuth, which unzips and deletes it). After a crash RemoteAuth extracts again; the two fsyncs cost
/// ~10 ms per extract on a typical disk (`npm run bench`).
pub fn replace_transient<T>(target: &Path, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
  replace(target, false, fill)
}

/// A temp file beside `target`'s name, locked (`flock`) for as long as it is open, so `sweep_temp_files` can tell
/// a live writer's from a crashed one's, and owned like its folder when made by root.
fn temp_beside(target: &Path) -> Result<(&Path, tempfile::NamedTempFile)> {
  let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
  let tmp = tempfile::Builder::new()
    .prefix(TEMP_PREFIX)
    .tempfile_in(dir)
    .map_err(StoreError::io("create temp file in", dir))?;
  // Fresh, so free: an error here only means the sweep's grace time is what protects it.
  let _ = fs4::FileExt::try_lock(tmp.as_file());
  own_like_parent(tmp.as_file(), tmp.path())?;
  Ok((dir, tmp))
}

fn replace<T>(target: &Path, durable: bool, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
  let (dir, mut tmp) = temp_beside(target)?;
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
  let (_, mut tmp) = temp_beside(target)?;
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

/// What every temp file of `replace_transient` and `stage` (and so of every stored copy) is named first.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A temp file younger than this is never swept, locked or not: it may be between its creation and its lock.
pub const TEMP_GRACE: Duration = Duration::from_secs(10);

/// When root makes a file in a folder someone else owns (the CLI run by root beside a service), the file gets the
/// folder's owner and group, so the service can still read, replace and remove it.
pub fn own_like_parent(file: &File, path: &Path) -> Result<()> {
  #[cfg(unix)]
  {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
      return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let owner = std::fs::metadata(parent).map_err(StoreError::io("stat", parent))?;
    if (owner.uid(), owner.gid()) != (0, 0) {
      std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid())).map_err(StoreError::io("chown", path))?;
    }
  }
  #[cfg(not(unix))]
  let _ = (file, path);
  Ok(())
}

/// A temp file a crashed writer left behind.
#[derive(Debug, Clone)]
pub struct LeftTemp {
  pub path: PathBuf,
  pub bytes: u64,
}

/// The temp files in `dir` no live writer holds (unlocked, older than `TEMP_GRACE`), removed when `remove`.
/// A missing folder has none.
pub fn sweep_temp_files(dir: &Path, remove: bool) -> Result<Vec<LeftTemp>> {
  let entries = match std::fs::read_dir(dir) {
    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
    other => other.map_err(StoreError::io("list", dir))?,
  };
  let mut found = Vec::new();
  for entry in entries.flatten() {
    if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
      continue;
    }
    let path = entry.path();
    // Gone meanwhile (renamed into place, or removed by its writer), a link or young: not a leftover.
    let Ok((file, meta)) = open_regular(&path) else { continue };
    let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
    if age < TEMP_GRACE || fs4::FileExt::try_lock(&file).is_err() {
      continue;
    }
    if remove {
      // Still this file under this name (locked by this call now, so no writer renames it meanwhile).
      match std::fs::symlink_metadata(&path) {
        Ok(now) if same_inode(&now, &meta) => std::fs::remove_file(&path).map_err(StoreError::io("remove", &path))?,
        _ => continue,
      }
    }
    found.push(LeftTemp { path, bytes: meta.len() });
  }
  found.sort_by(|a, b| a.path.cmp(&b.path));
  Ok(found)
}

/// Bytes of the files under `path` (or of the file itself), links not followed; what cannot be read counts 0.
pub fn tree_bytes(path: &Path) -> u64 {
  match std::fs::symlink_metadata(path) {
    Ok(meta) if meta.is_dir() => {
      std::fs::read_dir(path).map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum()).unwrap_or(0)
    }
    Ok(meta) if meta.is_file() => meta.len(),
    _ => 0,
  }
}

fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
  #[cfg(unix)]
  {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
  }
  #[cfg(not(unix))]
  {
    let _ = (a, b);
    true
  }
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
  #[cfg(unix)]
  File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io("fsync", dir))?;
  Ok(())
}

/// Why `open_regular` did not open a path that is there: a link, FIFO, socket, device or folder.
#[derive(Debug)]
pub struct NotRegular(pub &'static str);

impl std::fmt::Display for NotRegular {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(self.0)
  }
}

impl std::error::Error for NotRegular {}

/// What kind of not-a-regular-file `kind` is, for an error message.
pub fn kind_name(kind: std::fs::FileType) -> &'static str {
  #[cfg(unix)]
  {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
      return "is a FIFO";
    }
    if kind.is_socket() {
      return "is a socket";
    }
    if kind.is_block_device() || kind.is_char_device() {
      return "is a device";
    }
  }
  match () {
    _ if kind.is_symlink() => "is a link",
    _ if kind.is_dir() => "is a folder",
    _ if kind.is_file() => "is a regular file",
    _ => "is not a regular file",
  }
}

/// The `NotRegular` reason inside an error of `open_regular`, if that is why it failed.
pub fn not_regular(err: &std::io::Error) -> Option<&'static str> {
  err.get_ref().and_then(|inner| inner.downcast_ref::<NotRegular>()).map(|n| n.0)
}

fn refuse(reason: &'static str) -> std::io::Error {
  std::io::Error::other(NotRegular(reason))
}

/// Opens `path` for reading only when it is a regular file reached without a link: looked at first (lstat), then
/// opened with `O_NOFOLLOW | O_NONBLOCK` (a FIFO or link swapped in after the look neither blocks the open nor
/// is followed), then checked again on the handle (fstat). Returns the handle's metadata. A refusal is an
/// `io::Error` whose `not_regular` says why; a missing file stays `NotFound`.
pub fn open_regular(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
  let seen = std::fs::symlink_metadata(path)?;
  if !seen.is_file() {
    return Err(refuse(kind_name(seen.file_type())));
  }
  let mut options = std::fs::OpenOptions::new();
  options.read(true);
  #[cfg(unix)]
  std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
  let file = match options.open(path) {
    #[cfg(unix)]
    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse("is a link")),
    other => other?,
  };
  let meta = file.metadata()?;
  if !meta.is_file() {
    return Err(refuse(kind_name(meta.file_type())));
  }
  Ok((file, meta))
}

/// At most `max` bytes of the regular file `path` (opened as `open_regular` does); `None` when it holds more.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
  use std::io::Read;
  let (file, _) = open_regular(path)?;
  let mut bytes = Vec::new();
  file.take(max + 1).read_to_end(&mut bytes)?;
  Ok((bytes.len() as u64 <= max).then_some(bytes))
}

#[cfg(all(test, unix))]
mod tests {
  use super::*;

  #[test]
  fn open_regular_refuses_links_fifos_sockets_and_devices_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"bytes").unwrap();
    let (_, meta) = open_regular(&file).unwrap();
    assert_eq!(meta.len(), 5);
    let reason = |p: &Path| not_regular(&open_regular(p).unwrap_err());

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    assert_eq!(reason(&link), Some("is a link"));
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
    assert_eq!(reason(&dir.path().join("zero")), Some("is a link"));
    assert_eq!(reason(Path::new("/dev/zero")), Some("is a device"));
    assert_eq!(reason(dir.path()), Some("is a folder"));

    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(reason(&fifo), Some("is a FIFO"), "refused, and the open did not wait for a writer");
    let sock = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert_eq!(reason(&sock), Some("is a socket"));
    assert_eq!(open_regular(&dir.path().join("missing")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
  }

  #[test]
  fn read_bounded_stops_at_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, vec![1u8; 100]).unwrap();
    assert_eq!(read_bounded(&file, 100).unwrap().map(|b| b.len()), Some(100));
    assert_eq!(read_bounded(&file, 99).unwrap(), None);
  }
}
