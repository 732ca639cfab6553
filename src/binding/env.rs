//! `RustStore.fromEnv()`: the environment names a deployment sets (`REDIS_URL`, `R2_*`, `S3_*`, …) filled into
//! whatever options the caller did not give.

use super::options::{RedisOptions, RustStoreOptions, S3Options};

fn var(name: &str) -> Option<String> {
  std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn flag(value: &str) -> Option<bool> {
  match value.trim().to_ascii_lowercase().as_str() {
    "1" | "true" | "yes" | "on" => Some(true),
    "0" | "false" | "no" | "off" => Some(false),
    _ => None,
  }
}

fn number(value: Option<String>) -> Option<f64> {
  value.and_then(|v| v.trim().parse().ok())
}

/// R2 names win over S3 names when an R2 bucket or account is set.
fn s3_from_env() -> Option<S3Options> {
  let r2 = var("R2_BUCKET").is_some() || var("R2_ACCOUNT_ID").is_some();
  let (p, endpoint) = if r2 { ("R2", var("R2_ENDPOINT")) } else { ("S3", var("S3_ENDPOINT")) };
  let bucket = var(&format!("{p}_BUCKET"))?;
  let enabled = var("SESSION_BACKUP_ENABLED").map_or(Some(true), |v| flag(&v)).unwrap_or(false);
  if !enabled {
    return None;
  }
  Some(S3Options {
    r2_account_id: if r2 && endpoint.is_none() { var("R2_ACCOUNT_ID") } else { None },
    endpoint,
    region: var(&format!("{p}_REGION")).or_else(|| r2.then(|| "auto".to_string())),
    bucket,
    prefix: var(&format!("{p}_PREFIX")),
    force_path_style: var(&format!("{p}_FORCE_PATH_STYLE")).and_then(|v| flag(&v)),
    access_key_id: var(&format!("{p}_ACCESS_KEY_ID")),
    secret_access_key: var(&format!("{p}_SECRET_ACCESS_KEY")),
    keep_versions: number(var("SESSION_BACKUP_KEEP_VERSIONS")),
    backup_interval_ms: number(var("SESSION_BACKUP_INTERVAL_MS")),
    timeout_ms: None,
  })
}

/// Fills in from the environment what `options` leaves unset.
pub(super) fn fill_from_env(mut options: RustStoreOptions) -> RustStoreOptions {
  if options.redis.is_none() {
    options.redis = var("REDIS_URL").map(|url| RedisOptions {
      url: Some(url),
      nodes: None,
      tls: None,
      prefix: var("REDIS_PREFIX"),
      ttl_seconds: number(var("SESSION_TTL_SECONDS")),
      connect_timeout_ms: None,
      command_timeout_ms: None,
    });
  }
  if options.s3.is_none() {
    options.s3 = s3_from_env();
  }
  if options.dir.is_none() {
    options.dir = var("SESSION_STORE_DIR");
  }
  if options.data_path.is_none() {
    options.data_path = var("WWEBJS_DATA_PATH");
  }
  options
}
