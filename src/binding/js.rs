//! The JS edge: coded errors, promises settled on the JS thread, argument conversion, error reporting.

use std::future::Future;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

use super::types::TransferArgs;
use super::Core;
use crate::error::StoreError;
use crate::scheduler::Reporter;
use crate::session::SessionKey;
use crate::settings::whole;
use crate::transfer::Progress;

/// A core error on its way to JS: becomes an `Error` with `code` (and `session`, for background failures).
pub struct ErrorReport {
  code: &'static str,
  message: String,
  session: Option<String>,
}

impl ErrorReport {
  fn new(err: &StoreError, session: Option<&SessionKey>) -> Self {
    Self { code: err.code(), message: err.to_string(), session: session.map(|s| s.to_string()) }
  }
}

impl ToNapiValue for ErrorReport {
  unsafe fn to_napi_value(raw_env: napi::sys::napi_env, report: Self) -> Result<napi::sys::napi_value> {
    let env = Env::from_raw(raw_env);
    let mut obj = env.create_error(Error::new(Status::GenericFailure, report.message))?;
    obj.set_named_property("code", report.code)?;
    if let Some(session) = report.session {
      obj.set_named_property("session", session)?;
    }
    Ok(obj.raw())
  }
}

/// A JS Error whose `code` is the core error's code.
pub(super) fn js_error(env: &Env, err: &StoreError) -> Error {
  match unsafe { ErrorReport::to_napi_value(env.raw(), ErrorReport::new(err, None)) } {
    Ok(raw) => Error::from(unsafe { Unknown::from_raw_unchecked(env.raw(), raw) }),
    Err(_) => Error::new(Status::GenericFailure, format!("{}: {err}", err.code())),
  }
}

/// Runs core work on the tokio runtime; the promise settles on the JS thread with a coded error on failure.
pub(super) fn promise<'env, T, V>(
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
pub(super) fn from_js<T: FromNapiValue>(
  env: &Env,
  value: Option<Unknown>,
  bad: impl Fn(String) -> StoreError,
) -> Core<T> {
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
pub(super) fn read_args<T: FromNapiValue>(env: &Env, args: Option<Unknown>) -> Core<T> {
  from_js(env, args, StoreError::InvalidArgument)
}

/// `{ concurrency, onProgress }` of `restoreAll` / `backupAll`.
pub(super) fn transfer_args(env: &Env, args: Option<Unknown>) -> Core<(usize, Option<Progress>)> {
  let args = match args {
    Some(value) if !matches!(value.get_type(), Ok(ValueType::Undefined | ValueType::Null)) => {
      read_args::<TransferArgs>(env, Some(value))?
    }
    _ => TransferArgs::default(),
  };
  let bad = |e: StoreError| StoreError::InvalidArgument(e.to_string());
  let concurrency = whole("concurrency", args.concurrency, 1.0..=1024.0).map_err(bad)?.unwrap_or(16) as usize;
  let progress: Option<Progress> = match args.on_progress {
    None => None,
    Some(f) if f.get_type().ok() == Some(ValueType::Function) => {
      let f: Function<FnArgs<(u32, u32)>, Unknown<'static>> = unsafe { f.cast() }.map_err(internal)?;
      let tsfn: ProgressCallback =
        f.build_threadsafe_function().weak::<true>().callee_handled::<false>().build().map_err(internal)?;
      Some(Arc::new(move |done, total| {
        tsfn.call((done, total).into(), ThreadsafeFunctionCallMode::NonBlocking);
      }))
    }
    Some(_) => return Err(StoreError::InvalidArgument("onProgress must be a function".into())),
  };
  Ok((concurrency, progress))
}

type ProgressCallback =
  ThreadsafeFunction<FnArgs<(u32, u32)>, Unknown<'static>, FnArgs<(u32, u32)>, Status, false, true>;

fn internal(e: Error) -> StoreError {
  StoreError::Internal(e.reason.clone())
}

/// Hands a save failure to `onError`, or to stderr: never a rejection nobody catches.
pub(super) fn report(env: &Env, on_error: Option<&FunctionRef<Unknown<'static>, Unknown<'static>>>, err: &StoreError) {
  let delivered = on_error.is_some_and(|f| {
    let called = unsafe { ErrorReport::to_napi_value(env.raw(), ErrorReport::new(err, None)) }.and_then(|raw| {
      let arg = unsafe { Unknown::from_raw_unchecked(env.raw(), raw) };
      f.borrow_back(env)?.call(arg)
    });
    called.is_ok()
  });
  if !delivered {
    eprintln!("[wwebjs-rust-store] save failed: {}: {err}", err.code());
  }
}

pub(super) type ErrorCallback = ThreadsafeFunction<ErrorReport, Unknown<'static>, ErrorReport, Status, false, true>;

/// Background failures: to `onError` from any thread, or to stderr. The callback is weak, so it never keeps
/// Node alive.
pub(super) fn notify(on_error: Option<&ErrorCallback>, session: Option<&SessionKey>, err: &StoreError, what: &str) {
  let delivered = on_error
    .is_some_and(|f| f.call(ErrorReport::new(err, session), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok);
  if !delivered {
    eprintln!("[wwebjs-rust-store] {what} failed: {}: {err}", err.code());
  }
}

/// Interval backup failures, for the scheduler.
pub(super) fn reporter(on_error: Option<Arc<ErrorCallback>>) -> Reporter {
  Arc::new(move |key: &SessionKey, err: &StoreError| {
    notify(on_error.as_deref(), Some(key), err, &format!("backup of {key}"))
  })
}
