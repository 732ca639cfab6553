//! The store's policy: how RemoteAuth's four calls map onto archives and tiers.

mod eviction;
mod fence;
mod import;
mod inspect;
mod lease;
mod leftovers;
mod legacy;
mod logout;
pub mod members;
mod order;
mod pad;
mod profile;
mod rekey;
mod repair;
mod save;

pub use eviction::EVICTION_CODE;
pub use import::{Outcome as ImportOutcome, CLOCK_SKEW_MS};
pub use inspect::{
  disk_usage, BadCopy, DiskStats, IncrementalStats, Largest, LastSaved, LeftoverCount, Stats, TierStats, Verified,
};
pub(crate) use lease::random_token;
pub use leftovers::{CrashKind, CrashLeftover};
pub use rekey::Rekeyed;
pub use repair::RepairedVersion;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::{self, Header, PackOptions};
use crate::backup::Backups;
use crate::blocking;
use crate::counters::{Counters, Fallback};
use crate::error::{Result, StoreError};
use crate::fsutil::replace_transient;
use crate::locks::KeyLocks;
use crate::scheduler::{BackupStats, Reporter, Scheduler};
use crate::session::{SessionArg, SessionKey};
use crate::tier::Tier;
use crate::transfer::{transfer, Progress, Transfer};

#[derive(Debug, Clone)]
pub struct StoreConfig {
  /// RemoteAuth's `dataPath`, absolute: where whatsapp-web.js >= 1.34.5 writes `<session>.zip`.
  pub data_path: PathBuf,
  pub pack: PackOptions,
  /// The embedded tier's directory, when it is the primary: where stored copies take local disk.
  pub local_dir: Option<PathBuf>,
}

/// What a stored session says about itself.
#[derive(Debug, Clone)]
pub struct SessionInfo {
  pub key: SessionKey,
  pub header: Header,
}

#[derive(Clone)]
pub struct Store {
  primary: Option<Arc<dyn Tier>>,
  /// The same primary, checked for a policy that evicts keys (`eviction`).
  checked: Option<Arc<eviction::Checked>>,
  backups: Option<Backups>,
  /// When backups are written (timer or every save); `None` without a backup tier behind a primary.
  scheduler: Option<Arc<Scheduler>>,
  config: Arc<StoreConfig>,
  save_locks: Arc<KeyLocks>,
  /// Leases this store took: its saves and deletes of those sessions are fenced by them.
  held: Arc<std::sync::Mutex<std::collections::HashMap<SessionKey, lease::Held>>>,
  /// Leases held under a fleet epoch that this store no longer backs, to detach (lease.rs).
  unbacked: lease::UnbackedList,
  /// Removes the pad `extract` added from the profile once RemoteAuth's unzip is done (`pad`).
  pads: Arc<pad::PadSweeper>,
  /// What this store did, for `metrics`.
  counters: Counters,
  /// The fleet member running on this store, if any, and whether `close()` asked it to close (`members`).
  fleet_member: Arc<members::MemberSlot>,
}

/// Tiers and settings only: lease tokens stay out of logs.
impl std::fmt::Debug for Store {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Store").field("primary", &self.primary).field("backups", &self.backups).finish_non_exhaustive()
  }
}

pub(crate) fn cwd() -> Result<PathBuf> {
  std::env::current_dir().map_err(StoreError::io("read current directory", "."))
}

/// When backups are written; failures that are not returned to a caller go to the reporter.
#[derive(Clone)]
pub enum BackupMode {
  /// Within each save, after the primary has it.
  EverySave(Reporter),
  /// By a timer, for the sessions saved since their last backup; failures go to the reporter.
  Interval(std::time::Duration, Reporter),
}

/// Which backup version `extract_version` restores.
#[derive(Debug, Clone, Default)]
pub struct Pick {
  /// A version's name (`<ms>-<hash>.wwrs` / `.wwmf`) or full key.
  pub version: Option<String>,
  /// The newest version saved at or before this time (ms since the Unix epoch).
  pub at_ms: Option<u64>,
}

/// A save that reached the primary; `backup_error` says the backup tier did not take it this time.
#[derive(Debug)]
pub struct Saved {
  pub info: SessionInfo,
  pub backup_error: Option<StoreError>,
}

