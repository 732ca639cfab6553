//! The embedded tier: one file per session in a local directory, written atomically (temp, fsync, rename).
//!
//! Several processes may share the directory (PM2 cluster, the CLI beside a service): every step that replaces or
//! removes a session's file (a save's rename, a delete, a conditional write's check and rename, a fenced write's
//! lease check and rename) runs under that session's lock file (`.lock-<session>`, `flock`), so it is one step
//! for every process. The slow part of a write (temp file, fsync) happens before the lock is taken. Leases live
//! in `.lease-<session>` records, read and written under the same lock (`local_lease`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::{Leases, Ready, Tier};
use crate::blocking::run as blocking;
use crate::error::{Result, StoreError};
use crate::fsutil::{stage, sweep_temp_files, sync_dir, LeftTemp, Staged};
use crate::locks::FileLock;
use crate::session::SessionKey;

const EXT: &str = "wwrs";
/// A session's lock file is `.lock-<session>` (session names never start with a dot, temp files are `.tmp-…`).
pub(super) const LOCK_PREFIX: &str = ".lock-";
/// How long a write waits for another process's step on the same session (a rename and an fsync, normally
/// milliseconds) before it fails with `ERR_TIER_UNAVAILABLE`: a holder stopped (SIGSTOP) or stuck on a dead disk.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct LocalDirTier {
  dir: PathBuf,
}

impl LocalDirTier {
  /// Creates the directory (mode 0700) if needed, so that a directory vanishing later reads as an outage; one
  /// that is there with a looser mode is tightened to 0700. Kept as it resolves (links followed, `..` taken
  /// back), so every spelling of one directory shares its locks and leases.
  pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
    let dir = dir.into();
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(StoreError::io("create store directory", &dir))?;
    let dir = fs::canonicalize(&dir).map_err(StoreError::io("resolve store directory", &dir))?;
    tighten(&dir)?;
    Ok(Self { dir })
  }

  pub fn dir(&self) -> &Path {
    &self.dir
  }

  fn path_of(&self, key: &SessionKey) -> PathBuf {
    self.dir.join(format!("{key}.{EXT}"))
  }

  pub(super) fn lease_path(&self, key: &SessionKey) -> PathBuf {
    self.dir.join(format!(".lease-{key}"))
  }

  fn gone(&self) -> StoreError {
    StoreError::TierUnavailable { tier: "local", reason: format!("store directory {} is missing", self.dir.display()) }
  }

  /// The session's lock, for one step of this process against every other's (see the module docs).
  pub(super) async fn lock(&self, key: &SessionKey) -> Result<FileLock> {
    if !self.dir.is_dir() {
      return Err(self.gone());
    }
    let path = self.dir.join(format!("{LOCK_PREFIX}{key}"));
    FileLock::wait(path, LOCK_PATIENCE).await?.ok_or_else(|| StoreError::TierUnavailable {
      tier: "local",
      reason: format!("session {key} stayed locked by another process for {} s", LOCK_PATIENCE.as_secs()),
    })
  }

  /// The bytes written and fsynced beside the session's file, not yet in its place.
  pub(super) async fn stage(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<Staged> {
    let target = self.path_of(key);
    let gone = self.gone();
    blocking(move || {
      if !target.parent().is_some_and(Path::is_dir) {
        return Err(gone);
      }
      stage(&target, |file| file.write_all(&bytes).map_err(StoreError::io("write", &target)))
    })
    .await
  }

  /// Runs `step` under the session's lock, in a worker.
  pub(super) async fn locked<T: Send + 'static>(
    &self,
    key: &SessionKey,
    step: impl FnOnce(&Self) -> Result<T> + Send + 'static,
  ) -> Result<T> {
    let held = self.lock(key).await?;
    let this = self.clone();
    blocking(move || {
      let done = step(&this);
      drop(held);
      done
    })
    .await
  }

  /// The first `len` bytes of the session's file, read in place (under the lock, by the caller).
  fn head_now(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let path = self.path_of(key);
    let file = match fs::File::open(&path) {
      Ok(file) => file,
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
      Err(e) => return Err(StoreError::io("open", path)(e)),
    };
    let mut out = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut out).map_err(StoreError::io("read", &path))?;
    Ok(Some(out))
  }

  /// Removes the session's file now (under the lock, by the caller). Absent is success only while the
  /// directory is there: a vanished volume must not make a logout "succeed".
  pub(super) fn remove_now(&self, key: &SessionKey) -> Result<()> {
    let path = self.path_of(key);
    match fs::remove_file(&path) {
      Ok(()) => sync_dir(&self.dir),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.dir.is_dir() => Ok(()),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.gone()),
      Err(e) => Err(StoreError::io("remove", &path)(e)),
    }
  }

  /// Whether the session's file starts with `expected` (`None`: is absent), read now (under the lock).
  fn matches_now(&self, key: &SessionKey, expected: Option<&[u8]>) -> Result<bool> {
    let head = self.head_now(key, expected.map_or(0, <[u8]>::len))?;
    Ok(match (expected, head) {
      (None, None) => true,
      (Some(expected), Some(head)) => head == expected,
      _ => false,
    })
  }
}

