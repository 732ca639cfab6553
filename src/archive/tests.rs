use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;

use super::*;

enum Item<'a> {
  Dir(&'a str),
  File(&'a str, u32, &'a [u8]),
  Link(&'a str, &'a str),
}

fn make_zip(items: &[Item]) -> Vec<u8> {
  let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
  let opts =
    SimpleFileOptions::default().last_modified_time(zip::DateTime::from_date_and_time(2026, 11, 2, 13, 4, 6).unwrap());
  for item in items {
    match item {
      Item::Dir(name) => zip.add_directory(*name, opts.unix_permissions(0o700)).unwrap(),
      Item::File(name, mode, data) => {
        zip.start_file(*name, opts.unix_permissions(*mode)).unwrap();
        zip.write_all(data).unwrap();
      }
      Item::Link(name, target) => zip.add_symlink(*name, *target, opts).unwrap(),
    }
  }
  zip.finish().unwrap().into_inner()
}

fn pack(zip: &[u8]) -> crate::error::Result<Packed> {
  pack_zip(Cursor::new(zip), zip.len() as u64, &PackOptions::default(), "s")
}

fn unpack(bytes: &[u8]) -> crate::error::Result<Vec<u8>> {
  let mut out = Cursor::new(Vec::new());
  write_zip(bytes, None, "s", &mut out, std::path::Path::new("out.zip"))?;
  Ok(out.into_inner())
}

fn log_like(n: usize) -> Vec<u8> {
  // LevelDB-ish: repeated record framing around varying values.
  (0..n).flat_map(|i| format!("\x01\x00key-{:06}\x00value:{}|", i % 997, i * 7919 % 104729).into_bytes()).collect()
}

fn session_zip() -> Vec<u8> {
  let log = log_like(4000);
  make_zip(&[
    Item::Dir("Default/"),
    Item::Dir("Default/IndexedDB/"),
    Item::Dir("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/"),
    Item::File("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log", 0o600, &log),
    Item::File("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/CURRENT", 0o600, b"MANIFEST-000001\n"),
    Item::File("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/LOCK", 0o600, b""),
    Item::Dir("Default/Local Storage/"),
    Item::Dir("Default/Local Storage/leveldb/"),
    Item::File("Default/Local Storage/leveldb/000005.ldb", 0o644, &log[..5000]),
    Item::Dir("Default/Cache/"),
    Item::File("Default/Cache/data_1", 0o600, &[7u8; 50_000]),
  ])
}

#[test]
fn round_trip_keeps_bytes_modes_and_times_and_drops_the_rest() {
  let input = session_zip();
  let packed = pack(&input).unwrap();
  assert_eq!(packed.header.entries, 9, "4 files + 5 dirs of the kept trees and their ancestors; Cache dropped");
  let out = unpack(&packed.bytes).unwrap();

  let mut a = zip::ZipArchive::new(Cursor::new(&input)).unwrap();
  let mut b = zip::ZipArchive::new(Cursor::new(&out)).unwrap();
  let mut kept = 0;
  for i in 0..a.len() {
    let mut fa = a.by_index(i).unwrap();
    if fa.name().unwrap().starts_with("Default/Cache") {
      assert!(b.by_name(&fa.name().unwrap()).is_err());
      continue;
    }
    let mut fb = b.by_name(&fa.name().unwrap()).unwrap();
    assert_eq!(fa.unix_mode().map(|m| m & 0o7777), fb.unix_mode().map(|m| m & 0o7777), "{}", fa.name().unwrap());
    assert_eq!(fa.last_modified(), fb.last_modified());
    assert_eq!(fa.is_dir(), fb.is_dir());
    let (mut da, mut db) = (Vec::new(), Vec::new());
    fa.read_to_end(&mut da).unwrap();
    fb.read_to_end(&mut db).unwrap();
    assert_eq!(da, db);
    kept += 1;
  }
  assert_eq!(kept, 9);
  assert_eq!(b.len(), 9);
}

/// A ramp with a long period: deflate finds it, zstd's fast levels do not. `Store::save` retries such a zip
/// at a strong level; see `store::tests`.
pub(crate) fn zip_that_beats_fast_zstd() -> Vec<u8> {
  let ramp: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
  make_zip(&[
    Item::Dir("Default/"),
    Item::Dir("Default/IndexedDB/"),
    Item::File("Default/IndexedDB/000005.ldb", 0o600, &ramp),
  ])
}

#[test]
fn stored_is_smaller_than_a_zip_of_kept_files_only() {
  let log = log_like(3000);
  let zip = make_zip(&[
    Item::Dir("Default/"),
    Item::Dir("Default/IndexedDB/"),
    Item::File("Default/IndexedDB/000004.log", 0o600, &log),
    Item::File("Default/IndexedDB/CURRENT", 0o600, b"MANIFEST-000001\n"),
  ]);
  let packed = pack(&zip).unwrap();
  assert!(packed.bytes.len() <= zip.len(), "stored {} > zip {}", packed.bytes.len(), zip.len());
  assert_eq!(packed.header.source_bytes, zip.len() as u64);
  let fast = zip_that_beats_fast_zstd();
  assert!(pack(&fast).unwrap().bytes.len() > fast.len(), "the fixture still shows the case the store guards");
}

