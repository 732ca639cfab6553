//! Keys outside the store's own layout, read as they are: what `import` needs from a Redis another store filled.

use super::RedisTier;
use crate::error::Result;

impl RedisTier {
  /// Every key matching the SCAN `pattern` (over each primary of a cluster), sorted.
  pub async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>> {
    let mut keys = self.conn().await?.scan(pattern).await.map_err(|e| self.error(e))?;
    keys.sort();
    keys.dedup();
    Ok(keys)
  }

  /// The value of any string key; `None` if it is absent.
  pub async fn get_key(&self, key: &str) -> Result<Option<Vec<u8>>> {
    self.query(redis::cmd("GET").arg(key)).await
  }
}
