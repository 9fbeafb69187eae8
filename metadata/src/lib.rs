//! distlog-metadata: the Raft-replicated metadata store.
//!
//! A Raft quorum (openraft) whose log, vote, state machine and snapshots are
//! persisted in sled under the data directory. Every node keeps the whole
//! [`model::MetaState`] locally and reads it without a round trip; writes are
//! [`model::Command`]s applied by the state machine; subscribers get
//! [`model::MetaEvent`]s after each apply.

pub mod client;
pub mod clock;
pub mod commands;
pub mod consumer_group;
pub mod error;
pub mod membership;
pub mod metrics;
pub mod model;
pub mod network;
pub mod node_id;
pub mod quorum;
pub mod state_machine;
pub mod store;
pub mod transaction;
pub mod typ;

pub use client::{MetadataConfig, MetadataStore, RaftTuning};
pub use clock::now_ms;
pub use consumer_group::{
    ClaimedGroupOp, CommittedOffset, GroupClaim, GroupMemberRecord, GroupMeta, GroupOp, GroupRecord,
    OffsetCommitEntry,
};
pub use error::MetadataError;
pub use membership::{Members, MembershipChange, MembershipFailure};
pub use model::*;
pub use node_id::NodeId;
pub use quorum::QuorumStatus;
pub use transaction::{TxnMeta, TxnOp, TxnPartition, TxnRefusal, TxnState};
