//! One seeded schedule: a few workers over a few sessions, each with its faults (latency, cuts, a crash, a drain)
//! and its hooks' misbehaviour, all drawn from the seed; then the run on paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::check::{self, Bounds, Outcome};
use super::faults::{Cut, Faults, FaultyTier, Window};
use super::hooks::{HookPlan, SimHooks, Timeline, What};
use super::rng::Rng;
use super::tier::SimTier;
use crate::archive::PackOptions;
use crate::fleet::{Fleet, FleetConfig, Timing};
use crate::store::{Store, StoreConfig};

/// Which faults a schedule may draw. The default is what today's fleet keeps its promises under; each flag adds
/// a class of faults (the regression cases in `cases` name what each breaks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Profile {
  /// Cuts that drop packets (calls hang until healed) instead of refusing connections.
  pub silent_cuts: bool,
  /// `onStop` taking up to `stopTimeoutMs` (the whole budget the timing rule promises it).
  pub slow_stops: bool,
  /// `onStart` taking longer than the ttl (a Chromium start on a slow host) while cut off.
  pub long_starts: bool,
  /// `onStop` that throws.
  pub failing_stops: bool,
  /// `onStart` / `onStop` that never settle.
  pub hangs: bool,
  /// Two workers (two `store.fleet()`) on one store.
  pub shared_store: bool,
  /// Every worker drains (a rolling deploy, or the last replica): nobody can take the sessions, so each drain
  /// is held to about one stop round, and no session need run afterwards.
  pub drain_everyone: bool,
  /// Not a fault the fleet must survive: a tier whose leases never refuse, to check the checks.
  pub lax_leases: bool,
  /// Not a fault either: leases renewed one by one, as on a Redis Cluster or the embedded tier (the tier's beats
  /// give no epoch).
  pub per_session_leases: bool,
}

#[derive(Debug, Clone)]
pub struct WorkerPlan {
  pub id: String,
  pub capacity: u32,
  pub join_at: Duration,
  pub cuts: Vec<(Duration, Duration, Cut)>,
  pub crash_at: Option<Duration>,
  pub drain_at: Option<Duration>,
  /// Joins through this earlier worker's store (and process) instead of its own.
  pub store_of: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
  pub seed: u64,
  pub profile: Profile,
  pub timing: Timing,
  /// `startTimeoutMs`: between one and two ttls, so no start of the default profile (each under a ttl) times out,
  /// and a long one (`long_starts`, up to two ttls) may, then settle after it was given up.
  pub start_timeout: Duration,
  pub max_starts: usize,
  pub sessions: Vec<String>,
  pub workers: Vec<WorkerPlan>,
  /// Every fault has ended by then (cuts healed, crashes done, hooks well-behaved).
  pub heal: Duration,
  pub hooks: HookPlan,
  pub latency: Duration,
  pub spike: Duration,
}

const MS: fn(u64) -> Duration = Duration::from_millis;

