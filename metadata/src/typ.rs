//! The openraft type configuration of the metadata quorum.
//!
//! Log payloads are [`Command`]s and applied results are
//! [`ApplyResult`]s, so a refusal is a replicated outcome rather than a
//! storage failure.

use std::io::Cursor;

use crate::model::{ApplyResult, Command};
pub use crate::node_id::NodeId;

openraft::declare_raft_types!(
    /// Type configuration of the metadata quorum: [`NodeId`] node ids,
    /// [`openraft::BasicNode`] addresses and in-memory snapshot buffers.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle type.
pub type Raft = openraft::Raft<TypeConfig>;
/// Storage errors as openraft expects them.
pub type StorageError = openraft::StorageError<NodeId>;
/// A log id of this group.
pub type LogId = openraft::LogId<NodeId>;
/// Membership as persisted alongside the state machine.
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
/// Snapshot metadata of this group.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
