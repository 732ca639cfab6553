//! The policy against the embedded tier.

use std::io::Write;

use super::*;
use crate::tier::LocalDirTier;

struct Fixture {
  _dir: tempfile::TempDir,
  root: PathBuf,
  store: Store,
}

fn fixture() -> Fixture {
  let dir = tempfile::tempdir().unwrap();
  let root = dir.path().to_path_buf();
  let tier = LocalDirTier::open(root.join("store")).unwrap();
  let config = StoreConfig { data_path: root.join("auth"), pack: PackOptions::default(), local_dir: None };
  std::fs::create_dir_all(&config.data_path).unwrap();
  Fixture { _dir: dir, root, store: Store::new(Some(Arc::new(tier)), None, config).unwrap() }
}

fn write_session_zip(path: &Path, body: &[u8]) {
  let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
  zip.start_file("Default/IndexedDB/db/000003.log", zip::write::SimpleFileOptions::default()).unwrap();
  zip.write_all(body).unwrap();
  zip.finish().unwrap();
}

fn read_only_entry(path: &Path) -> Vec<u8> {
  let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
  let mut out = Vec::new();
  std::io::Read::read_to_end(&mut zip.by_name("Default/IndexedDB/db/000003.log").unwrap(), &mut out).unwrap();
  out
}

#[tokio::test]
async fn save_extract_delete() {
  let f = fixture();
  write_session_zip(&f.root.join("auth/RemoteAuth-a.zip"), b"login v1");
  assert!(!f.store.session_exists("RemoteAuth-a").await.unwrap());
  let saved = f.store.save("RemoteAuth-a", None).await.unwrap().info;
  assert_eq!(saved.header.files_bytes, 8);
  assert!(f.store.session_exists("RemoteAuth-a").await.unwrap());

  let out = f.root.join("fresh/dir/RemoteAuth-a.zip");
  f.store.extract("RemoteAuth-a", &out).await.unwrap();
  assert_eq!(read_only_entry(&out), b"login v1");
  assert_eq!(f.store.list().await.unwrap().len(), 1);

  f.store.delete("RemoteAuth-a").await.unwrap();
  f.store.delete("RemoteAuth-a").await.unwrap();
  assert!(!f.store.session_exists("RemoteAuth-a").await.unwrap());
  assert_eq!(f.store.extract("RemoteAuth-a", &out).await.unwrap_err().code(), "ERR_SESSION_NOT_FOUND");
}

#[tokio::test]
async fn extract_watches_for_the_unzip_and_export_does_not() {
  let f = fixture();
  write_session_zip(&f.root.join("auth/RemoteAuth-w.zip"), b"small: the pad follows it");
  f.store.save("RemoteAuth-w", None).await.unwrap();
  f.store.extract("RemoteAuth-w", &f.root.join("auth/RemoteAuth-w.zip")).await.unwrap();
  assert_eq!(f.store.pads.watching(), 1, "RemoteAuth unzips what extract wrote: its pad is watched");
  f.store.close().await;
  f.store.export_version("RemoteAuth-w", &f.root.join("out/RemoteAuth-w.zip"), &Pick::default()).await.unwrap();
  assert_eq!(f.store.pads.watching(), 0, "an exported zip is for another store: nothing here watches it");
  assert!(read_only_entry(&f.root.join("out/RemoteAuth-w.zip")).starts_with(b"small"));
}

#[tokio::test]
async fn absolute_session_path_finds_the_zip_beside_it() {
  let f = fixture();
  let stem = f.root.join("auth/RemoteAuth-b");
  write_session_zip(&f.root.join("auth/RemoteAuth-b.zip"), b"abs");
  let saved = f.store.save(stem.to_str().unwrap(), None).await.unwrap().info;
  assert_eq!(saved.key.as_str(), "RemoteAuth-b");
  assert!(f.store.session_exists("RemoteAuth-b").await.unwrap());
}

#[tokio::test]
async fn a_bad_zip_leaves_the_stored_session_untouched() {
  let f = fixture();
  let zip = f.root.join("auth/RemoteAuth-c.zip");
  write_session_zip(&zip, b"good");
  f.store.save("RemoteAuth-c", None).await.unwrap();
  std::fs::write(&zip, b"garbage").unwrap();
  assert_eq!(f.store.save("RemoteAuth-c", None).await.unwrap_err().code(), "ERR_ZIP_INVALID");
  let out = f.root.join("out.zip");
  f.store.extract("RemoteAuth-c", &out).await.unwrap();
  assert_eq!(read_only_entry(&out), b"good");
}

