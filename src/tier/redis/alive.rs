//! The leases' liveness marker: a key that Redis loses together with the leases (FLUSHDB/FLUSHALL, a restart
//! without persistence, a failover to a replica without them). While it is missing or younger than the ttl,
//! `ACQUIRE` gives a free lease only to the token its owner key names (scripts.rs, `quarantine`): every holder
//! of a lease that vanished renews (retakes it) or stops by its own deadline within one ttl, so nobody else takes
//! a session its owner may still run. On a Redis Cluster a script's keys share one slot, so there is one marker
//! per slot (a node's FLUSHALL loses exactly its slots' markers); elsewhere one.
//!
//! A brand-new keyspace has no marker either, and would delay every first take by one ttl. So the first take
//! of a process checks the keyspace once: when it holds no marker and no lease, owner or generation key, no lease
//! can have been held, and the markers are set as old. A Redis that lost its data looks the same only until
//! its first holder renews (retakes), within `renewEveryMs`: a process whose first take falls in that window
//! could take a session its old owner still runs (docs/fleet.md, "Redis lost its data").

use std::sync::OnceLock;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::{glob_escape, RedisTarget, RedisTier};
use crate::error::Result;
use crate::session::SessionKey;

const SLOTS: usize = 16384;

/// A Redis Cluster key's hash slot: CRC16 (XMODEM) of its hash tag, here the whole text given.
fn slot(tag: &str) -> usize {
  usize::from(crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes())) % SLOTS
}

/// For each slot, a number `n` whose `<prefix>alive-<n>` hashes to it (about 170,000 tries, once per tier).
fn slot_tags(prefix: &str) -> Box<[u32]> {
  let mut tags = vec![u32::MAX; SLOTS];
  let mut left = SLOTS;
  let mut n = 0u32;
  while left > 0 {
    let tag = &mut tags[slot(&format!("{prefix}alive-{n}"))];
    if *tag == u32::MAX {
      *tag = n;
      left -= 1;
    }
    n += 1;
  }
  tags.into_boxed_slice()
}

/// The tier's markers: the tags by slot (Cluster), and whether this process checked the keyspace.
#[derive(Default)]
pub(super) struct Markers {
  tags: OnceLock<Box<[u32]>>,
  checked: tokio::sync::OnceCell<()>,
}

impl RedisTier {
  pub(super) fn cluster(&self) -> bool {
    matches!(self.config.target, RedisTarget::Cluster(_))
  }

  fn marker_in_slot(&self, slot: usize) -> String {
    let prefix = &self.config.prefix;
    let tag = self.markers.tags.get_or_init(|| slot_tags(prefix))[slot];
    format!("{{{prefix}alive-{tag}}}:marker")
  }

  /// The marker in the slot of the session's lease keys (hash tag `<prefix><name>`).
  pub(super) fn marker(&self, key: &SessionKey) -> String {
    if self.cluster() {
      self.marker_in_slot(slot(&self.key(key)))
    } else {
      self.only_marker()
    }
  }

  fn only_marker(&self) -> String {
    format!("{{{}alive}}:marker", self.config.prefix)
  }

  /// Once per process, before its first take: sets the markers as old when the keyspace holds no key of the
  /// leases or the fleet (see the module's text). An error is retried at the next take.
  pub(super) async fn check_markers(&self) -> Result<()> {
    self.markers.checked.get_or_try_init(|| Box::pin(self.mark_new_keyspace())).await.map(drop)
  }

  async fn mark_new_keyspace(&self) -> Result<()> {
    let first = if self.cluster() { self.marker_in_slot(0) } else { self.only_marker() };
    if self.query::<bool>(redis::cmd("EXISTS").arg(first)).await? {
      return Ok(());
    }
    // Lease, owner and generation keys only: the fleet's heartbeats come back as quickly as the holders'
    // retakes, and this process's own heartbeat may be there already.
    let pattern = format!("{{{}*}}:*", glob_escape(&self.config.prefix));
    let keys = self.conn().await?.scan(&pattern).await.map_err(|e| self.error(e))?;
    if keys.iter().any(|k| [":lease", ":owner", ":gen"].iter().any(|end| k.ends_with(end))) {
      return Ok(());
    }
    let markers: Vec<String> =
      if self.cluster() { (0..SLOTS).map(|s| self.marker_in_slot(s)).collect() } else { vec![self.only_marker()] };
    stream::iter(markers)
      .map(|marker| async move { self.query::<Option<String>>(redis::cmd("SET").arg(marker).arg("0").arg("NX")).await })
      .buffer_unordered(64)
      .try_collect::<Vec<_>>()
      .await
      .map(drop)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn every_slot_has_a_tag_that_hashes_to_it() {
    let tags = slot_tags("wa:session:");
    assert!(tags.iter().enumerate().all(|(s, n)| slot(&format!("wa:session:alive-{n}")) == s));
    // The CRC16 of Redis Cluster's specification (CLUSTER KEYSLOT foo = 12182).
    assert_eq!(slot("foo"), 12182);
  }
}
