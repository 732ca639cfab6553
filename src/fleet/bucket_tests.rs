//! Issue #25 item 9: the fleet's sessions are the store's, the primary's and the bucket's. A session the primary
//! lost (evicted, a Redis restarted without persistence) is written back from its backup and runs on; only a
//! delete (a logout) stops it as `deleted`, and then it stays gone.

use std::time::Duration;

use super::tests::{spread, Bench, Member};
use super::{FleetEvent, StopReason};
use crate::session::SessionKey;
use crate::tier::Tier;

fn key(session: &str) -> SessionKey {
  SessionKey::parse(session).unwrap()
}

fn restored(member: &Member) -> Vec<String> {
  let events = member.hooks.events.lock().unwrap();
  let mut out: Vec<String> = events
    .iter()
    .filter_map(|e| match e {
      FleetEvent::Restored { session } => Some(session.clone()),
      _ => None,
    })
    .collect();
  out.sort();
  out
}

/// The sessions `members` reported restored, sorted, once there are `count` (the event follows the write-back,
/// so it may land a moment after the copy does; polls every 50 ms, 10 s at most).
async fn restored_by(members: &[&Member], count: usize) -> Vec<String> {
  let all = || {
    let mut out: Vec<String> = members.iter().flat_map(|m| restored(m)).collect();
    out.sort();
    out
  };
  for _ in 0..200 {
    if all().len() >= count {
      break;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
  }
  all()
}

/// Polls (every 50 ms, 10 s at most) until every one of `sessions` is in the primary.
async fn in_primary(primary: &impl Tier, sessions: &[&str]) {
  for _ in 0..200 {
    let mut all = true;
    for session in sessions {
      all &= primary.exists(&key(session)).await.unwrap();
    }
    if all {
      return;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
  }
  panic!("never written back to the primary: {sessions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_primary_lost_is_restored_and_runs_on_and_only_a_delete_stops_it() {
  let names = ["RemoteAuth-s0", "RemoteAuth-s1", "RemoteAuth-s2", "RemoteAuth-s3", "RemoteAuth-s4"];
  let only = "RemoteAuth-only";
  let mut all = names.to_vec();
  all.push(only);
  let bench = Bench::with_bucket(&all, Duration::from_millis(300)).await;
  let primary = bench.site.as_ref().unwrap().primary();
  // Lost by the primary before any worker ran it: only the bucket holds it.
  primary.delete(&key(only)).await.unwrap();
  // The CLI's view counts it as the workers do: a session of the fleet, unassigned until one runs it.
  let view = super::observe(&bench.store(), "test").await.unwrap();
  assert_eq!((view.sessions, view.unassigned.len()), (6, 6), "{view:?}");
  assert!(view.unassigned.contains(&only.to_owned()));

  let a = bench.join("a", 10);
  let b = bench.join("b", 10);
  bench.until("all 6 run, the bucket's one too", |b| spread(b, &[3, 3])).await;
  in_primary(&primary, &[only]).await;
  let view = super::observe(&bench.store(), "test").await.unwrap();
  assert_eq!((view.sessions, view.unassigned.len()), (6, 0), "{view:?}");
  assert_eq!(restored_by(&[&a, &b], 1).await, vec![only.to_owned()], "restoring it is reported");

  // The primary loses two running sessions: their owners keep running them, and write them back.
  let placed = bench.running.lock().unwrap().clone();
  let lost = [names[0], names[1]];
  for session in lost {
    primary.delete(&key(session)).await.unwrap();
  }
  in_primary(&primary, &lost).await;
  assert_eq!(restored_by(&[&a, &b], 3).await, vec![only, names[0], names[1]]);
  // A few more rounds and listings: nothing moved, nothing was stopped or started again.
  tokio::time::sleep(Duration::from_millis(900)).await;
  assert_eq!(*bench.running.lock().unwrap(), placed);
  for member in [&a, &b] {
    assert!(member.hooks.stops.lock().unwrap().is_empty(), "{:?}", member.hooks.stops.lock().unwrap());
  }
  assert_eq!(a.hooks.starts.lock().unwrap().len() + b.hooks.starts.lock().unwrap().len(), 6);

  // A logout (deleted through another process's store): stopped as deleted, and it never comes back.
  let gone = names[2];
  let owner = if placed[gone] == "a" { &a } else { &b };
  bench.store().delete(gone).await.unwrap();
  bench.until("the deleted one stopped", |b| !b.running.lock().unwrap().contains_key(gone)).await;
  tokio::time::sleep(Duration::from_millis(1500)).await; // five listings of the bucket
  assert!(!bench.running.lock().unwrap().contains_key(gone), "never started again");
  assert!(!primary.exists(&key(gone)).await.unwrap(), "never written back");
  assert_eq!(*owner.hooks.stops.lock().unwrap(), vec![(gone.to_owned(), StopReason::Deleted)]);
  let starts = [a.hooks.starts.lock().unwrap().clone(), b.hooks.starts.lock().unwrap().clone()].concat();
  assert_eq!(starts.iter().filter(|s| *s == gone).count(), 1);
  assert_eq!(bench.running.lock().unwrap().len(), 5);
  bench.no_double_owner();
  a.fleet.close().await;
  b.fleet.close().await;
}

/// A Redis restarted without persistence: every session gone from the primary at once (more than a worker looks
/// up alone). Every one runs on where it ran, written back by its owner a few at a time (`maxConcurrentStarts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_lost_at_once_runs_on_and_is_written_back() {
  let names: Vec<String> = (0..20).map(|i| format!("RemoteAuth-s{i:02}")).collect();
  let all: Vec<&str> = names.iter().map(String::as_str).collect();
  // A listing period longer than the test: the workers' views come from their first listing (and the one the
  // mass loss takes); the owners write back what they run whatever a listing says.
  let bench = Bench::with_bucket(&all, Duration::from_secs(3600)).await;
  let primary = bench.site.as_ref().unwrap().primary();
  let a = bench.join("a", 20);
  let b = bench.join("b", 20);
  bench.until("20 over a and b", |b| spread(b, &[10, 10])).await;
  let placed = bench.running.lock().unwrap().clone();
  for session in &all {
    primary.delete(&key(session)).await.unwrap();
  }
  in_primary(&primary, &all).await;
  tokio::time::sleep(Duration::from_millis(600)).await;
  assert_eq!(*bench.running.lock().unwrap(), placed, "nothing stopped or moved");
  assert_eq!(restored_by(&[&a, &b], names.len()).await, names, "each written back once, by its owner");
  for member in [&a, &b] {
    assert!(member.hooks.stops.lock().unwrap().is_empty(), "{:?}", member.hooks.stops.lock().unwrap());
  }
  bench.no_double_owner();
  a.fleet.close().await;
  b.fleet.close().await;
}

/// The bucket out of reach while the primary lost a running session: an outage never looks like a logout. The
/// session runs on, `restoreFailed` is reported once, and once the bucket answers it is written back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_out_of_reach_never_makes_a_lost_session_look_deleted() {
  let names = ["RemoteAuth-s0", "RemoteAuth-s1"];
  let bench = Bench::with_bucket(&names, Duration::from_millis(300)).await;
  let site = bench.site.as_ref().unwrap();
  let primary = site.primary();
  let a = bench.join("a", 10);
  bench.until("both run on a", |b| spread(b, &[2])).await;
  *site.bucket.inner.fail_reads.lock().unwrap() = true;
  primary.delete(&key(names[0])).await.unwrap();
  tokio::time::sleep(Duration::from_millis(1200)).await; // eight rounds, four listings
  assert_eq!(a.fleet.status().running, names, "still running");
  assert!(a.hooks.stops.lock().unwrap().is_empty());
  let events = a.hooks.events.lock().unwrap().clone();
  assert!(
    matches!(&events[..], [FleetEvent::RestoreFailed { session, message }] if session == names[0] && message.contains("down")),
    "reported once: {events:?}"
  );
  *site.bucket.inner.fail_reads.lock().unwrap() = false;
  in_primary(&primary, &names[..1]).await;
  assert_eq!(restored_by(&[&a], 1).await, vec![names[0].to_owned()]);
  assert!(a.hooks.stops.lock().unwrap().is_empty());
  a.fleet.close().await;
}
