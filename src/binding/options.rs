//! Constructor options as JS passes them, and their conversion into core configuration.

use napi_derive::napi;
use serde::Deserialize;

use super::Core;
use crate::error::StoreError;
use crate::settings::{Callback, DiskAlertSettings, EncryptionSettings, RedisSettings, S3Settings, Settings};

// The option structs below are read by `settings::read_strict` (serde, unknown keys refused), never by napi's
// own conversion; `#[napi(object)]` gives index.d.ts their types, so the two cannot drift apart.

/// Options for `new RustStore(options)`. Every field is optional.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RustStoreOptions {
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
  /// zstd level 1–22 of incremental backup chunks (default 3). Whole archives keep the deflate data of RemoteAuth's zip
  /// as it is, so this level never slows a save.
  pub compression_level: Option<f64>,
  /// `'report'` (default): a failed `save` resolves `null` and goes to `onError`, because RemoteAuth calls
  /// `save` from a timer nobody awaits, where a rejection crashes Node. `'reject'`: it rejects instead.
  #[napi(ts_type = "'report' | 'reject'")]
  pub save_errors: Option<String>,
  /// Receives every error `save` reports instead of rejecting, and every failed interval backup (with
  /// `err.session`). Without it they go to stderr.
  #[napi(ts_type = "(err: Error & { code: string }) => void")]
  pub on_error: Option<Callback>,
  /// POST a JSON alert to a webhook when free space under `dataPath` runs low.
  pub disk_alert: Option<DiskAlertOptions>,
  /// Encrypt every stored archive (XChaCha20-Poly1305) in every tier.
  pub encryption: Option<EncryptionOptions>,
  /// Serve Prometheus metrics (`GET /metrics`, what `metrics()` gives) on this port; 0 picks a free one.
  /// `fromEnv()`: `METRICS_PORT`. `close()` stops it.
  pub metrics_port: Option<f64>,
  /// The metrics port's IP address. Default `127.0.0.1`; `0.0.0.0` for a scraper on another host
  /// (session names appear in labels). `fromEnv()`: `METRICS_HOST`.
  pub metrics_host: Option<String>,
}

/// Keys are 32 random bytes in base64 (`openssl rand -base64 32`). They never appear in errors or logs.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EncryptionOptions {
  /// Writes every new archive; reads archives made with it.
  pub key: String,
  /// Older keys, still accepted for reading while `wwebjs-rust-store rotate-key` moves sessions to `key`.
  pub previous_keys: Option<Vec<String>>,
  /// Also read unencrypted sessions (stored before the key was set) until `rotate-key` has run. Default false:
  /// a plain archive is refused with ERR_DECRYPT, since anyone who can write to a tier can make one.
  pub accept_plain: Option<bool>,
}

/// A low-disk alert. The body is `{ event: 'low_disk', path, free_bytes, total_bytes, min_free_bytes, at }`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiskAlertOptions {
  /// `http://` or `https://` URL the alert is POSTed to. Never appears in errors.
  pub webhook_url: String,
  /// Alert below this many free bytes. Default 1 GiB.
  pub min_free_bytes: Option<f64>,
  /// How often free space is checked. Default 60000.
  pub check_interval_ms: Option<f64>,
  /// At most one alert per this many ms while space stays low. Default 3600000 (1 hour).
  pub repeat_interval_ms: Option<f64>,
}

/// TLS settings for `rediss://` URLs, and for Sentinel (where giving `tls` turns TLS on, to the sentinels and
/// the data nodes alike).
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisTlsOptions {
  /// PEM file of the CA that signed the server's certificate, used instead of the system's roots.
  pub ca_file: Option<String>,
  /// Skip certificate and host-name checks. For tests and private networks only.
  pub insecure: Option<bool>,
}

/// Redis as the primary tier, in place of the embedded directory. Valkey works the same. Give one of `url`,
/// `nodes` or `sentinels`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
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
  /// Redis Sentinel: the sentinels as `host:port` (port default 26379), e.g. `['10.0.0.1:26379', '10.0.0.2:26379']`.
  /// Writes go to the primary they name; after a failover the store finds the new one by itself.
  pub sentinels: Option<Vec<String>>,
  /// Sentinel: the monitored primary's name (`sentinel monitor <name> …`), e.g. `'mymaster'`.
  pub name: Option<String>,
  /// Sentinel: ACL user of the primary and replicas. Default none (the `default` user).
  pub username: Option<String>,
  /// Sentinel: password of the primary and replicas (`requirepass`). Never appears in errors.
  pub password: Option<String>,
  /// Sentinel: ACL user of the sentinels themselves.
  pub sentinel_username: Option<String>,
  /// Sentinel: password of the sentinels themselves (`requirepass` in sentinel.conf). Never appears in errors.
  pub sentinel_password: Option<String>,
  /// Sentinel: database number. Default 0.
  pub db: Option<f64>,
  /// A save (and a delete) counts as done only once `WAIT` reports this many replicas hold it; fewer within
  /// `replicaTimeoutMs` fails it with ERR_REDIS_REPLICAS. 0 turns the wait off. Default: with `sentinels`, 1 while
  /// the primary has a replica connected (0 when it has none), and 1 always for lease takes and renewals (a lease
  /// only the primary holds could be lost to a failover); with `url`, 0. Not with `nodes`.
  pub min_replicas: Option<f64>,
  /// How long a write waits for `minReplicas`; less than `commandTimeoutMs`. Default 2000 (or half of
  /// `commandTimeoutMs` if that is smaller).
  pub replica_timeout_ms: Option<f64>,
}

