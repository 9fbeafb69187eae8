//! The idempotent-producer state of one partition: for each producer id,
//! its epoch and its last [`MAX_BATCHES`] batches, and Kafka's rules for
//! admitting a batch against them. Pure: no locks, no clock, no I/O (the
//! caller passes the time), so every rule is unit-tested on its own.

use std::collections::{HashMap, VecDeque};

use super::ProducerStateError;
use crate::records::batch::BatchHeader;

/// Batches remembered per producer: Kafka's limit of in-flight requests
/// per connection for an idempotent producer, so any retry of an
/// unacknowledged batch is among them.
pub const MAX_BATCHES: usize = 5;

/// What identifies a produced batch for idempotence (from its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    /// Producer id (never negative here: `-1` batches have no identity).
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Sequence number of the first record.
    pub first_seq: i32,
    /// Sequence number of the last record (wraps after `i32::MAX` to 0).
    pub last_seq: i32,
    /// Records in the batch.
    pub record_count: u32,
    /// The batch's max timestamp (reported by DescribeProducers).
    pub max_timestamp: i64,
}

impl BatchIdentity {
    /// The identity of the batch whose header starts `bytes`, or `None`
    /// for a batch without a producer id (`-1`) or too short to have a
    /// header (validation refused those before they got here).
    pub fn of(bytes: &[u8]) -> Option<BatchIdentity> {
        Self::of_header(&BatchHeader::parse(bytes).ok()?)
    }

    /// The identity of a batch whose header is already parsed (see [`Self::of`]).
    pub fn of_header(h: &BatchHeader) -> Option<BatchIdentity> {
        if h.producer_id < 0 {
            return None;
        }
        let delta = u32::try_from(h.last_offset_delta).ok()?;
        Some(BatchIdentity {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: seq_add(h.base_sequence, delta),
            record_count: delta + 1,
            max_timestamp: h.max_timestamp,
        })
    }
}

/// `seq + n` in Kafka's sequence space, which wraps from `i32::MAX` to 0.
pub fn seq_add(seq: i32, n: u32) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    ((i64::from(seq.max(0)) + i64::from(n)) % modulus) as i32
}

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First sequence number.
    pub first_seq: i32,
    /// Last sequence number.
    pub last_seq: i32,
    /// Offset of its first record.
    pub first_offset: u64,
    /// Records in it.
    pub record_count: u32,
    /// Its max timestamp.
    pub max_timestamp: i64,
}

/// What a partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The current epoch (a batch of an older one is refused).
    pub epoch: i16,
    /// The last batches of this epoch, oldest first, at most [`MAX_BATCHES`].
    pub batches: VecDeque<BatchMeta>,
    /// Wall-clock ms when the producer was last written (or, for a producer
    /// rebuilt by replay, when the partition was opened): expiry counts
    /// from here, never from a client's timestamps.
    pub last_seen_ms: i64,
}

impl ProducerEntry {
    /// The last batch written.
    pub fn last(&self) -> Option<&BatchMeta> {
        self.batches.back()
    }
}

/// The outcome of checking a batch (see [`ProducerStates::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// New and in sequence: write it.
    Write,
    /// A retry of a batch already written at `first_offset`.
    Duplicate {
        /// The original's first offset.
        first_offset: u64,
        /// The original's record count.
        record_count: u32,
    },
    /// Refused with the Kafka error of the rule it breaks.
    Refuse(ProducerStateError),
}

/// The producer state of one partition (see module docs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// Check a batch against the state without changing it, by Kafka's
    /// rules, in Kafka's order:
    /// 1. a batch of an epoch older than the producer's → INVALID_PRODUCER_EPOCH;
    /// 2. the same epoch and sequence range as a remembered batch → duplicate;
    /// 3. a newer epoch must start at sequence 0 (the KIP-360 bump);
    ///    the same epoch must continue the last sequence → else
    ///    OUT_OF_ORDER_SEQUENCE_NUMBER;
    /// 4. an unknown producer must start at sequence 0 → else
    ///    UNKNOWN_PRODUCER_ID.
    pub fn check(&self, b: &BatchIdentity) -> Check {
        let Some(entry) = self.producers.get(&b.producer_id) else {
            return if b.first_seq == 0 {
                Check::Write
            } else {
                Check::Refuse(ProducerStateError::UnknownProducerId {
                    producer_id: b.producer_id,
                    sequence: b.first_seq,
                })
            };
        };
        if b.epoch < entry.epoch {
            return Check::Refuse(ProducerStateError::InvalidProducerEpoch {
                producer_id: b.producer_id,
                epoch: b.epoch,
                current: entry.epoch,
            });
        }
        if b.epoch > entry.epoch {
            return if b.first_seq == 0 {
                Check::Write
            } else {
                Check::Refuse(ProducerStateError::OutOfOrderSequence {
                    producer_id: b.producer_id,
                    expected: 0,
                    received: b.first_seq,
                })
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
        {
            return Check::Duplicate {
                first_offset: dup.first_offset,
                record_count: dup.record_count,
            };
        }
        let expected = entry.last().map_or(0, |m| seq_add(m.last_seq, 1));
        if b.first_seq == expected {
            Check::Write
        } else {
            Check::Refuse(ProducerStateError::OutOfOrderSequence {
                producer_id: b.producer_id,
                expected,
                received: b.first_seq,
            })
        }
    }

    /// Remember a batch written at `first_offset` (admitted, or read back
    /// from the stream). A newer epoch replaces the producer's batches.
    pub fn record(&mut self, b: &BatchIdentity, first_offset: u64, now_ms: i64) {
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: b.epoch,
                batches: VecDeque::with_capacity(MAX_BATCHES),
                last_seen_ms: now_ms,
            });
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            first_offset,
            record_count: b.record_count,
            max_timestamp: b.max_timestamp,
        });
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    }

    /// Check a batch and, when it is to be written at `first_offset`,
    /// remember it.
    pub fn admit(&mut self, b: &BatchIdentity, first_offset: u64, now_ms: i64) -> Check {
        let check = self.check(b);
        if check == Check::Write {
            self.record(b, first_offset, now_ms);
        }
        check
    }

    /// Drop producers not written for `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`), except those `keep` names (producers
    /// with a transaction open here); returns how many were dropped.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64, keep: impl Fn(i64) -> bool) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|id, e| now_ms.saturating_sub(e.last_seen_ms) < expiration_ms || keep(*id));
        before - self.producers.len()
    }

    /// An end-transaction marker of `producer_id` at `epoch`: refused when
    /// the producer is known at a newer epoch; a newer epoch (a coordinator
    /// abort that fenced the producer) replaces the producer's batches, so
    /// its next batch must start a new sequence, as after any bump.
    pub fn end_txn(&mut self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<(), ProducerStateError> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_seen_ms: now_ms,
            });
        if epoch < entry.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
        Ok(())
    }

    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Every producer, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Insert a producer as a snapshot held it.
    pub(super) fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
