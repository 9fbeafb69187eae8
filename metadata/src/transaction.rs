//! The durable state of transactions: per transactional id, its producer
//! id and epoch, its state, the partitions and groups it touched, and the
//! partitions still waiting for their commit or abort marker.
//!
//! Kafka keeps this in the `__transaction_state` topic, led by one
//! coordinator per transactional id; distlog keeps it in the replicated
//! metadata state, so any broker can take over coordinating a transaction
//! and every decision (prepare, complete, fence) is one compare-and-set in
//! [`apply_txn_op`], checked against the state every replica agrees on.
//!
//! The two-phase end of a transaction runs through this state:
//! 1. [`TxnOp::End`] (or a timeout, [`TxnOp::Timeout`]) moves an ongoing
//!    transaction to `PrepareCommit`/`PrepareAbort`; the decision is durable
//!    from here. The offsets the transaction committed for its groups become
//!    visible (commit) or are dropped (abort) in the same step.
//! 2. Every partition's owner writes the marker into its stream and reports
//!    it with [`TxnOp::MarkersWritten`] (the owner finds the work in
//!    [`MetaEvent::TxnPrepared`] and, after a missed event or a failover, by
//!    scanning the prepared transactions).
//! 3. When no partition waits any more, the transaction is
//!    `CompleteCommit`/`CompleteAbort` and the producer may start the next.
//!
//! Partitions are named by stream id (a topic re-created under the same
//! name is another stream) and by topic name (for answers and display).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consumer_group::OffsetCommitEntry;
use crate::model::{CommandResponse, MetaEvent, MetaState, StreamId};

/// The largest producer epoch handed out; at it, the next bump takes a new
/// producer id (Kafka keeps `Short.MAX_VALUE` itself unused as a sentinel).
pub const MAX_PRODUCER_EPOCH: i16 = i16::MAX - 1;

/// Where a transactional id is in its life (Kafka's transaction states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    /// Initialised, no transaction open.
    Empty,
    /// A transaction is open: partitions or groups have been added.
    Ongoing,
    /// Decided to commit; markers are being written.
    PrepareCommit,
    /// Decided to abort; markers are being written.
    PrepareAbort,
    /// The last transaction committed; every marker is written.
    CompleteCommit,
    /// The last transaction aborted; every marker is written.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name of the state (ListTransactions, DescribeTransactions).
    pub fn kafka_name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Whether the state is a decided transaction whose markers are still
    /// being written.
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One partition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxnPartition {
    /// The partition's stream.
    pub stream: StreamId,
    /// Its topic's name when it was added.
    pub topic: String,
}

impl TxnPartition {
    /// The partition index.
    pub fn partition(&self) -> u32 {
        self.stream.partition
    }
}

/// Everything stored for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    /// The producer id the transactional id maps to.
    pub producer_id: i64,
    /// The current producer epoch; older epochs are fenced.
    pub producer_epoch: i16,
    /// The transaction timeout the producer asked for (ms).
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions of the open (or prepared) transaction, sorted, unique.
    pub partitions: Vec<TxnPartition>,
    /// Consumer groups whose offsets the transaction commits, sorted, unique.
    pub groups: Vec<String>,
    /// Partitions whose marker is not written yet (prepared states only).
    pub pending_markers: Vec<TxnPartition>,
    /// Wall-clock ms when the open transaction started (its first add);
    /// the timeout counts from here. -1 when none is open.
    pub start_ms: i64,
    /// Wall-clock ms of the last change.
    pub last_update_ms: u64,
    /// Wall-clock ms when the transaction was prepared (marker latency is
    /// measured from here); 0 when not prepared.
    #[serde(default)]
    pub prepare_ms: u64,
}

impl TxnMeta {
    /// Whether the transactional id may be forgotten at `now_ms`: no
    /// transaction open or being completed, and unused for
    /// `expiration_ms` (Kafka's `transactional.id.expiration.ms`).
    pub fn expired(&self, now_ms: u64, expiration_ms: u64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && now_ms.saturating_sub(self.last_update_ms) >= expiration_ms
    }

    /// Whether the open transaction has outlived its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: u64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && (now_ms as i64).saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }
}

/// Why a transaction operation was refused. The broker maps each to the
/// Kafka error of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxnRefusal {
    /// The transactional id is unknown or maps to another producer id.
    #[error("the producer id does not match the transactional id's")]
    InvalidProducerIdMapping,
    /// The producer's epoch is not the current one: a newer producer with
    /// the same transactional id initialised (a zombie).
    #[error("producer epoch {given} is fenced by epoch {current}")]
    ProducerFenced { given: i16, current: i16 },
    /// A transaction is being completed; retry later.
    #[error("a transaction of this transactional id is being completed")]
    ConcurrentTransactions,
    /// The request does not fit the transaction's state.
    #[error("the request is invalid in transaction state {0:?}")]
    InvalidTxnState(TxnState),
}

