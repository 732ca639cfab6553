//! Leases of the embedded tier, across every process on the host: one record per session (`.lease-<session>`:
//! token and expiry), read and replaced only under the session's lock file, so taking a lease, renewing it and a
//! fenced write's check-and-rename are each one step for all processes. The token outlives its process: a
//! holder killed with SIGKILL blocks the session until its ttl runs out, no longer, and one stopped (SIGSTOP)
//! past it finds on waking that another token took the lease, and its fenced writes are refused.
//!
//! The record also holds the lease's generation (see `Leases::acquire`): a new holder's is above the last one
//! and the wall clock in µs.
//!
//! Expiry is on the host's boot clock (`CLOCK_BOOTTIME`, with the kernel's boot id): one clock for every process
//! of the host, never set back by NTP or an operator. A record from another boot (a restart, or another host on a
//! shared volume) is judged by the wall clock it also holds.
//!
//! Unlike Redis (tier/redis/alive.rs), no quarantine after lost data: the records live beside the sessions on the
//! host's own disk, which does not drop recent writes while its processes run (no restart without persistence, no
//! failover to a copy); a directory wiped under running processes loses the sessions with the leases, and is not
//! a fault this guards against.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::local::LocalDirTier;
use super::{Hold, LeaseState, Leases};
use crate::error::{Result, StoreError};
use crate::fsutil::replace_transient;
use crate::session::SessionKey;

/// A point in time as every process of the host reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
  boot: String,
  boot_ms: u64,
  wall_ms: u64,
}

impl Stamp {
  fn now() -> Self {
    let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let (boot, boot_ms) = boot_clock().unwrap_or_default();
    Self { boot, boot_ms, wall_ms }
  }

  fn plus(&self, ttl: Duration) -> Self {
    let ms = ttl.as_millis() as u64;
    Self { boot: self.boot.clone(), boot_ms: self.boot_ms.saturating_add(ms), wall_ms: self.wall_ms.saturating_add(ms) }
  }

  /// Whether `self` is past `until`: on the boot clock when both are of this boot, else on the wall clock.
  fn past(&self, until: &Stamp) -> bool {
    match !self.boot.is_empty() && self.boot == until.boot {
      true => self.boot_ms >= until.boot_ms,
      false => self.wall_ms >= until.wall_ms,
    }
  }
}

/// This boot's id and ms since it, where the system has such a clock.
#[cfg(target_os = "linux")]
fn boot_clock() -> Option<(String, u64)> {
  static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
  let boot = BOOT.get_or_init(|| {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned()).filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
  });
  let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
  // SAFETY: `now` is a valid timespec to write into.
  if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
    return None;
  }
  Some((boot.clone()?, now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000))
}

#[cfg(not(target_os = "linux"))]
fn boot_clock() -> Option<(String, u64)> {
  None
}

/// A lease record: its token (empty once released), until when it holds, and its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
  token: String,
  until: Stamp,
  generation: u64,
}

const FORMAT: &str = "wwrs-lease-1";

impl Record {
  fn encode(&self) -> String {
    let Stamp { boot, boot_ms, wall_ms } = &self.until;
    let boot = if boot.is_empty() { "-" } else { boot };
    let token = if self.token.is_empty() { "-" } else { &self.token };
    // The generation last: a reader of the record's first five fields (an earlier version) still reads it.
    format!("{FORMAT} {token} {boot} {boot_ms} {wall_ms} {}\n", self.generation)
  }

  /// `None` for a record that does not parse (half-written by hand, or of a later format): treated as expired
  /// and unowned, so the next acquire replaces it.
  fn decode(text: &str) -> Option<Self> {
    let mut parts = text.split_whitespace();
    if parts.next()? != FORMAT {
      return None;
    }
    let token = parts.next()?;
    let boot = parts.next()?;
    let boot_ms = parts.next()?.parse().ok()?;
    let wall_ms = parts.next()?.parse().ok()?;
    // Absent from an earlier version's record: 0, below any generation taken since.
    let generation = parts.next().map_or(Some(0), |g| g.parse().ok())?;
    let blank = |s: &str| if s == "-" { String::new() } else { s.to_owned() };
    Some(Self { token: blank(token), until: Stamp { boot: blank(boot), boot_ms, wall_ms }, generation })
  }
}

/// The record now (under the session's lock).
fn read(path: &Path) -> Result<Option<Record>> {
  match std::fs::read_to_string(path) {
    Ok(text) => {
      Ok(Some(Record::decode(&text).unwrap_or(Record { token: String::new(), until: Stamp::now(), generation: 0 })))
    }
    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
    Err(e) => Err(StoreError::io("read lease", path)(e)),
  }
}

