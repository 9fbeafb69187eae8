//! The group coordinator: Kafka's classic consumer-group protocol over the
//! metadata store.
//!
//! Each group's live state is a [`state::Group`] behind its own lock, with a
//! timer task that expires sessions and ends rebalances. What must outlive
//! this process (committed offsets, each completed generation) goes through
//! the batching [`store::GroupStore`] into the Raft-replicated metadata
//! state, from which groups are restored at start-up. Offsets are read
//! straight from the local metadata replica.
//!
//! Which broker coordinates a group is a pure function of the group id and
//! the live brokers in the metadata store, so every broker answers
//! FindCoordinator alike.

pub mod member;
mod offsets;
pub mod protocol;
mod retention;
pub mod state;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use distlog_metadata::{BrokerInfo, GroupOp, MetadataStore};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tracing::{info, info_span, Instrument};

use crate::config::BrokerConfig;
use crate::metrics;
use member::{JoinRequest, JoinResult, SyncResult};
use state::{Effects, Group, GroupState, GroupSummary, GroupTiming};
use store::{GroupStore, StoreResult};

/// Kafka's `offset.metadata.max.bytes`: the longest metadata string stored
/// with a committed offset.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// One group's state and the wake-up of its timer task.
struct GroupSlot {
    group: Mutex<Group>,
    wake: Notify,
}

/// The answer to one partition of an OffsetFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// The committed offset, -1 when none.
    pub offset: i64,
    /// Its leader epoch, -1 when none.
    pub leader_epoch: i32,
    /// Its metadata string.
    pub metadata: String,
    /// UNSTABLE_OFFSET_COMMIT when a commit is in flight and the client
    /// asked for stable offsets.
    pub error: Option<ResponseError>,
}

impl FetchedOffset {
    /// No committed offset.
    pub fn none() -> FetchedOffset {
        FetchedOffset {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error: None,
        }
    }

    /// The same answer with an error.
    pub fn with_error(self, error: ResponseError) -> FetchedOffset {
        FetchedOffset {
            error: Some(error),
            ..self
        }
    }
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type (empty for offsets-only groups).
    pub protocol_type: String,
    /// State name.
    pub state: GroupState,
}

/// The coordinator of every group this broker is responsible for.
pub struct GroupCoordinator {
    meta: Arc<MetadataStore>,
    node_id: u32,
    store: Arc<GroupStore>,
    groups: Mutex<HashMap<String, Arc<GroupSlot>>>,
    timing: GroupTiming,
    min_session: Duration,
    max_session: Duration,
    retention: Duration,
}

/// A state change's follow-up: a durable write to wait for, and the
/// SyncGroup answers it gates.
struct Pending {
    write: Option<(oneshot::Receiver<StoreResult>, i32)>,
    fx: Effects,
}

impl GroupCoordinator {
    /// Restore every stored group and start the timers and the retention
    /// sweep. Must run inside the Tokio runtime.
    pub fn start(meta: Arc<MetadataStore>, config: &BrokerConfig) -> Arc<GroupCoordinator> {
        let timing = GroupTiming {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
        };
        let coordinator = Arc::new(GroupCoordinator {
            store: Arc::new(GroupStore::start(meta.clone())),
            meta: meta.clone(),
            node_id: config.node_id,
            groups: Mutex::new(HashMap::new()),
            timing,
            min_session: Duration::from_millis(config.group_min_session_timeout_ms),
            max_session: Duration::from_millis(config.group_max_session_timeout_ms),
            retention: Duration::from_secs(config.offsets_retention_minutes.saturating_mul(60)),
        });
        let stored: Vec<(String, distlog_metadata::GroupRecord)> = meta.read(|s| {
            s.groups
                .iter()
                .map(|(id, g)| (id.clone(), g.record.clone()))
                .collect()
        });
        let now = Instant::now();
        for (id, record) in &stored {
            let group = Group::restore(id, record, timing, now);
            coordinator.insert_slot(id, group);
        }
        if !stored.is_empty() {
            info!(
                groups = stored.len(),
                "consumer groups restored from the metadata store"
            );
        }
        let interval = Duration::from_millis(config.offsets_retention_check_interval_ms);
        let weak = Arc::downgrade(&coordinator);
        tokio::spawn(
            async move {
                let mut gauge_tick = tokio::time::interval(Duration::from_secs(1));
                let mut last_sweep = Instant::now();
                loop {
                    gauge_tick.tick().await;
                    let Some(c) = weak.upgrade() else { return };
                    c.update_gauges();
                    if last_sweep.elapsed() >= interval {
                        last_sweep = Instant::now();
                        c.expire_offsets().await;
                    }
                }
            }
            .instrument(info_span!("group_maintenance")),
        );
        coordinator
    }

