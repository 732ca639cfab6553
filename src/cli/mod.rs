//! `wwebjs-rust-store <command>`: the operator's jobs. Parsing and printing live here; the work is in the core
//! modules (`migrate`, `cleanup`, the store's `stats` / `verify` / `backup_all` / `restore_all`).

mod flags;
mod fleet;
mod print;
mod progress;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use self::flags::StoreFlags;
use self::print::Format;
use crate::cleanup::{cleanup, CleanupOptions};
use crate::error::StoreError;
use crate::import::{export_to, import_from, ExportOptions, ImportOptions};
use crate::migrate::{migrate, MigrateOptions};
use crate::scheduler::Reporter;
use crate::store::{Pick, Store};

#[derive(Parser)]
#[command(name = "wwebjs-rust-store", version, about = "Operate a whatsapp-web.js RemoteAuth session store")]
struct Cli {
  #[command(flatten)]
  store: StoreFlags,
  #[command(subcommand)]
  command: Command,
}

#[derive(Subcommand)]
enum Command {
  /// Import LocalAuth / RemoteAuth / legacy profile folders, newest per account (dry run unless --execute)
  Migrate {
    /// Directory to search (profile folders up to 4 levels down)
    #[arg(value_name = "DIR")]
    root: PathBuf,
    /// Import; without it nothing is written
    #[arg(long)]
    execute: bool,
    /// With --execute: remove an account's folders once its stored copy reads back identical
    #[arg(long, requires = "execute")]
    delete_source: bool,
    /// Replace a stored session saved before its folder was last written, or one that shows no login when the
    /// folder does
    #[arg(long)]
    overwrite: bool,
    /// Also store accounts none of whose folders shows a login (by default they are reported and not stored)
    #[arg(long)]
    include_logged_out: bool,
    /// Session name for each account; {account} is the clientId (`webjs_<user>` for legacy folders), {parent}
    /// the folder's directory; RemoteAuth asks for `RemoteAuth-<clientId>`, so keep that prefix
    /// [default: RemoteAuth-{account}]
    #[arg(long, value_name = "TEMPLATE")]
    name: Option<String>,
    #[arg(long)]
    json: bool,
  },
  /// Remove sessions not saved for N days and crash leftovers under the data path (dry run unless --execute)
  Cleanup {
    /// Days without a save after which a stored session is removed; 0 keeps every stored session
    /// [default: the Redis TTL, 30 days]
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u64).range(0..=36_500))]
    older_than_days: Option<u64>,
    /// Local leftovers (zips, temp and orphan profiles) younger than this are left alone
    #[arg(long, value_name = "MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=5_256_000))]
    min_age_minutes: u64,
    /// Also remove `RemoteAuth-*` profile folders whose session is not stored (they may be what `migrate` or a
    /// recovery would import: only once the store is known to be the right one)
    #[arg(long)]
    orphans: bool,
    #[arg(long)]
    execute: bool,
    #[arg(long)]
    json: bool,
  },
  /// Sessions and bytes per tier, disk space under the data path, backup lag
  Stats {
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Prometheus text exposition format
    #[arg(long)]
    prometheus: bool,
  },
  /// Read every stored copy (each backup version too) and check its checksum; exit 1 if any is bad. Damaged
  /// backup chunks found are marked in the bucket: no backup reuses them
  Verify {
    /// Write backup versions with damaged chunks again from the primary's copy (where it still holds those
    /// chunks), then check again
    #[arg(long)]
    repair: bool,
    #[arg(long)]
    json: bool,
  },
  /// Re-encrypt every stored copy (each backup version too) under SESSION_ENCRYPTION_KEY; copies under a key in
  /// SESSION_ENCRYPTION_PREVIOUS_KEYS (or plain ones) are rewritten, keeping their save time
  RotateKey {
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    #[arg(long)]
    json: bool,
  },
  /// Copy every session of the primary to the backup tier
  Backup {
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    #[arg(long)]
    json: bool,
  },
  /// List a session's backup versions, oldest first
  Versions {
    session: String,
    #[arg(long)]
    json: bool,
  },
  /// Write a session as a RemoteAuth zip: the stored copy, or a backup version (by name or point in time)
  Extract {
    session: String,
    /// Where the zip goes
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// A backup version's name, as `versions` lists it
    #[arg(long, conflicts_with = "at")]
    version: Option<String>,
    /// The newest backup version saved at or before this time: RFC 3339 (2026-11-28T10:00:00Z) or ms since
    /// the Unix epoch
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<u64>,
  },
  /// Import the sessions of another RemoteAuth store (dry run unless --execute): a folder of <session>.zip files,
  /// s3://bucket/prefix/ (wwebjs-aws-s3's layout) or redis://… keys; the source is only read
  Import {
    /// ./folder, s3://bucket/remoteDataPath/, or redis:// / rediss:// URL (comma-separated: a cluster's nodes)
    #[arg(long, value_name = "SOURCE")]
    from: String,
    /// Write; without it every entry is checked and nothing is written
    #[arg(long)]
    execute: bool,
    /// Read and compare every session, also those whose stored copy is newer than the source's last write
    #[arg(long)]
    overwrite: bool,
    /// Redis key pattern; the session id is what the * matches [default: wa:session:*]
    #[arg(long, value_name = "GLOB")]
    pattern: Option<String>,
    /// Session name for a source id, with {id} in it [default: {id}]
    #[arg(long, value_name = "TEMPLATE")]
    name: Option<String>,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    #[arg(long)]
    json: bool,
  },
  /// Write every stored session (or the named ones) as the RemoteAuth zip `extract` writes, to a folder
  /// (<session>.zip) or s3://bucket/prefix/ in wwebjs-aws-s3's layout
  Export {
    /// Only these sessions
    sessions: Vec<String>,
    /// ./folder or s3://bucket/remoteDataPath/
    #[arg(long, value_name = "TARGET")]
    to: String,
    /// Each session's newest backup version saved at or before this time (RFC 3339 or ms since the epoch)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<u64>,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    #[arg(long)]
    json: bool,
  },
  /// Remove one session from every tier (dry run unless --execute), under its lease: refused while a running
  /// service holds the lease (ERR_LEASE_HELD), as the store's own delete is fenced
  Delete {
    session: String,
    #[arg(long)]
    execute: bool,
    #[arg(long)]
    json: bool,
  },
  /// The fleet of workers as Redis holds it (workers, load, unassigned sessions); pin or pause a session
  Fleet(fleet::FleetArgs),
  /// Copy every session's newest good backup to the primary, never over a newer copy
  Restore {
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    #[arg(long)]
    json: bool,
  },
  /// Serve Prometheus metrics (GET /metrics) for the store until the process is stopped
  ServeMetrics {
    #[arg(long, default_value_t = 9464)]
    port: u16,
    /// Address to listen on; 0.0.0.0 for a scraper on another host (session names appear in labels)
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
  },
}

