//! What a value another RemoteAuth store wrote is: a RemoteAuth zip, possibly gzipped, base64-encoded or inside
//! JSON (nested in any order, a few layers deep). Anything else is refused with what it looked like. `import` reads
//! other stores' values with it, and the store reads the values another store left under its own keys (the
//! hand-written Redis store's `wa:session:<id>`) with it.

use std::io::Read;

use base64::Engine;
use serde_json::Value;

use crate::error::{Result, StoreError};

/// Layers of gzip / base64 / JSON around a zip that are unwrapped; more is not a session store's doing.
const MAX_LAYERS: usize = 4;

/// The zip inside `value`, and how it was wrapped (`gzip(zip)`, `json(base64(zip))`, …). Nothing decoded grows
/// past `max_bytes`.
pub fn unwrap_zip(value: Vec<u8>, max_bytes: u64) -> Result<(Vec<u8>, String)> {
  unwrap(value, max_bytes, 0)
}

fn unwrap(value: Vec<u8>, max_bytes: u64, depth: usize) -> Result<(Vec<u8>, String)> {
  if value.starts_with(b"PK\x03\x04") || value.starts_with(b"PK\x05\x06") {
    return Ok((value, "zip".into()));
  }
  if depth >= MAX_LAYERS {
    return Err(StoreError::ImportFormat(format!("more than {MAX_LAYERS} layers of gzip / base64 / JSON")));
  }
  let wrap =
    |inner: Result<(Vec<u8>, String)>, layer: &str| inner.map(|(zip, shape)| (zip, format!("{layer}({shape})")));
  if value.starts_with(&[0x1f, 0x8b]) {
    let inner = gunzip(&value, max_bytes)?;
    return wrap(unwrap(inner, max_bytes, depth + 1), "gzip").map_err(|e| within("gzip", e));
  }
  let text = value.trim_ascii();
  if text.starts_with(b"{") || text.starts_with(b"[") || text.starts_with(b"\"") {
    if let Ok(json) = serde_json::from_slice::<Value>(text) {
      return wrap(from_json(&json, max_bytes, depth), "json");
    }
  }
  if let Some(decoded) = base64_of(text) {
    return wrap(unwrap(decoded, max_bytes, depth + 1), "base64").map_err(|e| within("base64", e));
  }
  let head: Vec<String> = value.iter().take(4).map(|b| format!("{b:02x}")).collect();
  Err(StoreError::ImportFormat(format!(
    "{} bytes starting {}: not a zip (50 4b), gzip (1f 8b), base64 or JSON",
    value.len(),
    if head.is_empty() { "with nothing".into() } else { head.join(" ") }
  )))
}

/// Says which layer a refusal was found under.
fn within(layer: &str, err: StoreError) -> StoreError {
  match err {
    StoreError::ImportFormat(m) => StoreError::ImportFormat(format!("{layer} of: {m}")),
    StoreError::ImportNoLogin(m) => StoreError::ImportNoLogin(format!("{layer} of {m}")),
    other => other,
  }
}

fn gunzip(value: &[u8], max_bytes: u64) -> Result<Vec<u8>> {
  let mut out = Vec::new();
  let mut reader = flate2::read::MultiGzDecoder::new(value).take(max_bytes.saturating_add(1));
  reader.read_to_end(&mut out).map_err(|e| StoreError::ImportFormat(format!("gzip data is damaged: {e}")))?;
  if out.len() as u64 > max_bytes {
    return Err(StoreError::ArchiveLimit(format!("gzip value unpacks to more than {max_bytes} bytes")));
  }
  Ok(out)
}

/// Standard or URL-safe base64, with or without padding or line breaks; `None` if the text is not that.
fn base64_of(text: &[u8]) -> Option<Vec<u8>> {
  use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
  if text.len() < 8 {
    return None;
  }
  let clean: Vec<u8> = text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
  let chars = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
  if !clean.iter().all(chars) {
    return None;
  }
  [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(&clean).ok())
}

