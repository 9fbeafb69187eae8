//! Durable group state: offset commits and generation records written to
//! the metadata store in batches.
//!
//! Every change is queued synchronously ([`GroupStore::submit`]), so two
//! changes submitted under a group's lock reach the Raft log in that order.
//! One writer task drains the queue: while one Raft write is in flight the
//! next changes accumulate and go out together as one
//! [`Command::Groups`], so many consumers committing at once cost one Raft
//! round trip per batch rather than one per commit.
//!
//! Only the group's coordinator may write a group's state. Every submission
//! is checked against the placement in the local metadata replica twice:
//! when it is queued and again just before its batch goes to Raft; a group
//! this broker no longer coordinates is refused with NOT_COORDINATOR. What
//! remains is a window of one Raft round trip plus replication lag: a batch
//! checked just before the lease change that moves its group may still
//! land after the new coordinator loaded the group. The metadata store has
//! no coordinator epoch to compare-and-set against; instead a member's
//! commit carries its generation and is applied only while no later
//! generation has been stored (`GroupOp::CommitOffsets::generation`), so a
//! late batch cannot take back offsets that a later generation committed
//! (a paused coordinator did, campaign seed 4078).
//!
//! That alone left two holes: two coordinators of the same generation (one
//! of them cut off from the quorum, coordinating from its stale replica),
//! and changes skipped at apply yet acknowledged. So a broker claims a
//! group in the metadata store before it loads it
//! ([`MetadataStore::claim_group`]); every change is stamped with the
//! claim its group is held under here ([`GroupStore::set_claim`]) and is
//! applied only while that claim is the group's latest. Changes skipped at
//! apply (a later claim, or a member's commit of an older generation) are
//! reported back and fail with NOT_COORDINATOR: a client is never told a
//! change was stored when it was not.

use std::collections::HashMap;
use std::sync::Arc;

use distlog_metadata::{ClaimedGroupOp, Command, CommandResponse, GroupOp, MetadataStore, NodeId};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug_span, warn, Instrument};

use super::placement::LiveBrokers;
use crate::metrics;

/// The outcome of a submitted change, once the metadata store answered:
/// the Kafka error for a failure (see [`crate::error::group_store_error`]).
pub type StoreResult = Result<(), ResponseError>;

/// At most this many ops go into one Raft entry.
const MAX_BATCH_OPS: usize = 4096;

struct Submission {
    ops: Vec<ClaimedGroupOp>,
    done: oneshot::Sender<StoreResult>,
}

/// The batching writer of group changes.
pub struct GroupStore {
    tx: mpsc::UnboundedSender<Submission>,
    meta: Arc<MetadataStore>,
    node_id: NodeId,
    /// Offsets submitted and not yet durable, per group and partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT
    /// for them).
    unstable: Arc<Mutex<UnstableOffsets>>,
    /// The claim each group is held under here; changes of a group without
    /// one are not fenced by claim (the offsets retention sweep).
    claims: Mutex<HashMap<String, u64>>,
}

/// Group → (topic, partition) → commits in flight.
type UnstableOffsets = HashMap<String, HashMap<(String, u32), u32>>;

impl GroupStore {
    /// Start the writer task over `meta` for broker `node_id` (which only
    /// writes the groups it coordinates).
    pub fn start(meta: Arc<MetadataStore>, node_id: NodeId) -> GroupStore {
        let (tx, rx) = mpsc::unbounded_channel();
        let unstable = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(
            write_loop(meta.clone(), node_id, rx, unstable.clone()).instrument(debug_span!("group_store")),
        );
        GroupStore {
            tx,
            meta,
            node_id,
            unstable,
            claims: Mutex::new(HashMap::new()),
        }
    }

    /// The group is held here under `claim` from now on: its changes carry it.
    pub fn set_claim(&self, group: &str, claim: u64) {
        self.claims.lock().insert(group.to_string(), claim);
    }

    /// The claim the group is held under here, if it is.
    pub fn claim(&self, group: &str) -> Option<u64> {
        self.claims.lock().get(group).copied()
    }

