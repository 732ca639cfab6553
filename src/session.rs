//! Session names: validated once into a `SessionKey`, so nothing after can traverse out of a directory or key space.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

pub const MAX_SESSION_NAME_BYTES: usize = 200;

/// A session name that is safe as a file name and as a key suffix: ASCII letters, digits, `-`, `_` and `.`,
/// not starting with `.`, at most 200 bytes. RemoteAuth's names (`RemoteAuth-<clientId>`) always fit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(String);

impl SessionKey {
  pub fn parse(name: &str) -> Result<Self> {
    let reject = |reason| Err(StoreError::SessionName { name: name.chars().take(64).collect(), reason });
    if name.is_empty() {
      return reject("it is empty");
    }
    if name.len() > MAX_SESSION_NAME_BYTES {
      return reject("it is longer than 200 bytes");
    }
    if name.contains('\0') {
      return reject("it contains a NUL byte");
    }
    if name.contains(['/', '\\']) {
      return reject("it contains a path separator");
    }
    if name.starts_with('.') {
      return reject("it starts with a dot");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
      return reject("only ASCII letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(Self(name.to_owned()))
  }

  pub fn as_str(&self) -> &str {
    &self.0
  }
}

impl fmt::Display for SessionKey {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&self.0)
  }
}

impl fmt::Debug for SessionKey {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "SessionKey({:?})", self.0)
  }
}

/// The `session` argument as whatsapp-web.js passes it: a bare name, or (1.34.5–1.34.6, in `save`)
/// the absolute path `<dataPath>/<name>` without `.zip`.
#[derive(Debug, Clone)]
pub struct SessionArg {
  pub key: SessionKey,
  /// `<dataPath>/<name>` when the caller passed an absolute path.
  pub absolute_stem: Option<PathBuf>,
}

impl SessionArg {
  pub fn parse(session: &str) -> Result<Self> {
    let path = Path::new(session);
    if !path.is_absolute() {
      return Ok(Self { key: SessionKey::parse(session)?, absolute_stem: None });
    }
    let base = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
    Ok(Self { key: SessionKey::parse(base)?, absolute_stem: Some(path.to_path_buf()) })
  }
}

/// Where to look for the zip RemoteAuth wrote, most specific first.
pub fn zip_candidates(arg: &SessionArg, explicit: Option<&Path>, cwd: &Path, data_path: &Path) -> Vec<PathBuf> {
  if let Some(path) = explicit {
    return vec![cwd.join(path)];
  }
  if let Some(stem) = &arg.absolute_stem {
    let mut zip = stem.clone().into_os_string();
    zip.push(".zip");
    return vec![zip.into()];
  }
  let file = format!("{}.zip", arg.key);
  vec![cwd.join(&file), data_path.join(&file)]
}

/// Picks the zip to save: of the candidates that exist, the most recently written. A stale
/// `<cwd>/<name>.zip` left by an older whatsapp-web.js whose save failed must not win over a fresh one.
pub fn locate_zip(arg: &SessionArg, candidates: &[PathBuf]) -> Result<PathBuf> {
  let mut best: Option<(std::time::SystemTime, &PathBuf)> = None;
  for path in candidates {
    match std::fs::metadata(path) {
      Ok(meta) if meta.is_file() => {
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        if best.is_none_or(|(newest, _)| modified > newest) {
          best = Some((modified, path));
        }
      }
      Ok(_) => {}
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
      Err(e) => return Err(StoreError::io("stat", path)(e)),
    }
  }
  best.map(|(_, p)| p.clone()).ok_or_else(|| StoreError::ZipNotFound {
    session: arg.key.to_string(),
    looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn accepts_remoteauth_names() {
    for name in ["RemoteAuth", "RemoteAuth-abc_DEF-123", "a.b", "x"] {
      assert_eq!(SessionKey::parse(name).unwrap().as_str(), name);
    }
  }

  #[test]
  fn rejects_names_that_could_escape() {
    let long = "a".repeat(201);
    for name in ["", "..", ".", ".hidden", "a/b", "a\\b", "../x", "a\0b", "a:b", "a b", "ü", long.as_str()] {
      let err = SessionKey::parse(name).unwrap_err();
      assert_eq!(err.code(), "ERR_SESSION_NAME", "{name:?}");
    }
    assert!(SessionKey::parse(&"a".repeat(200)).is_ok());
  }

  #[test]
  fn absolute_session_takes_base_name_and_zip_beside_it() {
    let arg = SessionArg::parse("/data/.wwebjs_auth/RemoteAuth-x").unwrap();
    assert_eq!(arg.key.as_str(), "RemoteAuth-x");
    let c = zip_candidates(&arg, None, Path::new("/cwd"), Path::new("/dp"));
    assert_eq!(c, vec![PathBuf::from("/data/.wwebjs_auth/RemoteAuth-x.zip")]);
    assert!(SessionArg::parse("/data/..").is_err());
    assert!(SessionArg::parse("/").is_err());
  }

  #[test]
  fn relative_session_with_separator_is_refused() {
    assert_eq!(SessionArg::parse("../RemoteAuth").unwrap_err().code(), "ERR_SESSION_NAME");
    assert_eq!(SessionArg::parse("a/RemoteAuth").unwrap_err().code(), "ERR_SESSION_NAME");
  }

  #[test]
  fn bare_session_looks_in_cwd_then_data_path_and_newest_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (cwd, dp) = (dir.path().join("cwd"), dir.path().join("dp"));
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&dp).unwrap();
    let arg = SessionArg::parse("RemoteAuth-x").unwrap();
    let c = zip_candidates(&arg, None, &cwd, &dp);
    assert_eq!(c, vec![cwd.join("RemoteAuth-x.zip"), dp.join("RemoteAuth-x.zip")]);
    assert_eq!(locate_zip(&arg, &c).unwrap_err().code(), "ERR_ZIP_NOT_FOUND");

    std::fs::write(&c[1], b"new").unwrap();
    assert_eq!(locate_zip(&arg, &c).unwrap(), c[1]);
    std::fs::write(&c[0], b"stale").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&c[0]).unwrap().set_modified(old).unwrap();
    assert_eq!(locate_zip(&arg, &c).unwrap(), c[1], "the stale cwd zip must not win");
  }
}
