//! How to reach Redis. URLs carry passwords, so nothing here prints one.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone)]
pub enum RedisTarget {
  /// `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS) or `unix:///path/redis.sock`.
  Single(String),
  /// Seed nodes of a Redis Cluster; the rest of the topology is discovered.
  Cluster(Vec<String>),
}

#[derive(Clone, Debug, Default)]
pub struct RedisTls {
  /// PEM file of the CA that signed the server certificates, instead of the system's roots.
  pub ca_file: Option<PathBuf>,
  /// Accept any certificate and host name. For tests and private networks only.
  pub insecure: bool,
}

#[derive(Clone)]
pub struct RedisConfig {
  pub target: RedisTarget,
  pub tls: RedisTls,
  pub prefix: String,
  /// `None`: keys never expire.
  pub ttl: Option<Duration>,
  pub connect_timeout: Duration,
  pub command_timeout: Duration,
}

impl RedisConfig {
  pub const DEFAULT_PREFIX: &'static str = "wa:session:";
  pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

  pub fn new(target: RedisTarget) -> Self {
    Self {
      target,
      tls: RedisTls::default(),
      prefix: Self::DEFAULT_PREFIX.into(),
      ttl: Some(Self::DEFAULT_TTL),
      connect_timeout: Duration::from_secs(5),
      command_timeout: Duration::from_secs(10),
    }
  }

  /// The target for messages, without credentials.
  pub fn endpoint(&self) -> String {
    match &self.target {
      RedisTarget::Single(url) => redact(url),
      RedisTarget::Cluster(nodes) => {
        format!("cluster [{}]", nodes.iter().map(|n| redact(n)).collect::<Vec<_>>().join(", "))
      }
    }
  }
}

impl fmt::Debug for RedisConfig {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("RedisConfig")
      .field("target", &self.endpoint())
      .field("tls", &self.tls)
      .field("prefix", &self.prefix)
      .field("ttl", &self.ttl)
      .finish_non_exhaustive()
  }
}

/// The URL without user name, password or query (redis-rs reads `?pass=` on unix sockets).
pub fn redact(url: &str) -> String {
  match url::Url::parse(url) {
    Ok(mut u) => {
      let _ = u.set_password(None);
      let _ = u.set_username("");
      u.set_query(None);
      u.set_fragment(None);
      u.to_string()
    }
    Err(_) => "<unparsable redis url>".into(),
  }
}

/// The URL with `#insecure`, redis-rs' switch for skipping certificate checks.
pub fn with_insecure(url: &str) -> String {
  let base = url.split('#').next().unwrap_or(url);
  format!("{base}#insecure")
}
