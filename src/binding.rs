//! The Node-facing edge: converts JS options and arguments into core types and core errors into JS errors
//! with a stable `code`. No policy lives here.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::archive::{self, PackOptions};
use crate::error::StoreError;

type Core<T> = std::result::Result<T, StoreError>;
use crate::backup::Backups;
use crate::store::Transfer;
use crate::store::{SessionInfo, Store, StoreConfig};
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
  /// Back sessions up to an S3-compatible bucket on every save.
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
  /// zstd level 1–22 for stored archives. Default 3 (as small as gzip -6, 4x faster); 19 is a few % smaller and 50x slower.
  pub compression_level: Option<f64>,
  /// `'report'` (default): a failed `save` resolves `null` and goes to `onError`, because RemoteAuth calls
  /// `save` from a timer nobody awaits, where a rejection crashes Node. `'reject'`: it rejects instead.
  #[napi(ts_type = "'report' | 'reject'")]
  pub save_errors: Option<String>,
  /// Receives every error `save` reports instead of rejecting. Without it they go to stderr.
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
  /// Per-request time limit. Default 30000.
  pub timeout_ms: Option<f64>,
}

/// What `restoreAll` or `backupAll` did.
#[napi(object)]
pub struct TransferSummary {
  pub sessions: u32,
  pub copied: u32,
  pub bytes: f64,
  pub failed: u32,
  /// `{ session, code, message }` of each failure.
  pub failures: Vec<TransferFailure>,
}

#[napi(object)]
pub struct TransferFailure {
  pub session: String,
  pub code: String,
  pub message: String,
}

impl From<Transfer> for TransferSummary {
  fn from(t: Transfer) -> Self {
    let failures: Vec<TransferFailure> = t
      .failures
      .into_iter()
      .map(|(key, err)| TransferFailure { session: key.to_string(), code: err.code().into(), message: err.to_string() })
      .collect();
    Self { sessions: t.sessions, copied: t.copied, bytes: t.bytes as f64, failed: failures.len() as u32, failures }
  }
}

/// `{ concurrency }` for `restoreAll` / `backupAll`.
#[napi(object)]
pub struct TransferArgs {
  /// Sessions copied at once. Default 16.
  pub concurrency: Option<f64>,
}

/// `{ session }` as RemoteAuth passes it to `sessionExists` and `delete`.
#[napi(object)]
pub struct SessionArgs {
  pub session: String,
}

/// `{ session }` as RemoteAuth passes it to `save`; `path` names the zip explicitly when given.
#[napi(object)]
pub struct SaveArgs {
  pub session: String,
  pub path: Option<String>,
}

/// `{ session, path }` as RemoteAuth passes it to `extract`: the zip is written to exactly `path`.
#[napi(object)]
pub struct ExtractArgs {
  pub session: String,
  pub path: String,
}

/// A stored session, as its header describes it.
#[napi(object)]
pub struct StoredSession {
  pub session: String,
  /// Bytes the store keeps for it.
  pub stored_bytes: f64,
  /// Size of the zip it was made from.
  pub zip_bytes: f64,
  /// Sum of its files' sizes.
  pub files_bytes: f64,
  /// Files and directories in it.
  pub entries: u32,
  /// When it was saved, in ms since the Unix epoch.
  pub saved_at: f64,
}

impl From<SessionInfo> for StoredSession {
  fn from(info: SessionInfo) -> Self {
    let h = info.header;
    Self {
      session: info.key.to_string(),
      stored_bytes: h.stored_bytes() as f64,
      zip_bytes: h.source_bytes as f64,
      files_bytes: h.files_bytes as f64,
      entries: h.entries,
      saved_at: h.created_ms as f64,
    }
  }
}

/// A JS Error whose `code` is the core error's code.
fn js_error(env: &Env, err: &StoreError) -> Error {
  let reason = err.to_string();
  match env.create_error(Error::new(Status::GenericFailure, reason.clone())) {
    Ok(mut obj) => {
      let _ = obj.set_named_property("code", err.code());
      Error::from(obj.to_unknown())
    }
    Err(_) => Error::new(Status::GenericFailure, format!("{}: {reason}", err.code())),
  }
}

/// Runs core work on the tokio runtime; the promise settles on the JS thread with a coded error on failure.
fn promise<'env, T, V>(
  env: &'env Env,
  work: impl Future<Output = Core<T>> + Send + 'static,
  to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'env, V>>
where
  T: Send + 'static,
  V: ToNapiValue,
{
  env.spawn_future_with_callback(async move { Ok(work.await) }, move |env, done| match done {
    Ok(value) => Ok(to_js(value)),
    Err(err) => Err(js_error(env, &err)),
  })
}

