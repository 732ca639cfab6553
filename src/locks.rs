//! One async lock per session: saves, deletes and backups of one session run one at a time, in call order. One
//! per profile folder for restores, with a lock file beside it so two processes do not interleave either.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::error::{Result, StoreError};
use crate::session::SessionKey;

/// One async lock per key. Entries die with their last holder.
#[derive(Debug)]
pub struct Locks<K>(std::sync::Mutex<HashMap<K, Weak<tokio::sync::Mutex<()>>>>);

impl<K> Default for Locks<K> {
  fn default() -> Self {
    Self(Default::default())
  }
}

/// One async lock per session, so overlapping saves (RemoteAuth has no overlap guard) run in call order and an
/// older zip can never land after a newer one; deletes and backup write-backs take it too.
pub type KeyLocks = Locks<SessionKey>;

impl<K: Hash + Eq + Clone> Locks<K> {
  pub fn of(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.retain(|_, lock| lock.strong_count() > 0);
    if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
      return lock;
    }
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    map.insert(key.clone(), Arc::downgrade(&lock));
    lock
  }
}

/// An exclusive lock on a file, held until dropped, across processes (`flock`): the system drops it with its
/// holder, so a crashed holder never blocks the next one. The file is removed by its holder on release; a waiter
/// that then gets the removed file's lock sees the name gone or renewed and locks the file under the name again.
#[derive(Debug)]
pub struct FileLock {
  path: PathBuf,
  file: Option<std::fs::File>,
}

impl FileLock {
  /// Waits (blocking the thread) until `path` is locked by this call.
  pub fn acquire(path: &Path) -> Result<Self> {
    loop {
      let file = open_lock_file(path)?;
      fs4::FileExt::lock(&file).map_err(StoreError::io("lock", path))?;
      if same_file(&file, path).map_err(StoreError::io("stat lock file", path))? {
        return Ok(Self { path: path.to_path_buf(), file: Some(file) });
      }
    }
  }

  /// Takes the lock if no one holds it now; `None` when another holder (of any process) does.
  pub fn try_acquire(path: &Path) -> Result<Option<Self>> {
    loop {
      let file = open_lock_file(path)?;
      match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => return Ok(None),
        Err(fs4::TryLockError::Error(e)) => return Err(StoreError::io("lock", path)(e)),
      }
      if same_file(&file, path).map_err(StoreError::io("stat lock file", path))? {
        return Ok(Some(Self { path: path.to_path_buf(), file: Some(file) }));
      }
    }
  }

  /// Takes the lock, waiting up to `patience` for another holder to let go; `None` when it did not. The wait
  /// runs on a thread of its own (a holder of another process may take long, or be stopped), so no worker of the
  /// pool is held meanwhile; a lock that comes after the caller gave up is let go at once.
  pub async fn wait(path: PathBuf, patience: Duration) -> Result<Option<Self>> {
    if let Some(held) = Self::try_acquire(&path)? {
      return Ok(Some(held));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
      .name("wwrs-file-lock".into())
      .spawn(move || drop(tx.send(Self::acquire(&path))))
      .map_err(|e| StoreError::Internal(format!("cannot start a lock waiter: {e}")))?;
    match tokio::time::timeout(patience, rx).await {
      Ok(Ok(held)) => held.map(Some),
      Ok(Err(_)) => Err(StoreError::Internal("a lock waiter ended without an answer".into())),
      Err(_) => Ok(None),
    }
  }
}

/// Opens (creating) a lock file: 0600, never through a link, owned like its folder when made by root.
fn open_lock_file(path: &Path) -> Result<std::fs::File> {
  let mut options = std::fs::OpenOptions::new();
  options.read(true).write(true).create(true);
  #[cfg(unix)]
  {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
  }
  let file = options.open(path).map_err(StoreError::io("open lock file", path))?;
  crate::fsutil::own_like_parent(&file, path)?;
  Ok(file)
}

/// Whether a holder still has the lock file `path`: `false` when it is free (a crashed holder's lock died with
/// it), so the file is a leftover. Does not take it.
pub fn is_held(path: &Path) -> bool {
  match std::fs::OpenOptions::new().read(true).open(path) {
    Ok(file) => !matches!(fs4::FileExt::try_lock_shared(&file), Ok(())),
    Err(_) => false,
  }
}

/// Whether `path` still names the file `file` is open on.
fn same_file(file: &std::fs::File, path: &Path) -> std::io::Result<bool> {
  #[cfg(unix)]
  {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    match std::fs::symlink_metadata(path) {
      Ok(now) => Ok((now.dev(), now.ino()) == (held.dev(), held.ino())),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
      Err(e) => Err(e),
    }
  }
  #[cfg(not(unix))]
  {
    let _ = (file, path);
    Ok(true)
  }
}

impl Drop for FileLock {
  fn drop(&mut self) {
    // Removed while still held, so no one can have locked it under this name meanwhile.
    let _ = std::fs::remove_file(&self.path);
    drop(self.file.take());
  }
}

/// Waits until some thread waits for the lock file `path` (as `/proc/locks` lists it), for tests that hold a
/// lock to stop a writer at a known step.
#[cfg(all(test, target_os = "linux"))]
pub fn wait_for_waiter(path: &Path) {
  use std::os::unix::fs::MetadataExt;
  let ino = std::fs::metadata(path).unwrap().ino();
  for _ in 0..3000 {
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    if locks.lines().any(|l| l.contains("->") && l.split_whitespace().any(|f| f.ends_with(&format!(":{ino}")))) {
      return;
    }
    std::thread::sleep(Duration::from_millis(10));
  }
  panic!("nobody waited for {}", path.display());
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_file_lock_excludes_another_holder_until_released_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".profile.lock");
    let held = FileLock::acquire(&path).unwrap();
    // flock is per open file: another open of it, in this process or another, cannot take it meanwhile.
    let other = std::fs::File::open(&path).unwrap();
    assert!(fs4::FileExt::try_lock(&other).is_err(), "a second holder is refused while the first holds it");
    drop(other);
    let waiter = {
      let path = path.clone();
      std::thread::spawn(move || drop(FileLock::acquire(&path).unwrap()))
    };
    drop(held);
    waiter.join().unwrap();
    assert!(!path.exists(), "the last holder removed the lock file");
  }

  #[test]
  fn a_lock_file_left_by_a_dead_holder_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".profile.lock");
    std::fs::write(&path, b"").unwrap(); // left by a process killed while holding it: its flock died with it
    drop(FileLock::acquire(&path).unwrap());
    assert!(!path.exists());
  }

  #[test]
  fn save_locks_are_per_session_and_freed() {
    let locks = KeyLocks::default();
    let (a, b) = (SessionKey::parse("a").unwrap(), SessionKey::parse("b").unwrap());
    let held = locks.of(&a);
    assert!(Arc::ptr_eq(&held, &locks.of(&a)));
    assert!(!Arc::ptr_eq(&held, &locks.of(&b)));
    drop(held);
    let _ = locks.of(&b);
    assert_eq!(locks.0.lock().unwrap().len(), 1, "the lock of a finished save is gone");
  }
}
