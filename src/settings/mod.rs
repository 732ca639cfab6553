//! Store configuration as users give it (JS options, environment variables, CLI flags), validated once and
//! turned into a `Store`. Numbers stay `f64` until here so every source gets the same range checks and messages.

mod env;
mod strict;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use self::env::{
  fill_from_env, list as sentinel_list, redis_from_env, redis_url_with_env_login, s3_from_env, sentinel_from_env,
};
pub use self::strict::{read as read_strict, Callback, Given};
use crate::archive::{self, Key, Keyring, PackOptions};
use crate::backup::{Backups, Retention};
use crate::error::{Result, StoreError};
use crate::monitor::DiskAlert;
use crate::scheduler::Reporter;
use crate::store::{BackupMode, Store, StoreConfig};
use crate::tier::{
  parse_sentinel_addr, LocalDirTier, RedisConfig, RedisTarget, RedisTier, RedisTls, S3Config, S3Tier, SentinelTarget,
  Tier,
};

/// Everything optional; `None` means the documented default. No `Debug`: URLs and keys hold secrets.
#[derive(Clone, Default)]
pub struct Settings {
  pub data_path: Option<String>,
  pub dir: Option<String>,
  pub redis: Option<RedisSettings>,
  pub s3: Option<S3Settings>,
  /// `Some("none")`: S3 alone holds the sessions.
  pub primary: Option<String>,
  pub keep: Option<Vec<String>>,
  pub max_entries: Option<f64>,
  pub max_unpacked_bytes: Option<f64>,
  pub compression_level: Option<f64>,
  pub disk_alert: Option<DiskAlertSettings>,
  pub encryption: Option<EncryptionSettings>,
  /// Serve `GET /metrics` on this port (0: any free one); `None`: no metrics port.
  pub metrics_port: Option<f64>,
  /// The metrics port's address. Default 127.0.0.1.
  pub metrics_host: Option<String>,
}

/// Keys as base64 text (32 bytes each): new archives are written with `key`, `previous_keys` still read.
#[derive(Clone, Default)]
pub struct EncryptionSettings {
  pub key: String,
  pub previous_keys: Vec<String>,
  /// Read unencrypted archives too (between setting a key and running `rotate-key`).
  pub accept_plain: bool,
}

#[derive(Clone, Default)]
pub struct DiskAlertSettings {
  pub webhook_url: String,
  pub min_free_bytes: Option<f64>,
  pub check_interval_ms: Option<f64>,
  pub repeat_interval_ms: Option<f64>,
}

#[derive(Clone, Default)]
pub struct RedisSettings {
  pub url: Option<String>,
  pub nodes: Option<Vec<String>>,
  pub ca_file: Option<String>,
  pub insecure: Option<bool>,
  pub prefix: Option<String>,
  pub ttl_seconds: Option<f64>,
  pub connect_timeout_ms: Option<f64>,
  pub command_timeout_ms: Option<f64>,
  /// Sentinel: `host:port` of each sentinel, the monitored primary's `name`, and the logins.
  pub sentinels: Option<Vec<String>>,
  pub name: Option<String>,
  pub username: Option<String>,
  pub password: Option<String>,
  pub sentinel_username: Option<String>,
  pub sentinel_password: Option<String>,
  pub db: Option<f64>,
  /// Sentinel: TLS to the sentinels and the data nodes (a URL says it by `rediss://`).
  pub tls: Option<bool>,
  pub min_replicas: Option<f64>,
  pub replica_timeout_ms: Option<f64>,
}

#[derive(Clone, Default)]
pub struct S3Settings {
  pub endpoint: Option<String>,
  pub r2_account_id: Option<String>,
  pub region: Option<String>,
  pub bucket: String,
  pub prefix: Option<String>,
  pub force_path_style: Option<bool>,
  pub access_key_id: Option<String>,
  pub secret_access_key: Option<String>,
  pub keep_versions: Option<f64>,
  pub keep_within_ms: Option<f64>,
  pub incremental: Option<bool>,
  pub backup_interval_ms: Option<f64>,
  pub timeout_ms: Option<f64>,
}