/// What writers killed part way left in a store directory: temp files no live writer holds and lock files no
/// live process holds (their `flock` died with them). Removed when `remove`.
pub fn leftovers(dir: &Path, remove: bool) -> Result<Vec<LeftTemp>> {
  let mut found = sweep_temp_files(dir, remove)?;
  let entries = match fs::read_dir(dir) {
    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
    other => other.map_err(StoreError::io("list", dir))?,
  };
  for entry in entries.flatten() {
    if !entry.file_name().to_string_lossy().starts_with(LOCK_PREFIX) {
      continue;
    }
    let path = entry.path();
    let stale = match remove {
      // Taken and let go: its holder removes it.
      true => FileLock::try_acquire(&path)?.is_some(),
      false => !crate::locks::is_held(&path),
    };
    if stale {
      found.push(LeftTemp { path, bytes: 0 });
    }
  }
  Ok(found)
}

/// A store directory others may read (a shared volume made 0777) would hand them every login: tightened to 0700,
/// or refused (`ERR_INVALID_OPTION`, naming the mode) when this process may not change it.
fn tighten(dir: &Path) -> Result<()> {
  #[cfg(unix)]
  {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir).map_err(StoreError::io("stat", dir))?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
      return Ok(());
    }
    if let Err(e) = fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700 | 0o700)) {
      let reason = format!(
        "{} has mode {mode:04o} (other users could read the sessions) and cannot be made 0700 ({e}): chmod 700 it",
        dir.display()
      );
      return Err(StoreError::InvalidOption { name: "dir", reason });
    }
  }
  #[cfg(not(unix))]
  let _ = dir;
  Ok(())
}

