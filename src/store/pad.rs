//! Removes the pad file (`archive::PAD_NAME`) from a profile once RemoteAuth's unzip is done with it.
//!
//! The pad does its work inside unzipper's streams (it holds the parser back until every real file is closed);
//! the file it leaves in the profile is of no use, and a restore must give back exactly the saved tree. RemoteAuth
//! deletes the zip right after its unzip's `finish` (SafeRemoteAuth after its own unzip), so a zip gone from
//! where `extract` wrote it says the unzip is over; the pad is then whole, or still being written by a writer
//! that has it open (the parser could only finish once that writer took the pad), and removing it cannot disturb
//! that writer: Node opens files so that they may be deleted while open. Each watch is bounded in time, and a zip
//! nobody unzips (a plain `extract`) is only waited on, never touched.
//!
//! The same watch makes the zip's empty folders in the folder the zip went into: unzipper 0.10 (whatsapp-web.js
//! <= 1.34.6) skips folder entries, so without it an empty folder of the saved tree would be missing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};

use crate::archive::{Written, HOLDS_BACK, PAD_NAME};
use crate::session::SessionKey;

/// How long each step may take before the watch gives up (and leaves the files as they are).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
  /// For the zip to go: RemoteAuth unzips right after `extract`, but a large profile on a slow disk takes a while.
  pub zip_gone: Duration,
  /// For the pad to be whole once the zip is gone.
  pub pad_whole: Duration,
  /// A short pad unchanged this long has lost its writer: removed as it is.
  pub pad_quiet: Duration,
  /// On `close()`: how long a pad that is not there yet may still appear. RemoteAuth resolves its restore while
  /// unzipper may still stream a large last file, the pad behind it; a `close()` right after (a script that
  /// restores and exits) waits that long for the pad to come (on a loaded 2-core host, more than 2 s was seen).
  /// Only a folder the unzip made and whose zip went is waited on, so a plain `extract` costs `close()` nothing.
  pub closing: Duration,
  /// Longest pause between two looks.
  pub poll: Duration,
}

impl Default for Bounds {
  fn default() -> Self {
    Self {
      zip_gone: Duration::from_secs(600),
      pad_whole: Duration::from_secs(30),
      pad_quiet: Duration::from_secs(2),
      closing: Duration::from_secs(10),
      poll: Duration::from_millis(50),
    }
  }
}

/// The watches of one store. `close()` ends the running ones (after a last look) and waits for them.
pub struct PadSweeper {
  bounds: Bounds,
  running: Mutex<Running>,
}

struct Running {
  stop: watch::Sender<bool>,
  tasks: JoinSet<()>,
}

impl Running {
  fn new() -> Self {
    Self { stop: watch::channel(false).0, tasks: JoinSet::new() }
  }
}

impl Default for PadSweeper {
  fn default() -> Self {
    Self::new(Bounds::default())
  }
}

impl std::fmt::Debug for PadSweeper {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("PadSweeper").field("bounds", &self.bounds).finish_non_exhaustive()
  }
}

impl PadSweeper {
  pub fn new(bounds: Bounds) -> Self {
    Self { bounds, running: Mutex::new(Running::new()) }
  }

  /// Watches the zip `extract` just wrote at `zip`: once it is gone, removes the pad from each of `profiles`
  /// (the folders it may be unzipped into; one is, the others never get a pad) and makes the zip's empty folders
  /// in the one it went into. Needs a tokio runtime.
  pub fn watch(&self, zip: PathBuf, profiles: Vec<PathBuf>, plan: Written) {
    let identity = std::fs::metadata(&zip).ok().map(|m| identity(&m));
    let plan = std::sync::Arc::new(plan);
    let mut running = self.running.lock().expect("pad watches");
    while running.tasks.try_join_next().is_some() {} // the watches that are over
    for profile in profiles {
      let stop = running.stop.subscribe();
      running.tasks.spawn(sweep(zip.clone(), identity, profile, plan.clone(), self.bounds, stop));
    }
  }

  /// Watches still running.
  #[cfg(test)]
  pub fn watching(&self) -> usize {
    let mut running = self.running.lock().expect("pad watches");
    while running.tasks.try_join_next().is_some() {}
    running.tasks.len()
  }

  /// Ends the running watches: each takes a last look (removing a pad that is there, waiting `closing` for one
  /// that is not yet) and is awaited. Later extracts are watched again.
  pub async fn close(&self) {
    let Running { stop, mut tasks } =
      std::mem::replace(&mut *self.running.lock().expect("pad watches"), Running::new());
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
  }
}

/// The folders a zip `extract` wrote at `zip` may be unzipped into: beside it (`<dataPath>/<session>.zip`, where
/// whatsapp-web.js >= 1.34.5 puts it) and `<dataPath>/<session>` (1.34.4 writes the zip into the cwd).
pub fn profiles(zip: &Path, session: &SessionKey, data_path: &Path) -> Vec<PathBuf> {
  let mut dirs = vec![data_path.join(session.as_str())];
  let beside = zip.parent().map(|dir| dir.join(session.as_str()));
  if zip.file_name() == Some(std::ffi::OsStr::new(&format!("{session}.zip"))) {
    dirs.extend(beside.filter(|dir| *dir != dirs[0]));
  }
  dirs
}

