//! `cleanup`: stored sessions nobody saved for a long time, and what crashed clients leave under RemoteAuth's
//! data path (`<session>.zip`, `wwebjs_temp_session_*`, profile folders of sessions no longer stored).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::blocking;
use crate::error::{Result, StoreError};
use crate::migrate::{browser_lock, classify, measure, Kind};
use crate::session::SessionKey;
use crate::store::{CrashLeftover, LastSaved, Store};

#[derive(Debug, Clone)]
pub struct CleanupOptions {
  /// Stored sessions last saved longer ago than this are stale; `None`: keep every stored session.
  pub stale_after: Option<Duration>,
  /// Local leftovers younger than this are left alone: a client may be writing them right now.
  pub min_local_age: Duration,
  /// Also remove `RemoteAuth-*` folders whose session is not stored. Off by default: such a folder may be the
  /// only copy of a login (a store switched, or lost), exactly what `migrate` would import.
  pub orphans: bool,
  pub execute: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leftover {
  /// `<session>.zip` that RemoteAuth writes and deletes around each backup.
  Zip,
  /// `wwebjs_temp_session_<clientId>`: RemoteAuth's copy of a profile during a backup.
  TempProfile,
  /// `RemoteAuth-<clientId>` whose session is no longer stored (logged out, or stale and removed here).
  OrphanProfile,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalLeftover {
  pub path: PathBuf,
  pub kind: Leftover,
  pub bytes: u64,
  /// Seconds since anything in it was written.
  pub age_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
  pub target: String,
  pub code: &'static str,
  pub message: String,
}

/// Packs of incremental backups that no version references (from an interrupted backup or a skipped prune).
#[derive(Debug, Clone, Serialize)]
pub struct UnreferencedPacks {
  pub session: String,
  pub packs: usize,
  pub bytes: u64,
  /// Another process was working on the session: left for the next run.
  pub skipped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
  pub execute: bool,
  pub data_path: PathBuf,
  pub stale_sessions: Vec<LastSaved>,
  pub leftovers: Vec<LocalLeftover>,
  /// What writes killed part way left (temp files, stale locks, restore folders), once no live process owns it.
  pub crash_leftovers: Vec<CrashLeftover>,
  /// Per session with any: packs in the bucket that no version references.
  pub unreferenced_packs: Vec<UnreferencedPacks>,
  /// Bytes freed on the local disk (or that would be, in a dry run).
  pub local_bytes: u64,
  pub failures: Vec<Failure>,
}

fn now_secs() -> u64 {
  SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The leftovers under `data_path`. Orphan candidates (unlocked `RemoteAuth-*` folders in `orphans`) are only
/// listed; the caller asks the store about them.
fn find_leftovers(data_path: &Path, min_age: Duration, orphans: bool) -> Result<Vec<LocalLeftover>> {
  let entries = match std::fs::read_dir(data_path) {
    Ok(entries) => entries,
    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
    Err(e) => return Err(StoreError::io("read", data_path)(e)),
  };
  let now = now_secs();
  let mut found = Vec::new();
  for entry in entries {
    let entry = entry.map_err(StoreError::io("read", data_path))?;
    let (path, name) = (entry.path(), entry.file_name().to_string_lossy().into_owned());
    let meta = std::fs::symlink_metadata(&path).map_err(StoreError::io("stat", &path))?;
    let kind = if meta.is_file() && name.ends_with(".zip") && SessionKey::parse(name.trim_end_matches(".zip")).is_ok() {
      Leftover::Zip
    } else if meta.is_dir() && name.starts_with("wwebjs_temp_session_") {
      Leftover::TempProfile
    } else if orphans
      && meta.is_dir()
      && matches!(classify(&name), Some((Kind::RemoteAuth, _, _)))
      && !browser_lock(&path)
    {
      Leftover::OrphanProfile
    } else {
      continue;
    };
    let (bytes, newest) = if meta.is_dir() { measure(&path) } else { (meta.len(), 0) };
    let written =
      newest.max(meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs()));
    let age_seconds = now.saturating_sub(written);
    if age_seconds >= min_age.as_secs() {
      found.push(LocalLeftover { path, kind, bytes, age_seconds });
    }
  }
  found.sort_by(|a, b| a.path.cmp(&b.path));
  Ok(found)
}

/// Finds (and with `execute`, removes) stale stored sessions and local leftovers under the store's data path.
pub async fn cleanup(store: &Store, opts: &CleanupOptions) -> Result<CleanupReport> {
  let saved = store.last_saved().await?;
  let stored_sessions = saved.len();
  let cutoff_ms = opts.stale_after.map(|age| (now_secs().saturating_sub(age.as_secs())) * 1000);
  let stale: Vec<LastSaved> =
    saved.into_iter().filter(|s| cutoff_ms.is_some_and(|cutoff| s.saved_at_ms < cutoff)).collect();
  let mut failures = Vec::new();
  // Sessions gone after this run (or that would be, in a dry run): their profile folders are orphans.
  let mut deleted: HashSet<String> = HashSet::new();
  if !opts.execute {
    deleted.extend(stale.iter().map(|s| s.session.clone()));
  }
  for session in stale.iter().filter(|_| opts.execute) {
    let failed =
      |err: StoreError| Failure { target: session.session.clone(), code: err.code(), message: err.to_string() };
    // Saved again since the listing (by a running service): not stale any more, and kept (checked with the
    // delete in one step, so a save landing meanwhile is never deleted).
    let cutoff = cutoff_ms.unwrap_or(0);
    match store.delete_unsaved_since(&session.session, cutoff).await {
      Ok(true) => drop(deleted.insert(session.session.clone())),
      Ok(false) => {}
      Err(err) => failures.push(failed(err)),
    }
  }
  if opts.orphans && stored_sessions == 0 {
    let reason = "the store holds no session: is it the right one? Every profile folder would look orphaned".into();
    return Err(StoreError::InvalidOption { name: "--orphans", reason });
  }
  let data_path = store.data_path().to_path_buf();
  let found = {
    let (dir, min_age, orphans) = (data_path.clone(), opts.min_local_age, opts.orphans);
    blocking::run(move || find_leftovers(&dir, min_age, orphans)).await?
  };
  let mut leftovers = Vec::new();
  for leftover in found {
    if leftover.kind == Leftover::OrphanProfile {
      // Asked of the store itself (not a parsed listing): a session with an unreadable header is still stored.
      let name = leftover.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
      if !deleted.contains(&name) && store.session_exists(&name).await? {
        continue;
      }
    }
    leftovers.push(leftover);
  }
  let mut local_bytes = 0;
  for leftover in &leftovers {
    if opts.execute {
      let path = leftover.path.clone();
      let removed = blocking::run(move || {
        let result = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        result.map_err(StoreError::io("remove", &path))
      });
      if let Err(err) = removed.await {
        failures.push(Failure {
          target: leftover.path.display().to_string(),
          code: err.code(),
          message: err.to_string(),
        });
        continue;
      }
    }
    local_bytes += leftover.bytes;
  }
  let crash_leftovers = store.crash_leftovers(opts.execute).await?;
  local_bytes += crash_leftovers.iter().map(|l| l.bytes).sum::<u64>();
  let mut unreferenced_packs = Vec::new();
  for (key, collected) in store.collect_backups(opts.execute).await? {
    match collected {
      Ok(c) if c.objects == 0 && !c.skipped => {}
      Ok(c) => unreferenced_packs.push(UnreferencedPacks {
        session: key.to_string(),
        packs: c.objects,
        bytes: c.bytes,
        skipped: c.skipped,
      }),
      Err(err) => failures.push(Failure { target: key.to_string(), code: err.code(), message: err.to_string() }),
    }
  }
  Ok(CleanupReport {
    execute: opts.execute,
    data_path,
    stale_sessions: stale,
    leftovers,
    crash_leftovers,
    unreferenced_packs,
    local_bytes,
    failures,
  })
}
