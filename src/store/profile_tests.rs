//! Profiles to the embedded tier and back, and what a restore leaves when it stops half-way.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::store::StoreConfig;
use crate::tier::LocalDirTier;

fn store(root: &Path) -> Store {
  let tier = LocalDirTier::open(root.join("store")).unwrap();
  let config = StoreConfig { data_path: root.join("auth"), pack: PackOptions::default(), local_dir: None };
  Store::new(Some(Arc::new(tier)), None, config).unwrap()
}

fn put(root: &Path, rel: &str, data: &[u8]) {
  let path = root.join(rel);
  std::fs::create_dir_all(path.parent().unwrap()).unwrap();
  std::fs::write(path, data).unwrap();
}

/// Every file below `root`, relative, with its bytes.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
  let mut out: Vec<_> = walkdir::WalkDir::new(root)
    .into_iter()
    .map(|e| e.unwrap())
    .filter(|e| e.file_type().is_file())
    .map(|e| (e.path().strip_prefix(root).unwrap().display().to_string(), std::fs::read(e.path()).unwrap()))
    .collect();
  out.sort();
  out
}

fn siblings(parent: &Path) -> Vec<String> {
  let mut names: Vec<String> =
    std::fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
  names.sort();
  names
}

#[tokio::test]
async fn a_profile_round_trips_and_replaces_the_old_one_whole() {
  let tmp = tempfile::tempdir().unwrap();
  let (root, store) = (tmp.path(), store(tmp.path()));
  let profile = root.join("auth/RemoteAuth-a");
  put(&profile, "Default/IndexedDB/db.leveldb/000003.log", b"log v1");
  put(&profile, "Default/Local Storage/leveldb/000005.ldb", &[7u8; 70_000]);
  put(&profile, "Default/Cache/data_1", b"not kept");
  let saved = store.save_dir("RemoteAuth-a", &profile).await.unwrap();
  assert_eq!(saved.info.header.files_bytes, 6 + 70_000);

  put(&profile, "Default/IndexedDB/db.leveldb/000009.log", b"written after the save");
  let restored = store.restore_dir("RemoteAuth-a", &profile).await.unwrap();
  assert_eq!(restored.header, saved.info.header);
  assert_eq!(
    files(&profile),
    vec![
      ("Default/IndexedDB/db.leveldb/000003.log".to_string(), b"log v1".to_vec()),
      ("Default/Local Storage/leveldb/000005.ldb".to_string(), vec![7u8; 70_000]),
    ],
    "exactly the stored files: the old profile is gone, not merged"
  );
  assert_eq!(siblings(&root.join("auth")), vec!["RemoteAuth-a"], "no temp or aside folder left");
  #[cfg(unix)]
  {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&profile.join("Default/IndexedDB")), 0o700);
    assert_eq!(mode(&profile.join("Default/Local Storage/leveldb/000005.ldb")), 0o600);
  }

  // Into a folder that does not exist yet, below a parent that does not either.
  let elsewhere = root.join("new/place/RemoteAuth-a");
  store.restore_dir("RemoteAuth-a", &elsewhere).await.unwrap();
  assert_eq!(files(&elsewhere), files(&profile));
}

