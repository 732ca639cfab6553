//! `importFrom` / `exportTo`: their options and reports as JS sees them.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde::Deserialize;

use super::js::{as_argument, strict_optional};
use super::Core;
use crate::import as core;
use crate::settings::{s3_from_env, whole, S3Settings, MAX_SAFE_INTEGER};

/// How an `s3://` source or target is reached; its bucket and prefix are the URL's. Default: the `S3_*` / `R2_*`
/// environment, else the AWS chain.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransferS3Options {
  pub endpoint: Option<String>,
  /// Default `us-east-1`.
  pub region: Option<String>,
  pub force_path_style: Option<bool>,
  pub access_key_id: Option<String>,
  pub secret_access_key: Option<String>,
}

/// Options of `importFrom`. Every field is optional.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportOptions {
  /// Write; without it every entry is checked and reported and nothing is written. Default false.
  pub execute: Option<bool>,
  /// Read and compare every session, also those whose stored copy is newer than the source's last write.
  pub overwrite: Option<bool>,
  /// Redis key pattern; the session id is what `*` matches. Default `wa:session:*`.
  pub pattern: Option<String>,
  /// Session name for a source id, with `{id}` in it. Default `{id}`.
  pub name: Option<String>,
  /// Sessions in flight at once. Default 8.
  pub concurrency: Option<f64>,
  pub s3: Option<TransferS3Options>,
}

/// Options of `exportTo`. Every field is optional.
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExportOptions {
  /// Only these sessions. Default every stored one.
  pub sessions: Option<Vec<String>>,
  /// Each session's newest backup version saved at or before this time (ms since the epoch).
  pub at: Option<f64>,
  pub concurrency: Option<f64>,
  pub s3: Option<TransferS3Options>,
}

/// Why one entry of an import or export failed.
#[napi(object)]
pub struct EntryFailure {
  pub code: String,
  pub message: String,
}

/// One source entry's import.
#[napi(object)]
pub struct ImportedSession {
  pub session: String,
  /// Where it is in the source: file name, object key or Redis key.
  pub key: String,
  /// How the zip was wrapped: `zip`, `gzip(zip)`, `base64(zip)`, `json(base64(zip))`, …
  pub shape: Option<String>,
  pub source_bytes: Option<f64>,
  pub stored_bytes: Option<f64>,
  #[napi(ts_type = "'planned' | 'imported' | 'unchanged' | 'store-newer' | 'gone' | 'failed'")]
  pub status: String,
  pub error: Option<EntryFailure>,
}

#[napi(object)]
pub struct ImportReport {
  pub execute: bool,
  pub source: String,
  pub sessions: Vec<ImportedSession>,
  /// Imported (planned, in a dry run).
  pub imported: f64,
  /// Unchanged, newer in the store, or gone from the source.
  pub skipped: f64,
  pub failed: f64,
  pub bytes_before: f64,
  pub bytes_after: f64,
  pub ms: f64,
}

#[napi(object)]
pub struct ExportedSession {
  pub session: String,
  /// The file or object written.
  pub key: String,
  pub bytes: Option<f64>,
  pub error: Option<EntryFailure>,
}

#[napi(object)]
pub struct ExportReport {
  pub target: String,
  pub sessions: Vec<ExportedSession>,
  pub exported: f64,
  pub failed: f64,
  pub bytes: f64,
  pub ms: f64,
}

fn failure(f: Option<core::Failure>) -> Option<EntryFailure> {
  f.map(|f| EntryFailure { code: f.code.into(), message: f.message })
}

fn status(s: core::Status) -> String {
  serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl From<core::ImportReport> for ImportReport {
  fn from(r: core::ImportReport) -> Self {
    let sessions = r.sessions.into_iter().map(|s| ImportedSession {
      session: s.session,
      key: s.key,
      shape: s.shape,
      source_bytes: s.source_bytes.map(|b| b as f64),
      stored_bytes: s.stored_bytes.map(|b| b as f64),
      status: status(s.status),
      error: failure(s.error),
    });
    Self {
      execute: r.execute,
      source: r.source,
      sessions: sessions.collect(),
      imported: r.imported as f64,
      skipped: r.skipped as f64,
      failed: r.failed as f64,
      bytes_before: r.bytes_before as f64,
      bytes_after: r.bytes_after as f64,
      ms: r.ms as f64,
    }
  }
}

impl From<core::ExportReport> for ExportReport {
  fn from(r: core::ExportReport) -> Self {
    let sessions = r.sessions.into_iter().map(|s| ExportedSession {
      session: s.session,
      key: s.key,
      bytes: s.bytes.map(|b| b as f64),
      error: failure(s.error),
    });
    Self {
      target: r.target,
      sessions: sessions.collect(),
      exported: r.exported as f64,
      failed: r.failed as f64,
      bytes: r.bytes as f64,
      ms: r.ms as f64,
    }
  }
}

fn s3_settings(given: Option<TransferS3Options>, url: &str) -> Core<Option<S3Settings>> {
  let Some(rest) = url.strip_prefix("s3://") else { return Ok(None) };
  let bucket = rest.split('/').next().unwrap_or_default().to_owned();
  match given {
    Some(s3) => Ok(Some(S3Settings {
      endpoint: s3.endpoint,
      region: s3.region,
      bucket,
      force_path_style: s3.force_path_style,
      access_key_id: s3.access_key_id,
      secret_access_key: s3.secret_access_key,
      ..S3Settings::default()
    })),
    None => s3_from_env(Some(bucket)),
  }
}

fn concurrency(value: Option<f64>) -> Core<Option<usize>> {
  Ok(whole("concurrency", value, 1.0..=1024.0).map_err(as_argument)?.map(|n| n as usize))
}

pub(super) fn import_options(env: &Env, options: Option<Unknown>, source: &str) -> Core<core::ImportOptions> {
  let (o, _) = strict_optional::<ImportOptions>(env, options, "")?;
  Ok(core::ImportOptions {
    execute: o.execute.unwrap_or(false),
    overwrite: o.overwrite.unwrap_or(false),
    name: o.name,
    pattern: o.pattern,
    s3: s3_settings(o.s3, source)?,
    concurrency: concurrency(o.concurrency)?,
  })
}

pub(super) fn export_options(env: &Env, options: Option<Unknown>, target: &str) -> Core<core::ExportOptions> {
  let (o, _) = strict_optional::<ExportOptions>(env, options, "")?;
  let at_ms = whole("at", o.at, 0.0..=MAX_SAFE_INTEGER).map_err(as_argument)?;
  Ok(core::ExportOptions {
    sessions: o.sessions,
    at_ms,
    s3: s3_settings(o.s3, target)?,
    concurrency: concurrency(o.concurrency)?,
  })
}
