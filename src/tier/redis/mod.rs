//! The Redis tier: one string key per session, `<prefix><name>`, replaced by a single `SET … PX` (atomic, TTL
//! refreshed on every save). A single server (TCP, TLS or unix socket), a Redis Cluster, or a primary with replicas
//! behind Sentinel; Valkey alike. Writes can wait (`WAIT`) until replicas hold them: a failover then keeps them.

mod alive;
mod config;
mod conn;
mod leases;
mod membership;
mod raw;
mod scripts;
mod sentinel;

use std::fmt;

use async_trait::async_trait;
use redis::{IntoConnectionInfo, RedisError};
use tokio::sync::OnceCell;

pub use self::config::{parse_sentinel_addr, redact, RedisConfig, RedisTarget, RedisTls, SentinelTarget};
use self::conn::{Conn, Durability, Written};
use self::scripts::*;
use std::time::Duration;

use super::{Leases, MemoryInfo, Tier};
use crate::error::{Result, StoreError};
use crate::session::SessionKey;

pub struct RedisTier {
  config: RedisConfig,
  endpoint: String,
  conn: OnceCell<Conn>,
  markers: alive::Markers,
}

impl fmt::Debug for RedisTier {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("RedisTier").field("config", &self.config).finish_non_exhaustive()
  }
}

fn invalid(name: &'static str, reason: String) -> StoreError {
  StoreError::InvalidOption { name, reason }
}

impl RedisTier {
  /// Checks the URLs; connects on first use, so a store can be made while Redis is down.
  pub fn open(config: RedisConfig) -> Result<Self> {
    let urls = match &config.target {
      RedisTarget::Single(url) => vec![url.as_str()],
      RedisTarget::Cluster(nodes) if nodes.is_empty() => return Err(invalid("redis.nodes", "is empty".into())),
      RedisTarget::Cluster(nodes) => nodes.iter().map(String::as_str).collect(),
      RedisTarget::Sentinel(s) if s.sentinels.is_empty() => {
        return Err(invalid("redis.sentinels", "is empty".into()));
      }
      RedisTarget::Sentinel(s) if s.name.trim().is_empty() => {
        return Err(invalid("redis.name", "names no primary (the name in `sentinel monitor <name> …`)".into()));
      }
      RedisTarget::Sentinel(_) => Vec::new(),
    };
    // WAIT counts the replicas of one primary; a cluster's writes go to many.
    if matches!(config.target, RedisTarget::Cluster(_)) && config.min_replicas.is_some_and(|n| n > 0) {
      return Err(invalid("redis.minReplicas", "is not supported with a Redis Cluster (nodes)".into()));
    }
    if config.replica_timeout >= config.command_timeout {
      return Err(invalid("redis.replicaTimeoutMs", "must be less than commandTimeoutMs".into()));
    }
    for url in urls {
      // Only the error kind: the error text could quote the URL, password included.
      url.into_connection_info().map_err(|e| invalid("redis.url", format!("{}: {:?}", redact(url), e.kind())))?;
    }
    // The lease key is `{<session key>}:lease`; braces in the prefix would move it to another Cluster slot.
    if config.prefix.contains(['{', '}']) {
      return Err(invalid("redis.prefix", "must not contain { or }".into()));
    }
    Ok(Self { endpoint: config.endpoint(), config, conn: OnceCell::new(), markers: alive::Markers::default() })
  }

  fn key(&self, key: &SessionKey) -> String {
    format!("{}{key}", self.config.prefix)
  }

  async fn conn(&self) -> Result<&Conn> {
    self
      .conn
      .get_or_try_init(|| async {
        let root_cert = match &self.config.tls.ca_file {
          Some(path) => Some(tokio::fs::read(path).await.map_err(StoreError::io("read redis.tls.caFile", path))?),
          None => None,
        };
        conn::connect(&self.config, root_cert).await.map_err(|e| self.error(e))
      })
      .await
  }

