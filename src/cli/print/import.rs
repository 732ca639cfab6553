//! `import` and `export` reports.

use std::io::{Result, Write};

use super::{bytes, json, reduction, table, Format};
use crate::import::{ExportReport, ImportReport};

fn status_text<S: serde::Serialize>(status: S) -> String {
  serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub fn import(out: &mut dyn Write, report: &ImportReport, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    return json(out, report);
  }
  let rows: Vec<Vec<String>> = report
    .sessions
    .iter()
    .map(|s| {
      let status = match &s.error {
        Some(e) => format!("{}: {}: {}", status_text(s.status), e.code, e.message),
        None => status_text(s.status),
      };
      let shape = s.shape.clone().unwrap_or_else(|| "-".into());
      let source = s.source_bytes.map_or("-".into(), bytes);
      let stored = s.stored_bytes.map_or("-".into(), bytes);
      vec![s.session.clone(), s.key.clone(), shape, source, stored, status]
    })
    .collect();
  table(out, &["session", "source key", "shape", "source", "stored", "status"], &rows)?;
  writeln!(out)?;
  let verb = if report.execute { "imported" } else { "dry run: would import" };
  writeln!(
    out,
    "{verb} {} of {} sessions from {}: {} -> {} stored ({}); {} skipped (unchanged or newer in the store); {} \
     failed; {:.1} s",
    report.imported,
    report.sessions.len(),
    report.source,
    bytes(report.bytes_before),
    bytes(report.bytes_after),
    reduction(report.bytes_before, report.bytes_after),
    report.skipped,
    report.failed,
    report.ms as f64 / 1000.0
  )?;
  if !report.execute {
    writeln!(out, "nothing was written; run again with --execute to import")?;
  }
  Ok(())
}

pub fn export(out: &mut dyn Write, report: &ExportReport, format: Format) -> Result<()> {
  if let Format::Json | Format::Prometheus = format {
    return json(out, report);
  }
  let rows: Vec<Vec<String>> = report
    .sessions
    .iter()
    .map(|s| {
      let status = match &s.error {
        Some(e) => format!("failed: {}: {}", e.code, e.message),
        None => "exported".into(),
      };
      vec![s.session.clone(), s.key.clone(), s.bytes.map_or("-".into(), bytes), status]
    })
    .collect();
  table(out, &["session", "written to", "zip", "status"], &rows)?;
  writeln!(out)?;
  writeln!(
    out,
    "exported {} of {} sessions to {} ({}); {} failed; {:.1} s",
    report.exported,
    report.sessions.len(),
    report.target,
    bytes(report.bytes),
    report.failed,
    report.ms as f64 / 1000.0
  )
}
