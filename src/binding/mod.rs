//! The Node-facing edge: converts JS options and arguments into core types and core errors into JS errors
//! with a stable `code`. No policy lives here.

mod cli;
mod fleet;
mod import;
mod js;
mod options;
mod types;

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use self::js::{as_argument, js_error, notify, promise, read_args, report, reporter, strict_optional, transfer_args};
use self::js::{ErrorReport, Functions};
use self::options::{reject_save_errors, RustStoreOptions};
use self::types::{
  BackupStatus, BackupVersion, ExtractArgs, LeaseOptions, MetricsAddress, ProfileArgs, SaveArgs, SessionArgs,
  StoreStats, StoredSession, TransferSummary,
};
use crate::error::StoreError;
use crate::settings::Settings;
use crate::store::{Pick, Store};
use crate::transfer::{Progress, Transfer};

type Core<T> = std::result::Result<T, StoreError>;

/// The constructor's options object, read strictly; absent, `undefined` and `null` mean all defaults.
fn read_options<'a>(env: &Env, options: Option<Unknown<'a>>) -> Result<(RustStoreOptions, Functions<'a>)> {
  strict_optional(env, options, "").map_err(|e| js_error(env, &e))
}

/// A whatsapp-web.js RemoteAuth store: `new RemoteAuth({ store: new RustStore(), backupSyncIntervalMs })`.
#[napi]
pub struct RustStore {
  store: Arc<Store>,
  reject_save_errors: bool,
  on_error: Option<Rc<FunctionRef<Unknown<'static>, Unknown<'static>>>>,
  /// Stops the low-disk watch.
  disk_watch: Option<tokio::sync::watch::Sender<bool>>,
  metrics: Arc<crate::metrics::Exporter>,
  /// Stops the metrics port.
  metrics_stop: Option<tokio::sync::watch::Sender<bool>>,
  /// Where the metrics port listens (its port picked by the system for `metricsPort: 0`).
  metrics_address: Option<std::net::SocketAddr>,
}

#[napi]
impl RustStore {
  #[napi(constructor, ts_args_type = "options?: RustStoreOptions | undefined | null")]
  pub fn new(env: &Env, options: Option<Unknown>) -> Result<Self> {
    let (options, functions) = read_options(env, options)?;
    Self::build(env, &options, &functions, Settings::from(&options))
  }

  /// A store configured from the environment: `REDIS_URL`, `SESSION_BACKUP_ENABLED`, `SESSION_BACKUP_INTERVAL_MS`,
  /// `R2_ACCOUNT_ID` / `R2_ENDPOINT` / `R2_ACCESS_KEY_ID` / `R2_SECRET_ACCESS_KEY` / `R2_BUCKET`, the same with
  /// `S3_` (plus `S3_REGION`, `S3_PREFIX`, `S3_FORCE_PATH_STYLE`), `SESSION_STORE_DIR`. `options` win over them.
  #[napi(factory, ts_args_type = "options?: RustStoreOptions | undefined | null")]
  pub fn from_env(env: &Env, options: Option<Unknown>) -> Result<Self> {
    let (options, functions) = read_options(env, options)?;
    let settings = crate::settings::fill_from_env(Settings::from(&options)).map_err(|e| js_error(env, &e))?;
    Self::build(env, &options, &functions, settings)
  }

