//! The store flags every command takes. Each has an environment name, the same `RustStore.fromEnv()` reads;
//! a flag wins over its variable, and `--dir` (a tier) pulls no other tier in from the environment.

use clap::Args;

use crate::error::{Result, StoreError};
use crate::settings::{
  fill_from_env, redis_from_env, redis_url_with_env_login, s3_from_env, sentinel_from_env, sentinel_list, Settings,
};

/// No `Debug`: `--redis-url` may carry a password.
#[derive(Args)]
pub struct StoreFlags {
  /// RemoteAuth's dataPath, where live profiles and `<session>.zip` files are [env: WWEBJS_DATA_PATH]
  /// [default: ./.wwebjs_auth]
  #[arg(long, global = true, value_name = "DIR")]
  pub data_path: Option<String>,
  /// Directory of the embedded store, used when no Redis is given [env: SESSION_STORE_DIR]
  /// [default: ./.wwebjs_store]. Given as a flag it is the store: REDIS_URL and S3_BUCKET are not read (add
  /// --s3-bucket for backups)
  #[arg(long, global = true, value_name = "DIR")]
  pub dir: Option<String>,
  /// Redis as the primary tier: redis://…, rediss://… or unix:///… [env: REDIS_URL]; put a password in
  /// REDIS_URL rather than here, where `ps` shows it
  #[arg(long, global = true, value_name = "URL")]
  pub redis_url: Option<String>,
  /// Redis behind Sentinel: the sentinels, host:port,host:port [env: REDIS_SENTINELS]; passwords come from
  /// REDIS_PASSWORD / REDIS_SENTINEL_PASSWORD only
  #[arg(long, global = true, value_name = "HOST:PORT,...")]
  pub redis_sentinels: Option<String>,
  /// The primary's name the sentinels monitor [env: REDIS_SENTINEL_NAME]
  #[arg(long, global = true, value_name = "NAME")]
  pub redis_sentinel_name: Option<String>,
  /// Prefix of session keys in Redis [env: REDIS_PREFIX] [default: wa:session:]
  #[arg(long, global = true, value_name = "PREFIX")]
  pub redis_prefix: Option<String>,
  /// S3 bucket holding the backups [env: S3_BUCKET or R2_BUCKET]; its keys and other settings come from the
  /// S3_* (or R2_*) environment, else the AWS chain
  #[arg(long, global = true, value_name = "BUCKET")]
  pub s3_bucket: Option<String>,
  /// S3 endpoint URL, for R2, MinIO, B2, Garage [env: S3_ENDPOINT]
  #[arg(long, global = true, value_name = "URL")]
  pub s3_endpoint: Option<String>,
  /// [env: S3_REGION] [default: us-east-1]
  #[arg(long, global = true, value_name = "REGION")]
  pub s3_region: Option<String>,
  /// Key prefix in the bucket [env: S3_PREFIX] [default: whatsapp-sessions/]
  #[arg(long, global = true, value_name = "PREFIX")]
  pub s3_prefix: Option<String>,
  /// Path-style bucket URLs, as MinIO and Garage want [env: S3_FORCE_PATH_STYLE]
  #[arg(long, global = true)]
  pub s3_force_path_style: bool,
  /// No primary tier: the bucket alone holds the sessions
  #[arg(long, global = true)]
  pub s3_only: bool,
}

fn flag_without(flag: &'static str, section: &str) -> StoreError {
  StoreError::InvalidOption { name: flag, reason: format!("needs {section}") }
}

