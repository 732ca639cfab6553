//! The lock protocol on a bucket whose clock is tokio's (paused: minutes pass in no time, deterministically):
//! heartbeats keep a live holder's lock fresh, a dead holder's lock is taken over within a few heartbeats, and a
//! holder that stalls steps down on its own clock, never rewrites a lock a taker removed, and deletes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;
use crate::incremental::tests::Evolving;
use crate::incremental::Repo;
use crate::tier::ObjectTier;

/// A listing prefix, and the (reached, release) pair of the listing it holds.
type Gate = (String, Arc<Notify>, Arc<Notify>);

/// A bucket stamping last-modified times by tokio's clock. Puts of keys holding `stuck` hang (a holder that
/// cannot reach the bucket, or is stopped) and land once it is cleared; the next listing of `hold_list` is read
/// and then held until released (a prune stopped mid-way, its view of the bucket taken before it stopped).
#[derive(Debug)]
struct Bucket {
  epoch: Instant,
  objects: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
  stuck: Mutex<Option<String>>,
  hold_list: Mutex<Option<Gate>>,
  puts: Mutex<Vec<String>>,
}

impl Bucket {
  fn new() -> Arc<Self> {
    Arc::new(Self {
      epoch: Instant::now(),
      objects: Mutex::default(),
      stuck: Mutex::default(),
      hold_list: Mutex::default(),
      puts: Mutex::default(),
    })
  }

  fn now_ms(&self) -> u64 {
    1_800_000_000_000 + self.epoch.elapsed().as_millis() as u64
  }

  fn keys(&self, part: &str) -> Vec<String> {
    self.objects.lock().unwrap().keys().filter(|k| k.contains(part)).cloned().collect()
  }

  fn hold_list(&self, prefix: &str) -> (Arc<Notify>, Arc<Notify>) {
    let (reached, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    *self.hold_list.lock().unwrap() = Some((prefix.into(), reached.clone(), release.clone()));
    (reached, release)
  }
}

#[async_trait]
impl ObjectTier for Bucket {
  async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(self.objects.lock().unwrap().get(key).map(|(b, _)| b.clone()))
  }
  async fn head(&self, key: &str, len: usize) -> Result<Option<Vec<u8>>> {
    Ok(self.get(key).await?.map(|b| b[..len.min(b.len())].to_vec()))
  }
  async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
    while self.stuck.lock().unwrap().as_deref().is_some_and(|p| key.contains(p)) {
      tokio::time::sleep(Duration::from_millis(100)).await;
    }
    self.puts.lock().unwrap().push(key.to_owned());
    self.objects.lock().unwrap().insert(key.to_owned(), (bytes, self.now_ms()));
    Ok(())
  }
  async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let listed: Vec<ObjectMeta> = {
      let objects = self.objects.lock().unwrap();
      let found = objects.iter().filter(|(k, _)| k.starts_with(prefix));
      found.map(|(k, (v, at))| ObjectMeta { key: k.clone(), size: v.len() as u64, modified_ms: *at }).collect()
    };
    let gate = self.hold_list.lock().unwrap().take_if(|(p, _, _)| p == prefix);
    if let Some((_, reached, release)) = gate {
      reached.notify_one();
      release.notified().await;
    }
    Ok(listed)
  }
  async fn delete(&self, keys: &[String]) -> Result<()> {
    let mut objects = self.objects.lock().unwrap();
    keys.iter().for_each(|k| drop(objects.remove(k)));
    Ok(())
  }
  fn kind(&self) -> &'static str {
    "memory"
  }
}

fn session() -> SessionKey {
  SessionKey::parse("s").unwrap()
}

fn repo(bucket: &Arc<Bucket>) -> Repo {
  Repo::new(bucket.clone(), None, 3)
}