/// What tells the zip `extract` wrote from another written later at the same path.
fn identity(meta: &std::fs::Metadata) -> (u64, Option<SystemTime>) {
  (meta.len(), meta.modified().ok())
}

/// Waits `pause`, or less when `close()` starts.
async fn pause(stop: &mut watch::Receiver<bool>, pause: Duration) {
  if *stop.borrow() {
    return sleep(pause).await;
  }
  if let Ok(Err(_)) = tokio::time::timeout(pause, stop.changed()).await {
    sleep(pause).await // the store went away without `close()`: the bounds still end the watch
  }
}

async fn sweep(
  zip: PathBuf,
  written: Option<(u64, Option<SystemTime>)>,
  profile: PathBuf,
  plan: std::sync::Arc<Written>,
  bounds: Bounds,
  mut stop: watch::Receiver<bool>,
) {
  // 1. Until the unzip is over: the zip is gone (or replaced by another extract's).
  let deadline = Instant::now() + bounds.zip_gone;
  let mut wait = Duration::from_millis(5);
  loop {
    let now = tokio::fs::metadata(&zip).await.ok().map(|m| identity(&m));
    if now.is_none() || now != written {
      break;
    }
    if *stop.borrow() || Instant::now() >= deadline {
      return; // not unzipped (or not yet): nothing of ours to remove
    }
    wait = (wait * 2).min(bounds.poll);
    pause(&mut stop, wait).await;
  }
  // The folder the zip went into: the one its pad reached, or (no pad) the one holding its last file.
  let unzipped_here = match (plan.padded, &plan.last_file) {
    (true, _) => remove_pad(profile.join(PAD_NAME), bounds, stop).await,
    (false, Some(last)) => tokio::fs::symlink_metadata(profile.join(last)).await.is_ok_and(|m| m.is_file()),
    (false, None) => false,
  };
  if unzipped_here {
    make_folders(&profile, &plan.empty_folders).await;
  }
}

/// The zip's empty folders that the unzip did not make (names were checked as a save checks them).
async fn make_folders(profile: &Path, folders: &[String]) {
  for folder in folders {
    let path = profile.join(folder);
    if tokio::fs::symlink_metadata(&path).await.is_err() {
      let _ = tokio::fs::create_dir_all(&path).await;
    }
  }
}

/// What a look at the pad's path found.
#[derive(Debug, PartialEq)]
enum Seen {
  Missing,
  /// A file of zeros no longer than the pad, with its size and time.
  Pad(u64, Option<SystemTime>),
  /// Anything else: not ours, never touched.
  Other,
}

async fn look(pad: &Path) -> Seen {
  let Ok(meta) = tokio::fs::symlink_metadata(pad).await else { return Seen::Missing };
  if !meta.is_file() || meta.len() > HOLDS_BACK {
    return Seen::Other;
  }
  match tokio::fs::read(pad).await {
    Ok(bytes) if bytes.len() as u64 <= HOLDS_BACK && bytes.iter().all(|&b| b == 0) => {
      Seen::Pad(bytes.len() as u64, meta.modified().ok())
    }
    Ok(_) => Seen::Other,
    Err(_) => Seen::Missing,
  }
}

/// Removes the pad once it is whole (or short and no longer growing, or at `close()`), within the bounds. True
/// when the pad was there (the zip went into this folder).
async fn remove_pad(pad: PathBuf, bounds: Bounds, mut stop: watch::Receiver<bool>) -> bool {
  // The unzip is over: a folder it did not go into (the other candidate) gets no pad.
  let dir = pad.parent().unwrap_or(Path::new("."));
  if !tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()) {
    return false;
  }
  let mut seen_pad = false;
  let mut deadline = Instant::now() + bounds.pad_whole;
  let mut closing = false;
  let mut last: Option<(Seen, Instant)> = None;
  loop {
    if !closing && *stop.borrow() {
      closing = true;
      deadline = deadline.min(Instant::now() + bounds.closing);
    }
    let seen = look(&pad).await;
    match &seen {
      Seen::Other => return seen_pad,
      Seen::Pad(len, _) => {
        seen_pad = true;
        let quiet = last.as_ref().is_some_and(|(before, since)| *before == seen && since.elapsed() >= bounds.pad_quiet);
        // Retried while the deadline lasts: on Windows a delete can fail for a moment while the file is open.
        if (*len == HOLDS_BACK || quiet || closing) && tokio::fs::remove_file(&pad).await.is_ok() {
          return true;
        }
      }
      Seen::Missing => {}
    }
    if Instant::now() >= deadline {
      return seen_pad;
    }
    if last.as_ref().is_none_or(|(before, _)| *before != seen) {
      last = Some((seen, Instant::now()));
    }
    pause(&mut stop, bounds.poll.min(Duration::from_millis(20))).await;
  }
}

#[cfg(test)]
#[path = "pad_tests.rs"]
mod tests;
