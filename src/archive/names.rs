//! The paths one archive holds: each once, within the limits, and never a file where another entry needs a
//! folder (unzip tools fail on `a` then `a/b`, or write one over the other). The one name check: the save path,
//! `extract` (`stored_zip`) and every restore (`read::visit`) take each name through `entry_name` and `Names`.

use std::collections::HashMap;

use super::{EntryPath, Limits};
use crate::error::{Result, StoreError};

/// A zip entry's name as every reader sees it, checked (`EntryPath::parse`): its raw bytes, which must be UTF-8
/// and what the zip crate reads too (not another name from an extra field, which unzipper ignores).
pub(super) fn entry_name(raw: &[u8], decoded: &str) -> Result<EntryPath> {
  let refuse = |reason| StoreError::UnsafeEntry { name: decoded.chars().take(200).collect(), reason };
  let name = std::str::from_utf8(raw).map_err(|_| refuse("is not UTF-8"))?;
  if name != decoded {
    return Err(refuse("carries a second name in an extra field"));
  }
  EntryPath::parse(name)
}

/// What an archive holds, for its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
  pub entries: u32,
  pub files: u32,
  pub files_bytes: u64,
}

pub(super) struct Names {
  limits: Limits,
  /// Path (no trailing slash) → is a directory.
  paths: HashMap<String, bool>,
  counts: Counts,
}

impl Names {
  pub fn new(limits: Limits) -> Self {
    Self { limits, paths: HashMap::new(), counts: Counts::default() }
  }

  /// Admits a directory (`size: None`) or a file of `size` bytes.
  pub fn admit(&mut self, entry: &EntryPath, size: Option<u64>) -> Result<()> {
    if self.counts.entries >= self.limits.max_entries {
      return Err(StoreError::ArchiveLimit(format!("more than {} entries", self.limits.max_entries)));
    }
    if self.paths.insert(entry.path.clone(), size.is_none()).is_some() {
      return Err(StoreError::UnsafeEntry { name: entry.path.clone(), reason: "appears twice" });
    }
    self.counts.entries += 1;
    if let Some(size) = size {
      self.counts.files += 1;
      self.counts.files_bytes = self.counts.files_bytes.saturating_add(size);
      let limit = self.limits.max_unpacked_bytes;
      if self.counts.files_bytes > limit {
        return Err(StoreError::ArchiveLimit(format!("kept files unpack to more than {limit} bytes")));
      }
    }
    Ok(())
  }

  /// The counts, once no file is also the folder of another entry.
  pub fn finish(self) -> Result<Counts> {
    for path in self.paths.keys() {
      let mut at = 0;
      while let Some(slash) = path[at..].find('/') {
        let parent = &path[..at + slash];
        if self.paths.get(parent) == Some(&false) {
          return Err(StoreError::UnsafeEntry {
            name: parent.chars().take(200).collect(),
            reason: "is a file and a folder",
          });
        }
        at += slash + 1;
      }
    }
    Ok(self.counts)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn admit_all(items: &[(&str, Option<u64>)], limits: Limits) -> Result<Counts> {
    let mut names = Names::new(limits);
    for (raw, size) in items {
      names.admit(&EntryPath::parse(raw)?, *size)?;
    }
    names.finish()
  }

  #[test]
  fn counts_files_and_folders() {
    let counts = admit_all(&[("a/", None), ("a/b", Some(3)), ("a/c", Some(4))], Limits::default()).unwrap();
    assert_eq!(counts, Counts { entries: 3, files: 2, files_bytes: 7 });
  }

  #[test]
  fn a_file_that_is_also_a_folder_is_refused_in_either_order() {
    for items in [[("a", Some(1)), ("a/b", Some(1))], [("a/b/c", Some(1)), ("a/b", Some(1))]] {
      let err = admit_all(&items, Limits::default()).unwrap_err();
      assert_eq!(
        (err.code(), err.to_string().contains("is a file and a folder")),
        ("ERR_ARCHIVE_ENTRY", true),
        "{err}"
      );
    }
    assert!(admit_all(&[("a/", None), ("a/b", Some(1))], Limits::default()).is_ok());
    assert!(admit_all(&[("ab", Some(1)), ("a/b", Some(1))], Limits::default()).is_ok(), "a prefix is not a parent");
  }

  #[test]
  fn a_name_is_its_raw_bytes_or_refused() {
    assert_eq!(entry_name(b"Default/x", "Default/x").unwrap().path, "Default/x");
    assert_eq!(entry_name(b"Default/\xff", "Default/\u{a0}").unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
    assert_eq!(entry_name(b"../x", "Default/x").unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
    assert_eq!(entry_name(b"../x", "../x").unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  }

  #[test]
  fn duplicates_and_limits_are_refused() {
    assert_eq!(admit_all(&[("a", Some(1)), ("a/", None)], Limits::default()).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
    let small = Limits { max_entries: 2, max_unpacked_bytes: 10 };
    assert_eq!(admit_all(&[("a", Some(11))], small).unwrap_err().code(), "ERR_ARCHIVE_LIMIT");
    assert_eq!(admit_all(&[("a", None), ("b", None), ("c", None)], small).unwrap_err().code(), "ERR_ARCHIVE_LIMIT");
    assert_eq!(
      admit_all(&[("a", Some(u64::MAX)), ("b", Some(u64::MAX))], Limits::default()).unwrap_err().code(),
      "ERR_ARCHIVE_LIMIT"
    );
  }
}
