//! The simulated primary: one in-memory tier shared by every simulated worker, with leases and membership on
//! tokio's clock (paused in the simulation), so expiry follows simulated time. Its leases are the Redis tier's
//! (`leases`): a lease held under a member's epoch lasts while that member's heartbeat does, as every fleet
//! worker's does, so each schedule runs the epoch path the fleet takes on Redis.
//!
//! A lease's generation is a counter per session, raised at each take by a token that did not hold it; ordered
//! map entries (`Membership::map_set_ordered`) keep their order beside them, as the real tiers do.
//!
//! It also remembers, per token, the furthest time any grant made its lease valid (`granted_until`): a take, a
//! renewal, a retake, a detach, and each beat that kept alive the epoch the lease is held under. A released lease
//! still counted until then for the invariants (a worker whose stop failed may still run its client, and only
//! expiry — not a release — may let another worker start the session).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::leases::Slot;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{Beat, Epoch, Member};

/// A member's heartbeat.
#[derive(Debug)]
pub(super) struct Heartbeat {
  pub until: Instant,
  claim: String,
  info: Vec<u8>,
  /// Its epoch: given when the member had no live heartbeat, kept while it beats on.
  pub epoch: u64,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
  pub sessions: BTreeMap<String, Vec<u8>>,
  pub leases: HashMap<String, Slot>,
  /// Token → the furthest any grant made its lease valid.
  pub granted: HashMap<String, Instant>,
  /// group → id → heartbeat.
  pub members: HashMap<String, BTreeMap<String, Heartbeat>>,
  /// The last epoch given (to any member): each new one is above it, so none is ever given twice.
  last_epoch: u64,
  /// (group, map) → field → value.
  maps: HashMap<(String, String), BTreeMap<String, Vec<u8>>>,
  /// (group, map) → field → order of its ordered entry.
  orders: HashMap<(String, String), BTreeMap<String, u64>>,
}

#[derive(Debug, Default)]
pub struct SimTier {
  inner: Mutex<Inner>,
  /// A broken tier whose acquire never refuses for another holder: to show the checks catch a second owner.
  pub(super) lax: bool,
  /// When the run began (`FLEET_SIM_TRACE` prints each call's time from then).
  pub(super) born: Option<Instant>,
  /// Beats give no epoch, so every lease is renewed on its own (as on a Redis Cluster or the embedded tier).
  pub(super) per_session: bool,
}

impl SimTier {
  pub fn with_sessions(names: &[String], lax: bool) -> Self {
    let tier = Self { lax, born: Some(Instant::now()), ..Self::default() };
    tier.lock().sessions.extend(names.iter().map(|n| (n.clone(), b"x".to_vec())));
    tier
  }

  pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
    self.inner.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// The token holding the session's lease now (plain and unexpired, or under an epoch that lives), if any.
  pub fn holder(&self, session: &str) -> Option<String> {
    let now = Instant::now();
    let inner = self.lock();
    inner.leases.get(session).filter(|s| inner.valid(s, now)).map(|s| s.token.clone())
  }

  /// The furthest a grant ever made `token`'s lease valid.
  pub fn granted_until(&self, token: &str) -> Option<Instant> {
    self.lock().granted.get(token).copied()
  }

  fn live(inner: &mut Inner, group: &str) -> Vec<Member> {
    let now = Instant::now();
    let members = inner.members.entry(group.to_owned()).or_default();
    members.retain(|_, beat| beat.until > now);
    let member = |(id, beat): (&String, &Heartbeat)| Member {
      id: id.clone(),
      info: beat.info.clone(),
      expires_in: beat.until.saturating_duration_since(now),
    };
    members.iter().map(member).collect()
  }
}

impl Inner {
  /// When epoch `e`'s heartbeat runs out, while it lives (that heartbeat's expiry is ahead and the member's
  /// epoch is still `e`'s), as the scripts' `alive`.
  pub fn alive(&self, e: &Epoch, now: Instant) -> Option<Instant> {
    let beat = self.members.get(&e.group)?.get(&e.id)?;
    (beat.until > now && beat.epoch == e.n).then_some(beat.until)
  }

  /// Raises the furthest grant of `token` to `until`.
  pub fn raise(&mut self, token: &str, until: Instant) {
    let furthest = self.granted.entry(token.to_owned()).or_insert(until);
    *furthest = (*furthest).max(until);
  }
}

