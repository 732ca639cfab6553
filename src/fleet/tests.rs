//! Fleet workers in one process over the embedded tier (its leases and membership are per process), with hooks
//! that record who runs what and fail the test on a second owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::archive::PackOptions;
use crate::session::SessionKey;
use crate::store::StoreConfig;
use crate::tier::{LocalDirTier, Tier};

/// session → worker running it, shared by every worker of a test.
type Running = Arc<Mutex<HashMap<String, String>>>;

pub(super) struct Recorder {
  worker: String,
  running: Running,
  /// Set once a session had two owners.
  doubled: Arc<Mutex<Vec<String>>>,
  /// Every start, in order.
  pub starts: Mutex<Vec<String>>,
  pub stops: Mutex<Vec<(String, StopReason)>>,
  pub events: Mutex<Vec<FleetEvent>>,
}

#[async_trait]
impl Hooks for Recorder {
  async fn start(&self, lease: Lease) -> std::result::Result<(), String> {
    assert!(!lease.token.is_empty());
    tokio::time::sleep(Duration::from_millis(5)).await;
    self.starts.lock().unwrap().push(lease.session.clone());
    let mut running = self.running.lock().unwrap();
    if let Some(other) = running.insert(lease.session.clone(), self.worker.clone()) {
      self.doubled.lock().unwrap().push(format!("{} on {other} and {}", lease.session, self.worker));
    }
    Ok(())
  }
  async fn stop(&self, session: String, reason: StopReason) -> std::result::Result<(), String> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut running = self.running.lock().unwrap();
    if running.get(&session) == Some(&self.worker) {
      running.remove(&session);
    }
    self.stops.lock().unwrap().push((session, reason));
    Ok(())
  }
  fn event(&self, event: FleetEvent) {
    self.events.lock().unwrap().push(event);
  }
}

pub(super) struct Bench {
  _dir: tempfile::TempDir,
  store_dir: std::path::PathBuf,
  /// With a backup bucket: the stores are this site's (a directory primary, an in-memory bucket), and the
  /// workers list the bucket every `backup_list_every`.
  pub site: Option<crate::store::across_tests::Site>,
  backup_list_every: Duration,
  pub running: Running,
  doubled: Arc<Mutex<Vec<String>>>,
}

pub(super) struct Member {
  pub fleet: Fleet,
  pub hooks: Arc<Recorder>,
  task: tokio::task::JoinHandle<()>,
}

impl Bench {
  async fn new(sessions: usize) -> Self {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let tier = LocalDirTier::open(&store_dir).unwrap();
    for i in 0..sessions {
      tier.put(&SessionKey::parse(&format!("RemoteAuth-s{i}")).unwrap(), b"x".to_vec()).await.unwrap();
    }
    let backup_list_every = FleetConfig::DEFAULT_BACKUP_LIST_EVERY;
    Self {
      _dir: dir,
      store_dir,
      site: None,
      backup_list_every,
      running: Default::default(),
      doubled: Default::default(),
    }
  }

  /// Sessions saved (with their backups) through a store over a directory and an in-memory bucket.
  pub async fn with_bucket(sessions: &[&str], backup_list_every: Duration) -> Self {
    let site = crate::store::across_tests::Site::new();
    let store = site.process();
    for session in sessions {
      site.save_as(&store, session, session.as_bytes()).await;
    }
    Self { site: Some(site), backup_list_every, ..Self::new(0).await }
  }

  pub fn store(&self) -> Store {
    if let Some(site) = &self.site {
      return site.process();
    }
    let tier = LocalDirTier::open(&self.store_dir).unwrap();
    let data_path = self.store_dir.parent().unwrap().join("auth");
    let config = StoreConfig { data_path, pack: PackOptions::default(), local_dir: None };
    Store::new(Some(Arc::new(tier)), None, config).unwrap()
  }

  pub fn join(&self, worker: &str, capacity: u32) -> Member {
    self.join_as(worker, worker, capacity)
  }

