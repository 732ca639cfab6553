//! The keys of a LevelDB table (`.ldb`), for `login`: a login key that sits only in a compressed table is
//! invisible to a byte search, because blocks are Snappy-compressed and keys share their prefix with the key
//! before them. Format: leveldb `doc/table_format.md` (footer → index block → data blocks; each block's entries
//! are `shared, non_shared, value_len` varints, the key's new bytes, the value; a 5-byte trailer after each block
//! says whether it is Snappy-compressed). A table that does not parse yields the keys read so far.

const FOOTER: usize = 48;
const MAGIC: [u8; 8] = 0xdb47_7524_8b80_fb57u64.to_le_bytes();

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
  let mut value = 0u64;
  for shift in (0..64).step_by(7) {
    let b = *bytes.get(*at)?;
    *at += 1;
    value |= u64::from(b & 0x7f) << shift;
    if b & 0x80 == 0 {
      return Some(value);
    }
  }
  None
}

/// The block a handle (`offset`, `size` varints) names, decompressed.
fn block(table: &[u8], handle: &[u8], at: &mut usize) -> Option<Vec<u8>> {
  let offset = usize::try_from(varint(handle, at)?).ok()?;
  let size = usize::try_from(varint(handle, at)?).ok()?;
  let end = offset.checked_add(size)?;
  let raw = table.get(offset..end)?;
  match table.get(end)? {
    0 => Some(raw.to_vec()),
    1 => snap::raw::Decoder::new().decompress_vec(raw).ok(),
    _ => None, // zstd (newer LevelDB builds) or damage: not read
  }
}

/// Each entry of a block: (whole key, value).
fn entries(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
  let mut out = Vec::new();
  let Some(count) = block.len().checked_sub(4).and_then(|at| block.get(at..)) else { return out };
  let restarts = u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize;
  let Some(end) = restarts.checked_mul(4).and_then(|r| block.len().checked_sub(4 + r)) else { return out };
  let (mut at, mut key) = (0, Vec::new());
  while at < end {
    let (Some(shared), Some(fresh), Some(len)) =
      (varint(block, &mut at), varint(block, &mut at), varint(block, &mut at))
    else {
      break;
    };
    let (shared, fresh, len) = (shared as usize, fresh as usize, len as usize);
    let Some(tail) = at.checked_add(fresh).and_then(|k| block.get(at..k)) else { break };
    if shared > key.len() {
      break;
    }
    key.truncate(shared);
    key.extend_from_slice(tail);
    at += fresh;
    let Some(value) = at.checked_add(len).and_then(|v| block.get(at..v)) else { break };
    out.push((key.clone(), value.to_vec()));
    at += len;
  }
  out
}

/// True when any key of the table (its user key: the internal key without its 8-byte sequence and type) holds
/// one of `markers`.
pub fn any_key_holds(table: &[u8], markers: &[&[u8]]) -> bool {
  if table.len() < FOOTER || table[table.len() - 8..] != MAGIC {
    return false;
  }
  let footer = &table[table.len() - FOOTER..];
  let mut at = 0;
  let (Some(_meta_offset), Some(_meta_size)) = (varint(footer, &mut at), varint(footer, &mut at)) else { return false };
  let Some(index) = block(table, footer, &mut at) else { return false };
  entries(&index).iter().any(|(_, handle)| {
    let Some(data) = block(table, handle, &mut 0) else { return false };
    entries(&data).iter().any(|(key, _)| {
      let user_key = &key[..key.len().saturating_sub(8)];
      markers.iter().any(|m| user_key.windows(m.len()).any(|w| w == *m))
    })
  })
}

#[cfg(test)]
pub(crate) mod tests {
  use super::*;

  const TRAILER: usize = 5;

  fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
      out.push((v as u8) | 0x80);
      v >>= 7;
    }
    out.push(v as u8);
  }

  /// A block of `entries` (key, value), prefix-compressed against the key before, one restart.
  fn block_of(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut last): (Vec<u8>, &[u8]) = (Vec::new(), &[]);
    for (key, value) in entries {
      let shared = key.iter().zip(last).take_while(|(a, b)| a == b).count();
      put_varint(&mut out, shared as u64);
      put_varint(&mut out, (key.len() - shared) as u64);
      put_varint(&mut out, value.len() as u64);
      out.extend_from_slice(&key[shared..]);
      out.extend_from_slice(value);
      last = key;
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out
  }

  /// A table of one Snappy-compressed data block holding `user_keys`, as LevelDB writes one.
  pub(crate) fn table_of(user_keys: &[&[u8]]) -> Vec<u8> {
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
      user_keys.iter().map(|k| ([*k, &[1, 0, 0, 0, 0, 0, 0, 0][..]].concat(), b"\x01\"v\"".to_vec())).collect();
    let data = snap::raw::Encoder::new().compress_vec(&block_of(&entries)).unwrap();
    let mut table = data.clone();
    table.extend_from_slice(&[1, 0, 0, 0, 0]);
    let (meta_at, meta) = (table.len(), block_of(&[]));
    table.extend_from_slice(&meta);
    table.extend_from_slice(&[0; TRAILER]);
    let mut handle = Vec::new();
    put_varint(&mut handle, 0);
    put_varint(&mut handle, data.len() as u64);
    // LevelDB's separator after the last block: the shortest key after it (`FindShortSuccessor`).
    let (index_at, index) = (table.len(), block_of(&[(b"`".to_vec(), handle)]));
    table.extend_from_slice(&index);
    table.extend_from_slice(&[0; TRAILER]);
    let mut footer = Vec::new();
    for v in [meta_at, meta.len(), index_at, index.len()] {
      put_varint(&mut footer, v as u64);
    }
    footer.resize(40, 0);
    footer.extend_from_slice(&MAGIC);
    table.extend_from_slice(&footer);
    table
  }

  #[test]
  fn a_key_split_by_prefix_sharing_in_a_compressed_block_is_found() {
    let origin = b"_https://web.whatsapp.com\x00\x01";
    let keys: Vec<Vec<u8>> =
      ["WABrowserId", "last-wid", "last-wid-md"].iter().map(|k| [&origin[..], k.as_bytes()].concat()).collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let table = table_of(&refs);
    assert!(!table.windows(11).any(|w| w == b"last-wid-md"), "the key is not in the file's bytes");
    assert!(any_key_holds(&table, &[b"last-wid-md"]));
    assert!(!any_key_holds(&table_of(&refs[..1]), &[b"last-wid"]));
    for cut in [0, 10, table.len() / 2, table.len() - 1] {
      assert!(!any_key_holds(&table[..cut], &[b"last-wid-md"]), "a cut table reads as no login, never a panic");
    }
  }
}