  fn build(env: &Env, options: &RustStoreOptions, functions: &Functions, settings: Settings) -> Result<Self> {
    let (on_error, background) = match options.on_error {
      None => (None, None),
      Some(f) => {
        let f = functions.get(f);
        let direct: Function<Unknown<'static>, Unknown<'static>> = unsafe { f.cast() }?;
        let threadsafe: Function<ErrorReport, Unknown<'static>> = unsafe { f.cast() }?;
        let background = threadsafe.build_threadsafe_function().weak::<true>().callee_handled::<false>().build()?;
        (Some(Rc::new(direct.create_ref()?)), Some(Arc::new(background)))
      }
    };
    let reject_save_errors = reject_save_errors(options).map_err(|e| js_error(env, &e))?;
    let alert = settings.disk_alert.as_ref().map(|d| d.alert()).transpose().map_err(|e| js_error(env, &e))?;
    let store = settings.build_store(reporter(background.clone())).map_err(|e| js_error(env, &e))?;
    let metrics_report = background.clone();
    let disk_watch = alert.map(|alert| {
      // Ends when `close()` says so or this object is collected (the sender drops).
      let (stop, stopped) = tokio::sync::watch::channel(false);
      let report = move |err: &StoreError| notify(background.as_deref(), None, err, "disk alert");
      napi::bindgen_prelude::spawn(alert.watch(store.data_path().to_path_buf(), store.clone(), stopped, report));
      stop
    });
    let min_free_bytes = settings.min_free_bytes().map_err(|e| js_error(env, &e))?;
    let metrics = Arc::new(crate::metrics::Exporter { store: store.clone(), min_free_bytes });
    let listener = settings.metrics_listener().map_err(|e| js_error(env, &e))?;
    let metrics_address = listener.as_ref().and_then(|l| l.local_addr().ok());
    let metrics_stop = listener.map(|listener| {
      let (stop, stopped) = tokio::sync::watch::channel(false);
      let (exporter, background) = (metrics.clone(), metrics_report);
      napi::bindgen_prelude::spawn(async move {
        if let Err(err) = crate::metrics::serve(listener, exporter, stopped).await {
          notify(background.as_deref(), None, &err, "metrics port");
        }
      });
      stop
    });
    let store = Arc::new(store);
    Ok(Self { store, reject_save_errors, on_error, disk_watch, metrics, metrics_stop, metrics_address })
  }

  /// True when the session is stored. Rejects (never answers false) when the store cannot be asked,
  /// since RemoteAuth would otherwise start a fresh login over the stored one.
  #[napi(ts_args_type = "args: SessionArgs")]
  pub fn session_exists<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, bool>> {
    let (store, args) = (self.store.clone(), read_args::<SessionArgs>(env, args));
    promise(env, async move { store.session_exists(&args?.session).await }, |v| v)
  }

  /// Stores the zip RemoteAuth wrote for `session`. Resolves with what was stored, or `null` after reporting
  /// a failure (see `saveErrors`). The previous copy stays until the new one is durable.
  #[napi(ts_args_type = "args: SaveArgs", ts_return_type = "Promise<StoredSession | null>")]
  pub fn save<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, Option<StoredSession>>> {
    let (store, args) = (self.store.clone(), read_args::<SaveArgs>(env, args));
    let on_error = self.on_error.clone();
    // Bad arguments (this call's saveErrors included) follow the store's own setting.
    let reject = match args.as_ref().map(|a| a.save_errors.as_deref()) {
      Ok(Some("reject")) => true,
      Ok(Some("report")) => false,
      _ => self.reject_save_errors,
    };
    let work = async move {
      let args = args?;
      if let Some(other) = args.save_errors.as_deref().filter(|v| !matches!(*v, "report" | "reject")) {
        return Err(StoreError::InvalidArgument(format!("saveErrors must be 'report' or 'reject', not {other:?}")));
      }
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

  /// Stores the profile folder `dir` as `session` with no zip: its kept folders (`keep`) are read and compressed
  /// off the JS thread, each LevelDB as one consistent snapshot, and stored like `save` (every tier, backups,
  /// encryption, leases). Always rejects on failure (`ERR_PROFILE_CHANGING` when the profile kept changing under
  /// the read); the previous copy stays until the new one is durable. A failed backup after the primary has it is
  /// reported (`onError`), not thrown.
  #[napi(ts_args_type = "args: ProfileArgs")]
  pub fn save_profile<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, StoredSession>> {
    let (store, args) = (self.store.clone(), read_args::<ProfileArgs>(env, args));
    let on_error = self.on_error.clone();
    let work = async move {
      let args = args?;
      store.save_dir(&args.session, Path::new(&args.dir)).await
    };
    env.spawn_future_with_callback(async move { Ok(work.await) }, move |env, done| match done {
      Ok(saved) => {
        if let Some(err) = &saved.backup_error {
          report(env, on_error.as_deref(), err);
        }
        Ok(StoredSession::from(saved.info))
      }
      Err(err) => Err(js_error(env, &err)),
    })
  }

  /// Replaces the profile folder `dir` with the stored session, with no zip: written into a fresh sibling
  /// folder, fsynced, then swapped into place, so the folder is the old profile or the new one, never a mix.
  /// Reads sessions saved either way (`save` or `saveProfile`). Rejects `ERR_SESSION_NOT_FOUND` (the folder
  /// untouched) when nothing is stored.
  /// Rejects `ERR_INVALID_ARG`, touching nothing, a `dir` that is empty, `/`, or is or holds the cwd, `dataPath`
  /// or the store's folder (through links too). A `dir` that is a link is restored through, into its target.
  /// Restores of one folder take turns, across processes too (a lock file beside it while one runs).
  #[napi(ts_args_type = "args: ProfileArgs")]
  pub fn restore_profile<'env>(
    &self,
    env: &'env Env,
    args: Option<Unknown>,
  ) -> Result<PromiseRaw<'env, StoredSession>> {
    let (store, args) = (self.store.clone(), read_args::<ProfileArgs>(env, args));
    let work = async move {
      let args = args?;
      store.restore_dir(&args.session, Path::new(&args.dir)).await
    };
    promise(env, work, StoredSession::from)
  }

