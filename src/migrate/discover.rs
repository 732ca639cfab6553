//! Finding session profile folders on disk and grouping them by account: LocalAuth `session-<clientId>`,
//! RemoteAuth `RemoteAuth-<clientId>`, and the legacy `session-webjs_<user>_<unix-ts>_…` layout, where every login
//! of one user left a new folder.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use walkdir::WalkDir;

use crate::error::{Result, StoreError};

/// How deep below the given directory profile folders are looked for (`sessions-shared/workspace_N/session-…`).
const MAX_DEPTH: usize = 4;

/// What kind of folder a profile is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
  LocalAuth,
  RemoteAuth,
  Legacy,
}

/// One profile folder: a Chromium user data dir with a `Default` profile in it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
  pub path: PathBuf,
  pub kind: Kind,
  /// The account it belongs to: the clientId, or `webjs_<user>` for legacy folders.
  pub account: String,
  /// Seconds since the epoch: the timestamp in a legacy name, else the newest file's mtime.
  pub stamp: u64,
  /// Seconds since the epoch: the newest file's mtime (the last time a browser wrote to it).
  pub newest: u64,
  /// Bytes of every file in the folder (what `du` counts, roughly).
  pub bytes: u64,
  /// Chromium's lock file is there: a browser may be running on it.
  pub locked: bool,
}

pub use crate::browser_lock::browser_lock;

/// Name → (kind, account, timestamp from the name).
pub fn classify(name: &str) -> Option<(Kind, String, Option<u64>)> {
  if name == "session" {
    return Some((Kind::LocalAuth, String::new(), None));
  }
  if name == "RemoteAuth" {
    return Some((Kind::RemoteAuth, String::new(), None));
  }
  if let Some(id) = name.strip_prefix("RemoteAuth-") {
    return Some((Kind::RemoteAuth, id.to_owned(), None));
  }
  let id = name.strip_prefix("session-")?;
  if let Some(rest) = id.strip_prefix("webjs_") {
    let parts: Vec<&str> = rest.split('_').collect();
    // The first all-digit part of 10 (s) or 13 (ms) digits after the user is the login time.
    let stamp_at =
      (1..parts.len()).find(|&i| matches!(parts[i].len(), 10 | 13) && parts[i].bytes().all(|b| b.is_ascii_digit()));
    if let Some(i) = stamp_at {
      let ts: u64 = parts[i].parse().ok()?;
      let secs = if parts[i].len() == 13 { ts / 1000 } else { ts };
      return Some((Kind::Legacy, format!("webjs_{}", parts[..i].join("_")), Some(secs)));
    }
  }
  Some((Kind::LocalAuth, id.to_owned(), None))
}

