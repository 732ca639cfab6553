//! `migrate`: import the newest profile folder of each account into the store, as the session RemoteAuth will
//! restore, and (only when asked, and only once the stored copy reads back identical) remove the folders.

mod discover;
mod login;
mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};
use serde::Serialize;

pub(crate) use self::discover::measure;
pub use self::discover::{browser_lock, classify, find_profiles, group, session_name, Account, Kind, Profile};
pub use self::login::{entries_hold_login, holds_login};
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
  /// Replace a session the store already has when it was saved before the folder was last written, or when it
  /// shows no login and the folder does (else it is kept and reported).
  pub overwrite: bool,
  /// Store an account none of whose folders shows a login (else it is reported, `ERR_IMPORT_NO_LOGIN`).
  pub include_logged_out: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
  /// Dry run: would be imported.
  Planned,
  Imported,
  /// The store has this session already; left as it was.
  AlreadyStored,
  /// No folder of the account shows a login: not stored (`--include-logged-out` stores the newest).
  NoLogin,
  Failed,
}

/// A folder of the account that is not the one taken, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
  pub path: PathBuf,
  pub login: bool,
  pub why: String,
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
  /// The folder taken: the newest that shows a login (the newest of all with `--include-logged-out` when none does).
  pub source: PathBuf,
  pub kind: Kind,
  /// The taken folder shows a login (`login`).
  pub login: bool,
  /// Why that folder is taken, and what happens to a copy the store holds already.
  pub why: String,
  /// The account's other folders, each with why it is not the one taken.
  pub skipped: Vec<Skipped>,
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
  /// Accounts with an error (a failed import, no login anywhere, or folders that could not all be removed).
  pub failed: u64,
  /// Things the operator should know before `--execute` (a `--name` template RemoteAuth never asks for).
  pub warnings: Vec<String>,
}

/// RemoteAuth asks the store for `RemoteAuth-<clientId>` (or `RemoteAuth`): a session named otherwise is never
/// restored by it.
fn template_warning(template: Option<&str>) -> Option<String> {
  let template = template?;
  (!template.starts_with("RemoteAuth-") && template != "RemoteAuth").then(|| {
    format!(
      "--name {template:?} makes session names without the RemoteAuth- prefix; RemoteAuth asks the store for \
       RemoteAuth-<clientId>, so it would never restore them (use e.g. 'RemoteAuth-{{parent}}-{{account}}' and \
       that clientId)"
    )
  })
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
    warnings: template_warning(opts.template.as_deref()).into_iter().collect(),
    sessions,
  })
}

async fn migrate_account(
  store: &Store,
  mut account: Account,
  name: String,
  collides: bool,
  opts: &MigrateOptions,
) -> Migrated {
  let paths: Vec<PathBuf> = account.profiles.iter().map(|p| p.path.clone()).collect();
  let logins = blocking::run(move || Ok(paths.iter().map(|p| holds_login(p)).collect::<Vec<bool>>())).await;
  let logins = logins.unwrap_or_else(|_| vec![false; account.profiles.len()]);
  // Newest first: the newest folder that shows a login; a newer one without is a QR code nobody scanned.
  let taken = logins.iter().position(|l| *l);
  let at = taken.unwrap_or(0);
  // The taken folder goes first: the rest of this module reads it as `profiles[0]`.
  account.profiles[..=at].rotate_right(1);
  let mut logins = logins;
  logins[..=at].rotate_right(1);
  let newest = account.profiles[0].clone();
  let why = match (taken, at) {
    (Some(_), 0) => "the newest folder, and it shows a login".to_owned(),
    (Some(_), n) => format!("the newest folder that shows a login ({n} newer show none)"),
    (None, _) => "no folder shows a login (no last-wid-md / WAToken1 key in Local Storage)".to_owned(),
  };
  let skipped = account.profiles[1..]
    .iter()
    .zip(&logins[1..])
    .map(|(p, &login)| Skipped {
      path: p.path.clone(),
      login,
      why: match (login, p.stamp > newest.stamp) {
        (false, true) => "newer, but shows no login: a QR code never scanned".into(),
        (false, false) => "older, and shows no login".into(),
        (true, _) => "an older login, superseded by the one taken".into(),
      },
    })
    .collect();
  let mut out = Migrated {
    session: name.clone(),
    account: account.account.clone(),
    source: newest.path.clone(),
    kind: newest.kind,
    login: logins[0],
    why,
    skipped,
    folders: account.profiles.len(),
    bytes_before: account.profiles.iter().map(|p| p.bytes).sum(),
    stored_bytes: None,
    status: Status::Planned,
    deleted: Vec::new(),
    freed_bytes: 0,
    kept_because: None,
    error: None,
  };
  if taken.is_none() && !opts.include_logged_out {
    out.status = Status::NoLogin;
    let reason = "no folder of this account shows a login: storing one would restore a QR code, not a session; \
                  --include-logged-out stores the newest anyway";
    out.error = Some(Failure { code: "ERR_IMPORT_NO_LOGIN", message: reason.into() });
    out.kept_because = opts.delete_source.then(|| "no folder shows a login; nothing was stored".into());
    return out;
  }
  if let Err(err) = import(store, &account, &name, collides, opts, &mut out).await {
    // An import that landed stays `imported`; the error then says what went wrong after it (removing folders).
    if out.status != Status::Imported {
      out.status = Status::Failed;
    }
    out.error = Some(Failure { code: err.code(), message: err.to_string() });
  }
  out
}

