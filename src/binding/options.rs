//! Constructor options as JS passes them, and their conversion into core configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::Core;
use crate::archive::{self, PackOptions};
use crate::backup::Backups;
use crate::error::StoreError;
use crate::scheduler::Reporter;
use crate::store::{BackupMode, Store, StoreConfig};
use crate::tier::{LocalDirTier, RedisConfig, RedisTarget, RedisTier, RedisTls, S3Config, S3Tier, Tier};

/// Options for `new RustStore(options)`. Every field is optional.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct RustStoreOptions<'a> {
  /// RemoteAuth's `dataPath`, where whatsapp-web.js >= 1.34.5 writes `<session>.zip`.
  /// Default `./.wwebjs_auth` (RemoteAuth's own default), resolved against the current directory.
  pub data_path: Option<String>,
  /// Directory of the embedded store: one file per session, mode 0600. Default `./.wwebjs_store`.
  /// Not used when `redis` is given.
  pub dir: Option<String>,
  /// Keep sessions in Redis instead of the embedded directory.
  pub redis: Option<RedisOptions>,
  /// Back sessions up to an S3-compatible bucket (by a timer, or on every save: see `backupIntervalMs`).
  pub s3: Option<S3Options>,
  /// `'none'`: no primary tier, S3 alone holds the sessions. Default: `redis` if given, else `dir`.
  #[napi(ts_type = "'none'")]
  pub primary: Option<String>,
  /// Profile directories to keep, relative to the profile root.
  /// Default `["Default/IndexedDB", "Default/Local Storage"]`: what RemoteAuth restores a login from.
  pub keep: Option<Vec<String>>,
  /// Most entries a session zip may have. Default 20000.
  pub max_entries: Option<f64>,
  /// Most bytes the kept files of a zip may unpack to. Default 1 GiB.
  pub max_unpacked_bytes: Option<f64>,
  /// zstd level 1–22 for stored archives. Default 3 (within 0.4 % of gzip -6, 4x faster); 19 is a few % smaller, 50x slower.
  pub compression_level: Option<f64>,
  /// `'report'` (default): a failed `save` resolves `null` and goes to `onError`, because RemoteAuth calls
  /// `save` from a timer nobody awaits, where a rejection crashes Node. `'reject'`: it rejects instead.
  #[napi(ts_type = "'report' | 'reject'")]
  pub save_errors: Option<String>,
  /// Receives every error `save` reports instead of rejecting, and every failed interval backup (with
  /// `err.session`). Without it they go to stderr.
  #[napi(ts_type = "(err: Error & { code: string }) => void")]
  pub on_error: Option<Unknown<'a>>,
}

/// TLS settings for `rediss://` URLs.
#[napi(object)]
#[derive(Default)]
pub struct RedisTlsOptions {
  /// PEM file of the CA that signed the server's certificate, used instead of the system's roots.
  pub ca_file: Option<String>,
  /// Skip certificate and host-name checks. For tests and private networks only.
  pub insecure: Option<bool>,
}

/// Redis as the primary tier, in place of the embedded directory. Valkey works the same.
#[napi(object)]
pub struct RedisOptions {
  /// A single server: `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS) or `unix:///path/redis.sock`.
  /// Never appears in errors.
  pub url: Option<String>,
  /// A Redis Cluster: seed node URLs, e.g. `['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000']`.
  pub nodes: Option<Vec<String>>,
  pub tls: Option<RedisTlsOptions>,
  /// Prepended to every session name. Default `wa:session:`.
  pub prefix: Option<String>,
  /// Expiry of a stored session, refreshed on every save; 0 means never. Default 2592000 (30 days).
  pub ttl_seconds: Option<f64>,
  /// Default 5000.
  pub connect_timeout_ms: Option<f64>,
  /// Default 10000.
  pub command_timeout_ms: Option<f64>,
}

/// An S3-compatible bucket: the backup behind `redis` or `dir`, or the only tier with `primary: 'none'`.
#[napi(object)]
pub struct S3Options {
  /// Endpoint URL, e.g. `http://127.0.0.1:9000` (MinIO) or `https://<account>.r2.cloudflarestorage.com`.
  /// Omit for AWS S3.
  pub endpoint: Option<String>,
  /// Cloudflare R2 account id: sets `endpoint` to `https://<id>.r2.cloudflarestorage.com` and `region` to `auto`.
  pub r2_account_id: Option<String>,
  /// Default `us-east-1` (`auto` with `r2AccountId`).
  pub region: Option<String>,
  pub bucket: String,
  /// Key prefix. Default `whatsapp-sessions/`.
  pub prefix: Option<String>,
  /// Path-style URLs (`endpoint/bucket/key`), which MinIO, Garage and most self-hosted servers want. Default false.
  pub force_path_style: Option<bool>,
  /// Explicit credentials; without them the standard AWS chain (environment, profile, …) is used.
  pub access_key_id: Option<String>,
  pub secret_access_key: Option<String>,
  /// Versions kept per session. Default 3.
  pub keep_versions: Option<f64>,
  /// Back up by a timer every this many ms (the sessions saved since their last backup), or 0 to back up
  /// within every save. Default 600000 (10 minutes). Call `close()` before exit to flush.
  pub backup_interval_ms: Option<f64>,
  /// Per-request time limit. Default 30000.
  pub timeout_ms: Option<f64>,
}

/// A whole number in `range`, from a JS number (napi would wrap -1 into a huge u32 without a word).
pub(super) fn whole(name: &'static str, value: Option<f64>, range: std::ops::RangeInclusive<f64>) -> Core<Option<u64>> {
  match value {
    None => Ok(None),
    Some(v) if v.fract() == 0.0 && range.contains(&v) => Ok(Some(v as u64)),
    Some(v) => {
      let reason = format!("{v} is not a whole number from {} to {}", range.start(), range.end());
      Err(StoreError::InvalidOption { name, reason })
    }
  }
}

