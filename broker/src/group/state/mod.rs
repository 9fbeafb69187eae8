//! The classic group protocol state machine of one group, as Kafka's
//! `GroupCoordinator` runs it:
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                    ▲   │                                     │ leader SyncGroup
//!   │ last member gone   │   └── no member left ──▶ Empty          ▼
//!   └────────────────────┴────── join, leave, expiry ◀──────────── Stable
//! ```
//!
//! (and Dead once deleted). It is synchronous and takes the time as an
//! argument: the coordinator holds the group's lock around each call, a
//! timer task calls [`Group::tick`] at [`Group::next_deadline`], and what
//! must be stored in the metadata store comes back as [`Effects`]. Answers
//! to waiting JoinGroup/SyncGroup requests go through their oneshot senders.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use distlog_metadata::{GroupMemberRecord, GroupRecord};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::member::{Member, SyncResult};

mod membership;

/// The states of a classic group, named as Kafka's DescribeGroups names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for every member to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Deleted; any request is told to find the coordinator again.
    Dead,
}

impl GroupState {
    /// Every state, for metrics.
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];

    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Timing settings shared by all groups.
#[derive(Debug, Clone, Copy)]
pub struct GroupTiming {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members (extended by each join, up to the
    /// rebalance timeout).
    pub initial_rebalance_delay: Duration,
}

/// What the coordinator must do after a state change.
#[derive(Debug, Default)]
pub struct Effects {
    /// Store this record for the group (a generation completed, or the
    /// group became empty).
    pub persist: Option<GroupRecord>,
    /// SyncGroup answers to send once `persist` is durable.
    pub after_persist: Vec<(oneshot::Sender<SyncResult>, SyncResult)>,
    /// Rebalances started by this change.
    pub rebalances: u64,
}

/// One group's live state.
#[derive(Debug)]
pub struct Group {
    id: String,
    state: GroupState,
    /// Wall-clock millis when the group entered `state`.
    state_ms: u64,
    protocol_type: Option<String>,
    generation: i32,
    protocol: Option<String>,
    leader: Option<String>,
    /// Members in join order (the first becomes leader).
    members: IndexMap<String, Member>,
    /// Static instance id → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline by
    /// which they must rejoin.
    pending: HashMap<String, Instant>,
    /// When an ongoing rebalance gives up on members that have not rejoined.
    rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group cannot complete before the
    /// first instant; joins push it out up to the second.
    initial_delay: Option<(Instant, Instant)>,
    timing: GroupTiming,
}

/// A snapshot of a group for DescribeGroups and the admin API.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    /// Group id.
    pub group_id: String,
    /// Current state.
    pub state: GroupState,
    /// Protocol type, empty when unknown.
    pub protocol_type: String,
    /// Selected protocol, empty when none.
    pub protocol: String,
    /// Generation id.
    pub generation: i32,
    /// Leader member id, if any.
    pub leader: Option<String>,
    /// Members with their metadata (for the selected protocol) and assignment.
    pub members: Vec<MemberSummary>,
}

/// One member in a [`GroupSummary`].
#[derive(Debug, Clone)]
pub struct MemberSummary {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol.
    pub metadata: Bytes,
    /// Current assignment.
    pub assignment: Bytes,
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, timing: GroupTiming) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_ms: distlog_metadata::now_ms(),
            protocol_type: None,
            generation: 0,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            timing,
        }
    }

    /// Rebuild a group from its stored record (coordinator start-up). A
    /// stored generation with members comes back Stable; each member has a
    /// session timeout from `now` to heartbeat, as after a Kafka
    /// coordinator failover.
    pub fn restore(id: &str, record: &GroupRecord, timing: GroupTiming, now: Instant) -> Group {
        let mut group = Group::new(id, timing);
        group.generation = record.generation;
        group.state_ms = record.state_ms;
        if !record.protocol_type.is_empty() {
            group.protocol_type = Some(record.protocol_type.clone());
        }
        if record.members.is_empty() {
            return group;
        }
        let protocol = record.protocol.clone().unwrap_or_default();
        for m in &record.members {
            let session_timeout = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            group.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol.clone(), Bytes::from(m.metadata.clone()))],
                    assignment: Bytes::from(m.assignment.clone()),
                    awaiting_join: None,
                    awaiting_sync: None,
                    heartbeat_deadline: now + session_timeout,
                },
            );
            if let Some(instance) = &m.group_instance_id {
                group.static_members.insert(instance.clone(), m.member_id.clone());
            }
        }
        group.protocol = record.protocol.clone();
        group.leader = record.leader.clone();
        group.state = GroupState::Stable;
        group
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The current generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The protocol type, if the group has one.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// Wall-clock millis when the group entered its state.
    pub fn state_ms(&self) -> u64 {
        self.state_ms
    }

    /// Whether the group has no members and no pending joins.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Each member's metadata for the selected protocol (for consumers,
    /// their serialized subscriptions).
    pub fn member_metadata(&self) -> Vec<Bytes> {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        self.members
            .values()
            .filter_map(|m| m.metadata_for(protocol).cloned())
            .collect()
    }

    /// Mark the group deleted; every waiter is told to find the coordinator again.
    pub fn mark_dead(&mut self) {
        self.mark_dead_with(ResponseError::CoordinatorNotAvailable);
    }

    /// Unload the group because this broker no longer coordinates it (as
    /// Kafka's `onGroupUnloaded`): pending JoinGroup and SyncGroup waiters
    /// get NOT_COORDINATOR, so their clients look the coordinator up again,
    /// and the group turns Dead, which stops its timer. Nothing is stored:
    /// the group's durable state now belongs to the new coordinator.
    pub fn unload(&mut self) {
        self.mark_dead_with(ResponseError::NotCoordinator);
    }

    fn mark_dead_with(&mut self, error: ResponseError) {
        for m in self.members.values_mut() {
            m.fail_waiters(error);
        }
        self.members.clear();
        self.static_members.clear();
        self.pending.clear();
        self.transition(GroupState::Dead);
    }

    fn transition(&mut self, state: GroupState) {
        self.state = state;
        self.state_ms = distlog_metadata::now_ms();
    }

    /// The stored form of the current generation.
    pub fn record(&self) -> GroupRecord {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        GroupRecord {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| GroupMemberRecord {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    metadata: m.metadata_for(protocol).map(|b| b.to_vec()).unwrap_or_default(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
            state_ms: self.state_ms,
        }
    }

    /// A snapshot for DescribeGroups.
    pub fn summary(&self) -> GroupSummary {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupSummary {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            generation: self.generation,
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&protocol).cloned().unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The error for a request naming `member_id` (and `instance_id`), if
    /// it is not the current member: FENCED_INSTANCE_ID when the instance
    /// belongs to another member id, UNKNOWN_MEMBER_ID otherwise.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Option<ResponseError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Some(ResponseError::FencedInstanceId),
                None => return Some(ResponseError::UnknownMemberId),
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        None
    }

    /// Protocols every member supports (all of `protocols` when empty).
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols
            .iter()
            .any(|(name, _)| self.members.values().all(|m| m.supports(name)))
    }

    /// Kafka's protocol selection: among protocols every member supports,
    /// the one most members list first (ties go to the first member's
    /// preference order).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut best: Option<(&String, usize)> = None;
        for candidate in &candidates {
            let votes = self
                .members
                .values()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .map(|(n, _)| n)
                        .find(|n| candidates.contains(n))
                        .is_some_and(|n| n == *candidate)
                })
                .count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((candidate, votes));
            }
        }
        best.map(|(n, _)| n.clone())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
