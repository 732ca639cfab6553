//! The invariants, checked between rounds (no operation in flight) on what the tiers hold, read without faults:
//!
//! - every version the bucket lists restores whole: exactly the bytes of one save of its session, stamped as
//!   that save was, and the versions are in the order of the saves they hold;
//! - a logged-out save is never read again: no copy in any tier holds a save at or before a logout;
//! - a live session (its newest acknowledged save not logged out) has that save in the primary (or, after the
//!   primary lost it, in the bucket), no other; the bucket's newest version is never a newer save, and is that
//!   save once its backup was acknowledged; `sessionExists` says true;
//! - a logged-out session is in no tier: no primary copy, no version listed, `sessionExists` false (so extract
//!   refuses and no version restores).
//!
//! A session whose last own call failed (`unsure`) gets the checks that hold either way.

use std::sync::Arc;

use super::model::id_of;
use super::run::World;
use super::world::{BucketView, Faults, PrimaryView};
use crate::archive::{self, Data, PackOptions};
use crate::backup::{Backups, Retention};
use crate::store::{BackupMode, Store, StoreConfig};

impl World {
  /// The save a sealed copy of `session` holds, if it reads whole as one.
  pub fn save_in(&self, session: &str, sealed: &[u8]) -> Result<u64, String> {
    let limits = PackOptions::default().limits;
    let (header, entries) =
      archive::read_entries(sealed, Some(&self.keys), &limits, session).map_err(|e| format!("does not read: {e}"))?;
    let files: Vec<&Vec<u8>> = entries
      .iter()
      .filter_map(|e| match &e.data {
        Data::File(bytes) if e.path.ends_with("000003.log") => Some(bytes),
        _ => None,
      })
      .collect();
    let [body] = files[..] else { return Err(format!("holds {} session files", files.len())) };
    let Some((of, id)) = id_of(body) else { return Err("holds an unknown body".into()) };
    let model = self.model();
    let save = model.saves.get(&id).ok_or_else(|| format!("holds save {id}, never made"))?;
    if of != session || save.body != *body {
      return Err(format!("holds save {id} of {of}, not byte for byte"));
    }
    if save.stamp.is_some_and(|stamp| stamp != header.created_ms) {
      return Err(format!("holds save {id} stamped {} (saved as {:?})", header.created_ms, save.stamp));
    }
    Ok(id)
  }

  /// A store and backups over the same tiers without faults, for reading what is stored.
  fn reader(&self) -> (Store, Backups) {
    let faults = Arc::new(Faults::new(self.seed, "checker", 0, 0, 0));
    let pack = PackOptions { keys: Some(self.keys.clone()), ..PackOptions::default() };
    let view = BucketView { inner: self.bucket.clone(), faults: faults.clone() };
    let retention = Retention { keep: 1000, keep_within_ms: None };
    let backups = Backups::open(Arc::new(view), retention, false, pack.clone());
    let primary = Arc::new(PrimaryView { inner: self.primary.clone(), faults });
    let config = StoreConfig { data_path: self.root.path().join("auth"), pack, local_dir: None };
    let mode = BackupMode::EverySave(Arc::new(|_, _| {}));
    (Store::new(Some(primary), Some((backups.clone(), mode)), config).expect("a reader"), backups)
  }

  pub async fn check(&self, when: &str) {
    let (store, backups) = self.reader();
    for session in &self.sessions {
      let key = crate::session::SessionKey::parse(session).expect("a session key");
      let s = self.model().sessions[session].clone();
      let mut problems = Vec::new();
      // What the bucket holds, oldest first: every version whole, in save order.
      let versions = match backups.versions(&key).await {
        Ok(v) => v,
        Err(err) => return drop(self.violation(format!("{when}: the versions of {session} do not list: {err}"))),
      };
      let mut held = Vec::new();
      for version in &versions {
        match backups.read(version).await {
          Ok(Some(sealed)) => match self.save_in(session, &sealed) {
            Ok(id) => held.push(id),
            Err(err) => problems.push(format!("version {} {err}", version.key)),
          },
          Ok(None) => problems.push(format!("version {} is listed but gone", version.key)),
          Err(err) => problems.push(format!("version {} does not restore: {err}", version.key)),
        }
      }
      if held.windows(2).any(|w| w[0] > w[1]) {
        problems.push(format!("versions out of save order: saves {held:?}"));
      }
      let primary = match self.primary.get(session) {
        Some(copy) => match self.save_in(session, &copy) {
          Ok(id) => Some(id),
          Err(err) => {
            problems.push(format!("the primary's copy {err}"));
            None
          }
        },
        None => None,
      };
      // A logged-out save is never read again.
      if let Some(dead) = s.dead_to {
        for id in held.iter().chain(&primary).filter(|&&id| id <= dead) {
          problems.push(format!("save {id} is back after the logout of saves up to {dead}"));
        }
      }
      let exists = store.session_exists(session).await;
      if !s.unsure {
        match (s.newest, s.deleted) {
          (Some(newest), false) => {
            if primary.is_some_and(|id| id != newest) {
              problems.push(format!("the primary holds save {primary:?}, not the newest acknowledged {newest}"));
            }
            if primary.is_none() && !s.lost {
              problems.push(format!("the primary lost the newest acknowledged save {newest}"));
            }
            if primary.is_none() && !held.contains(&newest) {
              problems.push(format!("the newest acknowledged save {newest} is in no tier (bucket: {held:?})"));
            }
            match held.last() {
              Some(&last) if last > newest => {
                problems.push(format!("the newest version holds save {last}, not yet acknowledged"))
              }
              Some(&last) if s.backed_up && last != newest => {
                problems.push(format!("the newest version holds save {last}, not the newest backed-up save {newest}"))
              }
              None if s.backed_up => problems.push(format!("no version holds the backed-up save {newest}")),
              _ => {}
            }
            if !matches!(exists, Ok(true)) {
              problems.push(format!("sessionExists says {exists:?}"));
            }
          }
          (_, true) => {
            if let Some(id) = primary {
              problems.push(format!("logged out, yet the primary holds save {id}"));
            }
            if !versions.is_empty() {
              problems.push(format!("logged out, yet the bucket lists saves {held:?}"));
            }
            if !matches!(exists, Ok(false)) {
              problems.push(format!("logged out, yet sessionExists says {exists:?}"));
            }
          }
          (None, false) => {}
        }
      }
      let state = format!("primary {primary:?}, bucket {held:?}, model {s:?}");
      if problems.is_empty() {
        self.log(format!("check {when}: {session}: {state}"));
      }
      if !problems.is_empty() {
        // The session's objects as stored (versions and marks), for the story.
        let prefix = format!("{session}/");
        let objects: Vec<String> =
          self.bucket.objects.lock().unwrap().keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
        self.log(format!("{when}: {session}: the bucket holds {objects:?}"));
      }
      for problem in problems {
        self.violation(format!("{when}: {session}: {problem} ({state})"));
      }
    }
  }
}
