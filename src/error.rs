//! One error type for the core; each variant has a stable code that JS sees as `err.code`.

use std::path::PathBuf;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
  #[error("invalid session name {name:?}: {reason}")]
  SessionName { name: String, reason: &'static str },
  #[error("session {0:?} is not stored")]
  SessionNotFound(String),
  #[error("no zip to save for session {session:?}; looked for {looked}")]
  ZipNotFound { session: String, looked: String },
  #[error("the session zip is unreadable: {0}")]
  ZipInvalid(String),
  #[error("refused archive entry {name:?}: {reason}")]
  UnsafeEntry { name: String, reason: &'static str },
  #[error("archive over its limit: {0}")]
  ArchiveLimit(String),
  #[error("the zip holds none of the kept directories ({0}); saving it would replace a login with nothing")]
  EmptySession(String),
  #[error("stored archive is corrupt: {0}")]
  ArchiveCorrupt(String),
  /// `found` is newer than the `max` this build reads: an upgrade is due, not a damaged copy.
  #[error("stored {what} has format version {found}, this build reads up to {max}")]
  ArchiveVersion { what: &'static str, found: u16, max: u16 },
  #[error("cannot decrypt the stored session: {0}")]
  Decrypt(String),
  #[error("session {0:?} is leased by another owner (or, for one ttl after Redis lost its data, kept for the holders to reclaim)")]
  LeaseHeld(String),
  #[error("the lease on session {0:?} was lost (expired or taken over); nothing was written")]
  LeaseLost(String),
  #[error(
    "fleet worker id {0:?} is already in use by another live worker of the group; give each worker its own workerId"
  )]
  DuplicateWorker(String),
  #[error("backup version {0} not found")]
  VersionNotFound(String),
  #[error("backups of session {0:?} are being pruned by another process; try again")]
  BackupBusy(String),
  /// A backup or prune found its lock on the session's backups lapsed (it stalled past its renew deadline, or
  /// another process took the lock over as stale) and stopped before its next write or delete.
  #[error("the backup lock on session {0:?} lapsed (this process stalled, or another took it over); it stopped before writing or deleting more")]
  BackupLockLost(String),
  #[error("the profile kept changing while it was read: {0}; the stored copy was left as it was")]
  ProfileChanging(String),
  #[error("profile folder {0} is in use by a running browser; close it first")]
  ProfileInUse(String),
  #[error("session {0:?} was written by another process meanwhile; left as that process wrote it")]
  SessionChanged(String),
  #[error("invalid argument: {0}")]
  InvalidArgument(String),
  #[error("invalid option {name}: {reason}")]
  InvalidOption { name: &'static str, reason: String },
  /// An options object of the wrong shape (an unknown key, a wrong type), named by its path in JS terms.
  #[error("{0}")]
  Options(String),
  #[error("{tier} tier cannot be reached: {reason}")]
  TierUnavailable { tier: &'static str, reason: String },
  /// A storage backend failed; the tier picks the code (`ERR_REDIS_UNAVAILABLE`, …).
  #[error("{reason}")]
  Backend { code: &'static str, reason: String },
  #[error("internal error: {0}")]
  Internal(String),
  #[error("{op} {path}: {source}")]
  Io { op: &'static str, path: PathBuf, source: std::io::Error },
  /// An import source's value is none of the shapes a session can be in (zip, gzip, base64, JSON holding one).
  #[error("not a session zip: {0}")]
  ImportFormat(String),
  /// An import source's value holds session data but no profile: nothing RemoteAuth can restore a login from.
  #[error("no restorable login: {0}")]
  ImportNoLogin(String),
}

impl StoreError {
  /// The stable code JS callers branch on.
  pub fn code(&self) -> &'static str {
    match self {
      Self::SessionName { .. } => "ERR_SESSION_NAME",
      Self::SessionNotFound(_) => "ERR_SESSION_NOT_FOUND",
      Self::ZipNotFound { .. } => "ERR_ZIP_NOT_FOUND",
      Self::ZipInvalid(_) => "ERR_ZIP_INVALID",
      Self::UnsafeEntry { .. } => "ERR_ARCHIVE_ENTRY",
      Self::ArchiveLimit(_) => "ERR_ARCHIVE_LIMIT",
      Self::EmptySession(_) => "ERR_EMPTY_SESSION",
      Self::ArchiveCorrupt(_) => "ERR_ARCHIVE_CORRUPT",
      Self::ArchiveVersion { .. } => "ERR_ARCHIVE_VERSION",
      Self::Decrypt(_) => "ERR_DECRYPT",
      Self::LeaseHeld(_) => "ERR_LEASE_HELD",
      Self::LeaseLost(_) => "ERR_LEASE_LOST",
      Self::DuplicateWorker(_) => "ERR_FLEET_DUPLICATE_WORKER",
      Self::VersionNotFound(_) => "ERR_VERSION_NOT_FOUND",
      Self::BackupBusy(_) => "ERR_BACKUP_BUSY",
      Self::BackupLockLost(_) => "ERR_BACKUP_LOCK_LOST",
      Self::ProfileChanging(_) => "ERR_PROFILE_CHANGING",
      Self::ProfileInUse(_) => "ERR_PROFILE_IN_USE",
      Self::SessionChanged(_) => "ERR_SESSION_CHANGED",
      Self::InvalidArgument(_) => "ERR_INVALID_ARG",
      Self::InvalidOption { .. } | Self::Options(_) => "ERR_INVALID_OPTION",
      Self::TierUnavailable { .. } => "ERR_TIER_UNAVAILABLE",
      Self::Backend { code, .. } => code,
      Self::Internal(_) => "ERR_INTERNAL",
      Self::Io { .. } => "ERR_IO",
      Self::ImportFormat(_) => "ERR_IMPORT_FORMAT",
      Self::ImportNoLogin(_) => "ERR_IMPORT_NO_LOGIN",
    }
  }

  pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
    let path = path.into();
    move |source| Self::Io { op, path, source }
  }
}
