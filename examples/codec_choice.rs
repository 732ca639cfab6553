//! Why the archive payload is zstd: compresses the kept directories of a profile as tar+gzip and tar+zstd at
//! several levels and prints size and time (best of 5) as a Markdown table.
//!
//! cargo run --release --example codec_choice -- <profile-dir> [<profile-dir>…]

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn tar_of_kept(root: &Path) -> Vec<u8> {
  let mut tar = tar::Builder::new(Vec::new());
  for dir in ["Default/IndexedDB", "Default/Local Storage"] {
    if root.join(dir).exists() {
      tar.append_dir_all(dir, root.join(dir)).expect("read profile");
    }
  }
  tar.into_inner().expect("tar")
}

fn best_of(mut f: impl FnMut() -> Vec<u8>) -> (Vec<u8>, Duration) {
  let mut best = Duration::MAX;
  let mut out = Vec::new();
  for _ in 0..5 {
    let start = Instant::now();
    out = f();
    best = best.min(start.elapsed());
  }
  (out, best)
}

fn main() {
  println!("| profile | kept | codec | stored | ratio | compress | decompress |");
  println!("|---|---:|---|---:|---:|---:|---:|");
  for dir in std::env::args().skip(1) {
    let tar = tar_of_kept(Path::new(&dir));
    let name = Path::new(&dir).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let row = |codec: &str, packed: Vec<u8>, c: Duration, d: Duration| {
      println!(
        "| {name} | {} KB | {codec} | {} KB | {:.1} % | {:.1} ms | {:.1} ms |",
        tar.len() / 1024,
        packed.len() / 1024,
        100.0 * packed.len() as f64 / tar.len() as f64,
        c.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e3
      )
    };
    for level in [6, 9] {
      let (gz, c) = best_of(|| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        enc.write_all(&tar).unwrap();
        enc.finish().unwrap()
      });
      let (plain, d) = best_of(|| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut out).unwrap();
        out
      });
      assert_eq!(plain, tar);
      row(&format!("tar+gzip -{level}"), gz, c, d);
    }
    for level in [3, 9, 19] {
      let (zs, c) = best_of(|| zstd::encode_all(tar.as_slice(), level).unwrap());
      let (plain, d) = best_of(|| zstd::decode_all(zs.as_slice()).unwrap());
      assert_eq!(plain, tar);
      row(&format!("tar+zstd -{level}"), zs, c, d);
    }
  }
}
