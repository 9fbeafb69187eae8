//! Committed offsets through the coordinator: OffsetCommit (validated
//! against the live group, then stored in batches), OffsetFetch (read from
//! the local metadata replica) and OffsetDelete.

use distlog_metadata::transaction::has_pending;
use distlog_metadata::{CommittedOffset, GroupOp, OffsetCommitEntry};
use kafka_protocol::error::ResponseError;

use super::state::GroupState;
use super::{protocol, FetchedOffset, GroupCoordinator};
use crate::metrics;

impl GroupCoordinator {
    /// Handle an OffsetCommit after per-partition checks: validate the
    /// member and generation, then store the offsets (batched with other
    /// commits). The error applies to every partition.
    pub async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<OffsetCommitEntry>,
    ) -> Result<(), ResponseError> {
        if let Some(e) = self.check_group(group_id) {
            return Err(e);
        }
        // A group the coordinator does not know may only receive
        // standalone commits (Kafka: ILLEGAL_GENERATION otherwise).
        let Some(slot) = self.live_slot(group_id, generation < 0).await? else {
            return Err(ResponseError::IllegalGeneration);
        };
        if offsets.is_empty() {
            return slot
                .group
                .lock()
                .check_commit(member_id, instance_id, generation)
                .map_or(Ok(()), Err);
        }
        let count = offsets.len() as u64;
        let rx = {
            let group = slot.group.lock();
            if let Some(e) = group.check_commit(member_id, instance_id, generation) {
                return Err(e);
            }
            self.store.submit(vec![GroupOp::CommitOffsets {
                group: group_id.to_string(),
                offsets,
                // A member's commit is applied only while no later
                // generation has been stored (a late batch of a deposed
                // coordinator); standalone commits always are.
                generation: (generation >= 0).then_some(generation),
            }])
        };
        let result = rx.await.unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
        if result.is_ok() {
            metrics::GROUP_OFFSET_COMMITS.inc_by(count);
        }
        result
    }

    /// The committed offsets of `group` for the given partitions, or all of
    /// them (`None`), read from the local metadata replica.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
        require_stable: bool,
    ) -> Vec<(String, Vec<(i32, FetchedOffset)>)> {
        let fetched = |c: Option<&CommittedOffset>| match c {
            Some(c) => FetchedOffset {
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.clone(),
                error: None,
            },
            None => FetchedOffset::none(),
        };
        let mut out: Vec<(String, Vec<(i32, FetchedOffset)>)> = self.meta.read(|s| {
            let group = s.groups.get(group_id);
            match partitions {
                Some(wanted) => wanted
                    .iter()
                    .map(|(topic, parts)| {
                        let rows = parts
                            .iter()
                            .map(|p| {
                                let c = group
                                    .and_then(|g| u32::try_from(*p).ok().and_then(|p| g.offset(topic, p)));
                                (*p, fetched(c))
                            })
                            .collect();
                        (topic.clone(), rows)
                    })
                    .collect(),
                None => group
                    .map(|g| {
                        g.offsets
                            .iter()
                            .map(|(topic, parts)| {
                                let rows = parts.iter().map(|(p, c)| (*p as i32, fetched(Some(c)))).collect();
                                (topic.clone(), rows)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        });
        if require_stable {
            // Partitions with offsets staged by an open transaction
            // (TxnOffsetCommit), read before the in-flight marks are taken.
            let pending: Vec<(String, u32)> = self.meta.read(|s| {
                let Some(g) = s.groups.get(group_id) else {
                    return Vec::new();
                };
                out.iter()
                    .flat_map(|(topic, rows)| rows.iter().map(move |(p, _)| (topic, *p)))
                    .filter_map(|(topic, p)| {
                        let p = u32::try_from(p).ok()?;
                        has_pending(&g.pending_txn_offsets, topic, p).then(|| (topic.clone(), p))
                    })
                    .collect()
            });
            for (topic, rows) in &mut out {
                for (p, row) in rows.iter_mut() {
                    let Ok(partition) = u32::try_from(*p) else {
                        continue;
                    };
                    let staged = pending.iter().any(|(t, q)| t == topic && *q == partition);
                    if staged || self.store.is_unstable(group_id, topic, partition) {
                        // Kafka answers no offset with the error.
                        *row = FetchedOffset::none().with_error(ResponseError::UnstableOffsetCommit);
                    }
                }
            }
        }
        out
    }

    /// Check a TxnOffsetCommit against the group before its offsets are
    /// staged in the transaction: a valid group id this broker coordinates
    /// (NOT_COORDINATOR otherwise), and, when the request names a member,
    /// instance or generation, that they are the live group's
    /// ([`super::state::Group::check_txn_commit`]). A group this broker
    /// does not know accepts anonymous commits (Kafka creates it; distlog
    /// stores it with the staged offsets) and refuses named members with
    /// UNKNOWN_MEMBER_ID, as Kafka's freshly created empty group would.
    ///
    /// The check is made under the group's lock but the staging write is
    /// not (it is a Raft write of transaction state): a rebalance completing
    /// in between lets offsets of the previous generation be staged. Kafka
    /// holds the group lock across its append; the window here is one Raft
    /// round trip, and the offsets still only count if the transaction
    /// commits.
    pub async fn check_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if let Some(e) = self.check_group(group_id) {
            return Some(e);
        }
        let anonymous = generation < 0 && member_id.is_empty() && instance_id.is_none();
        match self.live_slot(group_id, false).await {
            Err(e) => Some(e),
            Ok(Some(slot)) => slot
                .group
                .lock()
                .check_txn_commit(member_id, instance_id, generation),
            Ok(None) if anonymous => None,
            Ok(None) => Some(ResponseError::UnknownMemberId),
        }
    }

    /// Delete some of a group's committed offsets (OffsetDelete). Returns
    /// the group-level error, or one error (or none) per partition: a
    /// partition of a topic the live group is subscribed to is refused with
    /// GROUP_SUBSCRIBED_TO_TOPIC.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(e) = self.check_group(group_id) {
            return Err(e);
        }
        let stored = self.meta.read(|s| s.groups.contains_key(group_id));
        let (results, rx) = {
            let slot = self.live_slot(group_id, false).await?;
            let guard = slot.as_ref().map(|s| s.group.lock());
            let live = guard.as_ref().filter(|g| g.state() != GroupState::Dead);
            if live.is_none() && !stored {
                return Err(ResponseError::GroupIdNotFound);
            }
            let subscribed: Vec<String> = match live {
                Some(g) if !g.is_empty() => {
                    if g.protocol_type() != Some("consumer") {
                        return Err(ResponseError::NonEmptyGroup);
                    }
                    protocol::subscribed_topics(&g.member_metadata())
                }
                _ => Vec::new(),
            };
            let mut results = Vec::with_capacity(partitions.len());
            let mut delete = Vec::new();
            for (topic, p) in partitions {
                if subscribed.iter().any(|t| t == topic) {
                    results.push(Some(ResponseError::GroupSubscribedToTopic));
                } else if *p < 0 {
                    results.push(Some(ResponseError::UnknownTopicOrPartition));
                } else {
                    results.push(None);
                    delete.push((topic.clone(), *p as u32));
                }
            }
            let rx = (!delete.is_empty()).then(|| {
                self.store.submit(vec![GroupOp::DeleteOffsets {
                    group: group_id.to_string(),
                    partitions: delete,
                }])
            });
            (results, rx)
        };
        if let Some(rx) = rx {
            rx.await.unwrap_or(Err(ResponseError::CoordinatorNotAvailable))?;
        }
        Ok(results)
    }
}
