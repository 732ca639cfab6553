//! Membership: heartbeats with a ttl and small shared maps, under a group name. What a fleet of workers needs
//! from the tier; the tier knows nothing of what the entries mean (assignment is `crate::fleet`'s).
//!
//! Expiry is by the tier's clock (Redis' `TIME`), so workers whose clocks disagree still agree on who is live.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Result, StoreError};

/// A live member: its id, the bytes it last published with its heartbeat, and how long its heartbeat has left
/// (by the tier's clock, as of the reply): a member that stopped beating drops out then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
  pub id: String,
  pub info: Vec<u8>,
  pub expires_in: Duration,
}

/// What a beat found: the live members, and the epoch the beat kept alive (`Epoch`), if this tier carries leases
/// on epochs (else `None`, and every lease is renewed on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
  pub members: Vec<Member>,
  pub epoch: Option<u64>,
}

#[async_trait]
pub trait Membership: Send + Sync + std::fmt::Debug {
  /// Keeps `id` live for `ttl` with `info`, drops members whose ttl ran out, and returns the live ones (sorted by
  /// id), all in one step. `claim` (random per worker instance) claims the id: while a live heartbeat of `id`
  /// carries another claim, nothing is written and the beat fails with `ERR_FLEET_DUPLICATE_WORKER` (two
  /// processes given one id must not publish as one worker). Once that heartbeat expires the id is free again.
  /// A beat that finds no live heartbeat of `id` (it joined, or its heartbeat ran out) starts a new epoch, greater
  /// than any earlier one of `id`; a beat of a live one keeps it.
  async fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat>;
  /// The live members, sorted by id, without beating.
  async fn members(&self, group: &str) -> Result<Vec<Member>>;
  /// Removes `id` at once (a worker that leaves need not wait for its ttl), if its heartbeat still carries `claim`:
  /// a leave that lands late (its process stalled, or held in the network) must not end the heartbeat (and the
  /// epoch, with every lease held under it) of a later instance given the same id.
  async fn leave(&self, group: &str, id: &str, claim: &str) -> Result<()>;
  /// Every field of the group's map `map`.
  async fn map_all(&self, group: &str, map: &str) -> Result<BTreeMap<String, Vec<u8>>>;
  async fn map_set(&self, group: &str, map: &str, field: &str, value: &[u8]) -> Result<()>;
  /// Removes the field; with `only_if`, only while it still holds exactly those bytes (checked atomically).
  async fn map_remove(&self, group: &str, map: &str, field: &str, only_if: Option<&[u8]>) -> Result<()>;
  /// Sets the field to `value` with `order`, unless it holds an entry of a greater order (compared and written in
  /// one step); true when written. For a field several writers set, where a write that arrives late must not
  /// replace a later writer's. The plain calls above leave a field's order as it was.
  async fn map_set_ordered(&self, group: &str, map: &str, field: &str, value: &[u8], order: u64) -> Result<bool>;
  /// Removes the field (and its order) unless it holds an entry of a greater order; true when it is gone.
  async fn map_remove_ordered(&self, group: &str, map: &str, field: &str, order: u64) -> Result<bool>;
}

/// Whether an ordered write of `order` may replace a field whose entry has `held` (none: not ordered).
pub fn order_allows(held: Option<u64>, order: u64) -> bool {
  held.is_none_or(|held| held <= order)
}

/// Group names go into keys: the session-name alphabet, at most 64 bytes.
pub fn check_group(group: &str) -> Result<()> {
  let ok = !group.is_empty()
    && group.len() <= 64
    && group.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
  if ok {
    return Ok(());
  }
  let reason = "1 to 64 ASCII letters, digits, '-', '_' or '.'".into();
  Err(StoreError::InvalidOption { name: "fleet.group", reason })
}

/// Membership within one process, for the embedded directory tier: several fleet workers in one process share it
/// (a fleet spanning processes needs Redis; the directory's leases do hold across processes). Keyed by the
/// directory as it resolves.
type Members = BTreeMap<String, (Instant, String, Vec<u8>)>;

#[derive(Debug, Default)]
struct Table {
  /// (dir, group) → id → (expires, claim, info).
  members: HashMap<(PathBuf, String), Members>,
  /// (dir, group, map) → field → value.
  maps: HashMap<(PathBuf, String, String), BTreeMap<String, Vec<u8>>>,
  /// (dir, group, map) → field → order of its ordered entry.
  orders: HashMap<(PathBuf, String, String), BTreeMap<String, u64>>,
}

fn table() -> std::sync::MutexGuard<'static, Table> {
  static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
  TABLE.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// The process-local membership of one directory.
#[derive(Debug, Clone)]
pub struct ProcessMembership {
  dir: PathBuf,
}

impl ProcessMembership {
  pub fn new(dir: &Path) -> Self {
    Self { dir: dir.to_path_buf() }
  }

