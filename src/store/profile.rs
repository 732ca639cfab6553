//! Profiles straight between a folder and the tiers (SafeRemoteAuth's backup and restore): no temp copy, no zip.
//!
//! A restore writes the stored files into a fresh sibling `.<name>.restore-<random>`, fsyncs every file and
//! folder, then swaps it into place. What a crash leaves, step by step:
//! 1. while writing: the old profile in place and a partial `.restore-` sibling;
//! 2. the swap: on Linux one `renameat2(RENAME_EXCHANGE)`, so the profile is the old one or the new one; where
//!    that is not supported, the old one is renamed aside (`.<name>.old-<pid>`) and the new one in, so for
//!    that instant there is no profile and the old one lies whole beside it;
//! 3. after the swap: the new profile in place, the old one aside until it is removed.
//!
//! The next restore of that folder first repairs and cleans: an aside copy goes back when the profile is missing
//! (case 2), and every other leftover sibling is removed. Nothing in a profile is removed before the new one is
//! durable.
//!
//! The folder is checked first (`fence`): never the cwd, `dataPath`, the store's folder or one holding them. A
//! `dir` that is a link is restored through: into its target, the link left as it is. One restore per folder at a
//! time: an in-process lock, then a lock file beside the folder (`.<name>.lock`, removed by its holder) so two
//! processes do not interleave; a crashed holder's lock dies with it.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use super::fence::{self, Guarded, Use};
use super::{cwd, Saved, SessionInfo, Store};
use crate::archive::{self, Header, PackOptions};
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::fsutil::sync_dir;
use crate::locks::{FileLock, Locks};
use crate::session::SessionKey;

const RESTORING: &str = "restore-";
const ASIDE: &str = "old-";
const LOCK: &str = "lock";

/// Restores under way in this process, by resolved folder: shared by every store, so two stores of one process
/// take turns too (without waiting on the lock file in a blocking thread).
static RESTORES: LazyLock<Locks<PathBuf>> = LazyLock::new(Locks::default);

impl Store {
  /// Stores the kept folders of the profile `dir` (relative to the cwd) as `session`: read and compressed here,
  /// then stored like a save (leases, backups, every tier). The stored copy stays until the new one is.
  pub async fn save_dir(&self, session: &str, dir: &Path) -> Result<Saved> {
    let key = SessionKey::parse(session)?;
    let dir = fence::profile_dir(dir, Use::Save, &self.guarded()?)?;
    // Read while no restore (of this process or another) swaps the folder. A folder whose parent cannot take the
    // lock file cannot be restored into either: read it without.
    let folder = RESTORES.of(&dir).lock_owned().await;
    let held = match folder_lock(&dir).await {
      Ok(held) => Some(held),
      // Another process has restored into the folder for longer than we wait: reading it now could catch the swap.
      Err(err @ StoreError::ProfileInUse(_)) => {
        self.counters.save(crate::counters::Outcome::Failed);
        return Err(err);
      }
      Err(_) => None,
    };
    let turn = self.save_locks.of(&key).lock_owned().await;
    let (config, name) = (self.config.clone(), key.to_string());
    let packed = blocking::run(move || archive::pack_dir(&dir, &config.pack, &name)).await;
    drop((held, folder));
    let packed = packed.inspect_err(|_| self.counters.save(crate::counters::Outcome::Failed))?;
    self.store_packed(key, packed, turn).await
  }

  /// Replaces the profile `dir` (relative to the cwd; created if missing; through it when it is a link) with the
  /// stored session's files, whole or not at all (see the module docs). The folder's lock comes first, then the
  /// check that no live browser holds it (`ERR_PROFILE_IN_USE`), then the stored copy, whose checksum is checked
  /// before anything is written: what is restored is the newest copy once no one else restores the folder.
  pub async fn restore_dir(&self, session: &str, dir: &Path) -> Result<SessionInfo> {
    let key = SessionKey::parse(session)?;
    let target = fence::profile_dir(dir, Use::Restore, &self.guarded()?)?;
    let turn = RESTORES.of(&target).lock_owned().await;
    let held = folder_lock(&target).await?;
    let looked = target.clone();
    if let Some(holder) = blocking::run(move || Ok(crate::browser_lock::live_browser(&looked))).await? {
      return Err(StoreError::ProfileInUse(format!("{} ({holder})", target.display())));
    }
    let bytes = self.fetch(&key).await?;
    let (config, name) = (self.config.clone(), key.to_string());
    let header = blocking::run(move || {
      let restored = restore_locked(&bytes, &config.pack, &name, &target);
      drop(held);
      restored
    })
    .await?;
    drop(turn);
    Ok(SessionInfo { key, header })
  }

