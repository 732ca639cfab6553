//! `store.fleet(options)`: the JS edge of `crate::fleet`. The callbacks run on the JS thread through threadsafe
//! functions; a returned promise is awaited (the start is done once the app's client is started).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi_derive::napi;

use super::js::{js_error, promise, strict};
use crate::error::StoreError;
use crate::fleet::{self, FleetConfig, FleetEvent, Hooks, Lease, Pin, StopReason, Timing};
use crate::settings::{whole, Callback};
use crate::store::Store;

/// Options for `store.fleet(options)`: one worker of a fleet sharing this store's Redis (and bucket). Read
/// strictly (`settings::read_strict`): an unknown key is refused.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetOptions {
  /// This worker's id, unique in the fleet and stable across restarts (a pod or host name): 1–64 ASCII letters,
  /// digits, `-`, `_`, `.`. Default `os.hostname()` (a container's or pod's name).
  pub worker_id: Option<String>,
  /// Most sessions this worker runs at once; also its weight when sessions are shared out.
  pub capacity: f64,
  /// Heartbeat and lease ttl. A dead worker's sessions start elsewhere within `ttlMs + renewEveryMs` (plus
  /// `onStart`'s own time). Default 30000.
  pub ttl_ms: Option<f64>,
  /// How often the worker beats, renews its leases and checks its assignment. Default `ttlMs / 5`.
  pub renew_every_ms: Option<f64>,
  /// The time `onStop` has to finish when leases cannot be renewed (Redis unreachable): the worker starts
  /// stopping `ttlMs - stopTimeoutMs` after its last good renewal. Default `ttlMs / 3`. The rule
  /// `2 × renewEveryMs + stopTimeoutMs ≤ ttlMs` is enforced (ERR_INVALID_OPTION).
  pub stop_timeout_ms: Option<f64>,
  /// How long `onStart` may take. Past it the start is given up: `signal` aborts (reason `'timeout'`),
  /// `onEvent({ type: 'startTimedOut' })`, `onStop(session, 'timeout')` follows (as for any given-up start), and
  /// the session's lease is left to expire rather than released (the hung client may still run), so the session
  /// starts again, here or elsewhere, only `ttlMs` after its last renewal. At least `renewEveryMs`, at most 24 h.
  /// Default 120000 (or `renewEveryMs`, if longer).
  pub start_timeout_ms: Option<f64>,
  /// Starts in flight at once, and handoffs (drain, rebalance) in flight at once. Default 4.
  pub max_concurrent_starts: Option<f64>,
  /// `onEvent({ type: 'unassigned' })` once a session has had no live owner this long. Default `2 × ttlMs`.
  pub unassigned_alert_ms: Option<f64>,
  /// With a backup bucket (`s3`): how often this worker lists it for sessions the primary lost (evicted, a
  /// Redis restarted without persistence), which it then restores and runs. A listing costs one request per
  /// 1,000 objects; a session that leaves the primary between listings is looked up alone. At least
  /// `renewEveryMs`. Default 60000.
  pub backup_list_every_ms: Option<f64>,
  /// Fleets sharing one Redis are told apart by this name. Default `'default'`.
  pub group: Option<String>,
  /// Start the session's client (e.g. `new Client({ authStrategy: SafeRemoteAuth.forFleet(start, { store }) })`,
  /// then `initialize()`); resolve once it is started. The lease is already taken for this worker: forFleet
  /// adopts it on the same store, and the fleet renews and releases it.
  /// `signal` aborts (its `reason` `'lost' | 'close' | 'drain' | 'timeout'`) when the fleet gives the start up:
  /// cut off from Redis past the lease deadline, closing or draining, or past `startTimeoutMs`. `onStop` follows
  /// once `onStart` settled (or half of `stopTimeoutMs` after the abort), so stop what the start built; whatever
  /// `onStart` settles with after that is ignored.
  #[napi(ts_type = "(session: FleetSession & { signal: AbortSignal }) => Promise<unknown> | unknown")]
  pub on_start: Callback,
  /// Destroy the session's client (after its final backup); resolve once it is gone.
  #[napi(
    ts_type = "(session: string, reason: 'drain' | 'rebalance' | 'lost' | 'deleted' | 'paused' | 'close' | 'timeout') => Promise<unknown> | unknown"
  )]
  pub on_stop: Callback,
  /// Sessions unassigned too long, failed starts and stops, starts past `startTimeoutMs` (`startTimedOut`),
  /// sessions restored from the bucket (`restored`) or that could not be (`restoreFailed`).
  #[napi(ts_type = "(event: FleetEvent) => void")]
  pub on_event: Option<Callback>,
}

