//! RemoteAuth's zip in, sealed archive out. The central directory is read and checked first (every name by
//! `names::entry_name` and `Names`, kinds, declared sizes, limits). Then two things can run at once: the kept
//! entries' compressed bytes are copied as they are, in the order that restores whole (`stream_safe`), and every
//! kept entry is inflated and checked against its CRC and size (`verify`, in parts, one per core). A save may
//! replace the stored copy only once both are done.

use std::io::{Cursor, Read};
use std::sync::Arc;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::names::{entry_name, Counts, Names};
use super::seal::{seal_zip, zip_write_err, Reserved};
use super::stream_safe::restore_order;
use super::verify::{check_part, split, Method, Shared, Span};
use super::{now_ms, PackOptions, Packed};
use crate::error::{Result, StoreError};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
/// Deflate's best ratio is about 1032:1: a larger declared size is a lie, whatever the data.
const MAX_DEFLATE_RATIO: u64 = 1032;
const LOCAL_SIGNATURE: &[u8; 4] = b"PK\x03\x04";

fn zip_err(e: impl std::fmt::Display) -> StoreError {
  StoreError::ZipInvalid(e.to_string())
}

/// A kept entry: where it is in the zip, and what its name and size are.
struct Kept {
  index: usize,
  name: String,
  is_dir: bool,
  size: u64,
}

/// A zip whose central directory passed, ready to be verified (`verify_part`) and copied (`pack`), in either order
/// or at once.
pub struct ZipSave {
  bytes: Arc<[u8]>,
  zip: ZipArchive<Cursor<Arc<[u8]>>>,
  kept: Vec<Kept>,
  /// The kept files' compressed bytes, for `verify`.
  spans: Vec<Span>,
  parts: Vec<Vec<usize>>,
  counts: Counts,
  limit: u64,
  shared: Shared,
}

impl ZipSave {
  /// Reads and checks the central directory of `bytes`, and splits the kept files into at most `parts` parts.
  pub fn open(bytes: Vec<u8>, opts: &PackOptions, parts: usize) -> Result<Self> {
    let bytes: Arc<[u8]> = bytes.into();
    let mut zip = ZipArchive::new(Cursor::new(bytes.clone())).map_err(zip_err)?;
    if zip.has_duplicate_names() {
      return Err(StoreError::UnsafeEntry { name: "(one of the zip's entries)".into(), reason: "appears twice" });
    }
    if zip.len() as u64 > u64::from(opts.limits.max_entries) {
      return Err(StoreError::ArchiveLimit(format!("{} entries, limit {}", zip.len(), opts.limits.max_entries)));
    }
    let mut names = Names::new(opts.limits);
    let (mut kept, mut spans) = (Vec::new(), Vec::new());
    for index in 0..zip.len() {
      let file = zip.by_index_raw(index).map_err(zip_err)?;
      let entry = entry_name(file.name_raw(), &file.name().map_err(zip_err)?)?;
      if !entry.is_kept(&opts.keep) {
        continue;
      }
      let kind = file.unix_mode().map(|m| m & S_IFMT).filter(|&t| t != 0);
      if file.is_symlink() || kind.is_some_and(|t| t != S_IFREG && t != S_IFDIR) {
        return Err(StoreError::UnsafeEntry { name: entry.path, reason: "is a link or special file" });
      }
      if file.encrypted() {
        return Err(StoreError::ZipInvalid(format!("{} is encrypted", entry.path)));
      }
      let is_dir = entry.is_dir || file.is_dir();
      let (size, packed) = (file.size(), file.compressed_size());
      if is_dir && (size != 0 || packed != 0) {
        // unzipper makes a folder of it and never reads the data: the rest of the zip is misread.
        return Err(StoreError::UnsafeEntry { name: entry.path, reason: "is a folder that carries data" });
      }
      if kind.is_some_and(|t| (t == S_IFDIR) != is_dir) {
        // unzipper goes by the name, other tools by the mode: each would restore another tree.
        return Err(StoreError::UnsafeEntry {
          name: entry.path,
          reason: "is a folder by its mode or name and a file by the other",
        });
      }
      let method = match file.compression() {
        _ if is_dir => Method::Stored,
        CompressionMethod::Stored => Method::Stored,
        CompressionMethod::Deflated => Method::Deflated,
        other => {
          return Err(StoreError::ZipInvalid(format!("{} uses {other}, which RemoteAuth cannot unzip", entry.path)))
        }
      };
      let plausible = match method {
        Method::Stored => size == packed,
        Method::Deflated => size <= packed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(64),
      };
      if !plausible {
        return Err(StoreError::ZipInvalid(format!("{} declares {size} bytes from {packed} stored", entry.path)));
      }
      names.admit(&entry, (!is_dir).then_some(size))?;
      if !is_dir {
        let data =
          data_range(&bytes, file.header_start(), packed).map_err(|why| zip_err(format!("{}: {why}", entry.path)))?;
        spans.push(Span { name: entry.path.clone(), data, method, size, crc: file.crc32() });
      }
      let name = if is_dir { format!("{}/", entry.path) } else { entry.path };
      kept.push(Kept { index, name, is_dir, size });
    }
    let counts = names.finish()?;
    if counts.files == 0 {
      return Err(StoreError::EmptySession(opts.keep.join(", ")));
    }
    let parts = split(&spans, parts);
    Ok(Self {
      bytes,
      zip,
      kept,
      spans,
      parts,
      counts,
      limit: opts.limits.max_unpacked_bytes,
      shared: Shared::default(),
    })
  }

