//! `/healthz` and `/readyz` for orchestrators, on the metrics port. Liveness says the process and its runtime
//! answer (never that a tier is down: restarting the process would not bring Redis back). Readiness says this
//! store can do its work now: the primary answers a read within `READY_TIMEOUT`, and a fleet worker joined through
//! it is connected and not leaving.

use std::time::Duration;

use super::Exporter;

/// How long `/readyz` waits for the primary: short, so a probe with `timeoutSeconds: 3` always gets an answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

impl Exporter {
  /// `Ok` when ready, else a short reason for the 503's body.
  pub async fn readiness(&self, budget: Duration) -> Result<(), String> {
    let probes = self.store.probe(budget).await;
    match probes.iter().find(|(_, role, _)| *role == "primary") {
      Some((_, _, true)) => {}
      Some((tier, _, false)) => return Err(format!("the primary tier ({tier}) did not answer within {budget:?}")),
      None => return Err("the store has no primary tier".into()),
    }
    match self.store.counters().fleet() {
      Some(fleet) if !fleet.connected => Err(format!("fleet worker {} has not reached Redis", fleet.worker)),
      Some(fleet) if fleet.draining => Err(format!("fleet worker {} is draining", fleet.worker)),
      _ => Ok(()),
    }
  }
}
