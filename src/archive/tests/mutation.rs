//! Seeded mutation test of the save path (issue 19): zips mutated at random (bytes of data, CRCs, sizes,
//! offsets, names, extra fields, methods; truncated; names made equal), then packed. Every outcome is a coded
//! error (never `ERR_INTERNAL`), or an archive whose extract holds exactly the files the zip really holds (read
//! independently, through the zip crate's own CRC-checked reader). `FUZZ_CASES` / `FUZZ_SEED` for long runs
//! (`npm run fuzz`); a case found becomes a fixed input in `REGRESSIONS`.

use std::collections::BTreeMap;

use super::*;

/// Seeds that once found a bug, run first on every run.
/// 7024787: a folder by its mode, a file by its name (a '/' mutated away).
const REGRESSIONS: &[u64] = &[7_024_787];

struct Rng(u64);

impl Rng {
  fn next(&mut self) -> u64 {
    // splitmix64
    self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = self.0;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
  }
  fn below(&mut self, n: usize) -> usize {
    (self.next() % n.max(1) as u64) as usize
  }
}

fn u16_at(b: &[u8], i: usize) -> usize {
  b.get(i..i + 2).map_or(0, |f| usize::from(u16::from_le_bytes([f[0], f[1]])))
}

fn signatures(zip: &[u8], sig: &[u8; 4]) -> Vec<usize> {
  (0..zip.len().saturating_sub(4)).filter(|&i| &zip[i..i + 4] == sig).collect()
}

/// One mutation of `zip`, chosen by `rng`.
fn mutate(zip: &mut Vec<u8>, rng: &mut Rng) {
  let locals: Vec<usize> = signatures(zip, b"PK\x03\x04").into_iter().filter(|&i| i + 30 <= zip.len()).collect();
  let centrals: Vec<usize> = signatures(zip, b"PK\x01\x02").into_iter().filter(|&i| i + 46 <= zip.len()).collect();
  let pick = |rng: &mut Rng, v: &[usize]| v.get(rng.below(v.len())).copied();
  let len = zip.len();
  match rng.below(10) {
    0 => {
      let at = rng.below(len);
      zip[at] ^= 1 << rng.below(8);
    }
    1 => {
      // In some entry's data.
      if let Some(l) = pick(rng, &locals) {
        let start = l + 30 + u16_at(zip, l + 26) + u16_at(zip, l + 28);
        if start < len {
          let at = start + rng.below((len - start).min(2000));
          zip[at] = rng.next() as u8;
        }
      }
    }
    2 => {
      // A CRC, local (14) or central (16).
      let (at, off) = if rng.below(2) == 0 { (pick(rng, &locals), 14) } else { (pick(rng, &centrals), 16) };
      if let Some(at) = at {
        zip[at + off + rng.below(4)] ^= 1 << rng.below(8);
      }
    }
    3 => {
      // A size: local 18/22, central 20/24.
      let (at, off) = if rng.below(2) == 0 {
        (pick(rng, &locals), 18 + 4 * rng.below(2))
      } else {
        (pick(rng, &centrals), 20 + 4 * rng.below(2))
      };
      if let Some(at) = at {
        let value = match rng.below(3) {
          0 => rng.next() as u32,
          1 => u32::from_le_bytes(zip[at + off..at + off + 4].try_into().unwrap())
            .wrapping_add(rng.below(9) as u32)
            .wrapping_sub(4),
          _ => 0,
        };
        zip[at + off..at + off + 4].copy_from_slice(&value.to_le_bytes());
      }
    }
    4 => {
      // A local header offset in the directory (42).
      if let Some(at) = pick(rng, &centrals) {
        let old = u32::from_le_bytes(zip[at + 42..at + 46].try_into().unwrap());
        let value = old.wrapping_add(rng.below(64) as u32).wrapping_sub(32);
        zip[at + 42..at + 46].copy_from_slice(&value.to_le_bytes());
      }
    }
    5 => {
      // A byte of a name, local or central.
      let (at, name_at) = if rng.below(2) == 0 { (pick(rng, &locals), 30) } else { (pick(rng, &centrals), 46) };
      if let Some(at) = at {
        let n = u16_at(zip, at + if name_at == 30 { 26 } else { 28 });
        if n > 0 && at + name_at + n <= len {
          zip[at + name_at + rng.below(n)] = [b'/', b'.', b'\\', b':', 0, b'x', 0xff][rng.below(7)];
        }
      }
    }
    6 => {
      // An extra field length, local (28) or central (30).
      let (at, off) = if rng.below(2) == 0 { (pick(rng, &locals), 28) } else { (pick(rng, &centrals), 30) };
      if let Some(at) = at {
        zip[at + off..at + off + 2].copy_from_slice(&(rng.below(40) as u16).to_le_bytes());
      }
    }
    7 => zip.truncate(rng.below(len).max(1)),
    8 => {
      // The method, local (8) or central (10): stored, deflated, or something else.
      let (at, off) = if rng.below(2) == 0 { (pick(rng, &locals), 8) } else { (pick(rng, &centrals), 10) };
      if let Some(at) = at {
        zip[at + off..at + off + 2].copy_from_slice(&[0u16, 8, 12, 99][rng.below(4)].to_le_bytes());
      }
    }
    _ => {
      // Two central names of one length made equal (a duplicate entry).
      let (a, b) = (pick(rng, &centrals), pick(rng, &centrals));
      if let (Some(a), Some(b)) = (a, b) {
        let (na, nb) = (u16_at(zip, a + 28), u16_at(zip, b + 28));
        if a != b && na == nb && a + 46 + na <= len && b + 46 + nb <= len {
          let name = zip[a + 46..a + 46 + na].to_vec();
          zip[b + 46..b + 46 + nb].copy_from_slice(&name);
        }
      }
    }
  }
}

