//! Starts in line. A round that finds more sessions to start than `maxConcurrentStarts` leaves free starts the
//! first, and queues the rest of those no live worker owns (a dead worker's share, sessions nobody runs yet): each
//! begins as a start ends, instead of one round (a read of every session) per few starts. The bound on starts in
//! flight is unchanged, and so is every rule a start follows (through the lease, which alone decides who runs a
//! session). Sessions a live worker runs are not queued: they move by handoff, a few per round (worker.rs).
//! The next round replaces the line with what it finds; a drain or close empties it.

use std::sync::Arc;

use tokio::time::Instant;

use super::state::{Phase, Queued, Run};
use super::worker::{busy, Ctx};

impl Ctx {
  /// Runs the start, then the next queued one in its slot.
  pub(super) async fn start_then_next(self: Arc<Self>, (session, failover, restore): Queued) {
    self.clone().start(session, failover, restore).await;
    self.start_queued();
  }

  /// Begins the first queued start still due, if a slot and room are free.
  fn start_queued(self: &Arc<Self>) {
    let next = {
      let mut state = self.shared.lock();
      if state.draining || state.closing {
        state.queued.clear();
        return;
      }
      let starting = state.runs.values().filter(|r| r.phase == Phase::Starting).count();
      if starting >= self.cfg().max_concurrent_starts || state.runs.len() >= self.cfg().capacity as usize {
        return;
      }
      let next = loop {
        let Some(next) = state.queued.pop_front() else { return };
        if !busy(&state, &next.0) {
          break next;
        }
      };
      state.runs.insert(next.0.clone(), Run::starting(Instant::now()));
      // As a round's starts: a drain waits for it too, and the deadline timer keeps it.
      self.shared.held_changed(&state);
      self.shared.deadline.notify_one();
      next
    };
    tokio::spawn(self.clone().start_then_next(next));
  }
}
