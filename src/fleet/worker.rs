//! A worker's loop. Every `renew_every`: beat (and read who is live), renew each held lease, stop what is past
//! its deadline, then compare the assignment with what it runs: hand off (bounded) what moved away, start
//! (bounded, through the lease) what came to it. A start or stop that finishes wakes the loop for the
//! assignment step alone, so a handoff chain does not wait a whole interval per link.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::assign::{assign, Pin, Worker};
use super::state::{Phase, Run, Shared, State};
use super::status::{WorkerInfo, WorkerStatus};
use super::{parse_owner, FleetEvent, Hooks, StopReason, OWNERS, PINS};
use crate::counters::FleetSnapshot;
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::tier::Member;

pub(super) struct Ctx {
  pub(super) shared: Arc<Shared>,
  pub(super) store: Store,
  pub(super) hooks: Arc<dyn Hooks>,
  /// The live members of the last heartbeat that reached the tier.
  members: Mutex<Option<Vec<Member>>>,
  /// Where the tier carries leases on this worker's epoch (`Beat::epoch`): the epoch, and when the last beat that
  /// kept it alive was sent. Every lease taken under it is held until about `ttl` after that beat.
  pub(super) epoch: Mutex<Option<(u64, Instant)>>,
  /// When another member's heartbeat runs out before the next tick: beat again then, so a dead worker's sessions
  /// move about `ttl` after its last beat rather than up to a whole interval later.
  recheck: Mutex<Option<Instant>>,
  joined: Instant,
  /// This instance's claim on its worker id (random): the tier refuses a beat under the id while another
  /// instance's claim is live, so two processes given one id never publish as one worker.
  claim: String,
  /// The bucket's sessions, as last listed (`bucket`).
  pub(super) bucket: Mutex<super::bucket::Bucket>,
}

enum Tick {
  /// Beat, renew, assign.
  Full,
  /// Beat (a member's heartbeat ran out), assign.
  Beat,
  /// A start or stop finished: assign.
  Wake,
}

/// What the tier said this round, read before the state is locked.
struct Round {
  members: Vec<Member>,
  /// The store's sessions: the primary's and the bucket's (`bucket`).
  sessions: Vec<String>,
  /// Those the primary listed: any other is written back from its backup before it runs on or starts.
  in_primary: HashSet<String>,
  pins: HashMap<String, Pin>,
  /// Session → (owner id, its onStart resolved).
  owners: BTreeMap<String, (String, bool)>,
}

pub async fn run(shared: Arc<Shared>, store: Store, hooks: Arc<dyn Hooks>) {
  let members = Mutex::new(None);
  let claim = crate::store::random_token();
  let (recheck, joined) = (Mutex::new(None), Instant::now());
  let bucket = Mutex::default();
  let epoch = Mutex::new(None);
  let ctx = Arc::new(Ctx { shared, store, hooks, members, epoch, recheck, joined, claim, bucket });
  let every = ctx.shared.config.timing.renew_every;
  // Stops run on their own timer, never behind a call to the tier; it ends with this loop.
  let deadlines = tokio::spawn(ctx.clone().deadline_timer());
  let _end = EndsWith(deadlines.abort_handle());
  let mut timer = tokio::time::interval(every);
  timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
  loop {
    let recheck = *ctx.recheck.lock().unwrap_or_else(|p| p.into_inner());
    let tick = tokio::select! {
      biased; // a fixed order, so a seed of the simulation (sim/) replays exactly
      _ = timer.tick() => Tick::Full,
      _ = async { tokio::time::sleep_until(recheck.unwrap()).await }, if recheck.is_some() => Tick::Beat,
      _ = ctx.shared.wake.notified() => {
        // Coalesces a burst of finished starts and stops into one round.
        tokio::time::sleep((every / 4).min(Duration::from_millis(100))).await;
        Tick::Wake
      }
    };
    match tick {
      // Leases carried by the epoch need the beat's answer first: those of an earlier epoch move onto its epoch.
      Tick::Full if ctx.epoch().is_some() => {
        ctx.beat().await;
        ctx.renew().await;
      }
      Tick::Full => {
        tokio::join!(ctx.beat(), ctx.renew());
      }
      Tick::Beat => ctx.beat().await,
      Tick::Wake => {}
    }
    if ctx.shared.lock().closing {
      if ctx.close_step().await {
        return;
      }
      continue;
    }
    if let Some(round) = ctx.read_round().await {
      ctx.step(round);
    }
  }
}

