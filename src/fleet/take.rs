//! Taking a session's lease for a start.
//!
//! A failover (the session's owner entry names a worker whose heartbeat ran out) can find the dead owner's lease
//! still there for a moment: the owner beat and renewed together, but its renewals reached the tier after its
//! beat (by their latency, or by up to a renewal interval when its last beat failed and its renewals did not), and
//! the others try as soon as the heartbeat runs out. Such a start keeps its slot and tries again shortly, backing
//! off, for up to one renewal interval: the lease runs out by then unless its holder is alive after all. A start
//! refused for a live holder (a rebalance: the holder hands it off when it sees the assignment) goes back to the
//! loop instead, to be tried again after `renewEveryMs` or more (worker.rs). Either way the lease alone decides
//! who runs the session: a retry only asks again.

use tokio::time::Instant;

use super::worker::{within, Ctx};
use super::Abort;

/// A lease taken for a start (plain): its token and generation, and the instant from which the deadline counts it
/// held.
pub(super) struct Taken {
  pub token: String,
  pub generation: u64,
  pub since: Instant,
}

/// The first retry of a failover's refused take, as a fraction of the renewal interval; each next one doubles.
const FIRST_RETRY_DIVISOR: u32 = 16;

impl Ctx {
  /// The lease as taken, or `None` when another token holds it (after a failover's retries) or the tier did not
  /// answer, or the start was given up while it waited (drain, close). A plain lease, held as of the first try's
  /// sending, so a retry only moves the session's deadline earlier, never later; where the tier carries leases on
  /// the worker's epoch, the next renewal moves it there (`Store::take_lease` says why not at once).
  pub(super) async fn take_for_start(&self, session: &str, failover: bool) -> Option<Taken> {
    let timing = self.cfg().timing;
    let first = Instant::now();
    let take = || async {
      let (token, generation) = within(timing.renew_every, self.store.take_lease(session, timing.ttl)).await?;
      Some(Taken { token, generation, since: first })
    };
    let taken = take().await;
    if taken.is_some() || !failover {
      return taken;
    }
    // Gone from the runs: given up already.
    let mut given_up = self.shared.lock().runs.get(session).map(|r| Abort::new(r.cancel.subscribe()))?;
    let began = Instant::now();
    let mut wait = timing.renew_every / FIRST_RETRY_DIVISOR;
    while began.elapsed() + wait <= timing.renew_every {
      tokio::select! {
        biased; // a fixed order, so a seed of the simulation (sim/) replays exactly
        _ = given_up.aborted() => return None,
        _ = tokio::time::sleep(wait) => {}
      }
      if let Some(taken) = take().await {
        return Some(taken);
      }
      wait *= 2;
    }
    None
  }
}
