//! Issue 19: what a save refuses before it replaces anything, and what `extract` refuses of a stored copy.

use super::*;
use crate::archive::header;

/// A zip of one kept file whose name is `name`, and the file's bytes.
fn one_file(name: &str, body: &[u8]) -> Vec<u8> {
  make_zip(&[Item::Dir("Default/"), Item::File(name, 0o600, body)])
}

#[test]
fn a_bomb_is_refused_before_it_is_stored() {
  let zeros = vec![0u8; 8 << 20];
  let mut zip = one_file("Default/IndexedDB/zeros", &zeros);
  assert_eq!(patch(&mut zip, &(8u32 << 20).to_le_bytes(), &100u32.to_le_bytes()), 2, "declares 100 B");
  let opts = PackOptions { limits: Limits { max_entries: 100, max_unpacked_bytes: 1 << 20 }, ..Default::default() };
  let err = pack_zip(Cursor::new(&zip), &opts, "s").unwrap_err();
  assert_eq!(err.code(), "ERR_ZIP_INVALID", "{err}");
  assert!(err.to_string().contains("more than the 100 bytes"), "{err}");
}

#[test]
fn damaged_deflate_data_is_refused_by_the_save_and_is_err_archive_corrupt_on_restore() {
  let body = log_like(5000);
  let mut zip = one_file("Default/IndexedDB/a", &body);
  let at = zip.len() / 3;
  zip[at..at + 40].fill(0xff);
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_ZIP_INVALID");
  // A stored copy damaged the same way (written unverified) restores to a folder as ERR_ARCHIVE_CORRUPT.
  let packed = pack_unverified(&zip);
  let dir = tempfile::tempdir().unwrap();
  let err = write_dir(&packed.bytes, None, &Limits::default(), "s", dir.path()).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_CORRUPT", "{err}");
  // And `extract` inflates a plain stored copy before unzipper (which inflates without a check) would.
  let err = unpack(&packed.bytes).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_CORRUPT", "{err}");
}

#[test]
fn extract_refuses_a_plain_stored_copy_whose_bytes_lie_about_their_crc_or_size() {
  let body = log_like(5000);
  let good = one_file("Default/IndexedDB/a", &body);
  assert!(unpack(&pack(&good).unwrap().bytes).is_ok());
  // The CRC in both headers changed (as a tier writer would, resealing the hash): the data no longer matches.
  let crc = crc32fast::hash(&body).to_le_bytes();
  let mut lying = good.clone();
  assert_eq!(patch(&mut lying, &crc, &(u32::from_le_bytes(crc) ^ 1).to_le_bytes()), 2);
  let err = unpack(&pack_unverified(&lying).bytes).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_CORRUPT", "{err}");
  // A bomb: both headers declare 100 B for 8 MiB of zeros; extract stops at the declared size.
  let zeros = vec![0u8; 8 << 20];
  let mut bomb = one_file("Default/IndexedDB/zeros", &zeros);
  assert_eq!(patch(&mut bomb, &(8u32 << 20).to_le_bytes(), &100u32.to_le_bytes()), 2);
  let err = unpack(&pack_unverified(&bomb).bytes).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_CORRUPT", "{err}");
  assert!(err.to_string().contains("more than the 100 bytes"), "{err}");
}

#[test]
fn a_folder_that_carries_data_is_refused() {
  let mut zip = one_file("Default/IndexedDB/dd", &log_like(300));
  assert_eq!(patch(&mut zip, b"Default/IndexedDB/dd", b"Default/IndexedDB/d/"), 2);
  let err = pack(&zip).unwrap_err();
  assert_eq!((err.code(), err.to_string().contains("folder that carries data")), ("ERR_ARCHIVE_ENTRY", true), "{err}");
}