/// Default expiry of a Redis session, and the age after which `cleanup` calls a session stale.
pub const DEFAULT_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// A whole number in `range`, from a JS number or a parsed string (napi would wrap -1 into a huge u32 silently).
pub fn whole(name: &'static str, value: Option<f64>, range: std::ops::RangeInclusive<f64>) -> Result<Option<u64>> {
  match value {
    None => Ok(None),
    Some(v) if v.fract() == 0.0 && range.contains(&v) => Ok(Some(v as u64)),
    Some(v) => {
      let reason = format!("{v} is not a whole number from {} to {}", range.start(), range.end());
      Err(StoreError::InvalidOption { name, reason })
    }
  }
}

pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn resolve_path(path: Option<&str>, default: &str) -> Result<PathBuf> {
  Ok(crate::store::cwd()?.join(path.unwrap_or(default)))
}

impl Settings {
  /// RemoteAuth's `dataPath`, absolute. Default `./.wwebjs_auth`, as RemoteAuth's own.
  pub fn data_path(&self) -> Result<PathBuf> {
    resolve_path(self.data_path.as_deref(), ".wwebjs_auth")
  }

  /// The embedded tier's directory, absolute. Default `./.wwebjs_store`.
  pub fn dir(&self) -> Result<PathBuf> {
    resolve_path(self.dir.as_deref(), ".wwebjs_store")
  }

  /// How long a stored session lives unsaved: the Redis TTL when one is set, else the default.
  pub fn ttl_seconds(&self) -> Result<Option<u64>> {
    let ttl = match &self.redis {
      Some(redis) => whole("redis.ttlSeconds", redis.ttl_seconds, 0.0..=315_360_000.0)?,
      None => None,
    };
    Ok(match ttl {
      Some(0) => None,
      Some(secs) => Some(secs),
      None => Some(DEFAULT_TTL_SECONDS),
    })
  }

  pub fn pack_options(&self) -> Result<PackOptions> {
    let mut pack = PackOptions::default();
    if let Some(keep) = &self.keep {
      pack.keep = archive::parse_keep(keep)?;
    }
    if let Some(n) = whole("maxEntries", self.max_entries, 1.0..=f64::from(u32::MAX))? {
      pack.limits.max_entries = n as u32;
    }
    if let Some(n) = whole("maxUnpackedBytes", self.max_unpacked_bytes, 1.0..=MAX_SAFE_INTEGER)? {
      pack.limits.max_unpacked_bytes = n;
    }
    if let Some(level) = whole("compressionLevel", self.compression_level, 1.0..=22.0)? {
      pack.level = level as i32;
    }
    if let Some(e) = &self.encryption {
      let current = Key::from_base64("encryption.key", &e.key)?;
      let previous = e.previous_keys.iter().map(|k| Key::from_base64("encryption.previousKeys", k));
      let mut keyring = Keyring::new(current, previous.collect::<Result<_>>()?);
      keyring.accept_plain = e.accept_plain;
      pack.keys = Some(Arc::new(keyring));
    }
    Ok(pack)
  }

  /// The store these settings describe. `report` receives background (interval backup) failures.
  pub fn build_store(&self, report: Reporter) -> Result<Store> {
    let embedded = self.primary.is_none() && self.redis.is_none();
    let local_dir = if embedded { Some(self.dir()?) } else { None };
    let config = StoreConfig { data_path: self.data_path()?, pack: self.pack_options()?, local_dir };
    let primary: Option<Arc<dyn Tier>> = match (self.primary.as_deref(), &self.redis) {
      (Some("none"), _) => None,
      (Some(other), _) => {
        return Err(StoreError::InvalidOption { name: "primary", reason: format!("{other:?} is not 'none'") });
      }
      (None, Some(redis)) => Some(Arc::new(RedisTier::open(redis.config()?)?)),
      (None, None) => Some(Arc::new(LocalDirTier::open(self.dir()?)?)),
    };
    let backups = match &self.s3 {
      Some(s3) => {
        let keep = whole("s3.keepVersions", s3.keep_versions, 1.0..=1000.0)?.unwrap_or(3) as usize;
        let every = whole("s3.backupIntervalMs", s3.backup_interval_ms, 0.0..=MAX_SAFE_INTEGER)?.unwrap_or(600_000);
        let mode = match every {
          0 => BackupMode::EverySave(report),
          ms => BackupMode::Interval(Duration::from_millis(ms), report),
        };
        let keep_within_ms = whole("s3.keepWithinMs", s3.keep_within_ms, 0.0..=MAX_SAFE_INTEGER)?;
        let retention = Retention { keep, keep_within_ms };
        let tier = Arc::new(S3Tier::open(s3.config()?)?);
        Some((Backups::open(tier, retention, s3.incremental.unwrap_or(false), config.pack.clone()), mode))
      }
      None => None,
    };
    Store::new(primary, backups, config)
  }
}