  /// Joins as `worker`, recorded as `instance` (two instances given one id stay apart in the record).
  fn join_as(&self, worker: &str, instance: &str, capacity: u32) -> Member {
    let hooks = Arc::new(Recorder {
      worker: instance.into(),
      running: self.running.clone(),
      doubled: self.doubled.clone(),
      starts: Default::default(),
      stops: Default::default(),
      events: Default::default(),
    });
    let config = FleetConfig {
      group: "test".into(),
      worker_id: worker.into(),
      capacity,
      timing: Timing::new(
        Some(Duration::from_millis(900)),
        Some(Duration::from_millis(150)),
        Some(Duration::from_millis(300)),
      )
      .unwrap(),
      max_concurrent_starts: 3,
      unassigned_alert: Duration::from_millis(400),
      backup_list_every: self.backup_list_every,
      start_timeout: FleetConfig::DEFAULT_START_TIMEOUT,
    };
    let (fleet, run) = Fleet::join(self.store(), config, hooks.clone()).unwrap();
    Member { fleet, hooks, task: tokio::spawn(run) }
  }

  pub fn per_worker(&self) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for worker in self.running.lock().unwrap().values() {
      *out.entry(worker.clone()).or_default() += 1;
    }
    out
  }

  /// Waits (bounded) until `done` holds.
  pub async fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
    for _ in 0..200 {
      if done(self) {
        return;
      }
      tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}; running {:?}", self.per_worker());
  }

  pub fn no_double_owner(&self) {
    assert!(self.doubled.lock().unwrap().is_empty(), "{:?}", self.doubled.lock().unwrap());
  }
}

pub(super) fn spread(bench: &Bench, expected: &[usize]) -> bool {
  let mut loads: Vec<usize> = bench.per_worker().into_values().collect();
  loads.sort();
  loads == expected && bench.running.lock().unwrap().len() == expected.iter().sum::<usize>()
}

