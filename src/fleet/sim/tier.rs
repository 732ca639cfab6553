//! The simulated primary: one in-memory tier shared by every simulated worker, with leases and membership on
//! tokio's clock (paused in the simulation), so expiry follows simulated time. Lease semantics are those of the
//! embedded tier (src/tier/local.rs): an expired lease stays its last owner's until another token takes it.
//!
//! A lease's generation is a counter per session, raised at each take by a token that did not hold it; ordered
//! map entries (`Membership::map_set_ordered`) keep their order beside them, as the real tiers do.
//!
//! It also remembers, per token, the furthest time any grant (acquire, renew, retake) made its lease valid: a
//! released lease still counted until then for the invariants (a worker whose stop failed may still run its
//! client, and only expiry — not a release — may let another worker start the session).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{Beat, Hold, LeaseState, Member};

/// A member's heartbeat: expires, claim, info.
type Heartbeat = (Instant, String, Vec<u8>);

#[derive(Debug, Default)]
struct Slot {
  token: String,
  until: Option<Instant>,
  generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
  sessions: BTreeMap<String, Vec<u8>>,
  leases: HashMap<String, Slot>,
  granted: HashMap<String, Instant>,
  /// group → id → heartbeat.
  members: HashMap<String, BTreeMap<String, Heartbeat>>,
  /// (group, map) → field → value.
  maps: HashMap<(String, String), BTreeMap<String, Vec<u8>>>,
  /// (group, map) → field → order of its ordered entry.
  orders: HashMap<(String, String), BTreeMap<String, u64>>,
}

#[derive(Debug, Default)]
pub struct SimTier {
  inner: Mutex<Inner>,
  /// A broken tier whose acquire never refuses: to show the checks catch a second owner.
  lax: bool,
}

impl SimTier {
  pub fn with_sessions(names: &[String], lax: bool) -> Self {
    let tier = Self { lax, ..Self::default() };
    tier.lock().sessions.extend(names.iter().map(|n| (n.clone(), b"x".to_vec())));
    tier
  }

  fn lock(&self) -> MutexGuard<'_, Inner> {
    self.inner.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// The token holding the session's lease now (unexpired), if any.
  pub fn holder(&self, session: &str) -> Option<String> {
    let now = Instant::now();
    let inner = self.lock();
    inner
      .leases
      .get(session)
      .filter(|s| s.until.is_some_and(|u| u > now) && !s.token.is_empty())
      .map(|s| s.token.clone())
  }

  /// The furthest a grant ever made `token`'s lease valid.
  pub fn granted_until(&self, token: &str) -> Option<Instant> {
    self.lock().granted.get(token).copied()
  }

  /// Grants the lease to `token` until `ttl` from now (a new generation unless it held it), and remembers how
  /// far it reaches.
  fn grant(inner: &mut Inner, session: &str, token: &str, ttl: Duration, new_generation: bool) -> u64 {
    let until = Instant::now() + ttl;
    let last = inner.leases.get(session).map_or(0, |s| s.generation);
    let generation = if new_generation { last + 1 } else { last };
    inner.leases.insert(session.to_owned(), Slot { token: token.to_owned(), until: Some(until), generation });
    let furthest = inner.granted.entry(token.to_owned()).or_insert(until);
    *furthest = (*furthest).max(until);
    generation
  }

  fn hold(inner: &mut Inner, session: &str, token: &str, ttl: Duration) -> LeaseState {
    let now = Instant::now();
    let state = match inner.leases.get(session) {
      Some(slot) if slot.token == token && slot.until.is_some_and(|u| u > now) => LeaseState::Held,
      Some(slot) if slot.token == token => LeaseState::Retaken,
      _ => LeaseState::Lost,
    };
    if state != LeaseState::Lost {
      Self::grant(inner, session, token, ttl, false);
    }
    state
  }

  fn live(inner: &mut Inner, group: &str) -> Vec<Member> {
    let now = Instant::now();
    let members = inner.members.entry(group.to_owned()).or_default();
    members.retain(|_, (until, _, _)| *until > now);
    let member = |(id, (until, _, info)): (&String, &Heartbeat)| Member {
      id: id.clone(),
      info: info.clone(),
      expires_in: until.saturating_duration_since(now),
    };
    members.iter().map(member).collect()
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

  pub fn acquire(&self, key: &SessionKey, token: &str, hold: &Hold) -> Option<u64> {
    let ttl = hold.ttl;
    let mut inner = self.lock();
    let now = Instant::now();
    let live = |s: &&Slot| !s.token.is_empty() && s.until.is_some_and(|u| u > now);
    let slot = inner.leases.get(key.as_str()).filter(live);
    if !self.lax && slot.is_some_and(|s| s.token != token) {
      return None;
    }
    let kept = slot.is_some_and(|s| s.token == token);
    Some(Self::grant(&mut inner, key.as_str(), token, ttl, !kept))
  }
  pub fn renew(&self, key: &SessionKey, token: &str, hold: &Hold) -> LeaseState {
    let ttl = hold.ttl;
    Self::hold(&mut self.lock(), key.as_str(), token, ttl)
  }
  pub fn release(&self, key: &SessionKey, token: &str) {
    let mut inner = self.lock();
    if let Some(slot) = inner.leases.get_mut(key.as_str()).filter(|s| s.token == token) {
      *slot = Slot { generation: slot.generation, ..Slot::default() };
    }
  }
  pub fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, hold: &Hold) -> LeaseState {
    let ttl = hold.ttl;
    let mut inner = self.lock();
    let state = Self::hold(&mut inner, key.as_str(), token, ttl);
    if state != LeaseState::Lost {
      inner.sessions.insert(key.as_str().to_owned(), bytes);
    }
    state
  }
  pub fn delete_fenced(&self, key: &SessionKey, token: &str, hold: &Hold) -> LeaseState {
    let ttl = hold.ttl;
    let mut inner = self.lock();
    let state = Self::hold(&mut inner, key.as_str(), token, ttl);
    if state != LeaseState::Lost {
      inner.sessions.remove(key.as_str());
    }
    state
  }

  /// Refuses a live id's heartbeat under another claim, as the real tiers do.
  pub fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat> {
    let mut inner = self.lock();
    Self::live(&mut inner, group);
    let members = inner.members.entry(group.to_owned()).or_default();
    if members.get(id).is_some_and(|(_, held, _)| held != claim) {
      return Err(StoreError::DuplicateWorker(id.to_owned()));
    }
    members.insert(id.to_owned(), (Instant::now() + ttl, claim.to_owned(), info.to_vec()));
    Ok(Beat { members: Self::live(&mut inner, group), epoch: None })
  }
  pub fn members(&self, group: &str) -> Vec<Member> {
    Self::live(&mut self.lock(), group)
  }
  pub fn leave(&self, group: &str, id: &str) {
    if let Some(members) = self.lock().members.get_mut(group) {
      members.remove(id);
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
