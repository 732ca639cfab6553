//! A LevelDB folder written the way LevelDB writes one, and the snapshot's view of it.

use super::*;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
  while v >= 0x80 {
    out.push((v as u8) | 0x80);
    v >>= 7;
  }
  out.push(v as u8);
}

fn mask(crc: u32) -> u32 {
  crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` as log-format records appended to `out` (fragmented across 32 KiB blocks like LevelDB's writer).
pub(crate) fn append_record(out: &mut Vec<u8>, data: &[u8]) {
  let mut left = data;
  let mut first = true;
  loop {
    let room = BLOCK - out.len() % BLOCK;
    if room < HEADER {
      out.extend(std::iter::repeat_n(0, room));
      continue;
    }
    let take = left.len().min(room - HEADER);
    let last = take == left.len();
    let kind = match (first, last) {
      (true, true) => 1,
      (true, false) => 2,
      (false, false) => 3,
      (false, true) => 4,
    };
    let mut typed = vec![kind];
    typed.extend_from_slice(&left[..take]);
    out.extend_from_slice(&mask(crc32c(&typed)).to_le_bytes());
    out.extend_from_slice(&(take as u16).to_le_bytes());
    out.extend_from_slice(&typed);
    left = &left[take..];
    first = false;
    if last {
      return;
    }
  }
}

/// A version edit: the log number, tables added `(number, size)` and tables deleted.
pub(crate) fn edit(log_number: u64, added: &[(u64, u64)], deleted: &[u64]) -> Vec<u8> {
  let mut out = Vec::new();
  put_varint(&mut out, 1);
  put_varint(&mut out, 26);
  out.extend_from_slice(b"leveldb.BytewiseComparator");
  put_varint(&mut out, 2);
  put_varint(&mut out, log_number);
  for &n in deleted {
    put_varint(&mut out, 6);
    put_varint(&mut out, 0);
    put_varint(&mut out, n);
  }
  for &(n, size) in added {
    put_varint(&mut out, 7);
    for v in [1, n, size] {
      put_varint(&mut out, v);
    }
    for key in [&b"a\x01\0\0\0\0\0\0\0"[..], b"z\x01\0\0\0\0\0\0\0"] {
      put_varint(&mut out, key.len() as u64);
      out.extend_from_slice(key);
    }
  }
  out
}

/// A table file of `len` bytes (at least 8) that ends in the table magic.
pub(crate) fn table(len: usize, fill: u8) -> Vec<u8> {
  let mut out = vec![fill; len - 8];
  out.extend_from_slice(&TABLE_MAGIC);
  out
}

/// Writes a LevelDB folder: tables 5 (3000 B) and 7 (70 KB) live, 4 deleted but still on disk, log 8 current.
pub(crate) fn write_db(dir: &Path) {
  std::fs::create_dir_all(dir).unwrap();
  let mut manifest = Vec::new();
  append_record(&mut manifest, &edit(3, &[(4, 100), (5, 3000)], &[]));
  append_record(&mut manifest, &edit(8, &[(7, 70_000)], &[4]));
  std::fs::write(dir.join("MANIFEST-000002"), manifest).unwrap();
  std::fs::write(dir.join("MANIFEST-000001"), b"an old one").unwrap();
  std::fs::write(dir.join("CURRENT"), b"MANIFEST-000002\n").unwrap();
  std::fs::write(dir.join("000004.ldb"), table(100, 4)).unwrap();
  std::fs::write(dir.join("000005.ldb"), table(3000, 5)).unwrap();
  std::fs::write(dir.join("000007.ldb"), table(70_000, 7)).unwrap();
  std::fs::write(dir.join("000003.log"), b"obsolete").unwrap();
  let mut log = Vec::new();
  append_record(&mut log, b"put k v");
  std::fs::write(dir.join("000008.log"), log).unwrap();
  std::fs::write(dir.join("LOCK"), b"").unwrap();
  std::fs::write(dir.join("LOG"), b"info\n").unwrap();
}

#[test]
fn crc32c_is_castagnoli() {
  assert_eq!(crc32c(b"123456789"), 0xe306_9283);
  assert_eq!(unmask(mask(0x1234_5678)), 0x1234_5678);
}

#[test]
fn the_snapshot_lists_what_the_manifest_says() {
  let dir = tempfile::tempdir().unwrap();
  write_db(dir.path());
  let snap = Snapshot::take(dir.path()).unwrap().unwrap();
  assert_eq!(snap.manifest_name, "MANIFEST-000002");
  assert_eq!(snap.tables, BTreeMap::from([(5, 3000), (7, 70_000)]));
  assert_eq!(snap.logs, BTreeSet::from([8]));
  assert!(matches!(snap.part("000004.ldb"), Part::Skip), "deleted by an edit");
  assert!(matches!(snap.part("000003.log"), Part::Skip), "older than the log number");
  assert!(matches!(snap.part("MANIFEST-000001"), Part::Skip));
  assert!(matches!(snap.part("000007.ldb"), Part::Table(7, 70_000)));
  assert!(matches!(snap.part("LOG"), Part::Other));
}

#[test]
fn a_torn_manifest_tail_is_cut_at_its_last_whole_record() {
  let dir = tempfile::tempdir().unwrap();
  write_db(dir.path());
  let path = dir.path().join("MANIFEST-000002");
  let whole = std::fs::read(&path).unwrap();
  let mut torn = whole.clone();
  let mut next = Vec::new();
  append_record(&mut next, &edit(9, &[(10, 50)], &[5]));
  torn.extend_from_slice(&next[..next.len() - 3]);
  std::fs::write(&path, &torn).unwrap();
  let snap = Snapshot::take(dir.path()).unwrap().unwrap();
  assert_eq!(snap.manifest, whole, "the half-written edit is not stored");
  assert_eq!(snap.tables.keys().copied().collect::<Vec<_>>(), vec![5, 7]);

  // A record spanning blocks reads back whole.
  let mut big = Vec::new();
  append_record(&mut big, &edit(3, &(100..5000).map(|n| (n, 9)).collect::<Vec<_>>(), &[]));
  std::fs::write(&path, &big).unwrap();
  assert_eq!(Snapshot::take(dir.path()).unwrap().unwrap().tables.len(), 4900);
}

#[test]
fn a_flush_during_the_read_is_a_change_and_a_compaction_is_not() {
  let dir = tempfile::tempdir().unwrap();
  write_db(dir.path());
  let snap = Snapshot::take(dir.path()).unwrap().unwrap();
  snap.still_current(dir.path()).unwrap();
  let path = dir.path().join("MANIFEST-000002");
  let mut manifest = std::fs::read(&path).unwrap();
  append_record(&mut manifest, &edit(8, &[(12, 500)], &[5]));
  std::fs::write(&path, &manifest).unwrap();
  snap.still_current(dir.path()).unwrap();
  append_record(&mut manifest, &edit(13, &[(14, 500)], &[]));
  std::fs::write(&path, &manifest).unwrap();
  assert_eq!(snap.still_current(dir.path()).unwrap_err().code(), "ERR_PROFILE_CHANGING");
  std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000015\n").unwrap();
  assert_eq!(snap.still_current(dir.path()).unwrap_err().code(), "ERR_PROFILE_CHANGING");
}

#[test]
fn a_manifest_with_log_number_zero_keeps_every_log() {
  // A database whose logs are reused (Chromium's Local Storage): no edit moved the log number.
  let dir = tempfile::tempdir().unwrap();
  let mut manifest = Vec::new();
  append_record(&mut manifest, &edit(0, &[], &[]));
  std::fs::write(dir.path().join("MANIFEST-000001"), manifest).unwrap();
  std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000001\n").unwrap();
  std::fs::write(dir.path().join("000003.log"), b"").unwrap();
  let snap = Snapshot::take(dir.path()).unwrap().unwrap();
  assert_eq!(snap.logs, BTreeSet::from([3]));
  snap.still_current(dir.path()).unwrap();
}

#[test]
fn folders_that_are_not_leveldb_are_none() {
  let dir = tempfile::tempdir().unwrap();
  assert!(Snapshot::take(dir.path()).unwrap().is_none(), "no CURRENT");
  std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000001\n").unwrap();
  std::fs::write(dir.path().join("MANIFEST-000001"), [7u8; 211]).unwrap();
  assert!(Snapshot::take(dir.path()).unwrap().is_none(), "a manifest with no record");
  std::fs::write(dir.path().join("CURRENT"), b"../../etc/passwd\n").unwrap();
  assert!(Snapshot::take(dir.path()).unwrap().is_none(), "CURRENT naming something else");
  std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000009\n").unwrap();
  assert!(Snapshot::take(dir.path()).unwrap().is_none(), "CURRENT naming a manifest that is not there");
}

#[test]
fn files_deleted_after_the_snapshot_are_read_through_its_handles() {
  let dir = tempfile::tempdir().unwrap();
  let db = dir.path().join("Default/IndexedDB/x.indexeddb.leveldb");
  write_db(&db);
  let mut snap = Snapshot::take(&db).unwrap().unwrap();
  std::fs::remove_file(db.join("000007.ldb")).unwrap(); // a compaction removed it after the snapshot
  let mut held = snap.take_open("000007.ldb").expect("opened with the snapshot");
  let mut bytes = Vec::new();
  held.read_to_end(&mut bytes).unwrap();
  assert_eq!(bytes, table(70_000, 7));
  assert!(snap.take_open("000008.log").is_some());
  assert!(snap.take_open("000004.ldb").is_none(), "not live: not opened");
}
