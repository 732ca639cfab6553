//! CPU and file work leaves the async workers (and never touches Node's event loop).

use crate::error::{Result, StoreError};

pub async fn run<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
  tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Internal(format!("worker task failed: {e}")))?
}