/// How an `s3://` source or target is reached: as the store's bucket is (flags and S3_* / R2_* variables), else
/// from the S3_* variables alone; the bucket and prefix are the URL's.
fn source_s3(
  store_s3: Option<crate::settings::S3Settings>,
  url: &str,
) -> Result<Option<crate::settings::S3Settings>, StoreError> {
  let Some(rest) = url.strip_prefix("s3://") else { return Ok(None) };
  let bucket = rest.split('/').next().unwrap_or_default().to_owned();
  Ok(match store_s3 {
    Some(s3) => Some(s3),
    None => crate::settings::s3_from_env(Some(bucket))?,
  })
}

/// RFC 3339 or ms since the Unix epoch → ms.
fn parse_time(text: &str) -> Result<u64, String> {
  if let Ok(ms) = text.parse::<u64>() {
    return Ok(ms);
  }
  let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    .map_err(|e| format!("not RFC 3339 or ms since the epoch: {e}"))?;
  u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| "before 1970".into())
}

/// Exit codes: 0 done, 1 done but something failed or is bad, 2 wrong usage or configuration.
pub const EXIT_PROBLEMS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Runs one command line (`args[0]` is the program name). Output goes to `out`, messages and errors to
/// `err`; progress bars draw on the terminal only.
pub async fn run(args: Vec<String>, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> i32 {
  let cli = match Cli::try_parse_from(args) {
    Ok(cli) => cli,
    Err(e) => {
      let _ = if e.use_stderr() { write!(err, "{}", e.render()) } else { write!(out, "{}", e.render()) };
      return e.exit_code();
    }
  };
  let built = cli.store.settings().and_then(|mut s| {
    // A command backs up what it stores within the command, so it can report (and act on) a failed backup.
    // Except the metrics server, which reports the backup interval the app runs with (SESSION_BACKUP_INTERVAL_MS).
    if let (Some(s3), false) = (s.s3.as_mut(), matches!(cli.command, Command::ServeMetrics { .. })) {
      s3.backup_interval_ms = Some(0.0);
    }
    check_deletable(&cli.command, &s)?;
    Ok((s.build_store(stderr_reporter())?, s.ttl_seconds()?, s.s3.clone(), s.min_free_bytes()?))
  });
  let json = wants_json(&cli.command);
  let (store, ttl, s3, min_free_bytes) = match built {
    Ok(built) => built,
    Err(e) => return report_error(&e, json, out, err),
  };
  let code = match execute(&store, ttl, s3, min_free_bytes, cli.command, out).await {
    Ok(code) => code,
    Err(e) => report_error(&e, json, out, err),
  };
  // Sessions a command stored are backed up before the process ends.
  let flushed = store.close().await;
  for (key, e) in &flushed.failures {
    let _ = writeln!(err, "error: backup of {key} failed: {}: {e}", e.code());
  }
  if flushed.failures.is_empty() {
    code
  } else {
    EXIT_PROBLEMS
  }
}

/// Whether the command was asked for JSON: its errors are then JSON on stdout too, for the program reading it.
fn wants_json(command: &Command) -> bool {
  match command {
    Command::Migrate { json, .. }
    | Command::Cleanup { json, .. }
    | Command::Stats { json, .. }
    | Command::Verify { json, .. }
    | Command::RotateKey { json, .. }
    | Command::Backup { json, .. }
    | Command::Versions { json, .. }
    | Command::Import { json, .. }
    | Command::Export { json, .. }
    | Command::Delete { json, .. }
    | Command::Restore { json, .. } => *json,
    Command::Extract { .. } | Command::ServeMetrics { .. } | Command::Fleet(_) => false,
  }
}

/// A command that could not run: the error on stderr (and as `{"error":{code,message}}` on stdout for `--json`);
/// exit 2 when it is the command line or the configuration that is wrong (a missing tier or key, a bad name),
/// else 1.
fn report_error(e: &StoreError, json: bool, out: &mut (dyn Write + Send), err: &mut (dyn Write + Send)) -> i32 {
  let _ = writeln!(err, "error: {}: {e}", e.code());
  if json {
    let body = serde_json::json!({ "error": { "code": e.code(), "message": e.to_string() } });
    let _ = writeln!(out, "{body}");
  }
  match e {
    StoreError::InvalidOption { .. } | StoreError::InvalidArgument(_) | StoreError::SessionName { .. } => EXIT_USAGE,
    _ => EXIT_PROBLEMS,
  }
}

/// What `delete` did (or would do).
#[derive(serde::Serialize)]
pub struct Deleted {
  session: String,
  execute: bool,
  /// A tier held it before.
  stored: bool,
}

/// Deletes the session under its lease where the primary keeps leases: a running service that holds it makes
/// this fail with `ERR_LEASE_HELD` and nothing is deleted; once taken, the delete is fenced by it like a save.
async fn delete(store: &Store, session: &str, execute: bool) -> Result<Deleted, StoreError> {
  let stored = store.session_exists(session).await?;
  let done = Deleted { session: session.to_owned(), execute, stored };
  if !execute || !stored {
    return Ok(done);
  }
  let token = match store.acquire_lease(session, Duration::from_secs(30)).await {
    Ok(token) => Some(token),
    Err(StoreError::InvalidOption { name: "lease", .. }) => None, // no primary: the bucket alone
    Err(e) => return Err(e),
  };
  let deleted = store.delete(session).await;
  if let Some(token) = token {
    let _ = store.release_lease(session, &token).await;
  }
  deleted.map(|()| done)
}

/// `migrate --delete-source` leaves the store as the only copy: refused when that copy would expire unseen
/// (Redis with a TTL and no backup tier).
fn check_deletable(command: &Command, s: &crate::settings::Settings) -> Result<(), StoreError> {
  let deletes = matches!(command, Command::Migrate { delete_source: true, .. });
  if deletes && s.redis.is_some() && s.s3.is_none() {
    if let Some(ttl) = s.ttl_seconds()? {
      let reason = format!(
        "sessions in Redis expire after {ttl} s unless saved again, and there is no backup tier; set \
         SESSION_TTL_SECONDS=0 or configure S3 before removing the source folders"
      );
      return Err(StoreError::InvalidOption { name: "--delete-source", reason });
    }
  }
  Ok(())
}

fn stderr_reporter() -> Reporter {
  Arc::new(|key, e: &StoreError| eprintln!("error: backup of {key} failed: {}: {e}", e.code()))
}

fn format(json: bool, prometheus: bool) -> Format {
  match (json, prometheus) {
    (true, _) => Format::Json,
    (_, true) => Format::Prometheus,
    _ => Format::Table,
  }
}

async fn execute(
  store: &Store,
  ttl: Option<u64>,
  s3: Option<crate::settings::S3Settings>,
  min_free_bytes: u64,
  command: Command,
  out: &mut (dyn Write + Send),
) -> Result<i32, StoreError> {
  let write_failed = |e: std::io::Error| StoreError::io("write output", "stdout")(e);
  match command {
    Command::Migrate { root, execute, delete_source, overwrite, include_logged_out, name, json } => {
      let opts = MigrateOptions { template: name, execute, delete_source, overwrite, include_logged_out };
      let bar = progress::bar("migrating");
      let report = migrate(store, &root, &opts, Some(&bar.callback())).await?;
      bar.finish();
      print::migrate(out, &report, format(json, false)).map_err(write_failed)?;
      Ok(if report.failed > 0 { EXIT_PROBLEMS } else { 0 })
    }
    Command::Cleanup { older_than_days, min_age_minutes, orphans, execute, json } => {
      let stale_after = match older_than_days {
        Some(0) => None,
        Some(days) => Some(Duration::from_secs(days * 86_400)),
        None => ttl.map(Duration::from_secs),
      };
      let min_local_age = Duration::from_secs(min_age_minutes * 60);
      let opts = CleanupOptions { stale_after, min_local_age, orphans, execute };
      let report = cleanup(store, &opts).await?;
      print::cleanup(out, &report, format(json, false)).map_err(write_failed)?;
      Ok(if report.failures.is_empty() { 0 } else { EXIT_PROBLEMS })
    }
    Command::Stats { json, prometheus } => {
      let stats = store.stats().await?;
      print::stats(out, &stats, format(json, prometheus)).map_err(write_failed)?;
      Ok(0)
    }
    Command::Verify { repair, json } => {
      let bar = progress::bar("verifying");
      let verified = match repair {
        true => store.verify_and_repair(&bar.callback()).await?,
        false => store.verify(Some(&bar.callback())).await?,
      };
      bar.finish();
      print::verify(out, &verified, format(json, false)).map_err(write_failed)?;
      Ok(if verified.bad.is_empty() { 0 } else { EXIT_PROBLEMS })
    }
    Command::Backup { concurrency, json } => {
      let bar = progress::bar("backing up");
      let done = store.backup_all(concurrency.into(), Some(bar.callback())).await?;
      bar.finish();
      print::transfer(out, "backed up", &done, format(json, false)).map_err(write_failed)?;
      Ok(if done.failures.is_empty() { 0 } else { EXIT_PROBLEMS })
    }
    Command::RotateKey { concurrency, json } => {
      let bar = progress::bar("re-encrypting");
      let done = store.rekey(concurrency.into(), Some(bar.callback())).await?;
      bar.finish();
      print::rekeyed(out, &done, format(json, false)).map_err(write_failed)?;
      let failed = !done.primary.failures.is_empty() || !done.backups.failures.is_empty();
      Ok(if failed { EXIT_PROBLEMS } else { 0 })
    }
    Command::Versions { session, json } => {
      if !store.has_backups() {
        let reason = "listing versions needs a backup tier (S3_BUCKET / R2_BUCKET or --s3-bucket)".into();
        return Err(StoreError::InvalidOption { name: "s3", reason });
      }
      let versions = store.backup_versions(&session).await?;
      print::versions(out, &versions, format(json, false)).map_err(write_failed)?;
      Ok(0)
    }
    Command::Extract { session, out: path, version, at } => {
      let info = store.extract_version(&session, &path, &Pick { version, at_ms: at }).await?;
      let when = print::time_text(info.header.created_ms);
      writeln!(out, "wrote {} (saved {when}) to {}", info.key, path.display()).map_err(write_failed)?;
      Ok(0)
    }
    Command::Import { from, execute, overwrite, pattern, name, concurrency, json } => {
      let s3 = source_s3(s3, &from)?;
      let opts = ImportOptions { execute, overwrite, name, pattern, s3, concurrency: Some(concurrency.into()) };
      let bar = progress::bar("importing");
      let report = import_from(store, &from, &opts, Some(&bar.callback())).await?;
      bar.finish();
      print::import(out, &report, format(json, false)).map_err(write_failed)?;
      Ok(if report.failed > 0 { EXIT_PROBLEMS } else { 0 })
    }
    Command::Export { sessions, to, at, concurrency, json } => {
      let s3 = source_s3(s3, &to)?;
      let sessions = (!sessions.is_empty()).then_some(sessions);
      let opts = ExportOptions { sessions, at_ms: at, s3, concurrency: Some(concurrency.into()) };
      let bar = progress::bar("exporting");
      let report = export_to(store, &to, &opts, Some(&bar.callback())).await?;
      bar.finish();
      print::export(out, &report, format(json, false)).map_err(write_failed)?;
      Ok(if report.failed > 0 { EXIT_PROBLEMS } else { 0 })
    }
    Command::ServeMetrics { port, host } => {
      let listener = crate::metrics::bind(&host, port)?;
      let exporter = Arc::new(crate::metrics::Exporter { store: store.clone(), min_free_bytes });
      // Never told to stop: the process ends on a signal.
      let (_stop, stopped) = tokio::sync::watch::channel(false);
      crate::metrics::serve(listener, exporter, stopped).await?;
      Ok(0)
    }
    Command::Fleet(args) => fleet::run(store, args, out).await,
    Command::Delete { session, execute, json } => {
      let deleted = delete(store, &session, execute).await?;
      print::deleted(out, &deleted, format(json, false)).map_err(write_failed)?;
      Ok(0)
    }
    Command::Restore { concurrency, json } => {
      let bar = progress::bar("restoring");
      let done = store.restore_all(concurrency.into(), Some(bar.callback())).await?;
      bar.finish();
      print::transfer(out, "restored", &done, format(json, false)).map_err(write_failed)?;
      Ok(if done.failures.is_empty() { 0 } else { EXIT_PROBLEMS })
    }
  }
}

#[cfg(test)]
mod tests {
  use clap::CommandFactory;

  use super::*;

  #[test]
  fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
  }

  #[tokio::test]
  async fn usage_errors_exit_2_and_help_goes_to_stdout() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
    assert_eq!(run(args(&["x", "migrate"]), &mut out, &mut err).await, EXIT_USAGE);
    assert!(String::from_utf8_lossy(&err).contains("<DIR>"));
    assert_eq!(run(args(&["x", "migrate", "--help"]), &mut out, &mut err).await, 0);
    assert!(String::from_utf8_lossy(&out).contains("--delete-source"));
  }
}
