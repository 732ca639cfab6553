//! The objects RustStore's methods take and return.

use napi_derive::napi;
use serde::Deserialize;

use crate::scheduler::BackupStats;
use crate::settings::Callback;
use crate::store::{SessionInfo, Stats};
use crate::transfer::Transfer;

/// What `restoreAll` or `backupAll` did.
#[napi(object)]
pub struct TransferSummary {
  pub sessions: u32,
  pub copied: u32,
  /// Nothing to copy: the target already had it (or newer), or the session went away.
  pub skipped: u32,
  pub bytes: f64,
  pub failed: u32,
  /// `{ session, code, message }` of each failure.
  pub failures: Vec<TransferFailure>,
}

#[napi(object)]
pub struct TransferFailure {
  pub session: String,
  pub code: String,
  pub message: String,
}

impl From<Transfer> for TransferSummary {
  fn from(t: Transfer) -> Self {
    let failures: Vec<TransferFailure> = t
      .failures
      .into_iter()
      .map(|(key, err)| TransferFailure { session: key.to_string(), code: err.code().into(), message: err.to_string() })
      .collect();
    Self {
      sessions: t.sessions,
      copied: t.copied,
      skipped: t.skipped,
      bytes: t.bytes as f64,
      failed: failures.len() as u32,
      failures,
    }
  }
}

/// State of the interval backups.
#[napi(object)]
pub struct BackupStatus {
  /// Sessions saved since their last backup.
  pub pending: u32,
  pub backed_up: f64,
  pub failed: f64,
  /// ms since the Unix epoch.
  pub last_success_at: Option<f64>,
  pub last_error_code: Option<String>,
  pub last_error_message: Option<String>,
}

impl From<BackupStats> for BackupStatus {
  fn from(s: BackupStats) -> Self {
    let (code, message) = s.last_error.unzip();
    Self {
      pending: s.pending,
      backed_up: s.backed_up as f64,
      failed: s.failed as f64,
      last_success_at: s.last_success_ms.map(|ms| ms as f64),
      last_error_code: code,
      last_error_message: message,
    }
  }
}

/// `{ concurrency, onProgress }` for `restoreAll` / `backupAll`; read strictly (`settings::read_strict`).
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransferArgs {
  /// Sessions copied at once. Default 16.
  pub concurrency: Option<f64>,
  /// Called after each session with how many are done and how many there are.
  #[napi(ts_type = "(done: number, total: number) => void")]
  pub on_progress: Option<Callback>,
}

/// `{ session }` as RemoteAuth passes it to `sessionExists` and `delete`.
#[napi(object, object_from_js = false)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionArgs {
  pub session: String,
}

/// `{ session }` as RemoteAuth passes it to `save`; `path` names the zip explicitly when given.
#[napi(object, object_from_js = false)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveArgs {
  pub session: String,
  pub path: Option<String>,
  /// This call's `saveErrors`, over the store's: `SafeRemoteAuth` passes `'reject'` so that its retries and
  /// events see every failure whatever the store was built with.
  #[napi(ts_type = "'report' | 'reject'")]
  pub save_errors: Option<String>,
}

/// `{ session, dir }` of `saveProfile` / `restoreProfile`: `dir` is the profile folder (RemoteAuth's
/// `userDataDir`, `<dataPath>/<session>`).
#[napi(object, object_from_js = false)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileArgs {
  pub session: String,
  pub dir: String,
}

/// `{ session, path }` as RemoteAuth passes it to `extract`: the zip is written to exactly `path`. `version` or
/// `at` restore a backup version instead (point in time).
#[napi(object, object_from_js = false)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractArgs {
  pub session: String,
  pub path: String,
  /// A backup version's `id`, from `listBackups`.
  pub version: Option<String>,
  /// The newest backup version saved at or before this time (ms since the Unix epoch).
  pub at: Option<f64>,
}

/// One backup version of a session.
#[napi(object)]
pub struct BackupVersion {
  /// Its name, for `extract({ session, path, version })`.
  pub id: String,
  /// When its save was made, in ms since the Unix epoch: its stamp, or when the bucket stored it if earlier (a
  /// writer whose clock ran ahead stamps ahead); what `extract({ at })` goes by.
  pub saved_at: f64,
  /// The stored object's size (the manifest's, for an incremental version: its chunks are shared).
  pub bytes: f64,
  /// A manifest over content-defined chunks rather than a whole archive.
  pub incremental: bool,
}

impl From<crate::backup::Version> for BackupVersion {
  fn from(v: crate::backup::Version) -> Self {
    let id = v.key.rsplit('/').next().unwrap_or(&v.key).to_owned();
    Self { id, saved_at: v.saved_ms() as f64, bytes: v.size as f64, incremental: v.incremental }
  }
}

/// A stored session, as its header describes it.
#[napi(object)]
pub struct StoredSession {
  pub session: String,
  /// Bytes the store keeps for it.
  pub stored_bytes: f64,
  /// Size of the zip it was made from.
  pub zip_bytes: f64,
  /// Sum of its files' sizes.
  pub files_bytes: f64,
  /// Files and directories in it.
  pub entries: u32,
  /// When it was saved, in ms since the Unix epoch.
  pub saved_at: f64,
}

impl From<SessionInfo> for StoredSession {
  fn from(info: SessionInfo) -> Self {
    let h = info.header;
    Self {
      session: info.key.to_string(),
      stored_bytes: h.stored_bytes() as f64,
      zip_bytes: h.source_bytes as f64,
      files_bytes: h.files_bytes as f64,
      entries: h.entries,
      saved_at: h.created_ms as f64,
    }
  }
}

