//! Idempotent producers: producer ids handed out in blocks
//! ([`ids::ProducerIdBlocks`], KIP-730), and each partition's producer
//! state ([`PartitionProducers`]), which the partition's log writer
//! consults for every batch before giving it offsets.
//!
//! The state is storage's *stream state* of the partition (see
//! `distlog_storage::log::stream_state`): it lives on the stream owner, is
//! consulted in offset order by the stream's single writer, is written as a
//! snapshot at the start of each segment, and is rebuilt by a new owner from
//! that snapshot plus the batches after it (every stored batch keeps its
//! producer id, epoch and sequence in its header) before the owner accepts
//! a produce. A duplicate is answered from the state with its original
//! offset and never written; offsets and txids are untouched by it.

pub mod failed;
pub mod ids;
pub mod snapshot;
pub mod state;
pub mod txn;
pub mod verify;

use std::any::Any;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use distlog_storage::log::{Admission, StateError, StreamState, StreamStateFn};
use parking_lot::Mutex;

use crate::metrics;
use crate::records::batch::{BatchHeader, BatchWalker, TRANSACTIONAL_BIT};
use crate::records::control::marker_of;
use state::{BatchIdentity, Check, ProducerStates};
use txn::{AbortedTxn, TxnIndex};

/// A batch refused by a partition's producer state, with the Kafka error
/// each rule answers (mapped in `crate::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    /// A gap (or a batch of a new epoch not starting at 0):
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error(
        "producer {producer_id}: expected sequence {expected}, received {received} \
         (a batch is missing before this one)"
    )]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence the partition expected.
        expected: i32,
        /// The batch's first sequence.
        received: i32,
    },
    /// A batch of an epoch older than the producer's: INVALID_PRODUCER_EPOCH.
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The partition's epoch for the producer.
        current: i16,
    },
    /// A producer the partition does not know, not starting at sequence 0
    /// (its state expired or never existed here): UNKNOWN_PRODUCER_ID.
    #[error(
        "producer {producer_id} is unknown to this partition (expired or never seen) \
         and its batch starts at sequence {sequence}, not 0"
    )]
    UnknownProducerId {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        sequence: i32,
    },
    /// A transactional batch that would open a transaction in a partition
    /// not verified to be part of the producer's open transaction
    /// (KIP-890): INVALID_TXN_STATE.
    #[error(
        "producer {producer_id}: this partition is not part of an open transaction at epoch {epoch} \
         (add it with AddPartitionsToTxn before producing)"
    )]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
    },
}

/// How often, at most, a partition drops expired producers.
const EXPIRY_CHECK_MS: i64 = 10_000;

/// One partition's producer state, as storage's stream state.
pub struct PartitionProducers {
    states: Mutex<Counted>,
    expiration_ms: i64,
    next_expiry_ms: AtomicI64,
}

/// The state and how many of its producers `distlog_producer_ids_active`
/// counts, so the gauge is moved by the difference after each change and
/// by the rest when the state is dropped (the stream closed).
struct Counted {
    states: ProducerStates,
    txns: TxnIndex,
    reported: i64,
}

impl Counted {
    fn report(&mut self) {
        let n = self.states.len() as i64;
        if n != self.reported {
            metrics::PRODUCER_IDS_ACTIVE.add(n - self.reported);
            self.reported = n;
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::PRODUCER_IDS_ACTIVE.sub(self.reported);
    }
}

impl PartitionProducers {
    /// An empty state whose producers expire after `expiration_ms` idle.
    pub fn new(expiration_ms: i64) -> Self {
        PartitionProducers {
            states: Mutex::new(Counted {
                states: ProducerStates::default(),
                txns: TxnIndex::default(),
                reported: 0,
            }),
            expiration_ms,
            next_expiry_ms: AtomicI64::new(0),
        }
    }

    /// Read the state (DescribeProducers, the admin API).
    pub fn with_states<T>(&self, f: impl FnOnce(&ProducerStates) -> T) -> T {
        f(&self.states.lock().states)
    }

    /// The last stable offset for high watermark `hw` (see
    /// [`TxnIndex::last_stable_offset`]).
    pub fn last_stable_offset(&self, hw: u64) -> u64 {
        self.states.lock().txns.last_stable_offset(hw)
    }

    /// The aborted transactions overlapping offsets `[from, to)`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        self.states.lock().txns.aborted_between(from, to)
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.states.lock().txns.is_ongoing(producer_id)
    }

    /// The first offset of `producer_id`'s open transaction here.
    pub fn open_txn_start(&self, producer_id: i64) -> Option<u64> {
        self.states.lock().txns.ongoing_start(producer_id)
    }

    /// Let `producer_id`'s first transactional batch at `epoch` in (the
    /// coordinator confirmed the partition is in its open transaction).
    /// Must be called before that confirmation is asked for: a marker
    /// written in between clears it (KIP-890's verification guard).
    pub fn add_txn_guard(&self, producer_id: i64, epoch: i16) {
        self.states.lock().txns.add_guard(producer_id, epoch);
    }
}