impl Scenario {
  pub fn new(seed: u64, profile: Profile) -> Self {
    let mut rng = Rng::new(seed);
    let (ttl, renew, stop) = [(3000, 600, 1000), (1500, 300, 500), (900, 150, 300)][rng.below(3) as usize];
    let timing = Timing::new(Some(MS(ttl)), Some(MS(renew)), Some(MS(stop))).expect("valid timing");
    let sessions: Vec<String> = (0..rng.between(1, 10)).map(|i| format!("RemoteAuth-s{i}")).collect();
    let count = rng.between(2, 4) as usize;
    // One worker neither crashes nor drains, and it alone can hold every session: liveness is then required.
    let keeper = rng.below(count as u64) as usize;
    // Not the second member on a shared store: the fleet refuses it at join (issue #25 item 4), so it holds nothing.
    let keeper = if profile.shared_store && keeper == 1 { 0 } else { keeper };
    let span = ttl * 4;
    let mut workers = Vec::new();
    for i in 0..count {
      let at = |rng: &mut Rng| MS(rng.between(ttl / 3, span));
      let mut cuts = Vec::new();
      if rng.chance(600) {
        let from = at(&mut rng);
        let len = MS(rng.between(renew / 2, ttl * 2));
        let silent = profile.silent_cuts && rng.chance(700);
        cuts.push((from, from + len, if silent { Cut::Silent } else { Cut::Refused }));
      }
      let shares = profile.shared_store && i == 1;
      // With every worker draining, none crashes: a crashed worker still looks alive until its heartbeat
      // expires, so a drain would hand sessions to it (the handoff bound, its taker failing), not stop them.
      let crashes = !profile.drain_everyone && i != keeper && !shares && i != 0;
      let crash_at = (crashes && rng.chance(300)).then(|| at(&mut rng));
      let drains = (i != keeper || profile.drain_everyone) && crash_at.is_none();
      let drain_at = (drains && (profile.drain_everyone || rng.chance(300))).then(|| at(&mut rng));
      let capacity = if i == keeper { sessions.len() as u32 } else { rng.between(1, 8) as u32 };
      let join_at = if i == 0 { Duration::ZERO } else { MS(rng.below(ttl)) };
      let (crash_at, drain_at) = (crash_at.map(|t| t.max(join_at)), drain_at.map(|t| t.max(join_at)));
      let store_of = shares.then_some(0);
      workers.push(WorkerPlan { id: format!("w{i}"), capacity, join_at, cuts, crash_at, drain_at, store_of });
    }
    if profile.drain_everyone {
      // Every replica drains at once (a rolling deploy's last step): at each drain nobody is left to take the
      // sessions. Drains at different times would hand the first drainers' sessions to the later ones, and
      // those handoffs have the handoff bound, not the one-stop-round bound this class checks.
      let last = workers.iter().filter_map(|w| w.drain_at).max();
      workers.iter_mut().for_each(|w| w.drain_at = w.drain_at.and(last));
    }
    if profile.shared_store {
      // The shared store's two workers share its process: one set of cuts.
      workers[1].cuts = workers[0].cuts.clone();
    }
    let ends = workers.iter().flat_map(|w| w.cuts.iter().map(|c| c.1).chain(w.crash_at).chain(Some(w.join_at)));
    let heal = ends.max().unwrap_or_default() + MS(renew);
    let mut hooks = HookPlan::calm(Instant::now());
    // A start that ends, and its stop with it, before the lease taken for it can expire (seed 804 of the sweep
    // found a longer one: issue #25 item 3, the `long_starts` class).
    hooks.start = MS(rng.between(10, (ttl - stop).min(1000)));
    hooks.start_fail_per_mille = rng.below(150);
    // A stop well within its budget (the detection of a lost lease takes up to one renewal interval).
    hooks.stop = MS(rng.between(5, (stop - renew).min(300)));
    if profile.slow_stops {
      hooks.stop = MS(stop);
    }
    if profile.long_starts {
      hooks.long_start_per_mille = 400;
      hooks.long_start = MS(ttl * 2);
    }
    if profile.failing_stops {
      hooks.stop_fail_per_mille = 250;
    }
    if profile.hangs {
      hooks.start_hang_per_mille = 60;
      hooks.stop_hang_per_mille = 60;
    }
    let latency = Duration::from_micros(rng.between(100, 5000));
    let spike = MS(rng.between(renew / 10, renew * 2 / 3));
    let max_starts = rng.between(1, 3) as usize;
    // A stream of its own: the schedules drawn above stay those of the seeds the regression cases name.
    let start_timeout = MS(Rng::keyed(seed, &["start timeout"], 0).between(ttl, ttl * 2));
    Self { seed, profile, timing, start_timeout, max_starts, sessions, workers, heal, hooks, latency, spike }
  }

  pub fn bounds(&self) -> Bounds {
    let t = self.timing;
    // After the faults heal: a dead worker's heartbeat and leases run out (ttl), the others notice (a renewal
    // interval), a start that failed waits a ttl before its retry, and the starts take their time.
    let mut settle = t.ttl * 3 + t.renew_every * 4 + MS(1000);
    if self.profile.hangs || self.profile.long_starts {
      // A start that hangs (or runs long) from just before the faults heal: given up at `startTimeoutMs`, onStop
      // (`stopTimeoutMs`, its call and the owner entry's removal), its lease left to expire (`ttl`), then the
      // next round and a retry that finds the lease still renewed by a call in flight.
      settle = settle.max(self.start_timeout + t.stop_timeout + t.ttl + t.renew_every * 4 + MS(1000));
    }
    let close = t.ttl * 2 + t.renew_every * 4;
    // With nobody to take the sessions, one stop round as docs/fleet.md states it ("Draining and closing"):
    // `renewEveryMs + stopTimeoutMs`, all stops in parallel. Otherwise the handoffs take their turns, each
    // within `settle`.
    let drain = if self.profile.drain_everyone { t.renew_every + t.stop_timeout } else { settle };
    // The worker's next round after it runs or the faults heal: a tick, the round's reads and the entry's write
    // (each up to a latency spike, two thirds of an interval), with room.
    let owner_grace = t.renew_every * 3;
    Bounds { settle, drain, close, owner_grace }
  }
}

struct Running {
  fleet: Fleet,
  task: tokio::task::JoinHandle<()>,
  faults: Arc<Faults>,
  store: Store,
  tier: FaultyTier,
}

pub(super) fn store_over(tier: FaultyTier) -> Store {
  let data_path = std::env::temp_dir().join("wwebjs-fleet-sim");
  let config = StoreConfig { data_path, pack: PackOptions::default(), local_dir: None };
  Store::new(Some(Arc::new(tier)), None, config).expect("a store over the simulated tier")
}

/// Runs the schedule on its own paused, single-threaded runtime: same seed, same run.
pub fn run(seed: u64, profile: Profile) -> Outcome {
  let runtime =
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
  runtime.block_on(simulate(Scenario::new(seed, profile)))
}