  fn guarded(&self) -> Result<Guarded> {
    let (data_path, store_dir) = (self.config.data_path.clone(), self.config.local_dir.clone());
    Ok(Guarded { cwd: cwd()?, data_path, store_dir })
  }
}

/// The parent folder and the file name of a profile path.
fn split(target: &Path) -> Result<(&Path, String)> {
  let bad = || StoreError::InvalidArgument(format!("{} is not a folder path with a name", target.display()));
  let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).ok_or_else(bad)?;
  let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
  Ok((parent, name.to_owned()))
}

/// How long a restore or a save of a profile waits for another process's restore of the same folder.
#[cfg(not(test))]
const FOLDER_PATIENCE: Duration = Duration::from_secs(300);
// Short in tests, so a held folder lock times out within one.
#[cfg(test)]
const FOLDER_PATIENCE: Duration = Duration::from_millis(300);

/// The lock file beside a profile folder (`.<name>.lock`), its parent made if missing: another process restoring
/// the folder finishes first (a crashed one holds nothing).
async fn folder_lock(target: &Path) -> Result<FileLock> {
  let (parent, name) = split(target)?;
  std::fs::create_dir_all(parent).map_err(StoreError::io("create directory", parent))?;
  let path = parent.join(format!(".{name}.{LOCK}"));
  FileLock::wait(path, FOLDER_PATIENCE).await?.ok_or_else(|| {
    let why =
      format!("{} (another process restores it for more than {} s)", target.display(), FOLDER_PATIENCE.as_secs());
    StoreError::ProfileInUse(why)
  })
}

/// Repairs what an earlier restore left, writes the stored files aside, swaps them in. The folder's lock is
/// held by the caller.
fn restore_locked(bytes: &[u8], pack: &PackOptions, session: &str, target: &Path) -> Result<Header> {
  let (parent, name) = split(target)?;
  repair(parent, &name, target)?;
  let fresh = tempfile::Builder::new()
    .prefix(&format!(".{name}.{RESTORING}"))
    .tempdir_in(parent)
    .map_err(StoreError::io("create temp directory in", parent))?;
  // A failure here drops `fresh`, which removes the partial tree; the profile was not touched.
  let header = archive::write_dir(bytes, pack.keys.as_deref(), &pack.limits, session, fresh.path())?;
  swap(&fresh.keep(), target, parent, &name)?;
  Ok(header)
}

/// What restores killed part way left in `parent` (where profile folders live: `dataPath`), for `cleanup` and
/// `stats`: `.<name>.restore-…` and `.<name>.old-…` folders and `.<name>.lock` files of folders no live restore
/// holds, with their bytes. With `remove`, each such folder is repaired as its next restore would (an aside
/// copy back where the profile is missing, the rest removed) under its lock, and the stale lock file goes.
pub fn restore_leftovers(parent: &Path, remove: bool) -> Result<Vec<(PathBuf, u64)>> {
  let read = match std::fs::read_dir(parent) {
    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
    other => other.map_err(StoreError::io("read directory", parent))?,
  };
  let mut by_folder: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
  for item in read.flatten() {
    let file_name = item.file_name();
    let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix('.')) else { continue };
    let folder = [RESTORING, ASIDE]
      .iter()
      .find_map(|kind| rest.rsplit_once(&format!(".{kind}")).map(|(name, _)| name))
      .or_else(|| rest.strip_suffix(&format!(".{LOCK}")));
    if let Some(folder) = folder.filter(|f| !f.is_empty()) {
      by_folder.entry(folder.to_owned()).or_default().push(item.path());
    }
  }
  let mut found = Vec::new();
  for (name, paths) in by_folder {
    let lock = parent.join(format!(".{name}.{LOCK}"));
    let held = match remove {
      true => match FileLock::try_acquire(&lock)? {
        Some(held) => Some(held),
        None => continue,
      },
      false if crate::locks::is_held(&lock) => continue,
      false => None,
    };
    found.extend(paths.into_iter().map(|path| {
      let bytes = crate::fsutil::tree_bytes(&path);
      (path, bytes)
    }));
    if held.is_some() {
      repair(parent, &name, &parent.join(&name))?;
    }
  }
  found.sort();
  Ok(found)
}