    /// The broker coordinating `group`: a stable hash of the group id over
    /// the brokers with a live lease (this broker when none is registered).
    pub fn coordinator_for(&self, group: &str) -> Option<BrokerInfo> {
        let now_ms = distlog_metadata::now_ms();
        self.meta.read(|s| {
            let live: Vec<&BrokerInfo> = s.live_brokers(now_ms).collect();
            if live.is_empty() {
                return s.brokers.get(&self.node_id).cloned();
            }
            let idx = crc32c::crc32c(group.as_bytes()) as usize % live.len();
            Some(live[idx].clone())
        })
    }

    /// Whether this broker coordinates `group`.
    pub fn is_coordinator(&self, group: &str) -> bool {
        self.coordinator_for(group).is_none_or(|b| b.id == self.node_id)
    }

    /// This broker's node id.
    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    fn insert_slot(&self, id: &str, group: Group) -> Arc<GroupSlot> {
        let slot = Arc::new(GroupSlot {
            group: Mutex::new(group),
            wake: Notify::new(),
        });
        self.groups.lock().insert(id.to_string(), slot.clone());
        tokio::spawn(
            run_timer(slot.clone(), self.store.clone(), id.to_string())
                .instrument(info_span!("group_timer", group = %id)),
        );
        slot
    }

    fn slot(&self, id: &str) -> Option<Arc<GroupSlot>> {
        self.groups.lock().get(id).cloned()
    }

    fn slot_or_create(&self, id: &str) -> Arc<GroupSlot> {
        if let Some(slot) = self.slot(id) {
            return slot;
        }
        let mut groups = self.groups.lock();
        if let Some(slot) = groups.get(id) {
            return slot.clone();
        }
        let slot = Arc::new(GroupSlot {
            group: Mutex::new(Group::new(id, self.timing)),
            wake: Notify::new(),
        });
        groups.insert(id.to_string(), slot.clone());
        drop(groups);
        tokio::spawn(
            run_timer(slot.clone(), self.store.clone(), id.to_string())
                .instrument(info_span!("group_timer", group = %id)),
        );
        slot
    }

    /// Check what every group request checks first: a valid group id and
    /// that this broker is the group's coordinator.
    pub fn check_group(&self, group: &str) -> Option<ResponseError> {
        if group.is_empty() {
            return Some(ResponseError::InvalidGroupId);
        }
        if !self.is_coordinator(group) {
            return Some(ResponseError::NotCoordinator);
        }
        None
    }

