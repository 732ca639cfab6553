//! Where archive bytes live. A tier only gets, puts, lists and deletes bytes under session keys; it knows no
//! policy (what to keep, when to back up) and no archive format.

mod local;
mod redis;

pub use self::redis::{RedisConfig, RedisTarget, RedisTier, RedisTls};
pub use local::LocalDirTier;

use async_trait::async_trait;

use crate::error::Result;
use crate::session::SessionKey;

#[async_trait]
pub trait Tier: Send + Sync + std::fmt::Debug {
  /// Short name for errors and stats ("local", "redis", "s3").
  fn name(&self) -> &'static str;
  /// `Ok(None)` only when the tier answered that the key is absent; a tier that cannot answer returns `Err`.
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>>;
  /// The first `len` bytes (fewer if the value is shorter), without fetching the rest: for listings.
  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>>;
  /// Replaces the value atomically: a reader sees the old bytes or the new, never a mix.
  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()>;
  async fn exists(&self, key: &SessionKey) -> Result<bool>;
  /// Idempotent: deleting an absent key succeeds.
  async fn delete(&self, key: &SessionKey) -> Result<()>;
  async fn list(&self) -> Result<Vec<SessionKey>>;
}