async fn simulate(mut scenario: Scenario) -> Outcome {
  let t0 = Instant::now();
  let mut sim = SimTier::with_sessions(&scenario.sessions, scenario.profile.lax_leases);
  sim.per_session = scenario.profile.per_session_leases;
  let sim = Arc::new(sim);
  let timeline = Timeline::default();
  scenario.hooks.until = t0 + scenario.heal;
  let bounds = scenario.bounds();
  let mut workers: Vec<Option<Running>> = Vec::new();
  let mut order: Vec<(Duration, usize, u8)> = Vec::new();
  for (i, w) in scenario.workers.iter().enumerate() {
    order.push((w.join_at, i, 0));
    order.extend(w.crash_at.map(|at| (at, i, 1)));
    order.extend(w.drain_at.map(|at| (at, i, 2)));
    workers.push(None);
  }
  order.sort();
  let mut drains = Vec::new();
  for (at, i, act) in order {
    tokio::time::sleep_until(t0 + at).await;
    let plan = &scenario.workers[i];
    match act {
      0 => {
        let shared = plan.store_of.and_then(|j| workers[j].as_ref()).map(|r| (r.store.clone(), r.tier.clone()));
        let (store, tier) = shared.unwrap_or_else(|| {
          let mut faults = Faults::new(scenario.seed, &plan.id, scenario.latency, 20, scenario.spike);
          faults.windows =
            plan.cuts.iter().map(|&(from, to, cut)| Window { from: t0 + from, to: t0 + to, cut }).collect();
          let tier = FaultyTier { sim: sim.clone(), faults: Arc::new(faults) };
          (store_over(tier.clone()), tier)
        });
        let faults = tier.faults.clone();
        let hooks = SimHooks::new(scenario.seed, &plan.id, scenario.hooks.clone(), timeline.clone(), faults.clone());
        let config = FleetConfig {
          group: "sim".into(),
          worker_id: plan.id.clone(),
          capacity: plan.capacity,
          timing: scenario.timing,
          max_concurrent_starts: scenario.max_starts,
          unassigned_alert: scenario.timing.ttl * 2,
          backup_list_every: FleetConfig::DEFAULT_BACKUP_LIST_EVERY,
          start_timeout: scenario.start_timeout,
        };
        match Fleet::join(store.clone(), config, Arc::new(hooks)) {
          Ok((fleet, loop_)) => workers[i] = Some(Running { fleet, task: tokio::spawn(loop_), faults, store, tier }),
          // A fleet that refuses a second member on one store keeps the promise too (issue #25 item 4).
          Err(err) if plan.store_of.is_some() => timeline.push(&plan.id, "-", What::Event(format!("refused: {err}"))),
          Err(err) => panic!("{} could not join: {err}", plan.id),
        }
      }
      1 => {
        let Some(w) = &workers[i] else { continue };
        w.faults.crash();
        w.task.abort();
        timeline.push(&plan.id, "-", What::Crashed);
      }
      _ => {
        let Some(w) = &workers[i] else { continue };
        let (fleet, timeline, id) = (w.fleet.clone(), timeline.clone(), plan.id.clone());
        drains.push(tokio::spawn(async move {
          timeline.push(&id, "-", What::DrainCalled);
          fleet.drain().await;
          timeline.push(&id, "-", What::Drained);
        }));
      }
    }
  }
  let heal = t0 + scenario.heal;
  let checked_at = heal + bounds.settle;
  let (from, every) = (heal + bounds.owner_grace, scenario.timing.renew_every);
  let sampling = tokio::spawn(check::sample_owners(sim.clone(), scenario.sessions.clone(), from, checked_at, every));
  tokio::time::sleep_until(checked_at).await;
  let samples = sampling.await.expect("the sampler ends by checked_at");
  // While the sessions run on their new owners: the fence of each failed stop, tried through the old worker's
  // store. A store two workers share holds one token for both (the probe could not tell whose write it is).
  let stores: Vec<(String, Store)> = workers
    .iter()
    .zip(&scenario.workers)
    .filter(|(_, p)| p.store_of.is_none() && !scenario.workers.iter().any(|q| q.store_of.is_some()))
    .filter_map(|(w, p)| w.as_ref().map(|w| (p.id.clone(), w.store.clone())))
    .collect();
  let fences = check::probe_fences(&timeline.entries(), &stores, &sim).await;
  let live: Vec<usize> = (0..workers.len()).filter(|&i| scenario.workers[i].crash_at.is_none()).collect();
  let mut closes = Vec::new();
  for &i in &live {
    let Some(w) = workers[i].as_ref() else { continue };
    let (fleet, timeline, id) = (w.fleet.clone(), timeline.clone(), scenario.workers[i].id.clone());
    closes.push(tokio::spawn(async move {
      timeline.push(&id, "-", What::CloseCalled);
      fleet.close().await;
      timeline.push(&id, "-", What::Closed);
    }));
  }
  // Long enough for any close to have ended, bound or not: a late one is reported with its time.
  let _ = tokio::time::timeout(bounds.close + bounds.settle, futures::future::join_all(closes.iter_mut())).await;
  let entries = timeline.entries();
  let mut outcome = check::analyse(&scenario, &bounds, t0, checked_at, &entries, &sim, &samples);
  outcome.violations.extend(fences);
  drop(drains);
  drop(closes);
  outcome
}