/// An S3-compatible bucket: the backup behind `redis` or `dir`, or the only tier with `primary: 'none'`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
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
  /// Also keep every version younger than this (ms before the newest), beyond `keepVersions`: point-in-time
  /// history. Default none.
  pub keep_within_ms: Option<f64>,
  /// Write each backup as content-defined chunks plus a small manifest: only chunks the bucket lacks are
  /// uploaded (a tenth of a whole archive or less per backup), and history costs little. Versions of both kinds
  /// are read either way, so this can be turned on (or off) at any time. Default false.
  pub incremental: Option<bool>,
  /// Back up by a timer every this many ms (the sessions saved since their last backup), or 0 to back up
  /// within every save. Default 600000 (10 minutes). Call `close()` before exit to flush.
  pub backup_interval_ms: Option<f64>,
  /// Per-request time limit. Default 30000.
  pub timeout_ms: Option<f64>,
}

impl From<&RustStoreOptions> for Settings {
  fn from(o: &RustStoreOptions) -> Self {
    Settings {
      data_path: o.data_path.clone(),
      dir: o.dir.clone(),
      redis: o.redis.as_ref().map(RedisSettings::from),
      s3: o.s3.as_ref().map(S3Settings::from),
      primary: o.primary.clone(),
      keep: o.keep.clone(),
      max_entries: o.max_entries,
      max_unpacked_bytes: o.max_unpacked_bytes,
      compression_level: o.compression_level,
      disk_alert: o.disk_alert.as_ref().map(|d| DiskAlertSettings {
        webhook_url: d.webhook_url.clone(),
        min_free_bytes: d.min_free_bytes,
        check_interval_ms: d.check_interval_ms,
        repeat_interval_ms: d.repeat_interval_ms,
      }),
      encryption: o.encryption.as_ref().map(|e| EncryptionSettings {
        key: e.key.clone(),
        previous_keys: e.previous_keys.clone().unwrap_or_default(),
        accept_plain: e.accept_plain.unwrap_or(false),
      }),
      metrics_port: o.metrics_port,
      metrics_host: o.metrics_host.clone(),
    }
  }
}

impl From<&RedisOptions> for RedisSettings {
  fn from(o: &RedisOptions) -> Self {
    let tls = o.tls.as_ref();
    RedisSettings {
      url: o.url.clone(),
      nodes: o.nodes.clone(),
      ca_file: tls.and_then(|t| t.ca_file.clone()),
      insecure: tls.and_then(|t| t.insecure),
      prefix: o.prefix.clone(),
      ttl_seconds: o.ttl_seconds,
      connect_timeout_ms: o.connect_timeout_ms,
      command_timeout_ms: o.command_timeout_ms,
      sentinels: o.sentinels.clone(),
      name: o.name.clone(),
      username: o.username.clone(),
      password: o.password.clone(),
      sentinel_username: o.sentinel_username.clone(),
      sentinel_password: o.sentinel_password.clone(),
      db: o.db,
      tls: tls.map(|_| true),
      min_replicas: o.min_replicas,
      replica_timeout_ms: o.replica_timeout_ms,
    }
  }
}

impl From<&S3Options> for S3Settings {
  fn from(o: &S3Options) -> Self {
    S3Settings {
      endpoint: o.endpoint.clone(),
      r2_account_id: o.r2_account_id.clone(),
      region: o.region.clone(),
      bucket: o.bucket.clone(),
      prefix: o.prefix.clone(),
      force_path_style: o.force_path_style,
      access_key_id: o.access_key_id.clone(),
      secret_access_key: o.secret_access_key.clone(),
      keep_versions: o.keep_versions,
      keep_within_ms: o.keep_within_ms,
      incremental: o.incremental,
      backup_interval_ms: o.backup_interval_ms,
      timeout_ms: o.timeout_ms,
    }
  }
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
