//! The simulated primary's epoch rules, against the Redis scripts' (src/tier/redis/scripts.rs): what every
//! simulated schedule relies on for its leases and for the invariants' `granted_until`.

use std::time::Duration;

use tokio::time::{advance, Instant};

use super::tier::SimTier;
use crate::session::SessionKey;
use crate::tier::{Epoch, Hold, LeaseState};

const TTL: Duration = Duration::from_millis(1000);
const MS: fn(u64) -> Duration = Duration::from_millis;

fn key(name: &str) -> SessionKey {
  SessionKey::parse(&format!("RemoteAuth-{name}")).unwrap()
}

/// Beats `id` for `TTL`: its epoch.
fn beat(sim: &SimTier, id: &str) -> u64 {
  sim.beat("g", id, &format!("claim-{id}"), b"{}", TTL).unwrap().epoch.expect("the simulated tier carries epochs")
}

/// A hold under epoch `n` of `id` (its ttl, for what the epoch no longer carries, shorter than the heartbeat's).
fn under(id: &str, n: u64) -> Hold {
  Hold { ttl: MS(300), epoch: Some(Epoch { group: "g".into(), id: id.into(), n }) }
}

#[tokio::test(start_paused = true)]
async fn a_lease_under_a_live_epoch_is_held_by_the_beats_alone() {
  let sim = SimTier::default();
  let n = beat(&sim, "w");
  assert_eq!(sim.acquire(&key("a"), "t", &under("w", n)), Some(1));
  for _ in 0..5 {
    // Far past the hold's own ttl and the first heartbeat's: no renewal, only beats.
    advance(MS(800)).await;
    assert_eq!(beat(&sim, "w"), n, "a live member keeps its epoch");
    assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"));
  }
  // Each beat carried the lease as far as the heartbeat reaches.
  assert_eq!(sim.granted_until("t"), Some(Instant::now() + TTL));
  // Taking it again keeps its generation; renewing finds it held.
  assert_eq!(sim.acquire(&key("a"), "t", &under("w", n)), Some(1));
  assert_eq!(sim.renew(&key("a"), "t", &under("w", n)), LeaseState::Held);
  // Another member, live, is refused.
  let m = beat(&sim, "v");
  assert_eq!(sim.acquire(&key("a"), "u", &under("v", m)), None);
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_free_once_its_epochs_heartbeat_ran_out() {
  let sim = SimTier::default();
  let n = beat(&sim, "w");
  sim.acquire(&key("a"), "t", &under("w", n)).unwrap();
  let m = beat(&sim, "v");
  advance(TTL - MS(1)).await;
  beat(&sim, "v");
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"));
  advance(MS(1)).await;
  // The heartbeat's expiry is not after now: dead, though nothing swept it yet.
  assert_eq!(sim.holder("RemoteAuth-a"), None);
  assert_eq!(sim.granted_until("t"), Some(Instant::now()));
  // Free to a live epoch, with a new generation; the old token's fenced write is then lost.
  assert_eq!(sim.acquire(&key("a"), "u", &under("v", m)), Some(2));
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("u"));
  assert_eq!(sim.put_fenced(&key("a"), b"late".to_vec(), "t", &under("w", n)), LeaseState::Lost);
  assert_eq!(sim.get(&key("a")), None);
  // A take under a dead epoch is refused, free lease or not.
  assert_eq!(sim.acquire(&key("b"), "t", &under("w", n)), None);
}

#[tokio::test(start_paused = true)]
async fn an_epoch_that_died_never_lives_again() {
  let sim = SimTier::default();
  let n = beat(&sim, "w");
  sim.acquire(&key("a"), "t", &under("w", n)).unwrap();
  sim.acquire(&key("b"), "s", &under("w", n)).unwrap();
  advance(TTL).await;
  let next = beat(&sim, "w");
  assert!(next > n, "a member whose heartbeat ran out starts a new epoch: {next} after {n}");
  advance(MS(500)).await;
  assert_eq!(beat(&sim, "w"), next);
  assert_eq!(sim.holder("RemoteAuth-a"), None, "the new epoch's beats carry nothing of the old one");
  assert_eq!(sim.holder("RemoteAuth-b"), None);
  assert_eq!(sim.acquire(&key("c"), "t", &under("w", n)), None, "nothing is taken under the old epoch");
  // Its own token takes it back under the new one (nobody took it since), as `hold_in_epoch`: retaken.
  assert_eq!(sim.renew(&key("a"), "t", &under("w", next)), LeaseState::Retaken);
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"));
  assert_eq!(sim.renew(&key("a"), "t", &under("w", next)), LeaseState::Held);
  // Leaving drops the epoch with the heartbeat: its leases are free at once (not a leave under another claim).
  sim.leave("g", "w", "a later instance's claim");
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"));
  sim.leave("g", "w", "claim-w");
  assert_eq!(sim.holder("RemoteAuth-a"), None);
  assert!(beat(&sim, "w") > next);
}