  async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
    self.conn().await?.query(cmd).await.map_err(|e| self.error(e))
  }

  /// A save and, when replicas are wanted, its `WAIT`: the reply, and whether the replicas confirmed it.
  async fn write<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<(T, Result<()>)> {
    self.write_waiting(cmd, self.config.min_replicas).await
  }

  /// A write that takes or renews a lease: with Sentinel, at least one replica must confirm it unless
  /// `minReplicas` says otherwise, even while the primary shows none. A primary that lost its replicas may be the
  /// old side of a failover (a replica promoted without this write, the sentinels not yet switched, or this
  /// primary cut off with its clients): a lease renewed there alone would let its owner run on while another
  /// takes the session on the new primary. So an owner that cannot prove the lease stops (the fleet's deadline).
  async fn write_lease<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<(T, Result<()>)> {
    let replicas = match (&self.config.target, self.config.min_replicas) {
      (RedisTarget::Sentinel(_), None) => Some(1),
      (_, asked) => asked,
    };
    self.write_waiting(cmd, replicas).await
  }

  async fn write_waiting<T: redis::FromRedisValue>(
    &self,
    cmd: &redis::Cmd,
    replicas: Option<u32>,
  ) -> Result<(T, Result<()>)> {
    let durability = Durability { replicas, timeout: self.config.replica_timeout };
    let Written { value, replicas } = self.conn().await?.write(cmd, durability).await.map_err(|e| self.error(e))?;
    let confirmed = match replicas {
      Some((acked, wanted)) if acked < i64::from(wanted) => Err(StoreError::Backend {
        code: "ERR_REDIS_REPLICAS",
        reason: format!(
          "redis at {}: the write reached {acked} of the {wanted} replica(s) it needs within {} ms; it may be on the \
           primary alone, where a failover can lose it, so it does not count as done",
          self.endpoint,
          self.config.replica_timeout.as_millis()
        ),
      }),
      _ => Ok(()),
    };
    Ok((value, confirmed))
  }

  fn error(&self, e: RedisError) -> StoreError {
    // A reply that is not RESP: the address is some other service (HTTP, a TLS port read as plain, …).
    if e.kind() == redis::ErrorKind::Parse {
      let reason = format!(
        "the server at {} did not answer as Redis (another service on that port, or one that wants TLS: rediss://): {e}",
        self.endpoint
      );
      return StoreError::Backend { code: "ERR_REDIS_PROTOCOL", reason };
    }
    let code = if e.is_timeout() {
      "ERR_REDIS_TIMEOUT"
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
      || e.code().is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
      "ERR_REDIS_AUTH"
    } else if e.is_io_error()
      || e.is_connection_refusal()
      || e.is_connection_dropped()
      || matches!(
        e.kind(),
        redis::ErrorKind::ClusterConnectionNotFound
          | redis::ErrorKind::MasterNameNotFoundBySentinel
          | redis::ErrorKind::NoValidReplicasFoundBySentinel
      )
      || e.code().is_some_and(|c| matches!(c, "CLUSTERDOWN" | "LOADING" | "TRYAGAIN" | "MASTERDOWN" | "READONLY"))
    {
      "ERR_REDIS_UNAVAILABLE"
    } else {
      "ERR_REDIS"
    };
    StoreError::Backend { code, reason: format!("redis at {}: {e}", self.endpoint) }
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
  async fn get(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    self.query(redis::cmd("GET").arg(self.key(key))).await
  }

  async fn head(&self, key: &SessionKey, len: usize) -> Result<Option<Vec<u8>>> {
    let end = len.saturating_sub(1);
    let bytes: Vec<u8> = self.query(redis::cmd("GETRANGE").arg(self.key(key)).arg(0).arg(end)).await?;
    // GETRANGE answers "" for a missing key; a stored archive is never empty.
    Ok((!bytes.is_empty()).then_some(bytes))
  }

  async fn put(&self, key: &SessionKey, bytes: Vec<u8>) -> Result<()> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(self.key(key)).arg(bytes);
    if let Some(ttl) = self.config.ttl {
      cmd.arg("PX").arg(ttl.as_millis() as u64);
    }
    let ((), confirmed) = self.write(&cmd).await?;
    confirmed
  }

  async fn exists(&self, key: &SessionKey) -> Result<bool> {
    self.query(redis::cmd("EXISTS").arg(self.key(key))).await
  }

  async fn delete(&self, key: &SessionKey) -> Result<()> {
    let (_deleted, confirmed): (i64, _) = self.write(redis::cmd("DEL").arg(self.key(key))).await?;
    confirmed
  }

  async fn list(&self) -> Result<Vec<SessionKey>> {
    let pattern = format!("{}*", glob_escape(&self.config.prefix));
    let raw = self.conn().await?.scan(&pattern).await.map_err(|e| self.error(e))?;
    let mut keys: Vec<SessionKey> = raw
      .iter()
      .filter_map(|k| k.strip_prefix(self.config.prefix.as_str()))
      .filter_map(|name| SessionKey::parse(name).ok())
      .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
  }

  fn kind(&self) -> &'static str {
    "redis"
  }

  /// Checked and replaced in one script, keeping the key's TTL (a re-encryption does not extend a session's life).
  async fn replace_if(&self, key: &SessionKey, expected: &[u8], bytes: Vec<u8>) -> Result<bool> {
    if expected.is_empty() {
      // Create-if-absent (a write-back where nothing was stored): a new copy, with the ttl a save gives.
      return self.put_if(key, None, bytes).await;
    }
    self.conditional(REPLACE_IF, key, Some(expected), &[&bytes]).await
  }

  /// Checked and written in one script, with the ttl a save gives: a save or delete by another process lands
  /// before the check or after the write, never between.
  async fn put_if(&self, key: &SessionKey, expected: Option<Vec<u8>>, bytes: Vec<u8>) -> Result<bool> {
    let ttl = self.config.ttl.map_or("0".to_string(), ms);
    self.conditional(PUT_IF, key, expected.as_deref(), &[&bytes, ttl.as_bytes()]).await
  }

  async fn delete_if(&self, key: &SessionKey, expected: Vec<u8>) -> Result<bool> {
    self.conditional(DELETE_IF, key, Some(&expected), &[]).await
  }

  fn leases(&self) -> Option<&dyn Leases> {
    Some(self)
  }

  fn membership(&self) -> Option<&dyn super::Membership> {
    Some(self)
  }

  /// `INFO memory` and `INFO stats`: they work where `CONFIG` is disabled (managed Redis).
  async fn memory(&self) -> Result<Option<MemoryInfo>> {
    let conn = self.conn().await?;
    // A user without INFO (least-privilege ACLs, or INFO renamed on a managed Redis) cannot know the policy: that is
    // "unknown", not a failure of every call.
    let not_allowed = |e: &redis::RedisError| {
      e.code() == Some("NOPERM") || e.detail().is_some_and(|d| d.starts_with("unknown command"))
    };
    let memory = match conn.info("memory").await {
      Err(e) if not_allowed(&e) => return Ok(None),
      other => other.map_err(|e| self.error(e))?,
    };
    let stats = conn.info("stats").await.map_err(|e| self.error(e))?;
    let mut total = MemoryInfo { policy: "noeviction".into(), ..MemoryInfo::default() };
    for text in memory.iter().chain(&stats) {
      let node = parse_info(text);
      total.used_memory += node.used_memory;
      total.maxmemory += node.maxmemory;
      total.evicted_keys += node.evicted_keys;
      if !node.policy.is_empty() && total.policy == "noeviction" {
        total.policy = node.policy;
      }
    }
    Ok(Some(total))
  }
}

