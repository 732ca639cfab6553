use super::*;
use crate::tier::Tier;

fn key(s: &str) -> SessionKey {
  SessionKey::parse(s).unwrap()
}

const LONG: Duration = Duration::from_secs(60);

#[test]
fn records_round_trip_and_bad_ones_read_as_free() {
  let until = Stamp { boot: "b-1".into(), boot_ms: 7, wall_ms: 9 };
  let record = Record { token: "ab12".into(), until: until.clone(), generation: 1_765_000_000_000_001 };
  assert_eq!(Record::decode(&record.encode()), Some(record));
  let blank =
    Record { token: String::new(), until: Stamp { boot: String::new(), boot_ms: 0, wall_ms: 1 }, generation: 0 };
  assert_eq!(Record::decode(&blank.encode()), Some(blank));
  // An earlier version's record (no generation) reads as generation 0; one it reads of ours keeps its five fields.
  let earlier = Record::decode("wwrs-lease-1 ab12 b-1 7 9\n");
  assert_eq!(earlier, Some(Record { token: "ab12".into(), until, generation: 0 }));
  assert_eq!(Record::decode("wwrs-lease-1 ab12 b-1 7 9 x"), None);
  assert_eq!(Record::decode("wwrs-lease-1 tok"), None);
  assert_eq!(Record::decode("something else"), None);
}

#[test]
fn another_boot_is_judged_by_the_wall_clock() {
  let now = Stamp { boot: "this".into(), boot_ms: 1_000, wall_ms: 50_000 };
  let ours = Stamp { boot: "this".into(), boot_ms: 2_000, wall_ms: 0 };
  assert!(!now.past(&ours), "same boot: the boot clock decides, whatever the wall clock says");
  let theirs = Stamp { boot: "other".into(), boot_ms: 99_999, wall_ms: 40_000 };
  assert!(now.past(&theirs), "another boot: the wall clock decides");
  #[cfg(target_os = "linux")]
  assert!(!Stamp::now().boot.is_empty(), "Linux has a boot id and a boot clock");
}

#[tokio::test]
async fn one_holder_among_every_spelling_of_the_directory_and_across_a_restart() {
  let root = tempfile::tempdir().unwrap();
  let a = LocalDirTier::open(root.path().join("store")).unwrap();
  std::os::unix::fs::symlink(root.path().join("store"), root.path().join("link")).unwrap();
  let b = LocalDirTier::open(root.path().join("link")).unwrap();
  let c = LocalDirTier::open(root.path().join("store/../store")).unwrap();
  assert_eq!(a.dir(), b.dir());
  let k = key("s");
  let first = a.acquire(&k, "t1", &Hold::ttl(LONG)).await.unwrap().expect("free");
  assert_eq!(
    a.acquire(&k, "t1", &Hold::ttl(LONG)).await.unwrap(),
    Some(first),
    "the holder's take again keeps its generation"
  );
  assert!(b.acquire(&k, "t2", &Hold::ttl(LONG)).await.unwrap().is_none(), "through a link");
  assert!(c.acquire(&k, "t2", &Hold::ttl(LONG)).await.unwrap().is_none(), "through ..");
  // A restarted process (a new tier) finds the record, and the token still holds it.
  let restarted = LocalDirTier::open(root.path().join("store")).unwrap();
  assert_eq!(restarted.renew(&k, "t1", &Hold::ttl(LONG)).await.unwrap(), LeaseState::Held);
  assert!(restarted.acquire(&k, "t3", &Hold::ttl(LONG)).await.unwrap().is_none());
  a.release(&k, "t1").await.unwrap();
  assert_eq!(a.renew(&k, "t1", &Hold::ttl(LONG)).await.unwrap(), LeaseState::Lost, "released: not taken back by renew");
  let second = b.acquire(&k, "t2", &Hold::ttl(LONG)).await.unwrap().expect("released");
  assert!(second > first, "a new holder's generation is greater: {second} vs {first}");
}

