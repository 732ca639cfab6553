//! `save` and the other ways a packed session gets in (`import`, migrations): checked, verified, then written so
//! that the stored copy is replaced only once the new one is durable.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use super::{cwd, Saved, SessionInfo, Store};
use crate::archive::{self, PackOptions};
use crate::blocking;
use crate::counters::Outcome;
use crate::error::{Result, StoreError};
use crate::session::{locate_zip, zip_candidates, SessionArg, SessionKey};
use crate::tier::Ready;

impl Store {
  /// Keeps the kept entries of the zip RemoteAuth wrote (found from `zip`, an absolute `session`, the cwd or the
  /// data path), their compressed bytes as they are, each inflated and checked meanwhile; the stored session is
  /// replaced only once the new archive is complete and verified. Done once the primary has it; in every-save
  /// mode the backup follows at once and a failure comes back in `backup_error` (and stays pending for
  /// `close()`). With no primary, a failed upload fails the save.
  pub async fn save(&self, session: &str, zip: Option<&Path>) -> Result<Saved> {
    let arg = SessionArg::parse(session)?;
    let candidates = zip_candidates(&arg, zip, &cwd()?, &self.config.data_path);
    let key = arg.key.clone();
    let turn = self.save_locks.of(&key).lock_owned().await;
    let previous_ms = self.previous_stamp(&key).await.inspect_err(|_| self.counters.save(Outcome::Failed))?;
    let config = self.config.clone();
    let save = Arc::new(
      blocking::run(move || {
        let path = locate_zip(&arg, &candidates)?;
        let bytes = std::fs::read(&path).map_err(StoreError::io("read", &path))?;
        archive::ZipSave::open(bytes, &config.pack, blocking::cores())
      })
      .await
      .inspect_err(|_| self.counters.save(Outcome::Failed))?,
    );
    // Every kept entry is inflated and checked on every core while the copy is packed and written; only the
    // step that replaces the stored copy waits for the check (`Tier::put_when`).
    let checks: Vec<_> = (0..save.parts())
      .map(|at| {
        let save = save.clone();
        tokio::spawn(blocking::run(move || save.verify_part(at)))
      })
      .collect();
    let verified: Ready = Box::pin(async move {
      let mut first = Ok(());
      for check in checks {
        let done = check.await.map_err(|e| StoreError::Internal(format!("verify task failed: {e}"))).and_then(|r| r);
        first = first.and(done);
      }
      first
    });
    let (config, session) = (self.config.clone(), key.to_string());
    match blocking::run(move || save.pack_after(&config.pack, &session, previous_ms)).await {
      Ok(packed) => self.store_verified(key, packed, turn, verified).await,
      // The check's error says more about the zip than the copy's.
      Err(err) => {
        self.counters.save(Outcome::Failed);
        Err(verified.await.err().unwrap_or(err))
      }
    }
  }

  /// Stores an archive packed elsewhere (a migrated profile folder) as `key`. A session already stored is kept
  /// (`Ok(None)`) unless `replace_older_than` is given and its newest copy was saved before that time (ms).
  /// Backed up like a save.
  pub async fn import(
    &self,
    key: &SessionKey,
    packed: archive::Packed,
    replace_older_than: Option<u64>,
  ) -> Result<Option<Saved>> {
    let turn = self.save_locks.of(key).lock_owned().await;
    // What the primary holds as it is judged: written over only while it still holds exactly that.
    let seen = self.primary_head(key).await?;
    if let Some(saved_ms) = self.saved_at(key).await? {
      if replace_older_than.is_none_or(|limit| saved_ms >= limit) {
        return Ok(None);
      }
    }
    self.store_packed_if(key.clone(), packed, turn, seen).await
  }

  /// The primary copy's header as it is now (`None`: no primary copy), for a later `store_packed_if`.
  pub(super) async fn primary_head(&self, key: &SessionKey) -> Result<Option<Vec<u8>>> {
    match &self.primary {
      Some(primary) => primary.head(key, archive::HEADER_LEN).await,
      None => Ok(None),
    }
  }

