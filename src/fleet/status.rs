//! What a worker publishes with its heartbeat, what `status()` reports, and the fleet as read from the tier
//! alone (the CLI, which is no worker).

use serde::{Deserialize, Serialize};

use super::{OWNERS, PINS};
use crate::error::Result;
use crate::store::Store;

/// Published with each heartbeat (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkerInfo {
  pub capacity: u32,
  pub draining: bool,
  pub running: u64,
  pub handoffs: u64,
  pub failovers: u64,
  /// Sessions this worker sees with no live owner, and the longest time one has been so.
  pub unassigned: u64,
  pub oldest_unassigned_ms: u64,
}

impl WorkerInfo {
  /// A member whose info does not parse takes no sessions (capacity 0): an unknown publisher, not a crash.
  pub fn parse(bytes: &[u8]) -> Self {
    serde_json::from_slice(bytes).unwrap_or_default()
  }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
  pub id: String,
  #[serde(flatten)]
  pub info: WorkerInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unassigned {
  pub session: String,
  pub for_ms: u64,
}

/// One worker's view (`fleet.status()`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetStatus {
  pub worker_id: String,
  pub group: String,
  pub capacity: u32,
  pub draining: bool,
  /// The last heartbeat reached the tier.
  pub connected: bool,
  /// Sessions this worker runs (onStart resolved), sorted.
  pub running: Vec<String>,
  pub starting: u64,
  pub stopping: u64,
  /// Handoffs this worker completed (drain, rebalance) and failovers it took over.
  pub handoffs: u64,
  pub failovers: u64,
  /// Live workers as of the last heartbeat, with what each published.
  pub workers: Vec<WorkerStatus>,
  /// Stored sessions, and those paused or pinned.
  pub sessions: u64,
  pub paused: u64,
  pub pinned: u64,
  /// Sessions with no live owner, and for how long this worker has seen them so.
  pub unassigned: Vec<Unassigned>,
  pub ttl_ms: u64,
  pub renew_every_ms: u64,
}

/// The fleet as the tier holds it: live workers, who owns which session, what is unassigned.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
  pub group: String,
  pub workers: Vec<WorkerStatus>,
  pub sessions: u64,
  /// Stored sessions whose owner entry names no live worker (paused ones excluded).
  pub unassigned: Vec<String>,
  pub paused: Vec<String>,
  pub pinned: Vec<(String, String)>,
}

/// The sessions the fleet runs, as its workers count them: the primary's and those only the bucket holds (a
/// session the primary lost is written back and runs on, so it is the fleet's too), sorted.
async fn fleet_sessions(store: &Store) -> Result<Vec<crate::session::SessionKey>> {
  let mut sessions = store.session_keys().await?;
  if let Some(backed_up) = store.backed_up_keys().await? {
    sessions.extend(backed_up);
  }
  sessions.sort_by(|a, b| a.as_str().cmp(b.as_str()));
  sessions.dedup_by(|a, b| a.as_str() == b.as_str());
  Ok(sessions)
}

pub async fn observe(store: &Store, group: &str) -> Result<FleetView> {
  let membership = store.membership()?;
  let members = membership.members(group).await?;
  let owners = membership.map_all(group, OWNERS).await?;
  let pins = membership.map_all(group, PINS).await?;
  let sessions = fleet_sessions(store).await?;
  let live = |id: &[u8]| members.iter().any(|m| m.id.as_bytes() == id);
  let (mut paused, mut pinned, mut unassigned) = (Vec::new(), Vec::new(), Vec::new());
  for key in &sessions {
    let session = key.as_str();
    match pins.get(session).and_then(|v| super::Pin::parse(v)) {
      Some(super::Pin::Paused) => {
        paused.push(session.to_owned());
        continue;
      }
      Some(super::Pin::Worker(id)) => pinned.push((session.to_owned(), id)),
      None => {}
    }
    if !owners.get(session).is_some_and(|v| live(super::parse_owner(v).0.as_bytes())) {
      unassigned.push(session.to_owned());
    }
  }
  // Running counts come from the owner entries (marked once onStart resolved), not the heartbeats: those lag a
  // beat behind a handoff, so a session could count on both of its workers.
  let mut running: std::collections::HashMap<String, u64> = Default::default();
  for key in &sessions {
    if let Some((id, true)) = owners.get(key.as_str()).map(|v| super::parse_owner(v)) {
      *running.entry(id).or_default() += 1;
    }
  }
  let workers = members
    .into_iter()
    .map(|m| {
      let info = WorkerInfo { running: running.get(&m.id).copied().unwrap_or(0), ..WorkerInfo::parse(&m.info) };
      WorkerStatus { info, id: m.id }
    })
    .collect();
  Ok(FleetView { group: group.to_owned(), workers, sessions: sessions.len() as u64, unassigned, paused, pinned })
}
