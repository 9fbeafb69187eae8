//! The metadata Raft group's state as one replica sees it: who leads, in
//! which term, how far the log is committed and, on the leader, how far
//! each member has replicated. It is what Kafka's DescribeQuorum reports
//! for KRaft; here the Raft group plays KRaft's part.

use std::collections::BTreeMap;

use openraft::{BasicNode, RaftMetrics, ServerState};

use crate::membership::Members;
use crate::node_id::NodeId;

/// A snapshot of the metadata quorum's state on one replica (see the
/// module doc). Log positions are Raft log indexes (dense, from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This replica's node id.
    pub node_id: NodeId,
    /// The leader this replica knows of, if any.
    pub leader: Option<NodeId>,
    /// The current Raft term (Kafka's leader epoch of the quorum).
    pub term: u64,
    /// Whether this replica is the leader (only the leader knows the
    /// members' replication progress).
    pub is_leader: bool,
    /// Index of the last committed log entry, if any is.
    pub committed: Option<u64>,
    /// Index of this replica's last log entry, if it has one.
    pub last_log_index: Option<u64>,
    /// Voters and learners with their Raft addresses.
    pub members: Members,
    /// On the leader: per member, the index of the last entry known to be
    /// replicated to it (`None` = nothing known yet). Empty elsewhere.
    pub matched: BTreeMap<NodeId, Option<u64>>,
}

impl QuorumStatus {
    /// Build the status from openraft's metrics and the committed index
    /// (which the metrics do not carry).
    pub fn from_metrics(m: &RaftMetrics<NodeId, BasicNode>, committed: Option<u64>) -> QuorumStatus {
        let is_leader = m.state == ServerState::Leader && m.current_leader == Some(m.id);
        let mut matched: BTreeMap<NodeId, Option<u64>> = match (&m.replication, is_leader) {
            (Some(r), true) => r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect(),
            _ => BTreeMap::new(),
        };
        if is_leader {
            // The leader's own log is replicated to itself up to its end.
            matched.insert(m.id, m.last_log_index);
        }
        QuorumStatus {
            node_id: m.id,
            leader: m.current_leader,
            term: m.current_term,
            is_leader,
            committed,
            last_log_index: m.last_log_index,
            members: Members::from_metrics(m),
            matched,
        }
    }
}
