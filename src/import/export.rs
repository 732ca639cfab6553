//! `export`: stored sessions out as the RemoteAuth zips `extract` writes, into a folder (`<session>.zip`) or an S3
//! prefix in wwebjs-aws-s3's layout, so any other store, or a plain RemoteAuth with one, can take them.

use std::path::PathBuf;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{Failure, Source};
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::settings::S3Settings;
use crate::store::{Pick, Store};
use crate::tier::{ObjectTier, S3Tier};
use crate::transfer::Progress;

/// No `Debug`: the S3 settings may hold keys.
#[derive(Clone, Default)]
pub struct ExportOptions {
  /// Only these sessions; default every stored one.
  pub sessions: Option<Vec<String>>,
  /// Each session's newest backup version saved at or before this time (ms), instead of its stored copy.
  pub at_ms: Option<u64>,
  /// How an `s3://` target is reached; bucket and prefix come from the URL.
  pub s3: Option<S3Settings>,
  pub concurrency: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exported {
  pub session: String,
  /// The file or object written.
  pub key: String,
  pub bytes: Option<u64>,
  pub error: Option<Failure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
  pub target: String,
  pub sessions: Vec<Exported>,
  pub exported: u64,
  pub failed: u64,
  pub bytes: u64,
  pub ms: u64,
}

enum Target {
  Folder(PathBuf),
  S3 { tier: Box<S3Tier>, prefix: String, bucket: String },
}

impl Target {
  fn open(text: &str, s3: Option<&S3Settings>) -> Result<Self> {
    match Source::parse(text, None)? {
      Source::Folder(dir) => Ok(Self::Folder(dir)),
      Source::S3 { bucket, prefix } => {
        let settings =
          S3Settings { bucket: bucket.clone(), prefix: Some(prefix.clone()), ..s3.cloned().unwrap_or_default() };
        Ok(Self::S3 { tier: Box::new(S3Tier::open(settings.config()?)?), prefix, bucket })
      }
      Source::Redis { .. } => Err(StoreError::InvalidArgument("export writes to a folder or s3://… only".into())),
    }
  }

  fn describe(&self) -> String {
    match self {
      Self::Folder(dir) => dir.display().to_string(),
      Self::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
    }
  }
}

/// Writes each session (see `ExportOptions`) to `target`; a session that fails is reported and the others go on.
pub async fn export_to(
  store: &Store,
  target: &str,
  opts: &ExportOptions,
  progress: Option<&Progress>,
) -> Result<ExportReport> {
  let started = Instant::now();
  let target = Target::open(target, opts.s3.as_ref())?;
  let sessions: Vec<String> = match &opts.sessions {
    Some(names) => names.clone(),
    None => store.list().await?.into_iter().map(|s| s.key.to_string()).collect(),
  };
  if let Target::Folder(dir) = &target {
    std::fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))?;
  }
  let total = sessions.len() as u32;
  let pick = Pick { version: None, at_ms: opts.at_ms };
  let mut runs = stream::iter(sessions)
    .map(|session| {
      let (target, pick) = (&target, &pick);
      async move {
        let mut out = Exported { key: format!("{session}.zip"), session, bytes: None, error: None };
        match export_one(store, target, &out.session, pick).await {
          Ok((key, bytes)) => (out.key, out.bytes) = (key, Some(bytes)),
          Err(err) => out.error = Some(Failure::from(&err)),
        }
        out
      }
    })
    .buffer_unordered(opts.concurrency.unwrap_or(8).max(1));
  let mut done = Vec::new();
  while let Some(one) = runs.next().await {
    done.push(one);
    if let Some(progress) = progress {
      progress(done.len() as u32, total);
    }
  }
  done.sort_by(|a, b| a.session.cmp(&b.session));
  Ok(ExportReport {
    target: target.describe(),
    exported: done.iter().filter(|s| s.error.is_none()).count() as u64,
    failed: done.iter().filter(|s| s.error.is_some()).count() as u64,
    bytes: done.iter().filter_map(|s| s.bytes).sum(),
    ms: started.elapsed().as_millis() as u64,
    sessions: done,
  })
}

/// The key written and its size.
async fn export_one(store: &Store, target: &Target, session: &str, pick: &Pick) -> Result<(String, u64)> {
  let key = SessionKey::parse(session)?;
  let name = format!("{key}.zip");
  match target {
    Target::Folder(dir) => {
      let path = dir.join(&name);
      store.export_version(key.as_str(), &path, pick).await?;
      let len = std::fs::metadata(&path).map_err(StoreError::io("stat", &path))?.len();
      Ok((path.display().to_string(), len))
    }
    Target::S3 { tier, prefix, .. } => {
      // Written as `extract` writes it, then uploaded whole: the object is the old zip or the new, never a part.
      let scratch = tempfile::tempdir().map_err(StoreError::io("create temp directory", std::env::temp_dir()))?;
      let path = scratch.path().join(&name);
      store.export_version(key.as_str(), &path, pick).await?;
      let bytes = tokio::fs::read(&path).await.map_err(StoreError::io("read", &path))?;
      let len = bytes.len() as u64;
      tier.put(&name, bytes).await?;
      Ok((format!("{prefix}{name}"), len))
    }
  }
}