impl Settings {
  /// The low-disk threshold the metrics expose: `diskAlert.minFreeBytes`, else its default.
  pub fn min_free_bytes(&self) -> Result<u64> {
    let given = self.disk_alert.as_ref().and_then(|d| d.min_free_bytes);
    let min = whole("diskAlert.minFreeBytes", given, 0.0..=MAX_SAFE_INTEGER)?;
    Ok(min.unwrap_or(DiskAlertSettings::DEFAULT_MIN_FREE_BYTES))
  }

  /// The metrics port, bound now (a port in use fails the caller at once); `None` without `metricsPort`.
  pub fn metrics_listener(&self) -> Result<Option<std::net::TcpListener>> {
    let Some(port) = whole("metricsPort", self.metrics_port, 0.0..=65_535.0)? else { return Ok(None) };
    let host = self.metrics_host.as_deref().unwrap_or("127.0.0.1");
    crate::metrics::bind(host, port as u16).map(Some)
  }
}

impl DiskAlertSettings {
  pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;

  pub fn alert(&self) -> Result<DiskAlert> {
    let bad = |reason: &str| StoreError::InvalidOption { name: "diskAlert.webhookUrl", reason: reason.into() };
    // The URL itself stays out of messages: it may carry a token.
    let webhook = url::Url::parse(&self.webhook_url).map_err(|_| bad("is not a URL"))?;
    if !matches!(webhook.scheme(), "http" | "https") {
      return Err(bad("must be an http:// or https:// URL"));
    }
    let ms = |name, v, default| {
      Ok::<_, StoreError>(Duration::from_millis(whole(name, v, 1.0..=MAX_SAFE_INTEGER)?.unwrap_or(default)))
    };
    Ok(DiskAlert {
      webhook,
      min_free_bytes: whole("diskAlert.minFreeBytes", self.min_free_bytes, 0.0..=MAX_SAFE_INTEGER)?
        .unwrap_or(Self::DEFAULT_MIN_FREE_BYTES),
      check_every: ms("diskAlert.checkIntervalMs", self.check_interval_ms, 60_000)?,
      repeat_every: ms("diskAlert.repeatIntervalMs", self.repeat_interval_ms, 3_600_000)?,
      timeout: Duration::from_secs(10),
    })
  }
}

