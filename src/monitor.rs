//! Low-disk alerts: free space under RemoteAuth's data path is checked on a timer, and when it drops below a
//! threshold a JSON payload is POSTed to a webhook, at most once per `repeat_every` while it stays low. Its
//! sibling, on the same timer and webhook, watches a Redis primary's memory: 90 % of `maxmemory` used, or keys
//! evicted since the last check.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::store::{disk_usage, Store};
use crate::tier::MemoryInfo;

/// No `Debug`: webhook URLs often carry a token.
#[derive(Clone)]
pub struct DiskAlert {
  pub webhook: url::Url,
  /// Alert when free space is below this many bytes.
  pub min_free_bytes: u64,
  pub check_every: Duration,
  /// Quiet time after an alert was delivered, while space stays low.
  pub repeat_every: Duration,
  pub timeout: Duration,
}

/// The webhook's body.
#[derive(Debug, Clone, Serialize)]
pub struct LowDisk {
  pub event: &'static str,
  pub path: PathBuf,
  pub free_bytes: u64,
  pub total_bytes: u64,
  pub min_free_bytes: u64,
  /// ms since the Unix epoch.
  pub at: u64,
}

/// The Redis-memory webhook's body.
#[derive(Debug, Clone, Serialize)]
pub struct RedisMemory {
  pub event: &'static str,
  pub used_memory: u64,
  pub maxmemory: u64,
  pub policy: String,
  pub evicted_keys: u64,
  /// Keys evicted since the previous check.
  pub new_evictions: u64,
  pub at: u64,
}

/// Redis is short of memory: at least 90 % of a limit used, or keys evicted since the last reading.
fn memory_low(memory: &MemoryInfo, evicted_before: Option<u64>) -> bool {
  let full = memory.maxmemory > 0 && u128::from(memory.used_memory) * 10 >= u128::from(memory.maxmemory) * 9;
  full || evicted_before.is_some_and(|before| memory.evicted_keys > before)
}

fn now_ms() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// When to alert: below the threshold, and not within `repeat_every` of the last delivered alert. Space that
/// recovers clears the quiet time, so the next drop alerts at once.
#[derive(Debug, Default)]
struct Limiter {
  last_sent: Option<Instant>,
}

impl Limiter {
  fn should_send(&mut self, low: bool, now: Instant, repeat_every: Duration) -> bool {
    if !low {
      self.last_sent = None;
      return false;
    }
    self.last_sent.is_none_or(|sent| now.duration_since(sent) >= repeat_every)
  }
}

impl DiskAlert {
  /// Checks `path` every `check_every` until `stop` says so (or its sender is gone). Delivery failures go to
  /// `report` and are retried at the next check.
  pub async fn watch(
    self,
    path: PathBuf,
    store: Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
    report: impl Fn(&StoreError) + Send + 'static,
  ) {
    let (mut limiter, mut memory_limiter, mut evicted_before) = (Limiter::default(), Limiter::default(), None);
    let mut tick = tokio::time::interval(self.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
      tokio::select! {
        _ = tick.tick() => {}
        changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
      }
      match store.memory().await {
        Ok(Some(memory)) => {
          let low = memory_low(&memory, evicted_before);
          let new_evictions = memory.evicted_keys.saturating_sub(evicted_before.unwrap_or(memory.evicted_keys));
          evicted_before = Some(memory.evicted_keys);
          if memory_limiter.should_send(low, Instant::now(), self.repeat_every) {
            let MemoryInfo { used_memory, maxmemory, policy, evicted_keys } = memory;
            let at = now_ms();
            let payload =
              RedisMemory { event: "redis_memory", used_memory, maxmemory, policy, evicted_keys, new_evictions, at };
            match self.post(&payload).await {
              Ok(()) => memory_limiter.last_sent = Some(Instant::now()),
              Err(err) => report(&err),
            }
          }
        }
        Ok(None) => {}
        Err(err) => report(&err),
      }
      let checked = {
        let path = path.clone();
        crate::blocking::run(move || disk_usage(&path)).await
      };
      let disk = match checked {
        Ok(disk) => disk,
        Err(err) => {
          report(&err);
          continue;
        }
      };
      if !limiter.should_send(disk.free_bytes < self.min_free_bytes, Instant::now(), self.repeat_every) {
        continue;
      }
      let at = now_ms();
      let payload = LowDisk {
        event: "low_disk",
        path: disk.path,
        free_bytes: disk.free_bytes,
        total_bytes: disk.total_bytes,
        min_free_bytes: self.min_free_bytes,
        at,
      };
      match self.post(&payload).await {
        Ok(()) => limiter.last_sent = Some(Instant::now()),
        Err(err) => report(&err),
      }
    }
  }

  async fn post(&self, payload: &impl Serialize) -> Result<()> {
    let body = serde_json::to_vec(payload).map_err(|e| StoreError::Internal(e.to_string()))?;
    let (url, timeout) = (self.webhook.clone(), self.timeout);
    crate::blocking::run(move || {
      // No redirects: a 30x would turn the POST into a GET that then counts as delivered.
      let config = ureq::Agent::config_builder().timeout_global(Some(timeout)).max_redirects(0);
      let agent = config.build().new_agent();
      let sent = agent.post(url.as_str()).header("content-type", "application/json").send(&body[..]);
      // The URL is left out of the message: it may hold a token.
      sent.map(drop).map_err(|e| StoreError::Backend { code: "ERR_WEBHOOK", reason: format!("alert webhook: {e}") })
    })
    .await
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn redis_memory_is_low_when_nearly_full_or_evicting() {
    let at =
      |used, max, evicted| MemoryInfo { used_memory: used, maxmemory: max, policy: "x".into(), evicted_keys: evicted };
    assert!(!memory_low(&at(89, 100, 0), None));
    assert!(memory_low(&at(90, 100, 0), None));
    assert!(!memory_low(&at(u64::MAX, 0, 0), None), "no limit");
    assert!(!memory_low(&at(1, 100, 5), None), "the first reading is the baseline");
    assert!(!memory_low(&at(1, 100, 5), Some(5)));
    assert!(memory_low(&at(1, 100, 6), Some(5)));
  }

  #[test]
  fn alerts_once_per_quiet_time_and_again_after_recovery() {
    let (mut limiter, t0, quiet) = (Limiter::default(), Instant::now(), Duration::from_secs(60));
    assert!(!limiter.should_send(false, t0, quiet));
    assert!(limiter.should_send(true, t0, quiet));
    limiter.last_sent = Some(t0);
    assert!(!limiter.should_send(true, t0 + Duration::from_secs(59), quiet));
    assert!(limiter.should_send(true, t0 + Duration::from_secs(60), quiet));
    assert!(!limiter.should_send(false, t0 + Duration::from_secs(61), quiet), "recovered");
    assert!(limiter.should_send(true, t0 + Duration::from_secs(62), quiet), "a new drop alerts at once");
  }
}