  /// Writes the stored session as a zip to exactly `path`, atomically, after verifying its checksum. With
  /// `version` (an id from `listBackups`) or `at` (ms), writes that backup version instead: point in time.
  #[napi(ts_args_type = "args: ExtractArgs")]
  pub fn extract<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, StoredSession>> {
    let (store, args) = (self.store.clone(), read_args::<ExtractArgs>(env, args));
    let work = async move {
      let args = args?;
      let at_ms =
        crate::settings::whole("at", args.at, 0.0..=crate::settings::MAX_SAFE_INTEGER).map_err(as_argument)?;
      if args.version.is_some() && at_ms.is_some() {
        return Err(StoreError::InvalidArgument("give version or at, not both".into()));
      }
      let pick = Pick { version: args.version, at_ms };
      store.extract_version(&args.session, Path::new(&args.path), &pick).await
    };
    promise(env, work, StoredSession::from)
  }

  /// The session's backup versions, oldest first (empty without a backup tier).
  #[napi]
  pub fn list_backups<'env>(&self, env: &'env Env, session: String) -> Result<PromiseRaw<'env, Vec<BackupVersion>>> {
    let store = self.store.clone();
    promise(env, async move { store.backup_versions(&session).await }, |v| {
      v.into_iter().map(BackupVersion::from).collect()
    })
  }

  /// Removes the session. Deleting a session that is not stored succeeds.
  #[napi(ts_args_type = "args: SessionArgs", ts_return_type = "Promise<void>")]
  pub fn delete<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, ()>> {
    let (store, args) = (self.store.clone(), read_args::<SessionArgs>(env, args));
    promise(env, async move { store.delete(&args?.session).await }, |v| v)
  }

  /// Warms the primary from the backups (every session's newest good version, never over a newer primary
  /// copy), for a service start.
  #[napi(ts_args_type = "args?: TransferArgs")]
  pub fn restore_all<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, TransferSummary>> {
    self.bulk(env, args, |store, concurrency, progress| async move { store.restore_all(concurrency, progress).await })
  }

  /// Backs up every session of the primary.
  #[napi(ts_args_type = "args?: TransferArgs")]
  pub fn backup_all<'env>(&self, env: &'env Env, args: Option<Unknown>) -> Result<PromiseRaw<'env, TransferSummary>> {
    self.bulk(env, args, |store, concurrency, progress| async move { store.backup_all(concurrency, progress).await })
  }

  /// Stops the backup timer and backs up every session saved since its last backup. Call it before the
  /// process exits. Later saves back themselves up within the save.
  #[napi]
  pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, TransferSummary>> {
    for stop in self.disk_watch.iter().chain(&self.metrics_stop) {
      let _ = stop.send(true);
    }
    let store = self.store.clone();
    promise(env, async move { Ok(store.close().await) }, TransferSummary::from)
  }

  /// What the backups have been doing; `null` without a backup tier behind a primary.
  #[napi]
  pub fn backup_status(&self) -> Option<BackupStatus> {
    self.store.backup_stats().map(BackupStatus::from)
  }

  /// Sessions and bytes per tier, average and largest session, free disk under `dataPath`, backup lag: the
  /// figures of `wwebjs-rust-store stats`. Lists every tier, so call it for monitoring, not on every request.
  #[napi]
  pub fn stats<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, StoreStats>> {
    let store = self.store.clone();
    promise(env, async move { store.stats().await }, StoreStats::from)
  }

  /// The Prometheus text exposition (content type `text/plain; version=0.0.4`): what this store counted
  /// (saves, backups, restore fallbacks, leases) and what the tiers say now (reachability, sizes, Redis memory,
  /// disk, each session's newest backup). Serve it from your HTTP server's `/metrics`, or set `metricsPort`.
  /// Never rejects for a tier that is down: `wwebjs_rust_store_tier_up` says so.
  #[napi]
  pub fn metrics<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, String>> {
    let metrics = self.metrics.clone();
    promise(env, async move { metrics.render().await }, |text| text)
  }

  /// Where the metrics port (`metricsPort`) listens, `/metrics`, `/healthz` and `/readyz` alike: with
  /// `metricsPort: 0` the only way to learn the port the system picked. `null` without `metricsPort`.
  #[napi]
  pub fn metrics_address(&self) -> Option<MetricsAddress> {
    self.metrics_address.map(|addr| MetricsAddress {
      host: addr.ip().to_string(),
      port: u32::from(addr.port()),
      url: format!("http://{addr}"),
    })
  }

  /// Takes the session's lease (one owner across replicas; Redis `SET NX PX`, fenced by a token) and resolves its
  /// token. From then on this store's saves of the session land only while it holds the lease
  /// (`ERR_LEASE_LOST` otherwise). Rejects `ERR_LEASE_HELD` when another owner holds it.
  #[napi(ts_args_type = "session: string, options?: LeaseOptions")]
  pub fn acquire_lease<'env>(
    &self,
    env: &'env Env,
    session: String,
    options: Option<Unknown>,
  ) -> Result<PromiseRaw<'env, String>> {
    let (store, ttl) = (self.store.clone(), lease_ttl(env, options));
    promise(env, async move { store.acquire_lease(&session, ttl?).await }, |token| token)
  }

  /// Extends the lease: resolves `'renewed'`, or `'retaken'` when it had expired (the store was unreachable for
  /// longer than its ttl) and nobody else took it since, so it is this token's again. Rejects `ERR_LEASE_LOST`
  /// when another owner took it since.
  #[napi(
    ts_args_type = "session: string, token: string, options?: LeaseOptions",
    ts_return_type = "Promise<'renewed' | 'retaken'>"
  )]
  pub fn renew_lease<'env>(
    &self,
    env: &'env Env,
    session: String,
    token: String,
    options: Option<Unknown>,
  ) -> Result<PromiseRaw<'env, &'static str>> {
    let (store, ttl) = (self.store.clone(), lease_ttl(env, options));
    promise(env, async move { store.renew_lease(&session, &token, ttl?).await }, |state| match state {
      crate::tier::LeaseState::Retaken => "retaken",
      _ => "renewed",
    })
  }

  /// Gives the lease up (succeeds if it was already lost).
  #[napi(ts_return_type = "Promise<void>")]
  pub fn release_lease<'env>(&self, env: &'env Env, session: String, token: String) -> Result<PromiseRaw<'env, ()>> {
    let store = self.store.clone();
    promise(env, async move { store.release_lease(&session, &token).await }, |v| v)
  }

  /// Imports every session of another RemoteAuth store: a folder of `<session>.zip` files, `s3://bucket/prefix/`
  /// (wwebjs-aws-s3's layout) or `redis://…` keys (`pattern`), each checked as `save` checks a zip and read back
  /// after the write. A dry run unless `execute`; a repeated run copies only what changed; the source is only read.
  /// Resolves a report (a failing entry is in it with its code); rejects only when the source cannot be listed.
  #[napi(ts_args_type = "source: string, options?: ImportOptions", ts_return_type = "Promise<ImportReport>")]
  pub fn import_from<'env>(
    &self,
    env: &'env Env,
    source: String,
    options: Option<Unknown>,
  ) -> Result<PromiseRaw<'env, import::ImportReport>> {
    let (store, opts) = (self.store.clone(), import::import_options(env, options, &source));
    promise(env, async move { crate::import::import_from(&store, &source, &opts?, None).await }, From::from)
  }

  /// Writes every stored session (or `sessions`; or each one's backup at `at`) as the RemoteAuth zip `extract`
  /// writes, to a folder (`<session>.zip`) or `s3://bucket/prefix/` (wwebjs-aws-s3's layout).
  #[napi(ts_args_type = "target: string, options?: ExportOptions", ts_return_type = "Promise<ExportReport>")]
  pub fn export_to<'env>(
    &self,
    env: &'env Env,
    target: String,
    options: Option<Unknown>,
  ) -> Result<PromiseRaw<'env, import::ExportReport>> {
    let (store, opts) = (self.store.clone(), import::export_options(env, options, &target));
    promise(env, async move { crate::import::export_to(&store, &target, &opts?, None).await }, From::from)
  }

  /// Joins a fleet of workers sharing this store's Redis: sessions are shared out over the live workers by
  /// capacity, each started through its lease (`onStart`) and stopped (`onStop`) when it moves, and a dead
  /// worker's sessions start elsewhere within `ttlMs + renewEveryMs`. Throws ERR_INVALID_OPTION for settings
  /// that break the timing rule. See docs/fleet.md.
  #[napi(ts_args_type = "options: FleetOptions")]
  pub fn fleet(&self, env: &Env, options: Option<Unknown>) -> Result<fleet::JsFleet> {
    fleet::join(env, self.store.clone(), options)
  }

  /// Every stored session with its sizes.
  #[napi]
  pub fn list_sessions<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Vec<StoredSession>>> {
    let store = self.store.clone();
    promise(env, async move { store.list().await }, |v| v.into_iter().map(StoredSession::from).collect())
  }
}

/// `{ ttlMs }`, read strictly: a lease with a mistyped key would otherwise run on the default ttl unnoticed.
fn lease_ttl(env: &Env, options: Option<Unknown>) -> Core<std::time::Duration> {
  let (options, _) = strict_optional::<LeaseOptions>(env, options, "")?;
  let ms = crate::settings::whole("ttlMs", options.ttl_ms, 1.0..=86_400_000.0)?;
  Ok(std::time::Duration::from_millis(ms.unwrap_or(30_000)))
}

impl RustStore {
  /// `restoreAll` / `backupAll`: reads `{ concurrency, onProgress }`, runs `run` on the runtime.
  fn bulk<'env, F, Fut>(
    &self,
    env: &'env Env,
    args: Option<Unknown>,
    run: F,
  ) -> Result<PromiseRaw<'env, TransferSummary>>
  where
    F: FnOnce(Arc<Store>, usize, Option<Progress>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Core<Transfer>> + Send + 'static,
  {
    let (store, args) = (self.store.clone(), transfer_args(env, args));
    promise(
      env,
      async move {
        let (concurrency, progress) = args?;
        run(store, concurrency, progress).await
      },
      TransferSummary::from,
    )
  }
}