  /// How many parts `verify_part` takes.
  pub fn parts(&self) -> usize {
    self.parts.len()
  }

  /// Inflates the kept files of part `at` and checks each against its CRC and declared size, and all parts
  /// together against `maxUnpackedBytes`. Once one part fails, the others stop early (their `Ok` means nothing).
  pub fn verify_part(&self, at: usize) -> Result<()> {
    check_part(&self.bytes, &self.spans, &self.parts[at], self.limit, &self.shared)
  }

  /// Every part, one after another.
  pub fn verify(&self) -> Result<()> {
    (0..self.parts()).try_for_each(|at| self.verify_part(at))
  }

  /// The sealed archive: the kept entries' compressed bytes as they are, in restore order. Checks nothing the
  /// directory did not say; only `verify` makes the result safe to store.
  pub fn pack(&self, opts: &PackOptions, session: &str) -> Result<Packed> {
    self.pack_after(opts, session, 0)
  }

  /// `pack`, stamped after `previous_ms` (the stamp of the copy it replaces): a session's stamps only grow, so
  /// they order its saves whatever the clocks of the processes that made them (`store::order`).
  pub fn pack_after(&self, opts: &PackOptions, session: &str, previous_ms: u64) -> Result<Packed> {
    let mut zip = self.zip.clone();
    let source_bytes = self.bytes.len() as u64;
    let shape: Vec<(bool, u64)> = self.kept.iter().map(|k| (k.is_dir, k.size)).collect();
    let mut out = ZipWriter::new(Reserved::new(opts.keys.is_some()));
    for at in restore_order(&shape) {
      let entry = &self.kept[at];
      let file = zip.by_index_raw(entry.index).map_err(zip_err)?;
      if entry.is_dir {
        // A folder carries nothing but its name, mode and time: written anew, so no field of the zip's travels.
        let mode = file.unix_mode().map_or(0o700, |m| m & 0o777);
        let options = SimpleFileOptions::default()
          .unix_permissions(mode)
          .last_modified_time(file.last_modified().unwrap_or_default());
        out.add_directory(entry.name.as_str(), options).map_err(zip_err)?;
        continue;
      }
      // The checked name, not the raw one: the local header unzipper reads says exactly what was checked. What
      // else the copy takes from the entry (its extra fields) is the zip's: a copy that fails is the zip's fault.
      out.raw_copy_file_rename(file, &entry.name).map_err(zip_err)?;
    }
    let payload = out.finish().map_err(zip_write_err)?;
    seal_zip(
      payload,
      self.counts,
      source_bytes,
      now_ms().max(previous_ms.saturating_add(1)),
      opts.keys.as_deref(),
      session,
    )
  }
}

/// Where an entry's data lies: after its local header (which must be there), `packed` bytes.
fn data_range(zip: &[u8], header_start: u64, packed: u64) -> std::result::Result<std::ops::Range<usize>, &'static str> {
  let at = usize::try_from(header_start).map_err(|_| "its local header lies past the end")?;
  let header = zip.get(at..at.saturating_add(30)).ok_or("its local header lies past the end")?;
  if &header[..4] != LOCAL_SIGNATURE {
    return Err("no local header where the directory says");
  }
  let field = |i: usize| usize::from(u16::from_le_bytes([header[i], header[i + 1]]));
  let start = at + 30 + field(26) + field(28);
  let end = usize::try_from(packed).ok().and_then(|p| start.checked_add(p)).ok_or("its data lies past the end")?;
  if end > zip.len() {
    return Err("its data lies past the end");
  }
  Ok(start..end)
}

/// Builds the archive of the kept directories of a zip, verified first (one part after another).
pub fn pack_zip<R: Read>(mut reader: R, opts: &PackOptions, session: &str) -> Result<Packed> {
  let mut bytes = Vec::new();
  reader.read_to_end(&mut bytes).map_err(zip_err)?;
  let save = ZipSave::open(bytes, opts, 1)?;
  save.verify()?;
  save.pack(opts, session)
}
