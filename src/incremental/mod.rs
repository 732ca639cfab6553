//! Incremental backups. A backup version is a manifest (the file tree, each file as a list of content-defined
//! chunks, each located in a pack) plus one pack of the chunks no earlier version stored: a session whose LevelDB
//! log grew by a few KB uploads a few KB, not the whole archive.

mod chunks;
mod manifest;
mod repo;

pub use chunks::{ChunkCodec, ChunkId};
pub use manifest::{plan, rebuild, Location, Manifest, ManifestEntry, Plan};
pub use repo::{packs_prefix, Collected, Repaired, Repo, Written, DELETED_EXT, MANIFEST_EXT, WORK_PREFIX};

#[cfg(test)]
pub(crate) mod tests;
