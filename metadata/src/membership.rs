//! Membership of the metadata quorum: who votes, who only replicates.
//!
//! Voters elect the leader and commit writes; learners receive the whole log
//! (or a snapshot) and keep a full local replica without voting. A new node
//! joins as a learner through seed addresses ([`MembershipChange::AddLearner`]);
//! an operator promotes it ([`MembershipChange::AddVoter`]) or removes a node
//! ([`MembershipChange::Remove`]). Every change is carried out by the leader
//! ([`apply`]); other nodes answer [`MembershipFailure::NotLeader`] with the
//! leader's address so the caller can go there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};

use crate::typ::{NodeId, Raft};

/// How long the leader waits for a new learner to catch up before it
/// promotes it to voter (or answers a join).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the leader retries a change while an earlier membership change
/// is still being committed.
const IN_PROGRESS_RETRY: Duration = Duration::from_secs(5);

/// The members of the metadata quorum and their Raft addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// Voters (node id → Raft address). During a joint configuration this
    /// is the union of the old and the new voter sets.
    pub voters: BTreeMap<NodeId, String>,
    /// Learners (node id → Raft address): full replicas that do not vote.
    pub learners: BTreeMap<NodeId, String>,
}

impl Members {
    /// The membership recorded in a replica's Raft metrics.
    pub fn from_metrics(m: &RaftMetrics<NodeId, BasicNode>) -> Members {
        let membership = m.membership_config.membership();
        let addr = |id: &NodeId| {
            membership
                .get_node(id)
                .map(|n| n.addr.clone())
                .unwrap_or_default()
        };
        Members {
            voters: membership.voter_ids().map(|id| (id, addr(&id))).collect(),
            learners: membership.learner_ids().map(|id| (id, addr(&id))).collect(),
        }
    }

    /// The Raft address of `id`, voter or learner.
    pub fn addr(&self, id: NodeId) -> Option<&str> {
        self.voters
            .get(&id)
            .or_else(|| self.learners.get(&id))
            .map(String::as_str)
    }
}

/// A change to the membership, carried out by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add `node_id` at `addr` as a learner (a node joining through its
    /// seeds). Succeeds without change when it is already a member at `addr`.
    AddLearner {
        /// The joining node's id.
        node_id: NodeId,
        /// Its Raft address.
        addr: String,
    },
    /// Make `node_id` a voter: added as a learner first if it is not a
    /// member, promoted once it has caught up. Existing learners stay.
    AddVoter {
        /// The node's id.
        node_id: NodeId,
        /// Its Raft address.
        addr: String,
    },
    /// Remove `node_id` from the voters and learners.
    Remove {
        /// The node's id.
        node_id: NodeId,
    },
}

/// Why a membership change did not happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipFailure {
    /// The receiver is not the leader; ask `leader_addr` instead.
    #[error(
        "this metadata node is not the leader (leader {leader:?} at {leader_addr:?}); send the change there"
    )]
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<NodeId>,
        /// The leader's Raft address, when known.
        leader_addr: Option<String>,
    },
    /// The change is not allowed (unknown node, last voter, address
    /// conflict); retrying will not help.
    #[error("{0}")]
    Refused(String),
    /// The leader could not carry the change out (shutting down, lost
    /// leadership midway, learner not catching up).
    #[error("{0}")]
    Failed(String),
}

