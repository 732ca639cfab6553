//! The Lua scripts of the Redis tier: leases, fenced writes and conditional writes, each one atomic step.

/// Refuses (returns 0, as if held) a free lease to a token the owner key does not name while the liveness marker
/// `KEYS[4]` is missing or younger than the ttl (`ARGV[2]` ms, on the tier's clock): the marker is lost with the
/// leases (FLUSHALL, a restart without persistence, a failover to a replica without them), and a holder that
/// still runs its session renews within its ttl or stops by its own deadline (retaking the lease meanwhile, see
/// `RENEW`), so nobody else takes its session while it may still run it. A missing (or unreadable) marker is set
/// to now. After `lease_prelude`.
macro_rules! quarantine {
  () => {
    "if v == false and redis.call('GET', KEYS[2]) ~= ARGV[1] then local m = tonumber(redis.call('GET', KEYS[4])) \
      if not m then redis.call('SET', KEYS[4], string.format('%.0f', now())) return 0 end \
      if now() - m < tonumber(ARGV[2]) then return 0 end end "
  };
}
/// Every lease script's first step. A lease is its token (`<token>`, with an expiry), or, held under a fleet
/// member's epoch (tier/lease.rs `Epoch`), `<token> <group> <id> <n>` with no expiry: held while epoch `n` of
/// member `id` of `group` is alive, that is while the member's heartbeat (the group's `members` zset, scored by
/// expiry in ms on Redis' clock) is above `TIME` and the group's `epochs` hash still gives it `n` (membership.rs,
/// `BEAT`). Sets `v` to the lease, or to false when it is absent or its epoch died (free, as an expired lease
/// is), and `tok` to its token; defines `time` (`TIME`, asked once, only if needed: a plain renewal stays 3
/// commands), `now` (it in ms) and `alive`. The group's keys are built here from the tier's prefix,
/// the script's last argument: epochs exist only where one script may read any key (no Cluster: `Membership::beat`
/// gives no epoch there, so no such lease is ever read on one).
macro_rules! lease_prelude {
  () => {
    "local tm = nil local function time() if not tm then tm = redis.call('TIME') end return tm end \
    local function now() local t = time() return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end \
    local function alive(g, id, n) local k = '{' .. ARGV[#ARGV] .. 'fleet:' .. g .. '}:' \
      local s = redis.call('ZSCORE', k .. 'members', id) \
      return s ~= false and tonumber(s) > now() and redis.call('HGET', k .. 'epochs', id) == n end \
    local v = redis.call('GET', KEYS[1]) local tok = v local eg, eid, en = nil, nil, nil \
    if v then local a, b, c, d = string.match(v, '^(%S+) (%S+) (%S+) (%S+)$') \
      if a then tok, eg, eid, en = a, b, c, d if not alive(b, c, d) then v = false end end end "
  };
}
/// Returns `{2, generation}` when the lease was free and is the token's now, `{1, generation}` when the token held
/// it already (held under a live epoch, it stays so: its holder's store takes it again, as `SafeRemoteAuth.forFleet`
/// does, and must not pull it off the epoch), 0 when another token holds it (or `quarantine` refused it). The generation is `KEYS[3]`'s. A new
/// holder's generation is above the last one and the tier's clock in µs (exact in Lua's doubles), so a generation
/// key that expired or was lost still gives a greater one; decimal text, since Lua would print a large number in
/// exponent form.
pub(super) const ACQUIRE: &str = concat!(
  lease_prelude!(),
  quarantine!(),
  "if v == false or tok == ARGV[1] then \
  local g = redis.call('GET', KEYS[3]) if v == false or not g then local t = time() \
    g = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), (tonumber(g) or 0) + 1)) end \
  if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
  redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) \
  redis.call('SET', KEYS[3], g, 'PX', 604800000) if v == false then return {2, g} end return {1, g} end return 0"
);
// Released: the owner key no longer names the token, so a late renewal of it cannot take the lease back. The
// lease is the token's, plain or held under an epoch (`lease_prelude`).
pub(super) const RELEASE: &str = "local v = redis.call('GET', KEYS[1]) \
  if v and (v == ARGV[1] or string.match(v, '^(%S+) ') == ARGV[1]) then redis.call('DEL', KEYS[1]) end \
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('SET', KEYS[2], 'released', 'PX', 604800000) end return 0";
/// Sets `held` to 2 and takes the lease again when it had expired (`v` false) and the owner key names the token or
/// is gone (with a Redis that lost its data, or a week after the last take or fenced write): nobody else took it.
macro_rules! retake {
  () => {
    "if v == false then local o = redis.call('GET', KEYS[2]) \
      if o == false or o == ARGV[1] then held = 2 redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
      redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) end end "
  };
}
/// Sets `held`: 1 the token holds the lease, 2 it had expired and is the token's again (`retake`), 0 another token
/// took it. A fenced write also keeps the owner key for a week from now.
macro_rules! hold {
  () => {
    concat!(
      lease_prelude!(),
      "local held = 0 if v and tok == ARGV[1] then held = 1 redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) end ",
      retake!(),
      "if held == 0 then return 0 end "
    )
  };
}
/// As `hold` with the lease extended, minus the owner key's refresh while it is held: a renewal runs every
/// `renewEveryMs` for every session, so its commands are the fleet's cost at rest (EVAL + GET + PEXPIRE: 3 rather
/// than 4). The owner key names the token for a week after its take or its last fenced write (a save). Should it
/// expire under a holder (a week without a save) it reads as gone, as after a Redis that lost its data: a renewal
/// of a token that lost the lease could then take it once expired. Such a renewal can only be one in flight: a
/// store stops renewing a token once it learned the lease is lost, or gave it up (its deadline passed).
pub(super) const RENEW: &str = concat!(
  lease_prelude!(),
  "local held = 0 if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
  if v and tok == ARGV[1] then return 1 end ",
  retake!(),
  "return held"
);
/// Sets the session key `KEYS[$key]` to `ARGV[$value]` as `put` does: with the store's ttl in ms (`ARGV[$ttl]`), or
/// none when that is '0'.
macro_rules! set_session {
  ($key:literal, $value:literal, $ttl:literal) => {
    concat!(
      "if ARGV[",
      $ttl,
      "] == '0' then redis.call('SET', KEYS[",
      $key,
      "], ARGV[",
      $value,
      "]) \
      else redis.call('SET', KEYS[",
      $key,
      "], ARGV[",
      $value,
      "], 'PX', ARGV[",
      $ttl,
      "]) end "
    )
  };
}
pub(super) const PUT_FENCED: &str = concat!(hold!(), set_session!(3, 3, 4), "return held");
pub(super) const DELETE_FENCED: &str = concat!(hold!(), "redis.call('DEL', KEYS[3]) return held");
/// Returns 0 unless the session key `KEYS[1]` starts with `ARGV[1]` (its first `ARGV[2]` + 1 bytes), or, when
/// `ARGV[2]` is '', is absent. A stored archive is never empty, and GETRANGE answers "" for a missing key.
macro_rules! matches_expected {
  () => {
    "if ARGV[2] == '' then if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end \
    elseif redis.call('GETRANGE', KEYS[1], 0, ARGV[2]) ~= ARGV[1] then return 0 end "
  };
}
pub(super) const REPLACE_IF: &str =
  concat!(matches_expected!(), "redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL') return 1");
