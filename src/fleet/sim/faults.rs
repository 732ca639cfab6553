//! One worker's faulty view of the simulated primary: what it implements (`Tier`, `Leases`, `Membership`) is what
//! a `Store` over Redis sees, with seeded latency and spikes, cuts of two kinds (packets dropped: calls hang until
//! the cut heals; connections refused: calls fail at once), and a crash (the process is gone: its calls never
//! return and nothing it sent later lands).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::rng::Rng;
use super::tier::SimTier;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{Beat, LeaseState, Leases, Member, Membership, Tier};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
  /// Packets dropped, connections open: a call hangs until the cut heals, then lands (TCP retransmits it, even
  /// when its caller gave up) or fails (the connection was reset), per call.
  Silent,
  /// Connections refused or reset: calls fail at once.
  Refused,
}

#[derive(Debug, Clone, Copy)]
pub struct Window {
  pub from: Instant,
  pub to: Instant,
  pub cut: Cut,
}

/// A hold (a proxy that holds a connection's traffic): armed with a call's name, every call from the first one so
/// named on is sent but held, until `release` lets them land in the order they were sent. For targeted tests.
#[derive(Debug, Default)]
pub struct Hold {
  armed: Option<String>,
  holding: bool,
  sent: u64,
  landed: u64,
}

#[derive(Debug)]
pub struct Faults {
  pub seed: u64,
  pub worker: String,
  /// Each call takes up to this long (half before it lands, half after).
  pub latency: Duration,
  /// Now and then (per mille of calls) one takes up to `spike` instead.
  pub spike_per_mille: u64,
  pub spike: Duration,
  pub windows: Vec<Window>,
  crashed: AtomicBool,
  /// How many calls of each kind this worker made: the key of each call's draw.
  calls: Mutex<HashMap<String, u64>>,
  hold: tokio::sync::watch::Sender<Hold>,
}

impl Faults {
  pub fn new(seed: u64, worker: &str, latency: Duration, spike_per_mille: u64, spike: Duration) -> Self {
    let (crashed, calls) = (AtomicBool::new(false), Mutex::default());
    let hold = tokio::sync::watch::channel(Hold::default()).0;
    let worker = worker.to_owned();
    Self { seed, worker, latency, spike_per_mille, spike, windows: Vec::new(), crashed, calls, hold }
  }

  /// Holds every call from the first whose name starts with `call` on.
  pub fn hold_from(&self, call: &str) {
    self.hold.send_modify(|h| h.armed = Some(call.to_owned()));
  }

  /// Lets the held calls land, in the order they were sent (and the calls after them, behind them).
  pub fn release(&self) {
    self.hold.send_modify(|h| h.holding = false);
  }

  /// The call's place in the queue when it is to be held (or queued behind held ones).
  fn held(&self, what: &str) -> Option<u64> {
    let mut ticket = None;
    self.hold.send_if_modified(|h| {
      let trigger = h.armed.as_deref().is_some_and(|call| what.starts_with(call));
      if !(h.holding || trigger || h.landed < h.sent) {
        return false;
      }
      h.holding |= trigger;
      h.armed = h.armed.take().filter(|_| !trigger);
      ticket = Some(h.sent);
      h.sent += 1;
      true
    });
    ticket
  }

  pub fn crash(&self) {
    self.crashed.store(true, Ordering::SeqCst);
  }

  pub fn crashed(&self) -> bool {
    self.crashed.load(Ordering::SeqCst)
  }

  fn draw(&self, what: &str) -> Rng {
    let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
    let n = calls.entry(what.to_owned()).or_default();
    *n += 1;
    Rng::keyed(self.seed, &[&self.worker, what], *n)
  }

  fn cut_at(&self, now: Instant) -> Option<Window> {
    self.windows.iter().find(|w| w.from <= now && now < w.to).copied()
  }
}

fn unavailable() -> StoreError {
  StoreError::Backend { code: "ERR_REDIS_UNAVAILABLE", reason: "simulated cut".into() }
}

/// A dead process's call: it never returns.
async fn never<T>() -> T {
  std::future::pending().await
}

#[derive(Debug, Clone)]
pub struct FaultyTier {
  pub sim: Arc<SimTier>,
  pub faults: Arc<Faults>,
}

