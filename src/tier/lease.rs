//! Leases: one owner per session at a time, and writes that land only while their writer still owns it. A
//! tier that offers them checks the owner and writes in one atomic step (a fenced write), so a replica that lost
//! its lease (paused, partitioned, expired) can never overwrite the new owner's session.
//!
//! A lease that expired stays its owner's until someone else takes it: the tier remembers the last owner, so
//! an owner cut off from the tier for longer than the ttl (a Redis outage) takes it back on its next call,
//! while an owner that another token replaced in the meantime (even one that has released it since) has lost it.
//!
//! Each take of a lease by a token that did not hold it has a generation, greater than every earlier one of the
//! session's lease: what a holder writes elsewhere (where the lease cannot be checked in the same step, e.g. a
//! fleet's owner entry in another Cluster slot) can carry it, so a late write of an earlier holder never
//! replaces a later one's.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::session::SessionKey;

/// A fleet member's epoch (`Membership::beat`): one life of the member's heartbeat. A lease held under it lasts
/// while that heartbeat does, so the member's beat renews every lease it holds at once, and none is renewed one by
/// one. Once the heartbeat ran out, the epoch never lives again: the member's next beat starts another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
  pub group: String,
  pub id: String,
  pub n: u64,
}

/// How a lease is held: for `ttl` from each take or renewal, or, with `epoch`, while that epoch lives (`ttl`
/// then is what a hold the epoch can no longer carry lasts: one whose epoch died under it, or one detached).
/// Tiers whose membership gives no epoch are never given one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
  pub ttl: Duration,
  pub epoch: Option<Epoch>,
}

impl Hold {
  pub fn ttl(ttl: Duration) -> Self {
    Self { ttl, epoch: None }
  }
}

/// What a renewal or a fenced write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
  /// The token held the lease.
  Held,
  /// The lease had expired and no other token took it since: the token holds it again (for the ttl given).
  Retaken,
  /// Another token took it since: nothing was done.
  Lost,
}

#[async_trait]
pub trait Leases: Send + Sync + std::fmt::Debug {
  /// Takes the lease as `hold` says if it is free or already `token`'s, and returns its generation: the same while
  /// `token` keeps holding it, else a new one greater than any earlier (a stored counter, raised to the tier's
  /// clock in µs, so it keeps growing even where the counter was lost). `None` if another token holds it, or may
  /// (Redis that lost its leases refuses fresh takes for one ttl: tier/redis/alive.rs), or the hold's epoch is
  /// no longer alive. A lease held under an epoch that died is free.
  async fn acquire(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<Option<u64>>;
  /// Holds the lease on as `hold` says (extends it to `ttl`, or moves it onto the hold's epoch) if `token` still
  /// holds it, or takes it again if it merely expired (or its epoch died) and nobody else took it since.
  async fn renew(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<LeaseState>;
  /// Gives the lease up if `token` holds it; the token cannot take it back by `renew`.
  async fn release(&self, key: &SessionKey, token: &str) -> Result<()>;
  /// Replaces the session's bytes only while `token` holds its lease (held on as `renew` does), checked and
  /// written atomically; nothing written when `Lost`.
  async fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, hold: &Hold) -> Result<LeaseState>;
  /// Deletes the session's bytes under the same check as `put_fenced`; nothing deleted when `Lost`.
  async fn delete_fenced(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<LeaseState>;
  /// Unhooks `token`'s lease from the epoch it is held under (or may be brought under by a call in flight): from
  /// now on it is held by nobody, the token neither, for `ttl`, and then expires, though the epoch lives on (a
  /// lease its holder stopped backing: a failed stop, a release that may not have landed). Nothing to do where no
  /// lease is held under an epoch.
  async fn detach(&self, _key: &SessionKey, _token: &str, _ttl: Duration) -> Result<()> {
    Ok(())
  }
}
