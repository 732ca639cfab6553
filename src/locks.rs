//! One async lock per session: saves, deletes and backups of one session run one at a time, in call order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::session::SessionKey;

/// One async lock per session, so overlapping saves (RemoteAuth has no overlap guard) run in call order and an
/// older zip can never land after a newer one; deletes and backup write-backs take it too. Entries die with
/// their last holder.
#[derive(Debug, Default)]
pub struct KeyLocks(std::sync::Mutex<HashMap<SessionKey, Weak<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
  pub fn of(&self, key: &SessionKey) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.retain(|_, lock| lock.strong_count() > 0);
    if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
      return lock;
    }
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    map.insert(key.clone(), Arc::downgrade(&lock));
    lock
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn save_locks_are_per_session_and_freed() {
    let locks = KeyLocks::default();
    let (a, b) = (SessionKey::parse("a").unwrap(), SessionKey::parse("b").unwrap());
    let held = locks.of(&a);
    assert!(Arc::ptr_eq(&held, &locks.of(&a)));
    assert!(!Arc::ptr_eq(&held, &locks.of(&b)));
    drop(held);
    let _ = locks.of(&b);
    assert_eq!(locks.0.lock().unwrap().len(), 1, "the lock of a finished save is gone");
  }
}
