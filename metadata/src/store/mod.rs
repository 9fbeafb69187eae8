//! sled-backed persistence of the metadata quorum.
//!
//! One sled database under the data directory holds three trees:
//! - `raft_log`: log entries keyed by big-endian index (so sled's key order
//!   is log order), JSON-encoded;
//! - `raft_meta`: the vote, the committed log id and the last purged log id;
//! - `state_machine`: the latest snapshot (metadata + serialised
//!   [`MetaState`](crate::model::MetaState)).
//!
//! The state machine itself lives in memory and is rebuilt on open from the
//! latest snapshot plus the log after it (openraft re-applies committed
//! entries at startup, and the leader's first commit covers the rest). Every
//! sled call runs on the blocking pool, never on the async runtime.
//!
//! Every sled handle lives inside one [`SledStore`]; the client keeps only a
//! weak reference after shutdown, so once Raft's tasks have dropped their
//! stores the database (and its file lock) is closed.

// openraft's `StorageError` is large, and the storage traits require it as
// the error type; boxing it here would only add conversions at every call.
#![allow(clippy::result_large_err)]

pub mod disk;
mod log;
mod state;
#[cfg(test)]
pub(crate) use state::roundtrip_state_for_tests;

use std::sync::Arc;

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::MetadataError;
use crate::typ::{NodeId, StorageError};

pub use self::log::LogStore;
pub use self::state::StateMachineStore;

/// The open sled database and its trees.
pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    raft_meta: sled::Tree,
    state_machine: sled::Tree,
}

impl SledStore {
    /// Open the database in `dir` (blocking: call from the blocking pool).
    pub fn open(dir: &std::path::Path) -> Result<Arc<Self>, MetadataError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            MetadataError::Storage(format!("cannot create metadata directory {}: {e}", dir.display()))
        })?;
        let (_, usable) = disk::disk_space(dir).map_err(|e| {
            MetadataError::Storage(format!("cannot read the free space under {}: {e}", dir.display()))
        })?;
        disk::check_room_to_open(dir, usable)?;
        // Metadata is small; sled's default 1 GiB page cache would only
        // inflate the broker's RSS as the Raft log grows.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|e| {
                MetadataError::Storage(format!(
                    "cannot open metadata database in {} ({e}); if another distlog process (or an \
                 unclosed store in this process) uses this directory, stop it first",
                    dir.display()
                ))
            })?;
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| MetadataError::Storage(format!("cannot open sled tree '{name}': {e}")))
        };
        Ok(Arc::new(Self {
            log: tree("raft_log")?,
            raft_meta: tree("raft_meta")?,
            state_machine: tree("state_machine")?,
            db,
        }))
    }

    /// Flush every tree to disk (blocking). Returns once the data is fsynced.
    pub fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush().map(|_| ())
    }
}

/// Run a sled operation on the blocking pool.
async fn blocking<T, F>(subject: ErrorSubject<NodeId>, verb: ErrorVerb, f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(io_err(subject, verb, &e)),
    }
}

fn io_err<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: &E,
) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(e)).into()
}

fn encode<T: Serialize>(subject: ErrorSubject<NodeId>, value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| io_err(subject, ErrorVerb::Write, &e))
}

fn decode<T: DeserializeOwned>(subject: ErrorSubject<NodeId>, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| io_err(subject, ErrorVerb::Read, &e))
}
