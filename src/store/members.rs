//! What a fleet of workers reads through the store: the primary's membership, and the stored session names.

use super::Store;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::Membership;

impl Store {
  /// The primary tier's membership (Redis, or the embedded directory within one process), which needs leases too.
  pub fn membership(&self) -> Result<&dyn Membership> {
    let primary = self.primary.as_deref();
    match primary.and_then(|p| p.membership()).filter(|_| primary.and_then(|p| p.leases()).is_some()) {
      Some(membership) => Ok(membership),
      None => Err(StoreError::InvalidOption {
        name: "fleet",
        reason: "a fleet needs a primary tier with leases (Redis, or the embedded directory within one process)".into(),
      }),
    }
  }

  /// The names of the sessions the primary holds (one listing, no headers read).
  pub async fn session_keys(&self) -> Result<Vec<SessionKey>> {
    match &self.primary {
      Some(primary) => primary.list().await,
      None => Err(StoreError::InvalidOption { name: "fleet", reason: "a fleet needs a primary tier".into() }),
    }
  }
}