#[tokio::test]
async fn a_corrupt_stored_archive_writes_nothing() {
  let f = fixture();
  write_session_zip(&f.root.join("auth/RemoteAuth-d.zip"), b"good");
  f.store.save("RemoteAuth-d", None).await.unwrap();
  let stored = f.root.join("store/RemoteAuth-d.wwrs");
  let mut bytes = std::fs::read(&stored).unwrap();
  let last = bytes.len() - 1;
  bytes[last] ^= 1;
  std::fs::write(&stored, bytes).unwrap();
  let out = f.root.join("out/RemoteAuth-d.zip");
  std::fs::create_dir_all(out.parent().unwrap()).unwrap();
  std::fs::write(&out, b"previous").unwrap();
  assert_eq!(f.store.extract("RemoteAuth-d", &out).await.unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  assert_eq!(std::fs::read(&out).unwrap(), b"previous", "the file at path is untouched");
  assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1, "no temp file left");
}

#[tokio::test]
async fn stores_the_kept_entries_as_they_came() {
  let f = fixture();
  let path = f.root.join("auth/RemoteAuth-r.zip");
  let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
  let deflated = zip::write::SimpleFileOptions::default();
  zip.start_file("Default/IndexedDB/db/000003.log", deflated).unwrap();
  zip.write_all(&b"record ".repeat(20_000)).unwrap();
  zip.start_file("Default/Cache/data_1", deflated).unwrap();
  zip.write_all(&[3u8; 10_000]).unwrap();
  zip.finish().unwrap();
  let zip_len = std::fs::metadata(&path).unwrap().len();
  let saved = f.store.save("RemoteAuth-r", None).await.unwrap().info;
  assert!(saved.header.stored_bytes() < zip_len, "{} >= {zip_len}", saved.header.stored_bytes());
  let out = f.root.join("out.zip");
  f.store.extract("RemoteAuth-r", &out).await.unwrap();
  assert_eq!(read_only_entry(&out), b"record ".repeat(20_000));
  assert!(std::fs::metadata(&out).unwrap().len() < zip_len, "the transient zip holds the kept entries only");
}

#[tokio::test]
async fn missing_zip_and_bad_names_are_coded() {
  let f = fixture();
  assert_eq!(f.store.save("RemoteAuth-none", None).await.unwrap_err().code(), "ERR_ZIP_NOT_FOUND");
  assert_eq!(f.store.save("../evil", None).await.unwrap_err().code(), "ERR_SESSION_NAME");
  assert_eq!(f.store.session_exists("").await.unwrap_err().code(), "ERR_SESSION_NAME");
}

/// Another store (a replica) on the fixture's directory.
fn replica(f: &Fixture) -> Store {
  let config = StoreConfig { data_path: f.root.join("auth"), pack: PackOptions::default(), local_dir: None };
  Store::new(Some(Arc::new(LocalDirTier::open(f.root.join("store")).unwrap())), None, config).unwrap()
}