#[tokio::test]
async fn a_failed_restore_leaves_the_profile_untouched() {
  let tmp = tempfile::tempdir().unwrap();
  let (root, store) = (tmp.path(), store(tmp.path()));
  let profile = root.join("auth/RemoteAuth-b");
  put(&profile, "Default/IndexedDB/x", b"mine");
  assert_eq!(store.restore_dir("RemoteAuth-b", &profile).await.unwrap_err().code(), "ERR_SESSION_NOT_FOUND");
  // A stored copy that fails its checksum: nothing is written.
  store.save_dir("RemoteAuth-b", &profile).await.unwrap();
  let stored = root.join("store/RemoteAuth-b.wwrs");
  let mut bytes = std::fs::read(&stored).unwrap();
  let last = bytes.len() - 1;
  bytes[last] ^= 1;
  std::fs::write(&stored, bytes).unwrap();
  put(&profile, "Default/IndexedDB/x", b"changed");
  assert_eq!(store.restore_dir("RemoteAuth-b", &profile).await.unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  assert_eq!(files(&profile), vec![("Default/IndexedDB/x".to_string(), b"changed".to_vec())]);
  assert_eq!(siblings(&root.join("auth")), vec!["RemoteAuth-b"]);
}

#[tokio::test]
async fn leftovers_of_an_interrupted_restore_are_repaired() {
  let tmp = tempfile::tempdir().unwrap();
  let (root, store) = (tmp.path(), store(tmp.path()));
  let auth = root.join("auth");
  let profile = auth.join("RemoteAuth-c");
  put(&profile, "Default/IndexedDB/x", b"stored");
  store.save_dir("RemoteAuth-c", &profile).await.unwrap();

  // Stopped between the two renames: no profile, the old one aside, the new one complete in its temp folder.
  std::fs::rename(&profile, auth.join(".RemoteAuth-c.old-77")).unwrap();
  put(&auth, ".RemoteAuth-c.restore-abc/Default/IndexedDB/x", b"half");
  put(&auth, ".RemoteAuth-cx.restore-abc/keep", b"another profile's: not ours to touch");
  repair(&auth, "RemoteAuth-c", &profile).unwrap();
  assert_eq!(files(&profile), vec![("Default/IndexedDB/x".to_string(), b"stored".to_vec())], "the old one is back");
  assert_eq!(siblings(&auth), vec![".RemoteAuth-cx.restore-abc", "RemoteAuth-c"]);

  // Stopped after the swap: the aside copy goes, the profile stays.
  put(&auth, ".RemoteAuth-c.old-78/Default/IndexedDB/x", b"older");
  store.restore_dir("RemoteAuth-c", &profile).await.unwrap();
  assert_eq!(siblings(&auth), vec![".RemoteAuth-cx.restore-abc", "RemoteAuth-c"]);
  assert_eq!(files(&profile), vec![("Default/IndexedDB/x".to_string(), b"stored".to_vec())]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_link_in_a_kept_folder_is_refused_on_save() {
  let tmp = tempfile::tempdir().unwrap();
  let (root, store) = (tmp.path(), store(tmp.path()));
  let profile = root.join("auth/RemoteAuth-d");
  put(&profile, "Default/IndexedDB/x", b"1");
  std::os::unix::fs::symlink("/etc/passwd", profile.join("Default/IndexedDB/evil")).unwrap();
  assert_eq!(store.save_dir("RemoteAuth-d", &profile).await.unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  assert!(!store.session_exists("RemoteAuth-d").await.unwrap());
}

#[tokio::test]
async fn the_store_folder_data_path_and_their_parents_are_refused_and_survive() {
  let tmp = tempfile::tempdir().unwrap();
  let root = tmp.path();
  let tier = LocalDirTier::open(root.join("store")).unwrap();
  let config =
    StoreConfig { data_path: root.join("auth"), pack: PackOptions::default(), local_dir: Some(root.join("store")) };
  let store = Store::new(Some(Arc::new(tier)), None, config).unwrap();
  let profile = root.join("auth/RemoteAuth-e");
  put(&profile, "Default/IndexedDB/x", b"kept");
  store.save_dir("RemoteAuth-e", &profile).await.unwrap();
  let before = files(root);
  for dir in [root.join("store"), root.join("auth"), root.to_path_buf(), root.join("auth/.."), PathBuf::new()] {
    let err = store.restore_dir("RemoteAuth-e", &dir).await.unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_ARG", "{}: {err}", dir.display());
    assert_eq!(store.save_dir("RemoteAuth-e", &dir).await.unwrap_err().code(), "ERR_INVALID_ARG");
  }
  assert_eq!(files(root), before, "nothing touched");
}

#[cfg(unix)]
#[tokio::test]
async fn a_linked_profile_folder_is_restored_through_the_link() {
  let tmp = tempfile::tempdir().unwrap();
  let (root, store) = (tmp.path(), store(tmp.path()));
  let volume = root.join("volume/RemoteAuth-f");
  put(&volume, "Default/IndexedDB/x", b"saved");
  let link = root.join("auth/RemoteAuth-f");
  std::fs::create_dir_all(root.join("auth")).unwrap();
  std::os::unix::fs::symlink(&volume, &link).unwrap();
  store.save_dir("RemoteAuth-f", &link).await.unwrap();
  put(&volume, "Default/IndexedDB/x", b"changed");
  put(&volume, "Default/IndexedDB/y", b"new");
  store.restore_dir("RemoteAuth-f", &link).await.unwrap();
  assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
  assert_eq!(std::fs::read_link(&link).unwrap(), volume);
  assert_eq!(files(&volume), vec![("Default/IndexedDB/x".to_string(), b"saved".to_vec())], "restored into its target");
  assert_eq!(siblings(&root.join("auth")), vec!["RemoteAuth-f"]);
  assert_eq!(siblings(&root.join("volume")), vec!["RemoteAuth-f"], "no temp, aside or lock file left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_restores_of_one_folder_take_turns() {
  let tmp = tempfile::tempdir().unwrap();
  let root = tmp.path();
  let store = Arc::new(store(root));
  let profile = root.join("auth/RemoteAuth-g");
  put(&profile, "Default/IndexedDB/x", b"saved");
  put(&profile, "Default/Local Storage/leveldb/000003.log", &[3u8; 40_000]);
  store.save_dir("RemoteAuth-g", &profile).await.unwrap();
  let saved = files(&profile);
  for round in 0..5 {
    put(&profile, "Default/IndexedDB/x", format!("round {round}").as_bytes());
    // One through a second store of the same process, as two RustStore instances would.
    let other = Arc::new(self::store(root));
    let calls = (0..3).map(|i| {
      let store = if i == 0 { other.clone() } else { store.clone() };
      let profile = profile.clone();
      tokio::spawn(async move { store.restore_dir("RemoteAuth-g", &profile).await })
    });
    for done in futures::future::join_all(calls).await {
      done.unwrap().unwrap_or_else(|e| panic!("round {round}: {} {e}", e.code()));
    }
    assert_eq!(files(&profile), saved, "round {round}");
    assert_eq!(siblings(&root.join("auth")), vec!["RemoteAuth-g"], "round {round}");
  }
}

#[tokio::test]
async fn a_save_waits_out_a_restore_of_another_process_and_never_reads_past_it() {
  let tmp = tempfile::tempdir().unwrap();
  let (root, store) = (tmp.path(), store(tmp.path()));
  let profile = root.join("auth/RemoteAuth-h");
  put(&profile, "Default/IndexedDB/x", b"saved");
  // The folder's lock held as another process's restore holds it, past the wait (short in tests).
  let lock = crate::locks::FileLock::acquire(&root.join(format!("auth/.RemoteAuth-h.{LOCK}"))).unwrap();
  let err = store.save_dir("RemoteAuth-h", &profile).await.unwrap_err();
  assert_eq!(err.code(), "ERR_PROFILE_IN_USE", "{err}");
  assert!(!store.session_exists("RemoteAuth-h").await.unwrap(), "nothing saved while the folder could be mid-swap");
  drop(lock);
  store.save_dir("RemoteAuth-h", &profile).await.unwrap();
}
