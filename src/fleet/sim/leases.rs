//! The simulated primary's leases, with the Redis tier's semantics (src/tier/redis/scripts.rs, the reference): a
//! lease is plain (valid until its own expiry) or held under a fleet member's epoch (no expiry of its own: valid
//! while that epoch lives, so each beat that keeps the epoch renews it). Each call below names the script it
//! plays. Redis keeps the lease's last owner in a key of its own (the "owner key"); here a slot keeps its token
//! once expired (an empty token: released), which is the same as long as the tier loses nothing.

use std::time::Duration;

use tokio::time::Instant;

use super::tier::{Inner, SimTier};
use crate::session::SessionKey;
use crate::tier::{Epoch, Hold, LeaseState};

#[derive(Debug, Default, Clone)]
pub(super) struct Slot {
  /// The holder, kept once the lease expired (its last owner, who may take it again); empty once released.
  pub token: String,
  /// A plain lease's expiry.
  pub until: Option<Instant>,
  /// The epoch the lease is held under (then `until` is `None`).
  pub epoch: Option<Epoch>,
  pub generation: u64,
  /// Detached (`DETACH`): held by nobody until `until`, not even its token, so no call in flight can bring it
  /// back under an epoch; free once expired.
  pub detached: bool,
}

/// How a grant holds the lease: for a ttl from now, or under an epoch whose heartbeat lasts until the instant.
enum Grant {
  Plain(Duration),
  Epoch(Epoch, Instant),
}

impl Slot {
  /// The lease is in the tier (Redis' lease key exists): a plain one before its expiry, or one under an epoch,
  /// whether that lives or not.
  fn present(&self, now: Instant) -> bool {
    !self.token.is_empty() && (self.epoch.is_some() || self.until.is_some_and(|u| u > now))
  }
}

impl Inner {
  /// The lease holds its token now: plain and unexpired, or under an epoch that lives.
  pub fn valid(&self, slot: &Slot, now: Instant) -> bool {
    match &slot.epoch {
      Some(e) => !slot.token.is_empty() && self.alive(e, now).is_some(),
      None => slot.present(now),
    }
  }

  /// Gives the session's lease to `token` as `how` says (a new generation unless it held it), and remembers how
  /// far it reaches.
  fn grant(&mut self, session: &str, token: &str, how: Grant, new_generation: bool) -> u64 {
    let now = Instant::now();
    let last = self.leases.get(session).map_or(0, |s| s.generation);
    let generation = if new_generation { last + 1 } else { last };
    let (until, epoch, valid_until) = match how {
      Grant::Plain(ttl) => (Some(now + ttl), None, now + ttl),
      Grant::Epoch(epoch, beat_until) => (None, Some(epoch), beat_until),
    };
    let slot = Slot { token: token.to_owned(), until, epoch, generation, detached: false };
    self.leases.insert(session.to_owned(), slot);
    self.raise(token, valid_until);
    generation
  }

  /// How a lease the caller keeps on with `hold` is held: under its epoch while that lives, else for its ttl (the
  /// caller's epoch died too: its beat has not brought the next one yet).
  fn hold_as(&self, hold: &Hold, now: Instant) -> Grant {
    let alive = hold.epoch.as_ref().and_then(|e| Some((e.clone(), self.alive(e, now)?)));
    alive.map_or(Grant::Plain(hold.ttl), |(e, until)| Grant::Epoch(e, until))
  }

  /// What a renewal or a fenced write finds, the lease then held on as `hold` says unless `Lost`: `RENEW` / `hold`
  /// for a plain hold, `hold_in_epoch` for one under an epoch.
  fn hold(&mut self, session: &str, token: &str, hold: &Hold) -> LeaseState {
    let now = Instant::now();
    let slot = self.leases.get(session).cloned().unwrap_or_default();
    let (ours, present) = (slot.token == token, slot.present(now));
    // Every script reads a lease under an epoch that died as absent (`lease_prelude`).
    let valid = self.valid(&slot, now);
    let state = match &hold.epoch {
      // `<token> detached` is nobody's value in Redis: lost while it lasts, as another token's; and once expired,
      // the owner key no longer names the token (`DETACH` released it): lost too.
      _ if slot.detached => LeaseState::Lost,
      // The token's own lease under a live epoch stays there: held, as it is (`RENEW`, `hold`).
      None if ours && valid && slot.epoch.is_some() => return LeaseState::Held,
      // Its own plain lease is held; once expired or its epoch died (and nobody took it) it is taken again.
      None if ours && valid => LeaseState::Held,
      None if ours => LeaseState::Retaken,
      None => LeaseState::Lost,
      // The token's own lease, held unless its epoch died (then taken again: nobody took it since).
      Some(_) if ours && present => match &slot.epoch {
        Some(e) if self.alive(e, now).is_none() => LeaseState::Retaken,
        _ => LeaseState::Held,
      },
      // Its plain lease expired, and the token is still its last owner.
      Some(_) if ours => LeaseState::Retaken,
      Some(_) => LeaseState::Lost,
    };
    if state != LeaseState::Lost {
      let how = self.hold_as(hold, now);
      self.grant(session, token, how, false);
    }
    state
  }
}

