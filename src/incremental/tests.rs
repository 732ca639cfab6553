//! A LevelDB-like profile evolving over 10 backups: the log grows by appends, tables are rewritten by
//! compactions, files come and go. Incremental versions are measured against whole archives.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::archive::{pack_entries, Data, Entry, PackOptions};

pub(crate) struct Rng(pub u64);

impl Rng {
  pub fn bytes(&mut self, n: usize) -> Vec<u8> {
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

pub(crate) fn file(path: &str, bytes: Vec<u8>) -> Entry {
  Entry { path: path.into(), mode: 0o600, mtime: 1_764_000_000, data: Data::File(bytes) }
}

fn dir(path: &str) -> Entry {
  Entry { path: path.into(), mode: 0o700, mtime: 1_764_000_000, data: Data::Dir }
}

const CODEC: ChunkCodec = ChunkCodec { keys: None, session: "s", level: 3 };

const IDB: &str = "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb";

/// Version `v` of the profile: the log holds every record so far; every 4th version a compaction moves the log's
/// older half into a new table and drops the oldest table.
pub(crate) fn profile(v: usize, rng: &mut Rng, log: &mut Vec<u8>, tables: &mut Vec<(String, Vec<u8>)>) -> Vec<Entry> {
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
  let mut packs: HashMap<String, Vec<u8>> = HashMap::new();
  let mut known: HashMap<ChunkId, Location> = HashMap::new();
  let mut manifests = Vec::new();
  let (mut whole_total, mut incremental_total) = (0u64, 0u64);
  for v in 0..10 {
    let entries = profile(v, &mut rng, &mut log, &mut tables);
    let whole = pack_entries(&entries, &PackOptions::default(), "s", 0, v as u64).unwrap().bytes.len() as u64;
    let plan = plan(&CODEC, v as u64, 0, &entries, &known, &HashSet::new()).unwrap();
    let sealed = plan.manifest.seal(None).unwrap();
    let uploaded = sealed.len() as u64 + plan.manifest.uploaded_bytes;
    packs.extend(plan.packs.clone());
    known = plan.manifest.locations.clone().into_iter().collect();
    whole_total += whole;
    incremental_total += uploaded;
    eprintln!("v{v}: whole {whole} B, uploaded {uploaded} B ({} new chunks)", plan.manifest.new_chunks);
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
    let manifest = Manifest::open(sealed, None, "s").unwrap();
    let object = |id: &str| {
      let at = &manifest.locations[id];
      packs[&at.pack][at.offset as usize..(at.offset + at.len) as usize].to_vec()
    };
    let rebuilt = rebuild(&manifest, |id| CODEC.decode(&object(id), id)).unwrap();
    assert_eq!(&rebuilt, entries, "version {v} restores byte for byte");
  }
}

#[test]
fn damaged_chunks_and_manifests_are_refused() {
  let bytes = Rng(7).bytes(50_000);
  let id = CODEC.id(&bytes);
  let mut object = CODEC.encode(&id, &bytes).unwrap();
  assert_eq!(CODEC.decode(&object, &id).unwrap(), bytes);
  assert_eq!(CODEC.decode(&object, &CODEC.id(b"other")).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  let last = object.len() - 1;
  object[last] ^= 1;
  assert_eq!(CODEC.decode(&object, &id).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");

  let plan = plan(&CODEC, 1, 2, &[dir("Default"), file("Default/x", bytes)], &HashMap::new(), &HashSet::new()).unwrap();
  let mut sealed = plan.manifest.seal(None).unwrap();
  assert_eq!(Manifest::open(&sealed, None, "s").unwrap(), plan.manifest);
  assert_eq!(Manifest::open(&sealed, None, "t").unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  sealed[40] ^= 1;
  assert_eq!(Manifest::open(&sealed, None, "s").unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
  let missing = rebuild(&plan.manifest, |id| Err(crate::error::StoreError::SessionNotFound(id.into())));
  assert!(missing.is_err(), "a missing chunk fails the rebuild");
}

#[test]
fn forged_manifests_and_chunks_are_bounded_before_they_are_allocated() {
  let bytes = Rng(9).bytes(10_000);
  let mut plan = plan(&CODEC, 1, 0, &[file("Default/x", bytes.clone())], &HashMap::new(), &HashSet::new()).unwrap();
  // One chunk id listed ten million times, under a size that says one chunk.
  let id = plan.manifest.entries[0].chunks.as_ref().unwrap()[0].clone();
  plan.manifest.entries[0].chunks = Some(vec![id; 10_000_000]);
  let (_, pack) = &plan.packs[0];
  let object = |id: &str| CODEC.decode(&pack[..], id);
  let err = rebuild(&plan.manifest, object).unwrap_err();
  assert_eq!(err.code(), "ERR_ARCHIVE_CORRUPT", "{err}");

  // Sizes that would wrap a sum under a limit saturate instead.
  plan.manifest.entries.push(plan.manifest.entries[0].clone());
  for e in &mut plan.manifest.entries {
    e.size = u64::MAX / 2 + 1;
  }
  assert_eq!(plan.manifest.files_bytes(), u64::MAX);

  // A chunk that decompresses past the largest chunk there can be.
  let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
  let mut forged = b"WWCK\x01".to_vec();
  forged.extend_from_slice(&bomb);
  assert_eq!(CODEC.decode(&forged, &CODEC.id(&[0u8; 1 << 20])).unwrap_err().code(), "ERR_ARCHIVE_CORRUPT");
}

#[test]
fn a_chunk_shared_by_two_files_is_uploaded_once() {
  let shared = Rng(3).bytes(40_000);
  let entries = [file("Default/a", shared.clone()), file("Default/b", shared)];
  let plan = plan(&CODEC, 1, 0, &entries, &HashMap::new(), &HashSet::new()).unwrap();
  let all: usize = plan.manifest.entries.iter().map(|e| e.chunks.as_ref().map_or(0, Vec::len)).sum();
  assert_eq!(plan.manifest.new_chunks as usize * 2, all);
  assert_eq!(plan.manifest.locations.len() as u32, plan.manifest.new_chunks);
  assert_eq!(plan.packs.len(), 1);
  let (_, pack) = &plan.packs[0];
  assert_eq!(
    pack.len() as u64,
    plan.manifest.locations.values().map(|l| l.len).sum::<u64>(),
    "one pack, each chunk once"
  );
}

#[test]
fn keyed_chunks_and_manifests_are_encrypted_named_by_key_and_bound_to_their_session() {
  use crate::archive::{Key, Keyring};
  let (old, new) = (Key::new([1; 32]), Key::new([2; 32]));
  let ring = Keyring::new(new.clone(), vec![old.clone()]);
  let by_old = Keyring::new(old, vec![]);
  let codec = |keys, session| ChunkCodec { keys: Some(keys), session, level: 3 };
  let bytes = b"a login record that must not be readable in the bucket".repeat(50);
  let id = codec(&by_old, "s").id(&bytes);
  assert_ne!(id, CODEC.id(&bytes), "names are keyed: equal content is not recognisable across keys");
  let object = codec(&by_old, "s").encode(&id, &bytes).unwrap();
  assert!(!object.windows(20).any(|w| w == &bytes[..20]), "stored encrypted");
  assert_eq!(codec(&ring, "s").decode(&object, &id).unwrap(), bytes, "read under a previous key");
  let elsewhere = codec(&ring, "t").decode(&object, &id).unwrap_err();
  assert_eq!(elsewhere.code(), "ERR_ARCHIVE_CORRUPT", "bound to its session: {elsewhere}");
  assert_ne!(codec(&ring, "t").id(&bytes), codec(&ring, "s").id(&bytes), "names differ between sessions");
  assert_eq!(CODEC.decode(&object, &id).unwrap_err().code(), "ERR_DECRYPT", "no key, no read");
  let plain = CODEC.encode(&CODEC.id(&bytes), &bytes).unwrap();
  assert_eq!(codec(&ring, "s").decode(&plain, &CODEC.id(&bytes)).unwrap_err().code(), "ERR_DECRYPT", "plain refused");

  let plan = plan(&codec(&ring, "s"), 1, 2, &[file("Default/x", bytes)], &HashMap::new(), &HashSet::new()).unwrap();
  let sealed = plan.manifest.seal(Some(&ring)).unwrap();
  Manifest::check(&sealed).unwrap();
  assert_eq!(Manifest::key_id(&sealed), Some(new.id_hex()));
  assert_eq!(Manifest::open(&sealed, Some(&ring), "s").unwrap(), plan.manifest);
  assert_eq!(Manifest::open(&sealed, None, "s").unwrap_err().code(), "ERR_DECRYPT");
}

/// The profile above, one version per call.
pub(crate) struct Evolving {
  rng: Rng,
  log: Vec<u8>,
  tables: Vec<(String, Vec<u8>)>,
  version: usize,
}

impl Evolving {
  pub fn new(seed: u64) -> Self {
    Self { rng: Rng(seed), log: Vec::new(), tables: Vec::new(), version: 0 }
  }

  pub fn next_version(&mut self) -> Vec<Entry> {
    let entries = profile(self.version, &mut self.rng, &mut self.log, &mut self.tables);
    self.version += 1;
    entries
  }
}

pub(crate) fn now_ms_for_tests() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
