//! Membership on Redis: a sorted set of members scored by their expiry (Redis' own clock, `TIME`), a hash of
//! what each published, and hashes for the group's maps. Every key of a group carries the hash tag
//! `{<prefix>fleet:<group>}`, so all live in one Cluster slot and each step is one script.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::RedisTier;
use crate::error::{Result, StoreError};
use crate::tier::{Beat, Member, Membership};

// KEYS: members zset, info hash, claims hash, epochs hash. ARGV: id, info, ttl ms, claim. Drops the expired (their
// claims and epochs lapse with them); then 0 if a live heartbeat of id carries another claim (nothing written), else
// beats under the claim and returns the id's epoch, then id, info, ms left per member. A member that had no live
// heartbeat gets a new epoch: above its last one and Redis' clock in µs, so an epoch is never given twice even once
// the hash lost it (tier/lease.rs `Epoch`; the leases held under one, scripts.rs `epoch_lease`).
const BEAT: &str =
  "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now) \
  for _, id in ipairs(dead) do redis.call('HDEL', KEYS[2], id) redis.call('HDEL', KEYS[3], id) \
    redis.call('HDEL', KEYS[4], id) redis.call('ZREM', KEYS[1], id) end \
  local held = redis.call('HGET', KEYS[3], ARGV[1]) local live = redis.call('ZSCORE', KEYS[1], ARGV[1]) \
  if held and held ~= ARGV[4] and live then return 0 end \
  local e = redis.call('HGET', KEYS[4], ARGV[1]) if not live or not e then \
    e = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), (tonumber(e) or 0) + 1)) \
    redis.call('HSET', KEYS[4], ARGV[1], e) end \
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1]) \
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) if held ~= ARGV[4] then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end \
  local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') local all = redis.call('HGETALL', KEYS[2]) \
  local info = {} for i = 1, #all, 2 do info[all[i]] = all[i + 1] end local out = {e} for i = 1, #z, 2 do \
    out[#out + 1] = z[i] out[#out + 1] = info[z[i]] or '' \
    out[#out + 1] = tostring(tonumber(z[i + 1]) - now) end return out";
// Read-only: scripts that only read may run where writes are refused, so members() does not drop anything.
const MEMBERS: &str =
  "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
  local z = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES') local out = {} \
  for i = 1, #z, 2 do out[#out + 1] = z[i] out[#out + 1] = redis.call('HGET', KEYS[2], z[i]) or '' \
    out[#out + 1] = tostring(tonumber(z[i + 1]) - now) end return out";
// ARGV: id, claim. Only the instance whose claim the heartbeat carries: a leave landing late must not end a later
// instance's heartbeat and epoch (every lease held under it would be free at once).
const LEAVE: &str = "if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end \
  redis.call('ZREM', KEYS[1], ARGV[1]) redis.call('HDEL', KEYS[2], ARGV[1]) redis.call('HDEL', KEYS[3], ARGV[1]) \
  redis.call('HDEL', KEYS[4], ARGV[1]) return 0";
const REMOVE_IF: &str =
  "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end \
  return 0";
/// Ordered entries: KEYS[1] the map, KEYS[2] its orders (field → decimal order). Returns 0, writing nothing, when
/// the field's order is greater than `ARGV[$order]`. Orders compare as decimal text (shorter is smaller), exact
/// for any u64 where Lua's doubles are not.
macro_rules! unless_later {
  ($order:literal) => {
    concat!(
      "local o = redis.call('HGET', KEYS[2], ARGV[1]) local n = ARGV[",
      $order,
      "] if o and (#o > #n or (#o == #n and o > n)) then return 0 end "
    )
  };
}
// ARGV: field, value, order.
const SET_ORDERED: &str = concat!(
  unless_later!(3),
  "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) return 1"
);
// ARGV: field, order.
const REMOVE_ORDERED: &str =
  concat!(unless_later!(2), "redis.call('HDEL', KEYS[1], ARGV[1]) redis.call('HDEL', KEYS[2], ARGV[1]) return 1");

impl RedisTier {
  fn group_key(&self, group: &str, what: &str) -> Result<String> {
    crate::tier::check_group(group)?;
    Ok(format!("{{{}fleet:{group}}}:{what}", self.config.prefix))
  }