impl Store {
  /// A store over a primary tier, a backup tier, or both (never neither). Without a primary, the bucket is
  /// the store and backups are written within each save.
  pub fn new(
    primary: Option<Arc<dyn Tier>>,
    backups: Option<(Backups, BackupMode)>,
    config: StoreConfig,
  ) -> Result<Self> {
    let save_locks = Arc::new(KeyLocks::default());
    let counters = Counters::new();
    let checked = primary.map(|p| Arc::new(eviction::Checked::new(p, backups.is_none())));
    let primary = checked.clone().map(|c| c as Arc<dyn Tier>);
    let scheduler = match (&primary, &backups) {
      (None, None) => {
        return Err(StoreError::InvalidOption { name: "tiers", reason: "a store needs at least one tier".into() })
      }
      (Some(primary), Some((backups, mode))) => {
        let (interval, report) = match mode {
          BackupMode::EverySave(report) => (None, report.clone()),
          BackupMode::Interval(every, report) => (Some(*every), report.clone()),
        };
        let (locks, counters) = (save_locks.clone(), counters.clone());
        Some(Scheduler::new(primary.clone(), backups.clone(), interval, report, locks, counters))
      }
      _ => None,
    };
    let backups = backups.map(|(backups, _)| backups);
    let config = Arc::new(config);
    let (held, pads) = (Default::default(), Default::default());
    let fleet_member = Default::default();
    let unbacked = Default::default();
    Ok(Self { primary, checked, backups, scheduler, config, save_locks, held, unbacked, pads, counters, fleet_member })
  }

  /// What this store counted (saves, backups, fallbacks, leases), for `metrics`.
  pub fn counters(&self) -> &Counters {
    &self.counters
  }

  /// A backup tier is configured (behind a primary, or alone).
  pub fn has_backups(&self) -> bool {
    self.backups.is_some()
  }

  /// RemoteAuth's data path, absolute.
  pub fn data_path(&self) -> &Path {
    &self.config.data_path
  }

  /// How sessions are packed (keep-list, limits, level).
  pub fn pack_options(&self) -> &PackOptions {
    &self.config.pack
  }

  /// True if any tier has the session. A tier that cannot be asked is an error, never `false`.
  pub async fn session_exists(&self, session: &str) -> Result<bool> {
    let key = SessionArg::parse(session)?.key;
    if let Some(primary) = &self.primary {
      if primary.exists(&key).await? {
        return Ok(true);
      }
    }
    match &self.backups {
      Some(backups) => backups.exists(&key).await,
      None => Ok(false),
    }
  }

  /// The session's archive: the primary's if its checksum holds, else the newest good backup, which is then
  /// written back to the primary. A copy in a newer format is never treated as damaged.
  pub(crate) async fn fetch(&self, key: &SessionKey) -> Result<Vec<u8>> {
    // Twice at most: a save that lands while the backup is read wins over it, and is read again.
    for _ in 0..2 {
      match self.fetch_once(key).await? {
        Some(bytes) => return Ok(bytes),
        None => continue,
      }
    }
    Err(StoreError::Internal(format!("{key} changed twice while its backup was read")))
  }

  /// `fetch`; `None` when the primary's copy changed while its backup was read.
  async fn fetch_once(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    let mut damaged = false;
    if let Some(primary) = &self.primary {
      if let Some(bytes) = primary.get(key).await? {
        if legacy::is_foreign(&bytes) {
          // Another store's value under this key (see `legacy`): served converted, never rewritten here. One that
          // does not convert falls back to a backup where there is one, else its own coded error says why.
          match self.convert_foreign(key, bytes).await {
            Ok(packed) => return Ok(Some(packed.bytes)),
            Err(err) if self.backups.is_none() => return Err(err),
            Err(_) => damaged = true,
          }
        } else {
          match archive::open(&bytes) {
            Ok(_) => return Ok(Some(bytes)),
            Err(err @ StoreError::ArchiveVersion { .. }) => return Err(err),
            Err(_) => damaged = true,
          }
        }
      }
    }
    match (&self.primary, &self.backups) {
      (Some(primary), Some(backups)) => match self.warm(primary, backups, key, true).await? {
        order::Warmed::Kept(bytes) => return Ok(Some(bytes)),
        order::Warmed::Restored(bytes) => {
          self.counters.fallback(if damaged { Fallback::Damaged } else { Fallback::Missing });
          return Ok(Some(bytes));
        }
        order::Warmed::Changed => return Ok(None),
        order::Warmed::Deleted => return Err(StoreError::SessionNotFound(format!("{key} (logged out meanwhile)"))),
        order::Warmed::NoBackup => {}
      },
      (None, Some(backups)) => {
        if let Some(bytes) = backups.newest_good(key).await? {
          return Ok(Some(bytes));
        }
      }
      _ => {}
    }
    Err(match damaged {
      true => {
        StoreError::ArchiveCorrupt(format!("the stored copy of {key} fails its checksum and no backup has a good one"))
      }
      false => StoreError::SessionNotFound(key.to_string()),
    })
  }