/// What `onStart` receives.
#[napi(object)]
pub struct FleetSession {
  /// The stored session name (`RemoteAuth-<clientId>`).
  pub session: String,
  /// RemoteAuth's `clientId` for it: the name without `RemoteAuth-`.
  pub client_id: String,
  /// The lease token this worker holds for the session.
  pub token: String,
  pub ttl_ms: f64,
  pub renew_every_ms: f64,
}

/// What `onEvent` receives.
#[napi(object, js_name = "FleetEvent")]
pub struct FleetEventInfo {
  #[napi(
    js_name = "type",
    ts_type = "'unassigned' | 'startFailed' | 'startTimedOut' | 'stopFailed' | 'duplicateWorker' | 'restored' | 'restoreFailed'"
  )]
  pub kind: String,
  /// The session concerned; `''` for `duplicateWorker` (it concerns the worker).
  pub session: String,
  /// `unassigned`: for how long, ms. `startTimedOut`: how long `onStart` ran before it was given up
  /// (`startTimeoutMs`).
  pub for_ms: Option<f64>,
  pub message: Option<String>,
  /// `duplicateWorker`: `ERR_FLEET_DUPLICATE_WORKER` (another live process has this `workerId`; this worker
  /// stopped what it ran, reason `lost`, and closed).
  pub code: Option<String>,
}

#[napi(object)]
pub struct FleetWorker {
  pub id: String,
  pub capacity: u32,
  pub draining: bool,
  /// Sessions it runs, as it last published.
  pub running: f64,
  pub handoffs: f64,
  pub failovers: f64,
}

#[napi(object)]
pub struct FleetUnassigned {
  pub session: String,
  pub for_ms: f64,
}

/// `fleet.status()`: this worker, and the fleet as of its last heartbeat.
#[napi(object)]
pub struct FleetStatus {
  pub worker_id: String,
  pub group: String,
  pub capacity: u32,
  pub draining: bool,
  /// The last heartbeat reached Redis.
  pub connected: bool,
  /// Sessions this worker runs (`onStart` resolved).
  pub running: Vec<String>,
  pub starting: u32,
  pub stopping: u32,
  /// Handoffs this worker completed (drain, rebalance), failovers it took over.
  pub handoffs: f64,
  pub failovers: f64,
  /// Live workers with their capacity and load.
  pub workers: Vec<FleetWorker>,
  /// Stored sessions, and how many are paused or pinned.
  pub sessions: f64,
  pub paused: f64,
  pub pinned: f64,
  /// Sessions with no live owner, and for how long this worker has seen them so.
  pub unassigned: Vec<FleetUnassigned>,
  pub ttl_ms: f64,
  pub renew_every_ms: f64,
}

impl From<fleet::FleetStatus> for FleetStatus {
  fn from(s: fleet::FleetStatus) -> Self {
    let workers = s.workers.into_iter().map(|w| FleetWorker {
      id: w.id,
      capacity: w.info.capacity,
      draining: w.info.draining,
      running: w.info.running as f64,
      handoffs: w.info.handoffs as f64,
      failovers: w.info.failovers as f64,
    });
    let unassigned = s.unassigned.into_iter().map(|u| FleetUnassigned { session: u.session, for_ms: u.for_ms as f64 });
    Self {
      worker_id: s.worker_id,
      group: s.group,
      capacity: s.capacity,
      draining: s.draining,
      connected: s.connected,
      running: s.running,
      starting: s.starting as u32,
      stopping: s.stopping as u32,
      handoffs: s.handoffs as f64,
      failovers: s.failovers as f64,
      workers: workers.collect(),
      sessions: s.sessions as f64,
      paused: s.paused as f64,
      pinned: s.pinned as f64,
      unassigned: unassigned.collect(),
      ttl_ms: s.ttl_ms as f64,
      renew_every_ms: s.renew_every_ms as f64,
    }
  }
}

/// What a callback returned: a promise to await, or anything else (done at once).
struct Returned(Option<Promise<UnknownReturnValue>>);

