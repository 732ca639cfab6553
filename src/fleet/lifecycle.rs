//! A session's life on this worker: started through its lease, stopped within its deadline, and given back.
//!
//! The deadline is local: each session held stops at `renewed + ttl - stop_timeout` (its last successful renewal
//! as *sent*, on this process' monotonic clock), driven by one timer per worker that waits on no call to the tier.
//! A partition that drops packets (calls hang) or resets connections (calls fail) moves no deadline, so the stop
//! begins, and its budget ends, before the lease can expire and another worker take the session.
//!
//! The session's owner entry (the group's `owners` map) is written and removed ordered by the lease's generation,
//! so a cut-off worker's writes that land late never replace or erase a later owner's entry.
//!
//! The lease is released only when this worker can vouch that its client is gone: `onStart` settled and `onStop`
//! resolved in time, with the lease still renewable. Otherwise it is abandoned: this store's writes of the session
//! are refused from then on and the lease expires in the tier, so the session moves only once nobody can still be
//! writing it under the old token.

use std::sync::Arc;
use tokio::time::Instant;

use super::state::Phase;
use super::worker::{within, Ctx};
use super::{owner_entry, Abort, FleetEvent, Lease, StopReason, OWNERS};
use crate::store::members::Kept;

/// How a session left this worker.
enum Gone {
  /// The client is gone and the lease can be given back.
  Clean,
  /// The worker cannot vouch for that (or the lease could not be kept): the lease is left to expire, fenced.
  Fenced,
}

impl Ctx {
  /// The deadline timer: sleeps until the earliest deadline of a session held, stops what is due, and wakes
  /// early when a deadline may have moved closer (a start, a lease found lost). Ends with the worker's loop.
  pub(super) async fn deadline_timer(self: Arc<Self>) {
    loop {
      let next = self.deadlines();
      let due = async {
        match next {
          Some(at) => tokio::time::sleep_until(at).await,
          None => std::future::pending().await,
        }
      };
      tokio::select! {
        biased; // a fixed order, so a seed of the simulation (sim/) replays exactly
        _ = due => {}
        _ = self.shared.deadline.notified() => {}
      }
    }
  }

  /// Stops (reason `lost`) every session past its deadline, starting or running; the earliest deadline left.
  pub(super) fn deadlines(self: &Arc<Self>) -> Option<Instant> {
    let stop_after = self.cfg().timing.stop_after();
    let now = Instant::now();
    let mut lost = Vec::new();
    let mut next: Option<Instant> = None;
    let state = self.shared.lock();
    for (session, run) in &state.runs {
      let due = run.renewed + stop_after;
      match run.phase {
        _ if due > now => next = Some(next.map_or(due, |n| n.min(due))),
        Phase::Running => lost.push(session.clone()),
        Phase::Starting => run.cancel_start(StopReason::Lost),
        Phase::Stopping => {}
      }
    }
    drop(state);
    for session in lost {
      self.spawn_stop(session, StopReason::Lost, false);
    }
    next
  }