/// The figures of one node's `INFO` text (`field:value` lines); fields it lacks stay 0 / empty.
pub fn parse_info(text: &str) -> MemoryInfo {
  let mut info = MemoryInfo::default();
  for line in text.lines() {
    let Some((field, value)) = line.trim().split_once(':') else { continue };
    let number = || value.parse().unwrap_or(0);
    match field {
      "used_memory" => info.used_memory = number(),
      "maxmemory" => info.maxmemory = number(),
      "maxmemory_policy" => info.policy = value.to_owned(),
      "evicted_keys" => info.evicted_keys = number(),
      _ => {}
    }
  }
  info
}

impl RedisTier {
  /// A conditional write: `script` (starting with `matches_expected!`) over the session key, with `expected` (the
  /// stored value's first bytes, or `None`: absent) and `more` arguments. Whether it wrote; only a write waits for
  /// the replicas to count.
  async fn conditional(&self, script: &str, key: &SessionKey, expected: Option<&[u8]>, more: &[&[u8]]) -> Result<bool> {
    let end = expected.map_or(String::new(), |e| e.len().saturating_sub(1).to_string());
    let args = [&[expected.unwrap_or_default(), end.as_bytes()], more].concat();
    let (written, confirmed) = self.write::<i64>(&eval(script, &[self.key(key)], &args)).await?;
    if written == 1 {
      confirmed?;
    }
    Ok(written == 1)
  }
}

fn eval(script: &str, keys: &[String], args: &[&[u8]]) -> redis::Cmd {
  let mut cmd = redis::cmd("EVAL");
  cmd.arg(script).arg(keys.len()).arg(keys);
  for arg in args {
    cmd.arg(*arg);
  }
  cmd
}

