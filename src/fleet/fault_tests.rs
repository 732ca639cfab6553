//! The fleet under faults, on tokio's paused clock: a tier whose calls hang (a partition that drops packets) or
//! fail at once (resets), hooks that hang or fail. What is checked is the timing rule itself: a worker that has
//! not had a renewal succeed begins `onStop('lost')` at `last successful renewal sent + ttl - stop_timeout`,
//! whatever its calls to the tier do, and every way out of a session either gives the lease back cleanly or
//! keeps it fenced.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::archive::PackOptions;
use crate::session::SessionKey;
use crate::store::StoreConfig;
use crate::tier::{Beat, Hold, LeaseState, Leases, LocalDirTier, Member, Membership, Tier};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
  Pass,
  /// Every call waits forever (packets dropped, connection open).
  Hang,
  /// Every call fails at once (connection reset or refused).
  Fail,
}

/// The embedded tier behind a switch, recording when each renewal that succeeded was sent.
#[derive(Debug)]
struct FaultTier {
  inner: LocalDirTier,
  mode: Mutex<Mode>,
  renewed: Mutex<Vec<Instant>>,
  acquires: AtomicUsize,
  lists: AtomicUsize,
}

impl FaultTier {
  async fn gate(&self) -> Result<()> {
    let mode = *self.mode.lock().unwrap();
    match mode {
      Mode::Pass => Ok(()),
      Mode::Hang => std::future::pending().await,
      Mode::Fail => Err(StoreError::TierUnavailable { tier: "dir", reason: "cut".into() }),
    }
  }
  fn set(&self, mode: Mode) {
    *self.mode.lock().unwrap() = mode;
  }
  fn last_renewal(&self) -> Instant {
    *self.renewed.lock().unwrap().last().expect("renewed at least once")
  }
}

#[async_trait]
impl Tier for FaultTier {
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    self.gate().await?;
    self.inner.get(key).await
  }
  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    self.gate().await?;
    self.inner.head(key, len).await
  }
  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    self.gate().await?;
    self.inner.put(key, bytes).await
  }
  async fn exists(&self, key: &SessionKey) -> Result<bool> {
    self.gate().await?;
    self.inner.exists(key).await
  }
  async fn delete(&self, key: &SessionKey) -> Result<()> {
    self.gate().await?;
    self.inner.delete(key).await
  }
  async fn list(&self) -> Result<Vec<SessionKey>> {
    self.lists.fetch_add(1, SeqCst);
    self.gate().await?;
    self.inner.list().await
  }
  fn kind(&self) -> &'static str {
    "dir"
  }
  fn leases(&self) -> Option<&dyn Leases> {
    Some(self)
  }
  fn membership(&self) -> Option<&dyn Membership> {
    Some(self)
  }
}

