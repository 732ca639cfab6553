//! Who should run which session: deterministic, so every worker with the same view computes the same answer.
//!
//! Rendezvous hashing weighted by capacity ranks the workers for each session (a session keeps its worker when
//! others join or leave unless the balance must change), bounded by quotas: the sessions are shared out in
//! proportion to each worker's free capacity, largest remainders first, so loads differ from the weighted even
//! share by less than one. Sessions are placed in a fixed order (by their hash), each on the best-ranked worker
//! that still has room. Pinned sessions go to their worker (if live, within its capacity); paused ones nowhere.

use std::collections::{BTreeMap, HashMap};

/// A live worker that takes sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
  pub id: String,
  pub capacity: u32,
}

/// A per-session setting stored with the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
  /// Runs only on this worker (unassigned while it is gone).
  Worker(String),
  /// Runs nowhere until unpaused.
  Paused,
}

impl Pin {
  pub fn parse(value: &[u8]) -> Option<Self> {
    let text = std::str::from_utf8(value).ok()?;
    match text.strip_prefix("worker:") {
      Some(id) if !id.is_empty() => Some(Self::Worker(id.to_owned())),
      _ => (text == "paused").then_some(Self::Paused),
    }
  }

  pub fn encode(&self) -> String {
    match self {
      Self::Worker(id) => format!("worker:{id}"),
      Self::Paused => "paused".into(),
    }
  }
}

