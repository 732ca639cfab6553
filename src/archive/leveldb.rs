//! A consistent snapshot of a live LevelDB folder (IndexedDB, Local Storage), read the way LevelDB itself finds
//! its state: `CURRENT` names the manifest; the manifest's version edits name the live tables and the first log
//! still needed. The snapshot is CURRENT and the manifest's complete records as read once into memory, the live
//! tables that manifest lists (immutable once listed: each must be there at the listed size and end in the table
//! magic), and the logs from the manifest's log number on, each as the prefix present when it was looked at
//! (LevelDB appends to logs and, on open, takes a torn last record for the end). Obsolete tables, logs and
//! manifests are left out: LevelDB deletes them at any moment and would never read them. Formats:
//! leveldb `doc/log_format.md`, `db/version_edit.cc`, `table/format.h`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Result, StoreError};
use crate::fsutil::{not_regular, open_regular, read_bounded};

const BLOCK: usize = 32 * 1024;
const HEADER: usize = 7;
/// Last 8 bytes of every table (`kTableMagicNumber`, little-endian).
const TABLE_MAGIC: [u8; 8] = 0xdb47_7524_8b80_fb57u64.to_le_bytes();
/// A manifest larger than this is not read into memory (LevelDB starts a new one at a few MB).
const MAX_MANIFEST: u64 = 64 << 20;
/// A `CURRENT` longer than this names no manifest (LevelDB writes `MANIFEST-<number>\n`): not read further.
const MAX_CURRENT: u64 = 4096;

/// What one LevelDB folder's snapshot holds, as its manifest says.
#[derive(Debug)]
pub(super) struct Snapshot {
  pub current: Vec<u8>,
  pub manifest_name: String,
  /// The manifest's complete records, exactly as stored.
  pub manifest: Vec<u8>,
  /// Live table number → size.
  pub tables: BTreeMap<u64, u64>,
  /// Logs present when the snapshot was taken that LevelDB replays on open.
  pub logs: BTreeSet<u64>,
  log_numbers: (u64, u64),
  /// The needed logs and live tables, opened as the snapshot was taken: a file LevelDB deletes after that is still
  /// read whole through its handle.
  open: HashMap<String, std::fs::File>,
}

/// Live tables opened up front at most: more are opened as the walk reaches them (and must still be there).
const MAX_OPEN_TABLES: usize = 256;

/// How the snapshot treats a file of its folder.
pub(super) enum Part {
  /// Stored from these bytes, not from the disk.
  Bytes(Vec<u8>),
  Table(u64, u64),
  Log(u64),
  /// Not part of the database's state.
  Skip,
  /// Anything else (`LOCK`, `LOG`): stored as found.
  Other,
}

fn changing(why: String) -> StoreError {
  StoreError::ProfileChanging(why)
}

/// A vanished file means LevelDB moved on under the read; a link or special file (`open_regular`) is refused.
pub(super) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
  move |e| match (not_regular(&e), e.kind()) {
    (Some(reason), _) => StoreError::UnsafeEntry { name: path.display().to_string(), reason },
    (None, std::io::ErrorKind::NotFound) => changing(format!("{} went away", path.display())),
    _ => StoreError::io(op, path)(e),
  }
}

/// `CURRENT` of `dir`, read with a bound; `None` when it is missing or too long to name a manifest.
fn read_current(dir: &Path) -> Result<Option<Vec<u8>>> {
  let path = dir.join("CURRENT");
  match read_bounded(&path, MAX_CURRENT) {
    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
    read => read.map_err(io_err("read", &path)),
  }
}

/// The manifest's first `MAX_MANIFEST` bytes, opened as `open_regular` does.
fn read_manifest(path: &Path) -> std::io::Result<Vec<u8>> {
  let (file, _) = open_regular(path)?;
  let mut raw = Vec::new();
  file.take(MAX_MANIFEST).read_to_end(&mut raw)?;
  Ok(raw)
}

/// `NNNNNN.ext` → NNNNNN.
fn number(name: &str, ext: &str) -> Option<u64> {
  name.strip_suffix(ext).filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
}

