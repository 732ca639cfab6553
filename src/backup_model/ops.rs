//! The operations the model interleaves, how one is drawn, and how one runs against its store: a session's own
//! calls (save, logout) update the model when they are acknowledged; the others are judged by what they return
//! against the model as it was when they began (a call racing a session's own call may see either side of it).

use std::io::Write;
use std::path::Path;

use super::model::{id_of, Session};
use super::run::World;
use crate::fleet::sim::rng::Rng;
use crate::store::Pick;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
  /// RemoteAuth's save through this store (its backup follows at once, or on the store's timer).
  Save {
    store: usize,
    session: usize,
  },
  /// RemoteAuth's delete (a logout).
  Logout {
    store: usize,
    session: usize,
  },
  /// The CLI's `backup` from this store's process.
  BackupAll {
    store: usize,
  },
  /// The CLI's `restore` (`restoreAll`): the primary warmed from the bucket.
  RestoreAll {
    store: usize,
  },
  /// RemoteAuth's extract: the primary's copy, or the newest good backup (written back to the primary).
  Restore {
    store: usize,
    session: usize,
  },
  Exists {
    store: usize,
    session: usize,
  },
  /// The CLI's `rotate-key` onto this store's current key.
  RotateKey {
    store: usize,
  },
  /// The CLI's `cleanup --execute`, its bucket part: versions a logout's mark covers, and unreferenced packs.
  Cleanup {
    store: usize,
  },
  /// The primary drops the session's copy (a flushed Redis), only when the bucket holds the save it held: a loss
  /// of a save never backed up is no fault of the store.
  Lose {
    session: usize,
  },
}

impl Op {
  pub fn draw(rng: &mut Rng, stores: usize, sessions: usize) -> Self {
    let store = rng.below(stores as u64) as usize;
    let session = rng.below(sessions as u64) as usize;
    match rng.below(100) {
      0..30 => Self::Save { store, session },
      30..38 => Self::Logout { store, session },
      38..48 => Self::BackupAll { store },
      48..57 => Self::RestoreAll { store },
      57..67 => Self::Restore { store, session },
      67..73 => Self::Exists { store, session },
      73..80 => Self::RotateKey { store },
      80..90 => Self::Cleanup { store },
      _ => Self::Lose { session },
    }
  }
}

