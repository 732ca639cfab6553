//! A backup version's manifest: the archive's entries with each file as a chunk list, and the save time. It is
//! sealed like an archive (BLAKE3 over everything) and written after all its chunks, so a version that exists
//! is whole.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::chunks::{split, ChunkCodec, ChunkId};
use crate::archive::crypt::{self, Keyring};
use crate::archive::{Data, Entry};
use crate::error::{Result, StoreError};

const MAGIC: &[u8; 4] = b"WWMF";
const FLAG_ENCRYPTED: u8 = 1;
/// The manifest layout this build writes and reads (newer ones fail with `ERR_ARCHIVE_VERSION`). 2: chunks in packs
/// (1, one object per chunk, was never released).
const VERSION: u16 = 2;
/// Magic, flags, BLAKE3 of the body.
const HEADER_LEN: usize = 4 + 1 + 32;
/// The largest manifest JSON read: a session at the limits (1 GiB in 8 KiB chunks, 20,000 entries) needs ~40 MB.
const MAX_JSON: u64 = 256 << 20;

/// zstd's output, refused past `max` bytes before more is inflated.
fn bounded_decompress(packed: &[u8], max: u64) -> std::io::Result<Vec<u8>> {
  use std::io::Read;
  let mut out = Vec::new();
  zstd::stream::Decoder::new(packed)?.take(max + 1).read_to_end(&mut out)?;
  if out.len() as u64 > max {
    return Err(std::io::Error::other("over the bound"));
  }
  Ok(out)
}

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
  /// When the saved archive was made.
  pub created_ms: u64,
  /// The zip it was made from.
  pub source_bytes: u64,
  pub entries: Vec<ManifestEntry>,
  /// Bytes of the pack this backup uploaded (the manifest itself not counted).
  pub uploaded_bytes: u64,
  pub new_chunks: u32,
  /// Where each chunk this version needs is stored: a pack and the chunk object's place in it.
  pub locations: BTreeMap<ChunkId, Location>,
}

/// A chunk object inside a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
  pub pack: String,
  pub offset: u64,
  pub len: u64,
}

impl Manifest {
  /// Every pack this version reads from.
  pub fn packs(&self) -> HashSet<&str> {
    self.locations.values().map(|l| l.pack.as_str()).collect()
  }

  /// Every chunk this version needs.
  pub fn chunk_ids(&self) -> impl Iterator<Item = &ChunkId> {
    self.entries.iter().flat_map(|e| e.chunks.iter().flatten())
  }

  /// Sum of the files' sizes (saturating: a forged manifest must not wrap it under a limit).
  pub fn files_bytes(&self) -> u64 {
    self.entries.iter().fold(0u64, |sum, e| sum.saturating_add(e.size))
  }
}

/// What a backup must upload: its manifest, and up to two packs: the chunks no pack holds, and the chunks moved
/// out of mostly dead packs (kept apart, so stable chunks do not share a pack with fresh data that dies fast).
pub struct Plan {
  pub manifest: Manifest,
  /// (id, bytes): chunk objects one after another, named by the BLAKE3 of the whole.
  pub packs: Vec<(String, Vec<u8>)>,
}

/// A chunk placed in a pack being built: (id, offset, length).
type Member = (ChunkId, u64, u64);

/// Splits the entries into chunks: those in `reuse` stay where they are, those in `moved` go into a pack of their
/// own, the rest into a pack of fresh chunks.
pub fn plan(
  codec: &ChunkCodec,
  created_ms: u64,
  source_bytes: u64,
  entries: &[Entry],
  reuse: &HashMap<ChunkId, Location>,
  moved: &HashSet<ChunkId>,
) -> Result<Plan> {
  let mut locations: BTreeMap<ChunkId, Location> = BTreeMap::new();
  // Fresh chunks, then moved ones: each pack's bytes and where each chunk lies in it.
  let mut building: [(Vec<u8>, Vec<Member>); 2] = Default::default();
  let mut placed: HashSet<ChunkId> = HashSet::new();
  let mut out = Vec::new();
  for entry in entries {
    let (chunks, size) = match &entry.data {
      Data::Dir => (None, 0),
      Data::File(bytes) => {
        let mut ids = Vec::new();
        for (at, len) in split(bytes) {
          let piece = &bytes[at..at + len];
          let id = codec.id(piece);
          if placed.insert(id.clone()) {
            match reuse.get(&id) {
              Some(location) => drop(locations.insert(id.clone(), location.clone())),
              None => {
                let (pack, members) = &mut building[usize::from(moved.contains(&id))];
                let object = codec.encode(&id, piece)?;
                members.push((id.clone(), pack.len() as u64, object.len() as u64));
                pack.extend_from_slice(&object);
              }
            }
          }
          ids.push(id);
        }
        (Some(ids), bytes.len() as u64)
      }
    };
    out.push(ManifestEntry { path: entry.path.clone(), mode: entry.mode, mtime: entry.mtime, chunks, size });
  }
  let (mut packs, mut new_chunks, mut uploaded_bytes) = (Vec::new(), 0, 0);
  for (pack, members) in building {
    if members.is_empty() {
      continue;
    }
    let pack_id = blake3::hash(&pack).to_hex().to_string();
    for (id, offset, len) in members {
      locations.insert(id, Location { pack: pack_id.clone(), offset, len });
      new_chunks += 1;
    }
    uploaded_bytes += pack.len() as u64;
    packs.push((pack_id, pack));
  }
  let manifest = Manifest {
    version: VERSION,
    session: codec.session.to_owned(),
    created_ms,
    source_bytes,
    entries: out,
    uploaded_bytes,
    new_chunks,
    locations,
  };
  Ok(Plan { manifest, packs })
}

