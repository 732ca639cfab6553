//! Every kept entry of a zip inflated before a save may replace anything: streamed into a small buffer and
//! dropped, its real size and CRC-32 checked against the central directory, the real bytes of all entries counted
//! against `maxUnpackedBytes`. Each inflate stops the moment a bound is crossed, so a bomb costs at most its
//! declared size. Entries are split into parts of about equal compressed size, one per core, checked in parallel.
//!
//! The check is a pure function of an entry's method, declared size and CRC and compressed bytes, so an entry that
//! passed once is remembered by a hash of those (`VERIFIED`, bounded): a re-save of unchanged files, most of what
//! RemoteAuth's periodic backups hand over (LevelDB tables never change once written), hashes them instead of
//! inflating them. Their declared (= real) sizes still count against `maxUnpackedBytes`. Failures are not kept.

use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use flate2::{Decompress, FlushDecompress, Status};
use lru::LruCache;

use crate::error::{Result, StoreError};

/// Inflated per step: the buffer each part reuses.
const STEP: usize = 64 * 1024;

/// Entries remembered as verified: about 80 bytes each, so some 5 MiB at most (3,000 sessions of ~15 files fit).
const REMEMBERED: usize = 1 << 16;

static VERIFIED: LazyLock<Mutex<LruCache<[u8; 32], ()>>> =
  LazyLock::new(|| Mutex::new(LruCache::new(NonZeroUsize::new(REMEMBERED).expect("not zero"))));

fn verified() -> std::sync::MutexGuard<'static, LruCache<[u8; 32], ()>> {
  VERIFIED.lock().unwrap_or_else(|p| p.into_inner())
}

/// What decides the check's outcome for `span`, hashed.
fn fingerprint(span: &Span, data: &[u8]) -> [u8; 32] {
  let mut hash = blake3::Hasher::new();
  hash.update(&[u8::from(span.method == Method::Deflated)]);
  hash.update(&span.size.to_le_bytes());
  hash.update(&span.crc.to_le_bytes());
  hash.update(data);
  *hash.finalize().as_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
  Stored,
  Deflated,
}

/// One file entry's compressed bytes in the zip, and what the central directory says they hold.
#[derive(Debug, Clone)]
pub(super) struct Span {
  pub name: String,
  pub data: Range<usize>,
  pub method: Method,
  pub size: u64,
  pub crc: u32,
}

/// What the parts of one check share: the real bytes so far, and whether one part has failed (the others stop).
#[derive(Debug, Default)]
pub(super) struct Shared {
  inflated: AtomicU64,
  failed: AtomicBool,
  /// Entries inflated (not remembered as verified).
  pub checked: AtomicU64,
}

/// Positions of `spans` in `n` parts of about equal compressed size (largest first, each to the lightest part).
pub(super) fn split(spans: &[Span], n: usize) -> Vec<Vec<usize>> {
  let n = n.max(1);
  let mut order: Vec<usize> = (0..spans.len()).collect();
  order.sort_by_key(|&i| std::cmp::Reverse(spans[i].data.len()));
  let mut parts = vec![(0usize, Vec::new()); n];
  for i in order {
    let lightest = parts.iter_mut().min_by_key(|(load, _)| *load).expect("n >= 1");
    lightest.0 += spans[i].data.len().max(1);
    lightest.1.push(i);
  }
  parts.into_iter().map(|(_, part)| part).filter(|p| !p.is_empty()).collect()
}

/// Checks the spans at `part` of `zip`: each inflates to exactly its declared size and CRC, and all parts
/// together to no more than `limit` bytes.
pub(super) fn check_part(zip: &[u8], spans: &[Span], part: &[usize], limit: u64, shared: &Shared) -> Result<()> {
  let mut buf = vec![0u8; STEP];
  let mut inflate = Decompress::new(false);
  for &i in part {
    if shared.failed.load(Ordering::Relaxed) {
      return Ok(()); // another part has the error to report
    }
    let result = check_one(zip, &spans[i], limit, shared, &mut buf, &mut inflate);
    if result.is_err() {
      shared.failed.store(true, Ordering::Relaxed);
      return result;
    }
  }
  Ok(())
}

fn invalid(span: &Span, why: impl std::fmt::Display) -> StoreError {
  StoreError::ZipInvalid(format!("{}: {why}", span.name.chars().take(200).collect::<String>()))
}

