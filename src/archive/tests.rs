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
  pack_zip(Cursor::new(zip), &PackOptions::default(), "s")
}

/// What a save would store without its check: a stored copy someone damaged, for the read paths' own checks.
fn pack_unverified(zip: &[u8]) -> Packed {
  ZipSave::open(zip.to_vec(), &PackOptions::default(), 2).unwrap().pack(&PackOptions::default(), "s").unwrap()
}

fn unpack(bytes: &[u8]) -> crate::error::Result<Vec<u8>> {
  let mut out = Cursor::new(Vec::new());
  write_zip(bytes, None, &Limits::default(), "s", &mut out, std::path::Path::new("out.zip"))?;
  Ok(out.into_inner())
}

/// Names, directory flags and sizes of a zip's entries, in the order their data is written.
fn layout(zip: &[u8]) -> Vec<(String, bool, u64)> {
  let mut zip = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
  let mut out: Vec<(u64, String, bool, u64)> = (0..zip.len())
    .map(|i| {
      let f = zip.by_index_raw(i).unwrap();
      (f.header_start(), f.name().unwrap().into_owned(), f.is_dir(), f.size())
    })
    .collect();
  out.sort();
  out.into_iter().map(|(_, name, dir, size)| (name, dir, size)).collect()
}

/// The compressed bytes of every file entry, by name.
fn raw_data(zip: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
  let mut zip = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
  (0..zip.len())
    .filter_map(|i| {
      let mut f = zip.by_index_raw(i).unwrap();
      let name = f.name().unwrap().into_owned();
      let mut raw = Vec::new();
      f.read_to_end(&mut raw).unwrap();
      (!name.ends_with('/')).then_some((name, raw))
    })
    .collect()
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

#[test]
fn kept_entries_keep_their_compressed_bytes() {
  let input = session_zip();
  let packed = pack(&input).unwrap();
  let (header, payload) = open(&packed.bytes).unwrap();
  assert_eq!((header.version, header.is_zip()), (3, true));
  let mut expected = raw_data(&input);
  expected.retain(|name, _| !name.starts_with("Default/Cache"));
  assert_eq!(raw_data(payload), expected, "copied, not recompressed");
  assert_eq!(packed.header.source_bytes, input.len() as u64);
  let files: u64 = layout(&input).iter().filter(|(n, d, _)| !d && !n.starts_with("Default/Cache")).map(|e| e.2).sum();
  assert_eq!(packed.header.files_bytes, files);
}

#[test]
fn a_zip_comes_back_folders_first_and_its_largest_file_last() {
  let (small, large) = (vec![1u8; 5_000], log_like(4_000));
  let zip = make_zip(&[
    Item::Dir("Default/"),
    Item::File("Default/IndexedDB/000003.log", 0o600, &large),
    Item::Dir("Default/IndexedDB/"),
    Item::File("Default/IndexedDB/CURRENT", 0o600, b"MANIFEST-000001\n"),
    Item::File("Default/Local Storage/leveldb/000005.ldb", 0o600, &small),
  ]);
  let out = unpack(&pack(&zip).unwrap().bytes).unwrap();
  let names: Vec<String> = layout(&out).into_iter().map(|e| e.0).collect();
  assert_eq!(
    names,
    [
      "Default/",
      "Default/IndexedDB/",
      "Default/IndexedDB/CURRENT",
      "Default/Local Storage/leveldb/000005.ldb",
      "Default/IndexedDB/000003.log"
    ]
  );
  assert!(large.len() as u64 >= stream_safe::HOLDS_BACK, "the fixture's largest file holds the parser back: no pad");
}

#[test]
fn a_zip_of_small_files_ends_with_the_pad() {
  let zip = make_zip(&[
    Item::File("Default/IndexedDB/a", 0o600, b"1"),
    Item::File("Default/Local Storage/leveldb/CURRENT", 0o600, b"MANIFEST-000001\n"),
    Item::File("Default/Local Storage/leveldb/LOCK", 0o600, b""),
  ]);
  let packed = pack(&zip).unwrap();
  assert_eq!(packed.header.entries, 3, "the pad is not stored");
  let out = unpack(&packed.bytes).unwrap();
  let entries = layout(&out);
  assert_eq!(entries.len(), 4);
  assert_eq!(entries.last().unwrap(), &(PAD_NAME.to_string(), false, stream_safe::HOLDS_BACK));
  assert!(out.len() < zip.len() + 400, "the pad costs a few hundred bytes: {} vs {}", out.len(), zip.len());
  let mut pad = Vec::new();
  zip::ZipArchive::new(Cursor::new(&out)).unwrap().by_name(PAD_NAME).unwrap().read_to_end(&mut pad).unwrap();
  assert!(pad.iter().all(|&b| b == 0));
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
  let err = pack_zip(Cursor::new(&zip), &opts, "s").unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_LIMIT");

  let names: Vec<String> = (0..101).map(|i| format!("Default/IndexedDB/f{i}")).collect();
  let items: Vec<Item> = names.iter().map(|n| Item::File(n, 0o600, b"x")).collect();
  let zip = make_zip(&items);
  let err = pack_zip(Cursor::new(&zip), &opts, "s").unwrap_err();
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
  let err = pack(&zip).unwrap_err();
  assert_eq!((err.code(), err.to_string().contains("appears twice")), ("ERR_ARCHIVE_ENTRY", true), "{err}");
}

#[test]
fn a_file_that_is_also_a_folder_is_refused() {
  let zip =
    make_zip(&[Item::File("Default/IndexedDB/a", 0o600, b"1"), Item::File("Default/IndexedDB/a/b", 0o600, b"2")]);
  let err = pack(&zip).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_ENTRY", "{err}");
}

/// Sets the compression method of every entry, in local and central headers.
fn set_method(zip: &mut [u8], method: u16) {
  for (signature, at) in [(b"PK\x03\x04", 8), (b"PK\x01\x02", 10)] {
    let starts: Vec<usize> = (0..zip.len() - 4).filter(|&i| &zip[i..i + 4] == signature).collect();
    for i in starts {
      zip[i + at..i + at + 2].copy_from_slice(&method.to_le_bytes());
    }
  }
}

#[test]
fn methods_remote_auth_cannot_unzip_are_refused() {
  let mut zip = make_zip(&[Item::File("Default/IndexedDB/a", 0o600, &log_like(100))]);
  set_method(&mut zip, 12); // bzip2
  let err = pack(&zip).unwrap_err();
  assert_eq!(err.code(), "ERR_ZIP_INVALID", "{err}");
}

#[test]
fn an_entry_that_lies_about_its_size_is_refused_by_the_save_and_caught_where_it_is_read() {
  let body = vec![b'x'; 100_000];
  let mut zip = make_zip(&[Item::File("Default/IndexedDB/big", 0o600, &body)]);
  let size = (body.len() as u32).to_le_bytes();
  // The uncompressed size sits at offset 22 of the local header and 24 of the central one.
  assert_eq!(patch(&mut zip, &size, &10u32.to_le_bytes()), 2);
  // The save inflates every kept entry before it stores anything...
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_ZIP_INVALID");
  // ...and a stored copy that lies (written unverified here) is caught wherever its bytes are inflated.
  let packed = pack_unverified(&zip);
  assert_eq!(check(&packed.bytes, None, &Limits::default(), "s").unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  assert_eq!(read_entries(&packed.bytes, None, &Limits::default(), "s").unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");

  // A size deflate could never reach from the bytes stored, or a stored entry whose sizes differ: refused at once.
  let mut zip = make_zip(&[Item::File("Default/IndexedDB/big", 0o600, &body)]);
  assert_eq!(patch(&mut zip, &size, &u32::MAX.to_le_bytes()), 2);
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_ZIP_INVALID");
}

#[test]
fn a_damaged_crc_is_refused_by_the_save_and_caught_where_it_is_read() {
  let mut zip = make_zip(&[Item::File("Default/IndexedDB/a", 0o600, &log_like(2000))]);
  let crc = crc32fast_of(&log_like(2000));
  assert_eq!(patch(&mut zip, &crc.to_le_bytes(), &(crc ^ 1).to_le_bytes()), 2);
  let err = pack(&zip).unwrap_err();
  assert_eq!((err.code(), err.to_string().contains("CRC")), ("ERR_ZIP_INVALID", true), "{err}");
  let packed = pack_unverified(&zip);
  assert_eq!(check(&packed.bytes, None, &Limits::default(), "s").unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
}

fn crc32fast_of(data: &[u8]) -> u32 {
  let mut zip = zip::ZipArchive::new(Cursor::new(make_zip(&[Item::File("x", 0o600, data)]))).unwrap();
  let crc = zip.by_index(0).unwrap().crc32();
  crc
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
  write_zip(bytes, Some(keys), &Limits::default(), "s", &mut out, std::path::Path::new("out.zip"))?;
  Ok(out.into_inner())
}

#[test]
fn encrypted_archives_round_trip_and_hide_their_files() {
  let zip = session_zip();
  let keys = keyring(1, &[]);
  let opts = PackOptions { keys: Some(keys.clone()), ..PackOptions::default() };
  let sealed = pack_zip(Cursor::new(&zip), &opts, "s").unwrap();
  assert_eq!((sealed.header.version, sealed.header.encrypted()), (3, true));
  let plain = pack(&zip).unwrap();
  assert_eq!((plain.header.version, plain.header.encrypted()), (3, false));
  assert_eq!(unpack_with(&sealed.bytes, &keys).unwrap(), unpack(&plain.bytes).unwrap());
  // The ciphertext is not the compressed plaintext, and a second pack uses a fresh nonce.
  let again = pack_zip(Cursor::new(&zip), &opts, "s").unwrap();
  assert_ne!(sealed.bytes[HEADER_LEN..], again.bytes[HEADER_LEN..]);
  assert_eq!(check(&sealed.bytes, Some(&keys), &Limits::default(), "s").unwrap().entries, plain.header.entries);
  assert!(check(&sealed.bytes, None, &Limits::default(), "s").is_ok(), "the checksum holds without the key");
}

#[test]
fn a_missing_or_wrong_key_is_err_decrypt() {
  let zip = session_zip();
  let opts = PackOptions { keys: Some(keyring(1, &[])), ..PackOptions::default() };
  let sealed = pack_zip(Cursor::new(&zip), &opts, "s").unwrap();
  assert_eq!(unpack(&sealed.bytes).unwrap_err().code(), "ERR_DECRYPT");
  assert_eq!(unpack_with(&sealed.bytes, &keyring(2, &[])).unwrap_err().code(), "ERR_DECRYPT");
  assert_eq!(check(&sealed.bytes, Some(&keyring(2, &[])), &Limits::default(), "s").unwrap_err().code(), "ERR_DECRYPT");
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
  assert_eq!(check(&plain.bytes, Some(&keys), &Limits::default(), "s").unwrap_err().code(), "ERR_DECRYPT");
  let mut lenient = (*keys).clone();
  lenient.accept_plain = true;
  assert!(unpack_with(&plain.bytes, &lenient).is_ok(), "while migrating, if asked");

  let opts = PackOptions { keys: Some(keys.clone()), ..PackOptions::default() };
  let sealed = pack_zip(Cursor::new(&zip), &opts, "s").unwrap();
  assert_eq!(
    check(&sealed.bytes, Some(&keys), &Limits::default(), "other").unwrap_err().code(),
    "ERR_DECRYPT",
    "bound to its session"
  );
}

mod legacy;
mod mutation;
mod save_verify;