#[test]
fn traversal_and_absolute_entries_are_refused() {
  for name in ["Default/IndexedDB/../../../etc/x", "/Default/IndexedDB/x", "../Default/IndexedDB/x"] {
    let zip = make_zip(&[Item::File(name, 0o600, b"x")]);
    let err = pack(&zip).unwrap_err();
    assert_eq!(err.code(), "ERR_ARCHIVE_ENTRY", "{name}: {err}");
  }
}

#[test]
fn symlinks_in_kept_dirs_are_refused() {
  let zip =
    make_zip(&[Item::File("Default/IndexedDB/a", 0o600, b"x"), Item::Link("Default/IndexedDB/evil", "/etc/passwd")]);
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  // A Chromium profile has lock symlinks outside the kept dirs; those are dropped, not fatal.
  let zip = make_zip(&[Item::File("Default/IndexedDB/a", 0o600, b"x"), Item::Link("SingletonLock", "host-1")]);
  assert_eq!(pack(&zip).unwrap().header.entries, 1);
}

#[test]
fn bombs_are_refused_by_limit() {
  let big = vec![0u8; 2 << 20];
  let zip = make_zip(&[Item::File("Default/IndexedDB/zeros", 0o600, &big)]);
  assert!(zip.len() < 20_000, "the zip is small, {} bytes", zip.len());
  let opts = PackOptions { limits: Limits { max_entries: 100, max_unpacked_bytes: 1 << 20 }, ..Default::default() };
  let err = pack_zip(Cursor::new(&zip), zip.len() as u64, &opts, "s").unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_LIMIT");

  let names: Vec<String> = (0..101).map(|i| format!("Default/IndexedDB/f{i}")).collect();
  let items: Vec<Item> = names.iter().map(|n| Item::File(n, 0o600, b"x")).collect();
  let zip = make_zip(&items);
  let err = pack_zip(Cursor::new(&zip), zip.len() as u64, &opts, "s").unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_LIMIT");
}

/// Replaces every occurrence of `from` with `to` (same length) in raw zip bytes: headers the zip writer refuses to make.
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
  assert_eq!(from.len(), to.len());
  let mut hits = 0;
  for i in 0..=bytes.len() - from.len() {
    if &bytes[i..i + from.len()] == from {
      bytes[i..i + from.len()].copy_from_slice(to);
      hits += 1;
    }
  }
  hits
}

#[test]
fn one_path_twice_is_refused() {
  // The zip crate already folds identical names into one entry; a file and a directory of one path get here.
  let zip = make_zip(&[Item::File("Default/IndexedDB/a", 0o600, b"1"), Item::Dir("Default/IndexedDB/a/")]);
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  let mut zip =
    make_zip(&[Item::File("Default/IndexedDB/a", 0o600, b"1"), Item::File("Default/IndexedDB/b", 0o600, b"2")]);
  assert_eq!(patch(&mut zip, b"Default/IndexedDB/b", b"Default/IndexedDB/a"), 2, "local and central header");
  assert_eq!(pack(&zip).unwrap().header.entries, 1, "identical names never reach the archive twice");
}

#[test]
fn an_entry_that_lies_about_its_size_is_refused() {
  let body = vec![b'x'; 100_000];
  let mut zip = make_zip(&[Item::File("Default/IndexedDB/big", 0o600, &body)]);
  let size = (body.len() as u32).to_le_bytes();
  // The uncompressed size sits at offset 22 of the local header and 24 of the central one.
  assert_eq!(patch(&mut zip, &size, &10u32.to_le_bytes()), 2);
  let err = pack(&zip).unwrap_err();
  assert_eq!(err.code(), "ERR_ZIP_INVALID", "{err}");
}

#[test]
fn empty_sessions_are_refused() {
  let zip =
    make_zip(&[Item::Dir("Default/"), Item::Dir("Default/IndexedDB/"), Item::File("Default/Cache/x", 0o600, b"x")]);
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_EMPTY_SESSION");
  let zip = make_zip(&[]);
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_EMPTY_SESSION");
}

#[test]
fn garbage_and_truncated_zips_are_refused() {
  assert_eq!(pack(b"not a zip at all").unwrap_err().code(), "ERR_ZIP_INVALID");
  let zip = session_zip();
  assert_eq!(pack(&zip[..zip.len() / 2]).unwrap_err().code(), "ERR_ZIP_INVALID");
}

