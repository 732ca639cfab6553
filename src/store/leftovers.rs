//! What writes killed part way leave on the local disk, once no live process can own it: temp files and stale
//! lock files in the embedded store's directory, the temp zips `extract` writes into `dataPath`, and what a
//! killed `restoreProfile` left beside a profile folder. Counted by `stats`, removed by `cleanup --execute` (not
//! when a store opens: a dry run of `cleanup` must find them as they are).

use std::path::PathBuf;

use serde::Serialize;

use super::Store;
use crate::blocking;
use crate::error::Result;
use crate::fsutil::{sweep_temp_files, TEMP_PREFIX};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashKind {
  /// `.tmp-…`: a save, lease record or `extract` zip that never got renamed into place.
  TempFile,
  /// `.lock-<session>` / `.<folder>.lock` that no live process holds.
  StaleLock,
  /// `.<folder>.restore-…` / `.<folder>.old-…` beside a profile folder.
  RestoreLeftover,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrashLeftover {
  pub path: PathBuf,
  pub kind: CrashKind,
  pub bytes: u64,
}

impl Store {
  /// The leftovers of crashed writes (see the module docs), removed when `remove`.
  pub async fn crash_leftovers(&self, remove: bool) -> Result<Vec<CrashLeftover>> {
    let (store_dir, data_path) = (self.config.local_dir.clone(), self.config.data_path.clone());
    blocking::run(move || {
      let mut found = Vec::new();
      let is_lock = |p: &std::path::Path| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".lock"));
      if let Some(dir) = store_dir {
        for left in crate::tier::local_leftovers(&dir, remove)? {
          let kind = if left.path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX)) {
            CrashKind::TempFile
          } else {
            CrashKind::StaleLock
          };
          found.push(CrashLeftover { path: left.path, kind, bytes: left.bytes });
        }
      }
      for left in sweep_temp_files(&data_path, remove)? {
        found.push(CrashLeftover { path: left.path, kind: CrashKind::TempFile, bytes: left.bytes });
      }
      for (path, bytes) in super::profile::restore_leftovers(&data_path, remove)? {
        let kind = if is_lock(&path) { CrashKind::StaleLock } else { CrashKind::RestoreLeftover };
        found.push(CrashLeftover { path, kind, bytes });
      }
      Ok(found)
    })
    .await
  }
}
