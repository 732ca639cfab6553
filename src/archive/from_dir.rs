//! A Chromium profile directory in (a LocalAuth `session-<id>` folder, say), sealed archive out: the same
//! archive RemoteAuth's zip would have given, built from the kept directories only. Links are refused, never
//! followed.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use walkdir::WalkDir;

use super::builder::{Builder, PROFILE_DEFLATE_LEVEL};
use super::leveldb::{self, Part, Snapshot};
use super::{EntryPath, PackOptions, Packed};
use crate::error::{Result, StoreError};
use crate::fsutil::{kind_name, open_regular};

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

/// Tries of a profile that keeps changing under the read, with waits of 50, 100, 200, 400 ms between them.
const ATTEMPTS: u32 = 5;

/// Builds the archive of the kept directories under `root`, in name order, each LevelDB folder in it as one
/// consistent snapshot (`leveldb`); other files as they are when read, growing ones as the prefix present when
/// they were looked at. A profile that changes in a way the snapshot cannot hold (a listed table or needed log
/// gone, a file shorter than it was) is read again, up to `ATTEMPTS` times, then `ERR_PROFILE_CHANGING`.
pub fn pack_dir(root: &Path, opts: &PackOptions, session: &str) -> Result<Packed> {
  for attempt in 1.. {
    match pack_once(root, opts, session) {
      Err(StoreError::ProfileChanging(why)) if attempt < ATTEMPTS => {
        let _ = why;
        std::thread::sleep(std::time::Duration::from_millis(25 << attempt));
      }
      Err(StoreError::ProfileChanging(why)) => {
        return Err(StoreError::ProfileChanging(format!("{why} ({ATTEMPTS} reads)")));
      }
      done => return done,
    }
  }
  unreachable!()
}

/// A LevelDB folder's snapshot, with the tables and logs it needs that the walk has not stored yet.
struct Db {
  snapshot: Snapshot,
  tables: BTreeSet<u64>,
  logs: BTreeSet<u64>,
}

/// A file that vanished mid-walk means the profile is changing; any other I/O failure (an unreadable folder) is
/// the file system's, coded ERR_IO with its path, never an internal error.
fn walk_err(e: walkdir::Error) -> StoreError {
  if e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) {
    return StoreError::ProfileChanging(format!("reading the profile: {e}"));
  }
  let path = e.path().map(Path::to_path_buf).unwrap_or_default();
  match e.into_io_error() {
    Some(io) => StoreError::io("reading the profile", path)(io),
    None => StoreError::Internal("reading the profile: a link loop".into()),
  }
}

/// Whether the kept folder `keep` is there below `root`, every step of the way a real folder: a link on the way
/// (`Default` linked elsewhere, say) is refused, never followed; a missing step or a file means nothing to keep.
fn kept_folder(root: &Path, keep: &str) -> Result<bool> {
  let mut path = root.to_path_buf();
  for part in keep.split('/') {
    path.push(part);
    match std::fs::symlink_metadata(&path) {
      Ok(meta) if meta.file_type().is_symlink() => {
        return Err(StoreError::UnsafeEntry { name: path.display().to_string(), reason: "is a link" });
      }
      Ok(meta) if meta.is_dir() => {}
      Ok(_) => return Ok(false),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
      Err(e) => return Err(StoreError::io("stat", &path)(e)),
    }
  }
  Ok(true)
}

