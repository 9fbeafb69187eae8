//! Loading a group onto this broker under a coordinator claim (see the
//! module docs of [`super`], "Claims").

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use tokio::time::Instant;
use tracing::{info, info_span, Instrument};

use super::placement::LiveBrokers;
use super::state::Group;
use super::{GroupCoordinator, GroupSlot, CLAIM_TIMEOUT};
use crate::metrics;

impl GroupCoordinator {
    /// The group's live slot: the one held, else the group loaded fresh from
    /// the metadata store under a new claim (it moved here since the last
    /// ownership check), else a new empty group when `create`.
    /// NOT_COORDINATOR when the group is not held and this broker does not
    /// coordinate it; COORDINATOR_NOT_AVAILABLE when it cannot claim the
    /// group (cut off from the metadata quorum: it must not coordinate from
    /// a replica that may be stale).
    pub(super) async fn live_slot(
        &self,
        id: &str,
        create: bool,
    ) -> Result<Option<Arc<GroupSlot>>, ResponseError> {
        match self.slot(id) {
            Some(slot) => Ok(Some(slot)),
            None => self.load(id, create).await,
        }
    }

    /// The group's live slot for a request that cannot wait for a load
    /// (Heartbeat, LeaveGroup): the one held; or,
    /// for a stored group this broker coordinates, COORDINATOR_LOAD_IN_PROGRESS
    /// while a load starts in the background (clients retry, as they do
    /// while a Kafka coordinator loads its offsets partition); `None` for a
    /// group that is not stored.
    pub(super) fn held_slot(&self, id: &str) -> Result<Option<Arc<GroupSlot>>, ResponseError> {
        if let Some(slot) = self.slot(id) {
            return Ok(Some(slot));
        }
        let now_ms = distlog_metadata::now_ms();
        let (local, stored) = self.meta.read(|s| {
            let local = LiveBrokers::read(s, now_ms, self.node_id).is_local(id);
            (local, s.groups.contains_key(id))
        });
        if !local {
            return Err(ResponseError::NotCoordinator);
        }
        if !stored {
            return Ok(None);
        }
        self.load_in_background(id.to_string());
        Err(ResponseError::CoordinatorLoadInProgress)
    }

    /// Start loading `id` (see [`GroupCoordinator::load`]) without waiting.
    pub(super) fn load_in_background(&self, id: String) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(
            async move {
                if let Err(e) = me.load(&id, false).await {
                    tracing::debug!(group = %id, error = ?e, "group not loaded");
                }
            }
            .instrument(info_span!("group_load")),
        );
    }

    /// Claim the group and load it from the metadata store (or create it
    /// empty when `create` and nothing is stored), once at a time per
    /// group. The claim makes this replica current for the group (every
    /// change made before it is applied here) and fences every change an
    /// earlier coordinator makes after it.
    async fn load(&self, id: &str, create: bool) -> Result<Option<Arc<GroupSlot>>, ResponseError> {
        let lock = self.loading.lock().entry(id.to_string()).or_default().clone();
        let result = {
            let _loading = lock.lock().await;
            self.load_locked(id, create).await
        };
        let mut loading = self.loading.lock();
        // The map's reference and this one: no other load waits.
        if loading.get(id).is_some_and(|l| Arc::strong_count(l) <= 2) {
            loading.remove(id);
        }
        result
    }

    async fn load_locked(&self, id: &str, create: bool) -> Result<Option<Arc<GroupSlot>>, ResponseError> {
        if let Some(slot) = self.slot(id) {
            return Ok(Some(slot));
        }
        let local_and_stored = || {
            let now_ms = distlog_metadata::now_ms();
            self.meta.read(|s| {
                let local = LiveBrokers::read(s, now_ms, self.node_id).is_local(id);
                (local, s.groups.get(id).map(|g| g.record.clone()))
            })
        };
        let (local, stored) = local_and_stored();
        if !local {
            return Err(ResponseError::NotCoordinator);
        }
        if stored.is_none() && !create {
            return Ok(None);
        }
        let claim = match tokio::time::timeout(CLAIM_TIMEOUT, self.meta.claim_group(id)).await {
            Ok(Ok(claim)) => claim,
            Ok(Err(e)) => {
                metrics::GROUP_CLAIMS.with_label_values(&["error"]).inc();
                tracing::warn!(group = %id, error = %e, "cannot claim the group; not coordinating it until the metadata quorum answers");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            Err(_) => {
                metrics::GROUP_CLAIMS.with_label_values(&["error"]).inc();
                tracing::warn!(group = %id, timeout = ?CLAIM_TIMEOUT, "group claim timed out; not coordinating it until the metadata quorum answers");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
        };
        metrics::GROUP_CLAIMS.with_label_values(&["ok"]).inc();
        // Read again (the claim brought this replica up to date), under the
        // slot map's lock: no slot appears for a group the ownership check
        // just found moved away.
        let mut groups = self.groups.lock();
        if let Some(slot) = groups.get(id) {
            return Ok(Some(slot.clone()));
        }
        let (local, stored) = local_and_stored();
        if !local {
            return Err(ResponseError::NotCoordinator);
        }
        let group = match stored {
            Some(record) => {
                info!(group = %id, generation = record.generation, claim, "group loaded from the metadata store");
                Group::restore(id, &record, self.timing, Instant::now())
            }
            None if create => Group::new(id, self.timing),
            None => return Ok(None),
        };
        self.store.set_claim(id, claim);
        let slot = self.new_slot(id, group);
        groups.insert(id.to_string(), slot.clone());
        Ok(Some(slot))
    }
}
