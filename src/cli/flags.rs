//! The store flags every command takes. Each has an environment name, the same `RustStore.fromEnv()` reads;
//! a flag wins over its variable.

use clap::Args;

use crate::error::Result;
use crate::settings::{fill_from_env, s3_keys_from_env, RedisSettings, S3Settings, Settings};

#[derive(Debug, Args)]
pub struct StoreFlags {
  /// RemoteAuth's dataPath, where live profiles and `<session>.zip` files are [env: WWEBJS_DATA_PATH]
  /// [default: ./.wwebjs_auth]
  #[arg(long, global = true, value_name = "DIR")]
  pub data_path: Option<String>,
  /// Directory of the embedded store, used when no Redis is given [env: SESSION_STORE_DIR]
  /// [default: ./.wwebjs_store]
  #[arg(long, global = true, value_name = "DIR")]
  pub dir: Option<String>,
  /// Redis as the primary tier: redis://…, rediss://… or unix:///… [env: REDIS_URL]
  #[arg(long, global = true, value_name = "URL")]
  pub redis_url: Option<String>,
  /// Prefix of session keys in Redis [env: REDIS_PREFIX] [default: wa:session:]
  #[arg(long, global = true, value_name = "PREFIX")]
  pub redis_prefix: Option<String>,
  /// S3 bucket holding the backups [env: S3_BUCKET or R2_BUCKET]; keys come from S3_ACCESS_KEY_ID /
  /// S3_SECRET_ACCESS_KEY (or R2_*), else the AWS chain
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

impl StoreFlags {
  /// The environment's settings with the flags laid over them.
  pub fn settings(&self) -> Result<Settings> {
    let mut s = fill_from_env(Settings::default())?;
    s.data_path = self.data_path.clone().or(s.data_path);
    s.dir = self.dir.clone().or(s.dir);
    if let Some(url) = &self.redis_url {
      let redis = s.redis.get_or_insert_with(RedisSettings::default);
      redis.url = Some(url.clone());
    }
    if let (Some(prefix), Some(redis)) = (&self.redis_prefix, s.redis.as_mut()) {
      redis.prefix = Some(prefix.clone());
    }
    if let Some(bucket) = &self.s3_bucket {
      let s3 = s.s3.get_or_insert_with(|| {
        let (access_key_id, secret_access_key) = s3_keys_from_env();
        S3Settings { access_key_id, secret_access_key, ..S3Settings::default() }
      });
      s3.bucket = bucket.clone();
    }
    if let Some(s3) = s.s3.as_mut() {
      if let Some(endpoint) = &self.s3_endpoint {
        (s3.endpoint, s3.r2_account_id) = (Some(endpoint.clone()), None);
      }
      s3.region = self.s3_region.clone().or(s3.region.take());
      s3.prefix = self.s3_prefix.clone().or(s3.prefix.take());
      if self.s3_force_path_style {
        s3.force_path_style = Some(true);
      }
    }
    if self.s3_only {
      s.primary = Some("none".into());
    }
    Ok(s)
  }
}
