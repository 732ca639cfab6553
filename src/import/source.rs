//! Where another store keeps its sessions, as readers of bytes: a folder of `<session>.zip` files, an S3 prefix in
//! wwebjs-aws-s3's layout (`<remoteDataPath>/<session>.zip`), or Redis keys matching a pattern. Readers only list
//! and read; they never write to or delete from the source.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::settings::S3Settings;
use crate::tier::{ObjectTier, RedisConfig, RedisTarget, RedisTier, S3Tier};

/// The pattern of the hand-written Redis store many services copy.
pub const DEFAULT_PATTERN: &str = "wa:session:*";

/// One stored session of the source.
#[derive(Debug, Clone)]
pub struct Item {
  /// Where it is in the source: a file name, an object key, a Redis key.
  pub key: String,
  /// The part of the key that names the session.
  pub id: String,
  pub size: Option<u64>,
  /// Last written, ms since the Unix epoch, where the source says (files, S3; not Redis).
  pub modified_ms: Option<u64>,
  /// Listed only to be reported: why it is not read (a `<session>.zip` that is a symlink).
  pub refused: Option<String>,
}

#[async_trait]
pub trait Reader: Send + Sync {
  async fn list(&self) -> Result<Vec<Item>>;
  /// `None` when the item went away since the listing.
  async fn read(&self, item: &Item) -> Result<Option<Vec<u8>>>;
  /// For reports: no credentials.
  fn describe(&self) -> String;
}

/// A source as a user names it: `s3://bucket/prefix/`, `redis://…` / `rediss://…` / `unix://…` (comma-separated
/// URLs: a cluster), or a folder.
pub enum Source {
  Folder(PathBuf),
  S3 { bucket: String, prefix: String },
  Redis { urls: Vec<String>, pattern: String },
}

impl Source {
  pub fn parse(text: &str, pattern: Option<&str>) -> Result<Self> {
    let bad = |reason: &str| StoreError::InvalidArgument(format!("import source: {reason}"));
    if let Some(rest) = text.strip_prefix("s3://") {
      let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
      if bucket.is_empty() {
        return Err(bad("s3://<bucket>/<prefix> names no bucket"));
      }
      return Ok(Self::S3 { bucket: bucket.into(), prefix: folder_prefix(prefix) });
    }
    let redis = ["redis://", "rediss://", "unix://", "redis+unix://"];
    if redis.iter().any(|scheme| text.starts_with(scheme)) {
      let urls: Vec<String> = text.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
      let pattern = pattern.unwrap_or(DEFAULT_PATTERN).to_owned();
      if pattern.is_empty() {
        return Err(bad("the key pattern is empty"));
      }
      return Ok(Self::Redis { urls, pattern });
    }
    if text.contains("://") {
      return Err(bad("use a folder, s3://bucket/prefix/ or redis://… (for MongoDB, export the zips first: see docs)"));
    }
    if pattern.is_some() {
      return Err(bad("a key pattern applies to a Redis source only"));
    }
    Ok(Self::Folder(crate::store::cwd()?.join(text)))
  }

  /// Its reader; an S3 source connects as `s3` says (endpoint, region, path style, credentials).
  pub fn reader(self, s3: Option<&S3Settings>) -> Result<Box<dyn Reader>> {
    Ok(match self {
      Self::Folder(dir) => Box::new(Folder { dir }),
      Self::S3 { bucket, prefix } => {
        let settings = S3Settings { bucket, prefix: Some(prefix), ..s3.cloned().unwrap_or_default() };
        Box::new(S3 { tier: S3Tier::open(settings.config()?)?, settings })
      }
      Self::Redis { urls, pattern } => {
        let target = match urls.len() {
          1 => RedisTarget::Single(urls[0].clone()),
          _ => RedisTarget::Cluster(urls),
        };
        let config = RedisConfig::new(target);
        let endpoint = config.endpoint();
        Box::new(Redis { tier: RedisTier::open(config)?, endpoint, pattern })
      }
    })
  }
}

/// wwebjs-aws-s3 joins `remoteDataPath` and `<session>.zip` with `path.join`: `sessions` means `sessions/`.
fn folder_prefix(prefix: &str) -> String {
  let trimmed = prefix.trim_start_matches("./").trim_start_matches('/');
  match trimmed {
    "" | "." => String::new(),
    p if p.ends_with('/') => p.to_owned(),
    p => format!("{p}/"),
  }
}

fn zip_stem(name: &str) -> Option<&str> {
  name.strip_suffix(".zip").filter(|stem| !stem.is_empty())
}

struct Folder {
  dir: PathBuf,
}

