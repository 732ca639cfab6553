//! The embedded tier: one file per session in a local directory, written atomically (temp, fsync, rename).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{LeaseState, Leases, Ready, Tier};
use crate::blocking::run as blocking;
use crate::error::{Result, StoreError};
use crate::fsutil::{atomic_write, stage, sync_dir};
use crate::session::SessionKey;

const EXT: &str = "wwrs";

#[derive(Debug, Clone)]
pub struct LocalDirTier {
  dir: PathBuf,
}

impl LocalDirTier {
  /// Creates the directory (mode 0700) if needed, so that a directory vanishing later reads as an outage.
  pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
    let dir = dir.into();
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(StoreError::io("create store directory", &dir))?;
    Ok(Self { dir })
  }

  pub fn dir(&self) -> &Path {
    &self.dir
  }

  fn path_of(&self, key: &SessionKey) -> PathBuf {
    self.dir.join(format!("{key}.{EXT}"))
  }

  fn gone(&self) -> StoreError {
    StoreError::TierUnavailable { tier: "local", reason: format!("store directory {} is missing", self.dir.display()) }
  }
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
    use tokio::io::AsyncReadExt;
    let path = self.path_of(key);
    let file = match tokio::fs::File::open(&path).await {
      Ok(file) => file,
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
      Err(e) => return Err(StoreError::io("open", path)(e)),
    };
    let mut out = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut out).await.map_err(StoreError::io("read", &path))?;
    Ok(Some(out))
  }

  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let target = self.path_of(key);
    let gone = self.gone();
    blocking(move || {
      if !target.parent().is_some_and(Path::is_dir) {
        return Err(gone);
      }
      atomic_write(&target, |file| file.write_all(&bytes).map_err(StoreError::io("write", &target)))
    })
    .await
  }

  /// The temp file is written and fsynced while `ready` is pending; only the rename waits for it.
  async fn put_when(&self, key: &SessionKey, bytes: Vec<u8>, ready: Ready) -> Result<()> {
    let target = self.path_of(key);
    let gone = self.gone();
    let staging = blocking(move || {
      if !target.parent().is_some_and(Path::is_dir) {
        return Err(gone);
      }
      stage(&target, |file| file.write_all(&bytes).map_err(StoreError::io("write", &target)))
    });
    let (staged, ready) = futures::join!(staging, ready);
    ready?;
    let staged = staged?;
    blocking(move || staged.commit()).await
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
    let (dir, path, gone) = (self.dir.clone(), self.path_of(key), self.gone());
    blocking(move || match fs::remove_file(&path) {
      Ok(()) => sync_dir(&dir),
      // Absent is success only if the directory is there: a vanished volume must not make a logout "succeed".
      Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => Ok(()),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(gone),
      Err(e) => Err(StoreError::io("remove", &path)(e)),
    })
    .await
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

  fn leases(&self) -> Option<&dyn Leases> {
    Some(self)
  }

  fn membership(&self) -> Option<&dyn super::Membership> {
    Some(self)
  }
}

/// Leases of embedded stores, shared by every store of this process (a directory has no cross-process lock
/// here: one process per directory, as documented).
type LeaseTable = HashMap<(PathBuf, SessionKey), (String, Instant)>;

fn process_leases() -> std::sync::MutexGuard<'static, LeaseTable> {
  static LEASES: OnceLock<Mutex<LeaseTable>> = OnceLock::new();
  LEASES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalDirTier {
  /// Whether `token` holds the lease, taking it again for `ttl` if it expired and no other token took it since
  /// (an entry stays after expiry and names its last owner; a release blanks its token).
  fn hold(&self, key: &SessionKey, token: &str, ttl: Duration) -> LeaseState {
    let mut leases = process_leases();
    match leases.get_mut(&(self.dir.clone(), key.clone())) {
      Some((t, until)) if t == token && *until > Instant::now() => LeaseState::Held,
      Some((t, until)) if t == token => {
        *until = Instant::now() + ttl;
        LeaseState::Retaken
      }
      _ => LeaseState::Lost,
    }
  }
}

#[async_trait]
impl Leases for LocalDirTier {
  async fn acquire(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<bool> {
    let mut leases = process_leases();
    let slot = leases.entry((self.dir.clone(), key.clone())).or_insert_with(|| (token.to_owned(), Instant::now()));
    if slot.0 != token && slot.1 > Instant::now() {
      return Ok(false);
    }
    *slot = (token.to_owned(), Instant::now() + ttl);
    Ok(true)
  }

  async fn renew(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<LeaseState> {
    let state = self.hold(key, token, ttl);
    if state == LeaseState::Held {
      if let Some((_, until)) = process_leases().get_mut(&(self.dir.clone(), key.clone())) {
        *until = Instant::now() + ttl;
      }
    }
    Ok(state)
  }

  async fn release(&self, key: &SessionKey, token: &str) -> Result<()> {
    let mut leases = process_leases();
    if let Some(slot) = leases.get_mut(&(self.dir.clone(), key.clone())).filter(|(t, _)| t == token) {
      *slot = (String::new(), Instant::now());
    }
    Ok(())
  }

  async fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, ttl: Duration) -> Result<LeaseState> {
    // Checked, then written: within one process the store's per-session lock orders the writes around it.
    let state = self.hold(key, token, ttl);
    if state != LeaseState::Lost {
      self.put(key, bytes).await?;
    }
    Ok(state)
  }

  async fn delete_fenced(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<LeaseState> {
    let state = self.hold(key, token, ttl);
    if state != LeaseState::Lost {
      self.delete(key).await?;
    }
    Ok(state)
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
