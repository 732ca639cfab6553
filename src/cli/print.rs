//! How each command's result is shown: a readable table, JSON, or (for `stats`) Prometheus text.

mod import;

use std::io::{Result, Write};

use indicatif::HumanBytes;
use serde::Serialize;

use crate::cleanup::CleanupReport;
use crate::migrate::{Report, Status};
use crate::store::{Rekeyed, Stats, Verified};
use crate::transfer::Transfer;

pub use self::import::{export, import};

#[derive(Debug, Clone, Copy)]
pub enum Format {
  Table,
  Json,
  Prometheus,
}

fn json(out: &mut dyn Write, value: &impl Serialize) -> Result<()> {
  serde_json::to_writer_pretty(&mut *out, value)?;
  writeln!(out)
}

/// Left-aligned columns, two spaces apart.
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
  let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
  for row in rows {
    for (w, cell) in widths.iter_mut().zip(row) {
      *w = (*w).max(cell.chars().count());
    }
  }
  let line = |out: &mut dyn Write, cells: Vec<&str>| {
    let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
    writeln!(out, "{}", padded.join("  ").trim_end())
  };
  line(out, header.to_vec())?;
  for row in rows {
    line(out, row.iter().map(String::as_str).collect())?;
  }
  Ok(())
}

fn bytes(n: u64) -> String {
  HumanBytes(n).to_string()
}

/// "-92.1 %": how much smaller `after` is than `before`.
fn reduction(before: u64, after: u64) -> String {
  if before == 0 {
    return "-".into();
  }
  format!("-{:.2} %", 100.0 * (before as f64 - after as f64) / before as f64)
}

pub fn migrate(out: &mut dyn Write, report: &Report, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    return json(out, report);
  }
  let rows: Vec<Vec<String>> = report
    .sessions
    .iter()
    .map(|s| {
      let name = serde_json::to_value(s.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
      let status = match &s.error {
        Some(e) => format!("{name}: {}: {}", e.code, e.message),
        None => name,
      };
      let stored = s.stored_bytes.map_or("-".into(), bytes);
      let removed = match (&s.kept_because, s.deleted.len()) {
        (Some(why), _) => format!("kept: {why}"),
        (None, 0) => String::new(),
        (None, n) => format!("removed {n}"),
      };
      let source = s.source.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
      let reduction = s.stored_bytes.map_or("-".into(), |after| reduction(s.bytes_before, after));
      vec![s.session.clone(), source, s.folders.to_string(), bytes(s.bytes_before), stored, reduction, status, removed]
    })
    .collect();
  let header = ["session", "folder taken", "folders", "on disk", "stored", "reduction", "status", "folders removed"];
  table(out, &header, &rows)?;
  writeln!(out)?;
  // Per account: which folder is taken and why, and why each other one is not.
  let name = |p: &std::path::Path| p.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
  for s in &report.sessions {
    writeln!(out, "{}: {} ({})", s.session, name(&s.source), s.why)?;
    for skipped in &s.skipped {
      writeln!(out, "  skipped {}: {}", name(&skipped.path), skipped.why)?;
    }
  }
  writeln!(out)?;
  for warning in &report.warnings {
    writeln!(out, "warning: {warning}")?;
  }
  let verb = if report.execute { "imported" } else { "dry run: would import" };
  let imported = report.sessions.iter().filter(|s| matches!(s.status, Status::Imported | Status::Planned)).count();
  writeln!(
    out,
    "{verb} {imported} of {} sessions: {} on disk -> {} stored ({}); {} freed; {} failed",
    report.sessions.len(),
    bytes(report.bytes_before),
    bytes(report.stored_bytes),
    reduction(report.bytes_before, report.stored_bytes),
    bytes(report.freed_bytes),
    report.failed
  )?;
  if !report.execute {
    writeln!(
      out,
      "nothing was changed; run again with --execute to import (and --delete-source to remove the folders)"
    )?;
  }
  Ok(())
}