const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn resolve_path(path: Option<String>, default: &str) -> Core<PathBuf> {
  Ok(crate::store::cwd()?.join(path.as_deref().unwrap_or(default)))
}

fn redis_config(o: &RedisOptions) -> Core<RedisConfig> {
  let target = match (&o.url, &o.nodes) {
    (Some(url), None) => RedisTarget::Single(url.clone()),
    (None, Some(nodes)) => RedisTarget::Cluster(nodes.clone()),
    _ => return Err(StoreError::InvalidOption { name: "redis", reason: "give exactly one of url and nodes".into() }),
  };
  let mut config = RedisConfig::new(target);
  if let Some(tls) = &o.tls {
    config.tls =
      RedisTls { ca_file: tls.ca_file.as_deref().map(PathBuf::from), insecure: tls.insecure.unwrap_or(false) };
  }
  if let Some(prefix) = &o.prefix {
    config.prefix = prefix.clone();
  }
  // Ten years at most: beyond that Duration and Redis' PX overflow.
  match whole("redis.ttlSeconds", o.ttl_seconds, 0.0..=315_360_000.0)? {
    Some(0) => config.ttl = None,
    Some(secs) => config.ttl = Some(Duration::from_secs(secs)),
    None => {}
  }
  if let Some(ms) = whole("redis.connectTimeoutMs", o.connect_timeout_ms, 1.0..=3_600_000.0)? {
    config.connect_timeout = Duration::from_millis(ms);
  }
  if let Some(ms) = whole("redis.commandTimeoutMs", o.command_timeout_ms, 1.0..=3_600_000.0)? {
    config.command_timeout = Duration::from_millis(ms);
  }
  Ok(config)
}

fn pack_options(o: &RustStoreOptions) -> Core<PackOptions> {
  let mut pack = PackOptions::default();
  if let Some(keep) = &o.keep {
    pack.keep = archive::parse_keep(keep)?;
  }
  if let Some(n) = whole("maxEntries", o.max_entries, 1.0..=f64::from(u32::MAX))? {
    pack.limits.max_entries = n as u32;
  }
  if let Some(n) = whole("maxUnpackedBytes", o.max_unpacked_bytes, 1.0..=MAX_SAFE_INTEGER)? {
    pack.limits.max_unpacked_bytes = n;
  }
  if let Some(level) = whole("compressionLevel", o.compression_level, 1.0..=22.0)? {
    pack.level = level as i32;
  }
  Ok(pack)
}

fn s3_config(o: &S3Options) -> Core<S3Config> {
  let invalid = |name, reason: &str| StoreError::InvalidOption { name, reason: reason.into() };
  let (endpoint, default_region) = match (&o.r2_account_id, &o.endpoint) {
    (Some(_), Some(_)) => return Err(invalid("s3.r2AccountId", "give r2AccountId or endpoint, not both")),
    (Some(id), None) => (Some(S3Config::r2_endpoint(id)), "auto"),
    (None, endpoint) => (endpoint.clone(), "us-east-1"),
  };
  let credentials = match (&o.access_key_id, &o.secret_access_key) {
    (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
    (None, None) => None,
    _ => return Err(invalid("s3.accessKeyId", "give both accessKeyId and secretAccessKey, or neither")),
  };
  Ok(S3Config {
    endpoint,
    region: o.region.clone().unwrap_or_else(|| default_region.into()),
    bucket: o.bucket.clone(),
    prefix: o.prefix.clone().unwrap_or_else(|| S3Config::DEFAULT_PREFIX.into()),
    force_path_style: o.force_path_style.unwrap_or(false),
    credentials,
    timeout: Duration::from_millis(whole("s3.timeoutMs", o.timeout_ms, 1.0..=3_600_000.0)?.unwrap_or(30_000)),
  })
}

pub(super) fn build_store(o: &RustStoreOptions, report: Reporter) -> Core<Store> {
  let config = StoreConfig { data_path: resolve_path(o.data_path.clone(), ".wwebjs_auth")?, pack: pack_options(o)? };
  let primary: Option<Arc<dyn Tier>> = match (o.primary.as_deref(), &o.redis) {
    (Some("none"), _) => None,
    (Some(other), _) => {
      return Err(StoreError::InvalidOption { name: "primary", reason: format!("{other:?} is not 'none'") });
    }
    (None, Some(redis)) => Some(Arc::new(RedisTier::open(redis_config(redis)?)?)),
    (None, None) => Some(Arc::new(LocalDirTier::open(resolve_path(o.dir.clone(), ".wwebjs_store")?)?)),
  };
  let backups = match &o.s3 {
    Some(s3) => {
      let keep = whole("s3.keepVersions", s3.keep_versions, 1.0..=1000.0)?.unwrap_or(3) as usize;
      let every = whole("s3.backupIntervalMs", s3.backup_interval_ms, 0.0..=MAX_SAFE_INTEGER)?.unwrap_or(600_000);
      let mode = match every {
        0 => BackupMode::EverySave(report),
        ms => BackupMode::Interval(Duration::from_millis(ms), report),
      };
      Some((Backups::new(Arc::new(S3Tier::open(s3_config(s3)?)?), keep), mode))
    }
    None => None,
  };
  Store::new(primary, backups, config)
}

pub(super) fn reject_save_errors(o: &RustStoreOptions) -> Core<bool> {
  match o.save_errors.as_deref() {
    None | Some("report") => Ok(false),
    Some("reject") => Ok(true),
    Some(other) => {
      let reason = format!("{other:?} is neither 'report' nor 'reject'");
      Err(StoreError::InvalidOption { name: "saveErrors", reason })
    }
  }
}
