//! The timing rule. One ttl serves as the heartbeat ttl and the lease ttl; every `renew_every` a worker beats,
//! renews each session's lease and checks its assignment. A session's lease can be taken by another worker only
//! once it expired, at the earliest `ttl` after the last renewal that reached Redis; so a worker stops a session
//! when `ttl - stop_timeout` has passed since the last renewal it sent that succeeded, and gives `onStop`
//! `stop_timeout` to finish. Requiring `2 × renew_every + stop_timeout ≤ ttl` lets one renewal fail (a blip)
//! without stopping anything, and guarantees the stop begins before anyone else could start the session.
//!
//! Failover of a dead worker: its heartbeat and leases expire within `ttl`, and the others see it at their next
//! check: `ttl + renew_every`, plus the time `onStart` takes. Usually about `ttl`: a worker that sees a heartbeat
//! run out before its next tick checks again then (worker.rs, `recheck`).

use std::time::Duration;

use crate::error::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
  pub ttl: Duration,
  pub renew_every: Duration,
  pub stop_timeout: Duration,
}

fn invalid(name: &'static str, reason: String) -> StoreError {
  StoreError::InvalidOption { name, reason }
}

impl Timing {
  pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

  /// Defaults: ttl 30 s, renewals every ttl / 5, stop timeout ttl / 3. Settings that break the rule are refused.
  pub fn new(ttl: Option<Duration>, renew_every: Option<Duration>, stop_timeout: Option<Duration>) -> Result<Self> {
    let ttl = ttl.unwrap_or(Self::DEFAULT_TTL);
    if ttl < Duration::from_millis(500) || ttl > Duration::from_secs(86_400) {
      return Err(invalid("fleet.ttlMs", "must be 500 ms to 24 h".into()));
    }
    let renew_every = renew_every.unwrap_or(ttl / 5);
    let stop_timeout = stop_timeout.unwrap_or(ttl / 3);
    if renew_every < Duration::from_millis(50) {
      return Err(invalid("fleet.renewEveryMs", "must be at least 50 ms".into()));
    }
    if renew_every * 2 + stop_timeout > ttl {
      let reason = format!(
        "2 × renewEveryMs ({}) + stopTimeoutMs ({}) must not exceed ttlMs ({}): a worker cut off from Redis must \
         stop its sessions before their leases expire and another worker may take them",
        renew_every.as_millis(),
        stop_timeout.as_millis(),
        ttl.as_millis()
      );
      return Err(invalid("fleet.ttlMs", reason));
    }
    Ok(Self { ttl, renew_every, stop_timeout })
  }

  /// How long after a renewal was sent (and succeeded) the session must start stopping.
  pub fn stop_after(&self) -> Duration {
    self.ttl - self.stop_timeout
  }

  /// The documented failover bound, without `onStart`'s own time.
  pub fn failover_bound(&self) -> Duration {
    self.ttl + self.renew_every
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const MS: fn(u64) -> Option<Duration> = |ms| Some(Duration::from_millis(ms));

  #[test]
  fn defaults_keep_the_rule() {
    let t = Timing::new(None, None, None).unwrap();
    assert_eq!(
      (t.ttl, t.renew_every, t.stop_timeout),
      (Duration::from_secs(30), Duration::from_secs(6), Duration::from_secs(10))
    );
    assert!(t.renew_every * 2 + t.stop_timeout <= t.ttl);
    assert_eq!(t.failover_bound(), Duration::from_secs(36));
  }

  #[test]
  fn settings_that_break_the_rule_are_refused() {
    for (ttl, renew, stop) in [(3000, 1500, 1), (3000, 1000, 1001), (3000, 40, 100), (100, 20, 10)] {
      let err = Timing::new(MS(ttl), MS(renew), MS(stop)).unwrap_err();
      assert_eq!(err.code(), "ERR_INVALID_OPTION", "{ttl} {renew} {stop}");
    }
    let ok = Timing::new(MS(3000), MS(500), MS(2000)).unwrap();
    assert_eq!(ok.stop_after(), Duration::from_millis(1000));
  }

  #[test]
  fn the_stop_always_begins_before_the_lease_can_expire() {
    // Over a grid of settings the constructor accepts: a worker whose renewals fail from time r on (the last one
    // that succeeded was sent at most renew_every earlier) begins stopping no later than ttl - stop_timeout after
    // it, and onStop's budget ends before the lease (renewed at that send at the earliest) can expire.
    for ttl in (500..=6000).step_by(250) {
      for renew in (50..=ttl).step_by(50) {
        for stop in (0..=ttl).step_by(125) {
          let Ok(t) = Timing::new(MS(ttl), MS(renew), MS(stop)) else { continue };
          assert!(t.stop_after() + t.stop_timeout <= t.ttl);
          assert!(t.stop_after() >= t.renew_every * 2, "a single failed renewal must not stop anything");
        }
      }
    }
  }
}
