//! The protocol transitions of a [`Group`]: joins, syncs, heartbeats,
//! leaves, and the timer-driven expiries that end rebalances and sessions.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{new_member_id, Effects, Group, GroupState};
use crate::group::member::{JoinRequest, JoinResult, Member, SyncResult};

impl Group {
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
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or_default(),
            leader = self.leader.as_deref().unwrap_or_default(),
            "rebalance joined: waiting for the leader's assignment"
        );
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
                tracing::info!(
                    group = %self.id,
                    generation = self.generation,
                    members = self.members.len(),
                    "rebalance completed: the leader's assignment is being stored and distributed"
                );
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
        if identified(member_id, instance_id, generation) {
            if let Some(e) = self.check_identified(member_id, instance_id, generation) {
                return Some(e);
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

    /// Whether a TxnOffsetCommit from this member and generation may be
    /// staged in its transaction: `None` when it may. Kafka's transactional
    /// validation: the member, static instance and generation are checked
    /// when any of them is given, as for [`Group::check_commit`]; a commit
    /// without them (generation -1, no member id: older producers, or
    /// `sendOffsetsToTransaction` with only a group id) is allowed whatever
    /// the members, and a rebalance being completed does not refuse it (the
    /// offsets only become visible when the transaction commits).
    pub fn check_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if identified(member_id, instance_id, generation) {
            return self.check_identified(member_id, instance_id, generation);
        }
        None
    }

    /// The member, static instance and generation checks of an offset
    /// commit that names them.
    fn check_identified(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if let Some(e) = self.check_member(member_id, instance_id) {
            return Some(e);
        }
        (generation != self.generation).then_some(ResponseError::IllegalGeneration)
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

/// Whether an offset commit names a member, a static instance or a
/// generation (and is checked against them), rather than being a
/// standalone commit (generation -1, no member id, no instance id).
fn identified(member_id: &str, instance_id: Option<&str>, generation: i32) -> bool {
    generation >= 0 || !member_id.is_empty() || instance_id.is_some()
}