/// The first string or `Buffer` in the JSON (depth first) that holds a zip. None of them: the value is session
/// data without a profile, which no RemoteAuth can restore.
fn from_json(json: &Value, max_bytes: u64, depth: usize) -> Result<(Vec<u8>, String)> {
  let mut candidates = Vec::new();
  collect(json, &mut candidates, 0);
  for bytes in candidates {
    match unwrap(bytes, max_bytes, depth + 1) {
      Ok(found) => return Ok(found),
      Err(e @ StoreError::ArchiveLimit(_)) => return Err(e),
      Err(_) => {} // a token, an id: not the zip
    }
  }
  let fields = match json {
    Value::Object(map) => {
      let names: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
      format!("a JSON object (fields {})", names.join(", "))
    }
    Value::Array(items) => format!("a JSON array of {} items", items.len()),
    _ => "a JSON value".into(),
  };
  Err(StoreError::ImportNoLogin(format!(
    "{fields} with no zip in it: this store kept whatsapp-web.js session tokens, never the RemoteAuth profile \
     (IndexedDB + Local Storage) a login is restored from; these accounts must scan a QR code once. A value that \
     held a login unwraps to bytes starting 'PK' (redis-cli --raw GET <key> | head -c 2 | xxd; gunzip it first \
     if it starts 1f 8b)"
  )))
}

/// Strings long enough to hold a zip, and `{"type":"Buffer","data":[…]}` objects, in document order.
fn collect(json: &Value, out: &mut Vec<Vec<u8>>, depth: usize) {
  if depth > 8 {
    return;
  }
  match json {
    Value::String(s) if s.len() >= 16 => out.push(s.as_bytes().to_vec()),
    Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("Buffer") => {
      if let Some(Value::Array(data)) = map.get("data") {
        out.push(data.iter().filter_map(Value::as_u64).map(|b| b as u8).collect());
      }
    }
    Value::Object(map) => map.values().for_each(|v| collect(v, out, depth + 1)),
    Value::Array(items) => items.iter().for_each(|v| collect(v, out, depth + 1)),
    _ => {}
  }
}

#[cfg(test)]
mod tests {
  use std::io::Write;

  use super::*;

  fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
  }

  fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
  }

  const ZIP: &[u8] = b"PK\x03\x04 pretend the rest of a zip follows";

  #[test]
  fn every_wrapping_unwraps_to_the_zip() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
      (ZIP.to_vec(), "zip"),
      (gzip(ZIP), "gzip(zip)"),
      (b64(ZIP).into_bytes(), "base64(zip)"),
      (b64(&gzip(ZIP)).into_bytes(), "base64(gzip(zip))"),
      (format!("{{\"session\":\"x\",\"zip\":\"{}\"}}", b64(ZIP)).into_bytes(), "json(base64(zip))"),
      (gzip(format!("{{\"data\":\"{}\"}}", b64(&gzip(ZIP))).as_bytes()), "gzip(json(base64(gzip(zip))))"),
    ];
    for (value, shape) in cases {
      let (zip, found) = unwrap_zip(value, 1 << 20).unwrap();
      assert_eq!((zip.as_slice(), found.as_str()), (ZIP, shape));
    }
    let buffer = serde_json::json!({ "zip": { "type": "Buffer", "data": ZIP } }).to_string();
    assert_eq!(unwrap_zip(buffer.into_bytes(), 1 << 20).unwrap().1, "json(zip)");
  }

  #[test]
  fn session_tokens_without_a_profile_are_refused_as_no_login() {
    let tokens =
      br#"{"WABrowserId":"\"abc\"","WASecretBundle":"{\"key\":\"k\"}","WAToken1":"\"t1\"","WAToken2":"\"t2\""}"#;
    let err = unwrap_zip(gzip(tokens), 1 << 20).unwrap_err();
    assert_eq!(err.code(), "ERR_IMPORT_NO_LOGIN");
    assert!(err.to_string().contains("WABrowserId") && err.to_string().contains("gzip of"), "{err}");
  }

  #[test]
  fn garbage_and_bombs_are_refused() {
    assert_eq!(unwrap_zip(b"\x00\x01garbage!".to_vec(), 1 << 20).unwrap_err().code(), "ERR_IMPORT_FORMAT");
    assert_eq!(unwrap_zip(Vec::new(), 1 << 20).unwrap_err().code(), "ERR_IMPORT_FORMAT");
    let mut truncated = gzip(ZIP);
    truncated.truncate(truncated.len() / 2);
    assert_eq!(unwrap_zip(truncated, 1 << 20).unwrap_err().code(), "ERR_IMPORT_FORMAT");
    let bomb = gzip(&vec![0u8; 4 << 20]);
    assert_eq!(unwrap_zip(bomb, 1 << 20).unwrap_err().code(), "ERR_ARCHIVE_LIMIT");
    let mut nested = ZIP.to_vec();
    for _ in 0..6 {
      nested = gzip(&nested);
    }
    assert_eq!(unwrap_zip(nested, 1 << 20).unwrap_err().code(), "ERR_IMPORT_FORMAT");
  }
}
