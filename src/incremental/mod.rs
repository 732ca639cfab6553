//! Incremental backups. A backup version is a manifest (the file tree, each file as a list of content-defined
//! chunks) plus the chunks no earlier version stored: a session whose LevelDB log grew by a few KB uploads a few
//! chunks, not the whole archive.

mod chunks;
mod manifest;
mod repo;

pub use chunks::{split, ChunkCodec, ChunkId};
pub use manifest::{plan, rebuild, Location, Manifest, ManifestEntry, Plan};
pub use repo::{packs_prefix, Collected, Repo, Written, MANIFEST_EXT, WORK_PREFIX};

#[cfg(test)]
pub(crate) mod tests;