impl FromNapiValue for Returned {
  unsafe fn from_napi_value(env: napi::sys::napi_env, value: napi::sys::napi_value) -> Result<Self> {
    let mut is_promise = false;
    unsafe { napi::sys::napi_is_promise(env, value, &mut is_promise) };
    if !is_promise {
      return Ok(Self(None));
    }
    Ok(Self(Some(unsafe { Promise::from_napi_value(env, value) }?)))
  }
}
/// One `onStart` call: the session, and the fleet's side of its abort signal.
struct StartCall {
  session: FleetSession,
  abort: fleet::Abort,
}
type StartFn = ThreadsafeFunction<StartCall, Returned, StartArg, Status, false>;

/// The JS value built for `onStart` on the JS thread, handed straight to the call.
struct StartArg(napi::sys::napi_value);

impl ToNapiValue for StartArg {
  unsafe fn to_napi_value(_env: napi::sys::napi_env, value: Self) -> Result<napi::sys::napi_value> {
    Ok(value.0)
  }
}
type AbortFn = ThreadsafeFunction<String, UnknownReturnValue, String, Status, false, true>;

/// On the JS thread: `onStart`'s argument, with `signal` from a new `AbortController` that the fleet aborts (its
/// reason `'lost' | 'close' | 'drain' | 'timeout'`) when it gives the start up.
fn start_argument(env: &Env, call: StartCall) -> Result<StartArg> {
  let StartCall { session, abort } = call;
  let global = env.get_global()?;
  let ctor: Function<(), Unknown> = global.get_named_property("AbortController")?;
  let controller: Object = unsafe { ctor.new_instance(())?.cast() }?;
  let signal: Unknown = controller.get_named_property("signal")?;
  let abort_fn: Function<String, UnknownReturnValue> = controller.get_named_property("abort")?;
  let aborter: AbortFn =
    abort_fn.bind(controller)?.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
  napi::bindgen_prelude::spawn(async move {
    let mut abort = abort;
    // Ends with the start either way (the run is gone), so no task outlives it.
    if let Some(reason) = abort.outcome().await {
      aborter.call(reason.as_str().to_owned(), ThreadsafeFunctionCallMode::NonBlocking);
    }
  });
  let raw = unsafe { FleetSession::to_napi_value(env.raw(), session) }?;
  let mut arg = unsafe { Object::from_napi_value(env.raw(), raw) }?;
  arg.set_named_property("signal", signal)?;
  Ok(StartArg(arg.raw()))
}
type StopFn = ThreadsafeFunction<FnArgs<(String, String)>, Returned, FnArgs<(String, String)>, Status, false>;
type EventFn = ThreadsafeFunction<FleetEventInfo, UnknownReturnValue, FleetEventInfo, Status, false, true>;

/// The app's callbacks. Start and stop keep Node alive while the fleet runs; they go when the loop ends.
struct JsHooks {
  start: StartFn,
  stop: StopFn,
  event: Option<EventFn>,
}

async fn settled(returned: Result<Returned>) -> std::result::Result<(), String> {
  let message = |e: Error| if e.reason.is_empty() { format!("{}", e.status) } else { e.reason.clone() };
  match returned.map_err(message)?.0 {
    Some(promise) => promise.await.map(drop).map_err(message),
    None => Ok(()),
  }
}

#[async_trait]
impl Hooks for JsHooks {
  async fn start(&self, lease: Lease) -> std::result::Result<(), String> {
    let client_id = lease.session.strip_prefix("RemoteAuth-").unwrap_or(&lease.session).to_owned();
    let arg = FleetSession {
      client_id,
      session: lease.session,
      token: lease.token,
      ttl_ms: lease.ttl.as_millis() as f64,
      renew_every_ms: lease.renew_every.as_millis() as f64,
    };
    settled(self.start.call_async_catch(StartCall { session: arg, abort: lease.abort }).await).await
  }

  async fn stop(&self, session: String, reason: StopReason) -> std::result::Result<(), String> {
    settled(self.stop.call_async_catch((session, reason.as_str().to_owned()).into()).await).await
  }