pub(super) const PUT_IF: &str = concat!(matches_expected!(), set_session!(1, 3, 4), "return 1");
pub(super) const DELETE_IF: &str = concat!(matches_expected!(), "redis.call('DEL', KEYS[1]) return 1");

/// `ACQUIRE` under the caller's epoch (`ARGV[3..5]`: group, id, epoch; the tier's prefix last): taken only while
/// that epoch is alive, as `<token> <group> <id> <n>` with no expiry, so the caller's beats hold it from now on. A
/// lease the token holds already (plain, or under an earlier epoch) moves onto the epoch.
pub(super) const EPOCH_ACQUIRE: &str = concat!(
  lease_prelude!(),
  "if not alive(ARGV[3], ARGV[4], ARGV[5]) then return 0 end ",
  quarantine!(),
  "if v == false or tok == ARGV[1] then \
  local g = redis.call('GET', KEYS[3]) if v == false or not g then local t = time() \
    g = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), (tonumber(g) or 0) + 1)) end \
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5]) \
  redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) \
  redis.call('SET', KEYS[3], g, 'PX', 604800000) if v == false then return {2, g} end return {1, g} end return 0"
);
/// Sets `held` as `hold` does, for a caller holding under an epoch (`ARGV[3..5]`): 1 the token holds the lease, 2
/// it had expired or its epoch died and nobody took it since (the token's again), else returns 0. The lease is
/// then held under the caller's epoch while that lives, or else (the caller's epoch died too: its next beat
/// brings the next one) as a plain lease for the ttl (`ARGV[2]` ms), as `RENEW` would.
macro_rules! hold_in_epoch {
  () => {
    concat!(
      lease_prelude!(),
      "local held = 0 if v and tok == ARGV[1] then held = 1 \
      elseif tok == ARGV[1] then held = 2 \
      elseif v == false then local o = redis.call('GET', KEYS[2]) if o == false or o == ARGV[1] then held = 2 end end \
      if held == 0 then return 0 end \
      if alive(ARGV[3], ARGV[4], ARGV[5]) then \
        redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5]) \
      else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
      redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) "
    )
  };
}
pub(super) const EPOCH_RENEW: &str = concat!(hold_in_epoch!(), "return held");
/// `ARGV[6]` and `ARGV[7]`: the bytes and the store's ttl, as `PUT_FENCED`'s 3 and 4.
pub(super) const EPOCH_PUT_FENCED: &str = concat!(hold_in_epoch!(), set_session!(3, 6, 7), "return held");
pub(super) const EPOCH_DELETE_FENCED: &str = concat!(hold_in_epoch!(), "redis.call('DEL', KEYS[3]) return held");
/// The token's lease, plain or held under an epoch (dead or alive), becomes `<token> detached`, expiring in
/// `ARGV[2]` ms (tier/lease.rs `detach`): no script reads that as anyone's, its token's neither, so a renewal or
/// fenced write still in flight for the token can never bring it back under an epoch; `RELEASE` still removes it.
/// Another token's lease, one detached already, or none: left as it is. The owner key (`KEYS[2]`) no longer names
/// the token either (as after `RELEASE`), so nothing of the token's still in flight can take it back once the
/// detached lease expired.
pub(super) const DETACH: &str = "local v = redis.call('GET', KEYS[1]) \
  if v and (v == ARGV[1] or string.match(v, '^(%S+) %S+ %S+ %S+$') == ARGV[1]) then \
    redis.call('SET', KEYS[1], ARGV[1] .. ' detached', 'PX', ARGV[2]) end \
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('SET', KEYS[2], 'released', 'PX', 604800000) end return 0";
