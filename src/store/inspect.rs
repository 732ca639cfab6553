//! What an operator asks of a store: how big it is, whether every copy is sound, which sessions went stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::{cwd, Store};
use crate::archive;
use crate::backup::IncrementalUsage;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;

/// How many tier requests run at once while inspecting.
const CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct TierStats {
  /// `dir`, `redis`, `s3`.
  pub tier: &'static str,
  /// `primary` or `backup`.
  pub role: &'static str,
  pub sessions: u64,
  /// Objects held: one per session in a primary, one per version in a backup tier.
  pub objects: u64,
  pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskStats {
  pub path: PathBuf,
  pub total_bytes: u64,
  pub free_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Largest {
  pub session: String,
  pub bytes: u64,
}

/// Incremental backup versions: what they represent against what they store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IncrementalStats {
  pub sessions: u64,
  pub versions: u64,
  /// Sum of every kept version's file sizes: what whole copies would hold, uncompressed.
  pub logical_bytes: u64,
  /// Manifests and chunks in the bucket.
  pub stored_bytes: u64,
  /// `logical_bytes / stored_bytes`.
  pub dedup_ratio: f64,
  /// Mean bytes a backup uploaded, over versions that had a predecessor (a session's first upload is whole);
  /// `None` before any session's second backup.
  pub average_uploaded_bytes: Option<u64>,
}

/// The figures `stats` reports. Session sizes are of each session's newest stored copy.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
  pub tiers: Vec<TierStats>,
  /// Distinct sessions in any tier.
  pub sessions: u64,
  pub average_session_bytes: u64,
  pub largest_session: Option<Largest>,
  /// The file system under RemoteAuth's data path.
  pub disk: Option<DiskStats>,
  /// Embedded tier only: free space on its disk × 0.8 / average session size.
  pub sessions_fit_estimate: Option<u64>,
  /// Sessions whose primary copy is newer than their newest backup (all of them when never backed up).
  pub backup_lag: Option<u64>,
  /// `None` when the backup tier holds no incremental version.
  pub incremental: Option<IncrementalStats>,
  /// A memory-bound primary's figures (Redis): `None` for one that never evicts (the embedded tier).
  pub memory: Option<crate::tier::MemoryInfo>,
  /// What crashed writes left on the local disk that no live process owns (`cleanup --execute` removes it).
  pub crash_leftovers: LeftoverCount,
  /// Sessions of the primary that another store left (`wa:session:<id>` = gzip(zip), …): read and restored as
  /// they are, stored in this store's format by their next save (or `import`). Counted in `sessions`.
  pub legacy_sessions: u64,
  /// Each backed-up session's newest backup version time (ms), for metrics (not printed).
  #[serde(skip)]
  pub newest_backup_ms: BTreeMap<String, u64>,
}

/// How many leftovers of crashed writes, and their bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeftoverCount {
  pub files: u64,
  pub bytes: u64,
}

/// A stored copy whose checksum does not hold (or that cannot be read).
#[derive(Debug, Clone, Serialize)]
pub struct BadCopy {
  pub session: String,
  pub tier: &'static str,
  /// The backup version's key; `None` for the primary copy.
  pub version: Option<String>,
  pub code: &'static str,
  pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
  /// Copies read and checked.
  pub checked: u64,
  pub bad: Vec<BadCopy>,
  /// Of the copies checked, values another store left (checked by converting them, as a read does).
  pub legacy: u64,
  /// With `verify --repair`: what the repair did, before the check whose result this is.
  #[serde(skip_serializing_if = "Option::is_none")]
  pub repaired: Option<Vec<super::RepairedVersion>>,
}

/// When a session was last saved, by its newest copy in any tier.
#[derive(Debug, Clone, Serialize)]
pub struct LastSaved {
  pub session: String,
  pub saved_at_ms: u64,
  pub bytes: u64,
}

/// Total and free space of the file system holding `path` (or its nearest existing parent).
pub fn disk_usage(path: &Path) -> Result<DiskStats> {
  let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
  let stats = fs4::statvfs(existing).map_err(StoreError::io("read free space of", existing))?;
  Ok(DiskStats { path: path.to_path_buf(), total_bytes: stats.total_space(), free_bytes: stats.available_space() })
}