impl RedisSettings {
  fn config(&self) -> Result<RedisConfig> {
    let invalid = |name, reason: &str| StoreError::InvalidOption { name, reason: reason.into() };
    let target = match (&self.url, &self.nodes, &self.sentinels) {
      (Some(url), None, None) => RedisTarget::Single(redis_url("redis.url", url)?),
      (None, Some(nodes), None) => {
        RedisTarget::Cluster(nodes.iter().map(|n| redis_url("redis.nodes", n)).collect::<Result<_>>()?)
      }
      (None, None, Some(sentinels)) => RedisTarget::Sentinel(self.sentinel_target(sentinels)?),
      _ => return Err(invalid("redis", "give exactly one of url, nodes and sentinels")),
    };
    let sentinel_only = [
      ("redis.name", self.name.is_some()),
      ("redis.username", self.username.is_some()),
      ("redis.password", self.password.is_some()),
      ("redis.sentinelUsername", self.sentinel_username.is_some()),
      ("redis.sentinelPassword", self.sentinel_password.is_some()),
      ("redis.db", self.db.is_some()),
    ];
    if !matches!(target, RedisTarget::Sentinel(_)) {
      if let Some((name, _)) = sentinel_only.iter().find(|(_, given)| *given) {
        return Err(invalid(name, "belongs to sentinels; with url, put it in the URL"));
      }
    }
    let mut config = RedisConfig::new(target);
    config.tls =
      RedisTls { ca_file: self.ca_file.as_deref().map(PathBuf::from), insecure: self.insecure.unwrap_or(false) };
    if let Some(prefix) = &self.prefix {
      config.prefix = prefix.clone();
    }
    // Ten years at most: beyond that Duration and Redis' PX overflow.
    match whole("redis.ttlSeconds", self.ttl_seconds, 0.0..=315_360_000.0)? {
      Some(0) => config.ttl = None,
      Some(secs) => config.ttl = Some(Duration::from_secs(secs)),
      None => {}
    }
    if let Some(ms) = whole("redis.connectTimeoutMs", self.connect_timeout_ms, 1.0..=3_600_000.0)? {
      config.connect_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = whole("redis.commandTimeoutMs", self.command_timeout_ms, 1.0..=3_600_000.0)? {
      config.command_timeout = Duration::from_millis(ms);
    }
    config.min_replicas = whole("redis.minReplicas", self.min_replicas, 0.0..=1000.0)?.map(|n| n as u32);
    // The default leaves room for the reply within the command timeout.
    config.replica_timeout = match whole("redis.replicaTimeoutMs", self.replica_timeout_ms, 1.0..=3_600_000.0)? {
      Some(ms) => Duration::from_millis(ms),
      None => config.replica_timeout.min(config.command_timeout / 2),
    };
    Ok(config)
  }

  fn sentinel_target(&self, sentinels: &[String]) -> Result<SentinelTarget> {
    let invalid = |name, reason: String| StoreError::InvalidOption { name, reason };
    let sentinels = sentinels.iter().map(|s| parse_sentinel_addr(s).map_err(|e| invalid("redis.sentinels", e)));
    let name = self.name.clone().ok_or_else(|| invalid("redis.name", "is required with sentinels".into()))?;
    Ok(SentinelTarget {
      sentinels: sentinels.collect::<Result<_>>()?,
      name,
      username: self.username.clone(),
      password: self.password.clone(),
      sentinel_username: self.sentinel_username.clone(),
      sentinel_password: self.sentinel_password.clone(),
      db: whole("redis.db", self.db, 0.0..=65535.0)?.unwrap_or(0) as i64,
      tls: self.tls.unwrap_or(false) || self.ca_file.is_some(),
    })
  }
}

/// A Redis URL the client will take, checked here so the error names the option (the URL itself stays out: it may
/// hold a password).
fn redis_url(name: &'static str, url: &str) -> Result<String> {
  const SCHEMES: [&str; 7] = ["redis", "rediss", "unix", "redis+unix", "valkey", "valkeys", "valkey+unix"];
  let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
  match scheme {
    Some(scheme) if SCHEMES.contains(&scheme.as_str()) => Ok(url.to_owned()),
    _ => {
      let reason = "must start with redis://, rediss:// or unix:// (valkey:// works too)".into();
      Err(StoreError::InvalidOption { name, reason })
    }
  }
}

impl S3Settings {
  pub(crate) fn config(&self) -> Result<S3Config> {
    let invalid = |name, reason: &str| StoreError::InvalidOption { name, reason: reason.into() };
    let (endpoint, default_region) = match (&self.r2_account_id, &self.endpoint) {
      (Some(_), Some(_)) => return Err(invalid("s3.r2AccountId", "give r2AccountId or endpoint, not both")),
      (Some(id), None) => (Some(S3Config::r2_endpoint(id)), "auto"),
      (None, endpoint) => (endpoint.clone(), "us-east-1"),
    };
    let credentials = match (&self.access_key_id, &self.secret_access_key) {
      (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
      (None, None) => None,
      _ => return Err(invalid("s3.accessKeyId", "give both accessKeyId and secretAccessKey, or neither")),
    };
    Ok(S3Config {
      endpoint,
      region: self.region.clone().unwrap_or_else(|| default_region.into()),
      bucket: self.bucket.clone(),
      prefix: self.prefix.clone().unwrap_or_else(|| S3Config::DEFAULT_PREFIX.into()),
      force_path_style: self.force_path_style.unwrap_or(false),
      credentials,
      timeout: Duration::from_millis(whole("s3.timeoutMs", self.timeout_ms, 1.0..=3_600_000.0)?.unwrap_or(30_000)),
    })
  }
}

#[cfg(test)]
mod sentinel_tests {
  use super::*;