    /// The group is no longer held here.
    pub fn drop_claim(&self, group: &str) {
        self.claims.lock().remove(group);
    }

    /// Queue `ops` behind everything submitted before; the receiver
    /// completes when they are durable (or failed). Their offsets count as
    /// unstable until then. Ops of a group this broker does not coordinate
    /// (now, or when the batch is written) fail the whole submission with
    /// NOT_COORDINATOR and write nothing. An empty submission writes
    /// nothing and completes once everything queued before it has.
    pub fn submit(&self, ops: Vec<GroupOp>) -> oneshot::Receiver<StoreResult> {
        let (done, rx) = oneshot::channel();
        if !coordinates_all(&self.meta, self.node_id, ops.iter().map(GroupOp::group)) {
            let _ = done.send(Err(ResponseError::NotCoordinator));
            return rx;
        }
        let keys = commit_keys(&ops);
        mark_unstable(&self.unstable, &keys, true);
        let ops = {
            let claims = self.claims.lock();
            ops.into_iter()
                .map(|op| ClaimedGroupOp {
                    claim: claims.get(op.group()).copied(),
                    op,
                })
                .collect()
        };
        if let Err(e) = self.tx.send(Submission { ops, done }) {
            mark_unstable(&self.unstable, &keys, false);
            let _ = e.0.done.send(Err(ResponseError::CoordinatorNotAvailable));
        }
        rx
    }

    /// Whether an offset of this group and partition is submitted but not
    /// yet durable.
    pub fn is_unstable(&self, group: &str, topic: &str, partition: u32) -> bool {
        self.unstable
            .lock()
            .get(group)
            .is_some_and(|g| g.contains_key(&(topic.to_string(), partition)))
    }
}

/// Whether broker `node_id` coordinates every group `ops` change, by the
/// local metadata replica now.
fn coordinates_all<'a>(
    meta: &MetadataStore,
    node_id: NodeId,
    groups: impl IntoIterator<Item = &'a str>,
) -> bool {
    let groups: Vec<&str> = groups.into_iter().collect();
    if groups.is_empty() {
        return true;
    }
    let now_ms = distlog_metadata::now_ms();
    meta.read(|s| {
        let live = LiveBrokers::read(s, now_ms, node_id);
        groups.iter().all(|g| live.is_local(g))
    })
}

/// The (group, topic, partition) of every offset committed by `ops`.
fn commit_keys<'a>(ops: impl IntoIterator<Item = &'a GroupOp>) -> Vec<(String, String, u32)> {
    ops.into_iter()
        .flat_map(|op| match op {
            GroupOp::CommitOffsets { group, offsets, .. } => offsets
                .iter()
                .map(|o| (group.clone(), o.topic.clone(), o.partition))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect()
}

/// Count commits in flight up (`add`) or down.
fn mark_unstable(unstable: &Mutex<UnstableOffsets>, keys: &[(String, String, u32)], add: bool) {
    if keys.is_empty() {
        return;
    }
    let mut unstable = unstable.lock();
    for (group, topic, partition) in keys {
        let key = (topic.clone(), *partition);
        if add {
            *unstable.entry(group.clone()).or_default().entry(key).or_default() += 1;
        } else if let Some(g) = unstable.get_mut(group) {
            if let Some(n) = g.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    g.remove(&key);
                }
            }
            if g.is_empty() {
                unstable.remove(group);
            }
        }
    }
}