  /// `restore`: the primary did not list the session (only the bucket holds it): written back before `onStart`.
  pub(super) async fn start(self: Arc<Self>, session: String, failover: bool, restore: bool) {
    let cfg = self.cfg();
    let timing = cfg.timing;
    let taken = self.take_for_start(&session, failover).await;
    let abort = {
      let mut state = self.shared.lock();
      let Some(taken) = &taken else {
        // Held by another worker (it hands off when it sees the assignment), or the tier did not answer: tried
        // again after renewEveryMs, doubling to ttlMs while it stays held, and without waking the loop (a
        // round reads every session: a retry loop would scan the keyspace many times a second).
        let tries = state.held_elsewhere.entry(session.clone()).or_default();
        let wait = (timing.renew_every * 2u32.pow((*tries).min(6))).min(timing.ttl);
        *tries += 1;
        state.retry_after.insert(session.clone(), Instant::now() + wait);
        state.runs.remove(&session);
        return self.shared.held_changed(&state);
      };
      state.held_elsewhere.remove(&session);
      let run = state.runs.get_mut(&session).expect("a start's run stays until its task removes it");
      run.token = taken.token.clone();
      run.generation = taken.generation;
      run.renewed = taken.since;
      // The deadline now counts from the take: wake the timer, which may sleep towards another (the simulation's
      // seed 85 with every fault class, when takes counted from the beat before them).
      self.shared.deadline.notify_one();
      Abort::new(run.cancel.subscribe())
    };
    let super::take::Taken { token, generation, .. } = taken.expect("checked");
    if restore {
      match self.restore(&session).await {
        Some(Kept::Present | Kept::Restored) => {}
        verdict => {
          // Deleted: nothing to start. The store could not tell: tried again after ttlMs.
          self.finish(&session, &token, generation, Gone::Clean).await;
          if verdict.is_none() {
            self.shared.lock().retry_after.insert(session, Instant::now() + timing.ttl);
          }
          return;
        }
      }
    }
    within(timing.renew_every, self.set_owner(&session, generation, false)).await;
    let lease = Lease {
      session: session.clone(),
      token: token.clone(),
      ttl: timing.ttl,
      renew_every: timing.renew_every,
      abort: abort.clone(),
    };
    let mut started = Box::pin(self.hooks.start(lease));
    let mut cancelled = abort.clone();
    let outcome = tokio::select! {
      // A start that settles as it is given up counts as given up: its onStop is due either way.
      biased;
      reason = cancelled.aborted() => Err(reason),
      done = &mut started => Ok(done),
      () = tokio::time::sleep(cfg.start_timeout) => Err(self.time_out(&session)),
    };
    match outcome {
      Ok(Ok(())) => {
        // Before it counts as running here: a handoff's source waits for this mark (and a stop removes it). Not
        // past a give-up: a deadline that passes while the write hangs (a cut) stops the session at once, for its
        // stop must begin at the deadline to end before the lease can expire (the fleet simulation's seed 1562 with
        // every fault class: the stop began a renewal interval late, and ended after another worker took the lease).
        tokio::select! {
          biased; // a fixed order, so a seed of the simulation (sim/) replays exactly
          _ = cancelled.aborted() => {}
          _ = within(timing.renew_every, self.set_owner(&session, generation, true)) => {}
        }
        let mut state = self.shared.lock();
        let Some(run) = state.runs.get_mut(&session) else { return };
        run.phase = Phase::Running;
        if failover {
          state.failovers += 1;
        }
        self.shared.changed(&state);
        // Given up while the owner mark was written: stop it now.
        let reason = abort.reason();
        drop(state);
        if let Some(reason) = reason {
          self.spawn_stop(session, reason, false);
        }
      }
      Ok(Err(message)) => {
        self.hooks.event(FleetEvent::StartFailed { session: session.clone(), message });
        // The app's start failed and settled: nothing of it runs, the lease goes back.
        self.finish(&session, &token, generation, Gone::Clean).await;
        self.shared.lock().retry_after.insert(session, Instant::now() + timing.ttl);
      }
      Err(reason) => {
        // Given up: onStart was aborted; onStop follows once it settled (or half the stop budget on).
        let began = Instant::now();
        let settled = tokio::time::timeout(timing.stop_timeout / 2, &mut started).await.is_ok();
        // A timed-out start was reported as such already.
        if !settled && reason != StopReason::Timeout {
          let message =
            format!("onStart did not settle within {} ms of its abort", (timing.stop_timeout / 2).as_millis());
          self.hooks.event(FleetEvent::StartFailed { session: session.clone(), message });
        }
        self.shared.lock().runs.get_mut(&session).expect("held").phase = Phase::Stopping;
        let stopped = self.call_stop(&session, reason, began).await;
        // Lost: the lease may be another's by now. Timeout: a start that hung cannot vouch for its client, even
        // once it settled and onStop resolved; it is treated as a failed stop.
        let vouched = settled && stopped && !matches!(reason, StopReason::Lost | StopReason::Timeout);
        let gone = if vouched { Gone::Clean } else { Gone::Fenced };
        // The start's future (and any late settling of onStart) is dropped with this task: nothing of it can
        // mark the session running again.
        self.finish(&session, &token, generation, gone).await;
      }
    }
  }