#[tokio::test]
async fn a_lost_lease_fences_every_later_save() {
  let f = fixture();
  let other = replica(&f);
  let ttl = std::time::Duration::from_millis(1_000);
  write_session_zip(&f.root.join("auth/RemoteAuth-l.zip"), b"from a");
  let token = f.store.acquire_lease("RemoteAuth-l", ttl).await.unwrap();
  assert_eq!(other.acquire_lease("RemoteAuth-l", ttl).await.unwrap_err().code(), "ERR_LEASE_HELD");
  f.store.save("RemoteAuth-l", None).await.unwrap();
  f.store.renew_lease("RemoteAuth-l", &token, ttl).await.unwrap();

  tokio::time::sleep(ttl * 2).await; // a paused replica: its lease expires
  let theirs = other.acquire_lease("RemoteAuth-l", ttl * 10).await.unwrap();
  write_session_zip(&f.root.join("auth/RemoteAuth-l.zip"), b"from b");
  other.save("RemoteAuth-l", None).await.unwrap();
  write_session_zip(&f.root.join("auth/RemoteAuth-l.zip"), b"stale a");
  assert_eq!(f.store.save("RemoteAuth-l", None).await.unwrap_err().code(), "ERR_LEASE_LOST");
  assert_eq!(f.store.renew_lease("RemoteAuth-l", &token, ttl).await.unwrap_err().code(), "ERR_LEASE_LOST");
  assert_eq!(f.store.save("RemoteAuth-l", None).await.unwrap_err().code(), "ERR_LEASE_LOST", "still refused");
  let out = f.root.join("out.zip");
  f.store.extract("RemoteAuth-l", &out).await.unwrap();
  assert_eq!(read_only_entry(&out), b"from b", "the new owner's session stands");

  other.release_lease("RemoteAuth-l", &theirs).await.unwrap();
  f.store.acquire_lease("RemoteAuth-l", ttl).await.unwrap();
  f.store.save("RemoteAuth-l", None).await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_nobody_took_is_taken_again() {
  use crate::tier::LeaseState::{Held, Retaken};
  let f = fixture();
  let other = replica(&f);
  let ttl = std::time::Duration::from_millis(200);
  write_session_zip(&f.root.join("auth/RemoteAuth-x.zip"), b"x");
  let token = f.store.acquire_lease("RemoteAuth-x", ttl).await.unwrap();
  tokio::time::sleep(ttl * 2).await; // the tier was out of reach past the ttl
  assert_eq!(f.store.renew_lease("RemoteAuth-x", &token, ttl).await.unwrap(), Retaken);
  assert_eq!(other.acquire_lease("RemoteAuth-x", ttl).await.unwrap_err().code(), "ERR_LEASE_HELD");
  assert_eq!(f.store.renew_lease("RemoteAuth-x", &token, ttl).await.unwrap(), Held);

  tokio::time::sleep(ttl * 2).await;
  f.store.save("RemoteAuth-x", None).await.unwrap(); // a save takes it again too
  assert_eq!(f.store.renew_lease("RemoteAuth-x", &token, ttl).await.unwrap(), Retaken, "and the renewal says so");

  f.store.release_lease("RemoteAuth-x", &token).await.unwrap();
  let late = f.store.renew_lease("RemoteAuth-x", &token, ttl).await.unwrap_err();
  assert_eq!(late.code(), "ERR_LEASE_LOST", "a released token cannot take it back");
}

#[tokio::test]
async fn a_lost_lease_fences_deletes() {
  let f = fixture();
  let other = replica(&f);
  let ttl = std::time::Duration::from_millis(200);
  f.store.acquire_lease("RemoteAuth-d", ttl).await.unwrap();
  tokio::time::sleep(ttl * 2).await;
  let theirs = other.acquire_lease("RemoteAuth-d", ttl * 50).await.unwrap();
  write_session_zip(&f.root.join("auth/RemoteAuth-d.zip"), b"from b");
  other.save("RemoteAuth-d", None).await.unwrap();
  assert_eq!(f.store.delete("RemoteAuth-d").await.unwrap_err().code(), "ERR_LEASE_LOST");
  assert!(other.session_exists("RemoteAuth-d").await.unwrap(), "the new owner's session stands");
  other.delete("RemoteAuth-d").await.unwrap();
  assert!(!other.session_exists("RemoteAuth-d").await.unwrap());
  other.release_lease("RemoteAuth-d", &theirs).await.unwrap();
}

/// Issue #25 item 5: a failed stop abandons the lease; the same store taking the session again later and
/// releasing that lease (a start that failed) must not unfence it, since the client it could not stop may still
/// write through it.
#[tokio::test]
async fn an_abandoned_lease_keeps_its_fence_past_a_later_release() {
  let f = fixture();
  let other = replica(&f);
  let ttl = std::time::Duration::from_millis(200);
  let first = f.store.acquire_lease("RemoteAuth-a", ttl).await.unwrap();
  f.store.abandon_lease("RemoteAuth-a", &first).unwrap();
  tokio::time::sleep(ttl * 2).await;
  let again = f.store.acquire_lease("RemoteAuth-a", ttl).await.unwrap();
  f.store.release_lease("RemoteAuth-a", &again).await.unwrap();
  let theirs = other.acquire_lease("RemoteAuth-a", ttl * 50).await.unwrap();
  write_session_zip(&f.root.join("auth/RemoteAuth-a.zip"), b"from b");
  other.save("RemoteAuth-a", None).await.unwrap();
  assert_eq!(f.store.delete("RemoteAuth-a").await.unwrap_err().code(), "ERR_LEASE_LOST");
  assert_eq!(f.store.save("RemoteAuth-a", None).await.unwrap_err().code(), "ERR_LEASE_LOST");
  assert!(other.session_exists("RemoteAuth-a").await.unwrap(), "the new owner's session stands");
  other.release_lease("RemoteAuth-a", &theirs).await.unwrap();
}