#[tokio::test(start_paused = true)]
async fn a_detached_lease_expires_after_its_ttl_while_the_epoch_lives() {
  let sim = SimTier::default();
  let n = beat(&sim, "w");
  let generation = sim.acquire(&key("a"), "t", &under("w", n)).unwrap();
  advance(MS(100)).await;
  sim.detach(&key("a"), "t", MS(300));
  // Another token's detach, or a plain lease's, changes nothing.
  sim.detach(&key("a"), "u", MS(5000));
  let detached = Instant::now();
  for _ in 0..2 {
    advance(MS(149)).await;
    beat(&sim, "w");
    assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"), "held for its ttl from the detach");
  }
  advance(MS(2)).await;
  beat(&sim, "w");
  assert_eq!(sim.holder("RemoteAuth-a"), None, "the beats no longer carry it");
  // The furthest it reached: the heartbeat as of the take, or the detach's ttl, whichever is later.
  assert_eq!(sim.granted_until("t"), Some((detached - MS(100) + TTL).max(detached + MS(300))));
  let m = beat(&sim, "v");
  assert_eq!(sim.acquire(&key("a"), "u", &under("v", m)), Some(generation + 1));
}

#[tokio::test(start_paused = true)]
async fn plain_callers_see_a_live_epoch_lease_as_another_tokens() {
  let sim = SimTier::default();
  let n = beat(&sim, "w");
  sim.acquire(&key("a"), "t", &under("w", n)).unwrap();
  let plain = Hold::ttl(TTL);
  // Another token's plain calls find it held by another: ACQUIRE refuses it, RENEW and the fenced writes lose.
  assert_eq!(sim.acquire(&key("a"), "u", &plain), None);
  assert_eq!(sim.renew(&key("a"), "u", &plain), LeaseState::Lost);
  assert_eq!(sim.delete_fenced(&key("a"), "u", &plain), LeaseState::Lost);
  // Its own token's plain calls find it held, and leave it under the epoch (`SafeRemoteAuth.forFleet` taking it
  // again while the fleet moved it there): past the plain ttl it is still held, by the beats.
  assert_eq!(sim.acquire(&key("a"), "t", &plain), Some(1));
  assert_eq!(sim.renew(&key("a"), "t", &plain), LeaseState::Held);
  advance(TTL / 2).await;
  assert_eq!(beat(&sim, "w"), n);
  advance(TTL * 3 / 4).await;
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"));
  // A release frees either form; the token cannot take it back then.
  sim.release(&key("a"), "t");
  assert_eq!(sim.acquire(&key("a"), "u", &plain), Some(2));
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("u"));
  sim.release(&key("a"), "u");
  // Once its epoch died, a lease under it is free to a plain take too (every script reads it as absent): a dead
  // worker's leases never block the CLI or a SafeRemoteAuth lease.
  sim.acquire(&key("b"), "t", &under("w", n)).unwrap();
  advance(TTL).await;
  assert_eq!(sim.acquire(&key("b"), "u", &plain), Some(2));
  let m = beat(&sim, "w");
  assert_eq!(sim.renew(&key("a"), "u", &under("w", m)), LeaseState::Lost);
}

#[tokio::test(start_paused = true)]
async fn a_plain_lease_moves_onto_an_epoch_and_back_off_a_dead_one() {
  let sim = SimTier::default();
  sim.acquire(&key("a"), "t", &Hold::ttl(MS(200))).unwrap();
  let n = beat(&sim, "w");
  // The token's plain lease is kept (same generation) and held under the epoch from now on.
  assert_eq!(sim.acquire(&key("a"), "t", &under("w", n)), Some(1));
  advance(MS(900)).await;
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"));
  // Its epoch dies, and the holder's is dead too: a renewal keeps it as a plain lease for the hold's ttl.
  advance(MS(100)).await;
  assert_eq!(sim.renew(&key("a"), "t", &under("w", n)), LeaseState::Retaken);
  assert_eq!(sim.granted_until("t"), Some(Instant::now() + MS(300)));
  advance(MS(299)).await;
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some("t"));
  advance(MS(1)).await;
  assert_eq!(sim.holder("RemoteAuth-a"), None);
}