/// The calls a worker's view makes (`faults`), each applied at one simulated instant.
impl SimTier {
  /// `ACQUIRE` (plain hold) or `EPOCH_ACQUIRE` (under the hold's epoch, only while that lives). Free: no lease in
  /// the tier (never taken, released, expired), or, for a take under an epoch, one under an epoch that died. The
  /// token's own lease is kept (its generation too); a plain take sees any lease under an epoch as another's.
  pub fn acquire(&self, key: &SessionKey, token: &str, hold: &Hold) -> Option<u64> {
    let now = Instant::now();
    let mut inner = self.lock();
    let session = key.as_str();
    let slot = inner.leases.get(session).cloned().unwrap_or_default();
    let present = slot.present(now);
    let (own, free, how) = match &hold.epoch {
      None => {
        // A lease under an epoch that died is free to a plain take too (`lease_prelude`).
        let valid = inner.valid(&slot, now);
        let own = valid && slot.token == token && !slot.detached;
        if own && slot.epoch.is_some() {
          // The token's own lease under a live epoch stays there (`ACQUIRE`).
          return Some(slot.generation);
        }
        (own, !valid, Grant::Plain(hold.ttl))
      }
      Some(epoch) => {
        let until = inner.alive(epoch, now)?;
        let own = present && slot.token == token && !slot.detached;
        let dead = slot.epoch.as_ref().is_some_and(|e| inner.alive(e, now).is_none());
        (own, !present || (!own && dead), Grant::Epoch(epoch.clone(), until))
      }
    };
    if !(free || own || self.lax) {
      return None;
    }
    Some(inner.grant(session, token, how, !own))
  }

  pub fn renew(&self, key: &SessionKey, token: &str, hold: &Hold) -> LeaseState {
    self.lock().hold(key.as_str(), token, hold)
  }

  /// `RELEASE`: the token's lease, plain or under an epoch, is gone, and the token can no longer take it back.
  pub fn release(&self, key: &SessionKey, token: &str) {
    let mut inner = self.lock();
    if let Some(slot) = inner.leases.get_mut(key.as_str()).filter(|s| s.token == token) {
      *slot = Slot { generation: slot.generation, ..Slot::default() };
    }
  }

  pub fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, hold: &Hold) -> LeaseState {
    let mut inner = self.lock();
    let state = inner.hold(key.as_str(), token, hold);
    if state != LeaseState::Lost {
      inner.sessions.insert(key.as_str().to_owned(), bytes);
    }
    state
  }

  pub fn delete_fenced(&self, key: &SessionKey, token: &str, hold: &Hold) -> LeaseState {
    let mut inner = self.lock();
    let state = inner.hold(key.as_str(), token, hold);
    if state != LeaseState::Lost {
      inner.sessions.remove(key.as_str());
    }
    state
  }

  /// `DETACH`: the token's lease, plain and unexpired or under an epoch (alive or not), becomes a detached one
  /// that expires `ttl` from now. Another token's, one detached already, or none: left as it is.
  pub fn detach(&self, key: &SessionKey, token: &str, ttl: Duration) {
    let mut inner = self.lock();
    let session = key.as_str();
    let now = Instant::now();
    let detach = |s: &Slot| s.token == token && !s.detached && (s.epoch.is_some() || s.present(now));
    if inner.leases.get(session).is_some_and(detach) {
      inner.grant(session, token, Grant::Plain(ttl), false);
      inner.leases.get_mut(session).expect("granted").detached = true;
    }
  }
}