/// Aborts a task when dropped (the loop returned, or its task was aborted).
struct EndsWith(tokio::task::AbortHandle);

impl Drop for EndsWith {
  fn drop(&mut self) {
    self.0.abort();
  }
}

/// Bounds one call to the tier: a call that hangs (a partition that drops packets) must not hold the loop.
pub(super) async fn within<T>(limit: Duration, call: impl Future<Output = Result<T>>) -> Option<T> {
  tokio::time::timeout(limit, call).await.ok().and_then(|r| r.ok())
}

impl Ctx {
  pub(super) fn cfg(&self) -> &super::FleetConfig {
    &self.shared.config
  }

  fn info(&self, state: &State) -> WorkerInfo {
    let now = Instant::now();
    WorkerInfo {
      capacity: self.cfg().capacity,
      draining: state.draining || state.closing,
      running: state.runs.values().filter(|r| r.phase == Phase::Running).count() as u64,
      handoffs: state.handoffs,
      failovers: state.failovers,
      unassigned: state.unassigned.len() as u64,
      oldest_unassigned_ms: state
        .unassigned
        .values()
        .map(|t| now.duration_since(*t).as_millis() as u64)
        .max()
        .unwrap_or(0),
    }
  }

  /// Beats, after detaching the leases the store no longer backs from the epoch (a beat would hold them on for
  /// as long as this worker lives; if they cannot be detached, no beat). A beat under the same epoch renews every
  /// lease held under it, as of when it was sent.
  async fn beat(self: &Arc<Self>) {
    let info = self.info(&self.shared.lock());
    let json = serde_json::to_vec(&info).expect("plain struct");
    let Ok(membership) = self.store.membership() else { return };
    let (cfg, timing) = (self.cfg(), self.cfg().timing);
    let sent = Instant::now();
    let beat = async {
      self.store.detach_unbacked().await?;
      membership.beat(&cfg.group, &cfg.worker_id, &self.claim, &json, timing.ttl).await
    };
    let members = match tokio::time::timeout(timing.renew_every, beat).await {
      Ok(Ok(beat)) => {
        if let Some(n) = beat.epoch {
          self.carried(n, sent);
        }
        Some(beat.members)
      }
      Ok(Err(err @ StoreError::DuplicateWorker(_))) => {
        self.displaced(err);
        None
      }
      _ => None,
    };
    let starting = {
      let mut state = self.shared.lock();
      state.connected = members.is_some();
      state.runs.values().filter(|r| r.phase == Phase::Starting).count() as u64
    };
    let mut members_now = self.members.lock().unwrap_or_else(|p| p.into_inner());
    // The store's metrics show this worker as of this beat; the member count stays that of the last one heard.
    let workers = members.as_ref().or(members_now.as_ref()).map_or(0, |m| m.len() as u64);
    self.store.counters().set_fleet(Some(FleetSnapshot {
      group: cfg.group.clone(),
      worker: cfg.worker_id.clone(),
      capacity: info.capacity,
      draining: info.draining,
      connected: members.is_some(),
      workers,
      running: info.running,
      starting,
      handoffs: info.handoffs,
      failovers: info.failovers,
      unassigned: info.unassigned,
      oldest_unassigned_ms: info.oldest_unassigned_ms,
    }));
    // The first other heartbeat that runs out before the next tick (margin: the tier drops it strictly after).
    let me = cfg.worker_id.as_str();
    let soonest = members.iter().flatten().filter(|m| m.id != me).map(|m| m.expires_in).min();
    *self.recheck.lock().unwrap_or_else(|p| p.into_inner()) =
      soonest.filter(|left| *left < timing.renew_every).map(|left| Instant::now() + left + Duration::from_millis(20));
    *members_now = members;
  }

