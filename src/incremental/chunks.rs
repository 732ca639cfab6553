//! Content-defined chunks (FastCDC): cut points follow the content, so bytes appended to a log or rewritten in
//! the middle of a table change only the chunks around them. A chunk is named by the BLAKE3 of its bytes (keyed
//! by a subkey of the encryption key when there is one, so names reveal nothing) and stored compressed, then
//! encrypted when keyed.

use crate::archive::crypt::{self, Keyring};
use crate::error::{Result, StoreError};

/// 2 / 8 / 64 KiB: LevelDB blocks are 4 KiB, so an 8 KiB average keeps most unchanged blocks in unchanged chunks.
const MIN: u32 = 2 * 1024;
const AVG: u32 = 8 * 1024;
const MAX: u32 = 64 * 1024;

const MAGIC: &[u8; 4] = b"WWCK";
const FLAG_ZSTD: u8 = 1;
const FLAG_ENCRYPTED: u8 = 2;
const HEADER_LEN: usize = 5;
const ID_CONTEXT: &str = "wwebjs-rust-store 2026-11 chunk id";

/// A chunk's name: BLAKE3 of its bytes, hex.
pub type ChunkId = String;

/// The chunks of `data` as (offset, length), in order; empty data has none.
pub fn split(data: &[u8]) -> Vec<(usize, usize)> {
  fastcdc::v2020::FastCDC::new(data, MIN, AVG, MAX).map(|c| (c.offset, c.length)).collect()
}

/// Names, encodes and decodes the chunks of one session.
#[derive(Clone, Copy)]
pub struct ChunkCodec<'a> {
  /// Encrypt under the current key, read under any; `None`: plain chunks.
  pub keys: Option<&'a Keyring>,
  /// Encrypted chunks are bound to their session: one copied under another session does not decrypt there.
  pub session: &'a str,
  /// zstd level.
  pub level: i32,
}

/// BLAKE3 of the bytes; keyed, the key is derived from the encryption key and the session, so equal content in
/// two sessions (or under two keys) gets unrelated names.
fn keyed_id(key: Option<&crypt::Key>, session: &str, bytes: &[u8]) -> ChunkId {
  match key {
    Some(key) => {
      let per_session =
        zeroize::Zeroizing::new(*blake3::keyed_hash(&key.derive(ID_CONTEXT), session.as_bytes()).as_bytes());
      blake3::keyed_hash(&per_session, bytes).to_hex().to_string()
    }
    None => blake3::hash(bytes).to_hex().to_string(),
  }
}

impl ChunkCodec<'_> {
  pub fn id(&self, bytes: &[u8]) -> ChunkId {
    keyed_id(self.keys.map(Keyring::current), self.session, bytes)
  }

  fn aad(&self, id: &str) -> Vec<u8> {
    format!("chunk {}/{id}", self.session).into_bytes()
  }

  /// A chunk as stored: `WWCK`, flags, zstd of the bytes (sealed under the current key when keyed).
  pub fn encode(&self, id: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let packed = zstd::bulk::compress(bytes, self.level).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut out = MAGIC.to_vec();
    match self.keys {
      Some(keys) => {
        out.push(FLAG_ZSTD | FLAG_ENCRYPTED);
        out.extend_from_slice(&crypt::seal_box(keys.current(), &self.aad(id), &packed)?);
      }
      None => {
        out.push(FLAG_ZSTD);
        out.extend_from_slice(&packed);
      }
    }
    Ok(out)
  }

  /// A stored chunk's bytes, checked against the name it was fetched by (the name is the checksum).
  pub fn decode(&self, stored: &[u8], id: &str) -> Result<Vec<u8>> {
    let corrupt = |why: &str| StoreError::ArchiveCorrupt(format!("chunk {id}: {why}"));
    if stored.len() < HEADER_LEN || &stored[..4] != MAGIC {
      return Err(corrupt("not a chunk"));
    }
    let body = &stored[HEADER_LEN..];
    let (packed, key) = match stored[4] {
      FLAG_ZSTD => {
        crypt::refuse_plain(self.keys)?;
        (zeroize::Zeroizing::new(body.to_vec()), None)
      }
      f if f == FLAG_ZSTD | FLAG_ENCRYPTED => {
        let key = self.keys.and_then(|k| body.get(..crypt::KEY_ID_LEN).and_then(|id| k.find(id)));
        match crypt::decrypt(self.keys, &self.aad(id), body) {
          Ok(plain) => (plain, key),
          // The key is there and the tag fails: the bytes are damaged (no outer checksum to say so first).
          Err(StoreError::Decrypt(_)) if key.is_some() => return Err(corrupt("fails authentication")),
          Err(err) => return Err(err),
        }
      }
      // Flags from a newer build: an upgrade is due, not a damaged chunk.
      f => return Err(StoreError::ArchiveVersion { what: "backup chunk", found: u16::from(f), max: u16::from(FLAG_ZSTD | FLAG_ENCRYPTED) }),
    };
    // No chunk is longer than MAX: a forged one that decompresses to more is refused before it is all inflated.
    let bytes =
      zstd::bulk::decompress(&packed, MAX as usize).map_err(|_| corrupt("does not decompress within 64 KiB"))?;
    if keyed_id(key, self.session, &bytes) != id {
      return Err(corrupt("content does not match its name"));
    }
    Ok(bytes)
  }
}
