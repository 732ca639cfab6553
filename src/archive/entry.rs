//! Entry names inside a session archive: checked once, on the way in and on the way out.

use super::stream_safe::PAD_NAME;
use crate::error::{Result, StoreError};

/// The longest name component a file system takes (`NAME_MAX` on Linux, macOS and Windows).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// The longest entry name kept: Chromium's profile paths are far shorter, and this leaves `PATH_MAX` (4096) room
/// for the data path the entry is restored below.
pub const MAX_NAME_BYTES: usize = 1024;

/// A relative, `/`-separated path that cannot leave the directory it is extracted into.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryPath {
  /// Without a trailing slash.
  pub path: String,
  pub is_dir: bool,
}

impl EntryPath {
  pub fn parse(raw: &str) -> Result<Self> {
    let refuse = |reason| Err(StoreError::UnsafeEntry { name: raw.chars().take(200).collect(), reason });
    if raw.contains('\0') {
      return refuse("contains a NUL byte");
    }
    if raw.contains('\\') {
      return refuse("contains a backslash (unzip tools treat it as a separator)");
    }
    if raw.starts_with('/') {
      return refuse("is an absolute path");
    }
    if raw.len() > MAX_NAME_BYTES {
      return refuse("is longer than 1024 bytes");
    }
    let is_dir = raw.ends_with('/');
    let path = raw.strip_suffix('/').unwrap_or(raw);
    if path.is_empty() {
      return refuse("is empty");
    }
    for part in path.split('/') {
      match part {
        "" => return refuse("has an empty path component"),
        "." | ".." => return refuse("has a '.' or '..' component"),
        p if p.contains(':') => return refuse("has a ':' (a drive or stream name on Windows)"),
        p if p.len() > MAX_COMPONENT_BYTES => return refuse("has a path component over 255 bytes"),
        _ => {}
      }
    }
    Ok(Self { path: path.to_owned(), is_dir })
  }

  /// Kept when it lies inside a kept directory, or is a directory on the way to one.
  pub fn is_kept(&self, keep: &[String]) -> bool {
    keep.iter().any(|k| {
      let inside = self.path == *k || self.path.strip_prefix(k.as_str()).is_some_and(|r| r.starts_with('/'));
      let ancestor = self.is_dir && k.strip_prefix(self.path.as_str()).is_some_and(|r| r.starts_with('/'));
      inside || ancestor
    })
  }
}

/// The directories RemoteAuth restores a login from.
pub fn default_keep() -> Vec<String> {
  vec!["Default/IndexedDB".into(), "Default/Local Storage".into()]
}

/// Validates a keep-list given by a user: each item a safe relative directory, none inside another or listed
/// twice (a folder kept twice would put its entries in the archive twice), none named like the pad file.
pub fn parse_keep(items: &[String]) -> Result<Vec<String>> {
  let invalid = |reason: String| StoreError::InvalidOption { name: "keep", reason };
  if items.is_empty() {
    return Err(invalid("must name at least one directory".into()));
  }
  let keep = items
    .iter()
    .map(|item| EntryPath::parse(item).map(|e| e.path).map_err(|e| invalid(e.to_string())))
    .collect::<Result<Vec<String>>>()?;
  for (i, path) in keep.iter().enumerate() {
    if path.split('/').next() == Some(PAD_NAME) {
      return Err(invalid(format!("{path:?}: {PAD_NAME} is the name of the pad file extract writes")));
    }
    for other in &keep[..i] {
      let inside = |a: &str, b: &str| a.strip_prefix(b).is_some_and(|rest| rest.starts_with('/'));
      if path == other {
        return Err(invalid(format!("{path:?} is listed twice")));
      }
      if inside(path, other) || inside(other, path) {
        return Err(invalid(format!("{path:?} and {other:?}: one lies inside the other (list the outer one)")));
      }
    }
  }
  Ok(keep)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn refuses_escaping_names() {
    for raw in ["../x", "a/../../x", "/etc/passwd", "a\\..\\x", "a//b", "./a", "a/./b", "C:/x", "a\0b", "", "/"] {
      assert_eq!(EntryPath::parse(raw).unwrap_err().code(), "ERR_ARCHIVE_ENTRY", "{raw:?}");
    }
  }

  #[test]
  fn refuses_names_no_file_system_takes() {
    let long = format!("Default/IndexedDB/{}", "x".repeat(256));
    let err = EntryPath::parse(&long).unwrap_err();
    assert_eq!((err.code(), err.to_string().contains("over 255 bytes")), ("ERR_ARCHIVE_ENTRY", true), "{err}");
    assert!(err.to_string().len() < 400, "the message does not carry the whole name");
    assert!(EntryPath::parse(&format!("Default/IndexedDB/{}", "x".repeat(255))).is_ok());
    let deep = format!("Default/{}", "ab/".repeat(400));
    assert_eq!(EntryPath::parse(&deep).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
    assert_eq!(EntryPath::parse(&"a".repeat(65_535)).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  }

  #[test]
  fn keeps_kept_dirs_and_their_ancestors_only() {
    let keep = default_keep();
    let kept = |raw: &str| EntryPath::parse(raw).unwrap().is_kept(&keep);
    assert!(kept("Default/"));
    assert!(kept("Default/IndexedDB/"));
    assert!(kept("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log"));
    assert!(kept("Default/Local Storage/leveldb/CURRENT"));
    assert!(!kept("Default"), "a file named like an ancestor directory is not kept");
    assert!(!kept("Default/IndexedDBx/a"));
    assert!(!kept("Default/Cache/Cache_Data/f_000001"));
    assert!(!kept("Default/Service Worker/CacheStorage/x"));
    assert!(!kept("Local State"));
  }

  #[test]
  fn keep_list_is_validated() {
    assert_eq!(parse_keep(&["Default/IndexedDB/".into()]).unwrap(), vec!["Default/IndexedDB".to_string()]);
    assert_eq!(parse_keep(&["../x".into()]).unwrap_err().code(), "ERR_INVALID_OPTION");
    assert_eq!(parse_keep(&[]).unwrap_err().code(), "ERR_INVALID_OPTION");
  }

  #[test]
  fn keep_list_with_nested_or_repeated_folders_is_refused() {
    let list = |items: &[&str]| parse_keep(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for items in [
      &["Default/IndexedDB", "Default/IndexedDB/sub"][..],
      &["Default/IndexedDB/sub", "Default/Local Storage", "Default/IndexedDB"],
      &["Default", "Default/IndexedDB"],
      &["Default/IndexedDB", "Default/IndexedDB"],
      &["Default/IndexedDB", "Default/IndexedDB/"],
    ] {
      let err = list(items).unwrap_err();
      assert_eq!(err.code(), "ERR_INVALID_OPTION", "{items:?}");
      assert!(err.to_string().contains("Default/IndexedDB"), "names the folder: {err}");
    }
    let fine = list(&["Default/IndexedDB", "Default/IndexedDBx", "Default/Local Storage"]).unwrap();
    assert_eq!(fine.len(), 3, "a shared prefix is not nesting");
  }

  #[test]
  fn keep_list_cannot_hold_the_pad_name() {
    for raw in [PAD_NAME.to_string(), format!("{PAD_NAME}/sub")] {
      assert_eq!(parse_keep(std::slice::from_ref(&raw)).unwrap_err().code(), "ERR_INVALID_OPTION", "{raw}");
    }
    assert!(parse_keep(&[format!("Default/{PAD_NAME}")]).is_ok(), "only beside Default/ is the name taken");
  }
}