#[async_trait]
impl Tier for LocalDirTier {
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    let path = self.path_of(key);
    match tokio::fs::read(&path).await {
      Ok(bytes) => Ok(Some(bytes)),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
        if tokio::fs::metadata(&self.dir).await.is_err() {
          return Err(self.gone());
        }
        Ok(None)
      }
      Err(e) => Err(StoreError::io("read", path)(e)),
    }
  }

  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    let this = self.clone();
    let key = key.clone();
    blocking(move || this.head_now(&key, len)).await
  }

  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let staged = self.stage(key, bytes).await?;
    self.locked(key, move |_| staged.commit()).await
  }

  /// The temp file is written and fsynced while `ready` is pending; only the rename waits for it.
  async fn put_when(&self, key: &SessionKey, bytes: Vec<u8>, ready: Ready) -> Result<()> {
    let (staged, ready) = futures::join!(self.stage(key, bytes), ready);
    ready?;
    let staged = staged?;
    self.locked(key, move |_| staged.commit()).await
  }

  async fn exists(&self, key: &SessionKey) -> Result<bool> {
    let path = self.path_of(key);
    match tokio::fs::metadata(&path).await {
      Ok(meta) => Ok(meta.is_file()),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => match tokio::fs::metadata(&self.dir).await {
        Ok(_) => Ok(false),
        Err(_) => Err(self.gone()),
      },
      Err(e) => Err(StoreError::io("stat", path)(e)),
    }
  }

  async fn delete(&self, key: &SessionKey) -> Result<()> {
    let key = key.clone();
    self.locked(&key.clone(), move |this| this.remove_now(&key)).await
  }

  async fn list(&self) -> Result<Vec<SessionKey>> {
    let (dir, gone) = (self.dir.clone(), self.gone());
    blocking(move || {
      let mut keys = Vec::new();
      let entries = match fs::read_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone),
        other => other.map_err(StoreError::io("list", &dir))?,
      };
      for entry in entries {
        let name = entry.map_err(StoreError::io("list", &dir))?.file_name();
        let stem = name.to_str().and_then(|n| n.strip_suffix(&format!(".{EXT}")));
        // Temp files start with '.', which SessionKey refuses, so half-written puts never list.
        if let Some(key) = stem.and_then(|s| SessionKey::parse(s).ok()) {
          keys.push(key);
        }
      }
      keys.sort();
      Ok(keys)
    })
    .await
  }

  fn kind(&self) -> &'static str {
    "dir"
  }

  /// Checked and renamed under the session's lock: a save or delete by any process lands before the check or
  /// after the rename, never between.
  async fn replace_if(&self, key: &SessionKey, expected: &[u8], bytes: Vec<u8>) -> Result<bool> {
    // An empty `expected` means "absent" (the trait's contract): create-if-absent.
    self.put_if(key, (!expected.is_empty()).then(|| expected.to_vec()), bytes).await
  }

  async fn put_if(&self, key: &SessionKey, expected: Option<Vec<u8>>, bytes: Vec<u8>) -> Result<bool> {
    let staged = self.stage(key, bytes).await?;
    let key = key.clone();
    self
      .locked(&key.clone(), move |this| match this.matches_now(&key, expected.as_deref())? {
        true => staged.commit().map(|()| true),
        false => Ok(false),
      })
      .await
  }

  async fn delete_if(&self, key: &SessionKey, expected: Vec<u8>) -> Result<bool> {
    let key = key.clone();
    self
      .locked(&key.clone(), move |this| match this.matches_now(&key, Some(&expected))? {
        true => this.remove_now(&key).map(|()| true),
        false => Ok(false),
      })
      .await
  }

  fn leases(&self) -> Option<&dyn Leases> {
    Some(self)
  }

  fn membership(&self) -> Option<&dyn super::Membership> {
    Some(self)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn key(s: &str) -> SessionKey {
    SessionKey::parse(s).unwrap()
  }

  #[tokio::test]
  async fn put_get_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let tier = LocalDirTier::open(dir.path().join("store")).unwrap();
    assert_eq!(tier.get(&key("a")).await.unwrap(), None);
    assert!(!tier.exists(&key("a")).await.unwrap());
    tier.put(&key("a"), b"one".to_vec()).await.unwrap();
    tier.put(&key("a"), b"two".to_vec()).await.unwrap();
    tier.put(&key("b"), b"bee".to_vec()).await.unwrap();
    assert_eq!(tier.get(&key("a")).await.unwrap().unwrap(), b"two");
    assert!(tier.exists(&key("a")).await.unwrap());
    assert_eq!(tier.list().await.unwrap(), vec![key("a"), key("b")]);
    tier.delete(&key("a")).await.unwrap();
    tier.delete(&key("a")).await.unwrap();
    assert_eq!(tier.list().await.unwrap(), vec![key("b")]);
    let leftovers: Vec<_> = fs::read_dir(tier.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
  }

  #[cfg(unix)]
  #[tokio::test]
  async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tier = LocalDirTier::open(dir.path().join("store")).unwrap();
    tier.put(&key("a"), b"x".to_vec()).await.unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tier.path_of(&key("a"))), 0o600);
    assert_eq!(mode(tier.dir()), 0o700);
  }

  #[cfg(unix)]
  #[test]
  fn a_loose_store_directory_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o777)).unwrap();
    LocalDirTier::open(&store).unwrap();
    assert_eq!(fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o700);
  }

  #[tokio::test]
  async fn conditional_writes_check_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let tier = LocalDirTier::open(dir.path().join("store")).unwrap();
    let k = key("a");
    assert!(!tier.put_if(&k, Some(b"on".to_vec()), b"x".to_vec()).await.unwrap(), "expected a copy, none there");
    assert!(tier.put_if(&k, None, b"one".to_vec()).await.unwrap());
    assert!(!tier.put_if(&k, None, b"two".to_vec()).await.unwrap(), "expected none, one there");
    assert!(!tier.replace_if(&k, b"tw", b"two".to_vec()).await.unwrap());
    assert!(tier.replace_if(&k, b"on", b"two".to_vec()).await.unwrap());
    assert!(!tier.delete_if(&k, b"on".to_vec()).await.unwrap());
    assert_eq!(tier.get(&k).await.unwrap().unwrap(), b"two");
    assert!(tier.delete_if(&k, b"tw".to_vec()).await.unwrap());
    assert_eq!(tier.get(&k).await.unwrap(), None);
    let names: Vec<_> = fs::read_dir(tier.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.is_empty(), "no temp or lock file left: {names:?}");
  }

  #[tokio::test]
  async fn a_vanished_directory_is_an_outage_not_an_absence() {
    let dir = tempfile::tempdir().unwrap();
    let tier = LocalDirTier::open(dir.path().join("store")).unwrap();
    fs::remove_dir(tier.dir()).unwrap();
    let unavailable = |r: Result<()>| assert_eq!(r.unwrap_err().code(), "ERR_TIER_UNAVAILABLE");
    unavailable(tier.exists(&key("a")).await.map(drop));
    unavailable(tier.get(&key("a")).await.map(drop));
    unavailable(tier.put(&key("a"), b"x".to_vec()).await);
    unavailable(tier.delete(&key("a")).await);
    unavailable(tier.list().await.map(drop));
  }
}