/// The read finished within `timeout` without an error.
async fn answers<T>(timeout: std::time::Duration, work: impl std::future::Future<Output = Result<T>>) -> bool {
  matches!(tokio::time::timeout(timeout, work).await, Ok(Ok(_)))
}

/// The primary's copies: this store's archives by header, and values another store left (`legacy`) by size.
#[derive(Default)]
struct PrimaryCopies {
  headers: Vec<(SessionKey, archive::Header)>,
  legacy: Vec<(SessionKey, u64)>,
}

/// Per tier figures, each session's newest copy as (bytes, saved at), backup lag, incremental figures.
struct NewestCopies {
  tiers: Vec<TierStats>,
  newest: BTreeMap<SessionKey, (u64, u64)>,
  lag: Option<u64>,
  incremental: Option<IncrementalStats>,
  newest_backup_ms: BTreeMap<String, u64>,
  legacy: u64,
}

fn incremental_stats<'a>(usage: impl Iterator<Item = &'a IncrementalUsage>) -> IncrementalStats {
  let mut stats = IncrementalStats::default();
  let mut later: Vec<u64> = Vec::new();
  for u in usage {
    stats.sessions += 1;
    stats.versions += u.versions;
    stats.logical_bytes += u.logical_bytes;
    stats.stored_bytes += u.stored_bytes;
    later.extend(u.uploaded_bytes.iter().skip(1));
  }
  stats.dedup_ratio = match stats.stored_bytes {
    0 => 0.0,
    stored => (stats.logical_bytes as f64 / stored as f64 * 100.0).round() / 100.0,
  };
  stats.average_uploaded_bytes = later.iter().copied().sum::<u64>().checked_div(later.len() as u64);
  stats
}

impl Store {
  /// Each primary session's header, read concurrently, and the sessions another store left (with their sizes);
  /// a header of this store's that does not parse is left out.
  async fn primary_headers(&self) -> Result<PrimaryCopies> {
    let Some(primary) = &self.primary else { return Ok(PrimaryCopies::default()) };
    let heads = stream::iter(primary.list().await?)
      .map(|key| async move {
        let head = primary.head(&key, archive::HEADER_LEN).await?;
        // Another store's value (see `legacy`): its size needs the whole value.
        let legacy_bytes = match &head {
          Some(head) if super::legacy::is_foreign(head) => primary.get(&key).await?.map(|v| v.len() as u64),
          _ => None,
        };
        Ok::<_, StoreError>((head, legacy_bytes, key))
      })
      .buffered(CONCURRENCY)
      .try_collect::<Vec<_>>()
      .await?;
    let mut copies = PrimaryCopies::default();
    // A session deleted between list and head is skipped, as is one whose header does not parse (extract reports it).
    for (head, legacy_bytes, key) in heads {
      match (head, legacy_bytes) {
        (_, Some(bytes)) => copies.legacy.push((key, bytes)),
        (Some(head), None) => copies.headers.extend(archive::peek(&head).ok().map(|h| (key, h))),
        (None, None) => {}
      }
    }
    Ok(copies)
  }

