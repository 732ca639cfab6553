//! One seeded run: a few stores (each as its own process: its own locks, scheduler and transport) over one
//! primary and one bucket, a few sessions, and rounds of operations. A round starts its operations at seeded
//! offsets and lets them run at once (their calls interleaving by the transport's seeded times), waits for all
//! of them, then checks the stored state against the model (`check`). At the end every store is closed (its
//! pending backups flushed) and the state checked once more. All on a paused, single-threaded runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::model::Model;
use super::ops::Op;
use super::world::{BucketView, Faults, Primary, PrimaryView};
use crate::archive::{Key, Keyring, PackOptions};
use crate::backup::{Backups, Retention};
use crate::fleet::sim::rng::Rng;
use crate::scheduler::Reporter;
use crate::store::{BackupMode, Store, StoreConfig};
use crate::tier::memory::Memory;

/// How one store is set up.
#[derive(Debug, Clone)]
pub struct StoreSetup {
  pub incremental: bool,
  pub keep: usize,
  /// Backs up within each save; else on a timer of `interval_ms`.
  pub every_save: bool,
  pub interval_ms: u64,
  /// Which of the two keys it encrypts with (it reads both).
  pub key: usize,
  pub latency_ms: u64,
  pub error_per_mille: u64,
}

impl std::fmt::Display for StoreSetup {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let kind = if self.incremental { "incremental" } else { "whole" };
    let mode = if self.every_save { "every save".to_owned() } else { format!("every {} ms", self.interval_ms) };
    write!(
      f,
      "{kind}, keep {}, {mode}, key {}, ≤{} ms, {}‰ errors",
      self.keep, self.key, self.latency_ms, self.error_per_mille
    )
  }
}

#[derive(Debug, Clone)]
pub struct Scenario {
  pub seed: u64,
  pub sessions: Vec<String>,
  pub stores: Vec<StoreSetup>,
  pub spike_ms: u64,
  /// Each round: its operations, each with its start (ms after the round began).
  pub rounds: Vec<Vec<(u64, Op)>>,
}

impl Scenario {
  pub fn new(seed: u64) -> Self {
    let mut rng = Rng::new(seed);
    let sessions: Vec<String> = (0..rng.between(1, 3)).map(|i| format!("s{i}")).collect();
    let errors = [0, 20, 60, 150][rng.below(4) as usize];
    let stores: Vec<StoreSetup> = (0..rng.between(2, 4))
      .map(|_| StoreSetup {
        incremental: rng.chance(500),
        keep: rng.between(1, 3) as usize,
        every_save: rng.chance(750),
        interval_ms: rng.between(20, 400),
        key: rng.below(2) as usize,
        latency_ms: rng.between(1, 20),
        error_per_mille: rng.below(errors + 1),
      })
      .collect();
    let spike_ms = rng.between(50, 500);
    let rounds = (0..rng.between(8, 20))
      .map(|_| {
        (0..rng.between(1, 4)).map(|_| (rng.below(40), Op::draw(&mut rng, stores.len(), sessions.len()))).collect()
      })
      .collect();
    Self { seed, sessions, stores, spike_ms, rounds }
  }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Outcome {
  pub story: Vec<String>,
  pub violations: Vec<String>,
}

pub struct World {
  pub seed: u64,
  pub root: tempfile::TempDir,
  pub sessions: Vec<String>,
  pub configs: Vec<StoreSetup>,
  pub stores: Vec<Store>,
  pub primary: Arc<Primary>,
  pub bucket: Arc<Memory>,
  /// Reads every key: for the checks.
  pub keys: Arc<Keyring>,
  /// A session's own calls, one at a time (RemoteAuth's client; not a lock any store shares).
  pub own_calls: HashMap<String, tokio::sync::Mutex<()>>,
  model: Mutex<Model>,
  outcome: Mutex<Outcome>,
  t0: tokio::time::Instant,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
  m.lock().unwrap_or_else(|p| p.into_inner())
}

impl World {
  pub(super) fn new(scenario: &Scenario) -> Self {
    let root = tempfile::tempdir().expect("a temp dir");
    for dir in ["auth", "zips", "out"] {
      std::fs::create_dir_all(root.path().join(dir)).expect("a dir");
    }
    let (primary, bucket) = (Arc::new(Primary::default()), Arc::new(Memory::default()));
    let keys = [Key::new([1; 32]), Key::new([2; 32])];
    let keyring = |current: usize| Arc::new(Keyring::new(keys[current].clone(), vec![keys[1 - current].clone()]));
    let stores = scenario
      .stores
      .iter()
      .enumerate()
      .map(|(i, setup)| {
        let faults = Arc::new(Faults::new(
          scenario.seed,
          &format!("p{i}"),
          setup.latency_ms,
          scenario.spike_ms,
          setup.error_per_mille,
        ));
        let pack = PackOptions { keys: Some(keyring(setup.key)), ..PackOptions::default() };
        let view = BucketView { inner: bucket.clone(), faults: faults.clone() };
        let retention = Retention { keep: setup.keep, keep_within_ms: None };
        let backups = Backups::open(Arc::new(view), retention, setup.incremental, pack.clone());
        let report: Reporter = Arc::new(|_, _| {});
        let mode = match setup.every_save {
          true => BackupMode::EverySave(report),
          false => BackupMode::Interval(Duration::from_millis(setup.interval_ms), report),
        };
        let primary = Arc::new(PrimaryView { inner: primary.clone(), faults });
        let config = StoreConfig { data_path: root.path().join("auth"), pack, local_dir: None };
        Store::new(Some(primary), Some((backups, mode)), config).expect("a store")
      })
      .collect();
    let own_calls = scenario.sessions.iter().map(|s| (s.clone(), tokio::sync::Mutex::new(()))).collect();
    Self {
      seed: scenario.seed,
      root,
      sessions: scenario.sessions.clone(),
      configs: scenario.stores.clone(),
      stores,
      primary,
      bucket,
      keys: keyring(0),
      own_calls,
      model: Mutex::new(Model::new(&scenario.sessions)),
      outcome: Mutex::default(),
      t0: tokio::time::Instant::now(),
    }
  }

