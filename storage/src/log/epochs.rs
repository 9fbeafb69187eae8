//! A stream's owner-epoch history: which epoch wrote which offsets.
//!
//! Every segment is written by exactly one owner incarnation and records
//! that owner's epoch, so the segment list is the stream's epoch history.
//! [`EpochHistory`] is that history in the shape of a Kafka leader's
//! leader-epoch cache (`LeaderEpochFileCache`): one entry per epoch that
//! wrote records, holding the offset of its first record, plus the current
//! owner epoch starting at the log end offset when it has written nothing
//! yet (Kafka assigns the new leader epoch at the log end offset when a
//! leader is elected). Entries start no earlier than the log start offset
//! (Kafka's `truncateFromStart`). Segments recorded before epochs were kept
//! (epoch 0) contribute no entry, like Kafka's pre-epoch message formats.
//!
//! Storage speaks epochs as `u64` and "undefined" as `None`; the broker
//! turns that into Kafka's -1 sentinels.

use super::segment::SegmentView;

/// One epoch of the history and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    /// The owner (leader) epoch.
    pub epoch: u64,
    /// Offset of the first record written at this epoch (for the current
    /// epoch without records: the log end offset).
    pub start_offset: u64,
}

/// A stream's epoch history at one moment (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochHistory {
    /// Entries in increasing epoch and start-offset order.
    entries: Vec<EpochStart>,
    /// The stream's current owner epoch.
    pub current_epoch: u64,
    /// First readable offset.
    pub log_start_offset: u64,
    /// Offset after the last committed record (the high watermark: an
    /// entry is acknowledged only once its ack quorum has it).
    pub log_end_offset: u64,
}

