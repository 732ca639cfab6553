//! The shared storage of the model and each store's faulty view of it. One primary (in memory, its conditional
//! writes one atomic step as Redis' scripts are) and one bucket (`Memory`); every store ("process") reaches them
//! through its own `Faults`: each call takes a seeded time, lands at a seeded point within it (so calls in flight
//! from different stores land in another order than they were sent), and a bucket call may fail before it lands
//! (refused) or after (landed, its reply lost). The primary is slow but never fails: what the model checks is
//! the bucket's part, and a save must then always be acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::fleet::sim::rng::Rng;
use crate::session::SessionKey;
use crate::tier::memory::Memory;
use crate::tier::{ObjectMeta, ObjectTier, Tier};

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
  m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One store's transport: how long its calls take and how often a bucket call fails.
#[derive(Debug)]
pub struct Faults {
  pub seed: u64,
  pub store: String,
  /// Each call takes up to this long; now and then (per mille) up to `spike`.
  pub latency_ms: u64,
  pub spike_per_mille: u64,
  pub spike_ms: u64,
  /// Bucket calls that fail, per mille (half before they land, half after).
  pub error_per_mille: u64,
  /// How many calls of each kind this store made: the key of each call's draw, so a call's fate does not depend
  /// on which other call happened to be polled first.
  calls: Mutex<HashMap<String, u64>>,
}

/// What the transport does with one call.
struct Fate {
  before: Duration,
  after: Duration,
  fail_before: bool,
  fail_after: bool,
}

impl Faults {
  pub fn new(seed: u64, store: &str, latency_ms: u64, spike_ms: u64, error_per_mille: u64) -> Self {
    let (store, calls) = (store.to_owned(), Mutex::default());
    Self { seed, store, latency_ms, spike_per_mille: 30, spike_ms, error_per_mille, calls }
  }

  /// A call named `what` (its kind and session, never a random part of its key).
  fn fate(&self, what: &str, can_fail: bool) -> Fate {
    let n = {
      let mut calls = guard(&self.calls);
      let n = calls.entry(what.to_owned()).or_default();
      *n += 1;
      *n
    };
    let mut rng = Rng::keyed(self.seed, &[&self.store, what], n);
    let max = if rng.chance(self.spike_per_mille) { self.spike_ms } else { self.latency_ms };
    // In µs, so two calls rarely land at one instant.
    let took = rng.below(max * 1000 + 1);
    let split = rng.below(took + 1);
    let fail = can_fail && rng.chance(self.error_per_mille);
    let after = rng.chance(500);
    Fate {
      before: Duration::from_micros(split),
      after: Duration::from_micros(took - split),
      fail_before: fail && !after,
      fail_after: fail && after,
    }
  }
}

fn refused(what: &str) -> StoreError {
  StoreError::Backend { code: "ERR_S3_UNAVAILABLE", reason: format!("model transport: {what} failed") }
}

/// Runs `apply` where the call lands, between the two halves of its time.
async fn call<T>(faults: &Faults, what: String, can_fail: bool, apply: impl FnOnce() -> Result<T>) -> Result<T> {
  let fate = faults.fate(&what, can_fail);
  tokio::time::sleep(fate.before).await;
  if fate.fail_before {
    return Err(refused(&what));
  }
  let out = apply();
  tokio::time::sleep(fate.after).await;
  match fate.fail_after {
    true => Err(refused(&what)),
    false => out,
  }
}

/// `<session>/…` or `~/<session>/…` → the session, for naming a call.
fn session_of(key: &str) -> &str {
  key.trim_start_matches("~/").split('/').next().unwrap_or_default()
}

/// The bucket as one store sees it.
#[derive(Debug)]
pub struct BucketView {
  pub inner: Arc<Memory>,
  pub faults: Arc<Faults>,
}