#[test]
fn corrupt_archives_never_produce_a_zip() {
  let packed = pack(&session_zip()).unwrap();
  for len in [0, 10, HEADER_LEN, packed.bytes.len() / 2, packed.bytes.len() - 1] {
    assert_eq!(unpack(&packed.bytes[..len]).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT", "len {len}");
  }
  for at in [HEADER_LEN, HEADER_LEN + 7, packed.bytes.len() / 2, packed.bytes.len() - 1] {
    let mut bad = packed.bytes.clone();
    bad[at] ^= 0x20;
    assert_eq!(unpack(&bad).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT", "flip at {at}");
  }
}

#[test]
fn timestamps_survive_the_dos_round_trip() {
  let dt = zip::DateTime::from_date_and_time(2026, 11, 2, 13, 4, 6).unwrap();
  assert_eq!(unix_to_dos(dos_to_unix(Some(dt))), dt);
  assert_eq!(dos_to_unix(None), 0);
  assert_eq!(unix_to_dos(0), zip::DateTime::DEFAULT, "before 1980 clamps to the DOS epoch");
}

fn keyring(current: u8, previous: &[u8]) -> std::sync::Arc<Keyring> {
  std::sync::Arc::new(Keyring::new(Key::new([current; 32]), previous.iter().map(|&b| Key::new([b; 32])).collect()))
}

fn unpack_with(bytes: &[u8], keys: &Keyring) -> crate::error::Result<Vec<u8>> {
  let mut out = Cursor::new(Vec::new());
  write_zip(bytes, Some(keys), "s", &mut out, std::path::Path::new("out.zip"))?;
  Ok(out.into_inner())
}

#[test]
fn encrypted_archives_round_trip_and_hide_their_files() {
  let zip = session_zip();
  let keys = keyring(1, &[]);
  let opts = PackOptions { keys: Some(keys.clone()), ..PackOptions::default() };
  let sealed = pack_zip(Cursor::new(&zip), zip.len() as u64, &opts, "s").unwrap();
  assert_eq!((sealed.header.version, sealed.header.encrypted()), (2, true));
  let plain = pack(&zip).unwrap();
  assert_eq!(plain.header.version, 1, "plain archives stay readable by older builds");
  assert_eq!(unpack_with(&sealed.bytes, &keys).unwrap(), unpack(&plain.bytes).unwrap());
  // The ciphertext is not the compressed plaintext, and a second pack uses a fresh nonce.
  let again = pack_zip(Cursor::new(&zip), zip.len() as u64, &opts, "s").unwrap();
  assert_ne!(sealed.bytes[HEADER_LEN..], again.bytes[HEADER_LEN..]);
  assert_eq!(check(&sealed.bytes, Some(&keys), "s").unwrap().entries, plain.header.entries);
  assert!(check(&sealed.bytes, None, "s").is_ok(), "the checksum holds without the key");
}

#[test]
fn a_missing_or_wrong_key_is_err_decrypt() {
  let zip = session_zip();
  let opts = PackOptions { keys: Some(keyring(1, &[])), ..PackOptions::default() };
  let sealed = pack_zip(Cursor::new(&zip), zip.len() as u64, &opts, "s").unwrap();
  assert_eq!(unpack(&sealed.bytes).unwrap_err().code(), "ERR_DECRYPT");
  assert_eq!(unpack_with(&sealed.bytes, &keyring(2, &[])).unwrap_err().code(), "ERR_DECRYPT");
  assert_eq!(check(&sealed.bytes, Some(&keyring(2, &[])), "s").unwrap_err().code(), "ERR_DECRYPT");
}

#[test]
fn reencrypt_moves_plain_and_old_archives_to_the_current_key() {
  let zip = session_zip();
  let plain = pack(&zip).unwrap();
  let expected = unpack(&plain.bytes).unwrap();
  let (old, new) = (keyring(1, &[]), keyring(2, &[1]));
  let under_old = reencrypt(&plain.bytes, &old, "s").unwrap().unwrap();
  assert_eq!(peek(&under_old).unwrap().created_ms, plain.header.created_ms, "a re-encryption is not a new save");
  let under_new = reencrypt(&under_old, &new, "s").unwrap().unwrap();
  assert!(reencrypt(&under_new, &new, "s").unwrap().is_none(), "already under the current key");
  assert_eq!(unpack_with(&under_new, &keyring(2, &[])).unwrap(), expected);
  assert_eq!(reencrypt(&under_old, &keyring(3, &[]), "s").unwrap_err().code(), "ERR_DECRYPT");
}

#[test]
fn a_keyed_store_refuses_plain_archives_and_blobs_of_other_sessions() {
  let zip = session_zip();
  let plain = pack(&zip).unwrap();
  let keys = keyring(1, &[]);
  assert_eq!(unpack_with(&plain.bytes, &keys).unwrap_err().code(), "ERR_DECRYPT", "anyone can seal a plain one");
  assert_eq!(check(&plain.bytes, Some(&keys), "s").unwrap_err().code(), "ERR_DECRYPT");
  let mut lenient = (*keys).clone();
  lenient.accept_plain = true;
  assert!(unpack_with(&plain.bytes, &lenient).is_ok(), "while migrating, if asked");

  let opts = PackOptions { keys: Some(keys.clone()), ..PackOptions::default() };
  let sealed = pack_zip(Cursor::new(&zip), zip.len() as u64, &opts, "s").unwrap();
  assert_eq!(check(&sealed.bytes, Some(&keys), "other").unwrap_err().code(), "ERR_DECRYPT", "bound to its session");
}