#[tokio::test(start_paused = true)]
async fn a_lax_tier_grants_a_lease_another_live_epoch_holds() {
  let sim = SimTier::with_sessions(&[], true);
  let n = beat(&sim, "w");
  let m = beat(&sim, "v");
  sim.acquire(&key("a"), "t", &under("w", n)).unwrap();
  assert_eq!(sim.acquire(&key("a"), "u", &under("v", m)), Some(2), "the broken tier the checks must catch");
  assert_eq!(sim.granted_until("t"), Some(Instant::now() + TTL), "the first holder's grant still counts");
}

/// The store over it (the fleet's path: `Store::take_lease`, `hold_lease`, `abandon_lease`, `detach_unbacked`),
/// with calls held in flight as by a proxy and landing after their callers gave up on them: no call that lands
/// late leaves a lease under a live epoch that its worker no longer backs (the simulation's seeds 1004 and 1045
/// of every class, when a take went under the epoch at once and landed after the detach meant for it).
#[tokio::test(start_paused = true)]
async fn a_call_landing_late_never_leaves_a_lease_under_the_epoch() {
  use super::faults::{Faults, FaultyTier};
  let sim = std::sync::Arc::new(SimTier::default());
  let faults = std::sync::Arc::new(Faults::new(1, "w", MS(2), 0, MS(2)));
  let store = super::scenario::store_over(FaultyTier { sim: sim.clone(), faults: faults.clone() });
  let n = beat(&sim, "w");
  let beats = |times: u64| {
    let sim = sim.clone();
    async move {
      for _ in 0..times {
        advance(MS(100)).await;
        beat(&sim, "w");
      }
    }
  };

  // A take whose caller gave up lands after the beat's detaches: a fresh take is plain, so it runs out after its
  // ttl though the epoch lives on.
  faults.hold_from("acquire");
  assert!(tokio::time::timeout(MS(50), store.take_lease("RemoteAuth-b", MS(300))).await.is_err());
  store.detach_unbacked().await.unwrap();
  faults.release();
  tokio::time::sleep(MS(10)).await;
  assert!(sim.holder("RemoteAuth-b").is_some(), "the take landed");
  beats(4).await;
  assert_eq!(sim.holder("RemoteAuth-b"), None, "a plain lease: its ttl ran out while the epoch lives");

  // A take moved onto the epoch is held by the beats alone.
  let (token, _) = store.take_lease("RemoteAuth-a", MS(300)).await.unwrap();
  assert_eq!(store.hold_lease("RemoteAuth-a", &token, under("w", n)).await.unwrap(), LeaseState::Held);
  beats(10).await;
  assert_eq!(sim.holder("RemoteAuth-a").as_deref(), Some(token.as_str()), "held past its ttl, by the beats");

  // A move still in flight when the lease is given up lands after the detach: it finds the lease detached (held
  // by nobody, its token neither), so the epoch never holds it again, and it runs out after its ttl.
  let (token, _) = store.take_lease("RemoteAuth-c", MS(300)).await.unwrap();
  faults.hold_from("renew");
  let moving = tokio::spawn({
    let (store, token) = (store.clone(), token.clone());
    async move { store.hold_lease("RemoteAuth-c", &token, under("w", n)).await }
  });
  tokio::time::sleep(MS(10)).await;
  store.abandon_lease("RemoteAuth-c", &token).unwrap();
  let detach = tokio::spawn({
    let store = store.clone();
    async move { store.detach_unbacked().await }
  });
  tokio::time::sleep(MS(10)).await;
  faults.release();
  detach.await.unwrap().unwrap();
  moving.await.unwrap().unwrap(); // landed first, then the detach behind it
  beats(4).await;
  assert_eq!(sim.holder("RemoteAuth-c"), None, "detached: its ttl ran out though the epoch lives");
  // The other order (a move on another connection, landing after the detach): the detached lease is nobody's,
  // its token's neither.
  assert!(sim.acquire(&key("d"), "t", &Hold::ttl(MS(300))).is_some());
  sim.detach(&key("d"), "t", MS(300));
  assert_eq!(sim.renew(&key("d"), "t", &under("w", n)), LeaseState::Lost, "detached: not its token's either");
  assert_eq!(sim.acquire(&key("d"), "t", &under("w", n)), None, "nor taken by it while it lasts");
  beats(4).await;
  assert_eq!(sim.holder("RemoteAuth-d"), None, "its ttl ran out though the epoch lives");
  // Nor once it expired: the detach released the token as last owner, so a call of it landing even later
  // cannot take it back (under the epoch for good).
  assert_eq!(sim.renew(&key("d"), "t", &under("w", n)), LeaseState::Lost, "expired, and still not its token's");
  assert_eq!(sim.holder("RemoteAuth-d"), None);
}
