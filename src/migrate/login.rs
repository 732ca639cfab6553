//! Whether a profile folder (or a stored copy of one) holds a WhatsApp Web login, from what WhatsApp Web writes
//! only once a phone has paired: its Local Storage keys `last-wid-md` (multi-device) or `last-wid` / `WAToken1` /
//! `WASecretBundle` (older releases). A folder where a QR code was shown and never scanned has none of them. The
//! Local Storage LevelDB holds them in its log (`.log`, as written) or, once compacted, in a table (`.ldb`), where
//! blocks are Snappy-compressed and keys share prefixes: tables are read key by key (`table`). A file that does
//! not read counts as no login seen.

use std::io::Read;
use std::path::Path;

use super::table;
use crate::archive::{Data, Entry};

const MARKERS: [&[u8]; 3] = [b"last-wid", b"WAToken1", b"WASecretBundle"];
/// Local Storage is small (kilobytes to a few MB); a larger file is read this far only.
const MAX_READ: u64 = 64 << 20;
const LOCAL_STORAGE: &str = "Default/Local Storage/leveldb";

/// The profile folder's Local Storage shows a login.
pub fn holds_login(profile: &Path) -> bool {
  let Ok(dir) = std::fs::read_dir(profile.join(LOCAL_STORAGE)) else { return false };
  dir.filter_map(|e| e.ok()).any(|entry| {
    let name = entry.file_name();
    let mut bytes = Vec::new();
    let read = std::fs::File::open(entry.path()).and_then(|f| f.take(MAX_READ).read_to_end(&mut bytes));
    read.is_ok() && file_shows_login(&name.to_string_lossy(), &bytes)
  })
}

/// The entries of a stored copy (`read_entries`) show a login in their Local Storage.
pub fn entries_hold_login(entries: &[Entry]) -> bool {
  entries.iter().any(|e| match (&e.data, e.path.strip_prefix(LOCAL_STORAGE)) {
    (Data::File(bytes), Some(name)) => file_shows_login(name.trim_start_matches('/'), bytes),
    _ => false,
  })
}

fn file_shows_login(name: &str, bytes: &[u8]) -> bool {
  let raw = || MARKERS.iter().any(|m| bytes.windows(m.len()).any(|w| w == *m));
  match name.rsplit_once('.').map(|(_, ext)| ext) {
    Some("log") => raw(),
    Some("ldb" | "sst") => raw() || table::any_key_holds(bytes, &MARKERS),
    _ => false,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_login_is_a_paired_key_in_local_storage() {
    let dir = tempfile::tempdir().unwrap();
    let ls = dir.path().join(LOCAL_STORAGE);
    assert!(!holds_login(dir.path()), "no Local Storage");
    std::fs::create_dir_all(&ls).unwrap();
    std::fs::write(ls.join("000003.log"), b"_https://web.whatsapp.com\0\x01WABrowserId\x01\"abc\"").unwrap();
    assert!(!holds_login(dir.path()), "a QR-code profile: a browser id, no login");
    let origin = b"_https://web.whatsapp.com\x00\x01".to_vec();
    let keys = [[&origin[..], &b"WABrowserId"[..]].concat(), [&origin[..], &b"last-wid-md"[..]].concat()];
    std::fs::write(ls.join("000007.ldb"), table::tests::table_of(&[&keys[0], &keys[1]])).unwrap();
    assert!(holds_login(dir.path()), "only in a compressed table");
    std::fs::remove_file(ls.join("000007.ldb")).unwrap();
    std::fs::write(ls.join("000005.log"), b"_https://web.whatsapp.com\0\x01last-wid-md\x01\"1:2@c.us\"").unwrap();
    assert!(holds_login(dir.path()));
  }
}
