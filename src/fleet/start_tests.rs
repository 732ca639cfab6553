//! Issue #25 item 7: a start past `startTimeoutMs`, on tokio's paused clock over the simulated tier (whose leases
//! expire on that clock). The start is given up exactly at the timeout (its signal aborted, reason `timeout`,
//! reported), `onStop(session, 'timeout')` follows half the stop budget later (or once `onStart` settled), and the
//! lease is left fenced, not released: nobody takes the session before the lease expired, the old token's writes
//! are refused, and the session starts again only after that expiry. A start that settles after it was given up
//! does not make the session run.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::fault_tests::{until, Behave, Hooks2};
use super::sim::faults::{Faults, FaultyTier};
use super::sim::tier::SimTier;
use super::*;
use crate::archive::PackOptions;
use crate::store::StoreConfig;

const SESSION: &str = "RemoteAuth-s0";
const START_TIMEOUT: Duration = Duration::from_millis(2000);

struct Rig {
  sim: Arc<SimTier>,
  timing: Timing,
}

impl Rig {
  fn new() -> Self {
    let ms = |ms| Some(Duration::from_millis(ms));
    let timing = Timing::new(ms(3000), ms(600), ms(1000)).unwrap();
    Self { sim: Arc::new(SimTier::with_sessions(&[SESSION.to_owned()], false)), timing }
  }

  fn store(&self, id: &str) -> Store {
    let faults = Arc::new(Faults::new(7, id, Duration::ZERO, 0, Duration::ZERO));
    let tier = FaultyTier { sim: self.sim.clone(), faults };
    let data_path = std::env::temp_dir().join("wwebjs-fleet-start-tests").join(id);
    Store::new(Some(Arc::new(tier)), None, StoreConfig { data_path, pack: PackOptions::default(), local_dir: None })
      .unwrap()
  }

  fn join(&self, hooks: Arc<Hooks2>) -> (Fleet, Store, tokio::task::JoinHandle<()>) {
    let store = self.store("w");
    let config = FleetConfig {
      group: "g".into(),
      worker_id: "w".into(),
      capacity: 1,
      timing: self.timing,
      max_concurrent_starts: 1,
      unassigned_alert: Duration::from_secs(600),
      backup_list_every: FleetConfig::DEFAULT_BACKUP_LIST_EVERY,
      start_timeout: START_TIMEOUT,
    };
    let (fleet, run) = Fleet::join(store.clone(), config, hooks).unwrap();
    (fleet, store, tokio::spawn(run))
  }
}

#[tokio::test(start_paused = true)]
async fn a_start_that_never_settles_is_given_up_at_the_timeout_and_runs_again_once_its_lease_expired() {
  let rig = Rig::new();
  let hooks = Hooks2::new(Behave::HangsOnce, Behave::Quick);
  let (fleet, store, _task) = rig.join(hooks.clone());
  until("onStart called", || hooks.has("start")).await;
  let called = hooks.when("start").unwrap();
  let token = hooks.token();
  until("onStop called", || hooks.has("stop")).await;
  // Given up exactly at the timeout, reported as such (not as a failed start), and onStop half the stop budget
  // later, since onStart never settled.
  assert_eq!(hooks.when("event StartTimedOut").expect("reported"), called + START_TIMEOUT, "{hooks:?}");
  assert_eq!(hooks.when("stop timeout RemoteAuth-s0").unwrap(), called + START_TIMEOUT + rig.timing.stop_timeout / 2);
  assert!(!hooks.has("event StartFailed"), "{hooks:?}");
  until("the run is gone", || fleet.status().stopping == 0 && fleet.status().starting == 0).await;
  // Fenced, not released: the lease is still this token's in the tier (nobody else may take it), and this store's
  // writes of the session are refused.
  assert_eq!(rig.sim.holder(SESSION).as_deref(), Some(token.as_str()));
  let other = rig.store("other");
  assert_eq!(other.acquire_lease(SESSION, rig.timing.ttl).await.unwrap_err().code(), "ERR_LEASE_HELD");
  assert_eq!(store.renew_lease(SESSION, &token, rig.timing.ttl).await.unwrap_err().code(), "ERR_LEASE_LOST");
  // It starts again, on this worker (the only one), once the lease expired, and runs.
  until("started again", || hooks.has("started")).await;
  let expired = rig.sim.granted_until(&token).expect("granted");
  let again = hooks.all("start ")[1];
  assert!(again >= expired, "started again {:?} before the lease expired", expired - again);
  assert!(again - expired <= rig.timing.ttl + rig.timing.renew_every * 2, "{:?} after expiry", again - expired);
  assert_eq!(fleet.status().running, [SESSION]);
  fleet.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_start_that_settles_after_it_was_given_up_does_not_run_the_session() {
  let rig = Rig::new();
  // Resolves a quarter of the stop budget after the timeout: within the wait for it to settle.
  let late = START_TIMEOUT + rig.timing.stop_timeout / 4;
  let hooks = Hooks2::new(Behave::SlowOnce(late), Behave::Quick);
  let (fleet, _store, _task) = rig.join(hooks.clone());
  until("onStart called", || hooks.has("start")).await;
  let called = hooks.when("start").unwrap();
  let token = hooks.token();
  // Watched every 10 ms until the second start: never running before it.
  let began = Instant::now();
  while hooks.all("start ").len() < 2 {
    assert!(fleet.status().running.is_empty(), "running after a given-up start: {hooks:?}");
    assert!(began.elapsed() < Duration::from_secs(30), "never started again: {hooks:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  assert_eq!(hooks.when("event StartTimedOut").unwrap(), called + START_TIMEOUT);
  assert_eq!(hooks.when("settled late").unwrap(), called + late);
  // onStop follows the settling at once, and the lease was still left to expire.
  assert_eq!(hooks.when("stop timeout").unwrap(), called + late, "{hooks:?}");
  assert!(hooks.all("start ")[1] >= rig.sim.granted_until(&token).unwrap(), "{hooks:?}");
  until("runs", || fleet.status().running == [SESSION]).await;
  fleet.close().await;
}