/// A change to transaction state ([`crate::Command::Txn`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// InitProducerId with a transactional id: create the mapping, or bump
    /// the epoch (fencing every older producer of the id); the answer is
    /// `CommandResponse::Producer`. An open transaction is aborted instead
    /// (with the epoch bumped), answered `CommandResponse::TxnAborting`:
    /// the caller tells the client to retry (CONCURRENT_TRANSACTIONS), as
    /// Kafka does.
    Init {
        transactional_id: String,
        /// A fresh producer id (allocated by the caller), used when the id
        /// is new or its epoch is exhausted.
        fresh_producer_id: i64,
        timeout_ms: i32,
        /// KIP-360: the producer id and epoch the caller has, which must
        /// be the current ones.
        expected: Option<(i64, i16)>,
        now_ms: u64,
    },
    /// AddPartitionsToTxn / AddOffsetsToTxn: add partitions and groups to
    /// the open transaction, opening one if none is.
    Add {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TxnPartition>,
        groups: Vec<String>,
        now_ms: u64,
    },
    /// EndTxn: prepare to commit or abort.
    End {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: u64,
    },
    /// The coordinator aborts a transaction that outlived its timeout,
    /// bumping the epoch so the producer is fenced. Ignored unless the
    /// transaction is still the one observed (`producer_id`, `producer_epoch`)
    /// and timed out at `now_ms`.
    Timeout {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: u64,
    },
    /// A partition owner wrote the markers of a prepared transaction into
    /// these streams. Ignored when the transaction moved on.
    MarkersWritten {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        streams: Vec<StreamId>,
        now_ms: u64,
    },
    /// Forget a transactional id that is [`TxnMeta::expired`] at `now_ms`
    /// and still maps to `producer_id`/`producer_epoch`; ignored otherwise.
    /// Its producer's next InitProducerId starts afresh (a new producer id).
    Expire {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        expiration_ms: u64,
        now_ms: u64,
    },
    /// TxnOffsetCommit: offsets that become the group's committed offsets
    /// if the transaction commits. Refused unless the transaction is open
    /// with the group added (KIP-890's verification of offset commits).
    CommitOffsets {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        group: String,
        offsets: Vec<OffsetCommitEntry>,
    },
}

/// The result of an accepted op.
pub type TxnResult = Result<CommandResponse, TxnRefusal>;

