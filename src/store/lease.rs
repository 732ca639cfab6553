//! One owner per session: leases taken through the store fence its saves and deletes, so a replica that lost the
//! lease (paused, partitioned, replaced) can neither overwrite nor delete the session under the new owner.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use std::time::Duration;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;

use super::Store;
use crate::error::{Result, StoreError};
use crate::session::{SessionArg, SessionKey};
use crate::tier::{Hold, LeaseState, Leases, Tier};

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
  /// Of the last acquire or renewal: a fenced write holds it on so (and takes an expired one again for its ttl).
  hold: Hold,
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
  /// are fenced by it from now on. `ERR_LEASE_HELD` when another owner holds it. Taking it again renews it (a
  /// lease the fleet holds under its epoch stays held so: `SafeRemoteAuth.forFleet` adopts it this way).
  pub async fn acquire_lease(&self, session: &str, ttl: Duration) -> Result<String> {
    self.take_lease(session, ttl).await.map(|(token, _)| token)
  }

  /// The hold to keep a lease of the session on: the epoch it is held under here, if it is, else `ttl`.
  fn hold_for(&self, key: &SessionKey, ttl: Duration) -> Hold {
    let held = self.held(key).filter(|h| h.token.is_some() && h.hold.epoch.is_some());
    held.map_or_else(|| Hold::ttl(ttl), |h| Hold { ttl, ..h.hold })
  }

  /// As `acquire_lease`, also returning the lease's generation (`Leases::acquire`): a holder's writes outside the
  /// session's keys (a fleet's owner entry) carry it, so a late one never replaces a later holder's. A fresh take
  /// is always a plain lease, even where the fleet holds its leases under an epoch (it moves it there with
  /// `hold_lease`): a take whose answer never came may land at any time later, and must then expire on its own,
  /// not be held by an epoch that nobody knows holds it.
  pub async fn take_lease(&self, session: &str, ttl: Duration) -> Result<(String, u64)> {
    let key = SessionArg::parse(session)?.key;
    let abandoned = self.held(&key).is_some_and(|h| h.abandoned);
    let hold = self.hold_for(&key, ttl);
    let token = self.held_token(&key).unwrap_or_else(random_token);
    let Some(generation) = self.leases()?.acquire(&key, &token, &hold).await? else {
      return Err(StoreError::LeaseHeld(key.to_string()));
    };
    // Taken again while the fleet moved it onto its epoch (`SafeRemoteAuth.forFleet` adopting it during the
    // start): `ACQUIRE` left it there, and so does the record.
    let mut taken = false;
    self.update_held(&key, &token, |held| taken = held.hold.epoch.is_some());
    if !taken {
      self.set_held(&key, Some(Held { token: Some(token.clone()), hold, retaken: false, abandoned }));
    }
    Ok((token, generation))
  }

  /// Extends the lease: `Retaken` when it had expired (the tier could not be reached for longer than its ttl)
  /// and nobody else took it since, so it is this token's again. `ERR_LEASE_LOST` when another token took it
  /// (and this store's saves of the session are refused until it takes the lease again).
  pub async fn renew_lease(&self, session: &str, token: &str, ttl: Duration) -> Result<LeaseState> {
    let key = SessionArg::parse(session)?.key;
    let hold = self.hold_for(&key, ttl);
    self.hold_lease(session, token, hold).await
  }

  /// As `renew_lease`, held on as `hold` says: the fleet moves its leases onto its epoch so (a fresh take's, or
  /// those of an epoch that died).
  pub async fn hold_lease(&self, session: &str, token: &str, hold: Hold) -> Result<LeaseState> {
    let key = SessionArg::parse(session)?.key;
    // Only a lease this store still holds goes under an epoch: one released (whose release may never land) must
    // not be brought there by a move sent after it (the simulation's seed 252 of every class). Recorded before the
    // call, in the same step: a stop that gives the lease up while it is in flight (it may land after) must detach
    // it from the epoch.
    if hold.epoch.is_some() && !self.update_held(&key, token, |held| held.hold = hold.clone()) {
      return Err(StoreError::LeaseLost(key.to_string()));
    }
    let lost_here = self.held(&key).is_some_and(|h| h.token.is_none());
    let state = if lost_here { LeaseState::Lost } else { self.leases()?.renew(&key, token, &hold).await? };
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
        held.hold = hold;
        Ok(if std::mem::take(&mut held.retaken) { LeaseState::Retaken } else { state })
      }
      None => Ok(state),
    }
  }

  /// Gives the lease up; saves of the session are no longer fenced, unless this store once abandoned a lease of
  /// it (they stay refused, `ERR_LEASE_LOST`, until it takes the lease again). Releasing a lost lease succeeds.
  pub async fn release_lease(&self, session: &str, token: &str) -> Result<()> {
    let key = SessionArg::parse(session)?.key;
    if let Some(held) = self.held(&key).filter(|h| h.token.as_deref() == Some(token)) {
      // Under an epoch, detached too (before the holder's next beat), whatever the release's answer: a release
      // that never landed, or that a Sentinel failover lost (it is not waited for), would be held on by the epoch
      // for as long as it lives. The detach is waited for, and finds nothing to do once the release landed.
      self.unbacked(&key, token, &held.hold);
    }
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
    let mut hold = None;
    self.update_held(&key, token, |ours| {
      ours.token = None;
      ours.abandoned = true;
      hold = Some(ours.hold.clone());
    });
    // Else the epoch would hold it for as long as it lives, not until it expires.
    if let Some(hold) = hold {
      self.unbacked(&key, token, &hold);
    }
    Ok(())
  }

  /// Records `token`'s lease of the session to detach (`detach_unbacked`) if it is, or may be, held under an epoch.
  fn unbacked(&self, key: &SessionKey, token: &str, hold: &Hold) {
    if hold.epoch.is_some() {
      self.unbacked.lock().unwrap_or_else(|p| p.into_inner()).push((key.clone(), token.to_owned(), hold.ttl));
    }
  }

  /// In place, while `token` is the one held; false when it is not.
  fn update_held(&self, key: &SessionKey, token: &str, update: impl FnOnce(&mut Held)) -> bool {
    let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
    let ours = held.get_mut(key).filter(|h| h.token.as_deref() == Some(token));
    ours.map(update).is_some()
  }

  /// Whether this store still holds the session's lease under `token` (not released, lost or abandoned).
  pub fn holds_lease(&self, session: &str, token: &str) -> bool {
    SessionArg::parse(session).is_ok_and(|arg| self.held_token(&arg.key).as_deref() == Some(token))
  }

  /// Detaches every lease this store no longer backs from the epoch it was (or may be) held under, so each
  /// expires after its ttl though the epoch lives on, and no call still in flight for its token can bring it back
  /// (`Leases::detach`). A fleet worker does this before each beat, and skips the beat if it fails.
  pub async fn detach_unbacked(&self) -> Result<()> {
    let pending = self.unbacked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if pending.is_empty() {
      return Ok(());
    }
    let leases = self.leases()?;
    // Side by side (each is waited for by the replicas): a close that gave up hundreds must not skip beats.
    let detach = |(key, token, ttl): (SessionKey, String, Duration)| async move {
      leases.detach(&key, &token, ttl).await?;
      let mut list = self.unbacked.lock().unwrap_or_else(|p| p.into_inner());
      if let Some(at) = list.iter().position(|(k, t, _)| *k == key && *t == token) {
        list.remove(at);
      }
      Ok::<(), StoreError>(())
    };
    futures::stream::iter(pending).map(detach).buffer_unordered(32).try_collect::<Vec<()>>().await.map(drop)
  }

  /// Writes to the primary, fenced by this store's lease on the session when it took one; refused while that
  /// lease is lost.
  pub(super) async fn put_primary(&self, primary: &Arc<dyn Tier>, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let Some(held) = self.held(key) else { return primary.put(key, bytes).await };
    let token = held.token.ok_or_else(|| StoreError::LeaseLost(key.to_string()))?;
    let state = lease_tier(primary)?.put_fenced(key, bytes, &token, &held.hold).await?;
    self.fenced(key, &token, state)
  }

  /// Fails with `ERR_LEASE_LOST` unless this store still holds the session's lease (or holds none): for writes that
  /// must not happen for a replica that lost it, before the primary's fenced write would tell.
  pub(super) async fn check_lease(&self, primary: &Arc<dyn Tier>, key: &SessionKey) -> Result<()> {
    let Some(held) = self.held(key) else { return Ok(()) };
    let token = held.token.ok_or_else(|| StoreError::LeaseLost(key.to_string()))?;
    let state = lease_tier(primary)?.renew(key, &token, &held.hold).await?;
    self.fenced(key, &token, state)
  }

  /// Deletes from the primary, fenced like `put_primary`.
  pub(super) async fn delete_primary(&self, primary: &Arc<dyn Tier>, key: &SessionKey) -> Result<()> {
    let Some(held) = self.held(key) else { return primary.delete(key).await };
    let token = held.token.ok_or_else(|| StoreError::LeaseLost(key.to_string()))?;
    let state = lease_tier(primary)?.delete_fenced(key, &token, &held.hold).await?;
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

/// Leases to detach from their epoch (`Store::detach_unbacked`): session, token, the ttl each then lasts.
pub(super) type UnbackedList = Arc<std::sync::Mutex<Vec<(SessionKey, String, Duration)>>>;