  fn sentinel(f: impl FnOnce(&mut RedisSettings)) -> Result<RedisConfig> {
    let mut s = RedisSettings {
      sentinels: Some(vec!["10.0.0.1:26379".into(), "h2".into()]),
      name: Some("mymaster".into()),
      ..RedisSettings::default()
    };
    f(&mut s);
    s.config()
  }

  #[test]
  fn sentinel_settings_become_a_sentinel_target() {
    let config = sentinel(|s| {
      s.password = Some("s3cret".into());
      s.min_replicas = Some(2.0);
    })
    .unwrap();
    let RedisTarget::Sentinel(t) = &config.target else { panic!("not sentinel") };
    assert_eq!(t.sentinels, [("10.0.0.1".to_string(), 26379), ("h2".to_string(), 26379)]);
    assert_eq!((t.name.as_str(), t.password.as_deref(), t.tls), ("mymaster", Some("s3cret"), false));
    assert_eq!((config.min_replicas, config.replica_timeout), (Some(2), Duration::from_secs(2)));
    assert_eq!(sentinel(|_| {}).unwrap().min_replicas, None, "unset: the tier's default");
    let short = sentinel(|s| s.command_timeout_ms = Some(1000.0)).unwrap();
    assert_eq!(short.replica_timeout, Duration::from_millis(500));
  }

  #[test]
  fn bad_sentinel_settings_are_option_errors() {
    type Change = Box<dyn Fn(&mut RedisSettings)>;
    let cases: Vec<(&str, Change)> = vec![
      ("redis.name", Box::new(|s| s.name = None)),
      ("redis.sentinels", Box::new(|s| s.sentinels = Some(vec!["h:0".into()]))),
      ("redis", Box::new(|s| s.url = Some("redis://h".into()))),
      ("redis.minReplicas", Box::new(|s| s.min_replicas = Some(-1.0))),
      ("redis.minReplicas", Box::new(|s| s.min_replicas = Some(1.5))),
      ("redis.db", Box::new(|s| s.db = Some(-2.0))),
    ];
    for (name, f) in cases {
      match sentinel(f) {
        Err(StoreError::InvalidOption { name: got, .. }) => assert_eq!(got, name),
        other => panic!("{name}: {:?}", other.map(|_| ())),
      }
    }
    let url = RedisSettings { url: Some("redis://h".into()), password: Some("x".into()), ..RedisSettings::default() };
    assert!(matches!(url.config(), Err(StoreError::InvalidOption { name: "redis.password", .. })));
    for bad in ["http://u:secret@h:6379", "h:6379", ""] {
      let err = RedisSettings { url: Some(bad.into()), ..RedisSettings::default() }.config().err().unwrap();
      assert_eq!(
        err.to_string(),
        "invalid option redis.url: must start with redis://, rediss:// or unix:// (valkey:// works too)"
      );
    }
    let nodes = RedisSettings { nodes: Some(vec!["redis://a:1".into(), "b:2".into()]), ..RedisSettings::default() };
    assert!(matches!(nodes.config(), Err(StoreError::InvalidOption { name: "redis.nodes", .. })));
    assert!(RedisSettings { url: Some("UNIX:///tmp/r.sock".into()), ..RedisSettings::default() }.config().is_ok());
  }

  #[test]
  fn the_tier_refuses_a_wait_it_cannot_keep() {
    let cluster =
      RedisSettings { nodes: Some(vec!["redis://h:1".into()]), min_replicas: Some(1.0), ..RedisSettings::default() };
    let err = RedisTier::open(cluster.config().unwrap()).unwrap_err();
    assert!(err.to_string().contains("minReplicas"), "{err}");
    let slow =
      RedisSettings { url: Some("redis://h".into()), replica_timeout_ms: Some(10_000.0), ..RedisSettings::default() };
    assert_eq!(RedisTier::open(slow.config().unwrap()).unwrap_err().code(), "ERR_INVALID_OPTION");
    let ok = sentinel(|_| {}).unwrap();
    assert!(RedisTier::open(ok).is_ok());
  }
}
