//! A Chromium profile directory in (a LocalAuth `session-<id>` folder, say), sealed archive out: the same
//! archive RemoteAuth's zip would have given, built from the kept directories only. Links are refused, never
//! followed.

use std::path::Path;
use std::time::UNIX_EPOCH;

use walkdir::WalkDir;

use super::builder::Builder;
use super::{EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};

fn mode_of(meta: &std::fs::Metadata) -> u32 {
  #[cfg(unix)]
  return std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
  #[cfg(not(unix))]
  return if meta.is_dir() { 0o700 } else { 0o600 };
}

fn mtime_of(meta: &std::fs::Metadata) -> u64 {
  meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

/// The entry name of `path` below `root`, `/`-separated and checked like a zip entry's.
fn entry_of(root: &Path, path: &Path, is_dir: bool) -> Result<EntryPath> {
  let rel = path.strip_prefix(root).unwrap_or(path);
  let Some(rel) = rel.to_str() else {
    return Err(StoreError::UnsafeEntry { name: rel.to_string_lossy().into(), reason: "is not UTF-8" });
  };
  let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
  EntryPath::parse(&if is_dir { format!("{rel}/") } else { rel })
}

/// Builds the archive of the kept directories under `root`, in name order.
pub fn pack_dir(root: &Path, opts: &PackOptions, session: &str) -> Result<Packed> {
  let mut archive = Builder::new(opts, session, |why| StoreError::Internal(format!("reading the profile: {why}")))?;
  for keep in &opts.keep {
    let top = root.join(keep);
    if !top.is_dir() {
      continue;
    }
    // The directories on the way down, as a zip of the profile would list them.
    let mut ancestor = String::new();
    for part in keep.split('/').take(keep.split('/').count() - 1) {
      ancestor = if ancestor.is_empty() { part.to_owned() } else { format!("{ancestor}/{part}") };
      let entry = EntryPath::parse(&format!("{ancestor}/"))?;
      let meta = std::fs::metadata(root.join(&ancestor)).map_err(StoreError::io("stat", root.join(&ancestor)))?;
      match archive.add_dir(&entry, mode_of(&meta), mtime_of(&meta)) {
        Err(StoreError::UnsafeEntry { reason: "appears twice", .. }) => {} // shared by two kept dirs
        other => other?,
      }
    }
    for item in WalkDir::new(&top).follow_links(false).sort_by_file_name() {
      let item = item.map_err(|e| StoreError::Internal(format!("reading the profile: {e}")))?;
      let kind = item.file_type();
      let meta = item.metadata().map_err(|e| StoreError::Internal(format!("reading the profile: {e}")))?;
      if kind.is_dir() {
        archive.add_dir(&entry_of(root, item.path(), true)?, mode_of(&meta), mtime_of(&meta))?;
      } else if kind.is_file() {
        let entry = entry_of(root, item.path(), false)?;
        let file = std::fs::File::open(item.path()).map_err(StoreError::io("open", item.path()))?;
        archive.add_file(&entry, mode_of(&meta), mtime_of(&meta), meta.len(), file)?;
      } else {
        let name = item.path().display().to_string();
        return Err(StoreError::UnsafeEntry { name, reason: "is a link or special file" });
      }
    }
  }
  archive.finish()
}

#[cfg(test)]
mod tests {
  use std::io::{Cursor, Read};

  use super::*;
  use crate::archive::write_zip;

  fn profile() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let put = |rel: &str, data: &[u8]| {
      let path = dir.path().join(rel);
      std::fs::create_dir_all(path.parent().unwrap()).unwrap();
      std::fs::write(path, data).unwrap();
    };
    put("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log", b"log bytes");
    put("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/CURRENT", b"MANIFEST-000001\n");
    put("Default/Local Storage/leveldb/000005.ldb", &[9u8; 5000]);
    put("Default/Cache/Cache_Data/data_1", &[1u8; 100_000]);
    put("Local State", b"{}");
    dir
  }

  #[test]
  fn packs_only_the_kept_directories_and_round_trips() {
    let dir = profile();
    #[cfg(unix)]
    std::os::unix::fs::symlink("host-1", dir.path().join("SingletonLock")).unwrap();
    let packed = pack_dir(dir.path(), &PackOptions::default(), "s").unwrap();
    assert_eq!(packed.header.source_bytes, 0);
    assert_eq!(packed.header.files_bytes, 9 + 16 + 5000);
    let mut out = Cursor::new(Vec::new());
    write_zip(&packed.bytes, None, &Default::default(), "s", &mut out, Path::new("x.zip")).unwrap();
    let mut zip = zip::ZipArchive::new(out).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(names.contains(&"Default/".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("Cache") || n.contains("Local State") || n.contains("Singleton")));
    let mut log = String::new();
    zip
      .by_name("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log")
      .unwrap()
      .read_to_string(&mut log)
      .unwrap();
    assert_eq!(log, "log bytes");
  }

  #[cfg(unix)]
  #[test]
  fn links_inside_kept_directories_are_refused() {
    let dir = profile();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("Default/IndexedDB/evil")).unwrap();
    assert_eq!(pack_dir(dir.path(), &PackOptions::default(), "s").unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  }

  #[test]
  fn a_profile_without_kept_directories_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("Default/Cache")).unwrap();
    assert_eq!(pack_dir(dir.path(), &PackOptions::default(), "s").unwrap_err().code(), "ERR_EMPTY_SESSION");
  }
}