/// Replaces the record (under the session's lock). Not fsynced: a crash of the host ends every holder's process,
/// and a record of an earlier boot is judged by the wall clock.
fn write(path: &Path, record: &Record) -> Result<()> {
  let text = record.encode();
  replace_transient(path, |file| {
    std::io::Write::write_all(file, text.as_bytes()).map_err(StoreError::io("write", path))
  })
}

/// Removes the record (under the session's lock); already gone is fine.
fn remove(path: &Path) -> Result<()> {
  match std::fs::remove_file(path) {
    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io("remove lease", path)(e)),
    _ => Ok(()),
  }
}

/// What `token` has of the lease now, taking it again for `ttl` when it merely expired (as `Leases::renew`).
fn hold(path: &Path, token: &str, ttl: Duration, extend: bool) -> Result<LeaseState> {
  let now = Stamp::now();
  let Some(record) = read(path)?.filter(|r| !token.is_empty() && r.token == token) else {
    return Ok(LeaseState::Lost);
  };
  let state = if now.past(&record.until) { LeaseState::Retaken } else { LeaseState::Held };
  if state == LeaseState::Retaken || extend {
    write(path, &Record { token: token.to_owned(), until: now.plus(ttl), generation: record.generation })?;
  }
  Ok(state)
}

#[async_trait]
impl Leases for LocalDirTier {
  // The directory's membership gives no epoch (tier/membership.rs): every hold here is for its ttl.
  async fn acquire(&self, key: &SessionKey, token: &str, hold: &Hold) -> Result<Option<u64>> {
    let (path, token, ttl) = (self.lease_path(key), token.to_owned(), hold.ttl);
    self
      .locked(key, move |_| {
        let now = Stamp::now();
        let record = read(&path)?;
        let live = |r: &&Record| !r.token.is_empty() && !now.past(&r.until);
        if record.as_ref().filter(live).is_some_and(|r| r.token != token) {
          return Ok(None);
        }
        let generation = match &record {
          Some(r) if r.token == token && live(&r) => r.generation,
          last => (now.wall_ms.saturating_mul(1000)).max(last.as_ref().map_or(0, |r| r.generation) + 1),
        };
        write(&path, &Record { token, until: now.plus(ttl), generation })?;
        Ok(Some(generation))
      })
      .await
  }

  async fn renew(&self, key: &SessionKey, token: &str, held: &Hold) -> Result<LeaseState> {
    let (path, token, ttl) = (self.lease_path(key), token.to_owned(), held.ttl);
    self.locked(key, move |_| hold(&path, &token, ttl, true)).await
  }

  /// The record goes, so a directory keeps none per session ever leased. Under the lock an absent record and a
  /// blank one (released, of an earlier version) read alike to every step: free to take, and `renew` by the
  /// released token finds it lost. A record another token holds stays. (A lease the store abandoned is never
  /// released here: its record stays until it expires and is taken again; the store's own fence is in memory.)
  async fn release(&self, key: &SessionKey, token: &str) -> Result<()> {
    let (path, token) = (self.lease_path(key), token.to_owned());
    self
      .locked(key, move |_| match read(&path)? {
        // Removing the record forgets its generation; the next take starts from the wall clock in µs, which is
        // past every generation handed out before unless the clock stepped back by more than the gap.
        Some(record) if record.token == token || record.token.is_empty() => remove(&path),
        _ => Ok(()),
      })
      .await
  }

  async fn put_fenced(&self, key: &SessionKey, bytes: Vec<u8>, token: &str, held: &Hold) -> Result<LeaseState> {
    let staged = self.stage(key, bytes).await?;
    let (path, token, ttl) = (self.lease_path(key), token.to_owned(), held.ttl);
    self
      .locked(key, move |_| {
        let state = hold(&path, &token, ttl, false)?;
        if state != LeaseState::Lost {
          staged.commit()?;
        }
        Ok(state)
      })
      .await
  }

  async fn delete_fenced(&self, key: &SessionKey, token: &str, held: &Hold) -> Result<LeaseState> {
    let (path, token, owned, ttl) = (self.lease_path(key), token.to_owned(), key.clone(), held.ttl);
    self
      .locked(key, move |this| {
        let state = hold(&path, &token, ttl, false)?;
        if state != LeaseState::Lost {
          this.remove_now(&owned)?;
        }
        Ok(state)
      })
      .await
  }
}

#[cfg(test)]
#[path = "local_lease_tests.rs"]
mod tests;
