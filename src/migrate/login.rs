//! Whether a profile folder holds a WhatsApp Web login, from what WhatsApp Web writes only once a phone has
//! paired: its Local Storage keys `last-wid-md` (multi-device) or `last-wid` / `WAToken1` (older releases). A
//! folder where a QR code was shown and never scanned has none of them. The keys are looked for as raw bytes in
//! the Local Storage LevelDB files: a `.log` holds them as written; a compressed table may hide them, which only
//! makes the answer "no login seen", and then nothing is deleted.

use std::io::Read;
use std::path::Path;

const MARKERS: [&[u8]; 3] = [b"last-wid", b"WAToken1", b"WASecretBundle"];
/// Local Storage is small (kilobytes to a few MB); a larger file is read this far only.
const MAX_READ: u64 = 64 << 20;

pub fn holds_login(profile: &Path) -> bool {
  let Ok(dir) = std::fs::read_dir(profile.join("Default/Local Storage/leveldb")) else { return false };
  dir.filter_map(|e| e.ok()).any(|entry| {
    let name = entry.file_name();
    let name = name.to_string_lossy();
    (name.ends_with(".log") || name.ends_with(".ldb")) && file_has_marker(&entry.path())
  })
}

fn file_has_marker(path: &Path) -> bool {
  let mut bytes = Vec::new();
  let Ok(file) = std::fs::File::open(path) else { return false };
  if file.take(MAX_READ).read_to_end(&mut bytes).is_err() {
    return false;
  }
  MARKERS.iter().any(|m| bytes.windows(m.len()).any(|w| w == *m))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_login_is_a_paired_key_in_local_storage() {
    let dir = tempfile::tempdir().unwrap();
    let ls = dir.path().join("Default/Local Storage/leveldb");
    assert!(!holds_login(dir.path()), "no Local Storage");
    std::fs::create_dir_all(&ls).unwrap();
    std::fs::write(ls.join("000003.log"), b"_https://web.whatsapp.com\0\x01WABrowserId\x01\"abc\"").unwrap();
    assert!(!holds_login(dir.path()), "a QR-code profile: a browser id, no login");
    std::fs::write(ls.join("000005.log"), b"_https://web.whatsapp.com\0\x01last-wid-md\x01\"1:2@c.us\"").unwrap();
    assert!(holds_login(dir.path()));
  }
}