async fn write_loop(
    meta: Arc<MetadataStore>,
    node_id: NodeId,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    unstable: Arc<Mutex<UnstableOffsets>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut queued = batch[0].ops.len();
        while queued < MAX_BATCH_OPS {
            match rx.try_recv() {
                Ok(next) => {
                    queued += next.ops.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        // Second ownership check, right before the write: a group that moved
        // while its change waited in the queue is not written by this node.
        let mut ops = Vec::with_capacity(queued);
        // Each waiter and the positions of its ops in `ops`.
        let mut waiters = Vec::with_capacity(batch.len());
        for sub in batch {
            if coordinates_all(&meta, node_id, sub.ops.iter().map(|c| c.op.group())) {
                let start = ops.len();
                ops.extend(sub.ops);
                waiters.push((sub.done, start..ops.len()));
            } else {
                warn!(
                    group = sub.ops.first().map(|c| c.op.group()).unwrap_or_default(),
                    "group moved to another coordinator; change not stored"
                );
                mark_unstable(&unstable, &commit_keys(sub.ops.iter().map(|c| &c.op)), false);
                let _ = sub.done.send(Err(ResponseError::NotCoordinator));
            }
        }
        if ops.is_empty() {
            // Only barriers (or refused changes): nothing to write.
            for (w, _) in waiters {
                let _ = w.send(Ok(()));
            }
            continue;
        }
        metrics::GROUP_STORE_WRITES.inc();
        metrics::GROUP_STORE_BATCH_OPS.observe(ops.len() as f64);
        let keys = commit_keys(ops.iter().map(|c| &c.op));
        let groups: Vec<String> = ops.iter().map(|c| c.op.group().to_string()).collect();
        let outcome = meta.write(Command::ClaimedGroups(ops)).await;
        mark_unstable(&unstable, &keys, false);
        let fenced: Vec<usize> = match &outcome {
            Ok(CommandResponse::GroupsFenced(fenced)) => fenced.iter().map(|&i| i as usize).collect(),
            _ => Vec::new(),
        };
        for &i in &fenced {
            metrics::GROUP_STORE_FENCED.inc();
            warn!(
                group = groups.get(i).map(String::as_str).unwrap_or_default(),
                "group change fenced: another coordinator claimed the group, or a later generation is stored; \
                 the client will look the coordinator up again"
            );
        }
        for (w, range) in waiters {
            let result = match &outcome {
                Ok(_) if fenced.iter().any(|i| range.contains(i)) => Err(ResponseError::NotCoordinator),
                Ok(_) => Ok(()),
                Err(e) => {
                    warn!(error = %e, "group state not stored; clients will retry");
                    Err(crate::error::group_store_error(e))
                }
            };
            let _ = w.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use distlog_metadata::{CommittedOffset, MetadataConfig, OffsetCommitEntry};

    use super::*;

    async fn store_with_topic(dir: &std::path::Path) -> (Arc<MetadataStore>, GroupStore) {
        let meta = MetadataStore::open(MetadataConfig {
            data_dir: dir.join("meta"),
            node_id: NodeId::new(1),
            raft_addr: "127.0.0.1:0".into(),
            advertised_raft_addr: None,
            voters: Default::default(),
            seeds: Vec::new(),
        })
        .await
        .expect("metadata opens");
        meta.write(Command::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::from_u128(1),
            partitions: 1,
            configs: BTreeMap::new(),
            created_ms: 0,
        })
        .await
        .expect("topic");
        let store = GroupStore::start(meta.clone(), NodeId::new(1));
        (meta, store)
    }

    fn commit(group: &str, offset: i64) -> Vec<GroupOp> {
        vec![GroupOp::CommitOffsets {
            group: group.into(),
            generation: None,
            offsets: vec![OffsetCommitEntry {
                topic: "t".into(),
                partition: 0,
                committed: CommittedOffset {
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_ms: 0,
                },
            }],
        }]
    }

    #[tokio::test]
    async fn commits_are_unstable_until_durable_and_land_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (meta, store) = store_with_topic(dir.path()).await;
        let receivers: Vec<_> = (0..200).map(|i| store.submit(commit("g", i))).collect();
        assert!(store.is_unstable("g", "t", 0), "in flight right after submit");
        assert!(!store.is_unstable("other", "t", 0));
        for rx in receivers {
            assert_eq!(rx.await.expect("answered"), Ok(()));
        }
        // The unstable marks are cleared just after the answers.
        for _ in 0..100 {
            if !store.is_unstable("g", "t", 0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(!store.is_unstable("g", "t", 0));
        let last = meta.read(|s| s.groups["g"].offset("t", 0).map(|c| c.offset));
        assert_eq!(last, Some(199), "the last submitted commit wins");
        meta.shutdown().await.expect("shutdown");
    }
}