/// The calls a worker's view makes, each applied at one simulated instant (see `faults`).
impl SimTier {
  pub fn get(&self, key: &SessionKey) -> Option<Vec<u8>> {
    self.lock().sessions.get(key.as_str()).cloned()
  }
  pub fn put(&self, key: &SessionKey, bytes: Vec<u8>) {
    self.lock().sessions.insert(key.as_str().to_owned(), bytes);
  }
  pub fn delete(&self, key: &SessionKey) {
    self.lock().sessions.remove(key.as_str());
  }
  pub fn list(&self) -> Vec<SessionKey> {
    self.lock().sessions.keys().filter_map(|k| SessionKey::parse(k).ok()).collect()
  }

  /// Refuses a live id's heartbeat under another claim, as the real tiers do. As Redis' `BEAT`: a member with no
  /// live heartbeat (it joined, or its heartbeat ran out) gets a new epoch, a live one keeps its own; and every
  /// lease held under the epoch kept lasts as long as the heartbeat now does.
  pub fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat> {
    let mut inner = self.lock();
    Self::live(&mut inner, group); // drops the expired, their claims and epochs with them
    let until = Instant::now() + ttl;
    let kept = match inner.members.get(group).and_then(|m| m.get(id)) {
      Some(beat) if beat.claim != claim => return Err(StoreError::DuplicateWorker(id.to_owned())),
      Some(beat) => Some(beat.epoch),
      None => None,
    };
    let epoch = kept.unwrap_or_else(|| {
      inner.last_epoch += 1;
      inner.last_epoch
    });
    let beat = Heartbeat { until, claim: claim.to_owned(), info: info.to_vec(), epoch };
    inner.members.entry(group.to_owned()).or_default().insert(id.to_owned(), beat);
    let carried = Epoch { group: group.to_owned(), id: id.to_owned(), n: epoch };
    let tokens: Vec<String> = inner
      .leases
      .values()
      .filter(|s| !s.token.is_empty() && s.epoch.as_ref() == Some(&carried))
      .map(|s| s.token.clone())
      .collect();
    for token in tokens {
      inner.raise(&token, until);
    }
    let epoch = (!self.per_session).then_some(epoch);
    Ok(Beat { members: Self::live(&mut inner, group), epoch })
  }
  pub fn members(&self, group: &str) -> Vec<Member> {
    Self::live(&mut self.lock(), group)
  }
  /// Drops the heartbeat and its epoch with it, if it carries `claim`: the leases held under it are free from
  /// now on.
  pub fn leave(&self, group: &str, id: &str, claim: &str) {
    if let Some(members) = self.lock().members.get_mut(group) {
      if members.get(id).is_some_and(|beat| beat.claim == claim) {
        members.remove(id);
      }
    }
  }
  pub fn map_all(&self, group: &str, map: &str) -> BTreeMap<String, Vec<u8>> {
    self.lock().maps.get(&(group.to_owned(), map.to_owned())).cloned().unwrap_or_default()
  }
  pub fn map_set(&self, group: &str, map: &str, field: &str, value: &[u8]) {
    let key = (group.to_owned(), map.to_owned());
    self.lock().maps.entry(key).or_default().insert(field.to_owned(), value.to_vec());
  }
  pub fn map_remove(&self, group: &str, map: &str, field: &str, only_if: Option<&[u8]>) {
    if let Some(map) = self.lock().maps.get_mut(&(group.to_owned(), map.to_owned())) {
      if only_if.is_none_or(|expected| map.get(field).is_some_and(|v| v == expected)) {
        map.remove(field);
      }
    }
  }
  /// `value` `None`: the ordered removal.
  pub fn map_write_ordered(&self, group: &str, map: &str, field: &str, value: Option<&[u8]>, order: u64) -> bool {
    let key = (group.to_owned(), map.to_owned());
    let mut inner = self.lock();
    let orders = inner.orders.entry(key.clone()).or_default();
    if !crate::tier::order_allows(orders.get(field).copied(), order) {
      return false;
    }
    let values = inner.maps.entry(key.clone()).or_default();
    match value {
      Some(value) => values.insert(field.to_owned(), value.to_vec()).map(drop),
      None => values.remove(field).map(drop),
    };
    let orders = inner.orders.entry(key).or_default();
    match value {
      Some(_) => orders.insert(field.to_owned(), order).map(drop),
      None => orders.remove(field).map(drop),
    };
    true
  }
}
