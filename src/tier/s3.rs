//! The S3-compatible object tier (AWS S3, Cloudflare R2, MinIO, Backblaze B2, Garage): objects under a key
//! prefix in one bucket. It stores and lists bytes; which objects a backup keeps is the backup policy's business.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
  BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;

use super::{ObjectMeta, ObjectTier};
use crate::error::{Result, StoreError};

#[derive(Clone, Default)]
pub struct S3Config {
  /// `https://…`; `None` means AWS S3 itself (from the region).
  pub endpoint: Option<String>,
  pub region: String,
  pub bucket: String,
  /// Prepended to every object key, e.g. `whatsapp-sessions/`.
  pub prefix: String,
  pub force_path_style: bool,
  /// Explicit keys; `None` uses the AWS environment/profile chain.
  pub credentials: Option<(String, String)>,
  pub timeout: Duration,
}

impl S3Config {
  pub const DEFAULT_PREFIX: &'static str = "whatsapp-sessions/";

  /// Cloudflare R2's endpoint for an account id.
  pub fn r2_endpoint(account_id: &str) -> String {
    format!("https://{account_id}.r2.cloudflarestorage.com")
  }
}

impl fmt::Debug for S3Config {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("S3Config")
      .field("endpoint", &self.endpoint)
      .field("region", &self.region)
      .field("bucket", &self.bucket)
      .field("prefix", &self.prefix)
      .field("force_path_style", &self.force_path_style)
      .field("credentials", &self.credentials.as_ref().map(|_| "<redacted>"))
      .finish_non_exhaustive()
  }
}

pub struct S3Tier {
  config: S3Config,
  client: OnceCell<aws_sdk_s3::Client>,
}

impl fmt::Debug for S3Tier {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("S3Tier").field("config", &self.config).finish_non_exhaustive()
  }
}

fn invalid(name: &'static str, reason: &str) -> StoreError {
  StoreError::InvalidOption { name, reason: reason.into() }
}

impl S3Tier {
  pub fn open(config: S3Config) -> Result<Self> {
    if config.bucket.is_empty() {
      return Err(invalid("s3.bucket", "is required"));
    }
    if config.region.is_empty() {
      return Err(invalid("s3.region", "is required (Cloudflare R2 uses 'auto')"));
    }
    if let Some(endpoint) = &config.endpoint {
      let ok = url::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
      if !ok {
        return Err(invalid("s3.endpoint", "must be an http(s) URL"));
      }
    }
    Ok(Self { config, client: OnceCell::new() })
  }

  /// Made on first use: loading the credential chain is async and may read files.
  async fn client(&self) -> &aws_sdk_s3::Client {
    self
      .client
      .get_or_init(|| async {
        let c = &self.config;
        let http =
          aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
          .connect_timeout(Duration::from_secs(5))
          .operation_timeout(c.timeout)
          .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
          .http_client(http)
          .region(Region::new(c.region.clone()))
          .timeout_config(timeouts);
        if let Some((id, secret)) = &c.credentials {
          loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "wwebjs-rust-store"));
        }
        let shared = loader.load().await;
        let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
          .force_path_style(c.force_path_style)
          // Retries are the backup scheduler's (with backoff, across ticks); stacking the SDK's on top
          // would multiply them and stretch a `close()` during an outage.
          .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
          // Our archives carry their own BLAKE3; the SDK's default CRC headers break several S3-compatibles.
          .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
          .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &c.endpoint {
          s3 = s3.endpoint_url(endpoint);
        }
        aws_sdk_s3::Client::from_conf(s3.build())
      })
      .await
  }

  /// A whole object, or its first `len` bytes.
  async fn read(&self, key: &str, len: Option<usize>) -> Result<Option<Vec<u8>>> {
    let mut get = self.client().await.get_object().bucket(&self.config.bucket).key(self.full_key(key));
    if let Some(len) = len {
      get = get.range(format!("bytes=0-{}", len.saturating_sub(1)));
    }
    let out = match get.send().await {
      Ok(out) => out,
      Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
      Err(e) => return Err(self.error("get", e)),
    };
    let size = out.content_length().and_then(|n| u64::try_from(n).ok());
    self.read_body(out.body, size).await.map(Some)
  }

  /// The body, bounded on the local monotonic clock: the SDK's operation timeout ends when the headers arrive,
  /// and a body that trickles in (or stops) would otherwise hold its caller (and a session's lock) for as long as
  /// the server likes. Each chunk must come within `timeout`, and the whole within `timeout` plus the time the
  /// body takes at `MIN_BODY_RATE`.
  async fn read_body(&self, mut body: ByteStream, size: Option<u64>) -> Result<Vec<u8>> {
    let timeout = self.config.timeout;
    let budget = timeout + Duration::from_secs_f64(size.unwrap_or(0) as f64 / MIN_BODY_RATE as f64);
    let deadline = tokio::time::Instant::now() + budget;
    let bucket = &self.config.bucket;
    let timed_out = |what: &str| StoreError::Backend {
      code: "ERR_S3_TIMEOUT",
      reason: format!("s3 get in bucket {bucket}: {what} (timeoutMs {} ms)", timeout.as_millis()),
    };
    let mut out = Vec::with_capacity(size.unwrap_or(0).min(1 << 26) as usize);
    loop {
      let next = tokio::time::Instant::now().checked_add(timeout).map_or(deadline, |idle| idle.min(deadline));
      let chunk = match tokio::time::timeout_at(next, body.next()).await {
        Ok(Some(chunk)) => chunk,
        Ok(None) => return Ok(out),
        Err(_) if tokio::time::Instant::now() >= deadline => {
          return Err(timed_out(&format!("body not read within {} ms", budget.as_millis())))
        }
        Err(_) => return Err(timed_out("body stalled")),
      };
      let chunk = chunk.map_err(|e| StoreError::Backend {
        code: "ERR_S3_UNAVAILABLE",
        reason: format!("s3 get in bucket {bucket}: body interrupted: {e}"),
      })?;
      out.extend_from_slice(&chunk);
    }
  }

  fn full_key(&self, key: &str) -> String {
    format!("{}{key}", self.config.prefix)
  }

  fn error<E: ProvideErrorMetadata>(&self, op: &str, e: SdkError<E, HttpResponse>) -> StoreError {
    let (code, detail) = match &e {
      SdkError::TimeoutError(_) => ("ERR_S3_TIMEOUT", "timed out".to_string()),
      SdkError::DispatchFailure(d) if d.is_timeout() => ("ERR_S3_TIMEOUT", "timed out".to_string()),
      SdkError::DispatchFailure(_) => ("ERR_S3_UNAVAILABLE", "could not connect".to_string()),
      SdkError::ResponseError(_) => ("ERR_S3_UNAVAILABLE", "unreadable response".to_string()),
      SdkError::ServiceError(s) => {
        let code = match s.err().code() {
          Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken") => "ERR_S3_AUTH",
          Some("NoSuchBucket") => "ERR_S3_BUCKET",
          _ if s.raw().status().is_server_error() => "ERR_S3_UNAVAILABLE",
          _ => "ERR_S3",
        };
        (code, format!("{} {}", s.err().code().unwrap_or("error"), s.err().message().unwrap_or("")))
      }
      _ => ("ERR_S3", "request could not be built".to_string()),
    };
    // Only the service's code and message: the SDK's Debug output can include request headers.
    StoreError::Backend { code, reason: format!("s3 {op} in bucket {}: {detail}", self.config.bucket) }
  }
}

