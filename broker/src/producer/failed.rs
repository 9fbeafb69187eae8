//! Idempotent batches whose append failed retriably, remembered so that a
//! pipelined batch behind one of them is answered with the same retriable
//! error instead of OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! Why: a producer keeps up to five requests in flight per partition. When
//! the first (sequence S) fails retriably (NOT_ENOUGH_REPLICAS when no
//! ensemble can be placed, NOT_LEADER_OR_FOLLOWER while the stream
//! reopens, ...), the ones behind it can still arrive afterwards, even
//! seconds later after a network fault, and find the partition expecting
//! S. Kafka's rules refuse them as out of order, which is true but costly:
//! librdkafka answers an OUT_OF_ORDER_SEQUENCE_NUMBER on any request but
//! the oldest in flight by draining and bumping its epoch, and after the
//! bump it renumbers and resends every message whose earlier send is
//! "possibly persisted", on every partition, which writes those twice (the
//! reliability campaign, seed 2135). The retriable error the batch at S got
//! says the same thing ("not written, send again, in order") without the
//! bump: the client retries S and the batches behind it in sequence.
//!
//! The substitution only applies to exactly that shape: same producer id
//! and epoch, the partition expecting S, S being a batch this node saw fail
//! retriably within [`REMEMBER_FOR`], and the refused batch starting after
//! S. Anything else keeps Kafka's answer, so a real gap (a batch lost
//! before it reached the broker) is still reported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use distlog_metadata::StreamId;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use super::state::BatchIdentity;

/// How long a failed batch is remembered: past librdkafka's and the Java
/// client's default request timeout (30 s) plus their retry backoff, so a
/// straggler of that request still finds it.
pub const REMEMBER_FOR: Duration = Duration::from_secs(120);

/// At most this many failures are remembered per node (one per stream and
/// producer); beyond it the expired ones are dropped, then the oldest.
const CAPACITY: usize = 16_384;

/// The retriable failure of one producer's batch on one stream.
#[derive(Debug, Clone, Copy)]
struct Failure {
    epoch: i16,
    first_seq: i32,
    code: ResponseError,
    at: Instant,
}

/// The node's remembered failures (see module docs), keyed by stream and
/// producer id: only the latest failure of each producer on each stream is
/// kept, which is the one the partition's expected sequence can point at.
#[derive(Debug, Default)]
pub struct FailedBatches {
    failures: Mutex<HashMap<(StreamId, i64), Failure>>,
    /// `failures.len()`, read without the lock: every written idempotent
    /// batch asks whether a failure is to be forgotten, and almost always
    /// none is remembered (one node-wide mutex would serialize them).
    count: AtomicUsize,
}

impl FailedBatches {
    /// Remember that `batch` failed on `stream` with `code`, when the code is
    /// retriable (the client will send the batch again).
    pub fn failed(&self, stream: StreamId, batch: &BatchIdentity, code: ResponseError, now: Instant) {
        if !code.is_retriable() {
            return;
        }
        let mut failures = self.failures.lock();
        if failures.len() >= CAPACITY && !failures.contains_key(&(stream, batch.producer_id)) {
            failures.retain(|_, f| now.saturating_duration_since(f.at) < REMEMBER_FOR);
            if failures.len() >= CAPACITY {
                if let Some(oldest) = failures.iter().min_by_key(|(_, f)| f.at).map(|(k, _)| *k) {
                    failures.remove(&oldest);
                }
            }
        }
        failures.insert(
            (stream, batch.producer_id),
            Failure {
                epoch: batch.epoch,
                first_seq: batch.first_seq,
                code,
                at: now,
            },
        );
        self.count.store(failures.len(), Ordering::Release);
    }