fn mtime_secs(meta: &std::fs::Metadata) -> u64 {
  meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

/// Total bytes and newest mtime of the files under `dir`; links are not followed.
pub(crate) fn measure(dir: &Path) -> (u64, u64) {
  let files =
    WalkDir::new(dir).follow_links(false).into_iter().filter_map(|e| e.ok()).filter(|e| e.file_type().is_file());
  files
    .filter_map(|e| e.metadata().ok())
    .fold((0, 0), |(bytes, newest), m| (bytes + m.len(), newest.max(mtime_secs(&m))))
}

/// Every profile folder under `root` (or `root` itself), not descending into them.
pub fn find_profiles(root: &Path) -> Result<Vec<Profile>> {
  if !root.is_dir() {
    return Err(StoreError::InvalidArgument(format!("{} is not a directory", root.display())));
  }
  let is_profile = |path: &Path| {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    classify(name).filter(|_| path.join("Default").is_dir())
  };
  let mut found = Vec::new();
  let mut walk = WalkDir::new(root).follow_links(false).max_depth(MAX_DEPTH).sort_by_file_name().into_iter();
  while let Some(entry) = walk.next() {
    let entry = entry.map_err(|e| StoreError::Internal(format!("reading {}: {e}", root.display())))?;
    if !entry.file_type().is_dir() {
      continue;
    }
    let Some((kind, account, named_stamp)) = is_profile(entry.path()) else { continue };
    walk.skip_current_dir();
    let path = entry.path().to_path_buf();
    let (bytes, newest) = measure(&path);
    let locked = browser_lock(&path);
    found.push(Profile { stamp: named_stamp.unwrap_or(newest), newest, path, kind, account, bytes, locked });
  }
  Ok(found)
}

/// One account's folders in one directory, newest first: the first is the one to import.
#[derive(Debug, Clone)]
pub struct Account {
  pub account: String,
  /// Name of the directory holding its folders (`workspace_1`): the same clientId in two directories is two
  /// accounts (two tenants, say), never one account's older and newer login.
  pub parent: String,
  pub profiles: Vec<Profile>,
}

/// Groups profiles by directory and account, newest first within each (ties: the later path).
pub fn group(profiles: Vec<Profile>) -> Vec<Account> {
  let mut accounts: std::collections::BTreeMap<(PathBuf, String), Vec<Profile>> = Default::default();
  for profile in profiles {
    let parent = profile.path.parent().map(Path::to_path_buf).unwrap_or_default();
    accounts.entry((parent, profile.account.clone())).or_default().push(profile);
  }
  let sorted = accounts.into_iter().map(|((parent, account), mut profiles)| {
    profiles.sort_by(|a, b| (b.stamp, &b.path).cmp(&(a.stamp, &a.path)));
    let parent = parent.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    Account { account, parent, profiles }
  });
  sorted.collect()
}

/// The session name an account gets: `template` with `{account}` and `{parent}` (its directory's name) replaced;
/// without a template, RemoteAuth's own rule (`RemoteAuth-<clientId>`, or `RemoteAuth` without a clientId).
pub fn session_name(template: Option<&str>, account: &Account) -> String {
  match template {
    Some(t) => t.replace("{account}", &account.account).replace("{parent}", &account.parent),
    None if account.account.is_empty() => "RemoteAuth".to_owned(),
    None => format!("RemoteAuth-{}", account.account),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn names() {
    assert_eq!(classify("session-shop1"), Some((Kind::LocalAuth, "shop1".into(), None)));
    assert_eq!(classify("session"), Some((Kind::LocalAuth, "".into(), None)));
    assert_eq!(classify("RemoteAuth-a_b"), Some((Kind::RemoteAuth, "a_b".into(), None)));
    assert_eq!(
      classify("session-webjs_ana_maria_1732700000_ab12"),
      Some((Kind::Legacy, "webjs_ana_maria".into(), Some(1_732_700_000)))
    );
    assert_eq!(
      classify("session-webjs_bo_1732700000123_x"),
      Some((Kind::Legacy, "webjs_bo".into(), Some(1_732_700_000)))
    );
    assert_eq!(classify("session-webjs_nostamp"), Some((Kind::LocalAuth, "webjs_nostamp".into(), None)));
    assert_eq!(classify("wwebjs_temp_session_x"), None);
    assert_eq!(classify("Default"), None);
  }

  #[test]
  fn finds_groups_and_orders_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("sessions-shared/workspace_1");
    for name in ["session-webjs_ana_1700000000_a", "session-webjs_ana_1700009999_b", "session-shop", "not-a-profile"] {
      std::fs::create_dir_all(ws.join(name).join("Default/IndexedDB")).unwrap();
      std::fs::write(ws.join(name).join("Default/IndexedDB/f"), name).unwrap();
    }
    // A folder named like a profile but without `Default` is not one.
    std::fs::create_dir_all(ws.join("session-empty")).unwrap();
    // Nothing inside a profile is looked at as another profile.
    std::fs::create_dir_all(ws.join("session-shop/Default/session-inner/Default")).unwrap();
    // The same clientId in another directory is another account.
    let other = dir.path().join("sessions-shared/workspace_2/session-shop/Default/IndexedDB");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("f"), "x").unwrap();
    let accounts = group(find_profiles(dir.path()).unwrap());
    let names: Vec<(&str, &str)> = accounts.iter().map(|a| (a.parent.as_str(), a.account.as_str())).collect();
    assert_eq!(names, [("workspace_1", "shop"), ("workspace_1", "webjs_ana"), ("workspace_2", "shop")]);
    let ana = &accounts[1].profiles;
    assert!(ana[0].path.ends_with("session-webjs_ana_1700009999_b"), "{ana:?}");
    assert_eq!(ana[0].bytes, "session-webjs_ana_1700009999_b".len() as u64);
    assert_eq!(session_name(None, &accounts[1]), "RemoteAuth-webjs_ana");
    assert_eq!(session_name(Some("{parent}-{account}"), &accounts[2]), "workspace_2-shop");
    let nameless = Account { account: String::new(), parent: String::new(), profiles: Vec::new() };
    assert_eq!(session_name(None, &nameless), "RemoteAuth");
  }
}