  fn live(&self, group: &str, table: &mut Table) -> Vec<Member> {
    let now = Instant::now();
    let members = table.members.entry((self.dir.clone(), group.to_owned())).or_default();
    members.retain(|_, (until, _, _)| *until > now);
    let member = |(id, (until, _, info)): (&String, &(Instant, String, Vec<u8>))| Member {
      id: id.clone(),
      info: info.clone(),
      expires_in: until.saturating_duration_since(now),
    };
    members.iter().map(member).collect()
  }
}

#[async_trait]
impl Membership for ProcessMembership {
  async fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat> {
    let mut table = table();
    self.live(group, &mut table); // drops the expired, whose claims lapse with them
    let members = table.members.entry((self.dir.clone(), group.to_owned())).or_default();
    if members.get(id).is_some_and(|(_, held, _)| held != claim) {
      return Err(StoreError::DuplicateWorker(id.to_owned()));
    }
    members.insert(id.to_owned(), (Instant::now() + ttl, claim.to_owned(), info.to_vec()));
    // The directory's leases are renewed one by one (their records lock per session, not per member).
    Ok(Beat { members: self.live(group, &mut table), epoch: None })
  }

  async fn members(&self, group: &str) -> Result<Vec<Member>> {
    Ok(self.live(group, &mut table()))
  }

  async fn leave(&self, group: &str, id: &str, claim: &str) -> Result<()> {
    if let Some(members) = table().members.get_mut(&(self.dir.clone(), group.to_owned())) {
      if members.get(id).is_some_and(|(_, held, _)| held == claim) {
        members.remove(id);
      }
    }
    Ok(())
  }

  async fn map_all(&self, group: &str, map: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let key = (self.dir.clone(), group.to_owned(), map.to_owned());
    Ok(table().maps.get(&key).cloned().unwrap_or_default())
  }

  async fn map_set(&self, group: &str, map: &str, field: &str, value: &[u8]) -> Result<()> {
    let key = (self.dir.clone(), group.to_owned(), map.to_owned());
    table().maps.entry(key).or_default().insert(field.to_owned(), value.to_vec());
    Ok(())
  }

  async fn map_remove(&self, group: &str, map: &str, field: &str, only_if: Option<&[u8]>) -> Result<()> {
    let key = (self.dir.clone(), group.to_owned(), map.to_owned());
    if let Some(map) = table().maps.get_mut(&key) {
      if only_if.is_none_or(|expected| map.get(field).is_some_and(|v| v == expected)) {
        map.remove(field);
      }
    }
    Ok(())
  }

  async fn map_set_ordered(&self, group: &str, map: &str, field: &str, value: &[u8], order: u64) -> Result<bool> {
    let key = (self.dir.clone(), group.to_owned(), map.to_owned());
    let mut table = table();
    let orders = table.orders.entry(key.clone()).or_default();
    if !order_allows(orders.get(field).copied(), order) {
      return Ok(false);
    }
    orders.insert(field.to_owned(), order);
    table.maps.entry(key).or_default().insert(field.to_owned(), value.to_vec());
    Ok(true)
  }

  async fn map_remove_ordered(&self, group: &str, map: &str, field: &str, order: u64) -> Result<bool> {
    let key = (self.dir.clone(), group.to_owned(), map.to_owned());
    let mut table = table();
    let orders = table.orders.entry(key.clone()).or_default();
    if !order_allows(orders.get(field).copied(), order) {
      return Ok(false);
    }
    orders.remove(field);
    table.maps.entry(key).or_default().remove(field);
    Ok(true)
  }
}

/// The embedded tier's membership is its directory's, within this process.
#[async_trait]
impl Membership for super::LocalDirTier {
  async fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat> {
    ProcessMembership::new(self.dir()).beat(group, id, claim, info, ttl).await
  }
  async fn members(&self, group: &str) -> Result<Vec<Member>> {
    ProcessMembership::new(self.dir()).members(group).await
  }
  async fn leave(&self, group: &str, id: &str, claim: &str) -> Result<()> {
    ProcessMembership::new(self.dir()).leave(group, id, claim).await
  }
  async fn map_all(&self, group: &str, map: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    ProcessMembership::new(self.dir()).map_all(group, map).await
  }
  async fn map_set(&self, group: &str, map: &str, field: &str, value: &[u8]) -> Result<()> {
    ProcessMembership::new(self.dir()).map_set(group, map, field, value).await
  }
  async fn map_remove(&self, group: &str, map: &str, field: &str, only_if: Option<&[u8]>) -> Result<()> {
    ProcessMembership::new(self.dir()).map_remove(group, map, field, only_if).await
  }
  async fn map_set_ordered(&self, group: &str, map: &str, field: &str, value: &[u8], order: u64) -> Result<bool> {
    ProcessMembership::new(self.dir()).map_set_ordered(group, map, field, value, order).await
  }
  async fn map_remove_ordered(&self, group: &str, map: &str, field: &str, order: u64) -> Result<bool> {
    ProcessMembership::new(self.dir()).map_remove_ordered(group, map, field, order).await
  }
}