  fn event(&self, event: FleetEvent) {
    let info = match event {
      FleetEvent::Unassigned { session, for_ms } => {
        FleetEventInfo { kind: "unassigned".into(), session, for_ms: Some(for_ms as f64), message: None, code: None }
      }
      FleetEvent::StartFailed { session, message } => {
        FleetEventInfo { kind: "startFailed".into(), session, for_ms: None, message: Some(message), code: None }
      }
      FleetEvent::StartTimedOut { session, after_ms } => FleetEventInfo {
        kind: "startTimedOut".into(),
        session,
        for_ms: Some(after_ms as f64),
        message: Some(format!("onStart did not resolve within startTimeoutMs ({after_ms} ms): given up")),
        code: None,
      },
      FleetEvent::StopFailed { session, message } => {
        FleetEventInfo { kind: "stopFailed".into(), session, for_ms: None, message: Some(message), code: None }
      }
      FleetEvent::Restored { session } => {
        FleetEventInfo { kind: "restored".into(), session, for_ms: None, message: None, code: None }
      }
      FleetEvent::RestoreFailed { session, message } => {
        FleetEventInfo { kind: "restoreFailed".into(), session, for_ms: None, message: Some(message), code: None }
      }
      FleetEvent::DuplicateWorker { id: _, code, message } => FleetEventInfo {
        kind: "duplicateWorker".into(),
        session: String::new(),
        for_ms: None,
        message: Some(message),
        code: Some(code.into()),
      },
    };
    let delivered = self
      .event
      .as_ref()
      .is_some_and(|f| f.call(info.clone_for_log(), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok);
    if !delivered {
      eprintln!(
        "[wwebjs-rust-store] fleet: {} {}{}",
        info.kind,
        info.session,
        info.message.map(|m| format!(": {m}")).unwrap_or_default()
      );
    }
  }
}

impl FleetEventInfo {
  fn clone_for_log(&self) -> Self {
    Self {
      kind: self.kind.clone(),
      session: self.session.clone(),
      for_ms: self.for_ms,
      message: self.message.clone(),
      code: self.code.clone(),
    }
  }
}

fn ms(name: &'static str, value: Option<f64>) -> std::result::Result<Option<Duration>, StoreError> {
  let ms = whole(name, value, 0.0..=86_400_000.0)?;
  Ok(ms.map(Duration::from_millis))
}

fn function<'a, Args: JsValuesTupleIntoVec, Ret: FromNapiValue>(
  value: Unknown<'a>,
) -> std::result::Result<Function<'a, Args, Ret>, StoreError> {
  unsafe { value.cast() }.map_err(|e| StoreError::Internal(e.reason.clone()))
}

/// `os.hostname()`, for a worker given no id (asked of Node, so it is exactly what the app would read).
fn hostname(env: &Env) -> Option<String> {
  let process: Object = env.get_global().ok()?.get_named_property("process").ok()?;
  let builtin: Function<String, Object> = process.get_named_property("getBuiltinModule").ok()?;
  let os = builtin.call("node:os".to_owned()).ok()?;
  let name: Function<(), String> = os.get_named_property("hostname").ok()?;
  name.call(()).ok()
}

fn config(options: &FleetOptions, env: &Env) -> std::result::Result<FleetConfig, StoreError> {
  let capacity = whole("fleet.capacity", Some(options.capacity), 1.0..=100_000.0)?.unwrap_or(1);
  let timing = Timing::new(
    ms("fleet.ttlMs", options.ttl_ms)?,
    ms("fleet.renewEveryMs", options.renew_every_ms)?,
    ms("fleet.stopTimeoutMs", options.stop_timeout_ms)?,
  )?;
  let starts = whole("fleet.maxConcurrentStarts", options.max_concurrent_starts, 1.0..=1000.0)?.unwrap_or(4);
  Ok(FleetConfig {
    group: options.group.clone().unwrap_or_else(|| "default".into()),
    worker_id: match &options.worker_id {
      Some(id) => id.clone(),
      None => hostname(env).or_else(|| std::env::var("HOSTNAME").ok()).ok_or_else(|| StoreError::InvalidOption {
        name: "fleet.workerId",
        reason: "not given, and the host name could not be read".into(),
      })?,
    },
    capacity: capacity as u32,
    timing,
    max_concurrent_starts: starts as usize,
    unassigned_alert: ms("fleet.unassignedAlertMs", options.unassigned_alert_ms)?.unwrap_or(timing.ttl * 2),
    backup_list_every: ms("fleet.backupListEveryMs", options.backup_list_every_ms)?
      .unwrap_or(FleetConfig::DEFAULT_BACKUP_LIST_EVERY.max(timing.renew_every)),
    start_timeout: ms("fleet.startTimeoutMs", options.start_timeout_ms)?
      .unwrap_or(FleetConfig::DEFAULT_START_TIMEOUT.max(timing.renew_every)),
  })
}

/// A worker of the fleet: `status()`, `drain()`, `close()`, and the per-session settings.
#[napi(js_name = "Fleet")]
pub struct JsFleet {
  fleet: fleet::Fleet,
  store: Arc<Store>,
  group: String,
}

