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

pub mod ids;
pub mod snapshot;
pub mod state;

use std::any::Any;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use distlog_storage::log::{Admission, StateError, StreamState, StreamStateFn};
use parking_lot::Mutex;

use crate::metrics;
use crate::records::batch::BatchWalker;
use state::{BatchIdentity, Check, ProducerStates};

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
}

impl StreamState for PartitionProducers {
    fn admit(&self, payload: &[u8], base: u64, _record_count: u32, now_ms: i64) -> Admission {
        // Batches without a producer id (-1) stop here, without a lock.
        let Some(batch) = BatchIdentity::of(payload) else {
            return Admission::Write;
        };
        let mut st = self.states.lock();
        let check = st.states.admit(&batch, base, now_ms);
        st.report();
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
            if let Some(b) = payload.get(span.start..).and_then(BatchIdentity::of) {
                st.states.record(&b, offset, now);
            }
            offset += count;
        }
        st.report();
    }

    fn restore(&self, snapshot: &[u8]) -> Result<(), StateError> {
        let states = snapshot::decode(snapshot).map_err(|e| Arc::new(e) as StateError)?;
        let mut st = self.states.lock();
        st.states = states;
        st.report();
        Ok(())
    }

    fn snapshot(&self, now_ms: i64) -> Bytes {
        let mut st = self.states.lock();
        st.states.expire(now_ms, self.expiration_ms);
        st.report();
        snapshot::encode(&st.states)
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
        st.states.expire(now_ms, self.expiration_ms);
        st.report();
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The namespace's stream-state factory: every partition keeps producer
/// state, with the node's `producer.id.expiration.ms`.
pub fn stream_state_fn(expiration_ms: i64) -> StreamStateFn {
    Arc::new(move |_| Arc::new(PartitionProducers::new(expiration_ms)) as Arc<dyn StreamState>)
}
