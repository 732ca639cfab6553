//! Which folders `saveProfile` and `restoreProfile` may take as a profile. A restore replaces the whole folder it
//! is given, so a `dir` that is empty, `.`, `/`, the cwd, `dataPath`, or holds the store's own folder, the cwd or
//! `dataPath` would delete them (an empty `dir` once replaced the cwd, the embedded store in it included). Paths
//! are compared as they resolve, every link followed, so a link or `..` leading to one of those is refused too.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StoreError};

/// What the folder is taken for: a save only reads it, a restore replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
  Save,
  Restore,
}

/// The folders a profile must never be, nor hold: the cwd, `dataPath` and the embedded store's folder.
#[derive(Debug, Clone)]
pub struct Guarded {
  pub cwd: PathBuf,
  pub data_path: PathBuf,
  pub store_dir: Option<PathBuf>,
}

fn refuse(dir: &Path, why: impl std::fmt::Display) -> StoreError {
  StoreError::InvalidArgument(format!("dir {:?} {why}", dir.display().to_string()))
}

/// `path` (absolute) as it resolves: every existing step through its links, the rest as written (`..` taken
/// back a step). A link on the way that leads nowhere is refused: what it would become is not known.
pub fn resolve(path: &Path) -> Result<PathBuf> {
  let mut out = PathBuf::new();
  let mut exists = true;
  for part in path.components() {
    match part {
      Component::Prefix(_) | Component::RootDir => out.push(part),
      Component::CurDir => {}
      Component::ParentDir => {
        out.pop();
        // Back from a missing step into one that is there: resolve again from here.
        exists = exists || std::fs::symlink_metadata(&out).is_ok();
      }
      Component::Normal(name) => {
        out.push(name);
        if !exists {
          continue;
        }
        match std::fs::canonicalize(&out) {
          Ok(real) => out = real,
          Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(&out).is_ok() {
              return Err(refuse(path, format_args!("leads through {}, a link to nothing", out.display())));
            }
            exists = false;
          }
          Err(e) => return Err(refuse(path, format_args!("cannot be resolved: {e}"))),
        }
      }
    }
  }
  Ok(out)
}

/// The profile folder `dir` names (relative to the cwd), resolved through links, or `ERR_INVALID_ARG` when it is
/// one the module docs list. A restore also refuses a `dir` inside the store's own folder, or one that is there
/// but not a folder.
pub fn profile_dir(dir: &Path, use_: Use, guarded: &Guarded) -> Result<PathBuf> {
  if dir.as_os_str().is_empty() {
    return Err(refuse(dir, "is empty: give the profile folder"));
  }
  let real = resolve(&guarded.cwd.join(dir))?;
  if real.parent().is_none() {
    return Err(refuse(dir, "is the filesystem root"));
  }
  let store_dir = guarded.store_dir.as_deref();
  let named = [("the current directory", Some(&*guarded.cwd)), ("dataPath", Some(&*guarded.data_path))];
  for (what, path) in named.into_iter().chain([("the store's own folder", store_dir)]) {
    let Some(path) = path else { continue };
    let path = resolve(path)?;
    if path.starts_with(&real) {
      let how = if path == real { "is" } else { "holds" };
      return Err(refuse(dir, format_args!("{how} {what} ({})", path.display())));
    }
    if use_ == Use::Restore && what == "the store's own folder" && real.starts_with(&path) {
      return Err(refuse(dir, format_args!("is inside {what} ({})", path.display())));
    }
  }
  if use_ == Use::Restore {
    match std::fs::metadata(&real) {
      Ok(meta) if !meta.is_dir() => return Err(refuse(dir, "is there and not a folder")),
      _ => {}
    }
  }
  Ok(real)
}

#[cfg(test)]
#[path = "fence_tests.rs"]
mod tests;