/// Converts a JS object argument; a wrong shape becomes `bad(reason)` (a rejection or a coded throw), never
/// napi's own uncoded error.
fn from_js<T: FromNapiValue>(env: &Env, value: Option<Unknown>, bad: impl Fn(String) -> StoreError) -> Core<T> {
  let value = value.ok_or_else(|| bad("expected an object".into()))?;
  // Checked first: reading a field of a non-object would leave a pending JS exception behind.
  if value.get_type().map_err(|e| StoreError::Internal(e.reason.clone()))? != ValueType::Object {
    return Err(bad("expected an object".into()));
  }
  unsafe { T::from_napi_value(env.raw(), value.raw()) }.map_err(|e| {
    // A failed field conversion may leave a pending exception; clear it so the caller sees our error.
    let mut pending = std::ptr::null_mut();
    unsafe { napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut pending) };
    bad(e.reason.clone())
  })
}

/// RemoteAuth's `{ session, ... }` argument; a wrong shape rejects with `ERR_INVALID_ARG`.
fn read_args<T: FromNapiValue>(env: &Env, args: Option<Unknown>) -> Core<T> {
  from_js(env, args, StoreError::InvalidArgument)
}

/// A whole number in `range`, from a JS number (napi would wrap -1 into a huge u32 without a word).
fn whole(name: &'static str, value: Option<f64>, range: std::ops::RangeInclusive<f64>) -> Core<Option<u64>> {
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
  match o.ttl_seconds {
    None => {}
    Some(0.0) => config.ttl = None,
    Some(s) if s.is_finite() && s >= 0.001 => config.ttl = Some(Duration::from_secs_f64(s)),
    Some(s) => {
      return Err(StoreError::InvalidOption {
        name: "redis.ttlSeconds",
        reason: format!("{s} is not 0 or a positive number"),
      })
    }
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

fn build_store(o: &RustStoreOptions) -> Core<Store> {
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
      Some(Backups::new(Arc::new(S3Tier::open(s3_config(s3)?)?), keep))
    }
    None => None,
  };
  Store::new(primary, backups, config)
}

fn reject_save_errors(o: &RustStoreOptions) -> Core<bool> {
  match o.save_errors.as_deref() {
    None | Some("report") => Ok(false),
    Some("reject") => Ok(true),
    Some(other) => {
      let reason = format!("{other:?} is neither 'report' nor 'reject'");
      Err(StoreError::InvalidOption { name: "saveErrors", reason })
    }
  }
}

/// A whatsapp-web.js RemoteAuth store: `new RemoteAuth({ store: new RustStore(), backupSyncIntervalMs })`.
#[napi]
pub struct RustStore {
  store: Arc<Store>,
  reject_save_errors: bool,
  on_error: Option<Rc<FunctionRef<Unknown<'static>, Unknown<'static>>>>,
}

#[napi]
impl RustStore {
  #[napi(constructor, ts_args_type = "options?: RustStoreOptions | undefined | null")]
  pub fn new(env: &Env, options: Option<Unknown>) -> Result<Self> {
    let options = match options {
      Some(value) if !matches!(value.get_type()?, ValueType::Undefined | ValueType::Null) => {
        let bad = |reason| StoreError::InvalidOption { name: "options", reason };
        from_js::<RustStoreOptions>(env, Some(value), bad).map_err(|e| js_error(env, &e))?
      }
      _ => RustStoreOptions::default(),
    };
    let store = build_store(&options).map_err(|e| js_error(env, &e))?;
    let reject_save_errors = reject_save_errors(&options).map_err(|e| js_error(env, &e))?;
    let on_error = match &options.on_error {
      None => None,
      Some(f) if f.get_type()? == ValueType::Function => {
        let f: Function<Unknown<'static>, Unknown<'static>> = unsafe { f.cast() }?;
        Some(Rc::new(f.create_ref()?))
      }
      Some(_) => {
        let reason = "must be a function".to_string();
        return Err(js_error(env, &StoreError::InvalidOption { name: "onError", reason }));
      }
    };
    Ok(Self { store: Arc::new(store), reject_save_errors, on_error })
  }

  /// True when the session is stored. Rejects (never answers false) when the store cannot be asked,
  /// since RemoteAuth would otherwise start a fresh login over the stored one.
  #[napi(ts_args_type = "args: SessionArgs", ts_return_type = "Promise<boolean>")]
  pub fn session_exists<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, bool>> {
    let (store, args) = (self.store.clone(), read_args::<SessionArgs>(env, args));
    promise(env, async move { store.session_exists(&args?.session).await }, |v| v)
  }