/// Counts `n` more real bytes of `span`: past its declared size it is a lie, past `limit` a bomb.
fn count(span: &Span, seen: &mut u64, n: u64, limit: u64, shared: &Shared) -> Result<()> {
  *seen += n;
  let total = shared.inflated.fetch_add(n, Ordering::Relaxed) + n;
  if total > limit {
    return Err(StoreError::ArchiveLimit(format!("kept files unpack to more than {limit} bytes")));
  }
  if *seen > span.size {
    return Err(invalid(span, format!("inflates to more than the {} bytes it declares", span.size)));
  }
  Ok(())
}

fn check_one(
  zip: &[u8],
  span: &Span,
  limit: u64,
  shared: &Shared,
  buf: &mut [u8],
  inflate: &mut Decompress,
) -> Result<()> {
  let data = zip.get(span.data.clone()).ok_or_else(|| invalid(span, "its data lies past the end of the zip"))?;
  let mut seen = 0u64;
  let key = fingerprint(span, data);
  if verified().get(&key).is_some() {
    return count(span, &mut seen, span.size, limit, shared);
  }
  shared.checked.fetch_add(1, Ordering::Relaxed);
  inflate_and_check(data, span, limit, shared, buf, inflate)?;
  verified().put(key, ());
  Ok(())
}

