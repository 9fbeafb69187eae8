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

use super::member::{JoinRequest, JoinResult, Member, SyncResult};

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

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
            state_ms: wall_ms(),
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
        for m in self.members.values_mut() {
            m.fail_waiters(ResponseError::CoordinatorNotAvailable);
        }
        self.members.clear();
        self.static_members.clear();
        self.pending.clear();
        self.transition(GroupState::Dead);
    }

    fn transition(&mut self, state: GroupState) {
        self.state = state;
        self.state_ms = wall_ms();
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

    /// Handle a JoinGroup. The answer goes to `tx`, now or when the
    /// rebalance completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        tx: oneshot::Sender<JoinResult>,
        fx: &mut Effects,
    ) {
        if self.state == GroupState::Dead {
            let _ = tx.send(JoinResult::error(
                &req.member_id,
                ResponseError::CoordinatorNotAvailable,
            ));
            return;
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            let _ = tx.send(JoinResult::error(
                &req.member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
            return;
        }
        if req.member_id.is_empty() {
            if let Some(instance) = req.instance_id.clone() {
                let member_id = new_member_id(&instance);
                if self.static_members.contains_key(&instance) {
                    self.replace_static_member(&instance, member_id, req, now, tx, fx);
                } else {
                    self.add_member_and_rebalance(member_id, req, now, tx, fx);
                }
            } else {
                let member_id = new_member_id(&req.client_id);
                if req.require_known_member_id {
                    self.pending.insert(member_id.clone(), now + req.session_timeout);
                    let _ = tx.send(JoinResult::error(&member_id, ResponseError::MemberIdRequired));
                } else {
                    self.add_member_and_rebalance(member_id, req, now, tx, fx);
                }
            }
            return;
        }
        if self.pending.remove(&req.member_id).is_some() {
            let member_id = req.member_id.clone();
            self.add_member_and_rebalance(member_id, req, now, tx, fx);
            return;
        }
        if let Some(error) = self.check_member(&req.member_id, req.instance_id.as_deref()) {
            let _ = tx.send(JoinResult::error(&req.member_id, error));
            return;
        }
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, now, tx, fx),
            GroupState::CompletingRebalance => {
                let unchanged = self.members[&req.member_id].same_protocols(&req.protocols);
                if unchanged {
                    // A retried join of this generation: answer it again.
                    let result = self.join_result_for(&req.member_id, true);
                    let _ = tx.send(result);
                } else {
                    self.update_member_and_rebalance(req, now, tx, fx);
                }
            }
            GroupState::Stable => {
                let member = &self.members[&req.member_id];
                let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
                if is_leader || !member.same_protocols(&req.protocols) {
                    self.update_member_and_rebalance(req, now, tx, fx);
                } else {
                    // A follower rejoining with nothing new keeps the generation.
                    let result = self.join_result_for(&req.member_id, false);
                    if let Some(m) = self.members.get_mut(&req.member_id) {
                        m.touch(now);
                    }
                    let _ = tx.send(result);
                }
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(JoinResult::error(&req.member_id, ResponseError::UnknownMemberId));
            }
        }
    }

    /// The join answer of the current generation for one member (with all
    /// members' metadata when it is the leader and `with_members`).
    fn join_result_for(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if with_members && leader == member_id {
            self.members
                .values()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(&protocol).cloned().unwrap_or_default(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            member_id: member_id.to_string(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            members,
            skip_assignment: false,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now: Instant,
        tx: oneshot::Sender<JoinResult>,
        fx: &mut Effects,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), member_id.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            heartbeat_deadline: now + req.session_timeout,
        };
        self.members.insert(member_id.clone(), member);
        if self.leader.is_none() {
            self.leader = Some(member_id);
        }
        if let Some((until, max)) = self.initial_delay {
            // KIP-134: every join during the initial delay extends it.
            let extended = (now + self.timing.initial_rebalance_delay).min(max);
            self.initial_delay = Some((until.max(extended), max));
        }
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now, fx),
            _ => self.prepare_rebalance(now, fx),
        }
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        now: Instant,
        tx: oneshot::Sender<JoinResult>,
        fx: &mut Effects,
    ) {
        if let Some(member) = self.members.get_mut(&req.member_id) {
            member.protocols = req.protocols;
            member.session_timeout = req.session_timeout;
            member.rebalance_timeout = req.rebalance_timeout;
            member.client_id = req.client_id;
            member.client_host = req.client_host;
            if let Some(old) = member.awaiting_join.replace(tx) {
                let _ = old.send(JoinResult::error(
                    &req.member_id,
                    ResponseError::RebalanceInProgress,
                ));
            }
        }
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now, fx),
            _ => self.prepare_rebalance(now, fx),
        }
    }

    /// A static member rejoined without its member id (it restarted): the
    /// old id is fenced and the new one takes over its assignment. In a
    /// Stable group whose protocol does not change this needs no rebalance
    /// (KIP-345).
    fn replace_static_member(
        &mut self,
        instance: &str,
        new_id: String,
        req: JoinRequest,
        now: Instant,
        tx: oneshot::Sender<JoinResult>,
        fx: &mut Effects,
    ) {
        let old_id = self.static_members[instance].clone();
        let Some(mut old) = self.members.shift_remove(&old_id) else {
            self.static_members.remove(instance);
            self.add_member_and_rebalance(new_id, req, now, tx, fx);
            return;
        };
        old.fail_waiters(ResponseError::FencedInstanceId);
        let previous_leader = self.leader.clone().unwrap_or_default();
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        self.static_members.insert(instance.to_string(), new_id.clone());
        let member = Member {
            member_id: new_id.clone(),
            instance_id: Some(instance.to_string()),
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: req.protocols,
            assignment: old.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            heartbeat_deadline: now + req.session_timeout,
        };
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol {
                    fx.persist = Some(self.record());
                    // The old leader id is returned so that the replaced
                    // member, even if it led, does not recompute an
                    // assignment a Stable group would not distribute.
                    let mut result = self.join_result_for(&new_id, false);
                    result.leader = previous_leader;
                    let _ = tx.send(result);
                } else {
                    self.members[&new_id].awaiting_join.replace(tx);
                    self.prepare_rebalance(now, fx);
                }
            }
            GroupState::CompletingRebalance => {
                self.members[&new_id].awaiting_join.replace(tx);
                self.prepare_rebalance(now, fx);
            }
            _ => {
                self.members[&new_id].awaiting_join.replace(tx);
                self.maybe_complete_join(now, fx);
            }
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being computed is obsolete.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.awaiting_sync.take() {
                    let _ = tx.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        if self.state == GroupState::Empty {
            let delay = self.timing.initial_rebalance_delay.min(timeout);
            self.initial_delay = if delay.is_zero() {
                None
            } else {
                Some((now + delay, now + timeout))
            };
        }
        self.rebalance_deadline = Some(now + timeout);
        self.transition(GroupState::PreparingRebalance);
        fx.rebalances += 1;
        self.maybe_complete_join(now, fx);
    }

    fn maybe_complete_join(&mut self, now: Instant, fx: &mut Effects) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some((until, _)) = self.initial_delay {
            if now < until {
                return;
            }
            self.initial_delay = None;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some()) && self.pending.is_empty();
        if all_joined {
            self.complete_join(now, fx);
        }
    }

    /// End the join phase: drop members that did not rejoin, start the
    /// next generation and answer every waiting join.
    fn complete_join(&mut self, now: Instant, fx: &mut Effects) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.rebalance_deadline = None;
        self.initial_delay = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty);
            fx.persist = Some(self.record());
            return;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result_for(&id, true);
            let member = &mut self.members[&id];
            member.touch(now);
            if let Some(tx) = member.awaiting_join.take() {
                let _ = tx.send(result);
            }
        }
    }

    /// Remove a member (its waiters are told it is unknown).
    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut m) = self.members.shift_remove(member_id) {
            m.fail_waiters(ResponseError::UnknownMemberId);
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// A member left or expired: rebalance the others.
    fn member_gone(&mut self, member_id: &str, now: Instant, fx: &mut Effects) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now, fx),
            GroupState::PreparingRebalance => self.maybe_complete_join(now, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Handle a SyncGroup. The answer goes to `tx` now, or (for every
    /// member) once the leader's assignment is durable.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
        tx: oneshot::Sender<SyncResult>,
        fx: &mut Effects,
    ) {
        let fail = |tx: oneshot::Sender<SyncResult>, e| {
            let _ = tx.send(SyncResult::error(e));
        };
        if self.state == GroupState::Dead {
            return fail(tx, ResponseError::CoordinatorNotAvailable);
        }
        if let Some(e) = self.check_member(member_id, instance_id) {
            return fail(tx, e);
        }
        if generation != self.generation {
            return fail(tx, ResponseError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != self.protocol.as_deref())
        {
            return fail(tx, ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(tx, ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(tx, ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                let is_leader = self.leader.as_deref() == Some(member_id);
                let member = &mut self.members[member_id];
                member.touch(now);
                if let Some(old) = member.awaiting_sync.replace(tx) {
                    fail(old, ResponseError::RebalanceInProgress);
                }
                if !is_leader {
                    return;
                }
                let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                for m in self.members.values_mut() {
                    m.assignment = assignments.remove(&m.member_id).unwrap_or_default();
                }
                self.transition(GroupState::Stable);
                fx.persist = Some(self.record());
                let (protocol_type, protocol) = (self.protocol_type.clone(), self.protocol.clone());
                for m in self.members.values_mut() {
                    if let Some(tx) = m.awaiting_sync.take() {
                        let result = SyncResult {
                            error: None,
                            protocol_type: protocol_type.clone(),
                            protocol: protocol.clone(),
                            assignment: m.assignment.clone(),
                        };
                        fx.after_persist.push((tx, result));
                    }
                }
            }
            GroupState::Stable => {
                let member = &mut self.members[member_id];
                member.touch(now);
                let result = SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    assignment: member.assignment.clone(),
                };
                let _ = tx.send(result);
            }
        }
    }

    /// The leader's assignment could not be stored: every member must
    /// rejoin (Kafka answers the waiting syncs with the error and
    /// rebalances).
    pub fn assignment_not_stored(&mut self, generation: i32, now: Instant, fx: &mut Effects) {
        if self.generation == generation && self.state == GroupState::Stable {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
            }
            self.prepare_rebalance(now, fx);
        }
    }

    /// Handle a Heartbeat: `None` means the member is in good standing.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(e) = self.check_member(member_id, instance_id) {
            return Some(e);
        }
        if self.state == GroupState::Empty {
            return Some(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        self.members[member_id].touch(now);
        match self.state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ => None,
        }
    }

    /// Handle one member of a LeaveGroup. `member_id` may be empty when the
    /// static `instance_id` identifies the member.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        let target = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => return Some(ResponseError::UnknownMemberId),
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return Some(ResponseError::FencedInstanceId)
                }
                Some(current) => current.clone(),
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&target).is_some() {
            self.maybe_complete_join(now, fx);
            return None;
        }
        if !self.members.contains_key(&target) {
            return Some(ResponseError::UnknownMemberId);
        }
        self.member_gone(&target, now, fx);
        None
    }

    /// Whether an OffsetCommit from this member and generation may be
    /// stored: `None` when it may. A commit with generation -1, no member
    /// id and no instance id is a standalone (assign-based) commit, allowed
    /// while the group has no members.
    pub fn check_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Some(e) = self.check_member(member_id, instance_id) {
                return Some(e);
            }
            if generation != self.generation {
                return Some(ResponseError::IllegalGeneration);
            }
            if self.state == GroupState::CompletingRebalance {
                return Some(ResponseError::RebalanceInProgress);
            }
            return None;
        }
        if !self.members.is_empty() {
            // Only members may commit for a group with members.
            return Some(ResponseError::UnknownMemberId);
        }
        None
    }

    /// The earliest instant at which [`Group::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(t) = self.rebalance_deadline {
            consider(t);
        }
        if let Some((until, _)) = self.initial_delay {
            consider(until);
        }
        for t in self.pending.values() {
            consider(*t);
        }
        for m in self.members.values() {
            if m.awaiting_join.is_none() && m.awaiting_sync.is_none() {
                consider(m.heartbeat_deadline);
            }
        }
        next
    }

    /// Expire what is due at `now`: the initial delay, the rebalance
    /// timeout, members whose session timed out, and unclaimed pending
    /// member ids.
    pub fn tick(&mut self, now: Instant, fx: &mut Effects) {
        if self.state == GroupState::Dead {
            return;
        }
        let expired_pending: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired_pending {
            self.pending.remove(&id);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none() && m.heartbeat_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member expelled: no heartbeat within its session timeout");
            self.member_gone(&id, now, fx);
        }
        if self.state == GroupState::PreparingRebalance {
            if self.rebalance_deadline.is_some_and(|t| t <= now) {
                self.complete_join(now, fx);
            } else {
                self.maybe_complete_join(now, fx);
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