impl Snapshot {
  /// The snapshot of `dir`, or `None` when it holds no `CURRENT` naming a LevelDB manifest that is there and holds
  /// a record (then it is stored as found, as a zip of it would be: there is nothing to vouch for).
  pub fn take(dir: &Path) -> Result<Option<Self>> {
    let Some(current) = read_current(dir)? else { return Ok(None) };
    let Some(manifest_name) = std::str::from_utf8(&current)
      .ok()
      .and_then(|s| s.strip_suffix('\n'))
      .filter(|n| n.strip_prefix("MANIFEST-").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())))
      .map(str::to_owned)
    else {
      return Ok(None);
    };
    let path = dir.join(&manifest_name);
    let mut raw = match read_manifest(&path) {
      Ok(raw) => raw,
      // CURRENT moved on to a newer manifest meanwhile: read again. Still naming it: a broken database.
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
        return match read_current(dir) {
          Ok(Some(again)) if again == current => Ok(None),
          _ => Err(changing(format!("{} went away", path.display()))),
        };
      }
      Err(e) => return Err(io_err("read", &path)(e)),
    };
    let (records, complete) = records(&raw);
    if records.is_empty() {
      return Ok(None); // not a LevelDB manifest at all: nothing to vouch for
    }
    raw.truncate(complete);
    let state =
      replay(&records).ok_or_else(|| changing(format!("{} holds an edit that does not parse", path.display())))?;
    let mut logs = BTreeSet::new();
    let read = std::fs::read_dir(dir).map_err(io_err("read directory", dir))?;
    for item in read {
      let item = item.map_err(io_err("read directory", dir))?;
      if let Some(n) = item.file_name().to_str().and_then(|n| number(n, ".log")) {
        if n >= state.log_number || (state.prev_log_number != 0 && n == state.prev_log_number) {
          logs.insert(n);
        }
      }
    }
    let log_numbers = (state.log_number, state.prev_log_number);
    let mut snapshot =
      Self { current, manifest_name, manifest: raw, tables: state.tables, logs, log_numbers, open: HashMap::new() };
    // A flush between the manifest's read and the listing would have deleted a log this manifest still needs.
    snapshot.still_current(dir)?;
    let names = snapshot.logs.iter().map(|&n| format!("{n:06}.log"));
    let tables = snapshot.tables.keys().take(MAX_OPEN_TABLES).map(|&n| format!("{n:06}.ldb"));
    for name in names.chain(tables).collect::<Vec<_>>() {
      let path = dir.join(&name);
      match open_regular(&path) {
        Ok((file, _)) => drop(snapshot.open.insert(name, file)),
        // A table under its old name (`.sst`) is opened by the walk.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.ends_with(".ldb") => {}
        Err(e) => return Err(io_err("open", &path)(e)),
      }
    }
    Ok(Some(snapshot))
  }

  /// The handle opened for `name` when the snapshot was taken, if any.
  pub fn take_open(&mut self, name: &str) -> Option<std::fs::File> {
    self.open.remove(name)
  }

  /// No flush completed since the manifest was read. A flush writes a table from a log, appends an edit moving the
  /// log number past that log, then deletes the log: between the manifest's read and the listing, the log would be
  /// missing from the snapshot and its table too. Compactions (same log number) are harmless: the tables this
  /// manifest lists are each checked whole.
  pub fn still_current(&self, dir: &Path) -> Result<()> {
    let moved = || changing(format!("{}: a flush completed during the read", dir.display()));
    if read_current(dir)?.as_ref() != Some(&self.current) {
      return Err(moved());
    }
    let path = dir.join(&self.manifest_name);
    let raw = read_manifest(&path).map_err(io_err("read", &path))?;
    match replay(&records(&raw).0) {
      Some(state) if (state.log_number, state.prev_log_number) == self.log_numbers => Ok(()),
      _ => Err(moved()),
    }
  }

  pub fn part(&self, name: &str) -> Part {
    if name == "CURRENT" {
      return Part::Bytes(self.current.clone());
    }
    if name == self.manifest_name {
      return Part::Bytes(self.manifest.clone());
    }
    if name.starts_with("MANIFEST-") {
      return Part::Skip;
    }
    if let Some(n) = number(name, ".ldb").or_else(|| number(name, ".sst")) {
      return self.tables.get(&n).map_or(Part::Skip, |&size| Part::Table(n, size));
    }
    if let Some(n) = number(name, ".log") {
      return if self.logs.contains(&n) { Part::Log(n) } else { Part::Skip };
    }
    if name.ends_with(".dbtmp") {
      return Part::Skip; // a CURRENT on its way in
    }
    Part::Other
  }
}

