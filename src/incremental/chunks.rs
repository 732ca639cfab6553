//! Content-defined chunks (FastCDC): cut points follow the content, so bytes appended to a log or rewritten in
//! the middle of a table change only the chunks around them. A chunk is named by the BLAKE3 of its bytes and
//! stored compressed, behind a small header whose flags leave room for encryption.

use crate::error::{Result, StoreError};

/// 2 / 8 / 64 KiB: LevelDB blocks are 4 KiB, so an 8 KiB average keeps most unchanged blocks in unchanged chunks.
const MIN: u32 = 2 * 1024;
const AVG: u32 = 8 * 1024;
const MAX: u32 = 64 * 1024;

const MAGIC: &[u8; 4] = b"WWCK";
const FLAG_ZSTD: u8 = 1;
const HEADER_LEN: usize = 5;

/// BLAKE3 of a chunk's bytes, hex.
pub type ChunkId = String;

pub fn chunk_id(bytes: &[u8]) -> ChunkId {
  blake3::hash(bytes).to_hex().to_string()
}

/// The chunks of `data` as (offset, length), in order; empty data has none.
pub fn split(data: &[u8]) -> Vec<(usize, usize)> {
  fastcdc::v2020::FastCDC::new(data, MIN, AVG, MAX).map(|c| (c.offset, c.length)).collect()
}

/// A chunk as stored: `WWCK`, flags, zstd of the bytes.
pub fn encode_chunk(bytes: &[u8], level: i32) -> Result<Vec<u8>> {
  let mut out = Vec::with_capacity(HEADER_LEN + bytes.len() / 2);
  out.extend_from_slice(MAGIC);
  out.push(FLAG_ZSTD);
  zstd::stream::copy_encode(bytes, &mut out, level).map_err(|e| StoreError::Internal(e.to_string()))?;
  Ok(out)
}

/// A stored chunk's bytes, checked against the id it was fetched by (the name is the checksum).
pub fn decode_chunk(stored: &[u8], id: &str) -> Result<Vec<u8>> {
  let corrupt = |why: &str| StoreError::ArchiveCorrupt(format!("chunk {id}: {why}"));
  if stored.len() < HEADER_LEN || &stored[..4] != MAGIC {
    return Err(corrupt("not a chunk"));
  }
  if stored[4] != FLAG_ZSTD {
    return Err(corrupt("unknown flags"));
  }
  let bytes = zstd::stream::decode_all(&stored[HEADER_LEN..]).map_err(|_| corrupt("does not decompress"))?;
  if chunk_id(&bytes) != id {
    return Err(corrupt("content does not match its name"));
  }
  Ok(bytes)
}