impl FaultyTier {
  /// Runs `apply` on the shared tier as this worker's faults allow; `what` names the call for its draws.
  async fn call<T: Send + std::fmt::Debug + 'static>(
    &self,
    what: String,
    apply: impl FnOnce(&SimTier) -> T + Send + 'static,
  ) -> Result<T> {
    // `FLEET_SIM_TRACE=1`: every call as it lands, with what it found (to follow a failing seed's leases).
    let (worker, label) = (self.faults.worker.clone(), what.clone());
    let apply = move |sim: &SimTier| {
      let out = apply(sim);
      if std::env::var_os("FLEET_SIM_TRACE").is_some() {
        let at = sim.born.map_or(0.0, |b| Instant::now().duration_since(b).as_secs_f64());
        eprintln!("TRACE {at:9.3}s {worker} {label} -> {out:?}");
      }
      out
    };
    let faults = &self.faults;
    if faults.crashed() {
      return never().await;
    }
    if let Some(ticket) = faults.held(&what) {
      // Lands once released and its turn came, whether or not its caller still waits.
      let (tx, rx) = tokio::sync::oneshot::channel();
      let (sim, faults) = (self.sim.clone(), faults.clone());
      tokio::spawn(async move {
        let mut gate = faults.hold.subscribe();
        let _ = gate.wait_for(|h| !h.holding && h.landed == ticket).await;
        if !faults.crashed() {
          let _ = tx.send(apply(&sim));
        }
        faults.hold.send_modify(|h| h.landed += 1);
      });
      return match rx.await {
        Ok(out) => Ok(out),
        Err(_) => never().await,
      };
    }
    let mut rng = faults.draw(&what);
    let max = if rng.chance(faults.spike_per_mille) { faults.spike } else { faults.latency };
    let took = Duration::from_micros(rng.below(max.as_micros() as u64 + 1));
    match faults.cut_at(Instant::now()) {
      Some(Window { cut: Cut::Refused, .. }) => {
        tokio::time::sleep(took / 4).await;
        Err(unavailable())
      }
      Some(Window { cut: Cut::Silent, to, .. }) => {
        let heals = to + took;
        if rng.chance(500) {
          tokio::time::sleep_until(heals).await;
          return Err(unavailable());
        }
        // Lands when the cut heals, whether or not its caller still waits (it may have timed out).
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (sim, faults) = (self.sim.clone(), faults.clone());
        tokio::spawn(async move {
          tokio::time::sleep_until(heals).await;
          if !faults.crashed() {
            let _ = tx.send(apply(&sim));
          }
        });
        match rx.await {
          Ok(out) => Ok(out),
          Err(_) => never().await,
        }
      }
      None => {
        tokio::time::sleep(took / 2).await;
        if faults.crashed() {
          return never().await;
        }
        let out = apply(&self.sim);
        tokio::time::sleep(took - took / 2).await;
        if faults.crashed() {
          return never().await;
        }
        Ok(out)
      }
    }
  }
}

#[async_trait]
impl Tier for FaultyTier {
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    let key = key.clone();
    self.call(format!("get {key}"), move |sim| sim.get(&key)).await
  }
  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    let bytes = self.get(key).await?;
    Ok(bytes.map(|v| v[..len.min(v.len())].to_vec()))
  }
  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let key = key.clone();
    self.call(format!("put {key}"), move |sim| sim.put(&key, bytes)).await
  }
  async fn exists(&self, key: &SessionKey) -> Result<bool> {
    let key = key.clone();
    self.call(format!("exists {key}"), move |sim| sim.get(&key).is_some()).await
  }
  async fn delete(&self, key: &SessionKey) -> Result<()> {
    let key = key.clone();
    self.call(format!("delete {key}"), move |sim| sim.delete(&key)).await
  }
  async fn list(&self) -> Result<Vec<SessionKey>> {
    self.call("list".into(), |sim| sim.list()).await
  }
  fn kind(&self) -> &'static str {
    "sim"
  }
  fn leases(&self) -> Option<&dyn Leases> {
    Some(self)
  }
  fn membership(&self) -> Option<&dyn Membership> {
    Some(self)
  }
}

