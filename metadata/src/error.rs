//! Errors of the metadata store.

use crate::model::ApplyError;

/// Everything that can go wrong talking to the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The state machine refused the command (deterministic, replicated).
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    /// No Raft leader is known right now; retry after a short wait.
    #[error("metadata store has no leader right now; retry shortly")]
    NoLeader,
    /// This node is not the Raft leader and cannot forward the write.
    #[error("metadata write must go to the leader (node {leader:?})")]
    ForwardToLeader { leader: Option<crate::NodeId> },
    /// sled failed (disk error, full disk, corruption). The data directory
    /// needs attention: check free space and permissions.
    #[error("metadata storage error: {0}; check the data directory's disk space and permissions")]
    Storage(String),
    /// The Raft core failed or is shutting down.
    #[error("raft error: {0}")]
    Raft(String),
    /// Encoding/decoding of persisted state failed (corruption).
    #[error("metadata codec error: {0}")]
    Codec(String),
    /// The store answered a command with a reply of the wrong kind (a
    /// node of another version, or a bug); the command may have applied.
    #[error("metadata store answered {command} with {response}")]
    UnexpectedResponse {
        /// The command sent.
        command: &'static str,
        /// The reply received (debug form).
        response: String,
    },
}
