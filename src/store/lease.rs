//! One owner per session: leases taken through the store fence its saves and deletes, so a replica that lost the
//! lease (paused, partitioned, replaced) can neither overwrite nor delete the session under the new owner.

use std::sync::Arc;
use std::time::Duration;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;

use super::Store;
use crate::error::{Result, StoreError};
use crate::session::{SessionArg, SessionKey};
use crate::tier::{LeaseState, Leases, Tier};

/// 128 random bits, hex: a lease token, or a fleet worker's claim on its id.
pub(crate) fn random_token() -> String {
  let mut bytes = [0u8; 16];
  OsRng.fill_bytes(&mut bytes);
  bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A lease this store took (no Debug: the token stays out of logs).
#[derive(Clone)]
pub(super) struct Held {
  /// `None` once lost: saves and deletes are refused until the lease is taken again.
  token: Option<String>,
  /// Of the last acquire or renewal: a fenced write that finds the lease expired takes it again for as long.
  ttl: Duration,
  /// A fenced write took it again since the last renewal, which then says so.
  retaken: bool,
  /// This store once abandoned the session's lease (a stop that failed): the client it could not stop may still
  /// write through it, so releasing a later lease leaves the session fenced rather than unfenced.
  abandoned: bool,
}

impl Store {
  fn leases(&self) -> Result<&dyn Leases> {
    let leases = self.primary.as_deref().and_then(|p| p.leases());
    leases.ok_or_else(|| StoreError::InvalidOption {
      name: "lease",
      reason: "leases need a primary tier (Redis, or the embedded directory)".into(),
    })
  }

  /// `None`: no lease taken.
  pub(super) fn held(&self, key: &SessionKey) -> Option<Held> {
    self.held.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
  }

  fn held_token(&self, key: &SessionKey) -> Option<String> {
    self.held(key).and_then(|h| h.token)
  }

  fn set_held(&self, key: &SessionKey, state: Option<Held>) {
    let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
    match state {
      Some(state) => held.insert(key.clone(), state),
      None => held.remove(key),
    };
  }

  /// Takes the session's lease for `ttl` and returns its token; this store's saves and deletes of the session
  /// are fenced by it from now on. `ERR_LEASE_HELD` when another owner holds it. Taking it again renews it.
  pub async fn acquire_lease(&self, session: &str, ttl: Duration) -> Result<String> {
    self.take_lease(session, ttl).await.map(|(token, _)| token)
  }

  /// As `acquire_lease`, also returning the lease's generation (`Leases::acquire`): a holder's writes outside the
  /// session's keys (a fleet's owner entry) carry it, so a late one never replaces a later holder's.
  pub async fn take_lease(&self, session: &str, ttl: Duration) -> Result<(String, u64)> {
    let key = SessionArg::parse(session)?.key;
    let abandoned = self.held(&key).is_some_and(|h| h.abandoned);
    let token = self.held_token(&key).unwrap_or_else(random_token);
    let Some(generation) = self.leases()?.acquire(&key, &token, ttl).await? else {
      return Err(StoreError::LeaseHeld(key.to_string()));
    };
    self.set_held(&key, Some(Held { token: Some(token.clone()), ttl, retaken: false, abandoned }));
    Ok((token, generation))
  }

  /// Extends the lease: `Retaken` when it had expired (the tier could not be reached for longer than its ttl)
  /// and nobody else took it since, so it is this token's again. `ERR_LEASE_LOST` when another token took it
  /// (and this store's saves of the session are refused until it takes the lease again).
  pub async fn renew_lease(&self, session: &str, token: &str, ttl: Duration) -> Result<LeaseState> {
    let key = SessionArg::parse(session)?.key;
    let lost_here = self.held(&key).is_some_and(|h| h.token.is_none());
    let state = if lost_here { LeaseState::Lost } else { self.leases()?.renew(&key, token, ttl).await? };
    if state == LeaseState::Lost {
      return self.fenced(&key, token, state).map(|()| state);
    }
    if state == LeaseState::Retaken {
      self.counters.lease_retaken();
    }
    // In place, and only while the token is still the one held: a fenced call may have found it lost meanwhile.
    let mut all = self.held.lock().unwrap_or_else(|p| p.into_inner());
    match all.get_mut(&key).filter(|h| h.token.as_deref() == Some(token)) {
      Some(held) => {
        held.ttl = ttl;
        Ok(if std::mem::take(&mut held.retaken) { LeaseState::Retaken } else { state })
      }
      None => Ok(state),
    }
  }

  /// Gives the lease up; saves of the session are no longer fenced, unless this store once abandoned a lease of
  /// it (they stay refused, `ERR_LEASE_LOST`, until it takes the lease again). Releasing a lost lease succeeds.
  pub async fn release_lease(&self, session: &str, token: &str) -> Result<()> {
    let key = SessionArg::parse(session)?.key;
    {
      let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
      match held.get_mut(&key).filter(|h| h.token.as_deref() == Some(token)) {
        Some(ours) if ours.abandoned => ours.token = None,
        Some(_) => {
          held.remove(&key);
        }
        None => {}
      }
    }
    self.leases()?.release(&key, token).await
  }

  /// Stops backing the lease without giving it up (an owner that cannot prove its client is gone: a stop that
  /// failed or timed out, a start given up unsettled): it stays in the tier until it expires, so nobody else
  /// takes the session before then, and this store's writes of the session are refused (`ERR_LEASE_LOST`) from
  /// now on, as if another owner had taken it. Taking the lease again (once it expired) makes a new token, and
  /// releasing that one keeps the fence (the unstopped client may still write).
  pub fn abandon_lease(&self, session: &str, token: &str) -> Result<()> {
    let key = SessionArg::parse(session)?.key;
    let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ours) = held.get_mut(&key).filter(|h| h.token.as_deref() == Some(token)) {
      ours.token = None;
      ours.abandoned = true;
    }
    Ok(())
  }

  /// Writes to the primary, fenced by this store's lease on the session when it took one; refused while that
  /// lease is lost.
  pub(super) async fn put_primary(&self, primary: &Arc<dyn Tier>, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let Some(held) = self.held(key) else { return primary.put(key, bytes).await };
    let token = held.token.ok_or_else(|| StoreError::LeaseLost(key.to_string()))?;
    let state = lease_tier(primary)?.put_fenced(key, bytes, &token, held.ttl).await?;
    self.fenced(key, &token, state)
  }

  /// Fails with `ERR_LEASE_LOST` unless this store still holds the session's lease (or holds none): for writes that
  /// must not happen for a replica that lost it, before the primary's fenced write would tell.
  pub(super) async fn check_lease(&self, primary: &Arc<dyn Tier>, key: &SessionKey) -> Result<()> {
    let Some(held) = self.held(key) else { return Ok(()) };
    let token = held.token.ok_or_else(|| StoreError::LeaseLost(key.to_string()))?;
    let state = lease_tier(primary)?.renew(key, &token, held.ttl).await?;
    self.fenced(key, &token, state)
  }

  /// Deletes from the primary, fenced like `put_primary`.
  pub(super) async fn delete_primary(&self, primary: &Arc<dyn Tier>, key: &SessionKey) -> Result<()> {
    let Some(held) = self.held(key) else { return primary.delete(key).await };
    let token = held.token.ok_or_else(|| StoreError::LeaseLost(key.to_string()))?;
    let state = lease_tier(primary)?.delete_fenced(key, &token, held.ttl).await?;
    self.fenced(key, &token, state)
  }

  /// What a fenced call found, recorded for `token` (unless the lease was taken anew meanwhile).
  fn fenced(&self, key: &SessionKey, token: &str, state: LeaseState) -> Result<()> {
    let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
    let ours = held.get_mut(key).filter(|h| h.token.as_deref() == Some(token));
    match (state, ours) {
      (LeaseState::Lost, ours) => {
        if let Some(ours) = ours {
          ours.token = None;
          self.counters.lease_lost();
        }
        Err(StoreError::LeaseLost(key.to_string()))
      }
      (LeaseState::Retaken, Some(ours)) => {
        ours.retaken = true;
        self.counters.lease_retaken();
        Ok(())
      }
      _ => Ok(()),
    }
  }
}

fn lease_tier(primary: &Arc<dyn Tier>) -> Result<&dyn Leases> {
  primary.leases().ok_or_else(|| StoreError::Internal("a lease without a lease tier".into()))
}