  pub fn model(&self) -> MutexGuard<'_, Model> {
    guard(&self.model)
  }

  pub fn log(&self, line: String) {
    let at = self.t0.elapsed().as_micros();
    guard(&self.outcome).story.push(format!("{:>5}.{:03} ms  {line}", at / 1000, at % 1000));
  }

  pub fn violations(&self) -> Vec<String> {
    guard(&self.outcome).violations.clone()
  }

  /// Records a broken promise; returns it for the story.
  pub fn violation(&self, what: String) -> String {
    self.log(format!("VIOLATION {what}"));
    guard(&self.outcome).violations.push(what.clone());
    what
  }
}

pub(super) fn paused_runtime() -> tokio::runtime::Runtime {
  tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime")
}

/// Runs the seed's scenario on its own paused, single-threaded runtime.
pub fn run(seed: u64) -> Outcome {
  let runtime =
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
  runtime.block_on(async {
    tokio::select! {
      outcome = simulate(Scenario::new(seed)) => outcome,
      () = watchdog() => Outcome {
        story: vec!["(cut off after a minute)".into()],
        violations: vec!["the run did not end: an operation hung".into()],
      },
    }
  })
}

/// Ends a run that hangs. By the wall clock, not the simulated one: while this runtime waits for the blocking pool
/// (which other tests share) it is idle, and simulated time jumps to its next timer, which a simulated bound would
/// be. The beat keeps those jumps short.
async fn watchdog() {
  let started = std::time::Instant::now();
  while started.elapsed() < Duration::from_secs(60) {
    tokio::time::sleep(Duration::from_secs(1)).await;
  }
}

async fn simulate(scenario: Scenario) -> Outcome {
  let world = Arc::new(World::new(&scenario));
  let mut n = 0;
  for (r, round) in scenario.rounds.iter().enumerate() {
    let started = tokio::time::Instant::now();
    let mut running = Vec::new();
    for &(at, op) in round {
      n += 1;
      let world = world.clone();
      running.push(tokio::spawn(async move {
        tokio::time::sleep_until(started + Duration::from_millis(at)).await;
        world.run_op(n, op).await;
      }));
    }
    for task in running {
      if let Err(err) = task.await {
        world.violation(format!("an operation panicked: {err}"));
      }
    }
    world.check(&format!("after round {r}")).await;
  }
  let closes = world.stores.iter().map(|s| s.close());
  for (i, closed) in futures::future::join_all(closes).await.into_iter().enumerate() {
    world.log(format!("p{i} closed: {} backed up, {} failed", closed.copied, closed.failures.len()));
  }
  world.check("after every store closed").await;
  let world = Arc::into_inner(world).expect("every operation ended");
  drop(world.stores);
  world.outcome.into_inner().unwrap_or_else(|p| p.into_inner())
}
