//! What a fleet of workers reads through the store: the primary's membership, the stored session names (the
//! primary's and the bucket's), and the write-back of a session the primary lost.

use super::order::Warmed;
use super::Store;
use crate::counters::Fallback;
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::Membership;

/// Where a session the fleet runs, or is to run, stands after `keep_in_primary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
  /// The primary has a copy (it had one, or a save landed meanwhile).
  Present,
  /// The primary had none: the newest good backup was written back to it.
  Restored,
  /// Neither the primary nor a live backup holds it: deleted (a logout), or never backed up.
  Deleted,
}

impl Store {
  /// The primary tier's membership (Redis, or the embedded directory within one process), which needs leases too.
  pub fn membership(&self) -> Result<&dyn Membership> {
    let primary = self.primary.as_deref();
    match primary.and_then(|p| p.membership()).filter(|_| primary.and_then(|p| p.leases()).is_some()) {
      Some(membership) => Ok(membership),
      None => Err(StoreError::InvalidOption {
        name: "fleet",
        reason: "a fleet needs a primary tier with leases (Redis, or the embedded directory within one process)".into(),
      }),
    }
  }

  /// The names of the sessions the primary holds (one listing, no headers read).
  pub async fn session_keys(&self) -> Result<Vec<SessionKey>> {
    match &self.primary {
      Some(primary) => primary.list().await,
      None => Err(StoreError::InvalidOption { name: "fleet", reason: "a fleet needs a primary tier".into() }),
    }
  }

  /// The sessions whose newest backup is live (not covered by a delete's mark), from one listing of the bucket;
  /// `None` without a backup tier. A listing costs a request per 1,000 objects: callers cache it.
  pub async fn backed_up_keys(&self) -> Result<Option<Vec<SessionKey>>> {
    match &self.backups {
      Some(backups) => backups.sessions().await.map(Some),
      None => Ok(None),
    }
  }

  /// Whether the bucket holds a live backup of the session (one listing of its folder); `false` without one.
  pub async fn backed_up(&self, key: &SessionKey) -> Result<bool> {
    match &self.backups {
      Some(backups) => backups.exists(key).await,
      None => Ok(false),
    }
  }

  /// Makes sure the primary holds the session: when it does not (evicted, a Redis restarted without
  /// persistence), the newest good backup is written back as `restore` does: conditionally (never over a copy
  /// saved meanwhile, fenced by this store's lease when it holds one), never from versions a delete's mark
  /// covers, and taken down again when a delete's mark lands while it is written. Counted as a `missing`
  /// fallback. A tier that cannot be asked is an error, never `Deleted`.
  pub async fn keep_in_primary(&self, key: &SessionKey) -> Result<Kept> {
    let Some(primary) = &self.primary else {
      return Err(StoreError::InvalidOption { name: "fleet", reason: "a fleet needs a primary tier".into() });
    };
    if primary.exists(key).await? {
      return Ok(Kept::Present);
    }
    let Some(backups) = &self.backups else { return Ok(Kept::Deleted) };
    match self.warm(primary, backups, key, false).await? {
      Warmed::Kept(_) | Warmed::Changed => Ok(Kept::Present),
      Warmed::NoBackup => Ok(if primary.exists(key).await? { Kept::Present } else { Kept::Deleted }),
      // A delete (another process, no lease of ours to order it) marked the bucket while the copy was read: the
      // copy written back went again rather than bringing a logged-out session back.
      Warmed::Deleted => Ok(Kept::Deleted),
      Warmed::Restored(_) => {
        self.counters.fallback(Fallback::Missing);
        Ok(Kept::Restored)
      }
    }
  }
}

/// The fleet member on a store, as the store sees it. The fleet sits above the store, so the store only signals:
/// `close()` asks the member to close and waits until it left.
pub(super) struct MemberSlot(tokio::sync::watch::Sender<Member>);

#[derive(Default, Clone, Copy)]
struct Member {
  /// A member runs (joined and not yet left).
  joined: bool,
  /// The store's `close()` was called: a member closes, and no new one joins.
  closing: bool,
}

impl Default for MemberSlot {
  fn default() -> Self {
    Self(tokio::sync::watch::channel(Member::default()).0)
  }
}

impl MemberSlot {
  /// Asks the member (if one runs) to close and resolves once it left; at once when none runs.
  pub(super) async fn close(&self) {
    self.0.send_modify(|m| m.closing = true);
    let mut member = self.0.subscribe();
    // The sender lives in `self`: this ends only when the member left.
    let _ = member.wait_for(|m| !m.joined).await;
  }
}

impl Store {
  /// Makes this store a fleet member's: one at a time (two members would hold every lease under one token, each
  /// taking the other's as its own; `leave_fleet` frees it), and none once the store is closed (its `close()`
  /// would not stop it).
  pub fn join_fleet(&self) -> Result<()> {
    let mut refused = None;
    self.fleet_member.0.send_if_modified(|m| {
      refused = if m.closing {
        Some("this store is closed: a member joined now would outlive its close(); make a new RustStore")
      } else if m.joined {
        Some(
          "this store already runs a fleet member: one member per store (its leases are the store's); give each \
           member a RustStore of its own",
        )
      } else {
        None
      };
      m.joined |= refused.is_none();
      refused.is_none()
    });
    match refused {
      Some(reason) => Err(StoreError::InvalidOption { name: "fleet", reason: reason.into() }),
      None => Ok(()),
    }
  }

  /// The member left: the slot is free again, and a `close()` waiting for it goes on.
  pub fn leave_fleet(&self) {
    self.fleet_member.0.send_modify(|m| m.joined = false);
  }

  /// Resolves once the store's `close()` asks its fleet member to close (never, if it does not).
  pub fn fleet_closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut member = self.fleet_member.0.subscribe();
    async move {
      if member.wait_for(|m| m.closing).await.is_err() {
        std::future::pending::<()>().await;
      }
    }
  }
}