fn ms(ttl: Duration) -> String {
  ttl.as_millis().max(1).to_string()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn redaction_drops_credentials() {
    assert_eq!(redact("redis://user:s3cret@host:6380/2"), "redis://host:6380/2");
    assert_eq!(redact("redis://:s3cret@host"), "redis://host");
    assert_eq!(redact("unix:///tmp/redis.sock"), "unix:///tmp/redis.sock");
    assert_eq!(redact("unix:///tmp/redis.sock?db=2&pass=s3cret"), "unix:///tmp/redis.sock");
    assert_eq!(redact("redis:/app:s3cret@host:6399"), "redis:/host:6399");
    assert_eq!(redact("rediss://u:s3cret@h:1/0"), "rediss://h:1/0");
    assert_eq!(redact("redis://u:s3cret"), "redis://u:***");
    let config = RedisConfig::new(RedisTarget::Cluster(vec!["redis://u:s3cret@h:1".into()]));
    assert!(!format!("{config:?}").contains("s3cret"));
    assert!(!format!("{:?}", RedisTier::open(config).unwrap()).contains("s3cret"));
  }

  /// Seeded forms of credential-bearing Redis URLs and sentinel entries (schemes, a slash or two missing, user
  /// info with and without a user, odd characters in the password, queries, the `@` forgotten), each mutated
  /// further: the password never appears in the redaction, a config's Debug, nor any error opening it.
  #[test]
  fn no_url_form_prints_its_password() {
    let mut x: u64 = 0x0bad_5eed;
    let mut next = move || {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      x as usize
    };
    let schemes =
      ["redis://", "rediss://", "redis:/", "redis:", "unix://", "redis+unix:///", "valkey://", "REDIS://", ""];
    let hosts = ["h", "h:6379", "[::1]:1", "10.0.0.1:26379", "/tmp/r.sock", "h:6379/2", ""];
    let oddities = ["", "/", "?", "#", ":", "@", "%40", " ", "]"];
    for i in 0..3000 {
      let odd = oddities[next() % oddities.len()];
      let password = format!("Pw{i}x{odd}Zq");
      let host = hosts[next() % hosts.len()];
      let body = match next() % 6 {
        0 => format!("app:{password}@{host}"),
        1 => format!(":{password}@{host}"),
        2 => format!("{password}@{host}"),
        3 => format!("{host}?db=1&pass={password}"),
        4 => format!("u:{password}"),
        _ => format!("u@x:{password}@{host}"),
      };
      let mut url = format!("{}{body}", schemes[next() % schemes.len()]);
      // A further mutation: a separator dropped or doubled somewhere outside the password.
      if next() % 2 == 0 {
        let at = next() % (url.len() + 1);
        let inside = url.find(&password).is_some_and(|p| at >= p && at <= p + password.len());
        if !inside && url.is_char_boundary(at) {
          url.insert(at, ['/', ':', '@'][next() % 3]);
        }
      }
      let secret = format!("Pw{i}x");
      assert!(!redact(&url).contains(&secret), "{url:?} → {:?}", redact(&url));
      let config = RedisConfig::new(RedisTarget::Single(url.clone()));
      assert!(!format!("{config:?}").contains(&secret), "{url:?}");
      if let Err(err) = RedisTier::open(config) {
        assert!(!err.to_string().contains(&secret) && !format!("{err:?}").contains(&secret), "{url:?}: {err}");
      }
      let cluster = RedisConfig::new(RedisTarget::Cluster(vec![url.clone()]));
      assert!(!format!("{cluster:?}").contains(&secret), "{url:?}");
      if let Err(err) = crate::tier::parse_sentinel_addr(&body) {
        assert!(!err.contains(&secret), "{body:?}: {err}");
      }
    }
  }

  #[test]
  fn bad_urls_are_option_errors_without_the_secret() {
    let err = RedisTier::open(RedisConfig::new(RedisTarget::Single("http://u:s3cret@h".into()))).unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_OPTION");
    assert!(!err.to_string().contains("s3cret"), "{err}");
  }

  #[test]
  fn info_fields_are_read() {
    let text = "# Memory\r\nused_memory:1048576\r\nmaxmemory:3145728\r\nmaxmemory_policy:allkeys-lru\r\n";
    let info = parse_info(&format!("{text}# Stats\r\nevicted_keys:22\r\n"));
    assert_eq!(
      (info.used_memory, info.maxmemory, info.policy.as_str(), info.evicted_keys),
      (1 << 20, 3 << 20, "allkeys-lru", 22)
    );
  }

  #[test]
  fn scan_patterns_escape_the_prefix() {
    assert_eq!(glob_escape("wa:session:"), "wa:session:");
    assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
  }
}
