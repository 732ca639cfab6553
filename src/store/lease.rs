//! One owner per session: leases taken through the store fence its saves and deletes, so a replica that lost the
//! lease (paused, partitioned, replaced) can neither overwrite nor delete the session under the new owner.

use std::sync::Arc;
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
    let key = SessionArg::parse(session)?.key;
    let hold = self.hold_for(&key, ttl);
    self.take_lease(session, hold).await.map(|(token, _)| token)
  }

  /// The hold to keep a lease of the session on: the epoch it is held under here, if it is, else `ttl`.
  fn hold_for(&self, key: &SessionKey, ttl: Duration) -> Hold {
    let held = self.held(key).filter(|h| h.token.is_some() && h.hold.epoch.is_some());
    held.map_or_else(|| Hold::ttl(ttl), |h| Hold { ttl, ..h.hold })
  }

  /// As `acquire_lease` with the hold given, also returning the lease's generation (`Leases::acquire`): a
  /// holder's writes outside the session's keys (a fleet's owner entry) carry it, so a late one never replaces a
  /// later holder's. A take under an epoch whose outcome is unknown (an error, or the call dropped) is left to
  /// detach (`detach_unbacked`): it may have landed, and its epoch would hold it for as long as it lives.
  pub async fn take_lease(&self, session: &str, hold: Hold) -> Result<(String, u64)> {
    let key = SessionArg::parse(session)?.key;
    let abandoned = self.held(&key).is_some_and(|h| h.abandoned);
    let held = self.held_token(&key);
    // A token held already keeps its lease whatever this take's outcome: only a fresh one may be left unbacked.
    let unsure = held.is_none().then(random_token);
    let token = held.or(unsure.clone()).expect("one of them");
    let unsure = unsure.map(|token| self.unbacked(&key, &token, &hold));
    let taken = self.leases()?.acquire(&key, &token, &hold).await?;
    unsure.into_iter().for_each(Unbacked::settled); // an answer: taken, or not at all
    let Some(generation) = taken else { return Err(StoreError::LeaseHeld(key.to_string())) };
    self.set_held(&key, Some(Held { token: Some(token.clone()), hold, retaken: false, abandoned }));
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

  /// As `renew_lease`, held on as `hold` says: the fleet moves its leases onto its new epoch so.
  pub async fn hold_lease(&self, session: &str, token: &str, hold: Hold) -> Result<LeaseState> {
    let key = SessionArg::parse(session)?.key;
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
      drop(self.unbacked(&key, token, &held.hold));
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
    let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ours) = held.get_mut(&key).filter(|h| h.token.as_deref() == Some(token)) {
      ours.token = None;
      ours.abandoned = true;
      if ours.hold.epoch.is_some() {
        // Else the epoch would hold it for as long as it lives, not until it expires.
        drop(self.unbacked(&key, token, &ours.hold));
      }
    }
    Ok(())
  }

  /// Records `token`'s lease of the session to detach from its epoch (if the hold has one) until `settled`: a
  /// call whose outcome is unknown until it returns, or a lease given up without a release.
  fn unbacked(&self, key: &SessionKey, token: &str, hold: &Hold) -> Unbacked {
    let entry = hold.epoch.as_ref().map(|_| (key.clone(), token.to_owned(), hold.ttl));
    if let Some((key, token, ttl)) = &entry {
      let pending = Pending { key: key.clone(), token: token.clone(), ttl: *ttl, in_flight: true };
      self.unbacked.lock().unwrap_or_else(|p| p.into_inner()).push(pending);
    }
    Unbacked { list: self.unbacked.clone(), entry }
  }

  /// Detaches every lease this store no longer backs from the epoch it was taken under, so each expires after its
  /// ttl though the epoch lives on (a fleet worker does this before each beat, and skips the beat if it fails).
  /// Not a call still in flight: its outcome is not known yet (a take that lands and returns is backed, and a
  /// detach that landed just after it would leave its holder running a lease nothing renews: the fleet
  /// simulation's seed 175 of `slow_stops`), and once its caller gave up on it, it is detached before the next beat.
  pub async fn detach_unbacked(&self) -> Result<()> {
    let pending: Vec<Pending> = self.unbacked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if pending.iter().all(|p| p.in_flight) {
      return Ok(());
    }
    let leases = self.leases()?;
    for Pending { key, token, ttl, .. } in pending.into_iter().filter(|p| !p.in_flight) {
      leases.detach(&key, &token, ttl).await?;
      let mut list = self.unbacked.lock().unwrap_or_else(|p| p.into_inner());
      if let Some(at) = list.iter().position(|p| !p.in_flight && p.key == key && p.token == token) {
        list.remove(at);
      }
    }
    Ok(())
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

/// Leases to detach from their epoch (`Store::detach_unbacked`).
pub(super) type UnbackedList = Arc<std::sync::Mutex<Vec<Pending>>>;

/// A lease to detach: session, token, the ttl it then lasts, and whether the call that may have left it unbacked
/// is still in flight (not to be detached yet).
#[derive(Clone)]
pub(super) struct Pending {
  key: SessionKey,
  token: String,
  ttl: Duration,
  in_flight: bool,
}

/// One entry of that list while its call runs: dropped unsettled (an error, the call dropped), the entry stays,
/// no longer in flight.
struct Unbacked {
  list: UnbackedList,
  entry: Option<(SessionKey, String, Duration)>,
}

impl Unbacked {
  /// The call returned an answer: the lease is held as recorded, or not at all.
  fn settled(mut self) {
    let Some((key, token, _)) = self.entry.take() else { return };
    let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(at) = list.iter().rposition(|p| p.in_flight && p.key == key && p.token == token) {
      list.remove(at);
    }
  }
}

impl Drop for Unbacked {
  fn drop(&mut self) {
    let Some((key, token, _)) = self.entry.take() else { return };
    let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pending) = list.iter_mut().rev().find(|p| p.in_flight && p.key == key && p.token == token) {
      pending.in_flight = false;
    }
  }
}