    /// Handle a JoinGroup; completes when the member's rebalance does.
    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        if let Some(e) = self.check_group(group_id) {
            return JoinResult::error(&req.member_id, e);
        }
        if req.session_timeout < self.min_session || req.session_timeout > self.max_session {
            return JoinResult::error(&req.member_id, ResponseError::InvalidSessionTimeout);
        }
        let slot = if req.member_id.is_empty() {
            self.slot_or_create(group_id)
        } else {
            match self.slot(group_id) {
                Some(slot) => slot,
                None => return JoinResult::error(&req.member_id, ResponseError::UnknownMemberId),
            }
        };
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        let pending = self.update(&slot, group_id, |g, fx| g.join(req, Instant::now(), tx, fx));
        self.finish(&slot, pending);
        rx.await
            .unwrap_or_else(|_| JoinResult::error(&member_id, ResponseError::CoordinatorNotAvailable))
    }

    /// Handle a SyncGroup; completes when the leader's assignment is stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        if let Some(e) = self.check_group(group_id) {
            return SyncResult::error(e);
        }
        let Some(slot) = self.slot(group_id) else {
            return SyncResult::error(ResponseError::UnknownMemberId);
        };
        let (tx, rx) = oneshot::channel();
        let pending = self.update(&slot, group_id, |g, fx| {
            g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol,
                assignments,
                Instant::now(),
                tx,
                fx,
            )
        });
        self.finish(&slot, pending);
        rx.await
            .unwrap_or_else(|_| SyncResult::error(ResponseError::CoordinatorNotAvailable))
    }

    /// Handle a Heartbeat: `None` when the member is in good standing.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if let Some(e) = self.check_group(group_id) {
            return Some(e);
        }
        let Some(slot) = self.slot(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let result = slot
            .group
            .lock()
            .heartbeat(member_id, instance_id, generation, Instant::now());
        slot.wake.notify_one();
        result
    }

    /// Handle a LeaveGroup: the group-level error, or one result per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(e) = self.check_group(group_id) {
            return Err(e);
        }
        let Some(slot) = self.slot(group_id) else {
            return Ok(members
                .iter()
                .map(|_| Some(ResponseError::UnknownMemberId))
                .collect());
        };
        let (results, pending) = self.update_with(&slot, group_id, |g, fx| {
            let now = Instant::now();
            members
                .iter()
                .map(|(member, instance)| {
                    let r = g.leave(member, instance.as_deref(), now, fx);
                    if r.is_none() {
                        info!(group = %group_id, member = %member, "member left the group");
                    }
                    r
                })
                .collect::<Vec<_>>()
        });
        self.finish(&slot, pending);
        Ok(results)
    }

    /// Every group this broker coordinates: live ones and those that exist
    /// only as stored offsets.
    pub fn list(&self) -> Vec<ListedGroup> {
        let mut out: HashMap<String, ListedGroup> = HashMap::new();
        for (id, slot) in self.groups.lock().iter() {
            let g = slot.group.lock();
            if g.state() == GroupState::Dead {
                continue;
            }
            out.insert(
                id.clone(),
                ListedGroup {
                    group_id: id.clone(),
                    protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                    state: g.state(),
                },
            );
        }
        self.meta.read(|s| {
            for (id, g) in &s.groups {
                out.entry(id.clone()).or_insert_with(|| ListedGroup {
                    group_id: id.clone(),
                    protocol_type: g.record.protocol_type.clone(),
                    state: GroupState::Empty,
                });
            }
        });
        let mut list: Vec<ListedGroup> = out
            .into_values()
            .filter(|g| self.is_coordinator(&g.group_id))
            .collect();
        list.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        list
    }

    /// A group's description, or `None` when it does not exist.
    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        if let Some(slot) = self.slot(group_id) {
            let g = slot.group.lock();
            if g.state() != GroupState::Dead {
                return Some(g.summary());
            }
        }
        let stored = self.meta.read(|s| s.groups.contains_key(group_id));
        stored.then(|| Group::new(group_id, self.timing).summary())
    }

    /// Delete an empty group and its offsets (DeleteGroups).
    pub async fn delete(&self, group_id: &str) -> Option<ResponseError> {
        if let Some(e) = self.check_group(group_id) {
            return Some(e);
        }
        let stored = self.meta.read(|s| s.groups.contains_key(group_id));
        let rx = {
            let mut groups = self.groups.lock();
            match groups.get(group_id).cloned() {
                Some(slot) => {
                    let mut g = slot.group.lock();
                    match g.state() {
                        GroupState::Dead => return Some(ResponseError::GroupIdNotFound),
                        GroupState::Empty if g.is_empty() => {}
                        _ => return Some(ResponseError::NonEmptyGroup),
                    }
                    g.mark_dead();
                    groups.remove(group_id);
                    slot.wake.notify_one();
                }
                None if stored => {}
                None => return Some(ResponseError::GroupIdNotFound),
            }
            self.store.submit(vec![GroupOp::DeleteGroup {
                group: group_id.to_string(),
            }])
        };
        info!(group = %group_id, "group deleted");
        rx.await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
            .err()
    }

    /// Run `f` on the group under its lock; submit the state it asks to
    /// store while still holding the lock (so records reach the log in
    /// order).
    fn update(&self, slot: &GroupSlot, group_id: &str, f: impl FnOnce(&mut Group, &mut Effects)) -> Pending {
        self.update_with(slot, group_id, f).1
    }

    fn update_with<R>(
        &self,
        slot: &GroupSlot,
        group_id: &str,
        f: impl FnOnce(&mut Group, &mut Effects) -> R,
    ) -> (R, Pending) {
        let mut fx = Effects::default();
        let mut group = slot.group.lock();
        let r = f(&mut group, &mut fx);
        let pending = submit_effects(&self.store, group_id, &group, fx);
        drop(group);
        slot.wake.notify_one();
        (r, pending)
    }

    fn finish(&self, slot: &Arc<GroupSlot>, pending: Pending) {
        spawn_finish(slot.clone(), pending);
    }

    fn update_gauges(&self) {
        let mut counts: HashMap<GroupState, i64> = HashMap::new();
        for slot in self.groups.lock().values() {
            *counts.entry(slot.group.lock().state()).or_default() += 1;
        }
        for state in GroupState::ALL {
            metrics::GROUPS
                .with_label_values(&[state.name()])
                .set(counts.get(&state).copied().unwrap_or(0));
        }
    }
}