  /// Another live instance claims this worker's id: either it was there first (this one's first beat), or it took
  /// the id after this one's heartbeat expired (this one was cut off for longer than ttl, so its deadlines have
  /// stopped its sessions already). Whatever still runs stops as lost, the event says why, and the worker closes
  /// rather than retrying (and alerting) forever.
  fn displaced(self: &Arc<Self>, err: StoreError) {
    let running: Vec<String> = {
      let mut state = self.shared.lock();
      if state.displaced {
        return;
      }
      state.displaced = true;
      state.closing = true;
      for run in state.runs.values() {
        run.cancel_start(StopReason::Lost);
      }
      state.runs.iter().filter(|(_, r)| r.phase == Phase::Running).map(|(s, _)| s.clone()).collect()
    };
    for session in running {
      self.spawn_stop(session, StopReason::Lost, false);
    }
    let id = self.cfg().worker_id.clone();
    self.hooks.event(FleetEvent::DuplicateWorker { id, code: err.code(), message: err.to_string() });
    self.shared.wake.notify_one();
  }

  async fn read_round(self: &Arc<Self>) -> Option<Round> {
    let members = self.members.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
    let membership = self.store.membership().ok()?;
    let (group, limit) = (&self.cfg().group, self.cfg().timing.renew_every);
    let (sessions, pins, owners) = tokio::join!(
      within(limit, self.store.session_keys()),
      within(limit, membership.map_all(group, PINS)),
      within(limit, membership.map_all(group, OWNERS)),
    );
    let primary: Vec<String> = sessions?.into_iter().map(|k| k.as_str().to_owned()).collect();
    let pins = pins?.into_iter().filter_map(|(s, v)| Some((s, Pin::parse(&v)?))).collect();
    let owners = owners?.into_iter().map(|(s, v)| (s, parse_owner(&v))).collect();
    let sessions = self.with_backups(&primary);
    Some(Round { members, sessions, in_primary: primary.into_iter().collect(), pins, owners })
  }

