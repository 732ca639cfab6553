//! Writes decided on what was read before (migrate --overwrite, import, cleanup of stale sessions) against a
//! write by another process landing in between: the step is held open by holding the session's lock file, the
//! way another process's rename holds it, and the other write lands while it is held.

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::locks::{wait_for_waiter, FileLock};
use crate::tier::LocalDirTier;

const SESSION: &str = "RemoteAuth-a";

fn zip_of(body: &[u8]) -> Vec<u8> {
  let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
  zip.start_file("Default/IndexedDB/db/000003.log", zip::write::SimpleFileOptions::default()).unwrap();
  zip.write_all(body).unwrap();
  zip.finish().unwrap().into_inner()
}

fn store_on(dir: &Path) -> Store {
  let tier = LocalDirTier::open(dir.join("store")).unwrap();
  let config = StoreConfig { data_path: dir.join("auth"), pack: PackOptions::default(), local_dir: None };
  Store::new(Some(Arc::new(tier)), None, config).unwrap()
}

fn packed(body: &[u8]) -> archive::Packed {
  save::pack_zip_bytes(&zip_of(body), &PackOptions::default(), SESSION).unwrap()
}

async fn entry_of(store: &Store, dir: &Path) -> Vec<u8> {
  let out = dir.join("out.zip");
  store.export_version(SESSION, &out, &Pick::default()).await.unwrap();
  let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
  let mut body = Vec::new();
  std::io::Read::read_to_end(&mut zip.by_name("Default/IndexedDB/db/000003.log").unwrap(), &mut body).unwrap();
  body
}

/// Runs `write` until it waits for the session's lock, then lands another process's save of `body` (a rename
/// under the lock, as that process's save does) and lets `write` go on.
async fn with_a_save_between<T: Send + 'static>(
  dir: &Path,
  body: &'static [u8],
  write: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
  let lock = dir.join("store").join(format!(".lock-{SESSION}"));
  let held = FileLock::acquire(&lock).unwrap();
  let task = tokio::spawn(write);
  let waited = lock.clone();
  tokio::task::spawn_blocking(move || wait_for_waiter(&waited)).await.unwrap();
  let theirs = dir.join("store").join(".their-save");
  std::fs::write(&theirs, packed(body).bytes).unwrap();
  std::fs::rename(&theirs, dir.join("store").join(format!("{SESSION}.wwrs"))).unwrap();
  drop(held);
  tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap()
}

#[tokio::test]
async fn an_import_never_replaces_a_save_made_since_it_compared() {
  let root = tempfile::tempdir().unwrap();
  let store = store_on(root.path());
  let key = SessionKey::parse(SESSION).unwrap();
  store.import_zip(&key, zip_of(b"v1"), true).await.unwrap();
  let importing = store.clone();
  let import = async move { importing.import_zip(&SessionKey::parse(SESSION).unwrap(), zip_of(b"v2"), true).await };
  let err = with_a_save_between(root.path(), b"service", import).await.unwrap_err();
  assert_eq!(err.code(), "ERR_SESSION_CHANGED");
  assert_eq!(entry_of(&store, root.path()).await, b"service", "the service's save stands");
  // Unhindered, it imports.
  assert!(matches!(store.import_zip(&key, zip_of(b"v2"), true).await.unwrap(), ImportOutcome::Imported { .. }));
}

#[tokio::test]
async fn a_migration_over_an_older_copy_keeps_a_save_made_since_it_looked() {
  let root = tempfile::tempdir().unwrap();
  let store = store_on(root.path());
  let key = SessionKey::parse(SESSION).unwrap();
  store.import(&key, packed(b"old"), None).await.unwrap().unwrap();
  let migrating = store.clone();
  let migrate =
    async move { migrating.import(&SessionKey::parse(SESSION).unwrap(), packed(b"folder"), Some(u64::MAX)).await };
  assert!(with_a_save_between(root.path(), b"service", migrate).await.unwrap().is_none(), "kept");
  assert_eq!(entry_of(&store, root.path()).await, b"service");
  assert!(store.import(&key, packed(b"folder"), Some(u64::MAX)).await.unwrap().is_some(), "unhindered, it replaces");
  assert_eq!(entry_of(&store, root.path()).await, b"folder");
}

#[tokio::test]
async fn a_stale_session_saved_again_meanwhile_is_not_deleted() {
  let root = tempfile::tempdir().unwrap();
  let store = store_on(root.path());
  let key = SessionKey::parse(SESSION).unwrap();
  store.import(&key, packed(b"old"), None).await.unwrap().unwrap();
  let cleaning = store.clone();
  let clean = async move { cleaning.delete_unsaved_since(SESSION, u64::MAX).await };
  assert!(!with_a_save_between(root.path(), b"service", clean).await.unwrap(), "kept");
  assert_eq!(entry_of(&store, root.path()).await, b"service");
  assert!(store.delete_unsaved_since(SESSION, u64::MAX).await.unwrap(), "unhindered, it deletes");
  assert!(!store.session_exists(SESSION).await.unwrap());
}
