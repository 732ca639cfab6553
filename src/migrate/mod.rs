//! `migrate`: import the newest profile folder of each account into the store, as the session RemoteAuth will
//! restore, and (only when asked, and only once the stored copy reads back identical) remove the folders.

mod discover;
mod login;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};
use serde::Serialize;

pub(crate) use self::discover::measure;
pub use self::discover::{browser_lock, classify, find_profiles, group, session_name, Account, Kind, Profile};
pub use self::login::holds_login;
use crate::archive;
use crate::blocking;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::store::Store;
use crate::transfer::Progress;

#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
  /// Session name for an account, with `{account}` in it; default RemoteAuth's `RemoteAuth-<clientId>`.
  pub template: Option<String>,
  /// Import (else only report what would happen).
  pub execute: bool,
  /// Remove an account's folders once its import reads back identical.
  pub delete_source: bool,
  /// Replace a session the store already has, if it was saved before the folder was last written (else it is
  /// kept and reported).
  pub overwrite: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
  /// Dry run: would be imported.
  Planned,
  Imported,
  /// The store has this session already; left as it was.
  AlreadyStored,
  Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
  pub code: &'static str,
  pub message: String,
}

/// One account's migration.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
  pub session: String,
  pub account: String,
  /// The newest folder: the one imported.
  pub source: PathBuf,
  pub kind: Kind,
  /// Folders of this account (older ones are superseded by the newest).
  pub folders: usize,
  /// Bytes of all its folders on disk.
  pub bytes_before: u64,
  /// Bytes the store keeps for it (what it would keep, in a dry run).
  pub stored_bytes: Option<u64>,
  pub status: Status,
  /// Folders removed (`--delete-source`).
  pub deleted: Vec<PathBuf>,
  pub freed_bytes: u64,
  /// Why folders were kept despite `--delete-source`.
  pub kept_because: Option<String>,
  pub error: Option<Failure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
  pub execute: bool,
  pub sessions: Vec<Migrated>,
  pub bytes_before: u64,
  pub stored_bytes: u64,
  pub freed_bytes: u64,
  /// Accounts with an error (a failed import, or folders that could not all be removed).
  pub failed: u64,
}

/// Imports run a few at a time: packing is CPU work, and the machine may be serving sessions meanwhile.
const CONCURRENCY: usize = 4;

/// Finds the profile folders under `root` and migrates each account (see the module docs).
pub async fn migrate(store: &Store, root: &Path, opts: &MigrateOptions, progress: Option<&Progress>) -> Result<Report> {
  let found = {
    let root = crate::store::cwd()?.join(root);
    blocking::run(move || find_profiles(&root)).await?
  };
  let accounts = group(found);
  let mut claimed: HashMap<String, usize> = HashMap::new();
  for account in &accounts {
    *claimed.entry(session_name(opts.template.as_deref(), account)).or_default() += 1;
  }
  let total = accounts.len() as u32;
  let mut runs = stream::iter(accounts)
    .map(|account| {
      let name = session_name(opts.template.as_deref(), &account);
      let collides = claimed.get(&name).copied().unwrap_or(0) > 1;
      migrate_account(store, account, name, collides, opts)
    })
    .buffered(CONCURRENCY);
  let mut sessions = Vec::new();
  while let Some(done) = runs.next().await {
    sessions.push(done);
    if let Some(progress) = progress {
      progress(sessions.len() as u32, total);
    }
  }
  Ok(Report {
    execute: opts.execute,
    bytes_before: sessions.iter().map(|s| s.bytes_before).sum(),
    stored_bytes: sessions.iter().filter_map(|s| s.stored_bytes).sum(),
    freed_bytes: sessions.iter().map(|s| s.freed_bytes).sum(),
    failed: sessions.iter().filter(|s| s.error.is_some()).count() as u64,
    sessions,
  })
}

async fn migrate_account(
  store: &Store,
  account: Account,
  name: String,
  collides: bool,
  opts: &MigrateOptions,
) -> Migrated {
  let newest = account.profiles[0].clone();
  let mut out = Migrated {
    session: name.clone(),
    account: account.account.clone(),
    source: newest.path.clone(),
    kind: newest.kind,
    folders: account.profiles.len(),
    bytes_before: account.profiles.iter().map(|p| p.bytes).sum(),
    stored_bytes: None,
    status: Status::Planned,
    deleted: Vec::new(),
    freed_bytes: 0,
    kept_because: None,
    error: None,
  };
  if let Err(err) = import(store, &account, &name, collides, opts, &mut out).await {
    // An import that landed stays `imported`; the error then says what went wrong after it (removing folders).
    if out.status != Status::Imported {
      out.status = Status::Failed;
    }
    out.error = Some(Failure { code: err.code(), message: err.to_string() });
  }
  out
}

