//! Starts of sessions no live worker runs (issue #25, failover within ttl + 2 s), over the simulated primary on
//! tokio's paused clock: a dead owner's lease that outlives its heartbeat is taken soon after it runs out, and a
//! share larger than `maxConcurrentStarts` starts as slots free up, not one assignment round per few sessions.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::fault_tests::{Behave, Hooks2};
use super::sim::faults::{Faults, FaultyTier};
use super::sim::tier::SimTier;
use super::{owner_entry, Fleet, FleetConfig, Timing, WorkerInfo, OWNERS};
use crate::archive::PackOptions;
use crate::session::SessionArg;
use crate::store::{Store, StoreConfig};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Worker `w` over the simulated primary (1 ms a call), with quick hooks; its loop runs until the test ends.
fn join(sim: &Arc<SimTier>, timing: Timing, max_concurrent_starts: usize) -> (Arc<Hooks2>, Fleet, tempfile::TempDir) {
  let faults = Arc::new(Faults::new(1, "w", MS(1), 0, Duration::ZERO));
  let tier = FaultyTier { sim: sim.clone(), faults };
  let dir = tempfile::tempdir().unwrap();
  let config = StoreConfig { data_path: dir.path().join("auth"), pack: PackOptions::default(), local_dir: None };
  let store = Store::new(Some(Arc::new(tier)), None, config).unwrap();
  let hooks = Hooks2::new(Behave::Quick, Behave::Quick);
  let config = FleetConfig {
    group: "g".into(),
    worker_id: "w".into(),
    capacity: 100,
    timing,
    max_concurrent_starts,
    unassigned_alert: Duration::from_secs(60),
    backup_list_every: FleetConfig::DEFAULT_BACKUP_LIST_EVERY,
    start_timeout: FleetConfig::DEFAULT_START_TIMEOUT,
  };
  let (fleet, worker) = Fleet::join(store, config, hooks.clone()).unwrap();
  tokio::spawn(worker);
  (hooks, fleet, dir)
}

/// The dead owner's last renewal landed after its last beat, so its lease outlives its heartbeat by 700 ms. The
/// worker that sees the heartbeat run out is refused at first, and takes the lease soon after it runs out: not a
/// renewal interval or more later (a refused start's retry), and never before.
#[tokio::test(start_paused = true)]
async fn a_failover_takes_the_dead_owners_lease_soon_after_it_runs_out() {
  let session = "RemoteAuth-acct000".to_owned();
  let key = SessionArg::parse(&session).unwrap().key;
  let sim = Arc::new(SimTier::with_sessions(std::slice::from_ref(&session), false));
  let timing = Timing::new(None, None, None).unwrap();
  // The dead worker, with room for far more than the other: the session is its own while its heartbeat lasts,
  // past the other's first renewal interval (a joining worker starts nothing before then).
  let t0 = Instant::now();
  let (beat_ends, lease_ends) = (timing.renew_every + MS(1000), timing.renew_every + MS(1700));
  let info = serde_json::to_vec(&WorkerInfo { capacity: 1000, running: 1, ..WorkerInfo::default() }).unwrap();
  sim.beat("g", "dead", "its claim", &info, beat_ends).unwrap();
  sim.acquire(&key, "its token", &crate::tier::Hold::ttl(lease_ends)).expect("free");
  assert!(sim.map_write_ordered("g", OWNERS, &session, Some(owner_entry("dead", true).as_bytes()), 1));
  let (hooks, _fleet, _dir) = join(&sim, timing, 2);
  tokio::time::sleep(timing.ttl).await;
  let started = hooks.when("start ").expect("failed over") - t0;
  assert!(started >= lease_ends, "started at {started:?}, while the dead owner's lease lasted to {lease_ends:?}");
  let soon = lease_ends + timing.renew_every / 2;
  assert!(started < soon, "started at {started:?}: the lease ran out at {lease_ends:?}");
}

/// Twelve sessions nobody runs, two starts at a time: each begins as another ends, all within moments of the
/// first, rather than a round (a wake, a pause, a read of every session) per two; never more than two in flight.
#[tokio::test(start_paused = true)]
async fn sessions_nobody_runs_start_as_slots_free_up_not_a_round_per_few() {
  let sessions: Vec<String> = (0..12).map(|i| format!("RemoteAuth-acct{i:03}")).collect();
  let sim = Arc::new(SimTier::with_sessions(&sessions, false));
  let timing = Timing::new(None, None, None).unwrap();
  let (hooks, fleet, _dir) = join(&sim, timing, 2);
  let mut most = 0;
  let until = Instant::now() + timing.renew_every * 2;
  while Instant::now() < until {
    most = most.max(fleet.status().starting);
    tokio::time::sleep(MS(1)).await;
  }
  assert!(most <= 2, "{most} starts in flight at once");
  let log = hooks.log.lock().unwrap().clone();
  let starts: Vec<Instant> = log.iter().filter(|(_, w)| w.starts_with("start ")).map(|(t, _)| *t).collect();
  assert_eq!(starts.len(), 12, "{log:?}");
  assert_eq!(fleet.status().running.len(), 12);
  let spread = *starts.last().unwrap() - starts[0];
  // Each start is a few calls of 1 ms; a round alone waits 100 ms after a start ends before it reads anything.
  assert!(spread < MS(100), "12 starts over {spread:?}: {log:?}");
}