#[async_trait]
impl Reader for Folder {
  async fn list(&self) -> Result<Vec<Item>> {
    let dir = self.dir.clone();
    crate::blocking::run(move || {
      let mut items = Vec::new();
      for entry in std::fs::read_dir(&dir).map_err(StoreError::io("read directory", &dir))? {
        let entry = entry.map_err(StoreError::io("read directory", &dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().map_err(StoreError::io("stat", entry.path()))?;
        let Some(id) = zip_stem(&name) else { continue };
        // A link is not followed (it may point anywhere), but it is reported: the operator meant it as a session.
        if meta.file_type().is_symlink() {
          let refused = Some("a symlink, not followed: copy the file itself into the folder".to_owned());
          items.push(Item { id: id.to_owned(), key: name, size: None, modified_ms: None, refused });
          continue;
        }
        if !meta.is_file() {
          continue;
        }
        let modified_ms = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let modified_ms = modified_ms.map(|d| d.as_millis() as u64);
        items.push(Item { id: id.to_owned(), key: name, size: Some(meta.len()), modified_ms, refused: None });
      }
      items.sort_by(|a, b| a.key.cmp(&b.key));
      Ok(items)
    })
    .await
  }

  async fn read(&self, item: &Item) -> Result<Option<Vec<u8>>> {
    let path = self.dir.join(&item.key);
    match tokio::fs::read(&path).await {
      Ok(bytes) => Ok(Some(bytes)),
      Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
      Err(e) => Err(StoreError::io("read", path)(e)),
    }
  }

  fn describe(&self) -> String {
    self.dir.display().to_string()
  }
}

struct S3 {
  tier: S3Tier,
  settings: S3Settings,
}

#[async_trait]
impl Reader for S3 {
  async fn list(&self) -> Result<Vec<Item>> {
    let objects = self.tier.list_children("").await?;
    let items = objects.into_iter().filter_map(|o| {
      let id = zip_stem(&o.key)?.to_owned();
      let modified_ms = (o.modified_ms > 0).then_some(o.modified_ms);
      Some(Item { id, size: Some(o.size), modified_ms, key: o.key, refused: None })
    });
    Ok(items.collect())
  }

  async fn read(&self, item: &Item) -> Result<Option<Vec<u8>>> {
    self.tier.get(&item.key).await
  }

  fn describe(&self) -> String {
    format!("s3://{}/{}", self.settings.bucket, self.settings.prefix.as_deref().unwrap_or(""))
  }
}

struct Redis {
  tier: RedisTier,
  endpoint: String,
  pattern: String,
}

impl Redis {
  /// The key without the pattern's fixed start and end: `wa:session:*` names `wa:session:<id>` `<id>`.
  fn id<'k>(&self, key: &'k str) -> &'k str {
    let globs = |c: char| matches!(c, '*' | '?' | '[' | ']' | '\\');
    let start = &self.pattern[..self.pattern.find(globs).unwrap_or(self.pattern.len())];
    let end = self.pattern.rsplit_once('*').map_or("", |(_, end)| end);
    let end = if end.contains(globs) { "" } else { end };
    let id = key.strip_prefix(start).unwrap_or(key);
    id.strip_suffix(end).filter(|id| !id.is_empty()).unwrap_or(id)
  }
}

#[async_trait]
impl Reader for Redis {
  async fn list(&self) -> Result<Vec<Item>> {
    let keys = self.tier.scan_keys(&self.pattern).await?;
    let items = keys.into_iter().map(|key| Item {
      id: self.id(&key).to_owned(),
      key,
      size: None,
      modified_ms: None,
      refused: None,
    });
    Ok(items.collect())
  }

  async fn read(&self, item: &Item) -> Result<Option<Vec<u8>>> {
    self.tier.get_key(&item.key).await
  }

  fn describe(&self) -> String {
    format!("{} {}", self.endpoint, self.pattern)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn sources_are_told_apart() {
    let s3 = |text| match Source::parse(text, None).unwrap() {
      Source::S3 { bucket, prefix } => (bucket, prefix),
      _ => panic!("not s3"),
    };
    assert_eq!(s3("s3://b/sessions"), ("b".into(), "sessions/".into()));
    assert_eq!(s3("s3://b/a/b/"), ("b".into(), "a/b/".into()));
    assert_eq!(s3("s3://b"), ("b".into(), String::new()));
    assert!(
      matches!(Source::parse("rediss://h:1", None).unwrap(), Source::Redis { pattern, .. } if pattern == DEFAULT_PATTERN)
    );
    let cluster = Source::parse("redis://a:1, redis://b:2", Some("x:*")).unwrap();
    assert!(matches!(cluster, Source::Redis { urls, .. } if urls.len() == 2));
    assert!(matches!(Source::parse("./zips", None).unwrap(), Source::Folder(_)));
    assert_eq!(Source::parse("mongodb://h/db", None).err().unwrap().code(), "ERR_INVALID_ARG");
    assert_eq!(Source::parse("./zips", Some("x*")).err().unwrap().code(), "ERR_INVALID_ARG");
    assert_eq!(Source::parse("s3:///p", None).err().unwrap().code(), "ERR_INVALID_ARG");
  }

  #[test]
  fn redis_ids_drop_the_pattern_around_them() {
    let reader = |pattern: &str| Redis {
      tier: RedisTier::open(RedisConfig::new(RedisTarget::Single("redis://h".into()))).unwrap(),
      endpoint: String::new(),
      pattern: pattern.into(),
    };
    assert_eq!(reader("wa:session:*").id("wa:session:RemoteAuth-a"), "RemoteAuth-a");
    assert_eq!(reader("s:*:zip").id("s:abc:zip"), "abc");
    assert_eq!(reader("s:[ab]*").id("s:abc"), "abc");
  }
}