  async fn eval_value(&self, script: &str, keys: &[String], args: &[&[u8]]) -> Result<redis::Value> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    for arg in args {
      cmd.arg(*arg);
    }
    // Boxed: the query future (through Sentinel's lookup) nests too deep for the compiler's layout limit.
    Box::pin(self.query::<redis::Value>(&cmd)).await
  }

  /// A map and its orders.
  fn ordered_keys(&self, group: &str, map: &str) -> Result<[String; 2]> {
    Ok([self.group_key(group, &format!("map:{map}"))?, self.group_key(group, &format!("order:{map}"))?])
  }

  fn member_keys(&self, group: &str) -> Result<[String; 4]> {
    let key = |what| self.group_key(group, what);
    Ok([key("members")?, key("info")?, key("claims")?, key("epochs")?])
  }

  fn member_list(flat: Vec<Vec<u8>>) -> Vec<Member> {
    // (id, info, ms its heartbeat has left) per member; a figure that does not parse reads as "not soon", so it
    // can never make a worker beat in a tight loop.
    let left = |ms: &[u8]| std::str::from_utf8(ms).ok().and_then(|ms| ms.parse::<f64>().ok()).unwrap_or(f64::MAX);
    let mut out: Vec<Member> = flat
      .chunks_exact(3)
      .map(|m| Member {
        id: String::from_utf8_lossy(&m[0]).into_owned(),
        info: m[1].clone(),
        expires_in: Duration::from_millis(left(&m[2]).max(0.0) as u64),
      })
      .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
  }

  fn flat(reply: redis::Value) -> Result<Vec<Vec<u8>>> {
    redis::from_redis_value(reply).map_err(|e| StoreError::Internal(format!("membership reply: {e}")))
  }
}

#[async_trait]
impl Membership for RedisTier {
  /// Where the beat carries the member's leases (not on a Cluster: leases.rs), it is a lease write, waited for
  /// as one: a beat the replicas did not confirm keeps no lease, and fails.
  async fn beat(&self, group: &str, id: &str, claim: &str, info: &[u8], ttl: Duration) -> Result<Beat> {
    let keys = self.member_keys(group)?;
    let ttl = ttl.as_millis().max(1).to_string();
    let cmd = super::eval(BEAT, &keys, &[id.as_bytes(), info, ttl.as_bytes(), claim.as_bytes()]);
    let carries = !self.cluster();
    let reply = if carries {
      let (reply, confirmed) = self.write_lease::<redis::Value>(&cmd).await?;
      confirmed.map(|()| reply)?
    } else {
      Box::pin(self.query::<redis::Value>(&cmd)).await?
    };
    if let redis::Value::Int(0) = reply {
      // The id's live heartbeat carries another claim.
      return Err(StoreError::DuplicateWorker(id.to_owned()));
    }
    let mut flat = Self::flat(reply)?.into_iter();
    let epoch = flat.next().and_then(|e| std::str::from_utf8(&e).ok()?.parse::<u64>().ok());
    let epoch = epoch.ok_or_else(|| StoreError::Internal("membership reply: no epoch".into()))?;
    Ok(Beat { members: Self::member_list(flat.collect()), epoch: carries.then_some(epoch) })
  }

  async fn members(&self, group: &str) -> Result<Vec<Member>> {
    let keys = self.member_keys(group)?;
    Ok(Self::member_list(Self::flat(self.eval_value(MEMBERS, &keys, &[]).await?)?))
  }

  async fn leave(&self, group: &str, id: &str, claim: &str) -> Result<()> {
    let keys = self.member_keys(group)?;
    self.eval_value(LEAVE, &keys, &[id.as_bytes(), claim.as_bytes()]).await.map(drop)
  }

  async fn map_all(&self, group: &str, map: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let key = self.group_key(group, &format!("map:{map}"))?;
    let pairs: Vec<(String, Vec<u8>)> = self.query(redis::cmd("HGETALL").arg(key)).await?;
    Ok(pairs.into_iter().collect())
  }

  async fn map_set(&self, group: &str, map: &str, field: &str, value: &[u8]) -> Result<()> {
    let key = self.group_key(group, &format!("map:{map}"))?;
    self.query(redis::cmd("HSET").arg(key).arg(field).arg(value)).await
  }

  async fn map_remove(&self, group: &str, map: &str, field: &str, only_if: Option<&[u8]>) -> Result<()> {
    let key = self.group_key(group, &format!("map:{map}"))?;
    match only_if {
      None => self.query(redis::cmd("HDEL").arg(key).arg(field)).await,
      Some(expected) => self.eval_value(REMOVE_IF, &[key], &[field.as_bytes(), expected]).await.map(drop),
    }
  }

  async fn map_set_ordered(&self, group: &str, map: &str, field: &str, value: &[u8], order: u64) -> Result<bool> {
    let keys = self.ordered_keys(group, map)?;
    let order = order.to_string();
    let reply = self.eval_value(SET_ORDERED, &keys, &[field.as_bytes(), value, order.as_bytes()]).await?;
    Ok(reply == redis::Value::Int(1))
  }

  async fn map_remove_ordered(&self, group: &str, map: &str, field: &str, order: u64) -> Result<bool> {
    let keys = self.ordered_keys(group, map)?;
    let order = order.to_string();
    Ok(self.eval_value(REMOVE_ORDERED, &keys, &[field.as_bytes(), order.as_bytes()]).await? == redis::Value::Int(1))
  }
}
