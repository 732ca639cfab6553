//! A model-based test of backups across processes (issue #26): seeded random interleavings of save, backup,
//! prune (within every backup, each store with its own retention), restore, `restoreAll`, logout, `rotate-key`
//! and `cleanup` from several stores, each standing for a process of its own (its own locks and scheduler), on
//! one primary and one bucket, through a transport that delays calls, fails bucket calls (before or after they
//! land) and so reorders calls in flight. After every round the tiers are checked against a simple model of
//! what was acknowledged (`check`).
//!
//! `BACKUP_MODEL_SEEDS=n` runs seeds 1..=n, `BACKUP_MODEL_SEED=s` one (`npm run sim:backups` is the deep run); a
//! failing seed prints its scenario and story. Saves pack real archives on tokio's blocking pool, so a seed
//! replays the same operations and transport draws, though calls landing at one instant may interleave
//! differently from run to run.

mod check;
mod model;
mod ops;
mod run;
mod world;

use ops::Op;
use run::{paused_runtime, run, Outcome, Scenario, World};

/// Seeds for a sweep: `BACKUP_MODEL_SEED` (one), else `BACKUP_MODEL_SEEDS` (how many, from 1), else `default`.
fn seeds(default: u64) -> Vec<u64> {
  crate::fleet::sim::rng::seeds("BACKUP_MODEL_SEED", "BACKUP_MODEL_SEEDS", default)
}

/// Fails with the first failing seed's scenario and story, and every failing seed's first violation.
fn assert_holds(seeds: &[u64]) {
  let one = std::env::var("BACKUP_MODEL_SEED").is_ok();
  let outcomes = seeds.iter().map(|&seed| (seed, run(seed)));
  // One seed asked for by name: its story is shown (with `--nocapture`) even when it holds.
  let outcomes = outcomes.inspect(|(seed, out)| {
    if one {
      println!("seed {seed}: {:#?}\n{}", Scenario::new(*seed), out.story.join("\n"));
    }
  });
  let failed: Vec<(u64, Outcome)> = outcomes.filter(|(_, out)| !out.violations.is_empty()).collect();
  let Some((seed, first)) = failed.first() else { return };
  let summary: Vec<String> = failed.iter().map(|(s, o)| format!("seed {s}: {}", o.violations[0])).collect();
  panic!(
    "{} of {} seeds broke a promise:\n{}\n\nseed {seed}: {:#?}\n{}\n\nviolations:\n{}\n\nreplay: BACKUP_MODEL_SEED={seed} cargo test --lib backup_model",
    failed.len(),
    seeds.len(),
    summary.join("\n"),
    Scenario::new(*seed),
    first.story.join("\n"),
    first.violations.join("\n")
  );
}

#[test]
fn backups_keep_their_promises_over_seeded_interleavings() {
  assert_holds(&seeds(30));
}

/// The seeds that found bugs, fixed since: a restore's write-back racing a logout (40), a logout before the first
/// backup landed (23), a scheduler undoing a raced backup by deleting a later login's versions too (725), a late backup named after a
/// version whose header did not answer, past a logout's mark (1426).
#[test]
fn the_seeds_that_found_bugs_hold() {
  assert_holds(&[23, 40, 725, 1426]);
}

/// The checks themselves: a logged-out session whose old copy is put back in the primary behind the store's back
/// (what a write-back racing the logout did before it looked for the mark) is caught, as is an older save there.
#[test]
fn the_checks_catch_a_logout_that_comes_back_and_an_older_save() {
  let mut scenario = Scenario::new(1);
  for store in &mut scenario.stores {
    (store.every_save, store.error_per_mille) = (true, 0);
  }
  paused_runtime().block_on(async {
    let world = World::new(&scenario);
    world.run_op(1, Op::Save { store: 0, session: 0 }).await;
    let first = world.primary.get("s0").expect("saved");
    world.run_op(2, Op::Save { store: 1, session: 0 }).await;
    world.check("two saves").await;
    assert_eq!(world.violations(), Vec::<String>::new());
    world.primary.sessions.lock().unwrap().insert("s0".into(), first.clone());
    world.check("an older save put back").await;
    assert!(world.violations().iter().any(|v| v.contains("not the newest acknowledged")), "{:?}", world.violations());
    world.run_op(3, Op::Logout { store: 0, session: 0 }).await;
    world.primary.sessions.lock().unwrap().insert("s0".into(), first);
    world.check("the logged-out copy put back").await;
    let violations = world.violations();
    assert!(violations.iter().any(|v| v.contains("is back after the logout")), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("yet sessionExists says Ok(true)")), "{violations:?}");
  });
}