async fn import(
  store: &Store,
  account: &Account,
  name: &str,
  collides: bool,
  opts: &MigrateOptions,
  out: &mut Migrated,
) -> Result<()> {
  let key = SessionKey::parse(name)?;
  if collides {
    let reason = format!("more than one account maps to the session {name}; give a --name template with {{account}}");
    return Err(StoreError::InvalidOption { name: "name", reason });
  }
  let (source, pack) = (out.source.clone(), store.pack_options().clone());
  let session = key.to_string();
  let packed = blocking::run(move || archive::pack_dir(&source, &pack, &session)).await?;
  out.stored_bytes = Some(packed.bytes.len() as u64);
  if !opts.execute {
    return Ok(());
  }
  let expected = blake3::hash(&packed.bytes);
  // A stored copy saved after the folder was last written is newer than anything the folder can give.
  let replace_older_than = opts.overwrite.then_some(newest_ms(account));
  let Some(saved) = store.import(&key, packed, replace_older_than).await? else {
    out.status = Status::AlreadyStored;
    return Ok(());
  };
  // Read it back through the store (checksum checked there) and compare with what was packed.
  if blake3::hash(&store.fetch(&key).await?) != expected {
    return Err(StoreError::ArchiveCorrupt(format!("the stored copy of {key} does not read back as written")));
  }
  out.status = Status::Imported;
  if !opts.delete_source {
    return Ok(());
  }
  // The folders stay the only other copy until the backup tier has one too.
  if let Some(err) = saved.backup_error {
    out.kept_because = Some("the backup of the imported session failed".into());
    return Err(err);
  }
  let imported = &account.profiles[0];
  // The newest folder may be an abandoned QR-code profile while an older one holds the real login: folders go
  // only when the imported one shows a login itself.
  let path = imported.path.clone();
  if !blocking::run(move || Ok(holds_login(&path))).await? {
    let why = "the imported folder shows no login (no last-wid-md / WAToken1 key in its Local Storage); an older \
               folder may hold the real one: check them by hand";
    out.kept_because = Some(why.into());
    return Ok(());
  }
  let (doomed, kept): (Vec<&Profile>, Vec<&Profile>) =
    account.profiles.iter().partition(|p| p.newest <= imported.newest);
  if !kept.is_empty() {
    let n = kept.len();
    out.kept_because = Some(format!("{n} folder(s) were written after the imported one; check them by hand"));
  }
  let doomed: Vec<Profile> = doomed.into_iter().cloned().collect();
  let (removed, failed) = blocking::run(move || Ok(remove_idle(doomed))).await?;
  out.freed_bytes = account.profiles.iter().filter(|p| removed.contains(&p.path)).map(|p| p.bytes).sum();
  out.deleted = removed;
  match failed {
    Some(Skip::InUse(path)) => {
      out.kept_because = Some(format!("{} is in use or changed since it was read", path.display()));
      Ok(())
    }
    Some(Skip::Failed(err)) => Err(err),
    None => Ok(()),
  }
}

/// The newest write to any of an account's folders, in ms.
fn newest_ms(account: &Account) -> u64 {
  account.profiles.iter().map(|p| p.newest).max().unwrap_or(0).saturating_mul(1000)
}

enum Skip {
  /// A browser holds the profile, or something wrote to it since it was read: it and the rest are kept.
  InUse(PathBuf),
  Failed(StoreError),
}

/// Removes each folder unless a browser holds it or it changed since discovery (checked right before, as
/// packing may have taken minutes); stops at the first one it may not or cannot remove.
fn remove_idle(folders: Vec<Profile>) -> (Vec<PathBuf>, Option<Skip>) {
  let mut removed = Vec::new();
  for folder in folders {
    if browser_lock(&folder.path) || measure(&folder.path).1 != folder.newest {
      return (removed, Some(Skip::InUse(folder.path)));
    }
    if let Err(e) = std::fs::remove_dir_all(&folder.path) {
      return (removed, Some(Skip::Failed(StoreError::io("remove", &folder.path)(e))));
    }
    removed.push(folder.path);
  }
  (removed, None)
}
