//! The environment names a deployment sets (`REDIS_URL`, `R2_*`, `S3_*`, …), filled into whatever settings the
//! caller did not give: `RustStore.fromEnv()` and the CLI read the same names.

use super::{DiskAlertSettings, EncryptionSettings, RedisSettings, S3Settings, Settings};
use crate::error::{Result, StoreError};

fn bad(name: &str, why: &str) -> StoreError {
  StoreError::InvalidOption { name: "environment", reason: format!("{name} {why}") }
}

fn var(name: &str) -> Option<String> {
  std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A yes/no variable; anything else is refused rather than guessed.
fn flag(name: &str) -> Result<Option<bool>> {
  let Some(value) = var(name) else { return Ok(None) };
  match value.trim().to_ascii_lowercase().as_str() {
    "1" | "true" | "yes" | "on" => Ok(Some(true)),
    "0" | "false" | "no" | "off" => Ok(Some(false)),
    _ => Err(bad(name, "must be true or false")),
  }
}

fn number(name: &str) -> Result<Option<f64>> {
  var(name).map(|v| v.trim().parse().map_err(|_| bad(name, "must be a number"))).transpose()
}

/// The bucket's settings from the environment; `bucket` (a CLI flag) names one when the environment does not.
/// R2 names win over S3 names when an R2 bucket or account is set.
pub fn s3_from_env(bucket: Option<String>) -> Result<Option<S3Settings>> {
  let r2 = var("R2_BUCKET").is_some() || var("R2_ACCOUNT_ID").is_some();
  let (p, endpoint) = if r2 { ("R2", var("R2_ENDPOINT")) } else { ("S3", var("S3_ENDPOINT")) };
  let bucket = bucket.or_else(|| var(&format!("{p}_BUCKET")));
  let enabled = flag("SESSION_BACKUP_ENABLED")?;
  let bucket = match (enabled, bucket) {
    (Some(false), _) | (None, None) => return Ok(None),
    (Some(true), None) => return Err(bad("SESSION_BACKUP_ENABLED", "is true but no R2_BUCKET or S3_BUCKET is set")),
    (_, Some(bucket)) => bucket,
  };
  Ok(Some(S3Settings {
    r2_account_id: if r2 && endpoint.is_none() { var("R2_ACCOUNT_ID") } else { None },
    endpoint,
    region: var(&format!("{p}_REGION")).or_else(|| r2.then(|| "auto".to_string())),
    bucket,
    prefix: var(&format!("{p}_PREFIX")),
    force_path_style: flag(&format!("{p}_FORCE_PATH_STYLE"))?,
    access_key_id: var(&format!("{p}_ACCESS_KEY_ID")),
    secret_access_key: var(&format!("{p}_SECRET_ACCESS_KEY")),
    keep_versions: number("SESSION_BACKUP_KEEP_VERSIONS")?,
    keep_within_ms: number("SESSION_BACKUP_KEEP_WITHIN_MS")?,
    incremental: flag("SESSION_BACKUP_INCREMENTAL")?,
    backup_interval_ms: number("SESSION_BACKUP_INTERVAL_MS")?,
    timeout_ms: None,
  }))
}

/// `url` with the login `REDIS_USERNAME` / `REDIS_PASSWORD` name, where the URL carries none of its own (its own
/// win): deployments (docker-compose, Helm charts, PaaS add-ons) often set the password beside a bare `REDIS_URL`.
/// A unix socket URL takes them as redis-rs reads them there, `?user=` / `?pass=`.
pub fn redis_url_with_env_login(url: String) -> Result<String> {
  with_login(url, var("REDIS_USERNAME"), var("REDIS_PASSWORD"))
}

fn with_login(url: String, user: Option<String>, pass: Option<String>) -> Result<String> {
  if user.is_none() && pass.is_none() {
    return Ok(url);
  }
  // The reason never shows the URL: it may hold a password already.
  let mut parsed = url::Url::parse(&url).map_err(|e| bad("REDIS_URL", &format!("is not a URL ({e})")))?;
  if matches!(parsed.scheme(), "unix" | "redis+unix") {
    let has = |name: &str| parsed.query_pairs().any(|(k, _)| k == name);
    let (add_user, add_pass) = (!has("user") && !has("pass"), !has("pass"));
    let mut query = parsed.query_pairs_mut();
    if let (true, Some(user)) = (add_user, &user) {
      query.append_pair("user", user);
    }
    if let (true, Some(pass)) = (add_pass, &pass) {
      query.append_pair("pass", pass);
    }
    drop(query);
    return Ok(parsed.into());
  }
  if parsed.password().is_some() {
    return Ok(url);
  }
  let unset = |_| bad("REDIS_URL", "cannot take REDIS_USERNAME / REDIS_PASSWORD (no host in it)");
  if let (true, Some(user)) = (parsed.username().is_empty(), &user) {
    parsed.set_username(user).map_err(unset)?;
  }
  if let Some(pass) = &pass {
    parsed.set_password(Some(pass)).map_err(unset)?;
  }
  Ok(parsed.into())
}

/// Redis at `url` (from `REDIS_URL` or a CLI flag) with the rest of its settings from the environment.
pub fn redis_from_env(url: String) -> Result<RedisSettings> {
  Ok(RedisSettings {
    url: Some(redis_url_with_env_login(url)?),
    prefix: var("REDIS_PREFIX"),
    ttl_seconds: number("SESSION_TTL_SECONDS")?,
    ca_file: var("REDIS_TLS_CA_FILE"),
    min_replicas: number("REDIS_MIN_REPLICAS")?,
    ..RedisSettings::default()
  })
}

/// A comma (or space) separated list, e.g. `REDIS_SENTINELS=10.0.0.1:26379,10.0.0.2:26379`.
pub fn list(text: &str) -> Vec<String> {
  text.split([',', ' ', '\n']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Redis behind the sentinels `sentinels` (from `REDIS_SENTINELS` or a CLI flag): the primary's name from
/// `REDIS_SENTINEL_NAME`, logins from `REDIS_USERNAME` / `REDIS_PASSWORD` (data nodes) and
/// `REDIS_SENTINEL_USERNAME` / `REDIS_SENTINEL_PASSWORD` (sentinels), TLS by `REDIS_TLS`.
pub fn sentinel_from_env(sentinels: Vec<String>) -> Result<RedisSettings> {
  Ok(RedisSettings {
    url: None,
    sentinels: Some(sentinels),
    name: var("REDIS_SENTINEL_NAME"),
    username: var("REDIS_USERNAME"),
    password: var("REDIS_PASSWORD"),
    sentinel_username: var("REDIS_SENTINEL_USERNAME"),
    sentinel_password: var("REDIS_SENTINEL_PASSWORD"),
    db: number("REDIS_DB")?,
    tls: flag("REDIS_TLS")?,
    prefix: var("REDIS_PREFIX"),
    ttl_seconds: number("SESSION_TTL_SECONDS")?,
    ca_file: var("REDIS_TLS_CA_FILE"),
    min_replicas: number("REDIS_MIN_REPLICAS")?,
    ..RedisSettings::default()
  })
}

/// Fills in from the environment what `options` leaves unset (a primary named by `dir` or `primary` takes no
/// `REDIS_URL`). A variable that is set but unusable is an error,
/// never a silent default (a typo must not turn backups off).
pub fn fill_from_env(mut options: Settings) -> Result<Settings> {
  // `dir` or `primary` already names the primary: `REDIS_URL` must not replace it.
  if options.redis.is_none() && options.dir.is_none() && options.primary.is_none() {
    match (var("REDIS_URL"), var("REDIS_SENTINELS")) {
      (Some(_), Some(_)) => return Err(bad("REDIS_URL", "and REDIS_SENTINELS are both set; set one")),
      (Some(url), None) => options.redis = Some(redis_from_env(url)?),
      (None, Some(sentinels)) => options.redis = Some(sentinel_from_env(list(&sentinels))?),
      (None, None) => {}
    }
  }
  if options.s3.is_none() {
    options.s3 = s3_from_env(None)?;
  }
  if options.disk_alert.is_none() {
    if let Some(webhook_url) = var("DISK_ALERT_WEBHOOK_URL") {
      options.disk_alert = Some(DiskAlertSettings {
        webhook_url,
        min_free_bytes: number("DISK_ALERT_MIN_FREE_BYTES")?,
        check_interval_ms: number("DISK_ALERT_CHECK_INTERVAL_MS")?,
        repeat_interval_ms: number("DISK_ALERT_REPEAT_INTERVAL_MS")?,
      });
    }
  }
  if options.metrics_port.is_none() {
    options.metrics_port = number("METRICS_PORT")?;
  }
  if options.metrics_host.is_none() {
    options.metrics_host = var("METRICS_HOST");
  }
  if options.encryption.is_none() {
    if let Some(key) = var("SESSION_ENCRYPTION_KEY") {
      let previous = var("SESSION_ENCRYPTION_PREVIOUS_KEYS").unwrap_or_default();
      let previous_keys = previous.split([',', ' ', '\n']).filter(|k| !k.is_empty()).map(str::to_owned).collect();
      let accept_plain = flag("SESSION_ENCRYPTION_ACCEPT_PLAIN")?.unwrap_or(false);
      options.encryption = Some(EncryptionSettings { key, previous_keys, accept_plain });
    }
  }
  if options.dir.is_none() {
    options.dir = var("SESSION_STORE_DIR");
  }
  if options.data_path.is_none() {
    options.data_path = var("WWEBJS_DATA_PATH");
  }
  Ok(options)
}

#[cfg(test)]
mod tests {
  #[test]
  fn a_login_beside_redis_url_goes_into_it_unless_the_url_has_its_own() {
    let url = |u: &str, user: Option<&str>| {
      super::with_login(u.into(), user.map(Into::into), Some("p@ss word".into())).unwrap()
    };
    assert_eq!(url("redis://10.0.0.1:6379/2", None), "redis://:p%40ss%20word@10.0.0.1:6379/2");
    assert_eq!(url("redis://:own@h:1", None), "redis://:own@h:1", "the URL's own password wins");
    assert_eq!(url("redis://app@h:1", Some("svc")), "redis://app:p%40ss%20word@h:1");
    assert_eq!(url("rediss://h:1", Some("svc")), "rediss://svc:p%40ss%20word@h:1");
    assert_eq!(url("unix:///run/redis.sock", Some("svc")), "unix:///run/redis.sock?user=svc&pass=p%40ss+word");
    assert_eq!(url("unix:///run/redis.sock?pass=own", Some("svc")), "unix:///run/redis.sock?pass=own");
    assert_eq!(super::with_login("redis://h:1".into(), None, None).unwrap(), "redis://h:1");
    let err = super::with_login("not a url :secret".into(), None, Some("x".into())).unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
  }

  #[test]
  fn sentinel_lists_split_on_commas_and_spaces() {
    assert_eq!(super::list("10.0.0.1:26379, 10.0.0.2:26380,,h3"), ["10.0.0.1:26379", "10.0.0.2:26380", "h3"]);
  }
}