  /// Stores the zip RemoteAuth wrote for `session`. Resolves with what was stored, or `null` after reporting
  /// a failure (see `saveErrors`). The previous copy stays until the new one is durable.
  #[napi(ts_args_type = "args: SaveArgs", ts_return_type = "Promise<StoredSession | null>")]
  pub fn save<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, Option<StoredSession>>> {
    let (store, args) = (self.store.clone(), read_args::<SaveArgs>(env, args));
    let (reject, on_error) = (self.reject_save_errors, self.on_error.clone());
    let work = async move {
      let args = args?;
      store.save(&args.session, args.path.as_deref().map(Path::new)).await
    };
    env.spawn_future_with_callback(async move { Ok(work.await) }, move |env, done| match done {
      Ok(saved) => {
        // The primary has it: the save succeeded. A backup that failed is reported, never thrown.
        if let Some(err) = &saved.backup_error {
          report(env, on_error.as_deref(), err);
        }
        Ok(Some(StoredSession::from(saved.info)))
      }
      Err(err) if reject => Err(js_error(env, &err)),
      Err(err) => {
        report(env, on_error.as_deref(), &err);
        Ok(None)
      }
    })
  }

  /// Writes the stored session as a zip to exactly `path`, atomically, after verifying its checksum.
  #[napi(ts_args_type = "args: ExtractArgs", ts_return_type = "Promise<StoredSession>")]
  pub fn extract<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, StoredSession>> {
    let (store, args) = (self.store.clone(), read_args::<ExtractArgs>(env, args));
    let work = async move {
      let args = args?;
      store.extract(&args.session, Path::new(&args.path)).await
    };
    promise(env, work, StoredSession::from)
  }

  /// Removes the session. Deleting a session that is not stored succeeds.
  #[napi(ts_args_type = "args: SessionArgs", ts_return_type = "Promise<void>")]
  pub fn delete<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, ()>> {
    let (store, args) = (self.store.clone(), read_args::<SessionArgs>(env, args));
    promise(env, async move { store.delete(&args?.session).await }, |v| v)
  }

  /// Warms the primary from the backups (every session's newest good version), for a service start.
  #[napi(ts_args_type = "args?: TransferArgs", ts_return_type = "Promise<TransferSummary>")]
  pub fn restore_all<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, TransferSummary>> {
    let (store, concurrency) = (self.store.clone(), concurrency(env, args));
    promise(env, async move { store.restore_all(concurrency?).await }, TransferSummary::from)
  }

  /// Backs up every session of the primary.
  #[napi(ts_args_type = "args?: TransferArgs", ts_return_type = "Promise<TransferSummary>")]
  pub fn backup_all<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, TransferSummary>> {
    let (store, concurrency) = (self.store.clone(), concurrency(env, args));
    promise(env, async move { store.backup_all(concurrency?).await }, TransferSummary::from)
  }

  /// Every stored session with its sizes.
  #[napi(ts_return_type = "Promise<StoredSession[]>")]
  pub fn list_sessions<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Vec<StoredSession>>> {
    let store = self.store.clone();
    promise(env, async move { store.list().await }, |v| v.into_iter().map(StoredSession::from).collect())
  }
}

fn concurrency(env: &Env, args: Option<Unknown>) -> Core<usize> {
  let args = match args {
    Some(value) if !matches!(value.get_type(), Ok(ValueType::Undefined | ValueType::Null)) => {
      read_args::<TransferArgs>(env, Some(value))?
    }
    _ => TransferArgs { concurrency: None },
  };
  let bad = |e: StoreError| StoreError::InvalidArgument(e.to_string());
  Ok(whole("concurrency", args.concurrency, 1.0..=1024.0).map_err(bad)?.unwrap_or(16) as usize)
}

/// Hands a save failure to `onError`, or to stderr: never a rejection nobody catches.
fn report(env: &Env, on_error: Option<&FunctionRef<Unknown<'static>, Unknown<'static>>>, err: &StoreError) {
  let delivered = on_error.is_some_and(|f| {
    let js = js_error(env, err);
    let value = unsafe { ToNapiValue::to_napi_value(env.raw(), js) };
    let called = value.and_then(|raw| {
      let arg = unsafe { Unknown::from_raw_unchecked(env.raw(), raw) };
      f.borrow_back(env)?.call(arg)
    });
    called.is_ok()
  });
  if !delivered {
    eprintln!("[wwebjs-rust-store] save failed: {}: {err}", err.code());
  }
}
