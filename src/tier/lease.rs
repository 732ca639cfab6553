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
  /// Takes the lease for `ttl` if it is free or already `token`'s, and returns its generation: the same while
  /// `token` keeps holding it, else a new one greater than any earlier (a stored counter, raised to the tier's
  /// clock in µs, so it keeps growing even where the counter was lost). `None` if another token holds it, or may
  /// (Redis that lost its leases refuses fresh takes for one ttl: tier/redis/alive.rs).
  async fn acquire(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<Option<u64>>;
  /// Extends the lease to `ttl` if `token` still holds it, or takes it again if it merely expired.
  async fn renew(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<LeaseState>;
  /// Gives the lease up if `token` holds it; the token cannot take it back by `renew`.
  async fn release(&self, key: &SessionKey, token: &str) -> Result<()>;
  /// Replaces the session's bytes only while `token` holds its lease (taking an expired one again for `ttl`),
  /// checked and written atomically; nothing written when `Lost`.
  async fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, ttl: Duration) -> Result<LeaseState>;
  /// Deletes the session's bytes under the same check as `put_fenced`; nothing deleted when `Lost`.
  async fn delete_fenced(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<LeaseState>;
}
