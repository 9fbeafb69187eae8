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
//! the live brokers in the metadata store ([`placement`]), so every broker
//! answers FindCoordinator alike.
//!
//! # Coordinator moves
//!
//! Only the groups this broker coordinates are live here. An ownership
//! check ([`GroupCoordinator::reconcile`]) runs at start-up, every
//! [`OWNERSHIP_CHECK_INTERVAL`] and on every broker registration: a group
//! that moved away is unloaded (its pending JoinGroup/SyncGroup waiters get
//! NOT_COORDINATOR, its timer stops, nothing more is written for it), and a
//! stored group that moved here is loaded fresh from the metadata store
//! ([`Group::restore`]), under a claim (below). A group this broker held that may have been
//! coordinated elsewhere in between (a broker's lease lapsed and was renewed
//! between two checks) is reloaded the same way rather than trusted. A
//! request for a group that moved here before the next check loads it on
//! demand. Every request first checks coordinatorship against the current
//! metadata (NOT_COORDINATOR otherwise), and [`store::GroupStore`] checks it
//! again before queueing and before writing each change.
//!
//! # Claims
//!
//! Brokers decide placement from their own replica and wall clock, so near
//! a lease expiry, or when one is cut off from the metadata quorum, two may
//! both believe they coordinate a group. Claims make that harmless: a
//! broker claims a group ([`MetadataStore::claim_group`], a Raft write that
//! also brings its replica up to date) before it loads it, and every change
//! it stores carries the claim; the metadata store applies a change only
//! while its claim is the group's latest, and reports the others, which
//! fail with NOT_COORDINATOR. So a broker without a quorum cannot load a
//! group at all (COORDINATOR_NOT_AVAILABLE), a deposed coordinator's late
//! changes are refused rather than applied or falsely acknowledged, and
//! the ownership check reloads a held group someone else has claimed since.
//! What remains is a deposed coordinator answering heartbeats from memory
//! until its next check or write: a member keeps its session a little
//! longer, and its commits there fail.

mod loading;
pub mod member;
mod offsets;
pub mod placement;
pub mod protocol;
mod retention;
pub mod state;
pub mod store;
#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use distlog_metadata::{BrokerInfo, GroupOp, MetaEvent, MetadataStore, NodeId};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::{broadcast, oneshot, Notify};
use tokio::time::Instant;
use tracing::{info, info_span, Instrument};

use crate::config::BrokerConfig;
use crate::metrics;
use member::{JoinRequest, JoinResult, SyncResult};
use placement::LiveBrokers;
use state::{Effects, Group, GroupState, GroupSummary, GroupTiming};
use store::{GroupStore, StoreResult};

/// Kafka's `offset.metadata.max.bytes`: the longest metadata string stored
/// with a committed offset.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// How often the coordinator checks which groups it coordinates (besides
/// every broker registration it sees).
pub const OWNERSHIP_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// How long a load waits for its claim (a broker cut off from the metadata
/// quorum cannot make one; its clients get COORDINATOR_NOT_AVAILABLE and
/// look the coordinator up again).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// One group's state and the wake-up of its timer task.
struct GroupSlot {
    group: Mutex<Group>,
    wake: Notify,
    /// Loaded (or created) since the last ownership check: its state is
    /// as fresh as the metadata store, whatever placements came before.
    fresh: AtomicBool,
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
    node_id: NodeId,
    store: Arc<GroupStore>,
    groups: Mutex<HashMap<String, Arc<GroupSlot>>>,
    timing: GroupTiming,
    min_session: Duration,
    max_session: Duration,
    retention: Duration,
    /// The brokers and leases seen by the last ownership check.
    last_view: Mutex<Option<BrokerView>>,
    /// One lock per group being loaded, so a group is claimed and loaded
    /// once at a time here (a second claim would fence the first load).
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This coordinator, for the loads it starts in the background.
    me: std::sync::Weak<GroupCoordinator>,
}

/// What the ownership check saw of the brokers: the live set and each
/// broker's lease expiry (wall-clock ms), to tell at the next check whether
/// a broker's lease lapsed in between even if it was renewed since.
#[derive(Debug, Clone)]
struct BrokerView {
    live: LiveBrokers,
    leases: BTreeMap<NodeId, u64>,
}

/// What one ownership check changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Groups unloaded because another broker coordinates them now.
    pub unloaded: Vec<String>,
    /// Groups loaded from the metadata store (moved here, or reloaded
    /// because they may have been coordinated elsewhere meanwhile).
    pub loaded: Vec<String>,
}

/// A state change's follow-up: a durable write to wait for, and the
/// SyncGroup answers it gates.
struct Pending {
    write: Option<(oneshot::Receiver<StoreResult>, i32)>,
    fx: Effects,
}

