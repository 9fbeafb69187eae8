//! The metadata store handle used by the rest of distlog.
//!
//! CONTRACT (implemented by the metadata work): these signatures are what
//! `storage` and `broker` build against.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::error::MetadataError;
use crate::model::{Command, CommandResponse, MetaEvent, MetaState};

/// How to open the metadata store.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// Directory holding the sled database (created if missing).
    pub data_dir: PathBuf,
    /// This node's Raft node id.
    pub node_id: u64,
    /// Address this node's Raft RPC listener advertises (unused while the
    /// group has a single voter, recorded in membership for later).
    pub raft_addr: String,
}

/// Handle to the local replica of the metadata store.
pub struct MetadataStore {
    _private: (),
}

impl MetadataStore {
    /// Open (or create) the store under `config.data_dir`, start Raft,
    /// initialise a single-voter group on first boot, and wait until a leader
    /// is elected and the local state machine has applied the whole log.
    pub async fn open(config: MetadataConfig) -> Result<Arc<Self>, MetadataError> {
        let _ = config;
        unimplemented!("metadata contract")
    }

    /// Replicate and apply a command; returns the state machine's response
    /// once the command is committed and applied locally.
    /// Refusals come back as `MetadataError::Rejected`.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, MetadataError> {
        let _ = cmd;
        unimplemented!("metadata contract")
    }

    /// Read the local replica's state (no round trip). Do not hold across
    /// awaits: `f` runs under a read lock.
    pub fn read<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        let _ = f;
        unimplemented!("metadata contract")
    }

    /// Subscribe to change notifications published after each apply.
    pub fn subscribe(&self) -> broadcast::Receiver<MetaEvent> {
        unimplemented!("metadata contract")
    }

    /// Whether this node is currently the Raft leader (the controller).
    pub fn is_leader(&self) -> bool {
        unimplemented!("metadata contract")
    }

    /// Stop Raft and flush sled.
    pub async fn shutdown(&self) -> Result<(), MetadataError> {
        unimplemented!("metadata contract")
    }
}
