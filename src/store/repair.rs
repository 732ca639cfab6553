//! `verify --repair`: the backup versions `verify` found reading damaged chunks are written again, whole, from
//! the primary's copy where it still holds those chunks (`Backups::repair`).

use serde::Serialize;

use super::{legacy, Store, Verified};
use crate::error::Result;
use crate::incremental::Repaired;
use crate::session::SessionKey;

/// What a repair did to one version (or, with no `version`, why a session's versions could not be repaired).
#[derive(Debug, Clone, Serialize)]
pub struct RepairedVersion {
  pub session: String,
  pub version: Option<String>,
  /// `rewritten` (it reads whole now, under `new_version`), `missing` (the primary no longer holds `chunks` of
  /// the damaged chunks), `no-primary-copy` or `failed` (`code`, `message`).
  pub outcome: &'static str,
  pub new_version: Option<String>,
  pub chunks: usize,
  pub code: Option<&'static str>,
  pub message: Option<String>,
}

impl RepairedVersion {
  fn of(session: &SessionKey, version: Option<String>, outcome: &'static str) -> Self {
    let session = session.to_string();
    Self { session, version, outcome, new_version: None, chunks: 0, code: None, message: None }
  }
}

impl Store {
  /// `verify`, then a repair of the damaged backup versions it found, then `verify` again (whose result, with
  /// what the repair did, is returned).
  pub async fn verify_and_repair(&self, progress: &crate::transfer::Progress) -> Result<Verified> {
    let verified = self.verify(Some(progress)).await?;
    if !verified.bad.iter().any(|b| b.version.is_some()) {
      return Ok(Verified { repaired: Some(Vec::new()), ..verified });
    }
    let repaired = self.repair_backups(&verified).await?;
    Ok(Verified { repaired: Some(repaired), ..self.verify(Some(progress)).await? })
  }

  /// Repairs the backup versions of every session `verified` found a bad backup version of, from the primary's
  /// copy. Damaged chunks are known by their marks in the bucket, which the reads of `verify` left.
  pub async fn repair_backups(&self, verified: &Verified) -> Result<Vec<RepairedVersion>> {
    let (primary, backups) = self.both()?;
    let mut sessions: Vec<SessionKey> =
      verified.bad.iter().filter(|b| b.version.is_some()).filter_map(|b| SessionKey::parse(&b.session).ok()).collect();
    sessions.dedup();
    let mut done = Vec::new();
    for session in sessions {
      let fail = |err: crate::error::StoreError| RepairedVersion {
        code: Some(err.code()),
        message: Some(err.to_string()),
        ..RepairedVersion::of(&session, None, "failed")
      };
      let mut bytes = match primary.get(&session).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
          done.push(RepairedVersion::of(&session, None, "no-primary-copy"));
          continue;
        }
        Err(err) => {
          done.push(fail(err));
          continue;
        }
      };
      if legacy::is_foreign(&bytes) {
        bytes = match self.convert_foreign(&session, bytes).await {
          Ok(converted) => converted.bytes,
          Err(err) => {
            done.push(fail(err));
            continue;
          }
        };
      }
      let repaired = match backups.repair(&session, bytes).await {
        Ok(repaired) => repaired,
        Err(err) => {
          done.push(fail(err));
          continue;
        }
      };
      for (version, outcome) in repaired {
        done.push(match outcome {
          Ok(Repaired::Rewritten { key, chunks }) => RepairedVersion {
            new_version: Some(key),
            chunks,
            ..RepairedVersion::of(&session, Some(version), "rewritten")
          },
          Ok(Repaired::Missing { chunks }) => {
            RepairedVersion { chunks, ..RepairedVersion::of(&session, Some(version), "missing") }
          }
          Ok(Repaired::Whole) => continue,
          Err(err) => RepairedVersion { version: Some(version), ..fail(err) },
        });
      }
    }
    Ok(done)
  }
}
