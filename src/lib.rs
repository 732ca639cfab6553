//! wwebjs-rust-store: a whatsapp-web.js RemoteAuth store. Core modules are plain Rust; `binding` is the
//! only place that knows about Node.

pub mod archive;
pub mod backup;
pub mod browser_lock;
pub mod cleanup;
pub mod cli;
pub mod counters;
pub mod error;
pub mod fleet;
pub mod import;
pub mod incremental;
pub mod metrics;
pub mod migrate;
pub mod monitor;
pub mod scheduler;
pub mod session;
pub mod settings;
pub mod store;
pub mod tier;
pub mod transfer;

mod blocking;
mod fsutil;
mod locks;

mod binding;

#[cfg(test)]
mod backup_model;
