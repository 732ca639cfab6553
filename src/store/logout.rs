//! A logout across tiers and processes: the primary's copy goes first (fenced by this store's lease), then the
//! bucket's versions under a mark covering the save deleted, so no late backup or write-back of it comes back.

use super::Store;
use crate::error::Result;
use crate::session::{SessionArg, SessionKey};

impl Store {
  /// Removes the session from every tier (each is tried; the first failure is returned). Under the session's
  /// lock: a save in flight finishes first, and a backup in flight is undone when it lands. Fenced by this
  /// store's lease like a save: unless the primary's delete passed the lease check, no backup is touched.
  pub async fn delete(&self, session: &str) -> Result<()> {
    let key = SessionArg::parse(session)?.key;
    let lock = self.save_locks.of(&key);
    let _turn = lock.lock().await;
    let deleted_stamp = self.deleted_stamp(&key).await;
    let primary = match &self.primary {
      Some(primary) => match (self.held(&key).is_some(), self.delete_primary(primary, &key).await) {
        (true, Err(err)) => return Err(err),
        (_, done) => done,
      },
      None => Ok(()),
    };
    primary.and(self.forget_in_backups(&key, deleted_stamp).await)
  }

  /// `delete` of a session nobody saved since `cutoff_ms` (`cleanup`): `false`, nothing deleted, when a save landed
  /// since (by a running service). On the primary the check and the delete are one step (the embedded directory,
  /// Redis); the backups go only once the primary's copy did.
  pub async fn delete_unsaved_since(&self, session: &str, cutoff_ms: u64) -> Result<bool> {
    let key = SessionArg::parse(session)?.key;
    let lock = self.save_locks.of(&key);
    let turn = lock.lock().await;
    let seen = self.primary_head(&key).await?;
    if self.saved_at(&key).await?.is_some_and(|ms| ms >= cutoff_ms) {
      return Ok(false);
    }
    let deleted_stamp = self.deleted_stamp(&key).await;
    if let Some(primary) = &self.primary {
      if self.held(&key).is_some() {
        drop(turn);
        return self.delete(session).await.map(|()| true);
      }
      let gone = match seen {
        Some(seen) => primary.delete_if(&key, seen).await?,
        // No primary copy when judged: one written since is a save that wins.
        None => !primary.exists(&key).await?,
      };
      if !gone {
        return Ok(false);
      }
    }
    self.forget_in_backups(&key, deleted_stamp).await.map(|()| true)
  }

  /// The stamp of the copy a delete removes: the bucket's mark covers it, so no late backup of it comes back (0
  /// without both a primary and backups, or when it cannot be read).
  async fn deleted_stamp(&self, key: &SessionKey) -> u64 {
    match (&self.primary, &self.backups) {
      (Some(_), Some(_)) => self.previous_stamp(key).await.unwrap_or(0),
      _ => 0,
    }
  }

  /// Once the primary's copy went: nothing of it is left to back up, the bucket's versions go under a mark
  /// covering `stamp`, and then a copy another process's restore wrote back to the primary meanwhile goes too
  /// (`order::take_down_covered`). Each step is tried; the first failure is returned.
  async fn forget_in_backups(&self, key: &SessionKey, stamp: u64) -> Result<()> {
    if let Some(scheduler) = &self.scheduler {
      scheduler.forget(key, stamp);
    }
    let marked = match &self.backups {
      Some(backups) => backups.delete(key, stamp).await,
      None => Ok(0),
    };
    let taken_down = match (&self.primary, &marked) {
      (Some(primary), Ok(mark)) if *mark > 0 => self.take_down_covered(primary, key, *mark).await,
      _ => Ok(()),
    };
    marked.and(taken_down)
  }
}