#[async_trait]
impl ObjectTier for BucketView {
  async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
    let what = format!("get {}", session_of(key));
    call(&self.faults, what, true, || Ok(self.inner.bytes(key))).await
  }
  async fn head(&self, key: &str, len: usize) -> Result<Option<Vec<u8>>> {
    let what = format!("head {}", session_of(key));
    call(&self.faults, what, true, || Ok(self.inner.bytes(key).map(|v| v[..len.min(v.len())].to_vec()))).await
  }
  async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
    let what = format!("put {}", session_of(key));
    let inner = self.inner.clone();
    call(&self.faults, what, true, move || {
      let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
      guard(&inner.objects).insert(key.to_owned(), (bytes, now as u64));
      Ok(())
    })
    .await
  }
  async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let what = format!("list {}", session_of(prefix));
    call(&self.faults, what, true, || {
      let objects = guard(&self.inner.objects);
      let found = objects.iter().filter(|(k, _)| k.starts_with(prefix));
      Ok(found.map(|(k, (v, at))| ObjectMeta { key: k.clone(), size: v.len() as u64, modified_ms: *at }).collect())
    })
    .await
  }
  async fn delete(&self, keys: &[String]) -> Result<()> {
    let what = format!("delete {}", keys.first().map_or("", |k| session_of(k)));
    call(&self.faults, what, true, || {
      let mut objects = guard(&self.inner.objects);
      keys.iter().for_each(|k| drop(objects.remove(k)));
      Ok(())
    })
    .await
  }
  fn kind(&self) -> &'static str {
    "memory"
  }
}

/// The primary: session → sealed archive, each conditional write one step.
#[derive(Debug, Default)]
pub struct Primary {
  pub sessions: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Primary {
  pub fn get(&self, key: &str) -> Option<Vec<u8>> {
    guard(&self.sessions).get(key).cloned()
  }

  /// Writes `bytes` (or deletes, `None`) when the value is what `expected` says: `None` absent, `Some(head)`
  /// a value starting with `head`.
  fn write_if(&self, key: &SessionKey, expected: Option<&[u8]>, bytes: Option<Vec<u8>>) -> bool {
    let mut sessions = guard(&self.sessions);
    let holds = match (expected, sessions.get(key.as_str())) {
      (None, None) => true,
      (Some(head), Some(value)) => value.starts_with(head),
      _ => false,
    };
    if holds {
      match bytes {
        Some(bytes) => drop(sessions.insert(key.to_string(), bytes)),
        None => drop(sessions.remove(key.as_str())),
      }
    }
    holds
  }
}

/// The primary as one store sees it: slow, never failing.
#[derive(Debug)]
pub struct PrimaryView {
  pub inner: Arc<Primary>,
  pub faults: Arc<Faults>,
}

impl PrimaryView {
  async fn call<T>(&self, what: &str, key: &SessionKey, apply: impl FnOnce(&Primary) -> T) -> Result<T> {
    call(&self.faults, format!("primary {what} {key}"), false, || Ok(apply(&self.inner))).await
  }
}

#[async_trait]
impl Tier for PrimaryView {
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    self.call("get", key, |p| p.get(key.as_str())).await
  }
  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    self.call("get", key, |p| p.get(key.as_str()).map(|v| v[..len.min(v.len())].to_vec())).await
  }
  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    self.call("put", key, |p| drop(guard(&p.sessions).insert(key.to_string(), bytes))).await
  }
  async fn exists(&self, key: &SessionKey) -> Result<bool> {
    self.call("get", key, |p| p.get(key.as_str()).is_some()).await
  }
  async fn delete(&self, key: &SessionKey) -> Result<()> {
    self.call("delete", key, |p| drop(guard(&p.sessions).remove(key.as_str()))).await
  }
  async fn list(&self) -> Result<Vec<SessionKey>> {
    let all = SessionKey::parse("all").expect("a key");
    let list = |p: &Primary| guard(&p.sessions).keys().filter_map(|k| SessionKey::parse(k).ok()).collect();
    self.call("list", &all, list).await
  }
  fn kind(&self) -> &'static str {
    "memory"
  }
  async fn replace_if(&self, key: &SessionKey, expected: &[u8], bytes: Vec<u8>) -> Result<bool> {
    let expected = (!expected.is_empty()).then_some(expected);
    self.call("put", key, |p| p.write_if(key, expected, Some(bytes))).await
  }
  async fn put_if(&self, key: &SessionKey, expected: Option<Vec<u8>>, bytes: Vec<u8>) -> Result<bool> {
    self.call("put", key, |p| p.write_if(key, expected.as_deref(), Some(bytes))).await
  }
  async fn delete_if(&self, key: &SessionKey, expected: Vec<u8>) -> Result<bool> {
    self.call("delete", key, |p| p.write_if(key, Some(&expected), None)).await
  }
}
