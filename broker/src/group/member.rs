//! One member of a consumer group, and the answers the coordinator owes it.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What a JoinGroup request asks for, already validated at the protocol
/// level (group id, session timeout range).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The member id the client sent; empty for a first join.
    pub member_id: String,
    /// The static instance id (KIP-345), if any.
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// The client's host as the coordinator sees it.
    pub client_host: String,
    /// How long the member may go without a heartbeat.
    pub session_timeout: Duration,
    /// How long the member may take to rejoin during a rebalance.
    pub rebalance_timeout: Duration,
    /// The protocol type (`consumer` for Kafka consumers).
    pub protocol_type: String,
    /// Supported protocols (assignors) in preference order, each with the
    /// member's metadata for it.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and must rejoin
    /// with the id it was given (KIP-394).
    pub require_known_member_id: bool,
}

/// The answer to a JoinGroup request.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    /// The error, if the join failed or must be retried.
    pub error: Option<ResponseError>,
    /// The member's id (new for a first join).
    pub member_id: String,
    /// The generation the member joined; -1 on error.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// For the leader only: every member with its metadata for the selected
    /// protocol, so it can compute the assignment.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814: the leader must not recompute the assignment.
    pub skip_assignment: bool,
}

impl JoinResult {
    /// A failed join.
    pub fn error(member_id: &str, error: ResponseError) -> JoinResult {
        JoinResult {
            error: Some(error),
            member_id: member_id.to_string(),
            generation: -1,
            ..JoinResult::default()
        }
    }
}

/// The answer to a SyncGroup request.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    /// The error, if the sync failed.
    pub error: Option<ResponseError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    /// A failed sync.
    pub fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(error),
            ..SyncResult::default()
        }
    }
}

/// A live member of a group.
#[derive(Debug)]
pub struct Member {
    /// Coordinator-assigned id.
    pub member_id: String,
    /// Static instance id, if any.
    pub instance_id: Option<String>,
    /// Client id of the member's connection.
    pub client_id: String,
    /// Client host of the member's connection.
    pub client_host: String,
    /// Session timeout the member joined with.
    pub session_timeout: Duration,
    /// Rebalance timeout the member joined with.
    pub rebalance_timeout: Duration,
    /// Supported protocols in preference order, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment of the current generation.
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// When the member is expelled unless it heartbeats (ignored while it
    /// awaits a join or sync answer, as Kafka does).
    pub heartbeat_deadline: Instant,
}

impl Member {
    /// The member's metadata for `protocol`, if it supports it.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m)
    }

    /// Whether the member supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata_for(protocol).is_some()
    }

    /// Whether `protocols` are exactly what the member joined with.
    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Push the heartbeat deadline a session timeout past `now`.
    pub fn touch(&mut self, now: Instant) {
        self.heartbeat_deadline = now + self.session_timeout;
    }

    /// Answer a waiting join or sync with `error` (the member was removed
    /// or fenced).
    pub fn fail_waiters(&mut self, error: ResponseError) {
        if let Some(tx) = self.awaiting_join.take() {
            let _ = tx.send(JoinResult::error(&self.member_id, error));
        }
        if let Some(tx) = self.awaiting_sync.take() {
            let _ = tx.send(SyncResult::error(error));
        }
    }
}