impl Counted {
    /// Apply an end-transaction marker written at `offset`; refused when
    /// it is older than the producer's epoch.
    fn end_txn(
        &mut self,
        payload: &[u8],
        offset: u64,
        now_ms: i64,
    ) -> Option<Result<(), ProducerStateError>> {
        let marker = marker_of(payload)?;
        let result = self
            .states
            .end_txn(marker.producer_id, marker.producer_epoch, now_ms);
        if result.is_ok() {
            self.txns.end(marker.producer_id, offset, marker.commit);
        }
        Some(result)
    }
}

impl StreamState for PartitionProducers {
    fn admit(&self, payload: &[u8], base: u64, _record_count: u32, now_ms: i64) -> Admission {
        // The header is parsed once; batches without a producer id (-1)
        // stop at the identity, without a lock.
        let Ok(header) = BatchHeader::parse(payload) else {
            return Admission::Write;
        };
        if header.is_control() {
            let mut st = self.states.lock();
            let result = st.end_txn(payload, base, now_ms);
            st.report();
            return match result {
                Some(Err(e)) => Admission::Refuse(Arc::new(e)),
                _ => Admission::Write,
            };
        }
        let Some(batch) = BatchIdentity::of_header(&header) else {
            return Admission::Write;
        };
        let transactional = header.attributes & TRANSACTIONAL_BIT != 0;
        let mut st = self.states.lock();
        let mut check = st.states.check(&batch);
        if check == Check::Write
            && transactional
            && !st.txns.is_ongoing(batch.producer_id)
            && !st.txns.guarded(batch.producer_id, batch.epoch)
        {
            check = Check::Refuse(ProducerStateError::InvalidTxnState {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
            });
        }
        if check == Check::Write {
            st.states.record(&batch, base, now_ms);
            if transactional {
                st.txns.begin(batch.producer_id, base);
            }
        }
        st.report();
        // One line per idempotent batch at debug (off by default): what a
        // retry was taken for is the first question after a duplicate.
        tracing::debug!(
            producer_id = batch.producer_id,
            epoch = batch.epoch,
            first_seq = batch.first_seq,
            last_seq = batch.last_seq,
            base,
            ?check,
            "idempotent batch admitted"
        );
        match check {
            Check::Write => Admission::Write,
            Check::Duplicate {
                first_offset,
                record_count,
            } => {
                metrics::PRODUCER_DUPLICATES.inc();
                Admission::Duplicate {
                    base_offset: first_offset,
                    next_offset: first_offset + u64::from(record_count),
                }
            }
            Check::Refuse(e) => Admission::Refuse(Arc::new(e)),
        }
    }

    fn replay(&self, payload: &[u8], first_seq: u64) {
        let now = distlog_metadata::now_ms() as i64;
        let mut st = self.states.lock();
        let mut offset = first_seq;
        for span in BatchWalker::new(payload) {
            let Ok(span) = span else { break };
            let count = u64::from(span.header.last_offset_delta.max(0) as u32) + 1;
            if let Some(batch) = payload.get(span.start..) {
                if span.header.is_control() {
                    let _ = st.end_txn(batch, offset, now);
                } else if let Some(b) = BatchIdentity::of_header(&span.header) {
                    st.states.record(&b, offset, now);
                    if span.header.attributes & TRANSACTIONAL_BIT != 0 {
                        st.txns.begin(b.producer_id, offset);
                    }
                }
            }
            offset += count;
        }
        st.report();
    }

    fn restore(&self, snapshot: &[u8]) -> Result<(), StateError> {
        let (states, txns) = snapshot::decode(snapshot).map_err(|e| Arc::new(e) as StateError)?;
        let mut st = self.states.lock();
        st.states = states;
        st.txns = txns;
        st.report();
        Ok(())
    }

    fn snapshot(&self, now_ms: i64) -> Bytes {
        let mut st = self.states.lock();
        let Counted { states, txns, .. } = &mut *st;
        states.expire(now_ms, self.expiration_ms, |id| txns.is_ongoing(id));
        st.report();
        snapshot::encode(&st.states, &st.txns)
    }

    fn tick(&self, now_ms: i64) {
        if now_ms < self.next_expiry_ms.load(Ordering::Relaxed) {
            return;
        }
        self.next_expiry_ms.store(
            now_ms + EXPIRY_CHECK_MS.min(self.expiration_ms),
            Ordering::Relaxed,
        );
        let mut st = self.states.lock();
        let Counted { states, txns, .. } = &mut *st;
        states.expire(now_ms, self.expiration_ms, |id| txns.is_ongoing(id));
        st.report();
    }

    fn truncated(&self, log_start_offset: u64) {
        self.states.lock().txns.truncate_before(log_start_offset);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Run `f` on the producer state of an open stream: `None` when the
/// stream keeps none, or that opening of it has ended.
pub fn with_partition<T>(
    handle: &distlog_storage::log::StreamHandle,
    f: impl FnOnce(&PartitionProducers) -> T,
) -> Option<T> {
    let state = handle.state().ok().flatten()?;
    state.as_any().downcast_ref::<PartitionProducers>().map(f)
}

/// The namespace's stream-state factory: every partition keeps producer
/// state, with the node's `producer.id.expiration.ms`.
pub fn stream_state_fn(expiration_ms: i64) -> StreamStateFn {
    Arc::new(move |_| Arc::new(PartitionProducers::new(expiration_ms)) as Arc<dyn StreamState>)
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