  /// Newest copy of every session: (bytes, saved at) by session, from the primary, else its newest backup.
  async fn newest_copies(&self) -> Result<NewestCopies> {
    let mut tiers = Vec::new();
    let mut newest: BTreeMap<SessionKey, (u64, u64)> = BTreeMap::new();
    let PrimaryCopies { headers: primary, legacy } = self.primary_headers().await?;
    if let Some(tier) = &self.primary {
      let bytes =
        primary.iter().map(|(_, h)| h.stored_bytes()).sum::<u64>() + legacy.iter().map(|(_, b)| b).sum::<u64>();
      let n = (primary.len() + legacy.len()) as u64;
      tiers.push(TierStats { tier: tier.kind(), role: "primary", sessions: n, objects: n, bytes });
    }
    for (key, header) in &primary {
      newest.insert(key.clone(), (header.stored_bytes(), header.created_ms));
    }
    // Saved at an unknown time: never stale (cleanup), never older than what a migration brings.
    for (key, bytes) in &legacy {
      newest.insert(key.clone(), (*bytes, u64::MAX));
    }
    let (mut lag, mut incremental, mut newest_backup_ms) = (None, None, BTreeMap::new());
    if let Some(backups) = &self.backups {
      let index = backups.index().await?;
      let versions = index.values().flatten();
      let role = if self.primary.is_some() { "backup" } else { "primary" };
      let mut bytes: u64 = versions.clone().filter(|v| !v.incremental).map(|v| v.size).sum();
      let mut usage = BTreeMap::new();
      if versions.clone().any(|v| v.incremental) {
        usage = backups.incremental_usage().await?;
        bytes += usage.values().map(|u| u.stored_bytes).sum::<u64>();
        incremental = Some(incremental_stats(usage.values()));
      }
      tiers.push(TierStats {
        tier: backups.kind(),
        role,
        sessions: index.len() as u64,
        objects: versions.clone().count() as u64,
        bytes,
      });
      if self.primary.is_some() {
        let behind =
          primary.iter().filter(|(key, h)| index.get(key).and_then(|v| v.last()).is_none_or(|v| v.ms < h.created_ms));
        let legacy_unbacked = legacy.iter().filter(|(key, _)| !index.contains_key(key));
        lag = Some((behind.count() + legacy_unbacked.count()) as u64);
      }
      for (key, versions) in index {
        if let Some(v) = versions.last() {
          newest_backup_ms.insert(key.to_string(), v.ms);
          // An incremental version's own object is its manifest: the session costs its chunks and manifests.
          let size = match v.incremental {
            true => usage.get(&key).map_or(v.size, |u| u.stored_bytes),
            false => v.size,
          };
          newest.entry(key).or_insert((size, v.ms));
        }
      }
    }
    let legacy = legacy.len() as u64;
    Ok(NewestCopies { tiers, newest, lag, incremental, newest_backup_ms, legacy })
  }

  /// Sessions per tier, sizes, free disk under the data path, and how far the backups lag.
  pub async fn stats(&self) -> Result<Stats> {
    let NewestCopies { tiers, newest, lag: backup_lag, incremental, newest_backup_ms, legacy } =
      self.newest_copies().await?;
    let sessions = newest.len() as u64;
    let total: u64 = newest.values().map(|(bytes, _)| bytes).sum();
    let average_session_bytes = total.checked_div(sessions).unwrap_or(0);
    let largest_session = newest
      .iter()
      .max_by_key(|(_, (bytes, _))| *bytes)
      .map(|(key, (bytes, _))| Largest { session: key.to_string(), bytes: *bytes });
    let disk = blocking_disk(cwd()?.join(&self.config.data_path)).await?;
    // Only the embedded tier keeps stored copies on a local disk; Redis and S3 sizes are theirs to report.
    let local = match &self.config.local_dir {
      Some(dir) => blocking_disk(dir.clone()).await?,
      None => None,
    };
    let sessions_fit_estimate = match (average_session_bytes, &local) {
      (0, _) | (_, None) => None,
      (avg, Some(d)) => Some(d.free_bytes / 5 * 4 / avg),
    };
    let memory = self.memory().await?;
    let left = self.crash_leftovers(false).await?;
    let crash_leftovers = LeftoverCount { files: left.len() as u64, bytes: left.iter().map(|l| l.bytes).sum() };
    Ok(Stats {
      tiers,
      sessions,
      average_session_bytes,
      largest_session,
      disk,
      sessions_fit_estimate,
      backup_lag,
      incremental,
      memory,
      crash_leftovers,
      legacy_sessions: legacy,
      newest_backup_ms,
    })
  }

  /// Whether each tier answers a one-key read within `timeout`: (tier, role, answered).
  pub async fn probe(&self, timeout: std::time::Duration) -> Vec<(&'static str, &'static str, bool)> {
    let key = SessionKey::parse("wwebjs-rust-store-probe").expect("a valid name");
    let primary = async {
      match &self.primary {
        Some(tier) => Some((tier.kind(), "primary", answers(timeout, tier.exists(&key)).await)),
        None => None,
      }
    };
    let backups = async {
      let role = if self.primary.is_some() { "backup" } else { "primary" };
      match &self.backups {
        Some(backups) => Some((backups.kind(), role, answers(timeout, backups.exists(&key)).await)),
        None => None,
      }
    };
    let (primary, backups) = tokio::join!(primary, backups);
    primary.into_iter().chain(backups).collect()
  }

