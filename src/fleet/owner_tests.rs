//! Issue #25 item 10: the owner entries of a session (the group's `owners` map, read by every worker, the CLI and
//! Prometheus) under a cut. A worker cut off while its `onStart` runs sends its owner entry, then (once it gave the
//! start up) its removal; both land late, after another worker took the session over and wrote its own. Ordered
//! by the lease's generation, neither may replace or erase the new owner's entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::assign::{assign, Worker};
use super::fault_tests::{until, Behave, Hooks2};
use super::sim::faults::{Faults, FaultyTier};
use super::sim::tier::SimTier;
use super::*;
use crate::archive::PackOptions;
use crate::store::StoreConfig;

const SESSION: &str = "RemoteAuth-s0";

struct Member {
  fleet: Fleet,
  faults: Arc<Faults>,
  _task: tokio::task::JoinHandle<()>,
}

fn join(sim: &Arc<SimTier>, id: &str, timing: Timing, hooks: Arc<Hooks2>) -> Member {
  let faults = Arc::new(Faults::new(7, id, Duration::from_millis(1), 0, Duration::ZERO));
  let tier = FaultyTier { sim: sim.clone(), faults: faults.clone() };
  let data_path = std::env::temp_dir().join("wwebjs-fleet-owner-tests");
  let store =
    Store::new(Some(Arc::new(tier)), None, StoreConfig { data_path, pack: PackOptions::default(), local_dir: None })
      .unwrap();
  let config = FleetConfig {
    group: "g".into(),
    worker_id: id.into(),
    capacity: 1,
    timing,
    max_concurrent_starts: 1,
    // Longer than B waits for A's lease to expire (the session has no owner entry then: A's was held back), so
    // an alert means an episode after the takeover.
    unassigned_alert: timing.ttl * 3,
    backup_list_every: FleetConfig::DEFAULT_BACKUP_LIST_EVERY,
    start_timeout: FleetConfig::DEFAULT_START_TIMEOUT,
  };
  let (fleet, run) = Fleet::join(store, config, hooks).unwrap();
  Member { fleet, faults, _task: tokio::spawn(run) }
}

/// Two worker ids where the assignment puts the session on the second whenever both are live: the first runs it
/// only while alone, so after the cut the session stays with the second (no rebalance muddles the check).
fn ids() -> (String, String) {
  let one = |id: &String| Worker { id: id.clone(), capacity: 1 };
  (0..)
    .map(|i| (format!("a{i}"), format!("b{i}")))
    .find(|(a, b)| assign(&[SESSION.into()], &HashMap::new(), &[one(a), one(b)])[SESSION] == *b)
    .expect("some pair")
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_starts_late_writes_never_replace_the_new_owners_entry() {
  let sim = Arc::new(SimTier::with_sessions(&[SESSION.to_owned()], false));
  let ms = |ms| Some(Duration::from_millis(ms));
  let timing = Timing::new(ms(3000), ms(600), ms(1000)).unwrap();
  let (a_id, b_id) = ids();
  let a_hooks = Hooks2::new(Behave::UntilAborted, Behave::Quick);
  let a = join(&sim, &a_id, timing, a_hooks.clone());
  // The cut begins as A writes its owner entry (its lease taken): that write and all after it are held.
  a.faults.hold_from("map_set owners");
  until("A's onStart runs", || a_hooks.has("start")).await;
  let b_hooks = Hooks2::new(Behave::Quick, Behave::Quick);
  let _b = join(&sim, &b_id, timing, b_hooks.clone());
  // A gives its start up at its local deadline; B takes the session once A's lease expired.
  until("A stopped", || a_hooks.has("stopped")).await;
  until("B runs it", || b_hooks.has("started")).await;
  let owner = |sim: &SimTier| sim.map_all("g", OWNERS).get(SESSION).map(|v| String::from_utf8_lossy(v).into_owned());
  tokio::time::sleep(timing.renew_every).await;
  assert_eq!(owner(&sim), Some(format!("{b_id} running")));
  // A comes back: what it sent while cut off (its entry, then its removal) lands now, in order; then it drains.
  a.faults.release();
  tokio::time::timeout(timing.ttl, a.fleet.drain()).await.expect("A drains");
  // Past the unassigned alert's bound, many rounds of both workers.
  tokio::time::sleep(timing.ttl * 5).await;
  assert_eq!(owner(&sim), Some(format!("{b_id} running")), "A: {a_hooks:?}\nB: {b_hooks:?}");
  for hooks in [&a_hooks, &b_hooks] {
    assert!(!hooks.has("event Unassigned"), "{hooks:?}");
  }
  assert!(!b_hooks.has("stop"), "B kept the session: {b_hooks:?}");
  let status = _b.fleet.status();
  assert!(status.unassigned.is_empty() && status.running == [SESSION], "{:?}", status.unassigned);
}