/// Checks a live table as opened: the size its manifest lists, and the magic that ends every whole table.
pub(super) fn check_table(file: &mut std::fs::File, path: &Path, len: u64, listed: u64) -> Result<()> {
  if len != listed || len < 8 {
    return Err(changing(format!("{} has {len} bytes, its manifest lists {listed}", path.display())));
  }
  let mut tail = [0u8; 8];
  file.seek(SeekFrom::Start(len - 8)).map_err(StoreError::io("read", path))?;
  file.read_exact(&mut tail).map_err(StoreError::io("read", path))?;
  file.seek(SeekFrom::Start(0)).map_err(StoreError::io("read", path))?;
  if tail != TABLE_MAGIC {
    return Err(changing(format!("{} does not end like a table", path.display())));
  }
  Ok(())
}

/// The logical records of a log-format file up to the first incomplete or damaged one, and where the last
/// complete one ends.
fn records(raw: &[u8]) -> (Vec<Vec<u8>>, usize) {
  let (mut out, mut complete, mut pending, mut at) = (Vec::new(), 0, None::<Vec<u8>>, 0);
  while at < raw.len() {
    let left_in_block = BLOCK - at % BLOCK;
    if left_in_block < HEADER {
      at += left_in_block; // the block's zero trailer
      continue;
    }
    let Some(head) = raw.get(at..at + HEADER) else { break };
    let len = u16::from_le_bytes([head[4], head[5]]) as usize;
    let kind = head[6];
    let Some(data) = raw.get(at + HEADER..at + HEADER + len) else { break };
    if kind == 0
      || len + HEADER > left_in_block
      || unmask(u32::from_le_bytes(head[..4].try_into().unwrap())) != crc32c(&raw[at + 6..at + HEADER + len])
    {
      break;
    }
    at += HEADER + len;
    match (kind, pending.as_mut()) {
      (1, None) => {
        out.push(data.to_vec());
        complete = at;
      }
      (2, None) => pending = Some(data.to_vec()),
      (3, Some(p)) => p.extend_from_slice(data),
      (4, Some(p)) => {
        p.extend_from_slice(data);
        out.push(pending.take().unwrap());
        complete = at;
      }
      _ => break,
    }
  }
  (out, complete)
}

struct State {
  log_number: u64,
  prev_log_number: u64,
  tables: BTreeMap<u64, u64>,
}

/// Applies the version edits in order; `None` when one does not parse.
fn replay(records: &[Vec<u8>]) -> Option<State> {
  let mut state = State { log_number: 0, prev_log_number: 0, tables: BTreeMap::new() };
  for record in records {
    let mut r = &record[..];
    while !r.is_empty() {
      match varint(&mut r)? {
        1 => drop(prefixed(&mut r)?), // comparator
        2 => state.log_number = varint(&mut r)?,
        3 | 4 => drop(varint(&mut r)?), // next file number, last sequence
        5 => drop((varint(&mut r)?, prefixed(&mut r)?)), // compact pointer
        6 => {
          let (_level, n) = (varint(&mut r)?, varint(&mut r)?);
          state.tables.remove(&n);
        }
        7 => {
          let (_level, n, size) = (varint(&mut r)?, varint(&mut r)?, varint(&mut r)?);
          prefixed(&mut r)?;
          prefixed(&mut r)?;
          state.tables.insert(n, size);
        }
        9 => state.prev_log_number = varint(&mut r)?,
        _ => return None,
      }
    }
  }
  Some(state)
}

fn varint(r: &mut &[u8]) -> Option<u64> {
  let mut value = 0u64;
  for shift in (0..64).step_by(7) {
    let (&byte, rest) = r.split_first()?;
    *r = rest;
    value |= u64::from(byte & 0x7f) << shift;
    if byte & 0x80 == 0 {
      return Some(value);
    }
  }
  None
}

fn prefixed<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
  let len = usize::try_from(varint(r)?).ok()?;
  let (data, rest) = (r.get(..len)?, r.get(len..)?);
  *r = rest;
  Some(data)
}

fn unmask(masked: u32) -> u32 {
  let rot = masked.wrapping_sub(0xa282_ead8);
  rot.rotate_left(15)
}

/// CRC-32C (Castagnoli), as LevelDB checksums its records.
fn crc32c(data: &[u8]) -> u32 {
  static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
  let table = TABLE.get_or_init(|| {
    let mut t = [0u32; 256];
    for (i, slot) in t.iter_mut().enumerate() {
      let mut c = i as u32;
      for _ in 0..8 {
        c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
      }
      *slot = c;
    }
    t
  });
  !data.iter().fold(!0u32, |c, &b| table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

#[cfg(test)]
#[path = "leveldb_tests.rs"]
pub(crate) mod tests;