#[async_trait]
impl Leases for FaultyTier {
  async fn acquire(&self, key: &SessionKey, token: &str, hold: &crate::tier::Hold) -> Result<Option<u64>> {
    let (key, token, hold) = (key.clone(), token.to_owned(), hold.clone());
    self.call(format!("acquire {key}"), move |sim| sim.acquire(&key, &token, &hold)).await
  }
  async fn renew(&self, key: &SessionKey, token: &str, hold: &crate::tier::Hold) -> Result<LeaseState> {
    let (key, token, hold) = (key.clone(), token.to_owned(), hold.clone());
    self.call(format!("renew {key}"), move |sim| sim.renew(&key, &token, &hold)).await
  }
  async fn release(&self, key: &SessionKey, token: &str) -> Result<()> {
    let (key, token) = (key.clone(), token.to_owned());
    self.call(format!("release {key}"), move |sim| sim.release(&key, &token)).await
  }
  async fn put_fenced(
    &self,
    key: &SessionKey,
    bytes: Vec<u8>,
    token: &str,
    hold: &crate::tier::Hold,
  ) -> Result<LeaseState> {
    let (key, token, hold) = (key.clone(), token.to_owned(), hold.clone());
    self.call(format!("put_fenced {key}"), move |sim| sim.put_fenced(&key, bytes, &token, &hold)).await
  }
  async fn delete_fenced(&self, key: &SessionKey, token: &str, hold: &crate::tier::Hold) -> Result<LeaseState> {
    let (key, token, hold) = (key.clone(), token.to_owned(), hold.clone());
    self.call(format!("delete_fenced {key}"), move |sim| sim.delete_fenced(&key, &token, &hold)).await
  }
  async fn detach(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<()> {
    let (key, token) = (key.clone(), token.to_owned());
    self.call(format!("detach {key}"), move |sim| sim.detach(&key, &token, ttl)).await
  }
}

#[async_trait]
impl Membership for FaultyTier {
  async fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat> {
    let (group, id, claim, info) = (group.to_owned(), id.to_owned(), claim.to_owned(), info.to_vec());
    self.call("beat".into(), move |sim| sim.beat(&group, &id, &claim, &info, ttl)).await?
  }
  async fn members(&self, group: &str) -> Result<Vec<Member>> {
    let group = group.to_owned();
    self.call("members".into(), move |sim| sim.members(&group)).await
  }
  async fn leave(&self, group: &str, id: &str, claim: &str) -> Result<()> {
    let (group, id) = (group.to_owned(), id.to_owned());
    let claim = claim.to_owned();
    self.call("leave".into(), move |sim| sim.leave(&group, &id, &claim)).await
  }
  async fn map_all(&self, group: &str, map: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let (group, map) = (group.to_owned(), map.to_owned());
    self.call(format!("map_all {map}"), move |sim| sim.map_all(&group, &map)).await
  }
  async fn map_set(&self, group: &str, map: &str, field: &str, value: &[u8]) -> Result<()> {
    let (group, map, field, value) = (group.to_owned(), map.to_owned(), field.to_owned(), value.to_vec());
    self.call(format!("map_set {map} {field}"), move |sim| sim.map_set(&group, &map, &field, &value)).await
  }
  async fn map_remove(&self, group: &str, map: &str, field: &str, only_if: Option<&[u8]>) -> Result<()> {
    let (group, map, field) = (group.to_owned(), map.to_owned(), field.to_owned());
    let only_if = only_if.map(<[u8]>::to_vec);
    let what = format!("map_remove {map} {field}");
    self.call(what, move |sim| sim.map_remove(&group, &map, &field, only_if.as_deref())).await
  }
  async fn map_set_ordered(&self, group: &str, map: &str, field: &str, value: &[u8], order: u64) -> Result<bool> {
    let (group, map, field, value) = (group.to_owned(), map.to_owned(), field.to_owned(), value.to_vec());
    let what = format!("map_set {map} {field}");
    self.call(what, move |sim| sim.map_write_ordered(&group, &map, &field, Some(&value), order)).await
  }
  async fn map_remove_ordered(&self, group: &str, map: &str, field: &str, order: u64) -> Result<bool> {
    let (group, map, field) = (group.to_owned(), map.to_owned(), field.to_owned());
    let what = format!("map_remove {map} {field}");
    self.call(what, move |sim| sim.map_write_ordered(&group, &map, &field, None, order)).await
  }
}