/// The slowest body read allowed past `timeoutMs`, in bytes per second: a 20 MB version gets about five minutes.
const MIN_BODY_RATE: u64 = 64 * 1024;

#[async_trait]
impl ObjectTier for S3Tier {
  async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
    self.read(key, None).await
  }

  async fn head(&self, key: &str, len: usize) -> Result<Option<Vec<u8>>> {
    self.read(key, Some(len)).await
  }

  async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
    let client = self.client().await;
    let put = client.put_object().bucket(&self.config.bucket).key(self.full_key(key)).body(ByteStream::from(bytes));
    put.send().await.map(drop).map_err(|e| self.error("put", e))
  }

  async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
    self.list_under(prefix, None, None).await
  }

  async fn list_before(&self, prefix: &str, end: &str) -> Result<Vec<ObjectMeta>> {
    self.list_under(prefix, None, Some(end)).await
  }

  async fn list_children(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
    self.list_under(prefix, Some("/"), None).await
  }

  fn kind(&self) -> &'static str {
    "s3"
  }

  async fn delete(&self, keys: &[String]) -> Result<()> {
    self.delete_keys(keys).await
  }
}

impl S3Tier {
  /// Pages of a listing, in key order; with `end`, no page is asked for once a key reaches it.
  async fn list_under(&self, prefix: &str, delimiter: Option<&str>, end: Option<&str>) -> Result<Vec<ObjectMeta>> {
    let client = self.client().await;
    let full = self.full_key(prefix);
    let request =
      client.list_objects_v2().bucket(&self.config.bucket).prefix(&full).set_delimiter(delimiter.map(str::to_owned));
    let mut pages = request.into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
      let page = page.map_err(|e| self.error("list", e))?;
      keys.extend(page.contents().iter().filter_map(|o| {
        let key = o.key()?.strip_prefix(self.config.prefix.as_str())?.to_owned();
        let modified_ms = o.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(0).max(0) as u64;
        Some(ObjectMeta { key, size: o.size().unwrap_or(0).max(0) as u64, modified_ms })
      }));
      // Only where pages come in key order (general-purpose buckets; directory buckets do not sort).
      if let Some(end) = end.filter(|_| keys.windows(2).all(|w| w[0].key <= w[1].key)) {
        if keys.last().is_some_and(|o| o.key.as_str() >= end) {
          keys.retain(|o| o.key.as_str() < end);
          break;
        }
      }
    }
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(keys)
  }

  async fn delete_keys(&self, keys: &[String]) -> Result<()> {
    let client = self.client().await;
    // DeleteObjects takes at most 1000 keys.
    for batch in keys.chunks(1000) {
      let ids = batch
        .iter()
        .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
      let delete = Delete::builder()
        .set_objects(Some(ids))
        .quiet(true)
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
      let out = client
        .delete_objects()
        .bucket(&self.config.bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| self.error("delete", e))?;
      if let Some(failed) = out.errors().first() {
        return Err(StoreError::Backend {
          code: "ERR_S3",
          reason: format!(
            "s3 delete in bucket {}: {} {}",
            self.config.bucket,
            failed.code().unwrap_or(""),
            failed.message().unwrap_or("")
          ),
        });
      }
    }
    Ok(())
  }
}