fn pack_once(root: &Path, opts: &PackOptions, session: &str) -> Result<Packed> {
  let mut archive = Builder::new(opts, session, StoreError::ProfileChanging)?.with_level(PROFILE_DEFLATE_LEVEL);
  let mut dbs: HashMap<PathBuf, Db> = HashMap::new();
  for keep in &opts.keep {
    let top = root.join(keep);
    if !kept_folder(root, keep)? {
      continue;
    }
    // The directories on the way down, as a zip of the profile would list them.
    let mut ancestor = String::new();
    for part in keep.split('/').take(keep.split('/').count() - 1) {
      ancestor = if ancestor.is_empty() { part.to_owned() } else { format!("{ancestor}/{part}") };
      let entry = EntryPath::parse(&format!("{ancestor}/"))?;
      let path = root.join(&ancestor);
      let meta = std::fs::symlink_metadata(&path).map_err(leveldb::io_err("stat", &path))?;
      match archive.add_dir(&entry, mode_of(&meta), mtime_of(&meta)) {
        Err(StoreError::UnsafeEntry { reason: "appears twice", .. }) => {} // shared by two kept dirs
        other => other?,
      }
    }
    for item in WalkDir::new(&top).follow_links(false).follow_root_links(false).sort_by_file_name() {
      let item = item.map_err(walk_err)?;
      let (kind, path) = (item.file_type(), item.path());
      if kind.is_dir() {
        let meta = item.metadata().map_err(walk_err)?;
        archive.add_dir(&entry_of(root, path, true)?, mode_of(&meta), mtime_of(&meta))?;
        if let Some(snapshot) = Snapshot::take(path)? {
          let (tables, logs) = (snapshot.tables.keys().copied().collect(), snapshot.logs.clone());
          dbs.insert(path.to_path_buf(), Db { snapshot, tables, logs });
        }
        continue;
      }
      if !kind.is_file() {
        return Err(StoreError::UnsafeEntry { name: path.display().to_string(), reason: kind_name(kind) });
      }
      let entry = entry_of(root, path, false)?;
      let db = path.parent().and_then(|p| dbs.get(p));
      let in_db = db.is_some();
      let part = match (db, item.file_name().to_str()) {
        (Some(db), Some(name)) => db.snapshot.part(name),
        _ => Part::Other,
      };
      if matches!(part, Part::Skip) {
        continue; // never even looked at: LevelDB may delete it at any moment
      }
      // A table or log the snapshot holds open since it was taken.
      let held = match (&part, path.parent().and_then(|p| dbs.get_mut(p)), item.file_name().to_str()) {
        (Part::Table(..) | Part::Log(_), Some(db), Some(name)) => db.snapshot.take_open(name),
        _ => None,
      };
      if let Part::Bytes(bytes) = &part {
        let meta = item.metadata().map_err(walk_err)?;
        archive.add_file(&entry, mode_of(&meta), mtime_of(&meta), bytes.len() as u64, &bytes[..])?;
        continue;
      }
      // The handle the snapshot opened, else the file as it is now: a regular file, looked at before the open
      // and on the handle (a FIFO, socket, device or link swapped in since the listing is refused, unopened).
      let (file, meta) = match held {
        Some(file) => {
          let meta = file.metadata().map_err(StoreError::io("stat", path))?;
          (file, meta)
        }
        None => match open_regular(path) {
          Ok(opened) => opened,
          // Gone since the listing, and nothing the snapshot needs (`LOG`, say): as found, it is not there.
          Err(e) if in_db && matches!(part, Part::Other) && e.kind() == std::io::ErrorKind::NotFound => continue,
          Err(e) => return Err(leveldb::io_err("open", path)(e)),
        },
      };
      let (mode, mtime, len) = (mode_of(&meta), mtime_of(&meta), meta.len());
      let stored = match part {
        Part::Skip | Part::Bytes(_) => continue,
        Part::Table(n, listed) => {
          let mut file = file;
          leveldb::check_table(&mut file, path, len, listed)?;
          archive.add_file(&entry, mode, mtime, len, file)?;
          Some((true, n))
        }
        Part::Log(n) => {
          archive.add_file(&entry, mode, mtime, len, file.take(len))?;
          Some((false, n))
        }
        Part::Other => {
          archive.add_file(&entry, mode, mtime, len, file.take(len))?;
          None
        }
      };
      if let (Some((table, n)), Some(db)) = (stored, path.parent().and_then(|p| dbs.get_mut(p))) {
        if table {
          db.tables.remove(&n)
        } else {
          db.logs.remove(&n)
        };
      }
    }
  }
  // Files LevelDB deleted after the snapshot opened them, before the walk listed them: read through the handles.
  for (dir, db) in dbs.iter_mut() {
    let needed: Vec<(String, Option<u64>)> =
      (db.tables.iter().map(|&n| (format!("{n:06}.ldb"), db.snapshot.tables.get(&n).copied())))
        .chain(db.logs.iter().map(|&n| (format!("{n:06}.log"), None)))
        .collect();
    for (name, listed) in needed {
      let path = dir.join(&name);
      let Some(mut file) = db.snapshot.take_open(&name) else {
        let why = format!("{}: {name}, which its manifest needs, went away", dir.display());
        return Err(StoreError::ProfileChanging(why));
      };
      let meta = file.metadata().map_err(StoreError::io("stat", &path))?;
      let (mode, mtime, len) = (mode_of(&meta), mtime_of(&meta), meta.len());
      if let Some(listed) = listed {
        leveldb::check_table(&mut file, &path, len, listed)?;
      }
      archive.add_file(&entry_of(root, &path, false)?, mode, mtime, len, file.take(len))?;
    }
  }
  archive.finish()
}