/// Apply one transaction op. Refusals leave the state unchanged.
pub(crate) fn apply_txn_op(state: &mut MetaState, op: &TxnOp, events: &mut Vec<MetaEvent>) -> TxnResult {
    match op {
        TxnOp::Init {
            transactional_id,
            fresh_producer_id,
            timeout_ms,
            expected,
            now_ms,
        } => init(
            state,
            transactional_id,
            *fresh_producer_id,
            *timeout_ms,
            *expected,
            *now_ms,
            events,
        ),
        TxnOp::Add {
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            groups,
            now_ms,
        } => {
            let txn = current(state, transactional_id, *producer_id, *producer_epoch)?;
            match txn.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    return Err(TxnRefusal::ConcurrentTransactions)
                }
                TxnState::Ongoing => {}
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    txn.state = TxnState::Ongoing;
                    txn.partitions.clear();
                    txn.groups.clear();
                    txn.start_ms = *now_ms as i64;
                }
            }
            txn.partitions.extend(partitions.iter().cloned());
            txn.partitions.sort();
            txn.partitions.dedup();
            txn.groups.extend(groups.iter().cloned());
            txn.groups.sort();
            txn.groups.dedup();
            txn.last_update_ms = *now_ms;
            Ok(CommandResponse::Ok)
        }
        TxnOp::End {
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            now_ms,
        } => {
            let txn = current(state, transactional_id, *producer_id, *producer_epoch)?;
            match (txn.state, *commit) {
                (TxnState::Ongoing, _) => {}
                // A retry of an EndTxn already applied.
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                    return Ok(CommandResponse::Ok)
                }
                (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                    return Err(TxnRefusal::ConcurrentTransactions)
                }
                (s, _) => return Err(TxnRefusal::InvalidTxnState(s)),
            }
            prepare(state, transactional_id, *commit, false, *now_ms, events);
            Ok(CommandResponse::Ok)
        }
        TxnOp::Timeout {
            transactional_id,
            producer_id,
            producer_epoch,
            now_ms,
        } => {
            let Some(txn) = state.transactions.get(transactional_id) else {
                return Ok(CommandResponse::Ok);
            };
            if txn.producer_id != *producer_id
                || txn.producer_epoch != *producer_epoch
                || !txn.timed_out(*now_ms)
            {
                return Ok(CommandResponse::Ok);
            }
            prepare(state, transactional_id, false, true, *now_ms, events);
            Ok(CommandResponse::Ok)
        }
        TxnOp::MarkersWritten {
            transactional_id,
            producer_id,
            producer_epoch,
            streams,
            now_ms,
        } => {
            let Some(txn) = state.transactions.get_mut(transactional_id) else {
                return Ok(CommandResponse::Ok);
            };
            if !txn.state.is_prepared()
                || txn.producer_id != *producer_id
                || txn.producer_epoch != *producer_epoch
            {
                return Ok(CommandResponse::Ok);
            }
            txn.pending_markers.retain(|p| !streams.contains(&p.stream));
            txn.last_update_ms = *now_ms;
            complete_if_marked(state, transactional_id, events);
            Ok(CommandResponse::Ok)
        }
        TxnOp::Expire {
            transactional_id,
            producer_id,
            producer_epoch,
            expiration_ms,
            now_ms,
        } => {
            let forget = state.transactions.get(transactional_id).is_some_and(|t| {
                t.producer_id == *producer_id
                    && t.producer_epoch == *producer_epoch
                    && t.expired(*now_ms, *expiration_ms)
            });
            if forget {
                state.transactions.remove(transactional_id);
            }
            Ok(CommandResponse::Ok)
        }
        TxnOp::CommitOffsets {
            transactional_id,
            producer_id,
            producer_epoch,
            group,
            offsets,
        } => {
            let txn = current(state, transactional_id, *producer_id, *producer_epoch)?;
            if txn.state != TxnState::Ongoing || !txn.groups.contains(group) {
                return Err(TxnRefusal::InvalidTxnState(txn.state));
            }
            let topics = &state.topics;
            let pending = state
                .groups
                .entry(group.clone())
                .or_default()
                .pending_txn_offsets
                .entry(*producer_id)
                .or_default();
            for entry in offsets.iter().filter(|e| topics.contains_key(&e.topic)) {
                pending.retain(|p| !(p.topic == entry.topic && p.partition == entry.partition));
                pending.push(entry.clone());
            }
            Ok(CommandResponse::Ok)
        }
    }
}

/// The transaction of `id` if `producer_id`/`epoch` are its current ones.
fn current<'a>(
    state: &'a mut MetaState,
    id: &str,
    producer_id: i64,
    epoch: i16,
) -> Result<&'a mut TxnMeta, TxnRefusal> {
    let txn = state
        .transactions
        .get_mut(id)
        .ok_or(TxnRefusal::InvalidProducerIdMapping)?;
    if txn.producer_id != producer_id {
        return Err(TxnRefusal::InvalidProducerIdMapping);
    }
    if txn.producer_epoch != epoch {
        return Err(TxnRefusal::ProducerFenced {
            given: epoch,
            current: txn.producer_epoch,
        });
    }
    Ok(txn)
}

/// The producer id and epoch after a bump: the next epoch, or `fresh` at
/// epoch 0 once the epoch is exhausted.
fn bump(producer_id: i64, epoch: i16, fresh: i64) -> (i64, i16) {
    if epoch >= MAX_PRODUCER_EPOCH {
        (fresh, 0)
    } else {
        (producer_id, epoch.max(-1) + 1)
    }
}

fn init(
    state: &mut MetaState,
    id: &str,
    fresh: i64,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    now_ms: u64,
    events: &mut Vec<MetaEvent>,
) -> TxnResult {
    let Some(txn) = state.transactions.get_mut(id) else {
        if expected.is_some_and(|(pid, _)| pid >= 0) {
            return Err(TxnRefusal::InvalidProducerIdMapping);
        }
        state.transactions.insert(
            id.to_string(),
            TxnMeta {
                producer_id: fresh,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: Vec::new(),
                groups: Vec::new(),
                pending_markers: Vec::new(),
                start_ms: -1,
                last_update_ms: now_ms,
                prepare_ms: 0,
            },
        );
        return Ok(CommandResponse::Producer {
            producer_id: fresh,
            producer_epoch: 0,
        });
    };
    if let Some((pid, epoch)) = expected.filter(|(pid, _)| *pid >= 0) {
        if pid != txn.producer_id || epoch != txn.producer_epoch {
            return Err(TxnRefusal::ProducerFenced {
                given: epoch,
                current: txn.producer_epoch,
            });
        }
    }
    match txn.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnRefusal::ConcurrentTransactions),
        TxnState::Ongoing => {
            prepare(state, id, false, true, now_ms, events);
            Ok(CommandResponse::TxnAborting)
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let (producer_id, producer_epoch) = bump(txn.producer_id, txn.producer_epoch, fresh);
            txn.producer_id = producer_id;
            txn.producer_epoch = producer_epoch;
            txn.timeout_ms = timeout_ms;
            txn.state = TxnState::Empty;
            txn.partitions.clear();
            txn.groups.clear();
            txn.start_ms = -1;
            txn.last_update_ms = now_ms;
            Ok(CommandResponse::Producer {
                producer_id,
                producer_epoch,
            })
        }
    }
}