  /// `fetch`, with `None` for a session no tier holds.
  pub(crate) async fn stored_archive(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    match self.fetch(key).await {
      Ok(bytes) => Ok(Some(bytes)),
      Err(StoreError::SessionNotFound(_)) => Ok(None),
      Err(err) => Err(err),
    }
  }

  /// Writes the stored session as a zip to exactly `path` (relative to the cwd), via a temp file beside it,
  /// after its checksum holds. Creates the parent directory: on a fresh machine RemoteAuth's dataPath may not exist.
  pub async fn extract(&self, session: &str, path: &Path) -> Result<SessionInfo> {
    self.extract_version(session, path, &Pick::default()).await
  }

  /// `extract` of a backup version: the one `pick` names, or the newest saved at or before its time (point in
  /// time); with neither, the stored session as `extract` gives it.
  pub async fn extract_version(&self, session: &str, path: &Path, pick: &Pick) -> Result<SessionInfo> {
    self.write_version(session, path, pick, true).await
  }

  /// `extract_version` for a zip nobody here unzips (`export`): no watch for RemoteAuth's unzip of it, which would
  /// otherwise look for a pad and the zip's empty folders in the session's live profile once the file moves.
  pub async fn export_version(&self, session: &str, path: &Path, pick: &Pick) -> Result<SessionInfo> {
    self.write_version(session, path, pick, false).await
  }

  async fn write_version(&self, session: &str, path: &Path, pick: &Pick, watch: bool) -> Result<SessionInfo> {
    let key = SessionArg::parse(session)?.key;
    let bytes = match (pick.version.as_deref(), pick.at_ms) {
      (None, None) => self.fetch(&key).await?,
      (version, at_ms) => {
        let backups = self
          .backups
          .as_ref()
          .ok_or_else(|| StoreError::InvalidArgument("a version or a point in time needs a backup tier (s3)".into()))?;
        let found = backups.find(&key, version, at_ms).await?;
        let gone = || StoreError::VersionNotFound(found.key.clone());
        backups.read(&found).await?.ok_or_else(gone)?
      }
    };
    let target = cwd()?.join(path);
    let (config, session) = (self.config.clone(), key.to_string());
    let zip = target.clone();
    let (header, written) = blocking::run(move || write_zip_file(&bytes, &config.pack, &session, &zip)).await?;
    if watch && (written.padded || !written.empty_folders.is_empty()) {
      self.pads.watch(target.clone(), pad::profiles(&target, &key, &self.config.data_path), written);
    }
    Ok(SessionInfo { key, header })
  }

  /// Unreferenced chunks of every session's incremental backups, deleted with `execute` (else counted).
  pub async fn collect_backups(
    &self,
    execute: bool,
  ) -> Result<Vec<(SessionKey, Result<crate::incremental::Collected>)>> {
    match &self.backups {
      Some(backups) => backups.collect_all(execute).await,
      None => Ok(Vec::new()),
    }
  }

  /// The session's backup versions, oldest first (empty without a backup tier).
  pub async fn backup_versions(&self, session: &str) -> Result<Vec<crate::backup::Version>> {
    let key = SessionArg::parse(session)?.key;
    match &self.backups {
      Some(backups) => backups.versions(&key).await,
      None => Ok(Vec::new()),
    }
  }