#[cfg(test)]
impl ProcessMembership {
  /// Drops `id` whatever its claim, as its heartbeat's expiry would (which runs on the wall clock).
  pub(crate) fn expire(&self, group: &str, id: &str) {
    if let Some(members) = table().members.get_mut(&(self.dir.clone(), group.to_owned())) {
      members.remove(id);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test]
  async fn members_expire_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let m = ProcessMembership::new(dir.path());
    m.beat("g", "a", "ca", b"1", Duration::from_millis(40)).await.unwrap();
    let live = m.beat("g", "b", "cb", b"2", Duration::from_secs(10)).await.unwrap().members;
    assert_eq!(live.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let live = m.members("g").await.unwrap();
    assert_eq!(live.iter().map(|m| (m.id.as_str(), m.info.as_slice())).collect::<Vec<_>>(), [("b", &b"2"[..])]);
    let left = live[0].expires_in;
    assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10), "{left:?}");
    m.leave("g", "b", "another instance's").await.unwrap();
    assert_eq!(m.members("g").await.unwrap().len(), 1, "a leave under another claim leaves the heartbeat");
    m.leave("g", "b", "cb").await.unwrap();
    assert!(m.members("g").await.unwrap().is_empty());
    assert!(m.members("other").await.unwrap().is_empty());
  }

  #[tokio::test]
  async fn a_live_id_refuses_another_claim_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let m = ProcessMembership::new(dir.path());
    m.beat("g", "w", "first", b"1", Duration::from_millis(60)).await.unwrap();
    let err = m.beat("g", "w", "second", b"2", Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.code(), "ERR_FLEET_DUPLICATE_WORKER");
    assert!(err.to_string().contains("\"w\""), "{err}");
    // The refused beat wrote nothing: the first's heartbeat and info stand, and it goes on beating.
    let live = m.members("g").await.unwrap();
    assert_eq!(live.iter().map(|m| (m.id.as_str(), m.info.as_slice())).collect::<Vec<_>>(), [("w", &b"1"[..])]);
    m.beat("g", "w", "first", b"1", Duration::from_millis(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(90)).await;
    // Expired: the id is free, a new instance claims it, and now the old one is the one refused.
    let live = m.beat("g", "w", "second", b"2", Duration::from_secs(10)).await.unwrap().members;
    assert_eq!(live.iter().map(|m| (m.id.as_str(), m.info.as_slice())).collect::<Vec<_>>(), [("w", &b"2"[..])]);
    let err = m.beat("g", "w", "first", b"1", Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.code(), "ERR_FLEET_DUPLICATE_WORKER");
  }

  #[tokio::test]
  async fn map_remove_checks_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let m = ProcessMembership::new(dir.path());
    m.map_set("g", "owners", "s", b"w1").await.unwrap();
    m.map_remove("g", "owners", "s", Some(b"w2")).await.unwrap();
    assert_eq!(m.map_all("g", "owners").await.unwrap().get("s").map(Vec::as_slice), Some(&b"w1"[..]));
    m.map_remove("g", "owners", "s", Some(b"w1")).await.unwrap();
    assert!(m.map_all("g", "owners").await.unwrap().is_empty());
  }

  #[tokio::test]
  async fn an_ordered_write_never_replaces_a_greater_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = ProcessMembership::new(dir.path());
    let value = |m: BTreeMap<String, Vec<u8>>| m.get("s").cloned();
    assert!(m.map_set_ordered("g", "owners", "s", b"b", 20).await.unwrap());
    // A late write and a late removal of an earlier order change nothing.
    assert!(!m.map_set_ordered("g", "owners", "s", b"a", 10).await.unwrap());
    assert!(!m.map_remove_ordered("g", "owners", "s", 10).await.unwrap());
    assert_eq!(value(m.map_all("g", "owners").await.unwrap()), Some(b"b".to_vec()));
    // The same order may rewrite and remove it; then any order may write again.
    assert!(m.map_set_ordered("g", "owners", "s", b"b running", 20).await.unwrap());
    assert_eq!(value(m.map_all("g", "owners").await.unwrap()), Some(b"b running".to_vec()));
    assert!(m.map_remove_ordered("g", "owners", "s", 20).await.unwrap());
    assert!(m.map_all("g", "owners").await.unwrap().is_empty());
    assert!(m.map_set_ordered("g", "owners", "s", b"a", 10).await.unwrap());
    // An entry written without an order is replaced by any ordered write.
    m.map_set("g", "owners", "t", b"x").await.unwrap();
    assert!(m.map_set_ordered("g", "owners", "t", b"y", 1).await.unwrap());
  }

  #[test]
  fn group_names_are_checked() {
    assert!(check_group("default").is_ok());
    for bad in ["", "a b", "{x}", &"x".repeat(65)] {
      assert_eq!(check_group(bad).unwrap_err().code(), "ERR_INVALID_OPTION");
    }
  }
}
