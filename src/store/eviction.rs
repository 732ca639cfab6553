//! A primary that may evict keys (Redis with a `maxmemory-policy` other than `noeviction`; every session key has
//! a TTL, so `volatile-*` evicts them too). Alone it would lose logins silently, so such a store refuses to run;
//! with a backup tier it is a cache, and the store backs each save up before the primary takes it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{Leases, MemoryInfo, Tier};

pub const EVICTION_CODE: &str = "ERR_REDIS_EVICTION";

/// The primary, checked once (on first use: Redis is connected lazily) for a policy that evicts.
#[derive(Debug)]
pub(crate) struct Checked {
  inner: Arc<dyn Tier>,
  /// No backup tier: an evicting policy is an error on every call.
  refuse: bool,
  /// The evicting policy, read once; `None`: it does not evict (or cannot be read: no INFO for this user).
  evicting: OnceCell<Option<String>>,
}

pub(crate) fn evicts(memory: &MemoryInfo) -> bool {
  memory.policy != "noeviction"
}

impl Checked {
  pub fn new(inner: Arc<dyn Tier>, refuse: bool) -> Self {
    Self { inner, refuse, evicting: OnceCell::new() }
  }

  /// Whether the primary may evict; with `refuse`, an evicting primary is `ERR_REDIS_EVICTION`.
  pub async fn evicts(&self) -> Result<bool> {
    let evicting = self
      .evicting
      .get_or_try_init(|| async { Ok::<_, StoreError>(self.inner.memory().await?.filter(evicts).map(|m| m.policy)) })
      .await?;
    if let (Some(policy), true) = (evicting, self.refuse) {
      let reason = format!(
        "{}: maxmemory-policy is {policy}, which lets Redis evict session keys (volatile-* ones too: they have a \
         TTL) and so lose logins silently; set maxmemory-policy noeviction, or add a backup tier (s3) so Redis is \
         only a cache",
        self.inner.kind()
      );
      return Err(StoreError::Backend { code: EVICTION_CODE, reason });
    }
    Ok(evicting.is_some())
  }
}

#[async_trait]
impl Tier for Checked {
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    self.evicts().await?;
    self.inner.get(key).await
  }
  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    self.evicts().await?;
    self.inner.head(key, len).await
  }
  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    self.evicts().await?;
    self.inner.put(key, bytes).await
  }
  async fn put_when(&self, key: &SessionKey, bytes: Vec<u8>, ready: crate::tier::Ready) -> Result<()> {
    self.evicts().await?;
    self.inner.put_when(key, bytes, ready).await
  }
  async fn exists(&self, key: &SessionKey) -> Result<bool> {
    self.evicts().await?;
    self.inner.exists(key).await
  }
  async fn delete(&self, key: &SessionKey) -> Result<()> {
    self.evicts().await?;
    self.inner.delete(key).await
  }
  async fn list(&self) -> Result<Vec<SessionKey>> {
    self.evicts().await?;
    self.inner.list().await
  }
  fn kind(&self) -> &'static str {
    self.inner.kind()
  }
  async fn replace_if(&self, key: &SessionKey, expected: &[u8], bytes: Vec<u8>) -> Result<bool> {
    self.evicts().await?;
    self.inner.replace_if(key, expected, bytes).await
  }
  async fn put_if(&self, key: &SessionKey, expected: Option<Vec<u8>>, bytes: Vec<u8>) -> Result<bool> {
    self.evicts().await?;
    self.inner.put_if(key, expected, bytes).await
  }
  async fn delete_if(&self, key: &SessionKey, expected: Vec<u8>) -> Result<bool> {
    self.evicts().await?;
    self.inner.delete_if(key, expected).await
  }
  // Fenced saves are checked by the store's save itself.
  fn leases(&self) -> Option<&dyn Leases> {
    self.inner.leases()
  }
  fn membership(&self) -> Option<&dyn crate::tier::Membership> {
    self.inner.membership()
  }
  async fn memory(&self) -> Result<Option<MemoryInfo>> {
    self.inner.memory().await
  }
}
