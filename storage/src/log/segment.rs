//! The stream's view of its segments and the offset ↔ segment ↔ txid
//! lookups over it (docs/architecture.md, "Data model"): binary searches over the segment list,
//! never scans.

use distlog_metadata::{LedgerId, NodeId, SegmentMeta, SegmentState};

/// What readers need to know about one segment. For the segment the local
/// writer is filling, `next_offset`/`last_entry_id`/`end_txid` describe its
/// committed prefix and move as the LAC advances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentView {
    /// Log segment sequence number.
    pub lssn: u64,
    /// Ledger holding the segment.
    pub ledger_id: LedgerId,
    /// Bookie ids of the ledger's ensemble.
    pub ensemble: Vec<NodeId>,
    /// Write quorum.
    pub write_quorum: usize,
    /// Ack quorum.
    pub ack_quorum: usize,
    /// First sequence id of the segment.
    pub base_offset: u64,
    /// Sequence id after the last committed record.
    pub next_offset: u64,
    /// Last committed entry id (None while empty).
    pub last_entry_id: Option<u64>,
    /// txid of the segment's first entry's predecessor.
    pub start_txid: u64,
    /// txid of the last committed entry (== start_txid when empty).
    pub end_txid: u64,
    /// Whether the segment is sealed.
    pub completed: bool,
    /// Owner epoch of the writer that added the segment (the Kafka leader
    /// epoch of its records); 0 when metadata predates recorded epochs.
    pub owner_epoch: u64,
}

impl SegmentView {
    /// View of a segment from its metadata. An in-progress segment found in
    /// metadata has an unknown end; it is treated as empty until recovered.
    pub fn from_meta(m: &SegmentMeta) -> Self {
        SegmentView {
            lssn: m.lssn,
            ledger_id: m.ledger_id,
            ensemble: m.ensemble.clone(),
            write_quorum: m.write_quorum as usize,
            ack_quorum: m.ack_quorum as usize,
            base_offset: m.base_offset,
            next_offset: m.next_offset(),
            last_entry_id: m.last_entry_id,
            start_txid: m.start_txid,
            end_txid: if m.state == SegmentState::Completed {
                m.end_txid
            } else {
                m.start_txid
            },
            completed: m.state == SegmentState::Completed,
            owner_epoch: m.owner_epoch,
        }
    }

    /// Whether the segment holds committed records.
    pub fn is_empty(&self) -> bool {
        self.last_entry_id.is_none() || self.next_offset == self.base_offset
    }
}

/// Index of the segment holding `offset`, if any: the last non-empty
/// segment whose base offset is `<= offset`, provided `offset` is below its
/// committed end.
pub fn segment_for_offset(segments: &[SegmentView], offset: u64) -> Option<usize> {
    let upto = segments.partition_point(|s| s.base_offset <= offset);
    segments[..upto]
        .iter()
        .rposition(|s| !s.is_empty())
        .filter(|&i| offset < segments[i].next_offset)
}

/// Index of the first non-empty segment whose committed end txid is
/// `>= txid`: the segment where the first entry with txid `>= txid` lives.
pub fn segment_for_txid(segments: &[SegmentView], txid: u64) -> Option<usize> {
    let from = segments.partition_point(|s| s.end_txid < txid);
    segments[from..]
        .iter()
        .position(|s| !s.is_empty())
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(lssn: u64, base: u64, next: u64, end_txid: u64) -> SegmentView {
        SegmentView {
            lssn,
            ledger_id: lssn * 10,
            ensemble: vec![NodeId::new(1)],
            write_quorum: 1,
            ack_quorum: 1,
            base_offset: base,
            next_offset: next,
            last_entry_id: if next > base { Some(0) } else { None },
            start_txid: 0,
            end_txid,
            completed: true,
            owner_epoch: 1,
        }
    }

    #[test]
    fn offset_lookup_finds_the_holding_segment() {
        // [0,100) [100,100) empty  [100,250) [250,300)
        let s = vec![
            seg(1, 0, 100, 10),
            seg(2, 100, 100, 10),
            seg(3, 100, 250, 20),
            seg(4, 250, 300, 30),
        ];
        assert_eq!(segment_for_offset(&s, 0), Some(0));
        assert_eq!(segment_for_offset(&s, 99), Some(0));
        assert_eq!(segment_for_offset(&s, 100), Some(2));
        assert_eq!(segment_for_offset(&s, 249), Some(2));
        assert_eq!(segment_for_offset(&s, 250), Some(3));
        assert_eq!(segment_for_offset(&s, 299), Some(3));
        assert_eq!(segment_for_offset(&s, 300), None);
        assert_eq!(segment_for_offset(&[], 0), None);
    }

    #[test]
    fn offset_lookup_after_truncation_gap() {
        // log start moved to 500: the list starts later.
        let s = vec![seg(7, 500, 600, 10)];
        assert_eq!(segment_for_offset(&s, 499), None);
        assert_eq!(segment_for_offset(&s, 500), Some(0));
    }

    #[test]
    fn txid_lookup_finds_first_segment_reaching_txid() {
        let s = vec![
            seg(1, 0, 100, 10),
            seg(2, 100, 100, 10),
            seg(3, 100, 250, 20),
            seg(4, 250, 300, 30),
        ];
        assert_eq!(segment_for_txid(&s, 0), Some(0));
        assert_eq!(segment_for_txid(&s, 10), Some(0));
        assert_eq!(segment_for_txid(&s, 11), Some(2));
        assert_eq!(segment_for_txid(&s, 20), Some(2));
        assert_eq!(segment_for_txid(&s, 21), Some(3));
        assert_eq!(segment_for_txid(&s, 30), Some(3));
        assert_eq!(segment_for_txid(&s, 31), None);
    }
}
