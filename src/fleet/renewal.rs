//! How a worker keeps its leases between takes and releases. Where the tier carries them on the worker's epoch
//! (`Beat::epoch`: standalone Redis, Sentinel) the beat renews every lease held under it at once (`carried`), and
//! a round's renewal step only moves leases onto the epoch: a fresh take's plain lease, or one of an epoch that
//! died. Elsewhere (a Redis Cluster, the embedded tier) each lease is renewed on its own every round. Either way a
//! run records when its lease lasts from (`Run::renewed`), which the deadline timer counts from (lifecycle.rs).

use futures::StreamExt;
use tokio::time::Instant;

use super::state::Run;
use super::worker::Ctx;

impl Ctx {
  /// The epoch this worker's leases are taken under, and when its last beat was sent (`None`: the tier renews
  /// each lease on its own).
  pub(super) fn epoch(&self) -> Option<(u64, Instant)> {
    *self.epoch.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// How a lease renewed now is held, and from when the deadline counts it held: the last beat's sending under an
  /// epoch (the lease lasts as long as the heartbeat that beat extended), else `now` (its own ttl from then).
  fn hold(&self, now: Instant) -> (crate::tier::Hold, Option<u64>, Instant) {
    let ttl = self.cfg().timing.ttl;
    match self.epoch() {
      Some((n, since)) => {
        let (group, id) = (self.cfg().group.clone(), self.cfg().worker_id.clone());
        (crate::tier::Hold { ttl, epoch: Some(crate::tier::Epoch { group, id, n }) }, Some(n), since)
      }
      None => (crate::tier::Hold::ttl(ttl), None, now),
    }
  }

  /// A beat kept epoch `n` alive as of `sent`: every lease held under it is renewed so. Leases of an earlier epoch
  /// (it died: this worker was cut off for longer than ttl, or Redis lost its data) wait for `renew` to move them.
  pub(super) fn carried(&self, n: u64, sent: Instant) {
    *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = Some((n, sent));
    let mut state = self.shared.lock();
    for run in state.runs.values_mut().filter(|r| r.epoch == Some(n)) {
      run.renewed = run.renewed.max(sent);
    }
  }

  /// Renews every lease held on its own (none under the current epoch: the beat renewed those), or, under an
  /// epoch, moves onto it a fresh take's plain lease or one of an earlier epoch; either records when the lease
  /// lasts from.
  pub(super) async fn renew(&self) {
    let timing = self.cfg().timing;
    let current = self.epoch().map(|(n, _)| n);
    let held: Vec<(String, String)> = {
      let state = self.shared.lock();
      // Also one under the current epoch whose lease the store no longer holds (a save found it lost): the beat
      // would carry its deadline on for good; the renewal says lost, and it stops now.
      let lost = |s: &str, r: &Run| !self.store.holds_lease(s, &r.token);
      let due = |s: &str, r: &Run| r.epoch.is_none() || r.epoch != current || lost(s, r);
      let held = state.runs.iter().filter(|(s, r)| !r.token.is_empty() && due(s, r));
      held.map(|(s, r)| (s.clone(), r.token.clone())).collect()
    };
    let store = &self.store;
    futures::stream::iter(held)
      .for_each_concurrent(64, |(session, token)| async move {
        let (hold, epoch, since) = self.hold(Instant::now());
        let renewal = store.hold_lease(&session, &token, hold);
        let done = tokio::time::timeout(timing.renew_every, renewal).await;
        let mut state = self.shared.lock();
        let Some(run) = state.runs.get_mut(&session).filter(|r| r.token == token) else { return };
        match done {
          Ok(Ok(_)) if epoch.is_some() => {
            // Held by the heartbeat now, as long as the beat of `since` made it last: earlier, for a fresh take's
            // plain lease moved onto the epoch, than its own expiry was.
            if since < run.renewed {
              self.shared.deadline.notify_one();
            }
            run.renewed = since;
            run.epoch = epoch;
          }
          Ok(Ok(_)) => run.renewed = run.renewed.max(since),
          Ok(Err(err)) if err.code() == "ERR_LEASE_LOST" => {
            // Another owner took it: stop now, not at the deadline (and no beat carries it on).
            run.renewed = since.min(run.renewed) - timing.ttl;
            run.epoch = None;
            self.shared.deadline.notify_one();
          }
          _ => {}
        }
      })
      .await;
  }
}