/// What the store holds of the session already, against what the taken folder packs to.
struct Held {
  /// The same entries, byte for byte.
  same: bool,
  login: bool,
  saved_ms: u64,
}

async fn held(store: &Store, key: &SessionKey, packed: &archive::Packed) -> Result<Option<Held>> {
  let Some(stored) = store.stored_archive(key).await? else { return Ok(None) };
  let (pack, session, fresh) = (store.pack_options().clone(), key.to_string(), packed.bytes.clone());
  blocking::run(move || {
    let keys = pack.keys.as_deref();
    let same = archive::fingerprint(&stored, keys, &pack.keep, &session)?
      .is_some_and(|f| archive::fingerprint(&fresh, keys, &pack.keep, &session).ok().flatten() == Some(f));
    let (header, entries) = archive::read_entries(&stored, keys, &pack.limits, &session)?;
    Ok(Some(Held { same, login: entries_hold_login(&entries), saved_ms: header.created_ms }))
  })
  .await
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
  // Decided the same way in a dry run: it tells what --execute will do.
  let replace_older_than = match held(store, &key, &packed).await? {
    None => None,
    Some(Held { same: true, .. }) => {
      out.status = Status::AlreadyStored;
      out.why.push_str("; the store holds this very copy");
      return remove_sources(account, opts, out).await;
    }
    Some(h) if opts.overwrite && !h.login && out.login => {
      out.why.push_str("; replaces the stored copy, which shows no login");
      Some(h.saved_ms.saturating_add(1)) // only that copy: one a service saved since is kept
    }
    Some(h) if opts.overwrite && h.saved_ms < newest_ms(account) => {
      out.why.push_str("; replaces the stored copy, saved before the folder was last written");
      Some(newest_ms(account))
    }
    Some(h) => {
      out.status = Status::AlreadyStored;
      let why = match (h.login, out.login, opts.overwrite) {
        (false, true, _) => "; the store holds another copy, which shows no login (kept; --overwrite replaces it)",
        (false, false, _) => "; the store holds another copy, which shows no login either (kept)",
        (true, _, false) => "; the store holds another copy (kept; --overwrite replaces it if older than the folder)",
        (true, _, true) => "; the store holds another copy, saved after the folder was last written (kept)",
      };
      out.why.push_str(why);
      if opts.delete_source {
        out.kept_because = Some("the store holds a different copy than the folder taken; nothing removed".into());
      }
      return Ok(());
    }
  };
  if !opts.execute {
    return Ok(());
  }
  let expected = blake3::hash(&packed.bytes);
  let Some(saved) = store.import(&key, packed, replace_older_than).await? else {
    out.status = Status::AlreadyStored;
    out.why.push_str("; a copy was saved meanwhile (kept)");
    return Ok(());
  };
  // Read it back through the store (checksum checked there) and compare with what was packed.
  if blake3::hash(&store.fetch(&key).await?) != expected {
    return Err(StoreError::ArchiveCorrupt(format!("the stored copy of {key} does not read back as written")));
  }
  out.status = Status::Imported;
  // The folders stay the only other copy until the backup tier has one too.
  if let (true, Some(err)) = (opts.delete_source, saved.backup_error) {
    out.kept_because = Some("the backup of the imported session failed".into());
    return Err(err);
  }
  remove_sources(account, opts, out).await
}

/// With `--delete-source` and `--execute`, once the store holds exactly the taken folder's copy: removes the
/// account's folders that are not newer than it, each unless in use or changed since it was read.
async fn remove_sources(account: &Account, opts: &MigrateOptions, out: &mut Migrated) -> Result<()> {
  if !(opts.delete_source && opts.execute) {
    return Ok(());
  }
  let imported = &account.profiles[0];
  // An account stored without a login (`--include-logged-out`): its folders are all there is to look at again.
  if !out.login {
    let why = "the imported folder shows no login (no last-wid-md / WAToken1 key in its Local Storage); check the \
               folders by hand";
    out.kept_because = Some(why.into());
    return Ok(());
  }
  // A folder newer than the one taken (by its name's time or its files') stays: it may be a login this process
  // could not see.
  let (doomed, kept): (Vec<&Profile>, Vec<&Profile>) =
    account.profiles.iter().partition(|p| p.newest <= imported.newest && p.stamp <= imported.stamp);
  if !kept.is_empty() {
    let n = kept.len();
    out.kept_because =
      Some(format!("{n} folder(s) are newer than or were written after the imported one; check them by hand"));
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