/// Joins: reads the options (a coded throw when wrong) and spawns the worker's loop on the runtime.
pub(super) fn join(env: &Env, store: Arc<Store>, options: Option<Unknown>) -> Result<JsFleet> {
  let (options, functions) = strict::<FleetOptions>(env, options, "fleet").map_err(|e| js_error(env, &e))?;
  let built = (|| {
    let config = config(&options, env)?;
    let start = function::<FleetSession, Returned>(functions.get(options.on_start))?;
    let stop = function::<FnArgs<(String, String)>, Returned>(functions.get(options.on_stop))?;
    let event =
      options.on_event.map(|f| function::<FleetEventInfo, UnknownReturnValue>(functions.get(f))).transpose()?;
    let internal = |e: Error| StoreError::Internal(e.reason.clone());
    let hooks = JsHooks {
      start: start
        .build_threadsafe_function()
        .callee_handled::<false>()
        .build_callback(|ctx| start_argument(&ctx.env, ctx.value))
        .map_err(internal)?,
      stop: stop.build_threadsafe_function().callee_handled::<false>().build().map_err(internal)?,
      event: event
        .map(|f| f.build_threadsafe_function().weak::<true>().callee_handled::<false>().build())
        .transpose()
        .map_err(internal)?,
    };
    let group = config.group.clone();
    let (fleet, run) = fleet::Fleet::join((*store).clone(), config, Arc::new(hooks))?;
    Ok::<_, StoreError>((fleet, run, group))
  })();
  let (fleet, run, group) = built.map_err(|e| js_error(env, &e))?;
  napi::bindgen_prelude::spawn(run);
  Ok(JsFleet { fleet, store, group })
}

#[napi]
impl JsFleet {
  /// This worker and the fleet as of its last heartbeat: workers, capacity, sessions per worker, unassigned
  /// sessions and for how long, handoffs, failovers.
  #[napi]
  pub fn status(&self) -> FleetStatus {
    self.fleet.status().into()
  }

  /// Hands every session off (`onStop(session, 'drain')`, final backup, lease released, picked up by the others,
  /// a bounded number at a time) and resolves once this worker runs none. For SIGTERM in a deploy.
  #[napi(ts_return_type = "Promise<void>")]
  pub fn drain<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
    let fleet = self.fleet.clone();
    promise(
      env,
      async move {
        fleet.drain().await;
        Ok(())
      },
      |v| v,
    )
  }

  /// Stops every session (`onStop(session, 'close')`), leaves the fleet and resolves.
  #[napi(ts_return_type = "Promise<void>")]
  pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
    let fleet = self.fleet.clone();
    promise(
      env,
      async move {
        fleet.close().await;
        Ok(())
      },
      |v| v,
    )
  }

  /// Pins the session to one worker (it runs only there; unassigned while that worker is gone). Stored in
  /// Redis: every worker follows it at its next check.
  #[napi(ts_return_type = "Promise<void>")]
  pub fn pin<'env>(&self, env: &'env Env, session: String, worker_id: String) -> Result<PromiseRaw<'env, ()>> {
    self.set(env, session, Some(Pin::Worker(worker_id)))
  }

  /// Pauses the session: whoever runs it stops it (`'paused'`) and nobody starts it until `unpin`.
  #[napi(ts_return_type = "Promise<void>")]
  pub fn pause<'env>(&self, env: &'env Env, session: String) -> Result<PromiseRaw<'env, ()>> {
    self.set(env, session, Some(Pin::Paused))
  }

  /// Clears the session's pin or pause.
  #[napi(ts_return_type = "Promise<void>")]
  pub fn unpin<'env>(&self, env: &'env Env, session: String) -> Result<PromiseRaw<'env, ()>> {
    self.set(env, session, None)
  }
}

impl JsFleet {
  fn set<'env>(&self, env: &'env Env, session: String, pin: Option<Pin>) -> Result<PromiseRaw<'env, ()>> {
    let (store, group) = (self.store.clone(), self.group.clone());
    if let Some(Pin::Worker(id)) = &pin {
      if crate::tier::check_group(id).is_err() {
        return Err(js_error(env, &StoreError::InvalidArgument(format!("workerId {id:?} is not a worker id"))));
      }
    }
    promise(env, async move { fleet::set_pin(&store, &group, &session, pin).await }, |v| v)
  }
}