fn inflate_and_check(
  data: &[u8],
  span: &Span,
  limit: u64,
  shared: &Shared,
  buf: &mut [u8],
  inflate: &mut Decompress,
) -> Result<()> {
  let mut crc = crc32fast::Hasher::new();
  let mut seen = 0u64;
  match span.method {
    Method::Stored => {
      for chunk in data.chunks(STEP) {
        count(span, &mut seen, chunk.len() as u64, limit, shared)?;
        crc.update(chunk);
      }
    }
    Method::Deflated => {
      inflate.reset(false);
      loop {
        let at = inflate.total_in() as usize;
        let before = inflate.total_out();
        let status = inflate
          .decompress(&data[at..], buf, FlushDecompress::None)
          .map_err(|e| invalid(span, format!("its deflate data is damaged ({e})")))?;
        let n = (inflate.total_out() - before) as usize;
        count(span, &mut seen, n as u64, limit, shared)?;
        crc.update(&buf[..n]);
        match status {
          Status::StreamEnd => break,
          _ if n == 0 && inflate.total_in() as usize == at => {
            return Err(invalid(span, "its deflate data ends early"));
          }
          _ => {}
        }
      }
      if inflate.total_in() as usize != data.len() {
        return Err(invalid(span, "has bytes after its deflate data"));
      }
    }
  }
  if seen != span.size {
    return Err(invalid(span, format!("inflates to {seen} bytes, declares {}", span.size)));
  }
  if crc.finalize() != span.crc {
    return Err(invalid(span, "fails its CRC-32"));
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use std::io::Write;

  use super::*;

  fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
  }

  fn span(data: &[u8], method: Method, size: u64, crc: u32, at: usize) -> Span {
    Span { name: "Default/IndexedDB/x".into(), data: at..at + data.len(), method, size, crc }
  }

  fn run(zip: &[u8], spans: &[Span], limit: u64) -> Result<()> {
    let shared = Shared::default();
    split(spans, 2).iter().try_for_each(|part| check_part(zip, spans, part, limit, &shared))
  }

  #[test]
  fn good_entries_pass_and_every_lie_is_caught() {
    let body: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
    let crc = crc32fast::hash(&body);
    let packed = deflate(&body);
    let n = body.len() as u64;
    let ok = |s: Span, data: &[u8]| run(data, &[s], u64::MAX);
    assert!(ok(span(&packed, Method::Deflated, n, crc, 0), &packed).is_ok());
    assert!(ok(span(&body, Method::Stored, n, crc, 0), &body).is_ok());
    let code = |s: Span, data: &[u8], limit| run(data, &[s], limit).unwrap_err().code();
    assert_eq!(code(span(&packed, Method::Deflated, n, crc ^ 1, 0), &packed, u64::MAX), "ERR_ZIP_INVALID");
    assert_eq!(code(span(&packed, Method::Deflated, n - 1, crc, 0), &packed, u64::MAX), "ERR_ZIP_INVALID");
    assert_eq!(code(span(&packed, Method::Deflated, n + 1, crc, 0), &packed, u64::MAX), "ERR_ZIP_INVALID");
    assert_eq!(code(span(&packed, Method::Deflated, n, crc, 0), &packed, n - 1), "ERR_ARCHIVE_LIMIT");
    let cut = &packed[..packed.len() / 2];
    assert_eq!(code(span(cut, Method::Deflated, n, crc, 0), cut, u64::MAX), "ERR_ZIP_INVALID");
    let mut trailing = packed.clone();
    trailing.extend_from_slice(b"junk");
    assert_eq!(code(span(&trailing, Method::Deflated, n, crc, 0), &trailing, u64::MAX), "ERR_ZIP_INVALID");
    let garbage = vec![0xffu8; 1000];
    assert_eq!(code(span(&garbage, Method::Deflated, n, crc, 0), &garbage, u64::MAX), "ERR_ZIP_INVALID");
    let short = span(&packed, Method::Deflated, n, crc, 10);
    assert_eq!(code(short, &packed, u64::MAX), "ERR_ZIP_INVALID", "data past the end");
  }

  #[test]
  fn a_verified_entry_is_remembered_only_for_the_same_bytes_size_and_crc() {
    // Bytes no other test uses: the memo is shared by the process.
    let body: Vec<u8> = (0..200_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()).collect();
    let (crc, packed, n) = (crc32fast::hash(&body), deflate(&body), body.len() as u64);
    let check = |s: &Span, data: &[u8], limit: u64| {
      let shared = Shared::default();
      let result = check_part(data, std::slice::from_ref(s), &[0], limit, &shared);
      (result.map_err(|e| e.code()), shared.checked.load(Ordering::Relaxed))
    };
    let good = span(&packed, Method::Deflated, n, crc, 0);
    assert_eq!(check(&good, &packed, u64::MAX), (Ok(()), 1), "inflated the first time");
    assert_eq!(check(&good, &packed, u64::MAX), (Ok(()), 0), "remembered the second");
    assert_eq!(check(&good, &packed, n - 1), (Err("ERR_ARCHIVE_LIMIT"), 0), "still counted against the limit");
    // Any change to what decides the outcome is checked again, and caught.
    assert_eq!(check(&span(&packed, Method::Deflated, n, crc ^ 1, 0), &packed, u64::MAX), (Err("ERR_ZIP_INVALID"), 1));
    assert_eq!(check(&span(&packed, Method::Deflated, n + 1, crc, 0), &packed, u64::MAX), (Err("ERR_ZIP_INVALID"), 1));
    assert_eq!(check(&span(&packed, Method::Stored, n, crc, 0), &packed, u64::MAX), (Err("ERR_ZIP_INVALID"), 1));
    let mut flipped = packed.clone();
    flipped[packed.len() / 2] ^= 0x40;
    assert_eq!(check(&good, &flipped, u64::MAX), (Err("ERR_ZIP_INVALID"), 1), "a flipped byte is inflated again");
    assert_eq!(check(&good, &flipped, u64::MAX), (Err("ERR_ZIP_INVALID"), 1), "failures are not remembered");
  }

  #[test]
  fn a_bomb_stops_at_its_declared_size() {
    let zeros = vec![0u8; 16 << 20];
    let packed = deflate(&zeros);
    let shared = Shared::default();
    let spans = [span(&packed, Method::Deflated, 100, 0, 0)];
    let err = check_part(&packed, &spans, &[0], 1 << 20, &shared).unwrap_err();
    assert_eq!(err.code(), "ERR_ZIP_INVALID", "{err}");
    assert!(shared.inflated.load(Ordering::Relaxed) <= STEP as u64, "stopped after one step");
    let spans = [span(&packed, Method::Deflated, 16 << 20, crc32fast::hash(&zeros), 0)];
    assert_eq!(run(&packed, &spans, 1 << 20).unwrap_err().code(), "ERR_ARCHIVE_LIMIT");
  }

  #[test]
  fn parts_balance_compressed_bytes_and_cover_every_span() {
    let spans: Vec<Span> = [900, 10, 500, 400, 20, 0]
      .iter()
      .map(|&len| Span { name: "x".into(), data: 0..len, method: Method::Stored, size: 0, crc: 0 })
      .collect();
    let parts = split(&spans, 2);
    let load = |p: &Vec<usize>| p.iter().map(|&i| spans[i].data.len()).sum::<usize>();
    assert_eq!(parts.len(), 2);
    assert!(load(&parts[0]).abs_diff(load(&parts[1])) <= 100, "{parts:?}");
    let mut all: Vec<usize> = parts.concat();
    all.sort();
    assert_eq!(all, (0..spans.len()).collect::<Vec<_>>());
    assert_eq!(split(&spans[..1], 4).len(), 1, "no empty parts");
  }
}
