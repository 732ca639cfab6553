//! Seeded draws. A draw is keyed by what it is for (a worker, a call, a session, how many such calls before),
//! not taken from one shared stream, so two calls made at the same simulated instant get the same draws
//! whichever runs first (the worker iterates hash maps, whose order differs between processes).

/// Seeds for a sweep: env `one` (that seed alone), else env `many` (how many, from 1), else `default` of them.
pub(crate) fn seeds(one: &str, many: &str, default: u64) -> Vec<u64> {
  let env = |name| std::env::var(name).ok().and_then(|v: String| v.parse::<u64>().ok());
  match (env(one), env(many)) {
    (Some(seed), _) => vec![seed],
    (None, Some(count)) => (1..=count).collect(),
    (None, None) => (1..=default).collect(),
  }
}

/// splitmix64.
pub struct Rng(u64);

impl Rng {
  pub fn new(seed: u64) -> Self {
    Self(seed ^ 0x9e37_79b9_7f4a_7c15)
  }

  /// A stream of its own for `parts` (and `n`) under `seed`.
  pub fn keyed(seed: u64, parts: &[&str], n: u64) -> Self {
    // FNV-1a over the parts, each ended by a separator, then mixed with the seed and the count.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
      for b in part.bytes().chain([0xff]) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
      }
    }
    let mut rng = Self::new(seed ^ h.rotate_left(17) ^ n.wrapping_mul(0xa076_1d64_78bd_642f));
    rng.next();
    rng
  }

  pub fn next(&mut self) -> u64 {
    self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = self.0;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
  }

  /// Uniform in `0..n` (0 when `n` is 0).
  pub fn below(&mut self, n: u64) -> u64 {
    if n == 0 {
      0
    } else {
      self.next() % n
    }
  }

  /// Uniform in `lo..=hi`.
  pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
    lo + self.below(hi.saturating_sub(lo) + 1)
  }

  /// True with probability `per_mille` / 1000.
  pub fn chance(&mut self, per_mille: u64) -> bool {
    self.below(1000) < per_mille
  }
}

#[cfg(test)]
mod tests {
  use super::Rng;

  #[test]
  fn keyed_draws_depend_on_every_part() {
    let draw = |parts: &[&str], n| Rng::keyed(7, parts, n).next();
    assert_eq!(draw(&["a", "renew"], 0), draw(&["a", "renew"], 0));
    assert_ne!(draw(&["a", "renew"], 0), draw(&["a", "renew"], 1));
    assert_ne!(draw(&["a", "renew"], 0), draw(&["ar", "enew"], 0));
    assert_ne!(Rng::keyed(7, &["a"], 0).next(), Rng::keyed(8, &["a"], 0).next());
  }
}