fn submit_effects(store: &GroupStore, group_id: &str, group: &Group, fx: Effects) -> Pending {
    if fx.rebalances > 0 {
        metrics::GROUP_REBALANCES.inc_by(fx.rebalances);
        info!(group = %group_id, generation = group.generation(), state = group.state().name(), "rebalance triggered");
    }
    let mut fx = fx;
    let write = fx.persist.take().map(|record| {
        let generation = record.generation;
        let rx = store.submit(vec![GroupOp::StoreGroup {
            group: group_id.to_string(),
            record,
        }]);
        (rx, generation)
    });
    Pending { write, fx }
}

/// Deliver what waits on a durable write, off the request path (so a
/// client hanging up cannot strand the other members' answers).
fn spawn_finish(slot: Arc<GroupSlot>, mut pending: Pending) {
    if pending.write.is_none() && pending.fx.after_persist.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let stored = match pending.write.take() {
            Some((rx, generation)) => match rx.await.unwrap_or(Err(ResponseError::CoordinatorNotAvailable)) {
                Ok(()) => Ok(()),
                Err(e) => Err((e, generation)),
            },
            None => Ok(()),
        };
        match stored {
            Ok(()) => {
                for (tx, result) in pending.fx.after_persist.drain(..) {
                    let _ = tx.send(result);
                }
            }
            Err((error, generation)) => {
                for (tx, _) in pending.fx.after_persist.drain(..) {
                    let _ = tx.send(SyncResult::error(error));
                }
                let mut fx = Effects::default();
                slot.group
                    .lock()
                    .assignment_not_stored(generation, Instant::now(), &mut fx);
                slot.wake.notify_one();
            }
        }
    });
}

/// Expire sessions and end rebalances of one group when they are due.
async fn run_timer(slot: Arc<GroupSlot>, store: Arc<GroupStore>, group_id: String) {
    loop {
        let next = {
            let g = slot.group.lock();
            if g.state() == GroupState::Dead {
                return;
            }
            g.next_deadline()
        };
        match next {
            Some(t) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(t) => {}
                    _ = slot.wake.notified() => {}
                }
            }
            None => slot.wake.notified().await,
        }
        let pending = {
            let mut fx = Effects::default();
            let mut g = slot.group.lock();
            g.tick(Instant::now(), &mut fx);
            submit_effects(&store, &group_id, &g, fx)
        };
        spawn_finish(slot.clone(), pending);
    }
}
