//! A damaged pack on the in-memory tier, across "restarts" (fresh `Backups` over one bucket, nothing remembered
//! in memory): the damage is marked in the bucket, never reused, repaired from the primary's data, and a prune
//! keeps the newest version that reads whole.

use std::collections::BTreeSet;

use super::*;
use crate::archive::{pack_entries, read_entries, Entry};
use crate::incremental::tests::Evolving;
use crate::incremental::Repaired;
use crate::tier::memory::Memory;

fn key() -> SessionKey {
  SessionKey::parse("s").unwrap()
}

/// A process of its own: a fresh `Backups` (and repo) over the shared bucket.
fn process(memory: &Arc<Memory>, keep: usize) -> Backups {
  Backups::open(memory.clone(), Retention { keep, keep_within_ms: None }, true, PackOptions::default())
}

fn seal(entries: &[Entry], at: u64) -> Vec<u8> {
  pack_entries(entries, &PackOptions::default(), "s", 0, at).unwrap().bytes
}

fn keys_under(memory: &Memory, prefix: &str) -> BTreeSet<String> {
  memory.objects.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect()
}

fn entries_of(sealed: &[u8]) -> Vec<Entry> {
  let mut entries = read_entries(sealed, None, &PackOptions::default().limits, "s").unwrap().1;
  entries.sort_by(|a, b| a.path.cmp(&b.path));
  entries
}

async fn reads(backups: &Backups, version: &Version) -> Result<Vec<Entry>> {
  Ok(entries_of(&backups.read(version).await?.expect("listed")))
}

/// Two versions, the second's own pack with one byte flipped (its first chunk): returns the two saves' entries
/// and the damaged pack's key.
async fn damaged_history(memory: &Arc<Memory>) -> (Vec<Entry>, Vec<Entry>, String) {
  let backups = process(memory, 2);
  let mut profile = Evolving::new(26);
  let (first, second) = (profile.next_version(), profile.next_version());
  backups.write(&key(), seal(&first, 1)).await.unwrap();
  let before = keys_under(memory, "~/s/packs/");
  backups.write(&key(), seal(&second, 2)).await.unwrap();
  let added: Vec<String> = keys_under(memory, "~/s/packs/").difference(&before).cloned().collect();
  assert_eq!(added.len(), 1, "one pack per backup");
  memory.objects.lock().unwrap().get_mut(&added[0]).unwrap().0[20] ^= 1;
  (first, second, added[0].clone())
}

