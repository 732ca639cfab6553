//! Incremental backups (work in progress: format and planning, not yet wired to a tier). A backup version is a
//! manifest (the file tree, each file as a list of content-defined chunks) plus the chunks no earlier version
//! stored: a session whose LevelDB log grew by a few KB uploads a few chunks, not the whole archive.

mod chunks;
mod manifest;

pub use chunks::{chunk_id, decode_chunk, encode_chunk, split, ChunkId};
pub use manifest::{plan, rebuild, Manifest, ManifestEntry, Plan};

#[cfg(test)]
mod tests;
