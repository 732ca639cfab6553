//! The Lua scripts of the Redis tier: leases, fenced writes and conditional writes, each one atomic step.

/// Refuses (returns 0, as if held) a free lease to a token the owner key does not name while the liveness marker
/// `KEYS[4]` is missing or younger than the ttl (`ARGV[2]` ms, on the tier's clock): the marker is lost with the
/// leases (FLUSHALL, a restart without persistence, a failover to a replica without them), and a holder that
/// still runs its session renews within its ttl or stops by its own deadline (retaking the lease meanwhile, see
/// `RENEW`), so nobody else takes its session while it may still run it. A missing (or unreadable) marker is set
/// to now.
macro_rules! quarantine {
  () => {
    "if v == false and redis.call('GET', KEYS[2]) ~= ARGV[1] then local m = tonumber(redis.call('GET', KEYS[4])) \
      local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
      if not m then redis.call('SET', KEYS[4], string.format('%.0f', now)) return 0 end \
      if now - m < tonumber(ARGV[2]) then return 0 end end "
  };
}
/// Returns `{2, generation}` when the lease was free and is the token's now, `{1, generation}` when the token held
/// it already, 0 when another token holds it (or `quarantine` refused it). The generation is `KEYS[3]`'s. A new
/// holder's generation is above the last one and the tier's clock in µs (exact in Lua's doubles), so a generation
/// key that expired or was lost still gives a greater one; decimal text, since Lua would print a large number in
/// exponent form.
pub(super) const ACQUIRE: &str = concat!(
  "local v = redis.call('GET', KEYS[1]) ",
  quarantine!(),
  "if v == false or v == ARGV[1] then \
  local g = redis.call('GET', KEYS[3]) if v == false or not g then local t = redis.call('TIME') \
    g = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), (tonumber(g) or 0) + 1)) end \
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) \
  redis.call('SET', KEYS[3], g, 'PX', 604800000) if v == false then return {2, g} end return {1, g} end return 0"
);
// Released: the owner key no longer names the token, so a late renewal of it cannot take the lease back. The
// lease is the token's plain, or held under an epoch (`<token> <group> <id> <n>`, see `epoch_lease`).
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
      "local held = 0 local v = redis.call('GET', KEYS[1]) if v == ARGV[1] then held = 1 \
      redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) end ",
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
  "local held = 0 local v = redis.call('GET', KEYS[1]) \
  if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end ",
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

/// Leases held under a fleet member's epoch (tier/lease.rs `Epoch`; the epochs are kept by membership.rs `BEAT`).
/// Such a lease is `<token> <group> <id> <n>` with no expiry of its own, held while epoch `n` of member `id` of
/// `group` is alive: its heartbeat (`KEYS[$members]`, scored by expiry in ms on Redis' clock) is above `TIME`, and
/// `KEYS[$epochs]` still gives the member that epoch. A lease of another group's epoch counts as alive (its keys
/// are not this script's). `ARGV[3..5]` is the caller's hold: group, id, epoch. Defines `now`, `parse` (a lease's
/// token, then its epoch's group, id and number if it has one) and `alive`.
macro_rules! epoch_lease {
  ($members:literal, $epochs:literal) => {
    concat!(
      "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
      local function parse(v) local tok, g, id, n = string.match(v, '^(%S+) (%S+) (%S+) (%S+)$') \
        if tok then return tok, g, id, n end return v end \
      local function alive(g, id, n) if g ~= ARGV[3] then return true end \
        local s = redis.call('ZSCORE', KEYS[",
      $members,
      "], id) return s ~= false and tonumber(s) > now and redis.call('HGET', KEYS[",
      $epochs,
      "], id) == n end \
      local mine = ARGV[1] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] "
    )
  };
}
/// `ACQUIRE` under the caller's epoch (KEYS: lease, owner, generation, marker, members, epochs): a lease whose
/// epoch died is free (and, like any free lease, `quarantine`d while the marker says Redis lost its data). Taken
/// only while the caller's own epoch is alive, with no expiry: the caller's beats hold it from now on.
pub(super) const EPOCH_ACQUIRE: &str = concat!(
  epoch_lease!(5, 6),
  "if not alive(ARGV[3], ARGV[4], ARGV[5]) then return 0 end \
  local v = redis.call('GET', KEYS[1]) local tok, eg, eid, en = nil, nil, nil, nil \
  if v then tok, eg, eid, en = parse(v) if tok ~= ARGV[1] and eg and not alive(eg, eid, en) then v = false end end ",
  quarantine!(),
  "if v == false or tok == ARGV[1] then \
  local g = redis.call('GET', KEYS[3]) if v == false or not g then \
    g = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), (tonumber(g) or 0) + 1)) end \
  redis.call('SET', KEYS[1], mine) redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) \
  redis.call('SET', KEYS[3], g, 'PX', 604800000) if v == false then return {2, g} end return {1, g} end return 0"
);
/// Sets `held` as `hold` does for a lease held under an epoch (KEYS: lease, owner, session, members, epochs): 1
/// the token holds it, 2 it had expired or its epoch died and nobody took it since (the token's again), else
/// returns 0. The lease is then held under the caller's epoch while that lives, else (the caller's epoch died
/// too: its beat has not brought the next one yet) as a plain lease for the ttl (`ARGV[2]` ms), as `RENEW` would.
macro_rules! hold_in_epoch {
  () => {
    concat!(
      epoch_lease!(4, 5),
      "local held = 0 local v = redis.call('GET', KEYS[1]) local tok = nil \
      if v then local eg, eid, en = nil, nil, nil tok, eg, eid, en = parse(v) \
        if tok == ARGV[1] then held = 1 if eg and not alive(eg, eid, en) then held = 2 end end \
      else local o = redis.call('GET', KEYS[2]) if o == false or o == ARGV[1] then held = 2 end end \
      if held == 0 then return 0 end \
      if alive(ARGV[3], ARGV[4], ARGV[5]) then redis.call('SET', KEYS[1], mine) \
      else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
      redis.call('SET', KEYS[2], ARGV[1], 'PX', 604800000) "
    )
  };
}
pub(super) const EPOCH_RENEW: &str = concat!(hold_in_epoch!(), "return held");
/// ARGV 6 and 7: the bytes and the store's ttl, as `PUT_FENCED`'s 3 and 4.
pub(super) const EPOCH_PUT_FENCED: &str = concat!(hold_in_epoch!(), set_session!(3, 6, 7), "return held");
pub(super) const EPOCH_DELETE_FENCED: &str = concat!(hold_in_epoch!(), "redis.call('DEL', KEYS[3]) return held");
/// The token's lease, if held under an epoch, becomes a plain one that expires in `ARGV[2]` ms (tier/lease.rs
/// `detach`). A plain lease, another token's, or none: left as it is.
pub(super) const DETACH: &str = "local v = redis.call('GET', KEYS[1]) \
  if v and string.match(v, '^(%S+) %S+ %S+ %S+$') == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end return 0";