#[test]
fn names_no_file_system_takes_are_refused_with_a_code() {
  let long = format!("Default/IndexedDB/{}", "x".repeat(256));
  assert_eq!(pack(&one_file(&long, b"1")).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  let huge = format!("Default/IndexedDB/{}", "ab/".repeat(21_600));
  let huge = &huge[..huge.len() - 1];
  assert!(huge.len() <= 65_535 && huge.len() > 64_000, "{}", huge.len());
  let err = pack(&one_file(huge, b"1")).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_ENTRY", "{err}");
  assert!(err.to_string().len() < 400);
}

#[test]
fn two_entries_of_one_name_are_refused() {
  let mut zip =
    make_zip(&[Item::File("Default/IndexedDB/a", 0o600, b"1"), Item::File("Default/IndexedDB/b", 0o600, b"22")]);
  patch(&mut zip, b"Default/IndexedDB/b", b"Default/IndexedDB/a");
  assert_eq!(pack(&zip).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
}

/// A plain stored archive whose payload someone rewrote, its checksum recomputed (anyone with write access can).
fn tampered(packed: &Packed, from: &[u8], to: &[u8], local_only: bool) -> Vec<u8> {
  let mut bytes = packed.bytes.clone();
  let payload = &mut bytes[header::HEADER_LEN..];
  let first = (0..payload.len()).find(|&i| payload[i..].starts_with(from)).unwrap();
  match local_only {
    true => payload[first..first + from.len()].copy_from_slice(to),
    false => assert_eq!(patch(payload, from, to), 2),
  }
  header::seal(&packed.header, &mut bytes);
  bytes
}

#[test]
fn extract_refuses_a_stored_archive_whose_names_the_save_would_refuse() {
  let evil = b"../RemoteAuth-other/Default/IndexedDB/x";
  let benign = format!("Default/IndexedDB/{}", "y".repeat(evil.len() - 18));
  let zip = make_zip(&[Item::File(&benign, 0o600, &log_like(100)), Item::File("Default/IndexedDB/z", 0o600, b"z")]);
  let packed = pack(&zip).unwrap();
  assert!(unpack(&packed.bytes).is_ok());
  let both = tampered(&packed, benign.as_bytes(), evil, false);
  let err = unpack(&both).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_ENTRY", "{err}");
  // The same name in the local header alone (what unzipper reads), the directory left benign.
  let local = tampered(&packed, benign.as_bytes(), evil, true);
  assert_eq!(unpack(&local).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  // And the restore paths refuse it too.
  let dir = tempfile::tempdir().unwrap();
  assert_eq!(write_dir(&both, None, &Limits::default(), "s", dir.path()).unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
  assert_eq!(read_entries(&both, None, &Limits::default(), "s").unwrap_err().code(), "ERR_ARCHIVE_ENTRY");
}

#[test]
fn extract_refuses_a_stored_archive_with_bytes_unzipper_would_read_as_entries() {
  let zip = make_zip(&[Item::File("Default/IndexedDB/a", 0o600, &log_like(100))]);
  let packed = pack(&zip).unwrap();
  let (_, payload) = header::open(&packed.bytes).unwrap();
  let reader = zip::ZipArchive::new(Cursor::new(payload)).unwrap();
  let cd = reader.central_directory_start() as usize;
  drop(reader);
  // A hidden entry (any bytes) between the last entry and the directory: the directory's offsets moved along.
  let mut payload = payload.to_vec();
  payload.splice(cd..cd, b"PK\x03\x04hidden".iter().copied());
  let mut cut = zip::ZipArchive::new(Cursor::new(payload.clone()));
  assert!(cut.is_err() || cut.as_mut().unwrap().len() == 1);
  let mut bytes = packed.bytes[..header::HEADER_LEN].to_vec();
  bytes.extend_from_slice(&payload);
  let header = Header { payload_len: payload.len() as u64, ..packed.header.clone() };
  header::seal(&header, &mut bytes);
  let err = unpack(&bytes).unwrap_err();
  assert!(matches!(err.code(), "ERR_ARCHIVE_CORRUPT"), "{err}");
}
