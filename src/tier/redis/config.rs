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
  /// A primary and its replicas behind Redis Sentinel: the sentinels name the current primary.
  Sentinel(SentinelTarget),
}

/// Where the sentinels are and how to log in to them and to the data nodes they name. No `Debug`: passwords.
#[derive(Clone, Default)]
pub struct SentinelTarget {
  /// `(host, port)` of each sentinel.
  pub sentinels: Vec<(String, u16)>,
  /// The monitored primary's name (`sentinel monitor <name> …`).
  pub name: String,
  /// ACL user and password of the data nodes (primary and replicas).
  pub username: Option<String>,
  pub password: Option<String>,
  /// ACL user and password of the sentinels themselves (`requirepass` in sentinel.conf).
  pub sentinel_username: Option<String>,
  pub sentinel_password: Option<String>,
  pub db: i64,
  /// TLS to the sentinels and to the data nodes (with `RedisConfig::tls` for the roots).
  pub tls: bool,
}

/// The port a sentinel listens on unless told otherwise.
pub const SENTINEL_PORT: u16 = 26379;

/// `host:port`, `[v6]:port` or a bare host (port 26379). The reason names what is wrong, never the input's secrets
/// (a sentinel address carries none).
pub fn parse_sentinel_addr(text: &str) -> std::result::Result<(String, u16), String> {
  let text = text.trim();
  let (host, port) = if let Some(rest) = text.strip_prefix('[') {
    let (host, after) = rest.split_once(']').ok_or(format!("{:?} lacks the closing ]", redact(text)))?;
    match after {
      "" => (host, None),
      _ => (host, Some(after.strip_prefix(':').ok_or(format!("{:?}: expected :port after ]", redact(text)))?)),
    }
  } else {
    match text.rsplit_once(':') {
      Some((host, _)) if host.contains(':') => {
        return Err(format!("{:?}: write an IPv6 address as [addr]:port", redact(text)))
      }
      Some((host, port)) => (host, Some(port)),
      None => (text, None),
    }
  };
  // A DNS name or an IPv4/IPv6 address: letters, digits, `.`, `-`, `_` (and `:` inside brackets).
  let allowed =
    |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (c == ':' && text.starts_with('['));
  if host.is_empty() || !host.chars().all(allowed) {
    return Err(format!("{:?} is not host:port", redact(text)));
  }
  let port = match port {
    None => SENTINEL_PORT,
    Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or(format!("{:?}: port must be 1-65535", redact(text)))?,
  };
  Ok((host.to_owned(), port))
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
  /// Replicas that must hold a write (`WAIT`) before it counts as done. `None`: 1 on Sentinel while the primary
  /// has a replica connected, else 0.
  pub min_replicas: Option<u32>,
  /// How long a write waits for those replicas; less than `command_timeout`.
  pub replica_timeout: Duration,
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
      min_replicas: None,
      replica_timeout: Duration::from_secs(2),
    }
  }

  /// The target for messages, without credentials.
  pub fn endpoint(&self) -> String {
    match &self.target {
      RedisTarget::Single(url) => redact(url),
      RedisTarget::Cluster(nodes) => {
        format!("cluster [{}]", nodes.iter().map(|n| redact(n)).collect::<Vec<_>>().join(", "))
      }
      RedisTarget::Sentinel(s) => {
        let addrs: Vec<String> = s.sentinels.iter().map(|(h, p)| format_addr(h, *p)).collect();
        format!("sentinel {:?} [{}]", s.name, addrs.join(", "))
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
      .field("min_replicas", &self.min_replicas)
      .finish_non_exhaustive()
  }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn format_addr(host: &str, port: u16) -> String {
  if host.contains(':') {
    format!("[{host}]:{port}")
  } else {
    format!("{host}:{port}")
  }
}

/// Anything shaped like a URL or `host:port` without what may be a credential: the user info (everything up to
/// the last `@`), the query and fragment (redis-rs reads `?pass=` on unix sockets), and a "port" that is not
/// digits (`redis://user:pw` with the `@` forgotten). By pattern, not by a parse: a URL missing a slash
/// (`redis:/app:pw@host`) parses without a host, and a parse-based redaction then strips nothing.
pub fn redact(url: &str) -> String {
  let url = url.trim();
  // `scheme:` and its slashes, when the text starts with one.
  let scheme_len = url
    .find(':')
    .filter(|&at| at > 0 && url[..at].chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
    .filter(|&at| url[at + 1..].starts_with('/'))
    .map_or(0, |at| at + 1 + url[at + 1..].len() - url[at + 1..].trim_start_matches('/').len());
  let (scheme, rest) = url.split_at(scheme_len);
  let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
  // From the query on (and what is left of one an `@` cut into: `&`, `=`).
  let rest = rest.split(['?', '#', '&', '=']).next().unwrap_or_default();
  // Each `/`-separated part may only be a host, `host:port`, `[v6]:port` or a plain name: anything after a `:`
  // that is not a port may be a password (`redis://user:pw` with its `@` forgotten, a scheme mistyped).
  let masked: Vec<String> = rest
    .split('/')
    .map(|part| {
      let (host, port) = match part.strip_prefix('[').and_then(|v6| v6.split_once(']')) {
        Some((_, after)) => (&part[..part.len() - after.len()], after.strip_prefix(':').unwrap_or(after)),
        None => part.split_once(':').unwrap_or((part, "")),
      };
      match port.chars().all(|c| c.is_ascii_digit()) {
        true => part.to_owned(),
        false => format!("{}:***", host.trim_end_matches(':')),
      }
    })
    .collect();
  format!("{scheme}{}", masked.join("/"))
}

/// The URL with `#insecure`, redis-rs' switch for skipping certificate checks.
pub fn with_insecure(url: &str) -> String {
  let base = url.split('#').next().unwrap_or(url);
  format!("{base}#insecure")
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn sentinel_addresses_parse() {
    assert_eq!(parse_sentinel_addr("10.0.0.1:26380"), Ok(("10.0.0.1".into(), 26380)));
    assert_eq!(parse_sentinel_addr(" sentinel-0.svc "), Ok(("sentinel-0.svc".into(), SENTINEL_PORT)));
    assert_eq!(parse_sentinel_addr("[::1]:5000"), Ok(("::1".into(), 5000)));
    assert_eq!(parse_sentinel_addr("[fe80::1]"), Ok(("fe80::1".into(), SENTINEL_PORT)));
    for bad in ["", ":26379", "h:0", "h:99999", "h:x", "::1:5000", "[::1", "[::1]5000", "redis://h:1", "u@h:1"] {
      assert!(parse_sentinel_addr(bad).is_err(), "{bad:?}");
    }
    assert_eq!(format_addr("::1", 5), "[::1]:5");
  }

  #[test]
  fn sentinel_endpoint_names_no_password() {
    let target = SentinelTarget {
      sentinels: vec![("h1".into(), 1), ("::1".into(), 2)],
      name: "mymaster".into(),
      password: Some("s3cret".into()),
      sentinel_password: Some("s3cret2".into()),
      ..SentinelTarget::default()
    };
    let config = RedisConfig::new(RedisTarget::Sentinel(target));
    assert_eq!(config.endpoint(), "sentinel \"mymaster\" [h1:1, [::1]:2]");
    assert!(!format!("{config:?}").contains("s3cret"));
  }

  /// Seeded mutations of good addresses (byte flips, cuts, inserted separators): never a panic, and every accepted
  /// one is a host without separators and a port from 1 to 65535 that formats back to an address that parses the same.
  #[test]
  fn mutated_sentinel_addresses_parse_or_are_refused() {
    let mut x: u64 = 0x05e1_71e1;
    let mut next = || {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      x
    };
    let seeds = ["10.0.0.1:26379", "[::1]:5000", "sentinel-0.svc", "h:1"];
    let noise = [b':', b'[', b']', b'@', b'/', b' ', b'0', b'9', 0xff, b'-'];
    for i in 0..4000 {
      let mut bytes = seeds[i % seeds.len()].as_bytes().to_vec();
      for _ in 0..=(next() % 3) {
        let at = (next() as usize) % (bytes.len() + 1);
        match next() % 3 {
          0 if at < bytes.len() => bytes[at] = noise[(next() as usize) % noise.len()],
          1 => bytes.insert(at, noise[(next() as usize) % noise.len()]),
          _ => bytes.truncate(at),
        }
      }
      let text = String::from_utf8_lossy(&bytes);
      if let Ok((host, port)) = parse_sentinel_addr(&text) {
        assert!(port > 0 && !host.is_empty() && !host.contains(['/', '@', ' ', '[', ']']), "{text:?}");
        assert_eq!(parse_sentinel_addr(&format_addr(&host, port)), Ok((host.clone(), port)), "{text:?}");
      }
    }
  }
}