/// Issue #25 item 12: an instance given the id of a live worker is refused at its first beat and closes, having
/// started nothing; the first runs on undisturbed; once the first left, the id is free for a new instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_of_a_live_worker_id_is_refused() {
  let bench = Bench::new(4).await;
  let first = bench.join("w", 10);
  bench.until("w runs all 4", |b| spread(b, &[4])).await;
  let second = bench.join_as("w", "w-second", 10);
  tokio::time::timeout(Duration::from_secs(10), second.task).await.expect("the refused instance closes").unwrap();
  let events = second.hooks.events.lock().unwrap().clone();
  assert!(
    matches!(&events[..], [FleetEvent::DuplicateWorker { id, code: "ERR_FLEET_DUPLICATE_WORKER", message }]
      if id == "w" && message.contains("\"w\"")),
    "{events:?}"
  );
  assert!(second.hooks.stops.lock().unwrap().is_empty());
  assert!(second.fleet.status().running.is_empty());
  // The first is undisturbed over several more beats: its sessions, no event, nothing stopped.
  tokio::time::sleep(Duration::from_millis(600)).await;
  assert_eq!(bench.per_worker(), HashMap::from([("w".to_owned(), 4)]));
  assert!(first.hooks.events.lock().unwrap().is_empty() && first.hooks.stops.lock().unwrap().is_empty());
  assert_eq!(first.fleet.status().running.len(), 4);
  bench.no_double_owner();
  first.fleet.close().await;
  let third = bench.join_as("w", "w-third", 10);
  bench
    .until("a new instance takes the freed id", |b| b.per_worker() == HashMap::from([("w-third".to_owned(), 4)]))
    .await;
  third.fleet.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_fail_over_and_drain_with_one_owner_each() {
  let bench = Bench::new(20).await;
  let a = bench.join("a", 10);
  let b = bench.join("b", 10);
  let c = bench.join("c", 10);
  bench.until("20 over 3 evenly", |b| spread(b, &[6, 7, 7])).await;
  bench.no_double_owner();
  assert_eq!(a.fleet.status().running.len() + b.fleet.status().running.len() + c.fleet.status().running.len(), 20);

  // c dies without stopping anything: its loop ends, its sessions stay "running" in a dead process.
  c.task.abort();
  let dead: Vec<String> = c.fleet.status().running;
  bench.running.lock().unwrap().retain(|_, w| w != "c");
  bench.until("c's sessions on a and b", |b| spread(b, &[10, 10])).await;
  bench.no_double_owner();
  let failovers = a.fleet.status().failovers + b.fleet.status().failovers;
  assert_eq!(failovers, dead.len() as u64);

  // a drains: b cannot take all 20 (capacity 10), so the rest wait unassigned (and are reported).
  a.fleet.drain().await;
  assert!(a.fleet.status().running.is_empty());
  assert!(a.hooks.stops.lock().unwrap().iter().all(|(_, r)| *r == StopReason::Drain));
  bench.until("b full", |b| spread(b, &[10])).await;
  bench.until("unassigned reported", |_| !b.hooks.events.lock().unwrap().is_empty()).await;
  assert!(matches!(b.hooks.events.lock().unwrap()[0], FleetEvent::Unassigned { .. }));
  bench.until("the other 10 unassigned", |_| b.fleet.status().unassigned.len() == 10).await;

  // A new worker takes the rest.
  let d = bench.join("d", 10);
  bench.until("b and d full", |b| spread(b, &[10, 10])).await;
  bench.no_double_owner();
  for m in [&b, &d] {
    m.fleet.close().await;
  }
  a.fleet.close().await;
  assert!(bench.running.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_worker_takes_its_share_a_few_at_a_time() {
  let bench = Bench::new(12).await;
  let a = bench.join("a", 20);
  bench.until("all on a", |b| spread(b, &[12])).await;
  let b = bench.join("b", 20);
  bench.until("6 and 6", |b| spread(b, &[6, 6])).await;
  bench.no_double_owner();
  let handed: Vec<_> = a.hooks.stops.lock().unwrap().clone();
  assert_eq!(handed.len(), 6);
  assert!(handed.iter().all(|(_, r)| *r == StopReason::Rebalance));
  assert_eq!(a.fleet.status().handoffs, 6);

  // Pausing a session stops it; deleting one stops it too.
  let store = bench.store();
  let paused = b.fleet.status().running[0].clone();
  set_pin(&store, "test", &paused, Some(Pin::Paused)).await.unwrap();
  bench.until("paused one stopped", |bench| !bench.running.lock().unwrap().contains_key(&paused)).await;
  let gone = a.fleet.status().running[0].clone();
  store.delete(&gone).await.unwrap();
  bench.until("deleted one stopped", |bench| !bench.running.lock().unwrap().contains_key(&gone)).await;
  assert!(a.hooks.stops.lock().unwrap().contains(&(gone.clone(), StopReason::Deleted)));
  assert!(b.hooks.stops.lock().unwrap().contains(&(paused.clone(), StopReason::Paused)));
  assert_eq!(b.fleet.status().paused, 1);
  set_pin(&store, "test", &paused, None).await.unwrap();
  bench.until("unpaused one back", |bench| bench.running.lock().unwrap().contains_key(&paused)).await;
  a.fleet.close().await;
  b.fleet.close().await;
  bench.no_double_owner();
}

#[test]
fn bad_settings_are_refused() {
  let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
  rt.block_on(async {
    let bench = Bench::new(0).await;
    let base = FleetConfig {
      group: "g".into(),
      worker_id: "w".into(),
      capacity: 1,
      timing: Timing::new(None, None, None).unwrap(),
      max_concurrent_starts: 1,
      unassigned_alert: Duration::from_secs(1),
      backup_list_every: FleetConfig::DEFAULT_BACKUP_LIST_EVERY,
      start_timeout: FleetConfig::DEFAULT_START_TIMEOUT,
    };
    let hooks = |w: &str| {
      Arc::new(Recorder {
        worker: w.into(),
        running: bench.running.clone(),
        doubled: bench.doubled.clone(),
        starts: Default::default(),
        stops: Default::default(),
        events: Default::default(),
      })
    };
    for bad in [
      FleetConfig { capacity: 0, ..base.clone() },
      FleetConfig { worker_id: "a b".into(), ..base.clone() },
      FleetConfig { group: "{x}".into(), ..base.clone() },
      FleetConfig { max_concurrent_starts: 0, ..base.clone() },
      FleetConfig { backup_list_every: Duration::from_millis(10), ..base.clone() },
      // Shorter than a renewal interval (6 s at the defaults), and longer than a day.
      FleetConfig { start_timeout: Duration::from_secs(5), ..base.clone() },
      FleetConfig { start_timeout: Duration::from_secs(86_401), ..base.clone() },
    ] {
      let err = Fleet::join(bench.store(), bad, hooks("w")).err().unwrap();
      assert_eq!(err.code(), "ERR_INVALID_OPTION");
    }
  });
}

/// xorshift64: the mutation test's seeded choices.
struct Rng(u64);

impl Rng {
  fn next(&mut self) -> u64 {
    self.0 ^= self.0 << 13;
    self.0 ^= self.0 >> 7;
    self.0 ^= self.0 << 17;
    self.0
  }
  fn below(&mut self, n: usize) -> usize {
    (self.next() % n as u64) as usize
  }
  fn bytes(&mut self) -> Vec<u8> {
    (0..self.below(24)).map(|_| self.next() as u8).collect()
  }
}

/// What a tier holding someone else's writes, or damaged ones, may give the fleet: owner entries, pins and member
/// infos that are garbage, name workers that are gone, or name the live ones falsely. Whatever it holds, no session
/// ever runs on two workers, and once the garbage is gone (pins cleared, the ghost expired) every session runs
/// again, spread evenly. Seeded: FLEET_FUZZ_SEED / FLEET_FUZZ_ROUNDS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatever_the_tier_holds_no_session_runs_twice_and_the_fleet_recovers() {
  let seed = std::env::var("FLEET_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_f1ee7u64);
  let rounds = std::env::var("FLEET_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
  let mut rng = Rng(seed | 1);
  let bench = Bench::new(12).await;
  let a = bench.join("a", 12);
  let b = bench.join("b", 12);
  bench.until("12 over a and b", |b| spread(b, &[6, 6])).await;
  let store = bench.store();
  let m = store.membership().unwrap();
  let sessions: Vec<String> = (0..12).map(|i| format!("RemoteAuth-s{i}")).collect();
  let plausible = ["a", "b", "a running", "b running", "ghost", "ghost running", "", " running", "paused", "worker:a"];
  for round in 0..rounds {
    for _ in 0..4 {
      let session = &sessions[rng.below(sessions.len())];
      let value = match rng.below(3) {
        0 => rng.bytes(),
        _ => plausible[rng.below(plausible.len())].as_bytes().to_vec(),
      };
      match rng.below(4) {
        0 | 1 => m.map_set("test", OWNERS, session, &value).await.unwrap(),
        2 => m.map_set("test", PINS, session, &value).await.unwrap(),
        _ => {
          let info = if rng.below(2) == 0 { rng.bytes() } else { br#"{"capacity":50}"#.to_vec() };
          m.beat("test", "ghost", "ghost", &info, Duration::from_millis(600)).await.unwrap();
        }
      }
    }
    tokio::time::sleep(Duration::from_millis(150 + 50 * rng.below(4) as u64)).await;
    assert!(bench.doubled.lock().unwrap().is_empty(), "seed {seed} round {round}: {:?}", bench.doubled.lock().unwrap());
    assert!(!a.task.is_finished() && !b.task.is_finished(), "seed {seed} round {round}: a worker loop ended");
  }
  for session in &sessions {
    set_pin(&store, "test", session, None).await.unwrap();
  }
  bench.until("every session back, 6 and 6, once the ghost expired", |b| spread(b, &[6, 6])).await;
  bench.no_double_owner();
  a.fleet.close().await;
  b.fleet.close().await;
  assert!(bench.running.lock().unwrap().is_empty());
}