#[cfg(all(test, unix))]
#[path = "from_dir_fence_tests.rs"]
mod fence_tests;

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

  fn stored_names(packed: &Packed) -> Vec<String> {
    let (_, entries) = crate::archive::read_entries(&packed.bytes, None, &Default::default(), "s").unwrap();
    entries.into_iter().map(|e| e.path).collect()
  }

  #[test]
  fn a_leveldb_is_stored_as_its_manifest_describes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("Default/IndexedDB/x.indexeddb.leveldb");
    crate::archive::leveldb::tests::write_db(&db);
    let names = stored_names(&pack_dir(dir.path(), &PackOptions::default(), "s").unwrap());
    let inside: Vec<&str> =
      names.iter().filter_map(|n| n.strip_prefix("Default/IndexedDB/x.indexeddb.leveldb/")).collect();
    assert_eq!(inside, ["000005.ldb", "000007.ldb", "000008.log", "CURRENT", "LOCK", "LOG", "MANIFEST-000002"]);
  }

  #[test]
  fn a_snapshot_that_lacks_a_listed_table_is_refused_after_retries() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("Default/Local Storage/leveldb");
    crate::archive::leveldb::tests::write_db(&db);
    std::fs::write(db.join("000007.ldb"), crate::archive::leveldb::tests::table(60_000, 1)).unwrap();
    let err = pack_dir(dir.path(), &PackOptions::default(), "s").unwrap_err();
    assert_eq!(err.code(), "ERR_PROFILE_CHANGING", "{err}");
    assert!(err.to_string().contains("000007.ldb has 60000 bytes, its manifest lists 70000"), "{err}");
    assert!(err.to_string().contains(&format!("({ATTEMPTS} reads)")), "given up only after every retry: {err}");
    std::fs::remove_file(db.join("000007.ldb")).unwrap();
    let err = pack_dir(dir.path(), &PackOptions::default(), "s").unwrap_err();
    assert!(err.to_string().contains("000007.ldb, which its manifest needs, went away"), "{err}");
    let mut cut = crate::archive::leveldb::tests::table(3000, 5);
    cut.truncate(2000);
    std::fs::write(db.join("000007.ldb"), crate::archive::leveldb::tests::table(70_000, 7)).unwrap();
    std::fs::write(db.join("000005.ldb"), cut).unwrap();
    assert_eq!(pack_dir(dir.path(), &PackOptions::default(), "s").unwrap_err().code(), "ERR_PROFILE_CHANGING");
  }

  #[test]
  fn a_walk_that_fails_for_another_reason_than_a_vanished_file_is_err_io_with_its_path() {
    // A path through a file (ENOTDIR) fails like an unreadable folder (EACCES) does, and needs no permissions
    // (tests may run as root, which reads mode-000 folders).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let bad = walkdir::WalkDir::new(dir.path().join("file/below")).into_iter().next().unwrap().unwrap_err();
    let err = walk_err(bad);
    assert_eq!(err.code(), "ERR_IO", "{err}");
    assert!(err.to_string().contains("file/below"), "{err}");
    let gone = walkdir::WalkDir::new(dir.path().join("gone")).into_iter().next().unwrap().unwrap_err();
    assert_eq!(walk_err(gone).code(), "ERR_PROFILE_CHANGING");
  }
}