#[tokio::test(start_paused = true)]
async fn a_live_holder_stays_fresh_for_minutes_and_a_dead_ones_lock_is_taken_over_within_a_few_heartbeats() {
  let bucket = Bucket::new();
  let (pruner, backup) = (repo(&bucket), repo(&bucket));
  let (prune, others) = pruner.take_lock(&session(), LockKind::Prune).await.unwrap();
  assert!(others.is_empty());
  tokio::time::sleep(Duration::from_secs(600)).await;
  let (look, seen) = backup.take_lock(&session(), LockKind::Backup).await.unwrap();
  assert_eq!(seen, vec![LockKind::Prune], "refreshed: fresh after ten minutes");
  look.release(bucket.as_ref()).await;
  assert!(prune.holds());
  // The pruning process dies (kill -9): its lock stays, no longer rewritten.
  drop(prune);
  let died = Instant::now();
  let lock = backup.lock_for_backup(&session()).await.unwrap();
  let waited = died.elapsed();
  assert!(waited > STALE - HEARTBEAT && waited <= STALE + Duration::from_secs(1), "{waited:?}");
  lock.release(bucket.as_ref()).await;
  // A crashed backup's lock likewise holds a prune off for seconds, not an hour.
  let (crashed, _) = backup.take_lock(&session(), LockKind::Backup).await.unwrap();
  drop(crashed);
  let (prune, others) = pruner.take_lock(&session(), LockKind::Prune).await.unwrap();
  assert_eq!(others, vec![LockKind::Backup], "the dead backup's lock, fresh yet");
  prune.release(bucket.as_ref()).await;
  tokio::time::sleep(STALE + Duration::from_secs(1)).await;
  let (prune, others) = pruner.take_lock(&session(), LockKind::Prune).await.unwrap();
  assert!(others.is_empty(), "{others:?}");
  assert_eq!(bucket.keys("/locks/"), vec![prune.key.clone()], "the stale locks were removed by the taker");
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_cannot_refresh_steps_down_by_its_own_clock_and_never_recreates_a_removed_lock() {
  let bucket = Bucket::new();
  let pruner = repo(&bucket);
  let (prune, _) = pruner.take_lock(&session(), LockKind::Prune).await.unwrap();
  *bucket.stuck.lock().unwrap() = Some("/locks/prune-".into());
  tokio::time::sleep(RENEW_DEADLINE - Duration::from_millis(100)).await;
  assert!(prune.holds(), "within its deadline");
  assert!(prune.confirm(&pruner, &session()).await.unwrap().is_empty());
  tokio::time::sleep(Duration::from_millis(200)).await;
  assert!(!prune.holds(), "past its deadline by its own clock, before anyone may find the lock stale");
  let err = prune.confirm(&pruner, &session()).await.unwrap_err();
  assert_eq!(err.code(), "ERR_BACKUP_LOCK_LOST");
  // A taker removes the stale lock; then the refresh that was stuck lands, late: it does not count.
  tokio::time::sleep(STALE - RENEW_DEADLINE + Duration::from_secs(1)).await;
  bucket.delete(std::slice::from_ref(&prune.key)).await.unwrap();
  *bucket.stuck.lock().unwrap() = None;
  tokio::time::sleep(Duration::from_millis(200)).await;
  assert!(!prune.holds(), "a refresh that landed after the lock could be stale is not counted");
  bucket.delete(std::slice::from_ref(&prune.key)).await.unwrap();
  let puts = bucket.puts.lock().unwrap().len();
  tokio::time::sleep(HEARTBEAT * 10).await;
  assert_eq!(bucket.puts.lock().unwrap().len(), puts, "never written again");
  assert!(bucket.keys("/locks/").is_empty());
  assert_eq!(prune.confirm(&pruner, &session()).await.unwrap_err().code(), "ERR_BACKUP_LOCK_LOST");
}

#[tokio::test(start_paused = true)]
async fn a_prune_stalled_past_its_lock_resumes_after_a_backup_took_over_and_deletes_nothing() {
  let bucket = Bucket::new();
  let (pruner, writer) = (repo(&bucket), repo(&bucket));
  let mut profile = Evolving::new(21);
  let first = profile.next_version();
  writer.write(&session(), "s/1800000000000-00000001.wwmf", first, 1, 10).await.unwrap();
  // The prune has listed the versions (one) when it stalls: neither its listing's reply nor its heartbeat get
  // through (a SIGSTOPped process), long enough for its lock to go stale.
  let (reached, release) = bucket.hold_list("s/");
  let prune = tokio::spawn(async move { pruner.collect(&session()).await });
  reached.notified().await;
  *bucket.stuck.lock().unwrap() = Some("/locks/prune-".into());
  let stalled = Instant::now();
  // A backup meanwhile waits for the prune's lock to go stale, takes over, and writes a version whose new pack
  // the stalled prune's listing of versions does not account for.
  let second = profile.next_version();
  let key = "s/1800000000001-00000002.wwmf";
  writer.write(&session(), key, second.clone(), 2, 10).await.unwrap();
  assert!(stalled.elapsed() > STALE - HEARTBEAT, "the backup waited for the prune's lock to go stale");
  let packs = bucket.keys("/packs/");
  assert_eq!(packs.len(), 2);
  // The prune resumes: the refresh it had in flight lands late, recreating its lock the backup removed; its
  // listing comes back; it lists the packs (the new one, unreferenced by the versions it listed) and would
  // delete it, but stops on its own clock first.
  assert!(bucket.keys("/locks/").is_empty(), "the backup removed the stale lock, then released its own");
  *bucket.stuck.lock().unwrap() = None;
  tokio::time::sleep(Duration::from_millis(300)).await;
  assert_eq!(bucket.keys("/locks/prune-").len(), 1);
  release.notify_one();
  let err = prune.await.unwrap().unwrap_err();
  assert_eq!(err.code(), "ERR_BACKUP_LOCK_LOST", "{err}");
  assert_eq!(bucket.keys("/packs/"), packs, "nothing deleted");
  let manifest = writer.manifest(&session(), key).await.unwrap().unwrap();
  let entries = writer.rebuild(&session(), manifest).await.unwrap();
  assert_eq!(entries.len(), second.len(), "the backup's version restores whole");
  // A later prune, with the bucket as it is, deletes nothing either (both versions read every pack).
  let (prune, _) = writer.take_lock(&session(), LockKind::Prune).await.unwrap();
  assert_eq!(writer.collect_locked(&session(), &prune).await.unwrap().objects, 0);
  prune.release(bucket.as_ref()).await;
  assert_eq!(bucket.keys("/packs/"), packs);
}

#[tokio::test(start_paused = true)]
async fn a_backup_stalled_past_its_lock_commits_nothing() {
  let bucket = Bucket::new();
  let (writer, pruner) = (repo(&bucket), repo(&bucket));
  let mut profile = Evolving::new(22);
  let key = "s/1800000000000-00000001.wwmf";
  // The backup's reads of the bucket hang past its deadline (the versions listing it reads chunks from).
  let (reached, release) = bucket.hold_list("s/");
  let entries = profile.next_version();
  let backup = tokio::spawn(async move { writer.write(&session(), key, entries, 1, 10).await });
  reached.notified().await;
  *bucket.stuck.lock().unwrap() = Some("/locks/backup-".into());
  tokio::time::sleep(STALE + Duration::from_secs(1)).await;
  // A prune meanwhile finds the backup's lock stale and removes it.
  let (prune, others) = pruner.take_lock(&session(), LockKind::Prune).await.unwrap();
  assert!(others.is_empty(), "{others:?}");
  pruner.collect_locked(&session(), &prune).await.unwrap();
  prune.release(bucket.as_ref()).await;
  *bucket.stuck.lock().unwrap() = None;
  release.notify_one();
  let err = backup.await.unwrap().unwrap_err();
  assert_eq!(err.code(), "ERR_BACKUP_LOCK_LOST", "{err}");
  assert!(bucket.keys(".wwmf").is_empty(), "no manifest over packs a prune may have judged unreferenced");
}

#[test]
fn the_bounds_leave_a_margin_between_a_holders_last_act_and_a_takeover() {
  assert!(HEARTBEAT * 2 <= RENEW_DEADLINE, "a holder may miss a heartbeat and still hold");
  assert!(RENEW_DEADLINE + TIER_RESOLUTION * 2 < STALE, "3 s for a confirmed request to reach the tier");
  assert!(STALE + HEARTBEAT < WAIT_FOR_PRUNE, "a backup outwaits a dead prune's lock");
  assert!(!stale(1_000, 1_000 + STALE.as_millis() as u64));
  assert!(stale(1_000, 1_001 + STALE.as_millis() as u64));
}
