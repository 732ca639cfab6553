//! The bucket's part of the fleet's sessions. The fleet runs the store's sessions: those the primary lists, and
//! those whose newest backup is live although the primary lost them (evicted, a Redis restarted without
//! persistence, a key's ttl). Listing a bucket costs a request per 1,000 objects, so a worker lists it once per
//! `backup_list_every`, not every round, and keeps the names. Between listings, a session that leaves the
//! primary is looked up alone (one small listing of its folder), so a logout leaves every worker's view within a
//! round or two rather than a listing period; many leaving at once (a Redis restart) take one listing instead.
//!
//! A session only the bucket holds is written back to the primary by the worker that starts it, under its lease
//! and before `onStart`; one the primary lost while it runs, by its owner, which keeps running it. Both go
//! through the store (`Store::keep_in_primary`): conditional, never over a copy saved meanwhile, never from a
//! deleted session's backups. Only a session that neither holds is stopped as `deleted`.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, MutexGuard};

use tokio::time::Instant;

use super::worker::Ctx;
use super::{FleetEvent, StopReason};
use crate::session::SessionKey;
use crate::store::members::Kept;

/// More sessions than this leaving the primary in one round are listed again, not looked up one by one.
const LOOKUPS_AT_MOST: usize = 16;

#[derive(Default)]
pub(super) struct Bucket {
  /// Sessions with a live backup, as of the last listing and the lookups since.
  keys: BTreeSet<String>,
  /// When the last listing began (failed or not: a bucket that cannot be asked is asked again a period later,
  /// its last names kept); `None` before the first.
  listed: Option<Instant>,
  listing: bool,
  /// Found deleted since the listing in flight began, which may predate the delete.
  gone: HashSet<String>,
  /// The primary's sessions at the last round: one that leaves it is looked up.
  primary: HashSet<String>,
  looking_up: HashSet<String>,
  /// Running sessions this worker is writing back to the primary (at most `max_concurrent_starts`).
  restoring: HashSet<String>,
  /// Sessions whose restore failed, until one succeeds: `restoreFailed` is reported once per episode.
  failing: HashSet<String>,
}

impl Bucket {
  fn forget(&mut self, session: &str) {
    self.keys.remove(session);
    self.gone.insert(session.to_owned());
  }
}

impl Ctx {
  fn bucket(&self) -> MutexGuard<'_, Bucket> {
    self.bucket.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// The round's sessions, sorted: the primary's and the bucket's as last listed. Starts a listing when the last
  /// began `backup_list_every` ago, and looks up each session that left the primary since the last round.
  pub(super) fn with_backups(self: &Arc<Self>, primary: &[String]) -> Vec<String> {
    if !self.store.has_backups() {
      return primary.to_vec();
    }
    let now = Instant::now();
    let current: HashSet<String> = primary.iter().cloned().collect();
    let (list, lookups, sessions) = {
      let mut bucket = self.bucket();
      let left: Vec<String> = bucket
        .primary
        .difference(&current)
        .filter(|s| bucket.keys.contains(*s) && !bucket.looking_up.contains(*s))
        .cloned()
        .collect();
      let stale = bucket.listed.is_none_or(|at| now >= at + self.cfg().backup_list_every);
      let list = !bucket.listing && (stale || left.len() > LOOKUPS_AT_MOST);
      if list {
        bucket.listing = true;
        bucket.gone.clear();
      }
      let lookups = if list { Vec::new() } else { left };
      bucket.looking_up.extend(lookups.iter().cloned());
      bucket.primary = current;
      let mut sessions = bucket.keys.clone();
      sessions.extend(primary.iter().cloned());
      (list, lookups, sessions.into_iter().collect())
    };
    if list {
      tokio::spawn(self.clone().list_bucket(now));
    }
    for session in lookups {
      tokio::spawn(self.clone().look_up(session));
    }
    sessions
  }

  async fn list_bucket(self: Arc<Self>, began: Instant) {
    let limit = self.cfg().backup_list_every.max(self.cfg().timing.ttl);
    let listed = tokio::time::timeout(limit, self.store.backed_up_keys()).await;
    let mut bucket = self.bucket();
    bucket.listing = false;
    bucket.listed = Some(began);
    if let Ok(Ok(Some(keys))) = listed {
      let gone = std::mem::take(&mut bucket.gone);
      bucket.keys = keys.into_iter().map(|k| k.as_str().to_owned()).filter(|k| !gone.contains(k)).collect();
    }
  }

  /// A session that left the primary: still backed up (evicted: it stays), or not (deleted: it goes).
  async fn look_up(self: Arc<Self>, session: String) {
    let found = match SessionKey::parse(&session) {
      Ok(key) => {
        tokio::time::timeout(self.cfg().timing.ttl, self.store.backed_up(&key)).await.ok().and_then(|r| r.ok())
      }
      Err(_) => Some(false),
    };
    let mut bucket = self.bucket();
    bucket.looking_up.remove(&session);
    if found == Some(false) {
      bucket.forget(&session);
    }
  }

  /// Running sessions the primary no longer lists: each is written back from its backup and runs on, or, when
  /// nothing holds it any more (a logout), is stopped as `deleted`. At most `max_concurrent_starts` at once.
  pub(super) fn keep_running(self: &Arc<Self>, missing: Vec<String>) {
    let max = self.cfg().max_concurrent_starts;
    let mut bucket = self.bucket();
    for session in missing {
      if bucket.restoring.len() >= max {
        break;
      }
      if bucket.restoring.insert(session.clone()) {
        tokio::spawn(self.clone().restore_running(session));
      }
    }
  }

  async fn restore_running(self: Arc<Self>, session: String) {
    let kept = self.restore(&session).await;
    self.bucket().restoring.remove(&session);
    if kept == Some(Kept::Deleted) {
      self.spawn_stop(session, StopReason::Deleted, false);
    }
  }

  /// `Store::keep_in_primary` for a session this worker holds the lease of (so a write-back is fenced by it),
  /// reported as events; `None` when the store could not tell (reported once per episode, tried again later: an
  /// unreachable bucket never makes a session look deleted).
  pub(super) async fn restore(&self, session: &str) -> Option<Kept> {
    let key = SessionKey::parse(session).ok()?;
    let ttl = self.cfg().timing.ttl;
    let done = match tokio::time::timeout(ttl, self.store.keep_in_primary(&key)).await {
      Ok(done) => done.map_err(|e| e.to_string()),
      Err(_) => Err(format!("the store did not answer within ttlMs ({} ms)", ttl.as_millis())),
    };
    let kept = match done {
      Ok(kept) => kept,
      Err(message) => {
        if self.bucket().failing.insert(session.to_owned()) {
          self.hooks.event(FleetEvent::RestoreFailed { session: session.to_owned(), message });
        }
        return None;
      }
    };
    let mut bucket = self.bucket();
    bucket.failing.remove(session);
    match kept {
      Kept::Restored => {
        drop(bucket);
        self.hooks.event(FleetEvent::Restored { session: session.to_owned() });
      }
      Kept::Deleted => bucket.forget(session),
      Kept::Present => {}
    }
    Some(kept)
  }
}
