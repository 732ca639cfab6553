//! The profile reader opens nothing it has not looked at: links (anywhere, `Default` included), FIFOs, sockets
//! and devices are refused with a code, never opened, followed or read without bound.

use std::os::unix::fs::symlink;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::archive::leveldb::tests::write_db;

const IDB: &str = "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb";

fn mkfifo(path: &Path) {
  let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
  assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// `pack_dir` of `root`, on a thread: a read that blocks (a FIFO opened for reading) shows as a failure here
/// instead of a test run that never ends.
fn pack(root: &Path) -> Result<Packed> {
  let (tx, rx) = mpsc::channel();
  let root = root.to_path_buf();
  std::thread::spawn(move || tx.send(pack_dir(&root, &PackOptions::default(), "s")));
  rx.recv_timeout(Duration::from_secs(60)).expect("pack_dir blocked on a special file")
}

fn refused(root: &Path, reason: &str) {
  let err = pack(root).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_ENTRY", "{err}");
  assert!(err.to_string().contains(reason), "{err}");
}

fn profile() -> tempfile::TempDir {
  let dir = tempfile::tempdir().unwrap();
  write_db(&dir.path().join(IDB));
  std::fs::create_dir_all(dir.path().join("Default/Local Storage/leveldb")).unwrap();
  std::fs::write(dir.path().join("Default/Local Storage/leveldb/000003.log"), b"ls").unwrap();
  pack(dir.path()).expect("the unmutated profile packs");
  dir
}

#[test]
fn a_fifo_current_is_refused_without_blocking() {
  let dir = profile();
  let current = dir.path().join(IDB).join("CURRENT");
  std::fs::remove_file(&current).unwrap();
  mkfifo(&current);
  refused(dir.path(), "is a FIFO");
}

#[test]
fn a_needed_log_that_is_a_fifo_is_refused_without_blocking() {
  let dir = profile();
  let log = dir.path().join(IDB).join("000008.log");
  std::fs::remove_file(&log).unwrap();
  mkfifo(&log);
  refused(dir.path(), "is a FIFO");
}

#[test]
fn a_fifo_or_socket_outside_a_leveldb_is_refused() {
  let dir = profile();
  mkfifo(&dir.path().join("Default/Local Storage/leveldb/fifo"));
  refused(dir.path(), "is a FIFO");
  let dir = profile();
  let _listening = std::os::unix::net::UnixListener::bind(dir.path().join("Default/IndexedDB/sock")).unwrap();
  refused(dir.path(), "is a socket");
}

#[test]
fn a_current_linked_to_dev_zero_is_refused_not_read() {
  let dir = profile();
  let current = dir.path().join(IDB).join("CURRENT");
  std::fs::remove_file(&current).unwrap();
  symlink("/dev/zero", &current).unwrap();
  refused(dir.path(), "is a link");
  // A manifest or a table linked anywhere: the same.
  let dir = profile();
  let manifest = dir.path().join(IDB).join("MANIFEST-000002");
  std::fs::rename(&manifest, dir.path().join("elsewhere")).unwrap();
  symlink(dir.path().join("elsewhere"), &manifest).unwrap();
  refused(dir.path(), "is a link");
}

#[test]
fn a_linked_default_or_kept_folder_is_refused_not_followed() {
  let outside = profile();
  let dir = tempfile::tempdir().unwrap();
  symlink(outside.path().join("Default"), dir.path().join("Default")).unwrap();
  refused(dir.path(), "Default\": is a link");

  let dir = tempfile::tempdir().unwrap();
  std::fs::create_dir_all(dir.path().join("Default")).unwrap();
  symlink(outside.path().join("Default/IndexedDB"), dir.path().join("Default/IndexedDB")).unwrap();
  refused(dir.path(), "IndexedDB\": is a link");

  // A dangling link is refused the same way: it is a link, wherever it points.
  let dir = tempfile::tempdir().unwrap();
  symlink("/nonexistent", dir.path().join("Default")).unwrap();
  refused(dir.path(), "Default\": is a link");
}

#[test]
fn a_current_longer_than_any_manifest_name_is_stored_as_found() {
  let dir = profile();
  let current = dir.path().join(IDB).join("CURRENT");
  std::fs::write(&current, vec![b'M'; 100_000]).unwrap();
  let packed = pack(dir.path()).unwrap();
  let (_, entries) = crate::archive::read_entries(&packed.bytes, None, &Default::default(), "s").unwrap();
  let stored = entries.into_iter().find(|e| e.path.ends_with("/CURRENT")).unwrap();
  let crate::archive::Data::File(bytes) = stored.data else { panic!("CURRENT stored as a folder") };
  assert_eq!(bytes, vec![b'M'; 100_000], "not a LevelDB's CURRENT: the folder is stored as found");
}