  /// The assignment step: decides under the lock, then spawns the starts and stops.
  fn step(self: &Arc<Self>, round: Round) {
    let cfg = self.cfg();
    let me = cfg.worker_id.as_str();
    let now = Instant::now();
    let mut state = self.shared.lock();
    let infos: Vec<(String, WorkerInfo)> = round
      .members
      .iter()
      .map(|m| (m.id.clone(), if m.id == me { self.info(&state) } else { WorkerInfo::parse(&m.info) }))
      .collect();
    let live: HashSet<&str> = infos.iter().map(|(id, _)| id.as_str()).collect();
    let workers: Vec<Worker> = infos
      .iter()
      .filter(|(_, info)| !info.draining && info.capacity > 0)
      .map(|(id, info)| Worker { id: id.clone(), capacity: info.capacity })
      .collect();
    let desired = assign(&round.sessions, &round.pins, &workers);
    let stored: HashSet<&str> = round.sessions.iter().map(String::as_str).collect();
    let owner_of = |s: &str| round.owners.get(s).cloned();
    let max = cfg.max_concurrent_starts;

    // Handed-off sessions stop counting once another live worker owns them (or after a round of failover time).
    let give_up = cfg.timing.failover_bound();
    state.handed_off.retain(|s, since| {
      let taken = owner_of(s).is_some_and(|(o, running)| running && o != me && live.contains(o.as_str()));
      stored.contains(s.as_str()) && !taken && now.duration_since(*since) < give_up
    });
    state.retry_after.retain(|_, until| *until > now);
    let wanted: HashSet<&str> = desired.iter().filter(|(_, t)| *t == me).map(|(s, _)| s.as_str()).collect();
    state.held_elsewhere.retain(|s, _| wanted.contains(s.as_str()));
    let State { held_elsewhere, owned_elsewhere, retry_after, .. } = &mut *state;
    owned_elsewhere.retain(|s| held_elsewhere.contains_key(s));
    for session in held_elsewhere.keys() {
      match owner_of(session) {
        Some((owner, _)) if owner != me => {
          owned_elsewhere.insert(session.clone());
        }
        // Seen owned, now given back: a handoff chain moves at the pace of its stops, not of this backoff.
        None if owned_elsewhere.remove(session) => {
          retry_after.remove(session);
        }
        _ => {}
      }
    }

    let mut outgoing = state.handed_off.len() + state.runs.values().filter(|r| r.handoff).count();
    let mut stops = Vec::new();
    let backups = self.store.has_backups();
    let mut missing = Vec::new();
    let mut running: Vec<&String> =
      state.runs.iter().filter(|(_, r)| r.phase == Phase::Running).map(|(s, _)| s).collect();
    running.sort();
    for session in running {
      let target = desired.get(session.as_str());
      if backups && !round.in_primary.contains(session.as_str()) {
        // The primary lost it (or it was deleted): asked of the store, which restores it or says it is deleted.
        missing.push(session.clone());
      }
      let reason = if !backups && !stored.contains(session.as_str()) {
        StopReason::Deleted
      } else if round.pins.get(session.as_str()) == Some(&Pin::Paused) {
        StopReason::Paused
      } else if target.is_some_and(|t| t == me) {
        continue;
      } else if state.draining {
        StopReason::Drain
      } else if target.is_some() {
        StopReason::Rebalance
      } else if matches!(round.pins.get(session.as_str()), Some(Pin::Worker(_))) {
        StopReason::Paused
      } else {
        continue; // nobody else should run it (capacity): keep it
      };
      // A handoff (someone else will start it) is bounded; a drained session nobody can take stops at once, so
      // a drain with no taker (the last replica, a whole fleet draining) takes one stop round, not a chain.
      let handoff = matches!(reason, StopReason::Drain | StopReason::Rebalance) && target.is_some();
      if handoff {
        if outgoing >= max {
          continue;
        }
        outgoing += 1;
      }
      stops.push((session.clone(), reason, handoff));
    }
    if state.draining {
      // Starts in flight are given up (onStart aborted, then onStop): a drain never waits on a start.
      for run in state.runs.values() {
        run.cancel_start(StopReason::Drain);
      }
    }

    let mut starts = Vec::new();
    let settled = now.duration_since(self.joined) >= cfg.timing.renew_every;
    state.queued.clear();
    if settled && !state.draining {
      let starting = state.runs.values().filter(|r| r.phase == Phase::Starting).count();
      let mut slots = max.saturating_sub(starting);
      let mut room = (cfg.capacity as usize).saturating_sub(state.runs.len());
      for (session, target) in &desired {
        if room == 0 {
          break;
        }
        if target != me || busy(&state, session) {
          continue;
        }
        let owner = owner_of(session);
        // An owner entry naming a worker that is gone: this start is a failover.
        let failover = owner.as_ref().is_some_and(|(o, _)| o != me && !live.contains(o.as_str()));
        let start = (session.clone(), failover, !round.in_primary.contains(session));
        if slots == 0 {
          // Beyond the slots, what no live worker owns waits in line for the next free slot rather than for the
          // next round; a session a live worker runs is handed off at its owner's pace, a few per round.
          if failover || owner.is_none() {
            state.queued.push_back(start);
            room -= 1;
          }
          continue;
        }
        state.runs.insert(session.clone(), Run::starting(now));
        starts.push(start);
        slots -= 1;
        room -= 1;
      }
    }

    // A running session's owner entry that does not say so (its write failed while the tier was unreachable, or
    // the tier lost it): written again, ordered by the lease, so it never replaces a later owner's entry.
    let stopping: HashSet<&String> = stops.iter().map(|(s, _, _)| s).collect();
    let repairs: Vec<(String, u64)> = state
      .runs
      .iter()
      .filter(|(s, r)| r.phase == Phase::Running && !stopping.contains(s))
      .filter(|(s, _)| owner_of(s).is_none_or(|(o, running)| o != me || !running))
      .map(|(s, r)| (s.clone(), r.generation))
      .collect();
    self.observe(&mut state, &round, &live, &infos);
    if !starts.is_empty() {
      // A drain waits for these too, and the deadline timer keeps them (no new round: nothing changed for it).
      self.shared.held_changed(&state);
      self.shared.deadline.notify_one();
    }
    drop(state);
    for (session, reason, handoff) in stops {
      self.spawn_stop(session, reason, handoff);
    }
    for start in starts {
      tokio::spawn(self.clone().start_then_next(start));
    }
    for (session, generation) in repairs {
      let this = self.clone();
      tokio::spawn(
        async move { within(this.cfg().timing.renew_every, this.set_owner(&session, generation, true)).await },
      );
    }
    self.keep_running(missing);
  }