pub fn cleanup(out: &mut dyn Write, report: &CleanupReport, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    return json(out, report);
  }
  let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
  let mut rows: Vec<Vec<String>> = report
    .stale_sessions
    .iter()
    .map(|s| {
      let days = now_ms.saturating_sub(s.saved_at_ms) / 86_400_000;
      vec!["stale session".into(), s.session.clone(), bytes(s.bytes), format!("{days} d")]
    })
    .collect();
  rows.extend(report.leftovers.iter().map(|l| {
    let kind = serde_json::to_value(l.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    vec![kind, l.path.display().to_string(), bytes(l.bytes), format!("{} min", l.age_seconds / 60)]
  }));
  rows.extend(report.crash_leftovers.iter().map(|l| {
    let kind = serde_json::to_value(l.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    vec![kind, l.path.display().to_string(), bytes(l.bytes), "-".into()]
  }));
  rows.extend(report.unreferenced_packs.iter().map(|u| {
    let what = if u.skipped { "packs (busy, next run)" } else { "unreferenced packs" };
    vec![what.into(), format!("{} ({} packs)", u.session, u.packs), bytes(u.bytes), "-".into()]
  }));
  table(out, &["what", "which", "size", "age"], &rows)?;
  writeln!(out)?;
  let verb = if report.execute { "removed" } else { "dry run: would remove" };
  let packs: usize = report.unreferenced_packs.iter().map(|u| u.packs).sum();
  let pack_bytes: u64 = report.unreferenced_packs.iter().map(|u| u.bytes).sum();
  writeln!(
    out,
    "{verb} {} stale sessions, {} local leftovers ({} under {}) and {packs} unreferenced backup packs ({})",
    report.stale_sessions.len(),
    report.leftovers.len() + report.crash_leftovers.len(),
    bytes(report.local_bytes),
    report.data_path.display(),
    bytes(pack_bytes)
  )?;
  for f in &report.failures {
    writeln!(out, "failed: {}: {}: {}", f.target, f.code, f.message)?;
  }
  Ok(())
}

pub fn stats(out: &mut dyn Write, stats: &Stats, format: Format) -> Result<()> {
  match format {
    Format::Json => json(out, stats),
    Format::Prometheus => prometheus(out, stats),
    Format::Table => {
      let rows: Vec<Vec<String>> = stats
        .tiers
        .iter()
        .map(|t| vec![t.tier.into(), t.role.into(), t.sessions.to_string(), t.objects.to_string(), bytes(t.bytes)])
        .collect();
      table(out, &["tier", "role", "sessions", "objects", "bytes"], &rows)?;
      writeln!(out)?;
      let mut facts = vec![
        ("sessions", stats.sessions.to_string()),
        ("average session", bytes(stats.average_session_bytes)),
        (
          "largest session",
          stats.largest_session.as_ref().map_or("-".into(), |l| format!("{} ({})", l.session, bytes(l.bytes))),
        ),
      ];
      if stats.legacy_sessions > 0 {
        let what = "left by another store: restored as they are, stored in this format by their next save";
        facts.push(("legacy sessions", format!("{} ({what})", stats.legacy_sessions)));
      }
      if let Some(disk) = &stats.disk {
        facts.push(("data path", disk.path.display().to_string()));
        facts.push(("disk", format!("{} free of {}", bytes(disk.free_bytes), bytes(disk.total_bytes))));
      }
      if let Some(fit) = stats.sessions_fit_estimate {
        facts.push(("sessions that fit", format!("{fit} (free x 0.8 / average session)")));
      }
      if let Some(lag) = stats.backup_lag {
        facts.push(("backup lag", format!("{lag} sessions changed since their last backup")));
      }
      if let Some(inc) = &stats.incremental {
        let versions = format!("{} versions of {} sessions", inc.versions, inc.sessions);
        let stored = format!("{} of files in {} stored", bytes(inc.logical_bytes), bytes(inc.stored_bytes));
        facts.push(("incremental", format!("{versions}: {stored} (dedup {:.2}x)", inc.dedup_ratio)));
        let upload = inc.average_uploaded_bytes.map_or("- (no second backup yet)".into(), bytes);
        facts.push(("uploaded per backup", upload));
      }
      if let Some(m) = &stats.memory {
        let max = if m.maxmemory == 0 { "no limit".into() } else { bytes(m.maxmemory) };
        facts.push(("redis memory", format!("{} used of {max}, policy {}", bytes(m.used_memory), m.policy)));
        facts.push(("redis evicted keys", m.evicted_keys.to_string()));
      }
      let left = &stats.crash_leftovers;
      facts.push((
        "crash leftovers",
        format!("{} files, {} (cleanup --execute removes them)", left.files, bytes(left.bytes)),
      ));
      let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
      facts.iter().try_for_each(|(k, v)| writeln!(out, "{k:<width$}  {v}"))
    }
  }
}

/// The `stats` families in the text exposition format, as the metrics endpoint gives them (`metrics`).
fn prometheus(out: &mut dyn Write, stats: &Stats) -> Result<()> {
  let text = crate::metrics::stats_text(stats).map_err(std::io::Error::other)?;
  out.write_all(text.as_bytes())
}

/// An RFC 3339 time (UTC, seconds) from ms since the Unix epoch.
pub fn time_text(ms: u64) -> String {
  let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
  t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn version_name(v: &crate::backup::Version) -> &str {
  v.key.rsplit('/').next().unwrap_or(&v.key)
}

pub fn versions(out: &mut dyn Write, versions: &[crate::backup::Version], format: Format) -> Result<()> {
  #[derive(Serialize)]
  struct Row<'a> {
    id: &'a str,
    saved_at_ms: u64,
    bytes: u64,
    incremental: bool,
  }
  if let Format::Json | Format::Prometheus = format {
    let rows: Vec<Row> = versions
      .iter()
      .map(|v| Row { id: version_name(v), saved_at_ms: v.saved_ms(), bytes: v.size, incremental: v.incremental })
      .collect();
    return json(out, &rows);
  }
  let rows: Vec<Vec<String>> = versions
    .iter()
    .map(|v| {
      let kind = if v.incremental { "incremental" } else { "archive" };
      vec![version_name(v).to_owned(), time_text(v.saved_ms()), kind.into(), bytes(v.size)]
    })
    .collect();
  table(out, &["version", "saved at", "kind", "bytes"], &rows)
}

pub fn verify(out: &mut dyn Write, verified: &Verified, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    return json(out, verified);
  }
  if !verified.bad.is_empty() {
    let rows: Vec<Vec<String>> = verified
      .bad
      .iter()
      .map(|b| {
        vec![
          b.session.clone(),
          b.tier.into(),
          b.version.clone().unwrap_or("-".into()),
          format!("{}: {}", b.code, b.message),
        ]
      })
      .collect();
    table(out, &["session", "tier", "version", "problem"], &rows)?;
    writeln!(out)?;
  }
  if let Some(repaired) = verified.repaired.as_ref().filter(|r| !r.is_empty()) {
    let rows: Vec<Vec<String>> = repaired
      .iter()
      .map(|r| {
        let detail = match (&r.new_version, &r.message) {
          (Some(new), _) => format!("{} chunk(s) packed afresh; now {new}", r.chunks),
          (None, Some(message)) => format!("{}: {message}", r.code.unwrap_or_default()),
          (None, None) if r.chunks > 0 => format!("{} damaged chunk(s) not in the primary's copy", r.chunks),
          (None, None) => String::new(),
        };
        vec![r.session.clone(), r.version.clone().unwrap_or("-".into()), r.outcome.into(), detail]
      })
      .collect();
    table(out, &["session", "version", "repair", "detail"], &rows)?;
    writeln!(out)?;
  }
  writeln!(
    out,
    "checked {} stored copies: {} good, {} bad",
    verified.checked,
    verified.checked - verified.bad.len() as u64,
    verified.bad.len()
  )?;
  if verified.legacy > 0 {
    let n = verified.legacy;
    writeln!(out, "{n} of them left by another store (legacy values, checked as a restore reads them)")?;
  }
  Ok(())
}

