//! Where archive bytes live. A tier only gets, puts, lists and deletes bytes under session keys; it knows no
//! policy (what to keep, when to back up) and no archive format.

mod lease;
mod local;
mod local_lease;
mod membership;
#[cfg(test)]
pub(crate) mod memory;
mod redis;
mod s3;

pub use self::redis::{parse_sentinel_addr, RedisConfig, RedisTarget, RedisTier, RedisTls, SentinelTarget};
pub use lease::{Epoch, Hold, LeaseState, Leases};
pub use local::{leftovers as local_leftovers, LocalDirTier};
pub use membership::{check_group, order_allows, Beat, Member, Membership, ProcessMembership};
pub use s3::{S3Config, S3Tier};

use async_trait::async_trait;

use crate::error::Result;
use crate::session::SessionKey;

/// A go/no-go for a write (`Tier::put_when`).
pub type Ready = futures::future::BoxFuture<'static, Result<()>>;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
  pub key: String,
  pub size: u64,
  /// Last written, ms since the Unix epoch (0 if the tier does not say).
  pub modified_ms: u64,
}

/// A memory-bound tier's figures (Redis' `INFO memory` / `INFO stats`, summed over a cluster's primaries).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryInfo {
  pub used_memory: u64,
  /// 0: no limit.
  pub maxmemory: u64,
  /// `maxmemory-policy`; over a cluster, the first primary's that is not `noeviction`, if any.
  pub policy: String,
  pub evicted_keys: u64,
}

#[async_trait]
pub trait Tier: Send + Sync + std::fmt::Debug {
  /// `Ok(None)` only when the tier answered that the key is absent; a tier that cannot answer returns `Err`.
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>>;
  /// The first `len` bytes (fewer if the value is shorter), without fetching the rest: for listings.
  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>>;
  /// Replaces the value atomically: a reader sees the old bytes or the new, never a mix.
  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()>;
  /// As `put`, once `ready` resolves `Ok`: the value is replaced only then, and never when it fails (its error is
  /// returned, nothing replaced). A tier may write the bytes where they replace nothing while it waits, so that
  /// only its last step waits for `ready`.
  async fn put_when(&self, key: &SessionKey, bytes: Vec<u8>, ready: Ready) -> Result<()> {
    ready.await?;
    self.put(key, bytes).await
  }
  async fn exists(&self, key: &SessionKey) -> Result<bool>;
  /// Idempotent: deleting an absent key succeeds.
  async fn delete(&self, key: &SessionKey) -> Result<()>;
  async fn list(&self) -> Result<Vec<SessionKey>>;
  /// What it is, for stats and messages: `dir`, `redis`.
  fn kind(&self) -> &'static str;
  /// Replaces the value only if it still starts with `expected` (the header read before: it holds the checksum
  /// of the whole archive), keeping its expiry; `false` (nothing written) if it changed or went away. An empty
  /// `expected` means "absent": the value is created only if there is none. Atomic where the tier can do it
  /// (Redis); elsewhere checked just before the write.
  async fn replace_if(&self, key: &SessionKey, expected: &[u8], bytes: Vec<u8>) -> Result<bool> {
    match self.head(key, expected.len().max(1)).await? {
      Some(head) if !expected.is_empty() && head == expected => self.put(key, bytes).await.map(|()| true),
      None if expected.is_empty() => self.put(key, bytes).await.map(|()| true),
      _ => Ok(false),
    }
  }
  /// Writes only if the stored value still starts with `expected` (`None`: only if there is none); `false`
  /// (nothing written) otherwise. For writes decided on what was read before (an import over an older copy).
  /// Atomic on the embedded tier (under the session's lock file) and Redis (a script); elsewhere checked just
  /// before the write.
  async fn put_if(&self, key: &SessionKey, expected: Option<Vec<u8>>, bytes: Vec<u8>) -> Result<bool> {
    let head = match &expected {
      Some(expected) => self.head(key, expected.len()).await?,
      None => self.head(key, 0).await?,
    };
    match (expected, head) {
      (Some(expected), Some(head)) if head == expected => self.put(key, bytes).await.map(|()| true),
      (None, None) => self.put(key, bytes).await.map(|()| true),
      _ => Ok(false),
    }
  }
  /// Deletes only if the stored value still starts with `expected`; `false` (nothing deleted) otherwise. Atomic
  /// where `put_if` is.
  async fn delete_if(&self, key: &SessionKey, expected: Vec<u8>) -> Result<bool> {
    match self.head(key, expected.len()).await? {
      Some(head) if head == expected => self.delete(key).await.map(|()| true),
      _ => Ok(false),
    }
  }
  /// Leases and fenced writes, where the tier can hold them.
  fn leases(&self) -> Option<&dyn Leases> {
    None
  }
  /// Heartbeats and shared maps for a fleet of workers, where the tier can hold them.
  fn membership(&self) -> Option<&dyn Membership> {
    None
  }
  /// Memory figures of a tier that may drop keys under a memory limit; `None` for one that never does.
  async fn memory(&self) -> Result<Option<MemoryInfo>> {
    Ok(None)
  }
}

/// A flat namespace of objects under `/`-separated keys: what an object store (S3) offers. Keys are made by the
/// backup policy from validated session names, so they never hold `..`.
#[async_trait]
pub trait ObjectTier: Send + Sync + std::fmt::Debug {
  /// `Ok(None)` only when the tier answered that the object is absent.
  async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
  /// The first `len` bytes of an object (a ranged read): for listings that must not download whole blobs.
  async fn head(&self, key: &str, len: usize) -> Result<Option<Vec<u8>>>;
  /// Creates or replaces one object; it is visible whole or not at all.
  async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()>;
  /// Objects whose key starts with `prefix`, sorted by key.
  async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
  /// Objects whose key starts with `prefix` and sorts before `end`: a listing that stops early instead of paging
  /// through what follows (S3 lists in key order).
  async fn list_before(&self, prefix: &str, end: &str) -> Result<Vec<ObjectMeta>> {
    Ok(self.list(prefix).await?.into_iter().filter(|o| o.key.as_str() < end).collect())
  }
  /// The objects directly under `prefix` (a `/`-terminated folder), not those in folders below it: a session's
  /// versions without its chunks. S3 asks the server (a delimiter listing).
  async fn list_children(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let all = self.list(prefix).await?;
    Ok(all.into_iter().filter(|o| o.key.strip_prefix(prefix).is_some_and(|rest| !rest.contains('/'))).collect())
  }
  /// Idempotent.
  async fn delete(&self, keys: &[String]) -> Result<()>;
  /// What it is, for stats and messages: `s3`.
  fn kind(&self) -> &'static str;
}