fn hash64(parts: &[&str]) -> u64 {
  let mut hasher = blake3::Hasher::new();
  for part in parts {
    hasher.update(&(part.len() as u64).to_le_bytes());
    hasher.update(part.as_bytes());
  }
  u64::from_le_bytes(hasher.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Weighted rendezvous score: `-w / ln(u)` with `u` uniform in (0, 1) from the hash; higher wins.
fn score(session: &str, worker: &Worker) -> f64 {
  let u = ((hash64(&[session, &worker.id]) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
  -(worker.capacity.max(1) as f64) / u.ln()
}

/// Splits `n` over the weights in proportion, largest remainders first (ties by a hash of the id), never above
/// a weight: `n` must not exceed their sum.
fn quotas(n: u64, workers: &[(&Worker, u64)]) -> Vec<u64> {
  let total: u64 = workers.iter().map(|(_, w)| w).sum();
  if total == 0 {
    return vec![0; workers.len()];
  }
  let mut out: Vec<u64> = workers.iter().map(|(_, w)| n * w / total).collect();
  let mut left = n - out.iter().sum::<u64>();
  let mut order: Vec<usize> = (0..workers.len()).collect();
  order.sort_by_key(|&i| (std::cmp::Reverse(n * workers[i].1 % total), hash64(&[&workers[i].0.id])));
  for i in order {
    if left == 0 {
      break;
    }
    if out[i] < workers[i].1 {
      out[i] += 1;
      left -= 1;
    }
  }
  out
}

/// The worker each session should run on; a session absent from the answer is unassigned (paused, pinned to a
/// worker that is gone, or beyond the fleet's capacity).
pub fn assign(sessions: &[String], pins: &HashMap<String, Pin>, workers: &[Worker]) -> BTreeMap<String, String> {
  let mut out = BTreeMap::new();
  let mut load: HashMap<&str, u64> = workers.iter().map(|w| (w.id.as_str(), 0)).collect();
  let mut free = Vec::new();
  for session in sessions {
    match pins.get(session) {
      Some(Pin::Paused) => {}
      Some(Pin::Worker(id)) => {
        let room = workers.iter().find(|w| &w.id == id).is_some_and(|w| load[id.as_str()] < u64::from(w.capacity));
        if room {
          *load.get_mut(id.as_str()).expect("live") += 1;
          out.insert(session.clone(), id.clone());
        }
      }
      None => free.push(session.as_str()),
    }
  }
  let room: Vec<(&Worker, u64)> =
    workers.iter().map(|w| (w, u64::from(w.capacity).saturating_sub(load[w.id.as_str()]))).collect();
  let total_room: u64 = room.iter().map(|(_, r)| r).sum();
  let quota = quotas((free.len() as u64).min(total_room), &room);
  let mut left: HashMap<&str, u64> = room.iter().zip(&quota).map(|((w, _), q)| (w.id.as_str(), *q)).collect();
  free.sort_by_key(|s| (hash64(&[s]), *s));
  for session in free {
    let mut ranked: Vec<&Worker> = workers.iter().filter(|w| left[w.id.as_str()] > 0).collect();
    ranked.sort_by(|a, b| score(session, b).total_cmp(&score(session, a)).then_with(|| a.id.cmp(&b.id)));
    let Some(best) = ranked.first() else { break };
    *left.get_mut(best.id.as_str()).expect("ranked") -= 1;
    out.insert(session.to_owned(), best.id.clone());
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  fn workers(caps: &[u32]) -> Vec<Worker> {
    caps.iter().enumerate().map(|(i, c)| Worker { id: format!("w{i}"), capacity: *c }).collect()
  }

  fn sessions(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("RemoteAuth-s{i}")).collect()
  }

  fn loads(out: &BTreeMap<String, String>, workers: &[Worker]) -> Vec<u64> {
    workers.iter().map(|w| out.values().filter(|v| **v == w.id).count() as u64).collect()
  }

  #[test]
  fn forty_over_three_is_within_one_of_even() {
    let ws = workers(&[20, 20, 20]);
    let out = assign(&sessions(40), &HashMap::new(), &ws);
    assert_eq!(out.len(), 40);
    let mut l = loads(&out, &ws);
    l.sort();
    assert_eq!(l, [13, 13, 14]);
  }

  #[test]
  fn spread_follows_capacity_and_never_exceeds_it() {
    // A seeded sweep of fleets and session counts.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      seed % m
    };
    for _ in 0..300 {
      let caps: Vec<u32> = (0..1 + next(6)).map(|_| 1 + next(40) as u32).collect();
      let ws = workers(&caps);
      let total: u64 = caps.iter().map(|c| u64::from(*c)).sum();
      let n = next(total + 20) as usize;
      let out = assign(&sessions(n), &HashMap::new(), &ws);
      assert_eq!(out.len() as u64, (n as u64).min(total));
      for (load, w) in loads(&out, &ws).iter().zip(&ws) {
        assert!(*load <= u64::from(w.capacity));
        if (n as u64) < total {
          let even = n as f64 * f64::from(w.capacity) / total as f64;
          assert!((*load as f64 - even).abs() < 1.0, "{caps:?} n={n}: {load} vs {even}");
        }
      }
    }
  }

  #[test]
  fn every_worker_computes_the_same_answer_whatever_the_order() {
    let ws = workers(&[5, 9, 7]);
    let mut rev = ws.clone();
    rev.reverse();
    let mut s = sessions(17);
    let a = assign(&s, &HashMap::new(), &ws);
    s.reverse();
    assert_eq!(a, assign(&s, &HashMap::new(), &rev));
  }

  #[test]
  fn a_joining_worker_moves_few_sessions() {
    let before = assign(&sessions(60), &HashMap::new(), &workers(&[20, 20, 20]));
    let after = assign(&sessions(60), &HashMap::new(), &workers(&[20, 20, 20, 20]));
    let moved = before.iter().filter(|(s, w)| after.get(*s) != Some(w)).count();
    // 15 must move to the new worker; the quota change may shift a few more, never most of them.
    assert!((15..=30).contains(&moved), "{moved}");
  }

  #[test]
  fn pins_and_pauses_are_kept() {
    let ws = workers(&[10, 10]);
    let mut pins = HashMap::new();
    pins.insert("RemoteAuth-s0".to_string(), Pin::Paused);
    pins.insert("RemoteAuth-s1".to_string(), Pin::Worker("w1".into()));
    pins.insert("RemoteAuth-s2".to_string(), Pin::Worker("gone".into()));
    let out = assign(&sessions(6), &pins, &ws);
    assert!(!out.contains_key("RemoteAuth-s0") && !out.contains_key("RemoteAuth-s2"));
    assert_eq!(out["RemoteAuth-s1"], "w1");
    assert_eq!(out.len(), 4);
    assert_eq!(Pin::parse(Pin::Worker("w1".into()).encode().as_bytes()), Some(Pin::Worker("w1".into())));
    assert_eq!(Pin::parse(b"paused"), Some(Pin::Paused));
    assert_eq!(Pin::parse(b"worker:"), None);
  }
}