  /// The primary's memory figures, where it is memory-bound (Redis).
  pub async fn memory(&self) -> Result<Option<crate::tier::MemoryInfo>> {
    match &self.primary {
      Some(primary) => primary.memory().await,
      None => Ok(None),
    }
  }

  /// When the session's newest copy in any tier was saved (ms); `None` when no tier has it. A copy whose header
  /// cannot be read counts as saved at the end of time: never replaced, never stale.
  pub async fn saved_at(&self, key: &SessionKey) -> Result<Option<u64>> {
    let mut newest = None;
    if let Some(primary) = &self.primary {
      if let Some(head) = primary.head(key, archive::HEADER_LEN).await? {
        newest = Some(archive::peek(&head).map_or(u64::MAX, |h| h.created_ms));
      }
    }
    if let Some(backups) = &self.backups {
      newest = newest.max(backups.versions(key).await?.last().map(|v| v.ms));
    }
    Ok(newest)
  }

  /// Every stored session with the time of its newest copy in any tier.
  pub async fn last_saved(&self) -> Result<Vec<LastSaved>> {
    let newest = self.newest_copies().await?.newest;
    // A legacy value's save time is unknown (`u64::MAX`): it is never stale.
    let saved =
      newest.into_iter().map(|(key, (bytes, ms))| LastSaved { session: key.to_string(), saved_at_ms: ms, bytes });
    Ok(saved.collect())
  }

  /// Reads every copy in every tier (each backup version too) and checks its checksum, and with keys configured
  /// that it decrypts. `progress` is told `(done, total)`.
  pub async fn verify(&self, progress: Option<&crate::transfer::Progress>) -> Result<Verified> {
    enum Copy {
      Primary(SessionKey),
      Backup(SessionKey, crate::backup::Version),
    }
    let mut copies = Vec::new();
    if let Some(primary) = &self.primary {
      copies.extend(primary.list().await?.into_iter().map(Copy::Primary));
    }
    if let Some(backups) = &self.backups {
      for (key, versions) in backups.index().await? {
        copies.extend(versions.into_iter().map(|v| Copy::Backup(key.clone(), v)));
      }
    }
    let total = copies.len() as u32;
    let mut checks = stream::iter(copies)
      .map(|copy| async move {
        let (key, tier, version, read) = match copy {
          Copy::Primary(key) => {
            let tier = self.primary.as_ref().expect("listed from it");
            let read = tier.get(&key).await;
            (key, tier.kind(), None, read)
          }
          Copy::Backup(key, version) => {
            let backups = self.backups.as_ref().expect("listed from it");
            let read = backups.read(&version).await;
            (key, backups.kind(), Some(version.key), read)
          }
        };
        // Gone since the listing (deleted, expired): nothing to check.
        let mut legacy = false;
        let outcome = match read {
          Ok(None) => return None,
          // Another store's value is good when it converts: a save's checks of the zip it holds.
          Ok(Some(bytes)) if version.is_none() && super::legacy::is_foreign(&bytes) => {
            legacy = true;
            self.convert_foreign(&key, bytes).await.map(|_| ())
          }
          Ok(Some(bytes)) => {
            archive::check(&bytes, self.config.pack.keys.as_deref(), &self.config.pack.limits, key.as_str()).map(|_| ())
          }
          Err(err) => Err(err),
        };
        let bad = |err: StoreError| BadCopy {
          session: key.to_string(),
          tier,
          version,
          code: err.code(),
          message: err.to_string(),
        };
        Some((legacy, outcome.map_err(bad)))
      })
      .buffer_unordered(CONCURRENCY);
    let (mut verified, mut done) = (Verified::default(), 0);
    while let Some(outcome) = checks.next().await {
      done += 1;
      if let Some((true, _)) = outcome {
        verified.legacy += 1;
      }
      match outcome.map(|(_, checked)| checked) {
        Some(Ok(())) => verified.checked += 1,
        Some(Err(bad)) => {
          verified.checked += 1;
          verified.bad.push(bad);
        }
        None => {}
      }
      if let Some(progress) = progress {
        progress(done, total);
      }
    }
    verified.bad.sort_by(|a, b| (&a.session, &a.version).cmp(&(&b.session, &b.version)));
    Ok(verified)
  }
}

async fn blocking_disk(path: PathBuf) -> Result<Option<DiskStats>> {
  crate::blocking::run(move || Ok(disk_usage(&path).ok())).await
}
