//! `import`: every session another RemoteAuth store holds (a folder of zips, wwebjs-aws-s3's S3 prefix, the
//! hand-written Redis store's keys), checked and stored as `save` would, without touching the source; `export`:
//! every stored session back out as the zip RemoteAuth restores.

mod export;
mod source;

use std::collections::HashMap;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use serde::Serialize;

pub use self::export::{export_to, ExportOptions, ExportReport, Exported};
pub use self::source::{Item, Reader, Source, DEFAULT_PATTERN};
pub use crate::archive::unwrap_zip;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::settings::S3Settings;
use crate::store::{ImportOutcome, Store};
use crate::transfer::Progress;

/// No `Debug`: the S3 settings may hold keys.
#[derive(Clone, Default)]
pub struct ImportOptions {
  /// Write (else only check and report).
  pub execute: bool,
  /// Read and compare every session, even one whose stored copy is newer than the source's last write.
  pub overwrite: bool,
  /// Session name for a source key's id, with `{id}` in it; default `{id}`.
  pub name: Option<String>,
  /// Redis key pattern; default `wa:session:*`.
  pub pattern: Option<String>,
  /// How an `s3://` source is reached (endpoint, region, path style, credentials); bucket and prefix come from the URL.
  pub s3: Option<S3Settings>,
  /// Sessions in flight at once; default 8.
  pub concurrency: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
  /// Dry run: would be imported.
  Planned,
  Imported,
  /// The store holds the same entries already.
  Unchanged,
  /// The stored copy was saved after the source's last write; the source was not read.
  StoreNewer,
  /// Listed, then gone from the source before it was read.
  Gone,
  Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
  pub code: &'static str,
  pub message: String,
}

impl From<&StoreError> for Failure {
  fn from(err: &StoreError) -> Self {
    Self { code: err.code(), message: err.to_string() }
  }
}

/// One source entry's import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedSession {
  pub session: String,
  /// Where it is in the source.
  pub key: String,
  /// How the zip was wrapped: `zip`, `gzip(zip)`, `base64(zip)`, `json(base64(zip))`, …
  pub shape: Option<String>,
  pub source_bytes: Option<u64>,
  pub stored_bytes: Option<u64>,
  pub status: Status,
  pub error: Option<Failure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
  pub execute: bool,
  pub source: String,
  pub sessions: Vec<ImportedSession>,
  /// Imported (planned, in a dry run).
  pub imported: u64,
  /// Unchanged, newer in the store, or gone.
  pub skipped: u64,
  pub failed: u64,
  /// Source bytes of what was (or would be) imported, and what the store keeps of them.
  pub bytes_before: u64,
  pub bytes_after: u64,
  pub ms: u64,
}

const DEFAULT_CONCURRENCY: usize = 8;

/// Imports every session of `source` (see the module docs). A failing entry is reported and the others go on;
/// an error is returned only when the source cannot be listed at all.
pub async fn import_from(
  store: &Store,
  source: &str,
  opts: &ImportOptions,
  progress: Option<&Progress>,
) -> Result<ImportReport> {
  let started = Instant::now();
  let template = opts.name.clone().unwrap_or_else(|| "{id}".into());
  if !template.contains("{id}") {
    return Err(StoreError::InvalidOption { name: "name", reason: "must contain {id}".into() });
  }
  let reader = Source::parse(source, opts.pattern.as_deref())?.reader(opts.s3.as_ref())?;
  let items = reader.list().await?;
  let mut claimed: HashMap<String, usize> = HashMap::new();
  for item in &items {
    *claimed.entry(template.replace("{id}", &item.id)).or_default() += 1;
  }
  let total = items.len() as u32;
  let reader = &*reader;
  let mut runs = stream::iter(items)
    .map(|item| {
      let session = template.replace("{id}", &item.id);
      let collides = claimed.get(&session).copied().unwrap_or(0) > 1;
      import_item(store, reader, item, session, collides, opts)
    })
    .buffer_unordered(opts.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1));
  let mut sessions = Vec::new();
  while let Some(done) = runs.next().await {
    sessions.push(done);
    if let Some(progress) = progress {
      progress(sessions.len() as u32, total);
    }
  }
  sessions.sort_by(|a, b| a.key.cmp(&b.key));
  let done = |s: &&ImportedSession| matches!(s.status, Status::Imported | Status::Planned);
  let skipped = |s: &&ImportedSession| matches!(s.status, Status::Unchanged | Status::StoreNewer | Status::Gone);
  Ok(ImportReport {
    execute: opts.execute,
    source: reader.describe(),
    imported: sessions.iter().filter(done).count() as u64,
    skipped: sessions.iter().filter(skipped).count() as u64,
    failed: sessions.iter().filter(|s| s.error.is_some()).count() as u64,
    bytes_before: sessions.iter().filter(done).filter_map(|s| s.source_bytes).sum(),
    bytes_after: sessions.iter().filter(done).filter_map(|s| s.stored_bytes).sum(),
    ms: started.elapsed().as_millis() as u64,
    sessions,
  })
}