  /// `onStart` ran past `start_timeout`: gives the start up (reason `timeout`, unless it was given up for another
  /// reason at the same instant) and reports it. The reason `onStop` gets.
  fn time_out(&self, session: &str) -> StopReason {
    let reason = {
      let state = self.shared.lock();
      let run = state.runs.get(session).expect("a start's run stays until its task removes it");
      run.cancel_start(StopReason::Timeout);
      let reason = run.cancel.borrow().unwrap_or(StopReason::Timeout);
      reason
    };
    if reason == StopReason::Timeout {
      let after_ms = self.cfg().start_timeout.as_millis() as u64;
      self.hooks.event(FleetEvent::StartTimedOut { session: session.to_owned(), after_ms });
    }
    reason
  }

  /// Starts stopping a running session (once); `handoff`: another worker is to take it (the bounded kind).
  pub(super) fn spawn_stop(self: &Arc<Self>, session: String, reason: StopReason, handoff: bool) {
    let (token, generation) = {
      let mut state = self.shared.lock();
      let Some(run) = state.runs.get_mut(&session).filter(|r| r.phase == Phase::Running) else { return };
      run.phase = Phase::Stopping;
      run.handoff = handoff;
      (run.token.clone(), run.generation)
    };
    let this = self.clone();
    tokio::spawn(async move {
      let stopped = this.call_stop(&session, reason, Instant::now()).await;
      // A lost session's lease may be another's by now, and nothing can tell this worker otherwise: fenced.
      let gone = if stopped && reason != StopReason::Lost { Gone::Clean } else { Gone::Fenced };
      this.finish(&session, &token, generation, gone).await;
    });
  }

  /// `onStop`, bounded by what is left of `stop_timeout` since `began`; true when it resolved in time.
  async fn call_stop(&self, session: &str, reason: StopReason, began: Instant) -> bool {
    let budget = self.cfg().timing.stop_timeout;
    let left = (began + budget).saturating_duration_since(Instant::now());
    let message = match tokio::time::timeout(left, self.hooks.stop(session.to_owned(), reason)).await {
      Ok(Ok(())) => return true,
      Ok(Err(message)) => message,
      Err(_) => format!("onStop did not resolve within stopTimeoutMs ({} ms)", budget.as_millis()),
    };
    self.hooks.event(FleetEvent::StopFailed { session: session.to_owned(), message });
    false
  }

  /// The session is no longer this worker's: the lease given back or abandoned, the run gone.
  async fn finish(&self, session: &str, token: &str, generation: u64, gone: Gone) {
    let cfg = self.cfg();
    let limit = cfg.timing.renew_every;
    match gone {
      Gone::Clean => {
        within(limit, self.store.release_lease(session, token)).await;
      }
      Gone::Fenced => {
        let _ = self.store.abandon_lease(session, token);
      }
    }
    // The owner entry this lease wrote, unless a later lease's holder has written its own since (this removal may
    // land late, after a cut: it must not erase the new owner's entry).
    if let Ok(m) = self.store.membership() {
      within(limit, m.map_remove_ordered(&cfg.group, OWNERS, session, generation)).await;
    }
    let mut state = self.shared.lock();
    if let Gone::Fenced = gone {
      // Not before its abandoned lease can have expired.
      state.retry_after.insert(session.to_owned(), Instant::now() + cfg.timing.ttl);
    }
    let handoff = state.runs.remove(session).is_some_and(|r| r.handoff);
    if handoff {
      state.handoffs += 1;
      state.handed_off.insert(session.to_owned(), Instant::now());
    }
    self.shared.changed(&state);
  }

  /// Writes this worker's owner entry for the session, ordered by its lease's generation: a write that lands
  /// after a later lease's holder wrote its own (this worker was cut off) is refused, never replacing it.
  pub(super) async fn set_owner(&self, session: &str, generation: u64, running: bool) -> crate::error::Result<bool> {
    let cfg = self.cfg();
    let entry = owner_entry(&cfg.worker_id, running);
    self.store.membership()?.map_set_ordered(&cfg.group, OWNERS, session, entry.as_bytes(), generation).await
  }
}
