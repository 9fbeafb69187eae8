//! The transactional part of a partition's producer state: which producers
//! have a transaction open here and from which offset, which transactions
//! ended in an abort (the aborted-transaction index that read_committed
//! fetches return), the last stable offset (LSO) derived from them, and
//! the KIP-890 verification guards.
//!
//! Pure like [`super::state`]: no locks, no clock, no I/O. It is consulted
//! in offset order by the stream's writer (through
//! [`super::PartitionProducers`]), persisted in every producer-state
//! snapshot (open transactions and the aborted index; see
//! [`super::snapshot`]) and rebuilt by replaying the batches after the last
//! snapshot, so it survives failover. Aborted transactions that end below
//! the log start offset are dropped when the log is truncated.

use std::collections::{HashMap, VecDeque};

/// One aborted transaction of this partition (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose transaction aborted.
    pub producer_id: i64,
    /// Offset of its first record in this partition.
    pub first_offset: u64,
    /// Offset of its abort marker.
    pub last_offset: u64,
}

/// The transactional state of one partition (see module docs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxnIndex {
    /// Producer id → offset of the first record of its open transaction.
    ongoing: HashMap<i64, u64>,
    /// Transactions whose marker is admitted but maybe not yet below the
    /// high watermark: (first offset, marker offset). They hold the LSO
    /// until their marker is committed. Not persisted: after a rebuild
    /// everything is committed.
    completing: Vec<(u64, u64)>,
    /// Aborted transactions in marker order (so `last_offset` ascends).
    aborted: VecDeque<AbortedTxn>,
    /// Producers verified (KIP-890) to have this partition in their open
    /// transaction, by epoch: what lets a producer's first transactional
    /// batch here in.
    guards: HashMap<i64, i16>,
}

impl TxnIndex {
    /// Whether `producer_id` has a transaction open in this partition.
    pub fn is_ongoing(&self, producer_id: i64) -> bool {
        self.ongoing.contains_key(&producer_id)
    }

    /// The first offset of `producer_id`'s open transaction here.
    pub fn ongoing_start(&self, producer_id: i64) -> Option<u64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// A transactional batch of `producer_id` was written at `offset`: it
    /// opens a transaction here unless one is open.
    pub fn begin(&mut self, producer_id: i64, offset: u64) {
        self.ongoing.entry(producer_id).or_insert(offset);
        self.guards.remove(&producer_id);
    }

    /// A marker of `producer_id` was written at `marker_offset`: the open
    /// transaction (if any) ends; an abort is indexed. Clears the
    /// producer's verification guard, so a batch verified before the
    /// marker cannot open a transaction after it.
    pub fn end(&mut self, producer_id: i64, marker_offset: u64, commit: bool) {
        self.guards.remove(&producer_id);
        let Some(first) = self.ongoing.remove(&producer_id) else {
            return;
        };
        self.completing.push((first, marker_offset));
        if !commit {
            self.aborted.push_back(AbortedTxn {
                producer_id,
                first_offset: first,
                last_offset: marker_offset,
            });
        }
    }

    /// Record that the coordinator confirmed `producer_id` (at `epoch`)
    /// has this partition in its open transaction.
    pub fn add_guard(&mut self, producer_id: i64, epoch: i16) {
        self.guards.insert(producer_id, epoch);
    }

    /// Whether a transactional batch of `producer_id` at `epoch` that
    /// would open a transaction here was verified (and no marker since).
    pub fn guarded(&self, producer_id: i64, epoch: i16) -> bool {
        self.guards.get(&producer_id) == Some(&epoch)
    }

    /// The last stable offset for high watermark `hw`: no offset at or
    /// above the first record of a transaction that is open, or whose
    /// marker is not yet committed, is stable. Forgets transactions whose
    /// marker is below `hw`.
    pub fn last_stable_offset(&mut self, hw: u64) -> u64 {
        self.completing.retain(|&(_, marker)| marker >= hw);
        let open = self.ongoing.values().copied().min().unwrap_or(u64::MAX);
        let completing = self
            .completing
            .iter()
            .map(|&(first, _)| first)
            .min()
            .unwrap_or(u64::MAX);
        hw.min(open).min(completing)
    }

    /// The aborted transactions a fetch of offsets `[from, to)` must
    /// report: those whose records overlap the range, oldest marker first.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forget aborted transactions wholly below the log start offset.
    pub fn truncate_before(&mut self, log_start_offset: u64) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.last_offset < log_start_offset)
        {
            self.aborted.pop_front();
        }
    }

    /// Open transactions, (producer id, first offset), in no order.
    pub fn ongoing(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.ongoing.iter().map(|(p, o)| (*p, *o))
    }

    /// The aborted index, oldest marker first.
    pub fn aborted(&self) -> impl Iterator<Item = &AbortedTxn> {
        self.aborted.iter()
    }

    /// Rebuild from a snapshot's parts.
    pub fn from_parts(ongoing: HashMap<i64, u64>, aborted: VecDeque<AbortedTxn>) -> Self {
        TxnIndex {
            ongoing,
            aborted,
            ..TxnIndex::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_waits_for_open_transactions_and_uncommitted_markers() {
        let mut t = TxnIndex::default();
        assert_eq!(t.last_stable_offset(10), 10);
        t.begin(1, 10);
        t.begin(1, 12); // still the same transaction
        t.begin(2, 11);
        assert_eq!(t.last_stable_offset(15), 10);
        t.end(1, 15, true);
        // The marker at 15 is not below the high watermark yet.
        assert_eq!(t.last_stable_offset(15), 10);
        assert_eq!(t.last_stable_offset(16), 11);
        t.end(2, 16, false);
        assert_eq!(t.last_stable_offset(17), 17);
        assert_eq!(
            t.aborted_between(0, 100),
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 11,
                last_offset: 16
            }]
        );
    }

    #[test]
    fn aborted_lookups_cover_overlapping_ranges_only_and_truncation_drops_old_ones() {
        let mut t = TxnIndex::default();
        for (pid, first, marker) in [(1, 0, 5), (2, 3, 8), (1, 10, 12)] {
            t.begin(pid, first);
            t.end(pid, marker, false);
        }
        let pids = |v: Vec<AbortedTxn>| {
            v.iter()
                .map(|a| (a.producer_id, a.first_offset))
                .collect::<Vec<_>>()
        };
        assert_eq!(pids(t.aborted_between(6, 9)), vec![(2, 3)]);
        assert_eq!(pids(t.aborted_between(0, 3)), vec![(1, 0)]);
        assert_eq!(pids(t.aborted_between(9, 10)), vec![]);
        assert_eq!(pids(t.aborted_between(9, 11)), vec![(1, 10)]);
        t.truncate_before(6);
        assert_eq!(pids(t.aborted_between(0, 100)), vec![(2, 3), (1, 10)]);
    }

    #[test]
    fn a_marker_clears_the_guard_and_a_commit_is_not_indexed() {
        let mut t = TxnIndex::default();
        t.add_guard(4, 2);
        assert!(t.guarded(4, 2));
        assert!(!t.guarded(4, 1));
        t.end(4, 0, true);
        assert!(!t.guarded(4, 2));
        t.add_guard(4, 2);
        t.begin(4, 1);
        assert!(!t.guarded(4, 2), "a begun transaction needs no guard");
        t.end(4, 3, true);
        assert!(t.aborted_between(0, 10).is_empty());
        assert!(!t.is_ongoing(4));
    }
}