  /// As `store_packed`, but only while the primary still holds what `seen` says (its header, or no copy): a
  /// save or delete by another process since it was read wins, and nothing is written (`Ok(None)`). The check
  /// and the write are one step on the primary (the embedded directory: under the session's lock file; Redis: one
  /// script). A store holding the session's lease, or with a primary that may evict, writes as a save does.
  pub(super) async fn store_packed_if(
    &self,
    key: SessionKey,
    packed: archive::Packed,
    turn: OwnedMutexGuard<()>,
    seen: Option<Vec<u8>>,
  ) -> Result<Option<Saved>> {
    let Some(primary) = &self.primary else { return self.store_packed(key, packed, turn).await.map(Some) };
    let evicts = self.checked.as_ref().expect("a primary").evicts().await?;
    if self.held(&key).is_some() || (evicts && self.scheduler.is_some()) {
      return self.store_packed(key, packed, turn).await.map(Some);
    }
    let info = SessionInfo { key: key.clone(), header: packed.header.clone() };
    let written = primary.put_if(&key, seen, packed.bytes).await;
    if !matches!(written, Ok(false)) {
      self.counters.save(Outcome::of(&written));
    }
    if !written? {
      return Ok(None);
    }
    let backup_error = self.back_up_after(key, turn).await;
    Ok(Some(Saved { info, backup_error }))
  }

  /// After the primary took a write: the backup, now (every-save mode) or marked for the timer. The session's
  /// lock is let go first: the backup takes it itself when it lands.
  async fn back_up_after(&self, key: SessionKey, turn: OwnedMutexGuard<()>) -> Option<StoreError> {
    let backup_now = self.scheduler.as_ref().is_some_and(|s| s.mark(&key));
    drop(turn);
    match (backup_now, &self.scheduler) {
      (true, Some(scheduler)) => scheduler.flush_keys(vec![key], false).await.failures.pop().map(|(_, err)| err),
      _ => None,
    }
  }

  /// Writes a packed session to the primary (to the backups when there is none), holding the session's save
  /// lock until the primary has it, then backs it up now or marks it for the timer.
  pub(super) async fn store_packed(
    &self,
    key: SessionKey,
    packed: archive::Packed,
    turn: OwnedMutexGuard<()>,
  ) -> Result<Saved> {
    self.store_verified(key, packed, turn, Box::pin(async { Ok(()) })).await
  }

  /// As `store_packed`, replacing nothing until `verified` resolves `Ok` (its error is the save's); counted.
  async fn store_verified(
    &self,
    key: SessionKey,
    packed: archive::Packed,
    turn: OwnedMutexGuard<()>,
    verified: Ready,
  ) -> Result<Saved> {
    let stored = self.store_verified_counted(key, packed, turn, verified).await;
    self.counters.save(Outcome::of(&stored));
    stored
  }

  async fn store_verified_counted(
    &self,
    key: SessionKey,
    packed: archive::Packed,
    turn: OwnedMutexGuard<()>,
    verified: Ready,
  ) -> Result<Saved> {
    let info = SessionInfo { key: key.clone(), header: packed.header.clone() };
    let Some(primary) = &self.primary else {
      let backups = self.backups.as_ref().expect("a store has a tier");
      verified.await?;
      backups.write(&key, packed.bytes).await?;
      return Ok(Saved { info, backup_error: None });
    };
    if let (true, Some(scheduler)) = (self.checked.as_ref().expect("a primary").evicts().await?, &self.scheduler) {
      // Redis may evict it at once: the bucket takes it first (only while the lease is ours: a stale replica's copy
      // must not become the newest version), so a save that reaches Redis is in the bucket too, unless the
      // upload failed, which the save reports and keeps pending.
      verified.await?;
      self.check_lease(primary, &key).await?;
      let backed_up = scheduler.back_up_first(&key, packed.bytes.clone()).await;
      self.put_primary(primary, &key, packed.bytes).await?;
      let backup_error = backed_up.err();
      if backup_error.is_some() {
        scheduler.mark(&key); // at risk until the next backup: counted as pending
      }
      return Ok(Saved { info, backup_error });
    }
    match self.held(&key).is_some() {
      // A fenced write is one script: the check comes first.
      true => {
        verified.await?;
        self.put_primary(primary, &key, packed.bytes).await?
      }
      false => primary.put_when(&key, packed.bytes, verified).await?,
    }
    let backup_error = self.back_up_after(key, turn).await;
    Ok(Saved { info, backup_error })
  }
}

/// `save` of a zip held in memory (an import): the same checks as a save, verified before it is packed.
pub(super) fn pack_zip_bytes(zip: &[u8], opts: &PackOptions, session: &str) -> Result<archive::Packed> {
  archive::pack_zip(std::io::Cursor::new(zip), opts, session)
}
