//! Leases on Redis: each one Lua script over the session's lease and owner keys (and, for a fenced write, the
//! session key), waited for by the replicas as `write_lease` says, so a lease survives a Sentinel failover or its
//! owner cannot count it.

use std::time::Duration;

use async_trait::async_trait;

use super::scripts::{
  ACQUIRE, DELETE_FENCED, DETACH, EPOCH_ACQUIRE, EPOCH_DELETE_FENCED, EPOCH_PUT_FENCED, EPOCH_RENEW, PUT_FENCED,
  RELEASE, RENEW,
};
use super::{eval, ms, RedisTier};
use crate::error::{Result, StoreError};
use crate::session::SessionKey;
use crate::tier::{Hold, LeaseState, Leases};

// Each script touches the lease key, the owner key and (for the fenced calls) the session key; the first two are
// hash-tagged by the session key, so all are in one slot and the scripts run on a Redis Cluster too. The owner key
// names the last token that took the lease (for a week after that take or the holder's last fenced write): an
// expired lease is taken again only by that token (scripts.rs, `RENEW`, says when else). The generation key
// (`{<session key>}:gen`, same slot) holds the lease's generation, for a week after its last take. A take also
// reads the liveness marker of the session's slot (alive.rs), which refuses fresh takes for one ttl after Redis
// lost its data.
//
// A lease held under a fleet member's epoch (scripts.rs, `lease_prelude`) is checked against the group's members
// and epochs keys too: in the group's slot, not the session's, so only where one script may read both (standalone
// and Sentinel; `Membership::beat` gives no epoch on a Cluster, where each lease is renewed on its own).

impl RedisTier {
  /// `{<session key>}:lease` and `{<session key>}:owner`: hashed by the session key, never matched by the session
  /// listing's `<prefix>*` (unless the prefix is empty, and then they are not valid session names).
  fn lease_keys(&self, key: &SessionKey) -> [String; 2] {
    let key = self.key(key);
    [format!("{{{key}}}:lease"), format!("{{{key}}}:owner")]
  }

  /// `RELEASE`: not waited for. A release the failover loses leaves the lease to expire on the new primary, which
  /// delays the session's next owner by at most the ttl and never lets two own it.
  async fn script(&self, script: &str, keys: &[String], args: &[&[u8]]) -> Result<bool> {
    Ok(self.query::<i64>(&eval(script, keys, args)).await? == 1)
  }

  /// The hold's group, id and epoch as script arguments (scripts.rs, `EPOCH_ACQUIRE`, `hold_in_epoch`).
  fn epoch_args(hold: &Hold) -> Option<[String; 3]> {
    let epoch = hold.epoch.as_ref()?;
    Some([epoch.group.clone(), epoch.id.clone(), epoch.n.to_string()])
  }

  /// A script's arguments: the token and ttl, the hold's epoch if it has one, `more`, and the tier's prefix last
  /// (`lease_prelude` builds a group's keys from it).
  fn lease_args(&self, token: &str, hold: &Hold, more: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut args = vec![token.as_bytes().to_vec(), ms(hold.ttl).into_bytes()];
    args.extend(Self::epoch_args(hold).into_iter().flatten().map(String::into_bytes));
    args.extend(more.iter().map(|a| a.to_vec()));
    args.push(self.config.prefix.as_bytes().to_vec());
    args
  }

  /// A fenced script over the lease keys and the session key (the epoch's variant for a hold with one): what it
  /// found. It renews the lease (and writes the session), so it waits for the replicas as a lease write does,
  /// unless the lease was lost and nothing was written.
  async fn fenced(
    &self,
    [plain, in_epoch]: [&str; 2],
    key: &SessionKey,
    token: &str,
    hold: &Hold,
    more: &[&[u8]],
  ) -> Result<LeaseState> {
    let [lease, owner] = self.lease_keys(key);
    let script = if hold.epoch.is_some() { in_epoch } else { plain };
    let args = self.lease_args(token, hold, more);
    let cmd = eval(script, &[lease, owner, self.key(key)], &args.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let (found, confirmed) = self.write_lease::<i64>(&cmd).await?;
    let state = match found {
      1 => LeaseState::Held,
      2 => LeaseState::Retaken,
      _ => return Ok(LeaseState::Lost),
    };
    confirmed.map(|()| state)
  }
}

#[async_trait]
impl Leases for RedisTier {
  /// Waited for like a save: a lease that only the primary holds can be missing on the replica a failover
  /// promotes, where another owner would find it free while this one runs the session. A take the replicas did not
  /// confirm is `ERR_REDIS_REPLICAS` and does not count; a lease it newly took is given back (best effort: else it
  /// expires), one the token held already is left as it was.
  async fn acquire(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<Option<u64>> {
    self.check_markers().await?;
    let [lease, owner] = self.lease_keys(key);
    let keys = [lease, owner, format!("{{{}}}:gen", self.key(key)), self.marker(key)];
    let script = if hold.epoch.is_some() { EPOCH_ACQUIRE } else { ACQUIRE };
    let args = self.lease_args(token, hold, &[]);
    let cmd = eval(script, &keys, &args.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let (reply, confirmed) = self.write_lease::<redis::Value>(&cmd).await?;
    if let redis::Value::Int(0) = reply {
      return Ok(None);
    }
    let (found, generation): (i64, String) =
      redis::from_redis_value(reply).map_err(|e| StoreError::Internal(format!("acquire: {e}")))?;
    let generation =
      generation.parse().map_err(|e| StoreError::Internal(format!("lease generation {generation:?}: {e}")))?;
    if let Err(unconfirmed) = confirmed {
      if found == 2 {
        let _ = self.script(RELEASE, &keys[..2], &[token.as_bytes()]).await;
      }
      return Err(unconfirmed);
    }
    Ok(Some(generation))
  }

  async fn renew(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<LeaseState> {
    self.fenced([RENEW, EPOCH_RENEW], key, token, hold, &[]).await
  }

  async fn release(&self, key: &SessionKey, token: &str) -> Result<()> {
    self.script(RELEASE, &self.lease_keys(key), &[token.as_bytes()]).await.map(drop)
  }

  async fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, hold: &Hold) -> Result<LeaseState> {
    let expiry = self.config.ttl.map_or("0".to_string(), ms);
    self.fenced([PUT_FENCED, EPOCH_PUT_FENCED], key, token, hold, &[&bytes, expiry.as_bytes()]).await
  }

  async fn delete_fenced(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<LeaseState> {
    self.fenced([DELETE_FENCED, EPOCH_DELETE_FENCED], key, token, hold, &[]).await
  }

  /// Waited for as a lease write: a detach a failover lost would leave the lease held under the epoch for as long
  /// as its member lives. Unconfirmed, it is an error, and its caller detaches again before it beats.
  async fn detach(&self, key: &SessionKey, token: &str, ttl: Duration) -> Result<()> {
    let (_, confirmed) =
      self.write_lease::<i64>(&eval(DETACH, &self.lease_keys(key), &[token.as_bytes(), ms(ttl).as_bytes()])).await?;
    confirmed
  }
}
