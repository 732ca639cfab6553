//! Zips that RemoteAuth's streaming unzip restores whole.
//!
//! RemoteAuth restores with `createReadStream(zip).pipe(unzipper.Extract())` and goes on at its `finish`. unzipper
//! ends once its parser has read the last byte, and drops every entry it had parsed but not yet handed to its
//! writer, which takes one entry at a time. The parser cannot get past a file whose inflated bytes overflow the
//! stream buffers in its way (16 KiB each) until the writer takes that file, and the writer takes it only after
//! closing every entry before it. So folders go first and the largest file last; when even that file is small,
//! a pad file of zeros (a few dozen bytes deflated) follows it and holds the parser back instead.

use std::io::{Read, Seek, Write};

use zip::write::SimpleFileOptions;
use zip::{ZipArchive, ZipWriter};

/// Written beside `Default/` in the profile when a restore needs it; never stored, never read back.
pub const PAD_NAME: &str = "wwebjs-rust-store.pad";
/// Inflated bytes of a last file that hold the parser back: four times the buffers in its way.
pub const HOLDS_BACK: u64 = 64 * 1024;

/// Positions of entries `(is_dir, size)` in restore order: folders first, then files, the largest file last,
/// everything else as given.
pub fn restore_order(entries: &[(bool, u64)]) -> Vec<usize> {
  let dirs = (0..entries.len()).filter(|&i| entries[i].0);
  let mut files: Vec<usize> = (0..entries.len()).filter(|&i| !entries[i].0).collect();
  // The last of the largest (`max_by_key` keeps the last), so a zip already in this order stays as it is.
  if let Some(at) = files.iter().enumerate().max_by_key(|(_, &i)| entries[i].1).map(|(at, _)| at) {
    let largest = files.remove(at);
    files.push(largest);
  }
  dirs.chain(files).collect()
}

/// True unless the entry written last is a file of at least `HOLDS_BACK` bytes. A zip that holds the pad's name
/// itself is refused: the restore would leave that entry to the pad's cleanup (no saved tree has it: `keep`).
pub fn needs_pad<R: Read + Seek>(zip: &mut ZipArchive<R>) -> zip::result::ZipResult<bool> {
  let mut last: Option<(u64, bool, u64)> = None;
  for i in 0..zip.len() {
    let file = zip.by_index_raw(i)?;
    if file.name()?.split('/').next() == Some(PAD_NAME) {
      return Err(zip::result::ZipError::InvalidArchive(format!("holds an entry named {PAD_NAME}").into()));
    }
    let (at, is_dir, size) = (file.header_start(), file.is_dir(), file.size());
    if last.is_none_or(|(start, _, _)| at > start) {
      last = Some((at, is_dir, size));
    }
  }
  Ok(!matches!(last, Some((_, false, size)) if size >= HOLDS_BACK))
}

/// Appends the pad file.
pub fn add_pad<W: Write + Seek>(zip: &mut ZipWriter<W>) -> zip::result::ZipResult<()> {
  let options = SimpleFileOptions::default().compression_level(Some(9)).unix_permissions(0o600);
  zip.start_file(PAD_NAME, options)?;
  zip.write_all(&[0u8; HOLDS_BACK as usize])?;
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn folders_first_and_the_largest_file_last() {
    let entries = [(true, 0), (false, 10), (false, 500), (true, 0), (false, 7), (false, 500)];
    assert_eq!(restore_order(&entries), vec![0, 3, 1, 2, 4, 5]);
    assert_eq!(restore_order(&[(false, 9), (false, 1)]), vec![1, 0]);
    assert_eq!(restore_order(&[(true, 0), (false, 1), (false, 9)]), vec![0, 1, 2], "already in order");
    assert_eq!(restore_order(&[]), Vec::<usize>::new());
  }

  #[test]
  fn a_zip_that_holds_the_pad_name_is_refused() {
    for name in [PAD_NAME.to_string(), format!("{PAD_NAME}/x")] {
      let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
      zip.start_file(name.as_str(), SimpleFileOptions::default()).unwrap();
      let mut zip = ZipArchive::new(zip.finish().unwrap()).unwrap();
      assert!(needs_pad(&mut zip).is_err(), "{name}");
    }
  }
}