  /// The sessions of the primary (of the backups when there is no primary), with their headers.
  pub async fn list(&self) -> Result<Vec<SessionInfo>> {
    let mut out = Vec::new();
    let Some(primary) = &self.primary else {
      let backups = self.backups.as_ref().expect("a store has a tier");
      for key in backups.sessions().await? {
        // As below: one unreadable header does not fail the listing (extract checks the data itself); a tier
        // that cannot be asked does.
        match backups.newest_header(&key).await {
          Ok(Some(header)) => out.push(SessionInfo { header, key }),
          Ok(None) => {}
          Err(err @ (StoreError::Backend { .. } | StoreError::TierUnavailable { .. })) => return Err(err),
          Err(_) => {}
        }
      }
      return Ok(out);
    };
    for key in primary.list().await? {
      // A session deleted between list and head is simply skipped.
      // A header that does not parse, or a copy this process may not read (written by another user), is left
      // out rather than failing the whole listing: `extract` and `verify` report it. A tier that cannot be asked
      // fails the listing.
      let head = match primary.head(&key, archive::HEADER_LEN).await {
        Ok(Some(head)) => head,
        Ok(None) => continue,
        Err(err @ (StoreError::Backend { .. } | StoreError::TierUnavailable { .. })) => return Err(err),
        Err(_) => continue,
      };
      if let Ok(header) = archive::peek(&head) {
        out.push(SessionInfo { key, header });
      } else if legacy::is_foreign(&head) {
        // Another store's value: listed as what it converts to, saved at an unknown time (0) until saved here.
        let Some(value) = primary.get(&key).await? else { continue };
        if let Ok(packed) = self.convert_foreign(&key, value).await {
          out.push(SessionInfo { key, header: archive::Header { created_ms: 0, ..packed.header } });
        }
      }
    }
    Ok(out)
  }

  /// Closes the fleet member running on this store (its sessions stopped, leases released, the fleet left),
  /// then stops the backup timer and backs up what is pending (the member's final saves among it), so a process
  /// can exit without losing changes.
  pub async fn close(&self) -> Transfer {
    self.fleet_member.close().await;
    self.pads.close().await;
    match &self.scheduler {
      Some(scheduler) => scheduler.close().await,
      None => Transfer::default(),
    }
  }

  /// `None` when the store has no backup tier behind a primary.
  pub fn backup_stats(&self) -> Option<BackupStats> {
    self.scheduler.as_ref().map(|s| s.stats())
  }

  fn both(&self) -> Result<(&Arc<dyn Tier>, &Backups)> {
    match (&self.primary, &self.backups) {
      (Some(primary), Some(backups)) => Ok((primary, backups)),
      _ => Err(StoreError::InvalidOption { name: "s3", reason: "this needs both a primary and a backup tier".into() }),
    }
  }

  /// Warms the primary from the backups: the newest good version of every backed-up session, unless the
  /// primary already has a good copy at least as new (by the backup history, not by clocks: see `order`).
  pub async fn restore_all(&self, concurrency: usize, progress: Option<Progress>) -> Result<Transfer> {
    let (primary, backups) = self.both()?;
    let keys = backups.sessions().await?;
    let summary = transfer(keys, concurrency, progress.as_ref(), |key| async move {
      // A primary copy saved after the backup (a restart within the backup interval) is newer: kept.
      Ok(match self.warm(primary, backups, &key, false).await? {
        order::Warmed::Restored(bytes) => Some(bytes.len() as u64),
        order::Warmed::Kept(_) | order::Warmed::NoBackup | order::Warmed::Changed | order::Warmed::Deleted => None,
      })
    })
    .await;
    Ok(summary)
  }

  /// Backs up every session of the primary; one whose newest version already holds its save is skipped, so
  /// repeated runs never push point-in-time history out of the retention (and a version holding it anywhere in
  /// the history is not written again).
  pub async fn backup_all(&self, concurrency: usize, progress: Option<Progress>) -> Result<Transfer> {
    let (primary, backups) = self.both()?;
    let keys = primary.list().await?;
    let summary = transfer(keys, concurrency, progress.as_ref(), |key| async move {
      let Some(mut bytes) = primary.get(&key).await? else { return Ok(None) };
      if legacy::is_foreign(&bytes) {
        bytes = self.convert_foreign(&key, bytes).await?.bytes; // backed up as this store's archive
      }
      archive::open(&bytes)?;
      // A save some version holds is not written again (unless that version reads a chunk known damaged).
      let len = bytes.len() as u64;
      Ok((backups.write(&key, bytes).await?.uploaded_bytes > 0).then_some(len))
    })
    .await;
    Ok(summary)
  }
}

fn write_zip_file(
  bytes: &[u8],
  pack: &PackOptions,
  session: &str,
  target: &Path,
) -> Result<(Header, archive::Written)> {
  if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
    std::fs::create_dir_all(parent).map_err(StoreError::io("create directory", parent))?;
  }
  let keys = pack.keys.as_deref();
  replace_transient(target, |file| archive::write_zip_padded(bytes, keys, &pack.limits, session, file, target))
}

#[cfg(test)]
pub(crate) mod across_tests;
#[cfg(all(test, target_os = "linux"))]
mod conditional_tests;
#[cfg(test)]
mod tests;