#[async_trait]
impl Leases for FaultTier {
  async fn acquire(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<Option<u64>> {
    self.acquires.fetch_add(1, SeqCst);
    self.gate().await?;
    Leases::acquire(&self.inner, key, token, hold).await
  }
  async fn renew(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<LeaseState> {
    let sent = Instant::now();
    self.gate().await?;
    let state = Leases::renew(&self.inner, key, token, hold).await?;
    self.renewed.lock().unwrap().push(sent);
    Ok(state)
  }
  async fn release(&self, key: &SessionKey, token: &str) -> Result<()> {
    self.gate().await?;
    Leases::release(&self.inner, key, token).await
  }
  async fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, hold: &Hold) -> Result<LeaseState> {
    self.gate().await?;
    self.inner.put_fenced(key, bytes, token, hold).await
  }
  async fn delete_fenced(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<LeaseState> {
    self.gate().await?;
    self.inner.delete_fenced(key, token, hold).await
  }
}

#[async_trait]
impl Membership for FaultTier {
  async fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat> {
    self.gate().await?;
    self.inner.beat(group, id, claim, info, ttl).await
  }
  async fn members(&self, group: &str) -> Result<Vec<Member>> {
    self.gate().await?;
    self.inner.members(group).await
  }
  async fn leave(&self, group: &str, id: &str, claim: &str) -> Result<()> {
    self.gate().await?;
    self.inner.leave(group, id, claim).await
  }
  async fn map_all(&self, group: &str, map: &str) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    self.gate().await?;
    self.inner.map_all(group, map).await
  }
  async fn map_set(&self, group: &str, map: &str, field: &str, value: &[u8]) -> Result<()> {
    self.gate().await?;
    self.inner.map_set(group, map, field, value).await
  }
  async fn map_remove(&self, group: &str, map: &str, field: &str, only_if: Option<&[u8]>) -> Result<()> {
    self.gate().await?;
    self.inner.map_remove(group, map, field, only_if).await
  }
  async fn map_set_ordered(&self, group: &str, map: &str, field: &str, value: &[u8], order: u64) -> Result<bool> {
    self.gate().await?;
    self.inner.map_set_ordered(group, map, field, value, order).await
  }
  async fn map_remove_ordered(&self, group: &str, map: &str, field: &str, order: u64) -> Result<bool> {
    self.gate().await?;
    self.inner.map_remove_ordered(group, map, field, order).await
  }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Behave {
  Quick,
  /// Until the start is aborted (then settles).
  UntilAborted,
  /// Never settles.
  Forever,
  Fail,
  /// The first start never settles; later ones are quick.
  HangsOnce,
  /// The first start resolves after this long; later ones are quick.
  SlowOnce(Duration),
}

/// Hooks that record what happened when (tokio's clock).
pub(super) struct Hooks2 {
  start: Behave,
  stop: Behave,
  pub(super) log: Mutex<Vec<(Instant, String)>>,
  token: Mutex<Option<String>>,
}

impl Hooks2 {
  pub(super) fn new(start: Behave, stop: Behave) -> Arc<Self> {
    Arc::new(Self { start, stop, log: Mutex::new(Vec::new()), token: Mutex::new(None) })
  }
  fn push(&self, what: String) {
    self.log.lock().unwrap().push((Instant::now(), what));
  }
  pub(super) fn when(&self, prefix: &str) -> Option<Instant> {
    self.log.lock().unwrap().iter().find(|(_, w)| w.starts_with(prefix)).map(|(t, _)| *t)
  }
  /// When each entry beginning with `prefix` was logged.
  pub(super) fn all(&self, prefix: &str) -> Vec<Instant> {
    self.log.lock().unwrap().iter().filter(|(_, w)| w.starts_with(prefix)).map(|(t, _)| *t).collect()
  }
  pub(super) fn token(&self) -> String {
    self.token.lock().unwrap().clone().expect("started")
  }
  pub(super) fn has(&self, prefix: &str) -> bool {
    self.when(prefix).is_some()
  }
}

#[async_trait]
impl Hooks for Hooks2 {
  async fn start(&self, lease: Lease) -> std::result::Result<(), String> {
    let first = !self.has("start ");
    self.push(format!("start {}", lease.session));
    *self.token.lock().unwrap() = Some(lease.token.clone());
    let mut abort = lease.abort.clone();
    match self.start {
      Behave::HangsOnce if first => std::future::pending().await,
      Behave::SlowOnce(took) if first => {
        tokio::time::sleep(took).await;
        self.push("settled late".into());
        return Ok(());
      }
      Behave::Quick | Behave::HangsOnce | Behave::SlowOnce(_) => {}
      Behave::UntilAborted => {
        let reason = abort.aborted().await;
        self.push(format!("aborted {}", reason.as_str()));
        return Err("aborted".into());
      }
      Behave::Forever => std::future::pending().await,
      Behave::Fail => return Err("no".into()),
    }
    self.push("started".into());
    Ok(())
  }
  async fn stop(&self, session: String, reason: StopReason) -> std::result::Result<(), String> {
    self.push(format!("stop {} {session}", reason.as_str()));
    match self.stop {
      Behave::Forever => std::future::pending().await,
      Behave::Fail => Err("stop failed".into()),
      _ => {
        self.push("stopped".into());
        Ok(())
      }
    }
  }
  fn event(&self, event: FleetEvent) {
    self.push(format!("event {event:?}"));
  }
}

struct Rig {
  _dir: tempfile::TempDir,
  tier: Arc<FaultTier>,
  store: Store,
  timing: Timing,
}

const SESSION: &str = "RemoteAuth-s0";

impl Rig {
  async fn new() -> Self {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let inner = LocalDirTier::open(&store_dir).unwrap();
    inner.put(&SessionKey::parse(SESSION).unwrap(), b"x".to_vec()).await.unwrap();
    let tier = Arc::new(FaultTier {
      inner,
      mode: Mutex::new(Mode::Pass),
      renewed: Mutex::new(Vec::new()),
      acquires: AtomicUsize::new(0),
      lists: AtomicUsize::new(0),
    });
    let config = StoreConfig { data_path: dir.path().join("auth"), pack: PackOptions::default(), local_dir: None };
    let store = Store::new(Some(tier.clone()), None, config).unwrap();
    let ms = |ms| Some(Duration::from_millis(ms));
    let timing = Timing::new(ms(3000), ms(600), ms(1000)).unwrap();
    Self { _dir: dir, tier, store, timing }
  }

  fn join(&self, hooks: Arc<Hooks2>) -> (Fleet, tokio::task::JoinHandle<()>) {
    let (fleet, run) = self.join_result(hooks).unwrap();
    (fleet, tokio::spawn(run))
  }

  fn join_result(
    &self,
    hooks: Arc<Hooks2>,
  ) -> crate::error::Result<(Fleet, impl std::future::Future<Output = ()> + Send + 'static)> {
    let config = FleetConfig {
      group: "g".into(),
      worker_id: "w".into(),
      capacity: 4,
      timing: self.timing,
      max_concurrent_starts: 2,
      unassigned_alert: Duration::from_secs(60),
      backup_list_every: FleetConfig::DEFAULT_BACKUP_LIST_EVERY,
      start_timeout: FleetConfig::DEFAULT_START_TIMEOUT,
    };
    Fleet::join(self.store.clone(), config, hooks)
  }
}

pub(super) async fn until(what: &str, done: impl Fn() -> bool) {
  let _ = what;
  for _ in 0..2000 {
    if done() {
      return;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  panic!("never happened: {what}");
}

impl std::fmt::Debug for Hooks2 {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let log = self.log.lock().unwrap();
    let t0 = log.first().map(|(t, _)| *t);
    f.debug_list().entries(log.iter().map(|(t, w)| format!("{:?} {w}", *t - t0.unwrap()))).finish()
  }
}

/// Cut off (hanging calls, or failing ones) after a few renewals: the stop begins exactly at the local deadline.
async fn stops_at_the_deadline(mode: Mode) {
  let rig = Rig::new().await;
  let hooks = Hooks2::new(Behave::Quick, Behave::Quick);
  let (_fleet, _task) = rig.join(hooks.clone());
  until("running", || hooks.has("started")).await;
  tokio::time::sleep(Duration::from_millis(2500)).await;
  rig.tier.set(mode);
  until("stopped", || hooks.has("stop lost")).await;
  let began = hooks.when("stop lost").unwrap();
  let due = rig.tier.last_renewal() + rig.timing.stop_after();
  // The paused clock fires timers exactly: the stop begins at the deadline (never after), not when a call returns.
  assert!(began >= due && began - due < Duration::from_millis(5), "{mode:?}: began {:?} after due", began - due);
  assert!(began + rig.timing.stop_timeout <= rig.tier.last_renewal() + rig.timing.ttl);
  // It could not give the lease back, so it keeps it fenced: this store's writes of the session are refused,
  // though the tier (whose clock did not move) still holds the lease for that token.
  rig.tier.set(Mode::Pass);
  let err = rig.store.renew_lease(SESSION, &hooks.token(), rig.timing.ttl).await.unwrap_err();
  assert_eq!(err.code(), "ERR_LEASE_LOST");
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_calls_hang_stops_at_its_local_deadline() {
  stops_at_the_deadline(Mode::Hang).await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_calls_fail_stops_at_its_local_deadline() {
  stops_at_the_deadline(Mode::Fail).await;
}

#[tokio::test(start_paused = true)]
async fn a_start_the_lease_no_longer_backs_is_aborted_then_stopped_before_expiry() {
  let rig = Rig::new().await;
  let hooks = Hooks2::new(Behave::UntilAborted, Behave::Quick);
  let (_fleet, _task) = rig.join(hooks.clone());
  until("starting", || hooks.has("start")).await;
  tokio::time::sleep(Duration::from_millis(1500)).await;
  rig.tier.set(Mode::Hang);
  for _ in 0..2000 {
    if hooks.has("stopped") {
      break;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  assert!(hooks.has("stopped"), "{hooks:?}");
  let due = rig.tier.last_renewal() + rig.timing.stop_after();
  let aborted = hooks.when("aborted lost").expect("onStart's signal fired");
  assert!(aborted >= due && aborted - due < Duration::from_millis(5));
  let stop = hooks.when("stop lost").expect("onStop follows an abandoned start");
  assert!(stop >= aborted && hooks.when("stopped").unwrap() <= rig.tier.last_renewal() + rig.timing.ttl);
}

/// An onStop that hangs (close) or throws (drain): reported, bounded, and the lease kept fenced, not released.
#[tokio::test(start_paused = true)]
async fn a_failed_stop_keeps_the_fence_and_close_or_drain_still_resolves() {
  for (stop, drain) in [(Behave::Forever, false), (Behave::Fail, true)] {
    let rig = Rig::new().await;
    let hooks = Hooks2::new(Behave::Quick, stop);
    let (fleet, task) = rig.join(hooks.clone());
    until("running", || hooks.has("started")).await;
    let token = hooks.token();
    let began = Instant::now();
    if drain {
      fleet.drain().await;
    } else {
      fleet.close().await;
      until("loop ended", || task.is_finished()).await;
    }
    // Bounded by the stop timeout (plus a round of the loop), and reported.
    assert!(began.elapsed() <= rig.timing.stop_timeout + rig.timing.renew_every, "{:?}", began.elapsed());
    assert!(hooks.has("event StopFailed"), "{hooks:?}");
    // Not released: nobody else can take it before it expires, and this store's writes are refused.
    let config =
      StoreConfig { data_path: rig._dir.path().join("other"), pack: PackOptions::default(), local_dir: None };
    let other = Store::new(Some(rig.tier.clone()), None, config).unwrap();
    assert_eq!(other.acquire_lease(SESSION, rig.timing.ttl).await.unwrap_err().code(), "ERR_LEASE_HELD");
    let err = rig.store.renew_lease(SESSION, &token, rig.timing.ttl).await.unwrap_err();
    assert_eq!(err.code(), "ERR_LEASE_LOST");
  }
}

#[tokio::test(start_paused = true)]
async fn close_and_drain_resolve_while_on_start_never_settles() {
  for drain in [false, true] {
    let rig = Rig::new().await;
    let hooks = Hooks2::new(Behave::Forever, Behave::Quick);
    let (fleet, _task) = rig.join(hooks.clone());
    until("starting", || hooks.has("start")).await;
    let began = Instant::now();
    if drain {
      fleet.drain().await;
    } else {
      fleet.close().await;
    }
    assert!(began.elapsed() <= rig.timing.stop_timeout + rig.timing.renew_every, "{:?}", began.elapsed());
    assert!(hooks.has("event StartFailed"), "the start that never settled is reported: {hooks:?}");
    assert!(hooks.has(if drain { "stop drain" } else { "stop close" }));
  }
}

/// One member per store: a second `fleet()` on it would hold the same lease tokens as the first.
#[tokio::test(start_paused = true)]
async fn a_store_runs_one_fleet_member_at_a_time() {
  let rig = Rig::new().await;
  let (fleet, _task) = rig.join(Hooks2::new(Behave::Quick, Behave::Quick));
  let config = FleetConfig {
    group: "other".into(),
    worker_id: "w2".into(),
    capacity: 1,
    timing: rig.timing,
    max_concurrent_starts: 1,
    unassigned_alert: Duration::from_secs(60),
    backup_list_every: FleetConfig::DEFAULT_BACKUP_LIST_EVERY,
    start_timeout: FleetConfig::DEFAULT_START_TIMEOUT,
  };
  let second = Fleet::join(rig.store.clone(), config.clone(), Hooks2::new(Behave::Quick, Behave::Quick));
  assert_eq!(second.err().unwrap().code(), "ERR_INVALID_OPTION");
  fleet.close().await;
  assert!(Fleet::join(rig.store.clone(), config, Hooks2::new(Behave::Quick, Behave::Quick)).is_ok());
}

/// The store's `close()` closes its member as `fleet.close()` does (onStop 'close', lease released, left) before
/// it resolves; a second close is harmless, and the closed store takes no new member.
#[tokio::test(start_paused = true)]
async fn closing_the_store_closes_its_fleet_member_first() {
  let rig = Rig::new().await;
  let hooks = Hooks2::new(Behave::Quick, Behave::Quick);
  let (_fleet, task) = rig.join(hooks.clone());
  until("running", || hooks.has("started")).await;
  rig.store.close().await;
  assert!(hooks.has("stop close") && hooks.has("stopped"), "{hooks:?}");
  assert!(task.is_finished(), "the member's loop ended before close() resolved");
  let config = StoreConfig { data_path: rig._dir.path().join("other"), pack: PackOptions::default(), local_dir: None };
  let other = Store::new(Some(rig.tier.clone()), None, config).unwrap();
  other.acquire_lease(SESSION, rig.timing.ttl).await.expect("released, not left to expire");
  rig.store.close().await;
  assert_eq!(rig.join_result(hooks).err().unwrap().code(), "ERR_INVALID_OPTION");
}

/// A session whose lease another token holds: tried again about once per renewEveryMs (backing off), and the
/// retries do not wake the loop into extra rounds (each lists every session).
#[tokio::test(start_paused = true)]
async fn a_lease_held_elsewhere_is_retried_at_most_once_per_renew_interval() {
  let rig = Rig::new().await;
  let config = StoreConfig { data_path: rig._dir.path().join("other"), pack: PackOptions::default(), local_dir: None };
  let other = Store::new(Some(rig.tier.clone()), None, config).unwrap();
  other.acquire_lease(SESSION, Duration::from_secs(3600)).await.unwrap();
  let hooks = Hooks2::new(Behave::Quick, Behave::Quick);
  let (_fleet, _task) = rig.join(hooks.clone());
  let (acquires, lists) = (rig.tier.acquires.load(SeqCst), rig.tier.lists.load(SeqCst));
  tokio::time::sleep(Duration::from_secs(6)).await;
  let acquires = rig.tier.acquires.load(SeqCst) - acquires;
  let lists = rig.tier.lists.load(SeqCst) - lists;
  // 6 s at renewEveryMs 600: 10 rounds at most (plus a recheck or two), fewer acquires as the retry backs off.
  assert!((1..=5).contains(&acquires), "{acquires} acquires");
  assert!(lists <= 12, "{lists} listings");
  assert!(!hooks.has("start"));
}

/// Issue #25 item 12, the later case: cut off past its deadline (its session stopped as lost), the worker finds on
/// reconnecting that another instance claimed its id meanwhile. It reports `DuplicateWorker` and closes without
/// leaving: the other's heartbeat stands.
#[tokio::test(start_paused = true)]
async fn a_worker_whose_id_was_claimed_while_it_was_cut_off_reports_and_closes() {
  let rig = Rig::new().await;
  let hooks = Hooks2::new(Behave::Quick, Behave::Quick);
  let (_fleet, task) = rig.join(hooks.clone());
  until("running", || hooks.has("started")).await;
  rig.tier.set(Mode::Fail);
  until("stopped as lost", || hooks.has("stopped")).await;
  // Its heartbeat gone (the membership's expiry runs on the wall clock, which the paused one does not move) and
  // the id claimed by another instance.
  let m = &rig.tier.inner;
  crate::tier::ProcessMembership::new(m.dir()).expire("g", "w");
  m.beat("g", "w", "another", b"{}", Duration::from_secs(3600)).await.unwrap();
  rig.tier.set(Mode::Pass);
  tokio::time::timeout(Duration::from_secs(30), task).await.expect("it closes").unwrap();
  assert!(hooks.has("event DuplicateWorker"), "{hooks:?}");
  assert_eq!(hooks.log.lock().unwrap().iter().filter(|(_, w)| w.starts_with("start ")).count(), 1, "{hooks:?}");
  let live = m.members("g").await.unwrap();
  assert_eq!(live.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["w"]);
  let err = m.beat("g", "w", "a third", b"{}", Duration::from_secs(1)).await.unwrap_err();
  assert_eq!(err.code(), "ERR_FLEET_DUPLICATE_WORKER", "the other's claim stands");
}
