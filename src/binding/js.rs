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
use crate::settings::{whole, Callback, Given};
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

/// How deep an options object is read: deeper than any option goes, and a cycle (`o.redis = o`) ends here.
const MAX_DEPTH: usize = 8;

/// The functions an options object held, by the index `Given::Function` / `Callback` carry.
pub(super) struct Functions<'a>(Vec<Unknown<'a>>);

impl<'a> Functions<'a> {
  pub(super) fn get(&self, callback: Callback) -> Unknown<'a> {
    self.0[callback.0]
  }
}

/// What JS gave, as the strict reader's tree. Only own enumerable string keys count, as `Object.keys` sees them.
fn given<'a>(env: &Env, value: Unknown<'a>, functions: &mut Vec<Unknown<'a>>, depth: usize) -> Result<Given> {
  let raw = value.raw();
  Ok(match value.get_type()? {
    ValueType::Undefined => Given::Undefined,
    ValueType::Null => Given::Null,
    ValueType::Boolean => Given::Bool(unsafe { bool::from_napi_value(env.raw(), raw) }?),
    ValueType::Number => Given::Number(unsafe { f64::from_napi_value(env.raw(), raw) }?),
    ValueType::String => Given::String(unsafe { String::from_napi_value(env.raw(), raw) }?),
    ValueType::Function => {
      functions.push(value);
      Given::Function(functions.len() - 1)
    }
    ValueType::Object if depth >= MAX_DEPTH => Given::Other("an object nested too deep"),
    ValueType::Object => {
      let object = Object::from_raw(env.raw(), raw);
      let mut is_array = false;
      check_status!(unsafe { napi::sys::napi_is_array(env.raw(), raw, &mut is_array) })?;
      if is_array {
        let items = (0..object.get_array_length()?).map(|i| {
          let item: Unknown = object.get_element(i)?;
          given(env, item, functions, depth + 1)
        });
        Given::Array(items.collect::<Result<_>>()?)
      } else {
        let mut keys = std::ptr::null_mut();
        let (own, filter) = (napi::sys::KeyCollectionMode::own_only, napi::sys::KeyFilter::enumerable);
        let filter = filter | napi::sys::KeyFilter::skip_symbols;
        let conversion = napi::sys::KeyConversion::numbers_to_strings;
        check_status!(unsafe {
          napi::sys::napi_get_all_property_names(env.raw(), raw, own, filter, conversion, &mut keys)
        })?;
        let keys = Object::from_raw(env.raw(), keys);
        let entries = (0..keys.get_array_length()?).map(|i| {
          let key: Unknown = keys.get_element(i)?;
          let mut item = std::ptr::null_mut();
          check_status!(unsafe { napi::sys::napi_get_property(env.raw(), raw, key.raw(), &mut item) })?;
          let item = unsafe { Unknown::from_raw_unchecked(env.raw(), item) };
          Ok((unsafe { String::from_napi_value(env.raw(), key.raw()) }?, given(env, item, functions, depth + 1)?))
        });
        Given::Object(entries.collect::<Result<_>>()?)
      }
    }
    ValueType::BigInt => Given::Other("a bigint"),
    ValueType::Symbol => Given::Other("a symbol"),
    _ => Given::Other("an unsupported value"),
  })
}

/// An options object read strictly (`settings::read_strict`): unknown keys and wrong types are ERR_INVALID_OPTION
/// naming the option under `root`. A getter that throws is reported the same way, its exception cleared.
pub(super) fn strict<'a, T: serde::de::DeserializeOwned>(
  env: &Env,
  value: Option<Unknown<'a>>,
  root: &str,
) -> Core<(T, Functions<'a>)> {
  let mut functions = Vec::new();
  let tree = match value {
    None => Given::Undefined,
    Some(value) => given(env, value, &mut functions, 0).map_err(|e| {
      let mut pending = std::ptr::null_mut();
      unsafe { napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut pending) };
      let name = if root.is_empty() { "options" } else { root };
      StoreError::Options(format!("{name} could not be read: {}", e.reason))
    })?,
  };
  Ok((crate::settings::read_strict(tree, root)?, Functions(functions)))
}

/// `strict`, where absent, `undefined` and `null` mean an empty object (every key at its default).
pub(super) fn strict_optional<'a, T: serde::de::DeserializeOwned>(
  env: &Env,
  value: Option<Unknown<'a>>,
  root: &str,
) -> Core<(T, Functions<'a>)> {
  match value {
    Some(v) if !matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null)) => strict(env, Some(v), root),
    _ => Ok((crate::settings::read_strict(Given::Object(Vec::new()), root)?, Functions(Vec::new()))),
  }
}

/// RemoteAuth's `{ session, ... }` argument; a wrong shape rejects with `ERR_INVALID_ARG` naming the field in JS
/// terms. Keys it does not know are let through: the argument is RemoteAuth's, whose versions may add some.
pub(super) fn read_args<T: serde::de::DeserializeOwned>(env: &Env, args: Option<Unknown>) -> Core<T> {
  let object = args.is_some_and(|a| a.get_type().ok() == Some(ValueType::Object));
  if !object {
    return Err(StoreError::InvalidArgument("expected an object like { session }".into()));
  }
  strict(env, args, "").map(|(args, _)| args).map_err(|e| match e {
    StoreError::Options(message) => StoreError::InvalidArgument(message),
    other => other,
  })
}

/// `{ concurrency, onProgress }` of `restoreAll` / `backupAll`.
pub(super) fn transfer_args(env: &Env, args: Option<Unknown>) -> Core<(usize, Option<Progress>)> {
  let (args, functions) = strict_optional::<TransferArgs>(env, args, "")?;
  let concurrency = whole("concurrency", args.concurrency, 1.0..=1024.0)?.unwrap_or(16) as usize;
  let progress: Option<Progress> = match args.on_progress {
    None => None,
    Some(f) => {
      let f: Function<FnArgs<(u32, u32)>, Unknown<'static>> = unsafe { functions.get(f).cast() }.map_err(internal)?;
      let tsfn: ProgressCallback =
        f.build_threadsafe_function().weak::<true>().callee_handled::<false>().build().map_err(internal)?;
      Some(Arc::new(move |done, total| {
        tsfn.call((done, total).into(), ThreadsafeFunctionCallMode::NonBlocking);
      }))
    }
  };
  Ok((concurrency, progress))
}

type ProgressCallback =
  ThreadsafeFunction<FnArgs<(u32, u32)>, Unknown<'static>, FnArgs<(u32, u32)>, Status, false, true>;

/// A range error of an argument (not of the store's options): `ERR_INVALID_ARG`, its option prefix not repeated.
pub(super) fn as_argument(e: StoreError) -> StoreError {
  match e {
    StoreError::InvalidOption { name, reason } => StoreError::InvalidArgument(format!("{name}: {reason}")),
    other => other,
  }
}

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