/// Move the open transaction of `id` to PrepareCommit/PrepareAbort (with
/// the epoch bumped when `fence`: the markers then carry the new epoch,
/// which fences the old producer on every partition; an exhausted epoch
/// stays at the top, and the next InitProducerId moves the id to a new
/// producer id), settle its groups' pending offsets, and publish the
/// markers to write. Completes at once when there is no partition to mark.
fn prepare(
    state: &mut MetaState,
    id: &str,
    commit: bool,
    fence: bool,
    now_ms: u64,
    events: &mut Vec<MetaEvent>,
) {
    let Some(txn) = state.transactions.get_mut(id) else {
        return;
    };
    let old_producer = txn.producer_id;
    if fence && txn.producer_epoch < MAX_PRODUCER_EPOCH {
        txn.producer_epoch = txn.producer_epoch.max(-1) + 1;
    }
    txn.state = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    txn.pending_markers = txn.partitions.clone();
    txn.prepare_ms = now_ms;
    txn.last_update_ms = now_ms;
    let groups = txn.groups.clone();
    events.push(MetaEvent::TxnPrepared {
        transactional_id: id.to_string(),
        producer_id: txn.producer_id,
        producer_epoch: txn.producer_epoch,
        commit,
        streams: txn.pending_markers.iter().map(|p| p.stream).collect(),
    });
    for group in groups {
        let Some(meta) = state.groups.get_mut(&group) else {
            continue;
        };
        let Some(pending) = meta.pending_txn_offsets.remove(&old_producer) else {
            continue;
        };
        if commit {
            for entry in pending {
                if state.topics.contains_key(&entry.topic) {
                    meta.offsets
                        .entry(entry.topic.clone())
                        .or_default()
                        .insert(entry.partition, entry.committed.clone());
                }
            }
        }
    }
    complete_if_marked(state, id, events);
}

/// Complete a prepared transaction whose markers are all written.
pub(crate) fn complete_if_marked(state: &mut MetaState, id: &str, events: &mut Vec<MetaEvent>) {
    let Some(txn) = state.transactions.get_mut(id) else {
        return;
    };
    if !txn.state.is_prepared() || !txn.pending_markers.is_empty() {
        return;
    }
    let commit = txn.state == TxnState::PrepareCommit;
    txn.state = if commit {
        TxnState::CompleteCommit
    } else {
        TxnState::CompleteAbort
    };
    txn.partitions.clear();
    txn.groups.clear();
    txn.start_ms = -1;
    events.push(MetaEvent::TxnCompleted {
        transactional_id: id.to_string(),
        commit,
        prepare_ms: txn.prepare_ms,
    });
    txn.prepare_ms = 0;
}

/// A deleted topic's streams get no markers: drop them from every prepared
/// transaction (completing those left with none) and from open ones.
pub(crate) fn forget_streams(state: &mut MetaState, gone: &[StreamId], events: &mut Vec<MetaEvent>) {
    let mut touched = Vec::new();
    for (id, txn) in &mut state.transactions {
        let before = (txn.partitions.len(), txn.pending_markers.len());
        txn.partitions.retain(|p| !gone.contains(&p.stream));
        txn.pending_markers.retain(|p| !gone.contains(&p.stream));
        if before != (txn.partitions.len(), txn.pending_markers.len()) {
            touched.push(id.clone());
        }
    }
    for id in touched {
        complete_if_marked(state, &id, events);
    }
}

/// A producer's pending transactional offsets of one group.
pub type PendingOffsets = Vec<OffsetCommitEntry>;

/// Whether an open transaction has a pending offset commit for this
/// partition of a group (Kafka's `require_stable` OffsetFetch answers
/// UNSTABLE_OFFSET_COMMIT then).
pub fn has_pending(pending: &BTreeMap<i64, PendingOffsets>, topic: &str, partition: u32) -> bool {
    pending
        .values()
        .flatten()
        .any(|e| e.topic == topic && e.partition == partition)
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
