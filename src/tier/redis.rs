//! The Redis tier: one string key per session, `<prefix><name>`, replaced by a single `SET … PX` (atomic, TTL
//! refreshed on every save). One auto-reconnecting, multiplexed connection per store.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError};
use tokio::sync::OnceCell;

use super::Tier;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;

#[derive(Clone)]
pub struct RedisConfig {
  /// `redis://[user:pass@]host:port/db` or `unix:///path/redis.sock`. Holds secrets: never printed.
  pub url: String,
  pub prefix: String,
  /// `None`: keys never expire.
  pub ttl: Option<Duration>,
  pub connect_timeout: Duration,
  pub command_timeout: Duration,
}

impl RedisConfig {
  pub const DEFAULT_PREFIX: &'static str = "wa:session:";
  pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

  pub fn new(url: impl Into<String>) -> Self {
    Self {
      url: url.into(),
      prefix: Self::DEFAULT_PREFIX.into(),
      ttl: Some(Self::DEFAULT_TTL),
      connect_timeout: Duration::from_secs(5),
      command_timeout: Duration::from_secs(10),
    }
  }
}

impl fmt::Debug for RedisConfig {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("RedisConfig")
      .field("url", &redact(&self.url))
      .field("prefix", &self.prefix)
      .field("ttl", &self.ttl)
      .finish_non_exhaustive()
  }
}

/// The URL without user name or password, for messages.
pub fn redact(url: &str) -> String {
  match url::Url::parse(url) {
    Ok(mut u) => {
      if u.password().is_some() || !u.username().is_empty() {
        let _ = u.set_password(None);
        let _ = u.set_username("");
      }
      u.to_string()
    }
    Err(_) => "<unparsable redis url>".into(),
  }
}

pub struct RedisTier {
  client: redis::Client,
  config: RedisConfig,
  endpoint: String,
  conn: OnceCell<ConnectionManager>,
}

impl fmt::Debug for RedisTier {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("RedisTier")
      .field("config", &self.config)
      .finish_non_exhaustive()
  }
}

impl RedisTier {
  /// Checks the URL; connects lazily, on the first command, so a store can be made while Redis is down.
  pub fn open(config: RedisConfig) -> Result<Self> {
    let endpoint = redact(&config.url);
    let client = redis::Client::open(config.url.as_str()).map_err(|e| StoreError::InvalidOption {
      name: "redis.url",
      reason: format!("{endpoint}: {:?}", e.kind()),
    })?;
    Ok(Self {
      client,
      config,
      endpoint,
      conn: OnceCell::new(),
    })
  }

  fn key(&self, key: &SessionKey) -> String {
    format!("{}{key}", self.config.prefix)
  }

  async fn conn(&self) -> Result<ConnectionManager> {
    let manager = self
      .conn
      .get_or_try_init(|| async {
        let config = ConnectionManagerConfig::new()
          .set_connection_timeout(Some(self.config.connect_timeout))
          .set_response_timeout(Some(self.config.command_timeout))
          .set_number_of_retries(2)
          .set_max_delay(Duration::from_secs(1));
        ConnectionManager::new_lazy_with_config(self.client.clone(), config)
      })
      .await
      .map_err(|e| self.error(e))?;
    Ok(manager.clone())
  }

  fn error(&self, e: RedisError) -> StoreError {
    let code = if e.is_timeout() {
      "ERR_REDIS_TIMEOUT"
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
      || e.code().is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
      "ERR_REDIS_AUTH"
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
      "ERR_REDIS_UNAVAILABLE"
    } else {
      "ERR_REDIS"
    };
    StoreError::Backend {
      code,
      reason: format!("redis at {}: {e}", self.endpoint),
    }
  }
}

/// `*`, `?`, `[` and `\` in a prefix must match themselves in a SCAN pattern.
fn glob_escape(s: &str) -> String {
  s.chars().fold(String::new(), |mut out, c| {
    if matches!(c, '*' | '?' | '[' | ']' | '\\') {
      out.push('\\');
    }
    out.push(c);
    out
  })
}

#[async_trait]
impl Tier for RedisTier {
  fn name(&self) -> &'static str {
    "redis"
  }

  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    self.conn().await?.get(self.key(key)).await.map_err(|e| self.error(e))
  }

  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    let end = len.saturating_sub(1) as isize;
    let bytes: Vec<u8> = self
      .conn()
      .await?
      .getrange(self.key(key), 0, end)
      .await
      .map_err(|e| self.error(e))?;
    // GETRANGE answers "" for a missing key; a stored archive is never empty.
    Ok((!bytes.is_empty()).then_some(bytes))
  }

  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(self.key(key)).arg(bytes);
    if let Some(ttl) = self.config.ttl {
      cmd.arg("PX").arg(ttl.as_millis() as u64);
    }
    cmd
      .query_async::<()>(&mut self.conn().await?)
      .await
      .map_err(|e| self.error(e))
  }

  async fn exists(&self, key: &SessionKey) -> Result<bool> {
    self
      .conn()
      .await?
      .exists(self.key(key))
      .await
      .map_err(|e| self.error(e))
  }

  async fn delete(&self, key: &SessionKey) -> Result<()> {
    self
      .conn()
      .await?
      .del::<_, ()>(self.key(key))
      .await
      .map_err(|e| self.error(e))
  }

  async fn list(&self) -> Result<Vec<SessionKey>> {
    let pattern = format!("{}*", glob_escape(&self.config.prefix));
    let mut conn = self.conn().await?;
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
      let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(&pattern)
        .arg("COUNT")
        .arg(500)
        .query_async(&mut conn)
        .await
        .map_err(|e| self.error(e))?;
      keys.extend(
        batch
          .iter()
          .filter_map(|k| k.strip_prefix(self.config.prefix.as_str()))
          .filter_map(|n| SessionKey::parse(n).ok()),
      );
      if next == 0 {
        break;
      }
      cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn redaction_drops_credentials() {
    assert_eq!(redact("redis://user:s3cret@host:6380/2"), "redis://host:6380/2");
    assert_eq!(redact("redis://:s3cret@host"), "redis://host");
    assert_eq!(redact("unix:///tmp/redis.sock"), "unix:///tmp/redis.sock");
    assert!(!format!("{:?}", RedisConfig::new("redis://u:s3cret@h")).contains("s3cret"));
  }

  #[test]
  fn bad_urls_are_option_errors_without_the_secret() {
    let err = RedisTier::open(RedisConfig::new("http://u:s3cret@h")).unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_OPTION");
    assert!(!err.to_string().contains("s3cret"), "{err}");
  }

  #[test]
  fn scan_patterns_escape_the_prefix() {
    assert_eq!(glob_escape("wa:session:"), "wa:session:");
    assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
  }
}
