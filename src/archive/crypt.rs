//! Encryption at rest: XChaCha20-Poly1305 over the compressed payload. A random 24-byte nonce per archive (safe
//! at any number of saves), the header's fields as associated data (sizes and time cannot be swapped), and an
//! 8-byte key id in front so a keyring of current and previous keys can rotate. The BLAKE3 checksum still covers
//! everything, so integrity is checked without the key (`verify` needs none).

use base64::Engine;
use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::Header;
use crate::error::{Result, StoreError};

pub const KEY_ID_LEN: usize = 8;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes in front of the ciphertext: key id and nonce.
pub const PREFIX_LEN: usize = KEY_ID_LEN + NONCE_LEN;

/// One 32-byte key. `Debug` shows its id only; the bytes are wiped when dropped.
#[derive(Clone)]
pub struct Key {
  id: [u8; KEY_ID_LEN],
  secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Key {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "Key({})", self.id_hex())
  }
}

impl Key {
  /// A key from its base64 text (standard or URL-safe alphabet, padded or not). `name` is what the error calls it;
  /// the text itself never appears in the error.
  pub fn from_base64(name: &'static str, text: &str) -> Result<Self> {
    let text = Zeroizing::new(text.trim().to_owned());
    let engines = [
      &base64::engine::general_purpose::STANDARD,
      &base64::engine::general_purpose::STANDARD_NO_PAD,
      &base64::engine::general_purpose::URL_SAFE,
      &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines.iter().find_map(|e| e.decode(text.as_bytes()).ok()).map(Zeroizing::new);
    let bad = |reason: &str| StoreError::InvalidOption { name, reason: reason.into() };
    let bytes = bytes.ok_or_else(|| bad("is not base64"))?;
    let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad("must be 32 bytes (44 base64 characters)"))?;
    Ok(Self::new(secret))
  }

  pub fn new(secret: [u8; 32]) -> Self {
    // The id names the key without revealing it: a keyed derivation, not a prefix of the key.
    let derived = blake3::derive_key("wwebjs-rust-store 2026-11 archive key id", &secret);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&derived[..KEY_ID_LEN]);
    Self { id, secret: Zeroizing::new(secret) }
  }

  pub fn id_hex(&self) -> String {
    self.id.iter().map(|b| format!("{b:02x}")).collect()
  }

  /// A 32-byte subkey for `context` (e.g. the key that names chunks), independent of the encryption key.
  pub fn derive(&self, context: &str) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(blake3::derive_key(context, self.secret.as_ref()))
  }

  fn cipher(&self) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(self.secret.as_ref().into())
  }
}

/// The key new archives are written with, and the older ones still accepted for reading.
#[derive(Debug, Clone)]
pub struct Keyring {
  current: Key,
  previous: Vec<Key>,
  /// Read plain (unencrypted) archives too: for the time between setting a key and `rotate-key`. Off, a plain
  /// archive is refused, since anyone able to write to a tier can seal one.
  pub accept_plain: bool,
}

impl Keyring {
  pub fn new(current: Key, previous: Vec<Key>) -> Self {
    Self { current, previous, accept_plain: false }
  }

  pub fn current(&self) -> &Key {
    &self.current
  }

  /// The key with this id, current or previous.
  pub fn find(&self, id: &[u8]) -> Option<&Key> {
    std::iter::once(&self.current).chain(&self.previous).find(|k| k.id == id)
  }
}

/// Encrypts `buf[PREFIX_LEN..]` in place and fills in the prefix; returns the tag to append.
pub fn encrypt(key: &Key, aad: &[u8], buf: &mut [u8]) -> Result<Tag> {
  let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
  let (prefix, body) = buf.split_at_mut(PREFIX_LEN);
  prefix[..KEY_ID_LEN].copy_from_slice(&key.id);
  prefix[KEY_ID_LEN..].copy_from_slice(&nonce);
  key
    .cipher()
    .encrypt_in_place_detached(&nonce, aad, body)
    .map_err(|_| StoreError::Internal("encryption failed".into()))
}

/// `prefix | ciphertext | tag` of `plain` under `key`: for objects other than archives (chunks, manifests).
pub fn seal_box(key: &Key, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
  let mut buf = Vec::with_capacity(PREFIX_LEN + plain.len() + TAG_LEN);
  buf.resize(PREFIX_LEN, 0);
  buf.extend_from_slice(plain);
  let tag = encrypt(key, aad, &mut buf)?;
  buf.extend_from_slice(&tag);
  Ok(buf)
}

/// The key id an encrypted payload names.
pub fn key_id(payload: &[u8]) -> Option<String> {
  payload.get(..KEY_ID_LEN).map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
}