fn now_ms() -> u64 {
  std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Writes the zip RemoteAuth would: one file, `body`.
fn write_zip(path: &Path, body: &[u8]) {
  let mut writer = zip::ZipWriter::new(std::fs::File::create(path).expect("zip file"));
  writer.start_file("Default/IndexedDB/db/000003.log", zip::write::SimpleFileOptions::default()).expect("zip entry");
  writer.write_all(body).expect("zip body");
  writer.finish().expect("zip written");
}

/// The body of the session's file in an extracted zip.
fn body_in_zip(path: &Path) -> Result<Vec<u8>, String> {
  let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
  let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
  let mut entry = zip.by_name("Default/IndexedDB/db/000003.log").map_err(|e| e.to_string())?;
  let mut body = Vec::new();
  std::io::Read::read_to_end(&mut entry, &mut body).map_err(|e| e.to_string())?;
  Ok(body)
}

impl World {
  /// Runs one operation (the `n`th of the run) and records what it did.
  pub async fn run_op(&self, n: usize, op: Op) {
    let shown = match op {
      Op::Save { store, session } | Op::Logout { store, session } => {
        format!("{op:?}").replace(&format!("session: {session}"), &format!("session: {}", self.sessions[session]))
          + &format!(" [{}]", self.configs[store])
      }
      _ => format!("{op:?}"),
    };
    self.log(format!("#{n} begins {shown}"));
    let done = match op {
      Op::Save { store, session } => self.save(store, &self.sessions[session]).await,
      Op::Logout { store, session } => self.logout(store, &self.sessions[session]).await,
      Op::BackupAll { store } => outcome(self.stores[store].backup_all(2, None).await.map(transferred)),
      Op::RestoreAll { store } => outcome(self.stores[store].restore_all(2, None).await.map(transferred)),
      Op::Restore { store, session } => self.restore(n, store, &self.sessions[session]).await,
      Op::Exists { store, session } => self.exists(store, &self.sessions[session]).await,
      Op::RotateKey { store } => outcome(
        self.stores[store]
          .rekey(2, None)
          .await
          .map(|r| format!("primary {}, backups {}", transferred(r.primary), transferred(r.backups))),
      ),
      Op::Cleanup { store } => outcome(self.stores[store].collect_backups(true).await.map(|c| {
        let failed = c.iter().filter(|(_, r)| r.is_err()).count();
        format!("{} sessions, {failed} failed", c.len())
      })),
      Op::Lose { session } => self.lose(&self.sessions[session]),
    };
    self.log(format!("#{n} ends: {done}"));
  }

  async fn save(&self, store: usize, session: &str) -> String {
    let _own = self.own_calls[session].lock().await;
    // A save is stamped after the copy it replaces (`previous + 1` when the clock has not passed it): saves
    // milliseconds apart would run the stamps ahead of the clock, which real saves (minutes apart) never do, and
    // a save after a loss (stamped by the clock when the bucket cannot be asked) would then sort before them.
    let newest = self.model().saves.values().filter_map(|s| s.stamp).max().unwrap_or(0);
    while now_ms() <= newest {
      std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let (id, body) = {
      let mut rng = Rng::keyed(self.seed, &["filler", session], self.model().sessions[session].saves_begun);
      let filler = rng.between(20, 3000) as usize;
      self.model().new_save(session, filler, rng.below(256) as u8)
    };
    let zip = self.root.path().join(format!("zips/{id}.zip"));
    write_zip(&zip, &body);
    match self.stores[store].save(session, Some(&zip)).await {
      Ok(saved) => {
        let backed_up = self.configs[store].every_save && saved.backup_error.is_none();
        self.model().saved(session, id, saved.info.header.created_ms, backed_up);
        let backup = match (saved.backup_error, self.configs[store].every_save) {
          (Some(err), _) => format!("backup failed {}", err.code()),
          (None, true) => "backed up".to_owned(),
          (None, false) => "backup left to the timer".to_owned(),
        };
        format!("save {id} stamped {}, {backup}", saved.info.header.created_ms)
      }
      Err(err) => {
        self.model().save_failed(session);
        self.violation(format!("save {id} of {session} failed over a primary that never fails: {err}"));
        format!("save {id} failed: {err}")
      }
    }
  }

  async fn logout(&self, store: usize, session: &str) -> String {
    let _own = self.own_calls[session].lock().await;
    self.model().logout_begun(session);
    let done = self.stores[store].delete(session).await;
    self.model().logged_out(session, done.is_ok());
    outcome(done.map(|()| "logged out".to_owned()))
  }

  /// The stored session as RemoteAuth's extract gets it, judged against the model when the call began.
  async fn restore(&self, n: usize, store: usize, session: &str) -> String {
    let start = self.model().sessions[session].clone();
    let out = self.root.path().join(format!("out/{n}.zip"));
    let got = self.stores[store].export_version(session, &out, &Pick::default()).await;
    let end = self.model().sessions[session].clone();
    match got {
      Ok(_) => {
        let body = match body_in_zip(&out) {
          Ok(body) => body,
          Err(err) => return self.violation(format!("#{n}: the extracted zip of {session} does not read: {err}")),
        };
        let Some((of, id)) = id_of(&body) else { return self.violation(format!("#{n}: extracted an unknown body")) };
        let whole = self.model().saves.get(&id).is_some_and(|s| s.body == body);
        if of != session || !whole {
          return self.violation(format!("#{n}: extract of {session} gave save {id} of {of}, whole: {whole}"));
        }
        if let (Some(newest), false) = (start.newest, start.deleted || start.unsure) {
          if id < newest {
            return self.violation(format!("#{n}: extract of {session} gave save {id}, older than {newest}"));
          }
        }
        if start.dead_to.is_some_and(|dead| id <= dead) {
          return self.violation(format!("#{n}: extract of {session} gave save {id}, logged out before it began"));
        }
        format!("extracted save {id}")
      }
      Err(err) if err.code() == "ERR_SESSION_NOT_FOUND" => {
        if live_throughout(&start, &end) {
          return self.violation(format!("#{n}: extract of live {session} (save {:?}) said: {err}", start.newest));
        }
        format!("not found: {err}")
      }
      Err(err) if err.code() == "ERR_ARCHIVE_CORRUPT" => {
        self.violation(format!("#{n}: extract of {session} found only damaged copies (none was damaged): {err}"))
      }
      Err(err) => format!("failed: {} {err}", err.code()),
    }
  }

  async fn exists(&self, store: usize, session: &str) -> String {
    let start = self.model().sessions[session].clone();
    let got = self.stores[store].session_exists(session).await;
    let end = self.model().sessions[session].clone();
    match got {
      Ok(false) if live_throughout(&start, &end) => {
        self.violation(format!("sessionExists({session}) false with save {:?} acknowledged", start.newest))
      }
      Ok(true) if gone_throughout(&start, &end) => {
        self.violation(format!("sessionExists({session}) true after its logout"))
      }
      other => outcome(other.map(|e| e.to_string())),
    }
  }

  /// Drops the primary's copy when the bucket holds its save (see `Op::Lose`). Synchronous: one step.
  fn lose(&self, session: &str) -> String {
    let Some(copy) = self.primary.get(session) else { return "no primary copy".into() };
    // Read before the model is locked (`save_in` locks it); nothing else runs until this returns.
    let held = self.save_in(session, &copy).ok();
    let mut model = self.model();
    let s = model.session(session);
    let Some(newest) = s.newest.filter(|_| s.backed_up && !s.deleted && !s.unsure) else {
      return "nothing to lose".into();
    };
    if held != Some(newest) {
      return format!("the primary holds save {held:?}, not the newest {newest}");
    }
    self.primary.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(session);
    s.lost = true;
    format!("the primary lost save {newest}")
  }
}

/// A session saved and not logged out from the call's start to its end, its state known.
fn live_throughout(start: &Session, end: &Session) -> bool {
  start.newest.is_some()
    && !start.deleted
    && !start.unsure
    && !start.own_call_running
    && end.logouts_begun == start.logouts_begun
}

/// A session logged out from the call's start to its end, no save begun meanwhile.
fn gone_throughout(start: &Session, end: &Session) -> bool {
  start.deleted && !start.unsure && !start.own_call_running && end.saves_begun == start.saves_begun
}

fn transferred(t: crate::transfer::Transfer) -> String {
  let failed: Vec<String> = t.failures.iter().map(|(k, e)| format!("{k}: {}", e.code())).collect();
  format!("{} copied, failed {failed:?}", t.copied)
}

fn outcome(done: crate::error::Result<String>) -> String {
  match done {
    Ok(done) => done,
    Err(err) => format!("failed: {} {err}", err.code()),
  }
}
