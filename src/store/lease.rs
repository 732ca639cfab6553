//! One owner per session: leases taken through the store fence its saves, so a replica that lost the lease
//! (paused, partitioned, expired) cannot overwrite the session under the new owner.

use std::sync::Arc;
use std::time::Duration;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;

use super::Store;
use crate::error::{Result, StoreError};
use crate::session::{SessionArg, SessionKey};
use crate::tier::{Leases, Tier};

impl Store {
  fn leases(&self) -> Result<&dyn Leases> {
    let leases = self.primary.as_deref().and_then(|p| p.leases());
    leases.ok_or_else(|| StoreError::InvalidOption {
      name: "lease",
      reason: "leases need a primary tier (Redis, or the embedded directory within one process)".into(),
    })
  }

  /// `None`: no lease taken; `Some(None)`: taken and lost (saves refused until taken again).
  fn held(&self, key: &SessionKey) -> Option<Option<String>> {
    self.held.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
  }

  fn held_token(&self, key: &SessionKey) -> Option<String> {
    self.held(key).flatten()
  }

  fn set_held(&self, key: &SessionKey, state: Option<Option<String>>) {
    let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
    match state {
      Some(state) => held.insert(key.clone(), state),
      None => held.remove(key),
    };
  }

  /// Takes the session's lease for `ttl` and returns its token; this store's saves of the session are fenced
  /// by it from now on. `ERR_LEASE_HELD` when another owner holds it. Taking it again renews it.
  pub async fn acquire_lease(&self, session: &str, ttl: Duration) -> Result<String> {
    let key = SessionArg::parse(session)?.key;
    let token = self.held_token(&key).unwrap_or_else(|| {
      let mut bytes = [0u8; 16];
      OsRng.fill_bytes(&mut bytes);
      bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    if !self.leases()?.acquire(&key, &token, ttl).await? {
      return Err(StoreError::LeaseHeld(key.to_string()));
    }
    self.set_held(&key, Some(Some(token.clone())));
    Ok(token)
  }

  /// Extends the lease; `ERR_LEASE_LOST` when `token` no longer holds it (and this store's saves of the session
  /// are refused until it takes the lease again).
  pub async fn renew_lease(&self, session: &str, token: &str, ttl: Duration) -> Result<()> {
    let key = SessionArg::parse(session)?.key;
    let lost_here = self.held(&key) == Some(None);
    if !lost_here && self.leases()?.renew(&key, token, ttl).await? {
      return Ok(());
    }
    if self.held_token(&key).as_deref() == Some(token) {
      self.set_held(&key, Some(None));
    }
    Err(StoreError::LeaseLost(key.to_string()))
  }

  /// Gives the lease up; saves of the session are no longer fenced. Releasing a lost lease succeeds.
  pub async fn release_lease(&self, session: &str, token: &str) -> Result<()> {
    let key = SessionArg::parse(session)?.key;
    if self.held_token(&key).as_deref() == Some(token) {
      self.set_held(&key, None);
    }
    self.leases()?.release(&key, token).await
  }

  /// Writes to the primary, fenced by this store's lease on the session when it took one; refused while that
  /// lease is lost.
  pub(super) async fn put_primary(&self, primary: &Arc<dyn Tier>, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let token = match self.held(key) {
      None => return primary.put(key, bytes).await,
      Some(None) => return Err(StoreError::LeaseLost(key.to_string())),
      Some(Some(token)) => token,
    };
    let leases = primary.leases().ok_or_else(|| StoreError::Internal("a lease without a lease tier".into()))?;
    if leases.put_fenced(key, bytes, &token).await? {
      return Ok(());
    }
    self.set_held(key, Some(None));
    Err(StoreError::LeaseLost(key.to_string()))
  }
}
