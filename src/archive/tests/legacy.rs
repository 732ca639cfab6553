//! Archives written before zip payloads (tar + zstd, format versions 1 and 2) keep reading.

use std::io::{Cursor, Read};

use crate::archive::header::{seal, Header, FLAG_TAR_ZSTD, HEADER_LEN, PLAIN_VERSION};
use crate::archive::*;

/// An archive as those builds wrote it: a zstd-compressed tar of the kept entries behind the header.
fn legacy(files: &[(&str, &[u8])]) -> Vec<u8> {
  let mut tar = tar::Builder::new(zstd::Encoder::new(vec![0u8; HEADER_LEN], 3).unwrap());
  let mut add = |name: &str, kind, data: &[u8]| {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(0o600);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    tar.append_data(&mut header, name, data).unwrap();
  };
  add("Default/", tar::EntryType::Directory, b"");
  for (name, data) in files {
    add(name, tar::EntryType::Regular, data);
  }
  let mut bytes = tar.into_inner().unwrap().finish().unwrap();
  let header = Header {
    version: PLAIN_VERSION,
    flags: FLAG_TAR_ZSTD,
    entries: files.len() as u32 + 1,
    files_bytes: files.iter().map(|(_, d)| d.len() as u64).sum(),
    source_bytes: 0,
    created_ms: 42,
    payload_len: (bytes.len() - HEADER_LEN) as u64,
  };
  seal(&header, &mut bytes);
  bytes
}

fn unpack(archive: &[u8], keys: Option<&Keyring>) -> Vec<(String, Vec<u8>)> {
  let mut out = Cursor::new(Vec::new());
  write_zip(archive, keys, &Limits::default(), "s", &mut out, std::path::Path::new("x.zip")).unwrap();
  let mut zip = zip::ZipArchive::new(out).unwrap();
  let mut files: Vec<(u64, String, Vec<u8>)> = (0..zip.len())
    .map(|i| {
      let mut f = zip.by_index(i).unwrap();
      let mut data = Vec::new();
      f.read_to_end(&mut data).unwrap();
      (f.header_start(), f.name().unwrap().into_owned(), data)
    })
    .collect();
  files.sort();
  files.into_iter().map(|(_, name, data)| (name, data)).collect()
}

#[test]
fn old_archives_extract_in_restore_order() {
  let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
  let archive = legacy(&[("Default/IndexedDB/000003.log", &big), ("Default/IndexedDB/CURRENT", b"MANIFEST-1\n")]);
  let files = unpack(&archive, None);
  let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
  assert_eq!(names, ["Default/", "Default/IndexedDB/CURRENT", "Default/IndexedDB/000003.log"]);
  assert_eq!(files[2].1, big);

  let small = legacy(&[("Default/IndexedDB/CURRENT", b"MANIFEST-1\n")]);
  assert_eq!(unpack(&small, None).last().unwrap().0, PAD_NAME, "small files only: the pad follows");
}

#[test]
fn old_archives_read_check_and_rotate_into_version_2() {
  let archive = legacy(&[("Default/IndexedDB/CURRENT", b"MANIFEST-1\n"), ("Default/Local Storage/leveldb/LOCK", b"")]);
  let (header, entries) = read_entries(&archive, None, &Limits::default(), "s").unwrap();
  assert_eq!((header.version, entries.len()), (1, 3));
  assert_eq!(
    entries[1],
    Entry {
      path: "Default/IndexedDB/CURRENT".into(),
      mode: 0o600,
      mtime: 1_700_000_000,
      data: Data::File(b"MANIFEST-1\n".to_vec())
    }
  );
  assert!(check(&archive, None, &Limits::default(), "s").is_ok());

  let keys = Keyring::new(Key::new([5; 32]), vec![]);
  let sealed = reencrypt(&archive, &keys, "s").unwrap().unwrap();
  let header = peek(&sealed).unwrap();
  assert_eq!((header.version, header.encrypted(), header.is_zip()), (2, true, false));
  assert_eq!(unpack(&sealed, Some(&keys)), unpack(&archive, None));
}

#[test]
fn old_archives_over_the_limits_or_their_header_are_refused() {
  let archive = legacy(&[("Default/IndexedDB/a", &[7u8; 5000])]);
  let tight = Limits { max_entries: 100, max_unpacked_bytes: 4999 };
  assert_eq!(read_entries(&archive, None, &tight, "s").unwrap_err().code(), "ERR_ARCHIVE_LIMIT");
  let mut out = Cursor::new(Vec::new());
  let err = write_zip(&archive, None, &tight, "s", &mut out, std::path::Path::new("x.zip")).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_LIMIT");

  // A header that says less than the tar holds (re-sealed, as anyone without a key could): caught before reading.
  let (mut header, payload) = open(&archive).map(|(h, p)| (h, p.to_vec())).unwrap();
  header.files_bytes = 10;
  let mut forged = vec![0u8; HEADER_LEN];
  forged.extend_from_slice(&payload);
  seal(&header, &mut forged);
  assert_eq!(read_entries(&forged, None, &Limits::default(), "s").unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
}

#[test]
fn an_old_archive_restores_into_a_folder() {
  let archive = legacy(&[("Default/IndexedDB/a.log", b"abc"), ("Default/Local Storage/leveldb/CURRENT", b"M\n")]);
  let dir = tempfile::tempdir().unwrap();
  assert_eq!(write_dir(&archive, None, &Limits::default(), "s", dir.path()).unwrap().created_ms, 42);
  assert_eq!(std::fs::read(dir.path().join("Default/IndexedDB/a.log")).unwrap(), b"abc");
  assert_eq!(std::fs::read(dir.path().join("Default/Local Storage/leveldb/CURRENT")).unwrap(), b"M\n");
}