/// The entries back, fetching each chunk's bytes with `chunk` (decoded and checked against its id).
pub fn rebuild(manifest: &Manifest, mut chunk: impl FnMut(&str) -> Result<Vec<u8>>) -> Result<Vec<Entry>> {
  manifest
    .entries
    .iter()
    .map(|e| {
      let data = match &e.chunks {
        None => Data::Dir,
        Some(ids) => {
          // The size is the manifest's word: a hint, capped, not an allocation to trust.
          let mut bytes = Vec::with_capacity(e.size.min(64 << 20) as usize);
          for id in ids {
            // Checked before each join: a chunk listed millions of times fails at the size, not out of memory.
            let piece = chunk(id)?;
            if bytes.len() as u64 + piece.len() as u64 > e.size {
              return Err(StoreError::ArchiveCorrupt(format!("{} rebuilds to more than its size", e.path)));
            }
            bytes.extend_from_slice(&piece);
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

fn aad(session: &str) -> Vec<u8> {
  format!("manifest {session}").into_bytes()
}

impl Manifest {
  /// `WWMF`, flags, BLAKE3 of the body, body: zstd of the JSON, sealed under the current key when keyed. The
  /// checksum is over what is stored, so `verify` checks a manifest without the key.
  pub fn seal(&self, keys: Option<&Keyring>) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(self).map_err(|e| StoreError::Internal(e.to_string()))?;
    let packed = zstd::stream::encode_all(&json[..], 3).map_err(|e| StoreError::Internal(e.to_string()))?;
    let (flags, body) = match keys {
      Some(keys) => (FLAG_ENCRYPTED, crypt::seal_box(keys.current(), &aad(&self.session), &packed)?),
      None => (0, packed),
    };
    let mut out = MAGIC.to_vec();
    out.push(flags);
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
  }

  /// Checks the checksum only: what can be known without a key.
  pub fn check(bytes: &[u8]) -> Result<()> {
    let corrupt = |why: &str| StoreError::ArchiveCorrupt(format!("backup manifest: {why}"));
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
      return Err(corrupt("not a manifest"));
    }
    if blake3::hash(&bytes[HEADER_LEN..]).as_bytes() != &bytes[5..HEADER_LEN] {
      return Err(corrupt("checksum mismatch"));
    }
    // Whole, with flags from a newer build: an upgrade is due, not a damaged manifest.
    if bytes[4] & !FLAG_ENCRYPTED != 0 {
      return Err(StoreError::ArchiveVersion { what: "backup manifest flags", found: u16::from(bytes[4]), max: u16::from(FLAG_ENCRYPTED) });
    }
    Ok(())
  }

  /// The manifest of a version of `session` (checksum checked, decrypted with `keys`).
  pub fn open(bytes: &[u8], keys: Option<&Keyring>, session: &str) -> Result<Self> {
    Self::check(bytes)?;
    let corrupt = |why: &str| StoreError::ArchiveCorrupt(format!("backup manifest: {why}"));
    let body = &bytes[HEADER_LEN..];
    let packed = match bytes[4] & FLAG_ENCRYPTED != 0 {
      true => crypt::decrypt(keys, &aad(session), body)?,
      false => crypt::refuse_plain(keys).map(|()| zeroize::Zeroizing::new(body.to_vec()))?,
    };
    let json = bounded_decompress(&packed, MAX_JSON).map_err(|_| corrupt("does not decompress within its bound"))?;
    // The version first: a newer layout may not parse as this one.
    #[derive(Deserialize)]
    struct Layout {
      version: u16,
    }
    let layout: Layout = serde_json::from_slice(&json).map_err(|_| corrupt("unreadable"))?;
    if layout.version > VERSION {
      return Err(StoreError::ArchiveVersion { what: "backup manifest", found: layout.version, max: VERSION });
    }
    if layout.version < VERSION {
      return Err(corrupt("an unreleased layout (one object per chunk) this build does not read"));
    }
    let manifest: Self = serde_json::from_slice(&json).map_err(|_| corrupt("unreadable"))?;
    if manifest.session != session {
      return Err(corrupt("belongs to another session"));
    }
    Ok(manifest)
  }

  /// The key id a manifest is sealed under, `None` when plain.
  pub fn key_id(bytes: &[u8]) -> Option<String> {
    (bytes.len() > HEADER_LEN && bytes[4] & FLAG_ENCRYPTED != 0).then(|| crypt::key_id(&bytes[HEADER_LEN..])).flatten()
  }
}
