//! A backup version's manifest: the archive's entries with each file as a chunk list, and the save time. It is
//! sealed like an archive (BLAKE3 over everything) and written after all its chunks, so a version that exists
//! is whole.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::chunks::{chunk_id, split, ChunkId};
use crate::archive::{Data, Entry};
use crate::error::{Result, StoreError};

const MAGIC: &[u8; 4] = b"WWMF";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
  pub path: String,
  pub mode: u32,
  pub mtime: u64,
  /// `None` for a directory; a file's chunks in order (empty for an empty file).
  pub chunks: Option<Vec<ChunkId>>,
  pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
  pub version: u16,
  pub session: String,
  pub created_ms: u64,
  pub source_bytes: u64,
  pub entries: Vec<ManifestEntry>,
}

/// What a backup must upload: the chunks its manifest names that are not `known`, each once.
pub struct Plan {
  pub manifest: Manifest,
  /// (id, bytes) of the chunks to upload.
  pub new_chunks: Vec<(ChunkId, Vec<u8>)>,
  /// Sum of all files' sizes: what a whole-archive backup would carry before compression.
  pub logical_bytes: u64,
}

/// Splits the entries into chunks and names the ones `known` lacks.
pub fn plan(session: &str, created_ms: u64, source_bytes: u64, entries: &[Entry], known: &HashSet<ChunkId>) -> Plan {
  let mut seen: HashSet<ChunkId> = HashSet::new();
  let (mut new_chunks, mut logical_bytes, mut out) = (Vec::new(), 0, Vec::new());
  for entry in entries {
    let (chunks, size) = match &entry.data {
      Data::Dir => (None, 0),
      Data::File(bytes) => {
        logical_bytes += bytes.len() as u64;
        let ids = split(bytes)
          .into_iter()
          .map(|(at, len)| {
            let piece = &bytes[at..at + len];
            let id = chunk_id(piece);
            if !known.contains(&id) && seen.insert(id.clone()) {
              new_chunks.push((id.clone(), piece.to_vec()));
            }
            id
          })
          .collect();
        (Some(ids), bytes.len() as u64)
      }
    };
    out.push(ManifestEntry { path: entry.path.clone(), mode: entry.mode, mtime: entry.mtime, chunks, size });
  }
  let manifest = Manifest { version: 1, session: session.to_owned(), created_ms, source_bytes, entries: out };
  Plan { manifest, new_chunks, logical_bytes }
}

/// The entries back, fetching each chunk's bytes with `chunk` (checked against its id by the caller's decode).
pub fn rebuild(manifest: &Manifest, mut chunk: impl FnMut(&str) -> Result<Vec<u8>>) -> Result<Vec<Entry>> {
  manifest
    .entries
    .iter()
    .map(|e| {
      let data = match &e.chunks {
        None => Data::Dir,
        Some(ids) => {
          let mut bytes = Vec::with_capacity(e.size as usize);
          for id in ids {
            bytes.extend_from_slice(&chunk(id)?);
          }
          if bytes.len() as u64 != e.size {
            return Err(StoreError::ArchiveCorrupt(format!("{} rebuilt to the wrong size", e.path)));
          }
          Data::File(bytes)
        }
      };
      Ok(Entry { path: e.path.clone(), mode: e.mode, mtime: e.mtime, data })
    })
    .collect()
}

impl Manifest {
  /// `WWMF`, BLAKE3 of the rest, zstd of the JSON.
  pub fn seal(&self) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(self).map_err(|e| StoreError::Internal(e.to_string()))?;
    let body = zstd::stream::encode_all(&json[..], 3).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
  }

  pub fn open(bytes: &[u8]) -> Result<Self> {
    let corrupt = |why: &str| StoreError::ArchiveCorrupt(format!("backup manifest: {why}"));
    if bytes.len() < 36 || &bytes[..4] != MAGIC {
      return Err(corrupt("not a manifest"));
    }
    if blake3::hash(&bytes[36..]).as_bytes() != &bytes[4..36] {
      return Err(corrupt("checksum mismatch"));
    }
    let json = zstd::stream::decode_all(&bytes[36..]).map_err(|_| corrupt("does not decompress"))?;
    serde_json::from_slice(&json).map_err(|_| corrupt("unreadable"))
  }
}