/// The plaintext of an encrypted payload (`prefix | ciphertext | tag`).
pub fn decrypt(keys: Option<&Keyring>, aad: &[u8], payload: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
  let decrypt_err = |why: String| StoreError::Decrypt(why);
  if payload.len() < PREFIX_LEN + TAG_LEN {
    return Err(StoreError::ArchiveCorrupt("encrypted payload is too short".into()));
  }
  let id = key_id(payload).unwrap_or_default();
  let keys =
    keys.ok_or_else(|| decrypt_err(format!("the session is encrypted (key {id}) and no key is configured")))?;
  let key = keys.find(&payload[..KEY_ID_LEN]).ok_or_else(|| decrypt_err(format!("no configured key has id {id}")))?;
  let nonce = XNonce::from_slice(&payload[KEY_ID_LEN..PREFIX_LEN]);
  let (body, tag) = payload[PREFIX_LEN..].split_at(payload.len() - PREFIX_LEN - TAG_LEN);
  let mut plain = Zeroizing::new(body.to_vec());
  key
    .cipher()
    .decrypt_in_place_detached(nonce, aad, &mut plain, Tag::from_slice(tag))
    .map_err(|_| decrypt_err(format!("authentication failed with key {id}: wrong key or tampered data")))?;
  Ok(plain)
}

/// The compressed stream of an opened archive of `session`: decrypted when encrypted (`Some`), else `None` (use
/// the payload as it is), after refusing a plain archive that `keys` do not accept.
pub fn open_payload(
  header: &Header,
  payload: &[u8],
  keys: Option<&Keyring>,
  session: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
  match header.encrypted() {
    true => decrypt(keys, &header.associated_data(session), payload).map(Some),
    false => refuse_plain(keys).map(|()| None),
  }
}

/// A plain archive read by a store that has keys: refused unless the keyring accepts plain ones.
pub fn refuse_plain(keys: Option<&Keyring>) -> Result<()> {
  match keys {
    Some(keys) if !keys.accept_plain => Err(StoreError::Decrypt(
      "the stored session is not encrypted and this store requires encryption (run rotate-key, or accept plain \
       archives while migrating)"
        .into(),
    )),
    _ => Ok(()),
  }
}

/// A plain copy may have been forged by anyone with write access to the tier: sealing it would make it
/// authentic. Without `acceptPlain` it is reported and left as it is.
pub fn refuse_plain_reseal(keys: &Keyring, encrypted: bool, what: &str) -> Result<()> {
  match encrypted || keys.accept_plain {
    true => Ok(()),
    false => Err(StoreError::Decrypt(format!(
      "{what} is not encrypted: left unsealed, since a plain copy is not known to be genuine (rotate with \
       acceptPlain / SESSION_ENCRYPTION_ACCEPT_PLAIN=true to seal plain copies)"
    ))),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn sealed(key: &Key, plain: &[u8]) -> Vec<u8> {
    seal_box(key, b"aad", plain).unwrap()
  }

  #[test]
  fn round_trips_and_rotates() {
    let (old, new) = (Key::new([1; 32]), Key::new([2; 32]));
    let by_old = sealed(&old, b"login");
    assert_ne!(&by_old[PREFIX_LEN..PREFIX_LEN + 5], b"login");
    let ring = Keyring::new(new.clone(), vec![old.clone()]);
    assert_eq!(decrypt(Some(&ring), b"aad", &by_old).unwrap().as_slice(), b"login");
    let only_new = Keyring::new(new, vec![]);
    assert_eq!(decrypt(Some(&only_new), b"aad", &by_old).unwrap_err().code(), "ERR_DECRYPT");
    assert_eq!(decrypt(None, b"aad", &by_old).unwrap_err().code(), "ERR_DECRYPT");
    let ring = Keyring::new(old, vec![]);
    assert_eq!(decrypt(Some(&ring), b"other aad", &by_old).unwrap_err().code(), "ERR_DECRYPT");
  }

  #[test]
  fn a_key_id_is_not_the_key_and_debug_shows_no_secret() {
    let key = Key::new([7; 32]);
    assert_ne!(&key.id[..], &[7u8; 8][..]);
    let shown = format!("{:?}", Keyring::new(key.clone(), vec![]));
    assert!(shown.contains(&key.id_hex()) && !shown.contains("7, 7"), "{shown}");
  }

  #[test]
  fn keys_parse_from_base64_without_echoing_them() {
    let text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    assert_eq!(Key::from_base64("k", &text).unwrap().id, Key::new([9; 32]).id);
    let short = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
    let err = Key::from_base64("k", &short).unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_OPTION");
    assert!(!err.to_string().contains(&short));
    assert!(Key::from_base64("k", "not base64!").is_err());
  }
}