#[tokio::test]
async fn a_damaged_chunk_is_never_reused_across_processes_and_a_prune_keeps_the_newest_readable_version() {
  let memory = Arc::new(Memory::default());
  let (first, second, victim) = damaged_history(&memory).await;

  // A restarted service saves the same content again (a new save): nothing marks the damage yet, so the new
  // version reuses the damaged chunk; its prune reads the kept versions back, finds them damaged, marks the
  // copy and keeps the last version written before the damage instead of deleting it.
  let restarted = process(&memory, 2);
  restarted.write(&key(), seal(&second, 3)).await.unwrap();
  let versions = restarted.versions(&key()).await.unwrap();
  assert_eq!(versions.iter().map(|v| v.ms).collect::<Vec<_>>(), [1, 2, 3], "version 1, the only readable one, kept");
  assert_eq!(reads(&restarted, &versions[0]).await.unwrap(), sorted(&first));
  for damaged in &versions[1..] {
    assert_eq!(reads(&restarted, damaged).await.unwrap_err().code(), "ERR_ARCHIVE_CORRUPT", "{}", damaged.key);
  }
  let marks = keys_under(&memory, "~/s/damaged/");
  let victim_id = victim.rsplit('/').next().unwrap();
  assert_eq!(marks.len(), 1, "{marks:?}");
  assert!(marks.iter().all(|m| m.starts_with(&format!("~/s/damaged/{victim_id}."))), "{marks:?}");
  assert!(memory.bytes(&victim).is_some(), "a read deletes nothing");

  // Another process (nothing in memory): the mark keeps it from reusing the copy; its version reads whole and
  // the versions before it go by the retention.
  let later = process(&memory, 2);
  let written = later.write(&key(), seal(&second, 4)).await.unwrap();
  assert!(written.uploaded_bytes > memory.bytes(&written.key).unwrap().len() as u64, "the damaged chunk packed afresh");
  let versions = later.versions(&key()).await.unwrap();
  assert_eq!(versions.iter().map(|v| v.ms).collect::<Vec<_>>(), [3, 4]);
  assert_eq!(reads(&later, &versions[1]).await.unwrap(), sorted(&second));
  assert_eq!(entries_of(&later.newest_good(&key()).await.unwrap().unwrap()), sorted(&second));

  // A repair from the primary's copy rewrites version 3 (same time, a name of its own) to read whole.
  let repaired = process(&memory, 2).repair(&key(), seal(&second, 4)).await.unwrap();
  assert_eq!(repaired.len(), 1, "only the damaged version: {repaired:?}");
  assert_eq!(repaired[0].0, versions[0].key);
  let Ok(Repaired::Rewritten { key: rewritten, chunks: 1 }) = &repaired[0].1 else { panic!("{repaired:?}") };
  let versions = later.versions(&key()).await.unwrap();
  assert_eq!(versions.iter().map(|v| v.ms).collect::<Vec<_>>(), [3, 4]);
  assert_eq!(&versions[0].key, rewritten);
  for version in &versions {
    assert_eq!(reads(&later, version).await.unwrap(), sorted(&second), "{}", version.key);
  }
  assert!(process(&memory, 2).repair(&key(), seal(&second, 4)).await.unwrap().is_empty(), "nothing left to repair");

  // A mark lives as long as its pack (other chunks of it are still read); a mark of a pack gone is collected.
  let orphan = format!("~/s/damaged/{}.{}", "a".repeat(64), "b".repeat(64));
  memory.objects.lock().unwrap().insert(orphan.clone(), (Vec::new(), 0));
  later.collect(&key()).await.unwrap();
  assert!(memory.bytes(&victim).is_some());
  assert_eq!(keys_under(&memory, "~/s/damaged/"), marks);
}

#[tokio::test]
async fn a_backup_of_the_save_a_damaged_version_holds_writes_it_again() {
  let memory = Arc::new(Memory::default());
  let (_, second, _) = damaged_history(&memory).await;
  let reader = process(&memory, 2);
  let damaged = reader.versions(&key()).await.unwrap().pop().unwrap();
  assert_eq!(reads(&reader, &damaged).await.unwrap_err().code(), "ERR_ARCHIVE_CORRUPT", "a read marks it");

  // The same save backed up again (the CLI's `backup`, another process): not skipped as held.
  let written = process(&memory, 2).write(&key(), seal(&second, 2)).await.unwrap();
  assert!(written.uploaded_bytes > 0);
  assert_ne!(written.key, damaged.key, "a name of its own");
  assert!(memory.bytes(&damaged.key).is_none(), "the damaged manifest goes once its replacement is written");
  let versions = reader.versions(&key()).await.unwrap();
  assert_eq!(versions.iter().map(|v| v.ms).collect::<Vec<_>>(), [1, 2]);
  assert_eq!(reads(&reader, &versions[1]).await.unwrap(), sorted(&second));
  // Once whole, the same save is held again: nothing written.
  let again = process(&memory, 2).write(&key(), seal(&second, 2)).await.unwrap();
  assert_eq!((again.key, again.uploaded_bytes), (versions[1].key.clone(), 0));
}

fn sorted(entries: &[Entry]) -> Vec<Entry> {
  let mut sorted = entries.to_vec();
  sorted.sort_by(|a, b| a.path.cmp(&b.path));
  sorted
}