impl GroupCoordinator {
    /// Load the stored groups this broker coordinates, and start their
    /// timers, the ownership check and the retention sweep. Must run inside
    /// the Tokio runtime.
    pub fn start(meta: Arc<MetadataStore>, config: &BrokerConfig) -> Arc<GroupCoordinator> {
        let timing = GroupTiming {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
        };
        let coordinator = Arc::new_cyclic(|me| GroupCoordinator {
            store: Arc::new(GroupStore::start(meta.clone(), config.node_id)),
            meta: meta.clone(),
            node_id: config.node_id,
            groups: Mutex::new(HashMap::new()),
            timing,
            min_session: Duration::from_millis(config.group_min_session_timeout_ms),
            max_session: Duration::from_millis(config.group_max_session_timeout_ms),
            retention: Duration::from_secs(config.offsets_retention_minutes.saturating_mul(60)),
            last_view: Mutex::new(None),
            loading: Mutex::new(HashMap::new()),
            me: me.clone(),
        });
        let restored = coordinator.reconcile();
        if !restored.loaded.is_empty() {
            info!(
                groups = restored.loaded.len(),
                "restoring consumer groups from the metadata store"
            );
        }
        tokio::spawn(
            watch_ownership(Arc::downgrade(&coordinator), meta.subscribe())
                .instrument(info_span!("group_ownership")),
        );
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
            match placement::coordinator_index(group, live.len()) {
                Some(idx) => Some(live[idx].clone()),
                None => s.brokers.get(&self.node_id).cloned(),
            }
        })
    }

    /// The live brokers now, as placement sees them from this broker.
    fn live_brokers(&self) -> LiveBrokers {
        let now_ms = distlog_metadata::now_ms();
        self.meta.read(|s| LiveBrokers::read(s, now_ms, self.node_id))
    }

    /// Whether this broker coordinates `group`.
    pub fn is_coordinator(&self, group: &str) -> bool {
        self.coordinator_for(group).is_none_or(|b| b.id == self.node_id)
    }

    /// This broker's node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// A live slot for `group`, with its timer running (the caller inserts it).
    fn new_slot(&self, id: &str, group: Group) -> Arc<GroupSlot> {
        let slot = Arc::new(GroupSlot {
            group: Mutex::new(group),
            wake: Notify::new(),
            fresh: AtomicBool::new(true),
        });
        tokio::spawn(
            run_timer(slot.clone(), self.store.clone(), id.to_string())
                .instrument(info_span!("group_timer", group = %id)),
        );
        slot
    }

    /// The group's live slot, if it has one here.
    fn slot(&self, id: &str) -> Option<Arc<GroupSlot>> {
        self.groups.lock().get(id).cloned()
    }

    /// Check which groups this broker coordinates and make the live slots
    /// match: unload groups that moved away (pending joins and syncs get
    /// NOT_COORDINATOR; nothing more is written for them) and load stored
    /// groups that moved here, fresh from the metadata store.
    ///
    /// Cheap enough to run often: one pass over the held and the stored
    /// groups, one hash per group. Besides the current placement, a held
    /// group is checked against the placements the cluster may have passed
    /// through since the last check (a broker whose lease lapsed and was
    /// renewed in between, brokers that came and went); if any of them put
    /// the group elsewhere, another broker may have coordinated and written
    /// it meanwhile, so the copy held here is dropped and the group
    /// reloaded from the store.
    pub fn reconcile(&self) -> Reconciled {
        let now_ms = distlog_metadata::now_ms();
        let (live, leases, stored, claims) = self.meta.read(|s| {
            let leases: BTreeMap<NodeId, u64> = s
                .brokers
                .values()
                .filter(|b| b.is_broker())
                .map(|b| (b.id, b.lease_expires_ms))
                .collect();
            let stored: Vec<String> = s.groups.keys().cloned().collect();
            let claims: HashMap<String, u64> =
                s.group_claims.iter().map(|(g, c)| (g.clone(), c.claim)).collect();
            (LiveBrokers::read(s, now_ms, self.node_id), leases, stored, claims)
        });
        let previous = self.last_view.lock().replace(BrokerView {
            live: live.clone(),
            leases: leases.clone(),
        });
        // The placements the cluster may have passed through since the last
        // check: every change applied at once, and none of them.
        let mut between = Vec::new();
        if let Some(prev) = &previous {
            let lapsed: Vec<NodeId> = live
                .ids()
                .iter()
                .copied()
                .filter(|b| {
                    prev.live.ids().contains(b) && prev.leases.get(b).is_some_and(|exp| *exp <= now_ms)
                })
                .collect();
            let arrived: Vec<NodeId> = live
                .ids()
                .iter()
                .copied()
                .filter(|b| !prev.live.ids().contains(b))
                .collect();
            let departed: Vec<NodeId> = prev
                .live
                .ids()
                .iter()
                .copied()
                .filter(|b| !live.ids().contains(b))
                .collect();
            if !lapsed.is_empty() || !arrived.is_empty() || !departed.is_empty() {
                // Every departure done, no arrival yet, lapsed leases lapsed.
                let mut gone = lapsed.clone();
                gone.extend(&arrived);
                between.push(live.without(&gone));
                // No departure yet, every arrival done, lapsed leases lapsed.
                let mut all = prev.live.ids().to_vec();
                all.extend(&arrived);
                between.push(LiveBrokers::from_ids(all, self.node_id).without(&lapsed));
            }
        }
        let mut out = Reconciled::default();
        let mut groups = self.groups.lock();
        let held: Vec<String> = groups.keys().cloned().collect();
        for id in held {
            let here = live.is_local(&id);
            let fresh = groups
                .get(&id)
                .is_some_and(|slot| slot.fresh.swap(false, Ordering::Relaxed));
            // Claimed by another broker since this one loaded it (which
            // fences this broker's writes): what is held here may be stale.
            let superseded = self
                .store
                .claim(&id)
                .is_some_and(|mine| claims.get(&id).is_some_and(|latest| *latest != mine));
            let stale = here && (superseded || (!fresh && between.iter().any(|view| !view.is_local(&id))));
            if here && !stale {
                continue;
            }
            if let Some(slot) = groups.remove(&id) {
                self.store.drop_claim(&id);
                slot.group.lock().unload();
                slot.wake.notify_one();
                if here {
                    info!(group = %id, "group may have been coordinated elsewhere meanwhile; reloading it");
                } else {
                    info!(group = %id, coordinator = live.coordinator(&id).get(), "group moved to another coordinator; unloaded");
                    out.unloaded.push(id);
                }
            }
        }
        // Stored groups that moved here load in the background, each under
        // a claim (a Raft write): their members' sessions run here from then.
        for id in stored {
            if !groups.contains_key(&id) && live.is_local(&id) {
                out.loaded.push(id.clone());
                self.load_in_background(id);
            }
        }
        out
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
    /// `registered` is called once the join has changed the group, before
    /// the rebalance is awaited (the connection's next request may start).
    pub async fn join(&self, group_id: &str, req: JoinRequest, registered: impl FnOnce()) -> JoinResult {
        if let Some(e) = self.check_group(group_id) {
            return JoinResult::error(&req.member_id, e);
        }
        if req.session_timeout < self.min_session || req.session_timeout > self.max_session {
            return JoinResult::error(&req.member_id, ResponseError::InvalidSessionTimeout);
        }
        let slot = match self.live_slot(group_id, req.member_id.is_empty()).await {
            Ok(Some(slot)) => slot,
            Ok(None) => return JoinResult::error(&req.member_id, ResponseError::UnknownMemberId),
            Err(e) => return JoinResult::error(&req.member_id, e),
        };
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        let pending = self.update(&slot, group_id, |g, fx| g.join(req, Instant::now(), tx, fx));
        self.finish(&slot, pending);
        registered();
        rx.await
            .unwrap_or_else(|_| JoinResult::error(&member_id, ResponseError::CoordinatorNotAvailable))
    }

    /// Handle a SyncGroup; completes when the leader's assignment is stored.
    /// `registered` is called once the sync has changed the group, before
    /// the assignment is awaited (the connection's next request may start).
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        registered: impl FnOnce(),
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
        let slot = match self.live_slot(group_id, false).await {
            Ok(Some(slot)) => slot,
            Ok(None) => return SyncResult::error(ResponseError::UnknownMemberId),
            Err(e) => return SyncResult::error(e),
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
            );
        });
        self.finish(&slot, pending);
        registered();
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
        let slot = match self.held_slot(group_id) {
            Ok(Some(slot)) => slot,
            Ok(None) => return Some(ResponseError::UnknownMemberId),
            Err(e) => return Some(e),
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
        let Some(slot) = self.held_slot(group_id)? else {
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
                    // The state the leave found (the group moves on at once).
                    let state = g.state();
                    let r = g.leave(member, instance.as_deref(), now, fx);
                    if r.is_none() {
                        info!(group = %group_id, member = %member, state = state.name(), "member left the group");
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
        let live = self.live_brokers();
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
        let mut list: Vec<ListedGroup> = out.into_values().filter(|g| live.is_local(&g.group_id)).collect();
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
        let stored = self
            .meta
            .read(|s| s.groups.get(group_id).map(|g| g.record.clone()))?;
        Some(Group::restore(group_id, &stored, self.timing, Instant::now()).summary())
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
            let rx = self.store.submit(vec![GroupOp::DeleteGroup {
                group: group_id.to_string(),
            }]);
            self.store.drop_claim(group_id);
            rx
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

/// Run the ownership check every [`OWNERSHIP_CHECK_INTERVAL`] and on each
/// broker registration, until the coordinator is dropped.
async fn watch_ownership(
    coordinator: std::sync::Weak<GroupCoordinator>,
    mut events: broadcast::Receiver<MetaEvent>,
) {
    let mut tick = tokio::time::interval(OWNERSHIP_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscribed = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            event = events.recv(), if subscribed => match event {
                Ok(MetaEvent::BrokerRegistered { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    subscribed = false;
                    continue;
                }
            },
        }
        let Some(c) = coordinator.upgrade() else { return };
        c.reconcile();
    }
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
