//! Leases: one owner per session at a time, and writes that land only while their writer still owns it. A
//! tier that offers them checks the owner and writes in one atomic step (a fenced write), so a replica that lost
//! its lease (paused, partitioned, expired) can never overwrite the new owner's session.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::session::SessionKey;

#[async_trait]
pub trait Leases: Send + Sync + std::fmt::Debug {
  /// Takes the lease for `ttl` if it is free or already `token`'s; `false` if another token holds it.
  async fn acquire(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<bool>;
  /// Extends the lease if `token` still holds it; `false` if not.
  async fn renew(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<bool>;
  /// Gives the lease up if `token` holds it.
  async fn release(&self, key: &SessionKey, token: &str) -> Result<()>;
  /// Replaces the session's bytes only while `token` holds its lease, checked and written atomically; `false`
  /// (nothing written) if not.
  async fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str) -> Result<bool>;
}