#[tokio::test]
async fn an_expired_lease_is_retaken_by_its_owner_unless_another_took_it() {
  let root = tempfile::tempdir().unwrap();
  let tier = LocalDirTier::open(root.path().join("store")).unwrap();
  let k = key("s");
  let short = Duration::from_millis(30);
  assert!(tier.acquire(&k, "t1", &Hold::ttl(short)).await.unwrap().is_some());
  tokio::time::sleep(Duration::from_millis(60)).await;
  assert_eq!(tier.renew(&k, "t1", &Hold::ttl(short)).await.unwrap(), LeaseState::Retaken);
  tokio::time::sleep(Duration::from_millis(60)).await;
  let taken = tier.acquire(&k, "t2", &Hold::ttl(LONG)).await.unwrap();
  assert!(taken.is_some(), "expired: free for another");
  assert_eq!(tier.renew(&k, "t1", &Hold::ttl(short)).await.unwrap(), LeaseState::Lost);
  assert_eq!(tier.put_fenced(&k, b"old".to_vec(), "t1", &Hold::ttl(short)).await.unwrap(), LeaseState::Lost);
  assert_eq!(tier.get(&k).await.unwrap(), None, "the fenced-out write wrote nothing");
  assert_eq!(tier.put_fenced(&k, b"new".to_vec(), "t2", &Hold::ttl(LONG)).await.unwrap(), LeaseState::Held);
  assert_eq!(tier.delete_fenced(&k, "t1", &Hold::ttl(short)).await.unwrap(), LeaseState::Lost);
  assert_eq!(tier.get(&k).await.unwrap().unwrap(), b"new");
  assert_eq!(tier.delete_fenced(&k, "t2", &Hold::ttl(LONG)).await.unwrap(), LeaseState::Held);
  assert_eq!(tier.get(&k).await.unwrap(), None);
}

#[tokio::test]
async fn a_garbled_record_is_free() {
  let root = tempfile::tempdir().unwrap();
  let tier = LocalDirTier::open(root.path().join("store")).unwrap();
  let k = key("s");
  std::fs::write(tier.lease_path(&k), b"garbage").unwrap();
  assert_eq!(tier.renew(&k, "t1", &Hold::ttl(LONG)).await.unwrap(), LeaseState::Lost);
  assert!(tier.acquire(&k, "t1", &Hold::ttl(LONG)).await.unwrap().is_some());
}

/// A released lease leaves no record behind (one per session ever leased would pile up), yet reads as before:
/// the released token cannot renew or write, another takes it; a record another token holds is not removed.
#[tokio::test]
async fn a_released_lease_leaves_no_record_and_stays_released() {
  let root = tempfile::tempdir().unwrap();
  let tier = LocalDirTier::open(root.path().join("store")).unwrap();
  let k = key("s");
  assert!(tier.acquire(&k, "t1", &Hold::ttl(LONG)).await.unwrap().is_some());
  assert!(tier.lease_path(&k).exists());
  tier.release(&k, "t2").await.unwrap();
  assert!(tier.lease_path(&k).exists(), "another token's release leaves the holder's record");
  tier.release(&k, "t1").await.unwrap();
  assert!(!tier.lease_path(&k).exists(), "released: the record is gone");
  assert_eq!(tier.renew(&k, "t1", &Hold::ttl(LONG)).await.unwrap(), LeaseState::Lost);
  assert_eq!(tier.put_fenced(&k, b"old".to_vec(), "t1", &Hold::ttl(LONG)).await.unwrap(), LeaseState::Lost);
  assert_eq!(tier.get(&k).await.unwrap(), None, "the released token wrote nothing");
  tier.release(&k, "t1").await.unwrap();
  assert!(tier.acquire(&k, "t2", &Hold::ttl(LONG)).await.unwrap().is_some());
  assert!(tier.acquire(&k, "t1", &Hold::ttl(LONG)).await.unwrap().is_none(), "t2 holds it");
  // A blank record (released by an earlier version) goes at the next release too.
  tier.release(&k, "t2").await.unwrap();
  std::fs::write(tier.lease_path(&k), Record { token: String::new(), until: Stamp::now(), generation: 7 }.encode())
    .unwrap();
  tier.release(&k, "t9").await.unwrap();
  assert!(!tier.lease_path(&k).exists());
  let left: Vec<_> = std::fs::read_dir(tier.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
  assert!(!left.iter().any(|n| n.to_string_lossy().starts_with(".lease-")), "{left:?}");
}
