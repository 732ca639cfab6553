//! Which inflate the save path's check (`src/archive/verify.rs`) uses: zlib-rs (flate2's `zlib-rs` backend, what
//! the zip crate uses here) or miniz_oxide, streamed through a 64 KiB buffer as the check does, on session-like
//! data (LevelDB-ish records, part of it incompressible like encrypted message bodies) deflated at level 6.
//! `cargo run --example inflate_choice` (both inflates are built at opt-level 3 in the dev profile too)

use std::io::Write;
use std::time::Instant;

fn data(len: usize) -> Vec<u8> {
  let mut x = 0x2545_f491_4f6c_dd1du64;
  let mut out = Vec::with_capacity(len);
  while out.len() < len {
    let i = out.len();
    if (i / 4096) % 3 == 0 {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      out.extend_from_slice(&x.to_le_bytes());
    } else {
      out.extend_from_slice(format!("\x01key-{:06}\x00value:{}|", i % 997, i * 7919 % 104729).as_bytes());
    }
  }
  out.truncate(len);
  out
}

fn zlib_rs(packed: &[u8], buf: &mut [u8]) -> u64 {
  let mut d = flate2::Decompress::new(false);
  loop {
    let at = d.total_in() as usize;
    let status = d.decompress(&packed[at..], buf, flate2::FlushDecompress::None).unwrap();
    if status == flate2::Status::StreamEnd {
      return d.total_out();
    }
  }
}

fn miniz(packed: &[u8], buf: &mut [u8]) -> u64 {
  use miniz_oxide::inflate::stream::{inflate, InflateState};
  use miniz_oxide::{DataFormat, MZFlush, MZStatus};
  let mut state = InflateState::new_boxed(DataFormat::Raw);
  let (mut at, mut total) = (0, 0u64);
  loop {
    let r = inflate(&mut state, &packed[at..], buf, MZFlush::None);
    at += r.bytes_consumed;
    total += r.bytes_written as u64;
    if r.status == Ok(MZStatus::StreamEnd) {
      return total;
    }
    r.status.unwrap();
  }
}

fn main() {
  let raw = data(12 << 20);
  let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
  enc.write_all(&raw).unwrap();
  let packed = enc.finish().unwrap();
  let mut buf = vec![0u8; 64 * 1024];
  for (name, f) in [("zlib-rs", zlib_rs as fn(&[u8], &mut [u8]) -> u64), ("miniz_oxide", miniz)] {
    let mut best = f64::MAX;
    for _ in 0..7 {
      let start = Instant::now();
      assert_eq!(f(&packed, &mut buf), raw.len() as u64);
      best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
      "{name:12} {:7.1} MB/s of output (best of 7, {} MiB from {} KiB)",
      raw.len() as f64 / best / 1e6,
      raw.len() >> 20,
      packed.len() >> 10
    );
  }
}
