//! Committed offsets through the coordinator: OffsetCommit (validated
//! against the live group, then stored in batches), OffsetFetch (read from
//! the local metadata replica) and OffsetDelete.

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
        let Some(slot) = self.live_slot(group_id, generation < 0)? else {
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
            for (topic, rows) in &mut out {
                for (p, row) in rows.iter_mut() {
                    if *p >= 0 && self.store.is_unstable(group_id, topic, *p as u32) {
                        row.error = Some(ResponseError::UnstableOffsetCommit);
                    }
                }
            }
        }
        out
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
            let slot = self.live_slot(group_id, false)?;
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
