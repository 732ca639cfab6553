//! Copying many sessions at once, with a bounded number in flight, and what came of it.

use std::future::Future;

use futures::stream::{self, StreamExt};

use crate::error::{Result, StoreError};
use crate::session::SessionKey;

/// What a bulk copy did: sessions tried, copied, bytes copied, and each failure.
#[derive(Debug, Default)]
pub struct Transfer {
  pub sessions: u32,
  pub copied: u32,
  /// Nothing to copy: the target already had it (or newer), or the session went away.
  pub skipped: u32,
  pub bytes: u64,
  pub failures: Vec<(SessionKey, StoreError)>,
}

/// Told `(done, total)` after each session of a bulk copy.
pub type Progress = std::sync::Arc<dyn Fn(u32, u32) + Send + Sync>;

/// Runs `copy` over `keys` (`Ok(None)`: skipped), at most `concurrency` at a time, and sums up what happened.
pub async fn transfer<F, Fut>(
  keys: Vec<SessionKey>,
  concurrency: usize,
  progress: Option<&Progress>,
  copy: F,
) -> Transfer
where
  F: Fn(SessionKey) -> Fut,
  Fut: Future<Output = Result<Option<u64>>>,
{
  let mut summary = Transfer { sessions: keys.len() as u32, ..Transfer::default() };
  let mut results = stream::iter(keys)
    .map(|key| {
      let done = copy(key.clone());
      async move { (key, done.await) }
    })
    .buffer_unordered(concurrency.max(1));
  while let Some((key, done)) = results.next().await {
    match done {
      Ok(Some(bytes)) => {
        summary.copied += 1;
        summary.bytes += bytes;
      }
      Ok(None) => summary.skipped += 1,
      Err(err) => summary.failures.push((key, err)),
    }
    if let Some(progress) = progress {
      progress(summary.copied + summary.skipped + summary.failures.len() as u32, summary.sessions);
    }
  }
  summary
}