async fn import_item(
  store: &Store,
  reader: &dyn Reader,
  item: Item,
  session: String,
  collides: bool,
  opts: &ImportOptions,
) -> ImportedSession {
  let mut out = ImportedSession {
    session,
    key: item.key.clone(),
    shape: None,
    source_bytes: item.size,
    stored_bytes: None,
    status: Status::Failed,
    error: None,
  };
  match import_one(store, reader, &item, collides, opts, &mut out).await {
    Ok(status) => out.status = status,
    Err(err) => {
      // An import that landed stays `imported`; the error then says what failed after it (its backup).
      if out.status != Status::Imported {
        out.status = Status::Failed;
      }
      out.error = Some(Failure::from(&err));
    }
  }
  out
}

async fn import_one(
  store: &Store,
  reader: &dyn Reader,
  item: &Item,
  collides: bool,
  opts: &ImportOptions,
  out: &mut ImportedSession,
) -> Result<Status> {
  let key = SessionKey::parse(&out.session)?;
  if collides {
    let reason = format!("more than one source key maps to the session {key}; give a --name template");
    return Err(StoreError::InvalidOption { name: "name", reason });
  }
  if let Some(why) = &item.refused {
    return Err(StoreError::ImportFormat(why.clone()));
  }
  if let (false, Some(modified_ms)) = (opts.overwrite, item.modified_ms) {
    if store.holds_since(&key, modified_ms).await? {
      return Ok(Status::StoreNewer);
    }
  }
  // Decoded values may not grow past what a session may unpack to (a gzip bomb stops here).
  let max_bytes = store.pack_options().limits.max_unpacked_bytes;
  if item.size.is_some_and(|size| size > max_bytes) {
    return Err(StoreError::ArchiveLimit(format!("{} bytes in the source, limit {max_bytes}", item.size.unwrap_or(0))));
  }
  let Some(value) = reader.read(item).await? else { return Ok(Status::Gone) };
  out.source_bytes = Some(value.len() as u64);
  if value.starts_with(&crate::archive::MAGIC) {
    // This store's own archive: the source is this store's keys (an import run again on the Redis it switched on).
    out.shape = Some("ruststore".into());
    if store.holds_exactly(&key, &value).await? {
      return Ok(Status::Unchanged);
    }
    let why = "a RustStore archive, not another store's value: this store already holds its sessions this way (copy                stores with restore/backup, or export --to a folder and import that)";
    return Err(StoreError::ImportFormat(why.into()));
  }
  let (zip, shape) = crate::blocking::run(move || unwrap_zip(value, max_bytes)).await?;
  out.shape = Some(shape);
  match store.import_zip(&key, zip, opts.execute).await? {
    ImportOutcome::Unchanged => Ok(Status::Unchanged),
    ImportOutcome::Planned { stored_bytes } => {
      out.stored_bytes = Some(stored_bytes);
      Ok(Status::Planned)
    }
    ImportOutcome::Imported { stored_bytes, backup_error } => {
      out.stored_bytes = Some(stored_bytes);
      out.status = Status::Imported;
      match backup_error {
        Some(err) => Err(err),
        None => Ok(Status::Imported),
      }
    }
  }
}