/// What the zip really holds of the kept folders, read by the zip crate (CRC-checked): `None` when a kept entry
/// cannot be read whole, so a save must have refused it.
fn really_holds(zip: &[u8]) -> Option<BTreeMap<String, Vec<u8>>> {
  let keep = default_keep();
  let mut reader = zip::ZipArchive::new(Cursor::new(zip)).ok()?;
  let mut out = BTreeMap::new();
  for i in 0..reader.len() {
    let mut file = reader.by_index(i).ok()?;
    let name = file.name().ok()?.into_owned();
    let Ok(entry) = EntryPath::parse(&name) else { return None };
    if !entry.is_kept(&keep) || file.is_dir() {
      continue;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    out.insert(entry.path, bytes);
  }
  Some(out)
}

fn extracted(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
  let zip = unpack(archive).expect("an accepted save extracts");
  let mut reader = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
  let mut out = BTreeMap::new();
  for i in 0..reader.len() {
    let mut file = reader.by_index(i).unwrap();
    let name = file.name().unwrap().into_owned();
    if file.is_dir() || name == PAD_NAME {
      continue;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    out.insert(name, bytes);
  }
  out
}

/// Names, sizes and CRCs: what a failure prints.
fn summary(files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, usize, u32)> {
  files.iter().map(|(name, bytes)| (name.clone(), bytes.len(), crc32fast::hash(bytes))).collect()
}

fn env(name: &str, default: u64) -> u64 {
  std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn inputs() -> Vec<Vec<u8>> {
  let small: Vec<Item> = (0..6).map(|_| Item::Dir("Default/")).take(1).collect();
  let mut many = small;
  let names: Vec<String> = (0..12).map(|i| format!("Default/IndexedDB/db/{i:03}.log")).collect();
  let bodies: Vec<Vec<u8>> = (0..12).map(|i| log_like(20 + i * 37)).collect();
  many.push(Item::Dir("Default/IndexedDB/"));
  for (n, b) in names.iter().zip(&bodies) {
    many.push(Item::File(n, 0o600, b));
  }
  vec![session_zip(), make_zip(&many)]
}

#[test]
fn mutated_zips_are_refused_with_a_code_or_stored_exactly() {
  let cases = env("FUZZ_CASES", 3000);
  let seed = env("FUZZ_SEED", 19);
  let inputs = inputs();
  let (mut accepted, mut refused) = (0u64, 0u64);
  let seeds = REGRESSIONS.iter().copied().chain((0..cases).map(|i| seed.wrapping_mul(1_000_003).wrapping_add(i)));
  for case in seeds {
    let mut rng = Rng(case);
    let mut zip = inputs[rng.below(inputs.len())].clone();
    for _ in 0..1 + rng.below(3) {
      if !zip.is_empty() {
        mutate(&mut zip, &mut rng);
      }
    }
    match pack(&zip) {
      Err(err) => {
        assert_ne!(err.code(), "ERR_INTERNAL", "case {case}: {err}");
        refused += 1;
      }
      Ok(packed) => {
        let expected =
          really_holds(&zip).unwrap_or_else(|| panic!("case {case}: accepted a zip that does not read whole"));
        assert_eq!(summary(&extracted(&packed.bytes)), summary(&expected), "case {case}");
        accepted += 1;
      }
    }
  }
  assert!(accepted > 0 && refused > 0, "both outcomes seen: {accepted} accepted, {refused} refused");
}