/// Carry out `change` on this node's Raft, which must be the leader, and
/// return the resulting membership.
pub async fn apply(raft: &Raft, change: MembershipChange) -> Result<Members, MembershipFailure> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.state != ServerState::Leader || metrics.current_leader != Some(metrics.id) {
        let leader = metrics.current_leader;
        let leader_addr = leader.and_then(|l| {
            metrics
                .membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        });
        return Err(MembershipFailure::NotLeader { leader, leader_addr });
    }
    let members = Members::from_metrics(&metrics);
    match change {
        MembershipChange::AddLearner { node_id, addr } => {
            if let Some(known) = members.addr(node_id) {
                return same_addr(node_id, known, &addr).map(|()| members);
            }
            let log_index = add_learner(raft, node_id, &addr).await?;
            if !caught_up(raft, node_id, log_index).await {
                tracing::warn!(
                    node_id = node_id.get(),
                    %addr,
                    "new metadata learner has not caught up yet; it keeps replicating"
                );
            }
        }
        MembershipChange::AddVoter { node_id, addr } => {
            if let Some(known) = members.voters.get(&node_id) {
                return same_addr(node_id, known, &addr).map(|()| members);
            }
            let target = match members.learners.get(&node_id) {
                Some(known) => {
                    same_addr(node_id, known, &addr)?;
                    metrics.last_log_index.unwrap_or(0)
                }
                None => add_learner(raft, node_id, &addr).await?,
            };
            if !caught_up(raft, node_id, target).await {
                return Err(MembershipFailure::Failed(format!(
                    "node {node_id} at {addr} is a learner but did not catch up with the leader within \
                     {CATCH_UP_TIMEOUT:?}; check that it is running and reachable, then retry add_voter"
                )));
            }
            change_membership(raft, ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), true).await?;
        }
        MembershipChange::Remove { node_id } => {
            if members.voters.contains_key(&node_id) {
                if members.voters.len() == 1 {
                    return Err(MembershipFailure::Refused(format!(
                        "node {node_id} is the last metadata voter and cannot be removed; add another \
                         voter first (add_voter), then remove this one"
                    )));
                }
                change_membership(
                    raft,
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id])),
                    false,
                )
                .await?;
            } else if members.learners.contains_key(&node_id) {
                change_membership(raft, ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false).await?;
            } else {
                return Err(MembershipFailure::Refused(format!(
                    "node {node_id} is not a metadata member (voters {:?}, learners {:?}); check the id",
                    members.voters.keys().collect::<Vec<_>>(),
                    members.learners.keys().collect::<Vec<_>>()
                )));
            }
        }
    }
    Ok(Members::from_metrics(&raft.metrics().borrow()))
}

fn same_addr(node_id: NodeId, known: &str, requested: &str) -> Result<(), MembershipFailure> {
    if known == requested {
        Ok(())
    } else {
        Err(MembershipFailure::Refused(format!(
            "node {node_id} is already a metadata member at {known}, not {requested}; start it with \
             raft address {known}, or remove it (remove_node) before adding it at the new address"
        )))
    }
}

/// Add a learner; returns the index of the membership entry naming it.
async fn add_learner(raft: &Raft, node_id: NodeId, addr: &str) -> Result<u64, MembershipFailure> {
    let deadline = Instant::now() + IN_PROGRESS_RETRY;
    loop {
        match raft.add_learner(node_id, BasicNode::new(addr), false).await {
            Ok(resp) => {
                tracing::info!(node_id = node_id.get(), addr, "added a metadata learner");
                return Ok(resp.log_id.index);
            }
            Err(e) => retry_or_fail(e, deadline).await?,
        }
    }
}

/// Run a voter change (openraft's joint consensus) to completion.
async fn change_membership(
    raft: &Raft,
    changes: ChangeMembers<NodeId, BasicNode>,
    retain: bool,
) -> Result<(), MembershipFailure> {
    let deadline = Instant::now() + IN_PROGRESS_RETRY;
    loop {
        match raft.change_membership(changes.clone(), retain).await {
            Ok(resp) => {
                tracing::info!(?changes, membership = ?resp.membership, "metadata membership changed");
                return Ok(());
            }
            Err(e) => retry_or_fail(e, deadline).await?,
        }
    }
}

/// `Ok` (after a pause) when the change should be retried: an earlier
/// membership change is still being committed and time remains.
async fn retry_or_fail(
    e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    deadline: Instant,
) -> Result<(), MembershipFailure> {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Err(MembershipFailure::NotLeader {
            leader: f.leader_id,
            leader_addr: f.leader_node.map(|n| n.addr),
        }),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(
            p,
        ))) => {
            if Instant::now() >= deadline {
                return Err(MembershipFailure::Failed(format!(
                    "an earlier membership change is still being committed ({p}); retry shortly"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Err(MembershipFailure::Refused(
            format!("membership change refused: {e}"),
        )),
        RaftError::Fatal(f) => Err(MembershipFailure::Failed(format!(
            "the leader's metadata raft failed ({f}); retry once a new leader is elected"
        ))),
    }
}

/// Whether the leader has replicated up to `index` to `node_id` within
/// [`CATCH_UP_TIMEOUT`].
async fn caught_up(raft: &Raft, node_id: NodeId, index: u64) -> bool {
    raft.wait(Some(CATCH_UP_TIMEOUT))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&node_id))
                    .and_then(|matched| matched.as_ref())
                    .is_some_and(|l| l.index >= index)
            },
            "learner caught up with the leader",
        )
        .await
        .is_ok()
}
