//! Which of two copies of a session is the newer, across tiers and writers, without trusting their clocks.

use crate::archive::Header;

/// Both headers describe the same save. A key rotation re-seals a copy (new bytes, new nonce) and an incremental
/// backup rebuilds it, but neither changes these fields.
pub(crate) fn same_save(a: &Header, b: &Header) -> bool {
  (a.created_ms, a.entries, a.files_bytes, a.source_bytes) == (b.created_ms, b.entries, b.files_bytes, b.source_bytes)
}