    /// A batch of this producer was written on `stream`: whatever failed
    /// before it has been sent again and written, or no longer matters.
    pub fn written(&self, stream: StreamId, producer_id: i64) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut failures = self.failures.lock();
        if failures.remove(&(stream, producer_id)).is_some() {
            self.count.store(failures.len(), Ordering::Release);
        }
    }

    /// The retriable error to answer instead of OUT_OF_ORDER_SEQUENCE_NUMBER
    /// for `batch`, refused on `stream` because the partition expected
    /// sequence `expected`: the error of the remembered failure of the batch
    /// at `expected`, when there is one of the same epoch and `batch` comes
    /// after it.
    pub fn explain_gap(
        &self,
        stream: StreamId,
        batch: &BatchIdentity,
        expected: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let failures = self.failures.lock();
        let f = failures.get(&(stream, batch.producer_id))?;
        // Sequences run 0..=i32::MAX and wrap to 0: "after" is a forward
        // distance of less than half the space.
        let distance = (i64::from(batch.first_seq) - i64::from(expected)).rem_euclid(1 << 31);
        let after = distance > 0 && distance < 1 << 30;
        (f.epoch == batch.epoch
            && f.first_seq == expected
            && after
            && now.saturating_duration_since(f.at) < REMEMBER_FOR)
            .then_some(f.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(p: u32) -> StreamId {
        StreamId {
            topic_id: uuid::Uuid::from_u128(7),
            partition: p,
        }
    }

    fn batch(pid: i64, epoch: i16, first_seq: i32, n: i32) -> BatchIdentity {
        BatchIdentity {
            producer_id: pid,
            epoch,
            first_seq,
            last_seq: first_seq.wrapping_add(n - 1),
            record_count: n as u32,
            max_timestamp: 0,
        }
    }

    #[test]
    fn a_batch_behind_a_retriably_failed_one_gets_its_error() {
        let fb = FailedBatches::default();
        let t0 = Instant::now();
        fb.failed(
            stream(0),
            &batch(5, 0, 1853, 1),
            ResponseError::NotEnoughReplicas,
            t0,
        );
        let later = t0 + Duration::from_secs(5);
        // The stragglers 1854 and 1860, with the partition still expecting 1853.
        for first in [1854, 1860] {
            assert_eq!(
                fb.explain_gap(stream(0), &batch(5, 0, first, 6), 1853, later),
                Some(ResponseError::NotEnoughReplicas)
            );
        }
    }

    #[test]
    fn anything_but_that_shape_keeps_out_of_order() {
        let fb = FailedBatches::default();
        let t0 = Instant::now();
        fb.failed(
            stream(0),
            &batch(5, 0, 100, 10),
            ResponseError::NotLeaderOrFollower,
            t0,
        );
        let now = t0 + Duration::from_secs(1);
        // Another partition, another producer, another epoch.
        assert_eq!(fb.explain_gap(stream(1), &batch(5, 0, 110, 1), 100, now), None);
        assert_eq!(fb.explain_gap(stream(0), &batch(6, 0, 110, 1), 100, now), None);
        assert_eq!(fb.explain_gap(stream(0), &batch(5, 1, 110, 1), 100, now), None);
        // The partition expects something other than the failed batch: a real gap.
        assert_eq!(fb.explain_gap(stream(0), &batch(5, 0, 120, 1), 110, now), None);
        // A batch before the expected sequence is not behind the failure.
        assert_eq!(fb.explain_gap(stream(0), &batch(5, 0, 90, 1), 100, now), None);
        // Too late.
        let late = t0 + REMEMBER_FOR + Duration::from_millis(1);
        assert_eq!(fb.explain_gap(stream(0), &batch(5, 0, 110, 1), 100, late), None);
        // Still there in time.
        assert_eq!(
            fb.explain_gap(stream(0), &batch(5, 0, 110, 1), 100, now),
            Some(ResponseError::NotLeaderOrFollower)
        );
    }

    #[test]
    fn only_retriable_failures_count_and_a_write_forgets_them() {
        let fb = FailedBatches::default();
        let t0 = Instant::now();
        fb.failed(stream(0), &batch(5, 0, 0, 1), ResponseError::InvalidRecord, t0);
        assert_eq!(fb.explain_gap(stream(0), &batch(5, 0, 1, 1), 0, t0), None);
        fb.failed(
            stream(0),
            &batch(5, 0, 0, 1),
            ResponseError::KafkaStorageError,
            t0,
        );
        assert!(fb.explain_gap(stream(0), &batch(5, 0, 1, 1), 0, t0).is_some());
        fb.written(stream(0), 5);
        assert_eq!(fb.explain_gap(stream(0), &batch(5, 0, 1, 1), 0, t0), None);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let fb = FailedBatches::default();
        let t0 = Instant::now();
        fb.failed(
            stream(0),
            &batch(5, 0, i32::MAX, 1),
            ResponseError::NotEnoughReplicas,
            t0,
        );
        assert_eq!(
            fb.explain_gap(stream(0), &batch(5, 0, 3, 1), i32::MAX, t0),
            Some(ResponseError::NotEnoughReplicas)
        );
    }

    #[test]
    fn capacity_is_bounded() {
        let fb = FailedBatches::default();
        let t0 = Instant::now();
        for pid in 0..(CAPACITY as i64 + 10) {
            fb.failed(
                stream(0),
                &batch(pid, 0, 0, 1),
                ResponseError::NotEnoughReplicas,
                t0,
            );
        }
        assert_eq!(fb.failures.lock().len(), CAPACITY);
        // The newest are kept.
        assert!(fb
            .explain_gap(stream(0), &batch(CAPACITY as i64 + 9, 0, 1, 1), 0, t0)
            .is_some());
    }
}