#[derive(Serialize)]
struct TransferFailure<'a> {
  session: &'a str,
  code: &'a str,
  message: String,
}

#[derive(Serialize)]
struct TransferSummary<'a> {
  sessions: u32,
  copied: u32,
  skipped: u32,
  bytes: u64,
  failures: Vec<TransferFailure<'a>>,
}

fn summary(t: &Transfer) -> TransferSummary<'_> {
  let failures = t.failures.iter();
  let failures = failures.map(|(k, e)| TransferFailure { session: k.as_str(), code: e.code(), message: e.to_string() });
  TransferSummary {
    sessions: t.sessions,
    copied: t.copied,
    skipped: t.skipped,
    bytes: t.bytes,
    failures: failures.collect(),
  }
}

pub fn rekeyed(out: &mut dyn Write, done: &Rekeyed, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    #[derive(Serialize)]
    struct Both<'a> {
      primary: TransferSummary<'a>,
      backups: TransferSummary<'a>,
    }
    return json(out, &Both { primary: summary(&done.primary), backups: summary(&done.backups) });
  }
  for (tier, t) in [("primary", &done.primary), ("backups", &done.backups)] {
    for (key, e) in &t.failures {
      writeln!(out, "failed: {tier}: {key}: {}: {e}", e.code())?;
    }
  }
  let (p, b) = (&done.primary, &done.backups);
  writeln!(
    out,
    "primary: re-encrypted {} of {} sessions; {} already under the current key",
    p.copied, p.sessions, p.skipped
  )?;
  writeln!(
    out,
    "backups: re-encrypted the versions of {} of {} sessions; {} already under the current key",
    b.copied, b.sessions, b.skipped
  )
}

pub fn transfer(out: &mut dyn Write, verb: &str, t: &Transfer, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    return json(out, &summary(t));
  }
  for (key, e) in &t.failures {
    writeln!(out, "failed: {key}: {}: {e}", e.code())?;
  }
  writeln!(
    out,
    "{verb} {} of {} sessions ({}); {} skipped (target as new or newer); {} failed",
    t.copied,
    t.sessions,
    bytes(t.bytes),
    t.skipped,
    t.failures.len()
  )
}

pub fn deleted(out: &mut dyn Write, d: &super::Deleted, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    return json(out, d);
  }
  match (d.stored, d.execute) {
    (false, _) => writeln!(out, "{} is not stored: nothing to delete", d.session),
    (true, true) => writeln!(out, "deleted {} from every tier", d.session),
    (true, false) => {
      writeln!(out, "dry run: would delete {} from every tier; run again with --execute to delete it", d.session)
    }
  }
}
