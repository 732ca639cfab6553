//! CPU and file work leaves the async workers (and never touches Node's event loop).

use crate::error::{Result, StoreError};

/// At most one piece of CPU or file work per core at a time. Unbounded, 100 concurrent saves became 100 threads
/// on 2 cores, starving Node's own thread (up to 750 ms of event-loop delay in `npm run bench`) and multiplying
/// peak memory by the number of archives in flight.
#[cfg_attr(test, allow(dead_code))]
fn permits() -> &'static tokio::sync::Semaphore {
  static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
  PERMITS.get_or_init(|| tokio::sync::Semaphore::new(cores()))
}

/// How many pieces of work `run` runs at once: one per core.
pub fn cores() -> usize {
  std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub async fn run<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
  // Not under `cargo test`: the permits are one per process, and tests run side by side, each on its own runtime.
  // A test on tokio's paused clock waiting for a permit another test holds is idle to its runtime, which then
  // jumps its clock ahead (a wait in `spawn_blocking` does not), and a deadline test sees time pass mid-call.
  #[cfg(not(test))]
  let _permit = permits().acquire().await.map_err(|e| StoreError::Internal(format!("worker pool closed: {e}")))?;
  tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Internal(format!("worker task failed: {e}")))?
}