  /// Unassigned sessions (and the alert), and the view `status()` reports.
  fn observe(&self, state: &mut State, round: &Round, live: &HashSet<&str>, infos: &[(String, WorkerInfo)]) {
    let now = Instant::now();
    let me = self.cfg().worker_id.as_str();
    let mut waiting = BTreeMap::new();
    for session in &round.sessions {
      if round.pins.get(session) == Some(&Pin::Paused) {
        continue;
      }
      let owner = round.owners.get(session).map(|(o, _)| o.clone());
      let owned = owner.is_some_and(|o| live.contains(o.as_str())) && owner_counts(state, session, me, round);
      if !owned {
        waiting.insert(session.clone(), state.unassigned.get(session).copied().unwrap_or(now));
      }
    }
    state.unassigned = waiting;
    state.alerted.retain(|s| state.unassigned.contains_key(s));
    let bound = self.cfg().unassigned_alert;
    let late: Vec<(String, u64)> = state
      .unassigned
      .iter()
      .filter(|(_, since)| now.duration_since(**since) >= bound)
      .map(|(s, since)| (s.clone(), now.duration_since(*since).as_millis() as u64))
      .collect();
    for (session, for_ms) in late {
      if state.alerted.insert(session.clone()) {
        self.hooks.event(FleetEvent::Unassigned { session, for_ms });
      }
    }
    let workers = infos.iter().map(|(id, info)| WorkerStatus { id: id.clone(), info: info.clone() }).collect();
    let pinned = round.pins.values().filter(|p| matches!(p, Pin::Worker(_))).count() as u64;
    let paused = round.pins.len() as u64 - pinned;
    state.view = super::state::View { workers, sessions: round.sessions.len() as u64, paused, pinned };
  }

  /// Closing: stops everything still running, gives up the starts in flight, and once nothing is held leaves the
  /// fleet. True when done.
  async fn close_step(self: &Arc<Self>) -> bool {
    let (empty, running): (bool, Vec<String>) = {
      let state = self.shared.lock();
      for run in state.runs.values() {
        run.cancel_start(StopReason::Close);
      }
      let running = state.runs.iter().filter(|(_, r)| r.phase == Phase::Running).map(|(s, _)| s.clone());
      (state.runs.is_empty(), running.collect())
    };
    if empty {
      let displaced = self.shared.lock().displaced;
      let limit = self.cfg().timing.renew_every;
      match self.store.membership() {
        // A lease this store gave up without a release (a failed stop) must expire after its ttl, not be freed by
        // the leave: detached first, or no leave (the heartbeat then runs out within ttl, the lease with it).
        Ok(m) if !displaced && within(limit, self.store.detach_unbacked()).await.is_some() => {
          within(limit, m.leave(&self.cfg().group, &self.cfg().worker_id, &self.claim)).await;
        }
        _ => {}
      }
      self.store.counters().set_fleet(None);
      self.store.leave_fleet();
      self.shared.mark_closed();
      return true;
    }
    for session in running {
      self.spawn_stop(session, StopReason::Close, false);
    }
    false
  }
}

/// Held here, handed off and not yet seen running elsewhere, or waiting for its retry: not to be started now.
pub(super) fn busy(state: &State, session: &str) -> bool {
  state.runs.contains_key(session) || state.handed_off.contains_key(session) || state.retry_after.contains_key(session)
}

/// A session counts as owned when its owner entry names a live worker, except this worker's own stale entry
/// for a session it does not hold (left from before a restart or a cut).
fn owner_counts(state: &State, session: &str, me: &str, round: &Round) -> bool {
  let names_me = round.owners.get(session).is_some_and(|(o, _)| o == me);
  !names_me || state.runs.contains_key(session)
}
