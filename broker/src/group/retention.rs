//! `offsets.retention.minutes`: committed offsets of groups that stay
//! empty are removed after the retention period, as Kafka does (KIP-211),
//! and empty groups left with nothing stored are forgotten.

use tracing::{debug, info};

use distlog_metadata::GroupOp;

use super::placement::LiveBrokers;
use super::state::GroupState;
use super::GroupCoordinator;

/// The partitions whose offsets have expired: the group has been empty
/// since `empty_since` (wall-clock ms) and neither that moment nor the
/// commit itself is within `retention_ms` of `now`.
pub(super) fn expired_partitions(
    offsets: Vec<(String, u32, u64)>,
    empty_since: u64,
    retention_ms: u64,
    now: u64,
) -> Vec<(String, u32)> {
    offsets
        .into_iter()
        .filter(|(_, _, commit_ms)| empty_since.max(*commit_ms).saturating_add(retention_ms) <= now)
        .map(|(t, p, _)| (t, p))
        .collect()
}

impl GroupCoordinator {
    /// `offsets.retention.minutes`: remove the offsets of groups that have
    /// had no members for the retention period (measured from when the
    /// group became empty, or from the commit if later), and forget empty
    /// groups with no offsets left.
    ///
    /// Each coordinator sweeps only the groups it coordinates (as each
    /// Kafka coordinator cleans up its own `__consumer_offsets`
    /// partitions), so the sweep judges emptiness from the live group.
    pub(super) async fn expire_offsets(&self) {
        // (group, when it became empty (None: it has members), [(topic, partition, commit time)])
        type StoredOffsets = Vec<(String, Option<u64>, Vec<(String, u32, u64)>)>;
        let now = distlog_metadata::now_ms();
        let retention_ms = self.retention.as_millis() as u64;
        let stored: StoredOffsets = self.meta.read(|s| {
            let live = LiveBrokers::read(s, now, self.node_id);
            s.groups
                .iter()
                .filter(|(id, _)| live.is_local(id))
                .map(|(id, g)| {
                    let offsets = g
                        .offsets
                        .iter()
                        .flat_map(|(t, parts)| parts.iter().map(move |(p, c)| (t.clone(), *p, c.commit_ms)))
                        .collect();
                    let empty_since = g.record.members.is_empty().then_some(g.record.state_ms);
                    (id.clone(), empty_since, offsets)
                })
                .collect()
        });
        let mut ops = Vec::new();
        for (id, stored_state_ms, offsets) in stored {
            let empty_since = match self.slot(&id) {
                Some(slot) => {
                    let g = slot.group.lock();
                    if !(g.state() == GroupState::Empty && g.is_empty()) {
                        continue;
                    }
                    g.state_ms()
                }
                None => match stored_state_ms {
                    Some(ms) => ms,
                    None => continue,
                },
            };
            let expired = expired_partitions(offsets, empty_since, retention_ms, now);
            if !expired.is_empty() {
                info!(group = %id, partitions = expired.len(), "committed offsets expired (offsets.retention.minutes)");
                ops.push(GroupOp::DeleteOffsets {
                    group: id.clone(),
                    partitions: expired,
                });
            }
        }
        if !ops.is_empty() {
            let _ = self.store.submit(ops).await;
        }
        // Forget live groups that are empty and hold no offsets.
        let mut groups = self.groups.lock();
        let idle: Vec<String> = groups
            .iter()
            .filter(|(id, slot)| {
                let g = slot.group.lock();
                g.state() == GroupState::Empty
                    && g.is_empty()
                    && !self.meta.read(|s| s.groups.contains_key(*id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            if let Some(slot) = groups.remove(&id) {
                slot.group.lock().mark_dead();
                slot.wake.notify_one();
                debug!(group = %id, "empty group without offsets forgotten");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expired_partitions;

    #[test]
    fn offsets_expire_a_retention_period_after_the_later_of_emptiness_and_commit() {
        let offsets = vec![
            ("a".to_string(), 0, 1_000),
            ("a".to_string(), 1, 5_000),
            ("b".to_string(), 0, 9_000),
        ];
        // Empty since 2 s, retention 4 s: at 8 s the commit at 1 s has expired (2 + 4 <= 8),
        // the one at 5 s has not (5 + 4 > 8), nor the one at 9 s.
        assert_eq!(
            expired_partitions(offsets.clone(), 2_000, 4_000, 8_000),
            vec![("a".to_string(), 0)]
        );
        assert_eq!(
            expired_partitions(offsets.clone(), 2_000, 4_000, 13_000),
            vec![("a".to_string(), 0), ("a".to_string(), 1), ("b".to_string(), 0)]
        );
        // A group that became empty recently keeps even old commits.
        assert!(expired_partitions(offsets, 7_000, 4_000, 10_999).is_empty());
    }
}