impl StoreFlags {
  /// The environment's settings with the flags laid over them. A flag that creates a section (`--redis-url`,
  /// `--s3-bucket`) takes that section's other settings from the environment, as `REDIS_URL` / `S3_BUCKET` would.
  pub fn settings(&self) -> Result<Settings> {
    if self.dir.is_some() && (self.redis_url.is_some() || self.s3_only) {
      let reason = "names the embedded tier as the primary; give it or --redis-url / --s3-only, not both".into();
      return Err(StoreError::InvalidOption { name: "--dir", reason });
    }
    // `--dir` names the tiers on its own: no `REDIS_URL`, and the bucket only with `--s3-bucket`.
    let mut s = fill_from_env(Settings { dir: self.dir.clone(), ..Settings::default() })?;
    if self.dir.is_some() {
      s.s3 = None;
    }
    s.data_path = self.data_path.clone().or(s.data_path);
    if let Some(url) = &self.redis_url {
      match s.redis.as_mut() {
        Some(redis) => redis.url = Some(redis_url_with_env_login(url.clone())?),
        None => s.redis = Some(redis_from_env(url.clone())?),
      }
    }
    if let Some(sentinels) = &self.redis_sentinels {
      if self.redis_url.is_some() || self.dir.is_some() {
        return Err(StoreError::InvalidOption {
          name: "--redis-sentinels",
          reason: "give it or --redis-url / --dir".into(),
        });
      }
      let mut redis = sentinel_from_env(sentinel_list(sentinels))?;
      redis.name = redis.name.or_else(|| s.redis.as_ref().and_then(|r| r.name.clone()));
      s.redis = Some(redis);
    }
    if let Some(name) = &self.redis_sentinel_name {
      let redis = s.redis.as_mut().filter(|r| r.sentinels.is_some());
      let redis = redis.ok_or_else(|| flag_without("--redis-sentinel-name", "--redis-sentinels or REDIS_SENTINELS"))?;
      redis.name = Some(name.clone());
    }
    if let Some(prefix) = &self.redis_prefix {
      let redis = s.redis.as_mut().ok_or_else(|| flag_without("--redis-prefix", "--redis-url or REDIS_URL"))?;
      redis.prefix = Some(prefix.clone());
    }
    if let Some(bucket) = &self.s3_bucket {
      match s.s3.as_mut() {
        Some(s3) => s3.bucket = bucket.clone(),
        None => s.s3 = s3_from_env(Some(bucket.clone()))?,
      }
    }
    let s3_flags = self.s3_endpoint.is_some() || self.s3_region.is_some() || self.s3_prefix.is_some();
    match s.s3.as_mut() {
      Some(s3) => {
        if let Some(endpoint) = &self.s3_endpoint {
          // An explicit endpoint replaces an R2 account's (and R2's region `auto` with the default).
          if s3.r2_account_id.take().is_some() && self.s3_region.is_none() {
            s3.region = None;
          }
          s3.endpoint = Some(endpoint.clone());
        }
        s3.region = self.s3_region.clone().or(s3.region.take());
        s3.prefix = self.s3_prefix.clone().or(s3.prefix.take());
        if self.s3_force_path_style {
          s3.force_path_style = Some(true);
        }
      }
      None if s3_flags || self.s3_force_path_style || self.s3_only => {
        return Err(flag_without("--s3-*", "--s3-bucket or S3_BUCKET / R2_BUCKET"));
      }
      None => {}
    }
    if self.s3_only {
      s.primary = Some("none".into());
    }
    Ok(s)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn flags(args: &[&str]) -> StoreFlags {
    #[derive(clap::Parser)]
    struct Only {
      #[command(flatten)]
      flags: StoreFlags,
    }
    <Only as clap::Parser>::parse_from(std::iter::once("x").chain(args.iter().copied())).flags
  }

  #[test]
  fn flags_without_their_section_are_refused() {
    // The process environment of `cargo test` sets none of the store's variables.
    assert!(std::env::var("REDIS_URL").is_err() && std::env::var("S3_BUCKET").is_err());
    let err = flags(&["--redis-prefix", "p:"]).settings().err().unwrap();
    assert_eq!(err.code(), "ERR_INVALID_OPTION");
    assert!(flags(&["--s3-endpoint", "http://x"]).settings().is_err());
    assert!(flags(&["--s3-only"]).settings().is_err());
    let s = flags(&["--s3-bucket", "b", "--s3-endpoint", "http://x", "--redis-url", "redis://h"]).settings().unwrap();
    let s3 = s.s3.unwrap();
    assert_eq!((s3.bucket.as_str(), s3.endpoint.as_deref()), ("b", Some("http://x")));
    assert_eq!(s.redis.unwrap().url.as_deref(), Some("redis://h"));
  }

  #[test]
  fn sentinel_flags_make_a_sentinel_section() {
    let s = flags(&["--redis-sentinels", "a:1,b:2", "--redis-sentinel-name", "mymaster"]).settings().unwrap();
    let redis = s.redis.unwrap();
    assert_eq!(
      (redis.sentinels.unwrap(), redis.name.as_deref(), redis.url),
      (vec!["a:1".into(), "b:2".into()], Some("mymaster"), None)
    );
    assert!(flags(&["--redis-sentinel-name", "m"]).settings().is_err());
    assert!(flags(&["--redis-sentinels", "a:1", "--redis-url", "redis://h"]).settings().is_err());
  }
}
