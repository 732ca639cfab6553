//! Sealed archive in, files in a fresh folder out: the restore that needs no zip. Either payload kind, each
//! file inflated and checked (CRC, sizes, limits) as it is written, names checked again (by `read::visit`),
//! nothing but plain folders and files created, each file and folder fsynced.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use super::crypt::{self, Keyring};
use super::header::{open, Header};
use super::read::visit;
use super::Limits;
use crate::error::{Result, StoreError};
use crate::fsutil::sync_dir;

/// A profile holds a login's keys: what is restored is the owner's alone, whatever modes were stored.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Writes the archive's entries below `dir`, which must exist and be empty (a folder made for this). Returns the
/// header once every file and folder is durable (fsynced: files, then folders deepest first); on an error `dir` holds a partial tree for the caller to remove.
pub fn write_dir(archive: &[u8], keys: Option<&Keyring>, limits: &Limits, session: &str, dir: &Path) -> Result<Header> {
  let (header, payload) = open(archive)?;
  let plain = crypt::open_payload(&header, payload, keys, session)?;
  let payload = plain.as_deref().map_or(payload, |p| &p[..]);
  let mut dirs = std::collections::HashSet::from([dir.to_path_buf()]);
  let mut files = Vec::new();
  visit(&header, payload, limits, |meta, data| {
    let target = dir.join(&meta.path.path);
    match meta.size {
      None => {
        make_dirs(dir, &meta.path.path, &mut dirs)?;
        Ok(())
      }
      Some(_) => {
        if let Some((parent, _)) = meta.path.path.rsplit_once('/') {
          make_dirs(dir, parent, &mut dirs)?;
        }
        // create_new: a name seen twice, or a link in the way, fails instead of being written through.
        let mut file = create(&target)?;
        copy_checked(data, &mut file, &target)?;
        start_writeback(&file);
        files.push(target);
        Ok(())
      }
    }
  })?;
  // Their writeback started as each was closed, so these mostly wait for what is already on its way.
  for path in &files {
    File::open(path).and_then(|f| f.sync_all()).map_err(StoreError::io("fsync", path))?;
  }
  // Deepest first, so each folder's entry in its parent is durable after its own contents.
  let mut dirs: Vec<_> = dirs.into_iter().collect();
  dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
  for d in &dirs {
    sync_dir(d)?;
  }
  Ok(header)
}

/// Copies an entry's bytes into its file: a failure to read them (damaged deflate data, a CRC) is the archive's,
/// a failure to write is the disk's.
fn copy_checked(data: &mut dyn io::Read, file: &mut File, target: &Path) -> Result<()> {
  let mut buf = vec![0u8; 64 * 1024];
  loop {
    let n = match data.read(&mut buf) {
      Ok(0) => return Ok(()),
      Ok(n) => n,
      Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
      Err(e) => return Err(StoreError::ArchiveCorrupt(e.to_string())),
    };
    io::Write::write_all(file, &buf[..n]).map_err(StoreError::io("write", target))?;
  }
}

/// Starts writing a file's pages out without waiting (Linux), so the fsyncs at the end overlap the inflating.
fn start_writeback(file: &File) {
  #[cfg(target_os = "linux")]
  unsafe {
    use std::os::fd::AsRawFd;
    libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
  }
  #[cfg(not(target_os = "linux"))]
  let _ = file;
}

fn create(path: &Path) -> Result<File> {
  let mut options = OpenOptions::new();
  options.write(true).create_new(true);
  #[cfg(unix)]
  std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
  options.open(path).map_err(StoreError::io("create", path))
}

/// Creates `rel` (checked, `/`-separated) and the folders on its way below `root`, remembering each for the fsync.
fn make_dirs(root: &Path, rel: &str, made: &mut std::collections::HashSet<std::path::PathBuf>) -> Result<()> {
  let mut at = root.to_path_buf();
  for part in rel.split('/') {
    at.push(part);
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    match builder.create(&at) {
      Ok(()) => {
        made.insert(at.clone());
      }
      // Only a folder this restore made may be there already: a file or link in the way is refused.
      Err(e) if e.kind() == io::ErrorKind::AlreadyExists && made.contains(&at) => {}
      Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
        let name = rel.to_owned();
        return Err(StoreError::UnsafeEntry { name, reason: "is a file and a folder" });
      }
      Err(e) => return Err(StoreError::io("create directory", &at)(e)),
    }
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use std::sync::Arc;

  use super::*;
  use crate::archive::{pack_entries, Data, Entry, Key, PackOptions};

  fn entry(path: &str, data: Data) -> Entry {
    Entry { path: path.into(), mode: 0o4777, mtime: 0, data }
  }

  #[test]
  fn files_and_folders_come_back_owner_only() {
    let keys = Arc::new(Keyring::new(Key::new([3; 32]), vec![]));
    let opts = PackOptions { keys: Some(keys.clone()), ..Default::default() };
    let entries = [
      entry("Default", Data::Dir),
      entry("Default/IndexedDB", Data::Dir),
      entry("Default/IndexedDB/db/x", Data::File(vec![5; 100_000])),
      entry("Default/IndexedDB/empty", Data::Dir),
    ];
    let packed = pack_entries(&entries, &opts, "s", 0, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = write_dir(&packed.bytes, None, &Limits::default(), "s", dir.path()).unwrap_err();
    assert_eq!(err.code(), "ERR_DECRYPT");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written without the key");
    write_dir(&packed.bytes, Some(&keys), &Limits::default(), "s", dir.path()).unwrap();
    assert_eq!(std::fs::read(dir.path().join("Default/IndexedDB/db/x")).unwrap(), vec![5; 100_000]);
    assert!(dir.path().join("Default/IndexedDB/empty").is_dir());
    #[cfg(unix)]
    {
      use std::os::unix::fs::PermissionsExt;
      let mode = |rel: &str| std::fs::metadata(dir.path().join(rel)).unwrap().permissions().mode() & 0o7777;
      assert_eq!((mode("Default/IndexedDB/db"), mode("Default/IndexedDB/db/x")), (0o700, 0o600));
    }
  }

  #[test]
  fn limits_hold_and_a_damaged_copy_writes_nothing() {
    let packed = pack_entries(&[entry("a/b", Data::File(vec![1; 10]))], &PackOptions::default(), "s", 0, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let small = Limits { max_entries: 10, max_unpacked_bytes: 9 };
    assert_eq!(write_dir(&packed.bytes, None, &small, "s", dir.path()).unwrap_err().code(), "ERR_ARCHIVE_LIMIT");
    let mut bad = packed.bytes.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(write_dir(&bad, None, &Limits::default(), "s", dir.path()).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
  }
}