/// Leftovers of an earlier restore of `target` that did not finish: an aside copy back when the profile is
/// missing, everything else removed.
fn repair(parent: &Path, name: &str, target: &Path) -> Result<()> {
  let read = std::fs::read_dir(parent).map_err(StoreError::io("read directory", parent))?;
  let mut leftovers: Vec<(PathBuf, bool)> = Vec::new();
  for item in read.flatten() {
    let file_name = item.file_name();
    let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&format!(".{name}."))) else { continue };
    if rest.starts_with(RESTORING) || rest.starts_with(ASIDE) {
      leftovers.push((item.path(), rest.starts_with(ASIDE)));
    }
  }
  let mut missing = std::fs::symlink_metadata(target).is_err();
  for (path, aside) in leftovers {
    if aside && missing {
      std::fs::rename(&path, target).map_err(StoreError::io("rename into", target))?;
      sync_dir(parent)?;
      missing = false;
      continue;
    }
    remove_tree(&path)?;
  }
  Ok(())
}

fn remove_tree(path: &Path) -> Result<()> {
  match std::fs::remove_dir_all(path) {
    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io("remove", path)(e)),
    _ => Ok(()),
  }
}

/// Puts `fresh` (complete and durable) at `target`, then removes what was there.
fn swap(fresh: &Path, target: &Path, parent: &Path, name: &str) -> Result<()> {
  let undo = |err: StoreError| {
    let _ = remove_tree(fresh);
    err
  };
  if std::fs::symlink_metadata(target).is_err() {
    std::fs::rename(fresh, target).map_err(StoreError::io("rename into", target)).map_err(undo)?;
    return sync_dir(parent);
  }
  if exchange(fresh, target).map_err(undo)? {
    // `fresh` now names the old profile.
    sync_dir(parent)?;
    return remove_tree(fresh);
  }
  let aside = parent.join(format!(".{name}.{ASIDE}{}", std::process::id()));
  remove_tree(&aside)?;
  std::fs::rename(target, &aside).map_err(StoreError::io("rename aside", target)).map_err(undo)?;
  if let Err(e) = std::fs::rename(fresh, target) {
    let _ = std::fs::rename(&aside, target);
    return Err(undo(StoreError::io("rename into", target)(e)));
  }
  sync_dir(parent)?;
  remove_tree(&aside)
}

/// Swaps two paths in one step where the system can; `Ok(false)` where it cannot (then nothing moved).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<bool> {
  use std::os::unix::ffi::OsStrExt;
  let c = |p: &Path| {
    std::ffi::CString::new(p.as_os_str().as_bytes())
      .map_err(|_| StoreError::io("rename", p)(std::io::ErrorKind::InvalidInput.into()))
  };
  let (ca, cb) = (c(a)?, c(b)?);
  const RENAME_EXCHANGE: libc::c_uint = 2;
  // The syscall, not glibc's wrapper: musl and old glibc builds lack `renameat2`.
  let done = unsafe {
    libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), RENAME_EXCHANGE)
  };
  if done == 0 {
    return Ok(true);
  }
  let err = std::io::Error::last_os_error();
  match err.raw_os_error() {
    Some(libc::ENOSYS | libc::EINVAL | libc::ENOTSUP) => Ok(false),
    _ => Err(StoreError::io("swap into", b)(err)),
  }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> Result<bool> {
  Ok(false)
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
