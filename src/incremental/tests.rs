//! A LevelDB-like profile evolving over 10 backups: the log grows by appends, tables are rewritten by
//! compactions, files come and go. Incremental versions are measured against whole archives.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::archive::{pack_entries, Data, Entry, PackOptions};

struct Rng(u64);

impl Rng {
  fn bytes(&mut self, n: usize) -> Vec<u8> {
    (0..n)
      .map(|_| {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as u8
      })
      .collect()
  }
}

fn file(path: &str, bytes: Vec<u8>) -> Entry {
  Entry { path: path.into(), mode: 0o600, mtime: 1_764_000_000, data: Data::File(bytes) }
}

fn dir(path: &str) -> Entry {
  Entry { path: path.into(), mode: 0o700, mtime: 1_764_000_000, data: Data::Dir }
}

const IDB: &str = "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb";

/// Version `v` of the profile: the log holds every record so far; every 4th version a compaction moves the log's
/// older half into a new table and drops the oldest table.
fn profile(v: usize, rng: &mut Rng, log: &mut Vec<u8>, tables: &mut Vec<(String, Vec<u8>)>) -> Vec<Entry> {
  if v == 0 {
    log.extend(rng.bytes(200_000));
    tables.push((format!("{IDB}/000005.ldb"), rng.bytes(150_000)));
  } else {
    log.extend(rng.bytes(3_000)); // ten minutes of chat
  }
  if v > 0 && v.is_multiple_of(4) {
    let moved: Vec<u8> = log.drain(..log.len() / 2).collect();
    let mut merged = tables.last().map(|(_, t)| t.clone()).unwrap_or_default();
    merged.extend(moved);
    tables.push((format!("{IDB}/{:06}.ldb", 5 + v * 2), merged));
    if tables.len() > 2 {
      tables.remove(0);
    }
  }
  let mut entries = vec![dir("Default"), dir("Default/IndexedDB"), dir(IDB)];
  entries.push(file(&format!("{IDB}/000003.log"), log.clone()));
  entries.extend(tables.iter().map(|(name, t)| file(name, t.clone())));
  entries.push(file(&format!("{IDB}/CURRENT"), format!("MANIFEST-{v:06}\n").into_bytes()));
  entries.push(dir("Default/Local Storage"));
  entries.push(file("Default/Local Storage/leveldb/000003.log", rng.bytes(30_000 + v * 50)));
  entries
}

#[test]
fn ten_versions_upload_a_fraction_and_each_restores_whole() {
  let (mut rng, mut log, mut tables) = (Rng(0x9e37_79b9_7f4a_7c15), Vec::new(), Vec::new());
  let mut stored: HashMap<ChunkId, Vec<u8>> = HashMap::new();
  let mut manifests = Vec::new();
  let (mut whole_total, mut incremental_total) = (0u64, 0u64);
  for v in 0..10 {
    let entries = profile(v, &mut rng, &mut log, &mut tables);
    let whole = pack_entries(&entries, &PackOptions::default(), "s", 0, v as u64).unwrap().bytes.len() as u64;
    let known: HashSet<ChunkId> = stored.keys().cloned().collect();
    let plan = plan("s", v as u64, 0, &entries, &known);
    let sealed = plan.manifest.seal().unwrap();
    let mut uploaded = sealed.len() as u64;
    for (id, bytes) in &plan.new_chunks {
      let object = encode_chunk(bytes, 3).unwrap();
      uploaded += object.len() as u64;
      stored.insert(id.clone(), object);
    }
    whole_total += whole;
    incremental_total += uploaded;
    eprintln!("v{v}: whole {whole} B, uploaded {uploaded} B ({} new chunks)", plan.new_chunks.len());
    // Measured ~10 % per ten-minute version, most of it the Local Storage log rewritten whole (30 KB fresh).
    if v > 0 && !v.is_multiple_of(4) {
      assert!(uploaded * 100 <= whole * 15, "v{v}: uploaded {uploaded} of a {whole} B archive");
    }
    manifests.push((sealed, entries));
  }
  // Measured ~19 % of ten whole archives, ~2.0x one archive (compactions included).
  assert!(
    incremental_total * 100 <= whole_total * 25,
    "{incremental_total} B for 10 versions vs {whole_total} B whole"
  );
  let one_version = whole_total / 10;
  assert!(incremental_total * 10 <= one_version * 22, "stored {incremental_total} B, one archive {one_version} B");
  for (v, (sealed, entries)) in manifests.iter().enumerate() {
    let manifest = Manifest::open(sealed).unwrap();
    let rebuilt = rebuild(&manifest, |id| decode_chunk(&stored[id], id)).unwrap();
    assert_eq!(&rebuilt, entries, "version {v} restores byte for byte");
  }
}

#[test]
fn damaged_chunks_and_manifests_are_refused() {
  let bytes = Rng(7).bytes(50_000);
  let id = chunk_id(&bytes);
  let mut object = encode_chunk(&bytes, 3).unwrap();
  assert_eq!(decode_chunk(&object, &id).unwrap(), bytes);
  assert_eq!(decode_chunk(&object, &chunk_id(b"other")).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  let last = object.len() - 1;
  object[last] ^= 1;
  assert_eq!(decode_chunk(&object, &id).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");

  let plan = plan("s", 1, 2, &[dir("Default"), file("Default/x", bytes)], &HashSet::new());
  let mut sealed = plan.manifest.seal().unwrap();
  assert_eq!(Manifest::open(&sealed).unwrap(), plan.manifest);
  sealed[40] ^= 1;
  assert_eq!(Manifest::open(&sealed).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  let missing = rebuild(&plan.manifest, |id| Err(crate::error::StoreError::SessionNotFound(id.into())));
  assert!(missing.is_err(), "a missing chunk fails the rebuild");
}

#[test]
fn a_chunk_shared_by_two_files_is_uploaded_once() {
  let shared = Rng(3).bytes(40_000);
  let entries = [file("Default/a", shared.clone()), file("Default/b", shared)];
  let plan = plan("s", 1, 0, &entries, &HashSet::new());
  let all: usize = plan.manifest.entries.iter().map(|e| e.chunks.as_ref().map_or(0, Vec::len)).sum();
  assert_eq!(plan.new_chunks.len() * 2, all);
}
