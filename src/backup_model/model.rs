//! The reference model: what the store has acknowledged, per session, and so what it must give back. A session's
//! own calls (save, logout) come one at a time, as RemoteAuth's client makes them (from any store: a service
//! restarted in another process); everything else (backups, restores, rotations, cleanups) runs beside them.
//!
//! Each save's file is unique (`<session>#<id>#` and filler), so any copy found in a tier names the save it holds.

use std::collections::BTreeMap;

/// One save: what was in its zip, and the stamp the store gave it (once acknowledged).
#[derive(Debug, Clone)]
pub struct SaveRec {
  pub body: Vec<u8>,
  pub stamp: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Session {
  /// The newest acknowledged save.
  pub newest: Option<u64>,
  /// Its backup was acknowledged too (an every-save store's save without a `backup_error`).
  pub backed_up: bool,
  /// A logout was acknowledged after `newest` (and no save since).
  pub deleted: bool,
  /// The last own call failed (a logout whose bucket part failed): which copy stands is not known until the next
  /// acknowledged call, and only the checks that hold either way are made.
  pub unsure: bool,
  /// Saves at or below this id were logged out (an acknowledged delete): none of them is ever read again.
  pub dead_to: Option<u64>,
  /// The primary's copy was dropped (a flushed Redis) since `newest` was acknowledged.
  pub lost: bool,
  /// Own calls begun (saves, logouts), for the checks of calls that raced them.
  pub saves_begun: u64,
  pub logouts_begun: u64,
  pub own_call_running: bool,
}

#[derive(Debug, Default)]
pub struct Model {
  pub saves: BTreeMap<u64, SaveRec>,
  pub sessions: BTreeMap<String, Session>,
  next_id: u64,
}

/// `<session>#<id>#…` → the id.
pub fn id_of(body: &[u8]) -> Option<(String, u64)> {
  // The filler after the second `#` is any bytes.
  let mut parts = body.splitn(3, |&b| b == b'#');
  let session = String::from_utf8(parts.next()?.to_vec()).ok()?;
  let id = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
  parts.next()?;
  Some((session, id))
}

impl Model {
  pub fn new(sessions: &[String]) -> Self {
    let sessions = sessions.iter().map(|s| (s.clone(), Session::default())).collect();
    Self { sessions, next_id: 1, ..Self::default() }
  }

  pub fn session(&mut self, name: &str) -> &mut Session {
    self.sessions.get_mut(name).expect("a session of the model")
  }

  /// A new save's id and body (`filler` bytes after the name).
  pub fn new_save(&mut self, session: &str, filler: usize, fill: u8) -> (u64, Vec<u8>) {
    let id = self.next_id;
    self.next_id += 1;
    let mut body = format!("{session}#{id}#").into_bytes();
    body.extend((0..filler).map(|i| fill.wrapping_add((i % 7) as u8)));
    self.saves.insert(id, SaveRec { body: body.clone(), stamp: None });
    let s = self.session(session);
    s.saves_begun += 1;
    s.own_call_running = true;
    (id, body)
  }

  pub fn saved(&mut self, session: &str, id: u64, stamp: u64, backed_up: bool) {
    self.saves.get_mut(&id).expect("a save").stamp = Some(stamp);
    let s = self.session(session);
    *s = Session { newest: Some(id), backed_up, dead_to: s.dead_to, ..s.clone() };
    s.deleted = false;
    s.unsure = false;
    s.lost = false;
    s.own_call_running = false;
  }

  /// A save that failed: the primary never fails, so nothing may have landed; the model keeps what it had, and
  /// the failure is reported by the caller.
  pub fn save_failed(&mut self, session: &str) {
    self.session(session).own_call_running = false;
  }

  pub fn logout_begun(&mut self, session: &str) {
    let s = self.session(session);
    s.logouts_begun += 1;
    s.own_call_running = true;
  }

  pub fn logged_out(&mut self, session: &str, ok: bool) {
    let s = self.session(session);
    s.own_call_running = false;
    match ok {
      true => {
        s.dead_to = s.newest.max(s.dead_to);
        s.deleted = true;
        s.unsure = false;
        s.backed_up = false;
      }
      false => s.unsure = true,
    }
  }
}