/// What `stats()` reports: the same figures as `wwebjs-rust-store stats`.
#[napi(object)]
pub struct StoreStats {
  pub tiers: Vec<TierStats>,
  /// Distinct sessions in any tier.
  pub sessions: f64,
  /// Of each session's newest stored copy.
  pub average_session_bytes: f64,
  pub largest_session: Option<LargestSession>,
  /// The file system under `dataPath`.
  pub disk: Option<DiskStats>,
  /// free × 0.8 / averageSessionBytes.
  pub sessions_fit_estimate: Option<f64>,
  /// Sessions whose primary copy is newer than their newest backup; `null` without both tiers.
  pub backup_lag: Option<f64>,
  /// Incremental backup versions (reads each version's manifest); absent when there are none.
  pub incremental: Option<IncrementalStats>,
  /// Redis' memory: `INFO memory` / `INFO stats`; absent for the embedded tier or S3 alone.
  pub memory: Option<MemoryStats>,
  /// What crashed writes left on the local disk (temp files, stale locks, restore folders) that no live process
  /// owns; `cleanup --execute` removes it.
  pub crash_leftovers: LeftoverStats,
  /// Sessions of the primary that another store left (a hand-written store's `wa:session:<id>` = gzip(zip), the
  /// zip, or base64 of it): read and restored as they are, stored in this store's format by their next save (or
  /// `importFrom`). Counted in `sessions`.
  pub legacy_sessions: f64,
}

#[napi(object)]
pub struct LeftoverStats {
  pub files: f64,
  pub bytes: f64,
}

#[napi(object)]
pub struct MemoryStats {
  pub used_memory: f64,
  /// 0: no limit.
  pub maxmemory: f64,
  /// `maxmemory-policy`: anything but `noeviction` may drop sessions.
  pub policy: String,
  pub evicted_keys: f64,
}

#[napi(object)]
pub struct IncrementalStats {
  pub sessions: f64,
  pub versions: f64,
  /// Sum of every kept version's file sizes: what whole copies would hold, uncompressed.
  pub logical_bytes: f64,
  /// Manifests and chunks in the bucket.
  pub stored_bytes: f64,
  /// logicalBytes / storedBytes.
  pub dedup_ratio: f64,
  /// Mean bytes a backup uploaded, over versions that had a predecessor; `null` before any second backup.
  pub average_uploaded_bytes: Option<f64>,
}

#[napi(object)]
pub struct TierStats {
  #[napi(ts_type = "'dir' | 'redis' | 's3'")]
  pub tier: String,
  #[napi(ts_type = "'primary' | 'backup'")]
  pub role: String,
  pub sessions: f64,
  /// One per session in a primary, one per version in a backup tier.
  pub objects: f64,
  pub bytes: f64,
}

#[napi(object)]
pub struct LargestSession {
  pub session: String,
  pub bytes: f64,
}

#[napi(object)]
pub struct DiskStats {
  pub path: String,
  pub total_bytes: f64,
  pub free_bytes: f64,
}

impl From<Stats> for StoreStats {
  fn from(s: Stats) -> Self {
    Self {
      tiers: s
        .tiers
        .into_iter()
        .map(|t| TierStats {
          tier: t.tier.into(),
          role: t.role.into(),
          sessions: t.sessions as f64,
          objects: t.objects as f64,
          bytes: t.bytes as f64,
        })
        .collect(),
      sessions: s.sessions as f64,
      average_session_bytes: s.average_session_bytes as f64,
      largest_session: s.largest_session.map(|l| LargestSession { session: l.session, bytes: l.bytes as f64 }),
      disk: s.disk.map(|d| DiskStats {
        path: d.path.display().to_string(),
        total_bytes: d.total_bytes as f64,
        free_bytes: d.free_bytes as f64,
      }),
      sessions_fit_estimate: s.sessions_fit_estimate.map(|n| n as f64),
      backup_lag: s.backup_lag.map(|n| n as f64),
      incremental: s.incremental.map(|i| IncrementalStats {
        sessions: i.sessions as f64,
        versions: i.versions as f64,
        logical_bytes: i.logical_bytes as f64,
        stored_bytes: i.stored_bytes as f64,
        dedup_ratio: i.dedup_ratio,
        average_uploaded_bytes: i.average_uploaded_bytes.map(|n| n as f64),
      }),
      memory: s.memory.map(|m| MemoryStats {
        used_memory: m.used_memory as f64,
        maxmemory: m.maxmemory as f64,
        policy: m.policy,
        evicted_keys: m.evicted_keys as f64,
      }),
      crash_leftovers: LeftoverStats { files: s.crash_leftovers.files as f64, bytes: s.crash_leftovers.bytes as f64 },
      legacy_sessions: s.legacy_sessions as f64,
    }
  }
}

/// Where the metrics port listens.
#[napi(object)]
pub struct MetricsAddress {
  /// The IP address it is bound to (`metricsHost`).
  pub host: String,
  pub port: u32,
  /// `http://host:port`: `/metrics`, `/healthz` and `/readyz` are under it.
  pub url: String,
}

/// `{ ttlMs }` for `acquireLease` / `renewLease`; read strictly (`settings::read_strict`).
#[napi(object, object_from_js = false, object_to_js = false)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaseOptions {
  /// How long the lease lasts unless renewed. Default 30000.
  pub ttl_ms: Option<f64>,
}