impl EpochHistory {
    /// The history of a stream from its segment list (in LSSN order, each
    /// segment's committed prefix), bounds and current owner epoch.
    pub fn new(
        segments: &[SegmentView],
        log_start_offset: u64,
        log_end_offset: u64,
        current_epoch: u64,
    ) -> Self {
        let mut entries: Vec<EpochStart> = Vec::new();
        for s in segments {
            if s.owner_epoch == 0 || s.is_empty() || s.next_offset <= log_start_offset {
                continue;
            }
            if entries.last().is_some_and(|last| last.epoch >= s.owner_epoch) {
                // A later segment of an epoch already started.
                continue;
            }
            entries.push(EpochStart {
                epoch: s.owner_epoch,
                start_offset: s.base_offset.max(log_start_offset),
            });
        }
        if entries.last().is_none_or(|last| last.epoch < current_epoch) {
            entries.push(EpochStart {
                epoch: current_epoch,
                start_offset: log_end_offset.max(log_start_offset),
            });
        }
        EpochHistory {
            entries,
            current_epoch,
            log_start_offset,
            log_end_offset,
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochStart] {
        &self.entries
    }

    /// Kafka's `endOffsetFor(requestedEpoch)`: the largest epoch `<=
    /// requested` that wrote records, and the end offset of `requested` —
    /// the start offset of the first later epoch, or the log end offset
    /// when `requested` is the latest epoch. A request older than every
    /// entry answers `requested` itself with the first entry's start (its
    /// records are gone); a request newer than the latest epoch is
    /// undefined (`None`).
    pub fn end_offset_for(&self, requested: u64) -> Option<(u64, u64)> {
        let latest = self.entries.last()?;
        if latest.epoch == requested {
            return Some((requested, self.log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let next = self.entries.get(higher)?;
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            None => Some((requested, next.start_offset)),
            Some(floor) => Some((floor.epoch, next.start_offset)),
        }
    }

    /// The epoch that wrote `offset` (Kafka's `epochForOffset`): the last
    /// entry starting at or before it; `None` below the first entry.
    pub fn epoch_for_offset(&self, offset: u64) -> Option<u64> {
        let upto = self.entries.partition_point(|e| e.start_offset <= offset);
        upto.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// The epoch of the record at the log start offset, as Kafka answers
    /// ListOffsets(EARLIEST): the first entry's epoch when it covers the log
    /// start offset.
    pub fn earliest_epoch(&self) -> Option<u64> {
        self.entries
            .first()
            .filter(|e| e.start_offset <= self.log_start_offset)
            .map(|e| e.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A committed segment `[base, next)` written at `epoch`.
    fn seg(lssn: u64, base: u64, next: u64, epoch: u64) -> SegmentView {
        SegmentView {
            lssn,
            ledger_id: lssn * 10,
            ensemble: vec![distlog_metadata::NodeId::new(1)],
            write_quorum: 1,
            ack_quorum: 1,
            base_offset: base,
            next_offset: next,
            last_entry_id: (next > base).then_some(0),
            start_txid: 0,
            end_txid: 0,
            completed: true,
            owner_epoch: epoch,
        }
    }

    fn starts(h: &EpochHistory) -> Vec<(u64, u64)> {
        h.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    /// Epoch 1 wrote [0,10) in two segments, epoch 2 nothing (an empty
    /// segment), epoch 3 wrote [10,25), epoch 5 wrote [25,30); epoch 6 is
    /// current and has written nothing yet.
    fn several() -> EpochHistory {
        let segments = vec![
            seg(1, 0, 4, 1),
            seg(2, 4, 10, 1),
            seg(3, 10, 10, 2),
            seg(4, 10, 25, 3),
            seg(5, 25, 30, 5),
            seg(6, 30, 30, 6),
        ];
        EpochHistory::new(&segments, 0, 30, 6)
    }

    #[test]
    fn entries_are_epochs_with_records_plus_the_current_one() {
        let h = several();
        assert_eq!(starts(&h), vec![(1, 0), (3, 10), (5, 25), (6, 30)]);
    }

    #[test]
    fn end_offset_for_follows_kafka_leader_epoch_cache() {
        let h = several();
        // An epoch with records ends where the next one with records starts.
        assert_eq!(h.end_offset_for(1), Some((1, 10)));
        assert_eq!(h.end_offset_for(3), Some((3, 25)));
        // An epoch without records answers the largest earlier epoch with
        // records and the start of the next.
        assert_eq!(h.end_offset_for(2), Some((1, 10)));
        assert_eq!(h.end_offset_for(4), Some((3, 25)));
        // The epoch before the current one ends where the current starts.
        assert_eq!(h.end_offset_for(5), Some((5, 30)));
        // The latest (current) epoch ends at the log end offset.
        assert_eq!(h.end_offset_for(6), Some((6, 30)));
        // Below the first epoch: the requested epoch, first start offset.
        assert_eq!(h.end_offset_for(0), Some((0, 0)));
        // Above the latest: undefined.
        assert_eq!(h.end_offset_for(7), None);
        assert_eq!(h.end_offset_for(u64::MAX), None);
    }

    #[test]
    fn current_epoch_with_records_ends_at_the_log_end() {
        let segments = vec![seg(1, 0, 10, 1), seg(2, 10, 17, 2)];
        let h = EpochHistory::new(&segments, 0, 17, 2);
        assert_eq!(starts(&h), vec![(1, 0), (2, 10)]);
        assert_eq!(h.end_offset_for(1), Some((1, 10)));
        assert_eq!(h.end_offset_for(2), Some((2, 17)));
        assert_eq!(h.end_offset_for(3), None);
    }

    #[test]
    fn requested_epoch_below_the_first_after_truncation() {
        // Epochs 1 and 2 were truncated away; epoch 3's segment starts
        // before the log start offset, which moved to 12.
        let segments = vec![seg(4, 10, 20, 3), seg(5, 20, 26, 4)];
        let h = EpochHistory::new(&segments, 12, 26, 4);
        assert_eq!(starts(&h), vec![(3, 12), (4, 20)]);
        assert_eq!(h.end_offset_for(1), Some((1, 12)));
        assert_eq!(h.end_offset_for(3), Some((3, 20)));
        assert_eq!(h.earliest_epoch(), Some(3));
        // A segment wholly below the log start offset is gone.
        let segments = vec![seg(1, 0, 12, 1), seg(2, 12, 20, 2)];
        let h = EpochHistory::new(&segments, 12, 20, 2);
        assert_eq!(starts(&h), vec![(2, 12)]);
    }

    #[test]
    fn empty_stream_has_only_the_current_epoch() {
        let h = EpochHistory::new(&[], 0, 0, 1);
        assert_eq!(starts(&h), vec![(1, 0)]);
        assert_eq!(h.end_offset_for(1), Some((1, 0)));
        assert_eq!(h.end_offset_for(0), Some((0, 0)));
        assert_eq!(h.end_offset_for(2), None);
        assert_eq!(h.earliest_epoch(), Some(1));
        assert_eq!(h.epoch_for_offset(0), Some(1));

        // Only empty segments (owners that never wrote), log emptied by
        // truncation at 40.
        let segments = vec![seg(7, 40, 40, 2), seg(8, 40, 40, 3)];
        let h = EpochHistory::new(&segments, 40, 40, 4);
        assert_eq!(starts(&h), vec![(4, 40)]);
        assert_eq!(h.end_offset_for(3), Some((3, 40)));
    }

    #[test]
    fn segments_without_a_recorded_epoch_are_skipped() {
        let segments = vec![seg(1, 0, 10, 0), seg(2, 10, 15, 2)];
        let h = EpochHistory::new(&segments, 0, 15, 3);
        assert_eq!(starts(&h), vec![(2, 10), (3, 15)]);
        assert_eq!(h.end_offset_for(1), Some((1, 10)));
        assert_eq!(h.epoch_for_offset(5), None);
        assert_eq!(h.earliest_epoch(), None);
    }

    #[test]
    fn epoch_for_offset_finds_the_writer() {
        let h = several();
        assert_eq!(h.epoch_for_offset(0), Some(1));
        assert_eq!(h.epoch_for_offset(9), Some(1));
        assert_eq!(h.epoch_for_offset(10), Some(3));
        assert_eq!(h.epoch_for_offset(24), Some(3));
        assert_eq!(h.epoch_for_offset(29), Some(5));
        // At and past the log end: the current epoch writes there.
        assert_eq!(h.epoch_for_offset(30), Some(6));
        assert_eq!(h.earliest_epoch(), Some(1));
    }
}
