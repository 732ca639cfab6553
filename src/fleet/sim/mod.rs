//! A deterministic simulation of the fleet: real workers (`worker.rs`, unchanged) over a simulated primary tier,
//! each through its own faulty view (latency, cuts that drop or refuse, crashes), with hooks that may be slow,
//! fail or hang, all on paused tokio time in one thread, so a seed replays exactly. After each run the timeline
//! is checked against the fleet's promises (`check`). `FLEET_SIM_SEEDS=n` runs n seeds, `FLEET_SIM_SEED=s` one
//! (`npm run sim:fleet` is the deep run); a failing seed prints its story, and `FLEET_SIM_TRACE=1` every call to
//! the tier as it lands (with `--nocapture`).

mod cases;
mod check;
pub(super) mod faults;
mod hooks;
mod leases;
#[cfg(test)]
mod leases_tests;
pub(crate) mod rng;
mod scenario;
pub(super) mod tier;
