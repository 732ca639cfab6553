//! An object tier in memory, to test policies alone; S3 itself is tested against a real server in __test__.

use std::collections::BTreeMap;
use std::sync::Mutex;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{ObjectMeta, ObjectTier};
use crate::error::{Result, StoreError};

#[derive(Debug, Default)]
pub struct Memory {
  /// Key → (bytes, written at ms).
  pub objects: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
  /// Puts fail while set.
  pub fail_puts: Mutex<bool>,
  /// Reads and listings fail while set (the bucket out of reach).
  pub fail_reads: Mutex<bool>,
  /// Puts fail once this many more have succeeded (an upload cut off midway).
  pub puts_left: Mutex<Option<usize>>,
}

impl Memory {
  pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
    self.objects.lock().unwrap().get(key).map(|(v, _)| v.clone())
  }

  fn reachable(&self) -> Result<()> {
    match *self.fail_reads.lock().unwrap() {
      true => Err(StoreError::Backend { code: "ERR_S3_UNAVAILABLE", reason: "down".into() }),
      false => Ok(()),
    }
  }
}

fn now_ms() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[async_trait]
impl ObjectTier for Memory {
  async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
    self.reachable()?;
    Ok(self.bytes(key))
  }
  async fn head(&self, key: &str, len: usize) -> Result<Option<Vec<u8>>> {
    self.reachable()?;
    Ok(self.bytes(key).map(|v| v[..len.min(v.len())].to_vec()))
  }
  async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
    let cut_off = self.puts_left.lock().unwrap().as_mut().is_some_and(|n| n.checked_sub(1).map(|m| *n = m).is_none());
    if *self.fail_puts.lock().unwrap() || cut_off {
      return Err(StoreError::Backend { code: "ERR_S3_UNAVAILABLE", reason: "down".into() });
    }
    self.objects.lock().unwrap().insert(key.to_owned(), (bytes, now_ms()));
    Ok(())
  }
  async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
    self.reachable()?;
    let objects = self.objects.lock().unwrap();
    let found = objects.iter().filter(|(k, _)| k.starts_with(prefix));
    Ok(found.map(|(k, (v, at))| ObjectMeta { key: k.clone(), size: v.len() as u64, modified_ms: *at }).collect())
  }
  fn kind(&self) -> &'static str {
    "memory"
  }
  async fn delete(&self, keys: &[String]) -> Result<()> {
    let mut objects = self.objects.lock().unwrap();
    keys.iter().for_each(|k| drop(objects.remove(k)));
    Ok(())
  }
}

/// A pattern, and the (reached, release) pair of the read it holds.
type Gate = (String, Arc<Notify>, Arc<Notify>);

/// A bucket whose next `get` of a key containing `pattern` is read, then held (once) until released: the reply
/// of a slow download; or whose next `put` of such a key is held before it lands: a slow upload.
#[derive(Debug, Default)]
pub struct Held {
  pub inner: Arc<Memory>,
  gate: Mutex<Option<Gate>>,
  put_gate: Mutex<Option<Gate>>,
}

impl Held {
  /// Holds the next read of a key holding `pattern`; returns (reached, release).
  pub fn hold(&self, pattern: &str) -> (Arc<Notify>, Arc<Notify>) {
    let (reached, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    *self.gate.lock().unwrap() = Some((pattern.into(), reached.clone(), release.clone()));
    (reached, release)
  }

  /// Holds the next write of a key holding `pattern` before it lands; returns (reached, release).
  pub fn hold_put(&self, pattern: &str) -> (Arc<Notify>, Arc<Notify>) {
    let (reached, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    *self.put_gate.lock().unwrap() = Some((pattern.into(), reached.clone(), release.clone()));
    (reached, release)
  }
}

#[async_trait]
impl ObjectTier for Held {
  async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
    let read = self.inner.get(key).await;
    let gate = self.gate.lock().unwrap().take_if(|(p, _, _)| key.contains(p.as_str()));
    if let Some((_, reached, release)) = gate {
      reached.notify_one();
      release.notified().await;
    }
    read
  }
  async fn head(&self, key: &str, len: usize) -> Result<Option<Vec<u8>>> {
    self.inner.head(key, len).await
  }
  async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
    let gate = self.put_gate.lock().unwrap().take_if(|(p, _, _)| key.contains(p.as_str()));
    if let Some((_, reached, release)) = gate {
      reached.notify_one();
      release.notified().await;
    }
    self.inner.put(key, bytes).await
  }
  async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
    self.inner.list(prefix).await
  }
  async fn delete(&self, keys: &[String]) -> Result<()> {
    self.inner.delete(keys).await
  }
  fn kind(&self) -> &'static str {
    "memory"
  }
}
