//! The in-memory index of one ledger: one row per durable entry.
//!
//! A bookie holds the entries of its stripe of the ledger (all of them when
//! E = Qw, see [`crate::ledger::ensemble`]), so entry ids are strictly
//! increasing along the index but not necessarily dense: rows are found by
//! binary search on the entry id, and `offsets[k]` is where the record
//! header of `rows[k]` starts. Sequence ids and txids are non-decreasing
//! along the ledger, so both lookups are binary searches too.

use crate::ledger::IndexRow;

use super::format::HEADER_LEN;

/// Rows and file offsets of a ledger's durable entries.
#[derive(Debug, Default)]
pub(crate) struct LedgerIndex {
    rows: Vec<IndexRow>,
    offsets: Vec<u64>,
}

/// Which entries a read covers and where their bytes sit in the file.
#[derive(Debug)]
pub(crate) struct ReadPlan {
    /// Rows of the entries to read, in entry-id order.
    pub rows: Vec<IndexRow>,
    /// File offset of the first entry's header.
    pub start: u64,
    /// Bytes from `start` covering all the entries (headers included).
    pub span: u64,
}

impl LedgerIndex {
    /// Number of durable entries.
    pub fn len(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Record a newly durable entry whose header sits at `offset`.
    /// The caller guarantees `row.entry_id` is above every held entry id.
    pub fn push(&mut self, row: IndexRow, offset: u64) {
        debug_assert!(self.rows.last().is_none_or(|l| l.entry_id < row.entry_id));
        self.rows.push(row);
        self.offsets.push(offset);
    }

    /// Whether entry `entry_id` is held.
    pub fn contains(&self, entry_id: u64) -> bool {
        self.rows.binary_search_by_key(&entry_id, |r| r.entry_id).is_ok()
    }

    /// The last durable entry.
    pub fn last(&self) -> Option<IndexRow> {
        self.rows.last().copied()
    }

    /// The last entry whose `first_seq <= seq`.
    pub fn entry_for_seq(&self, seq: u64) -> Option<IndexRow> {
        let idx = self.rows.partition_point(|r| r.first_seq <= seq);
        idx.checked_sub(1).map(|i| self.rows[i])
    }

    /// The first entry with records whose `txid >= txid` (control
    /// entries, which hold no records, are never an answer).
    pub fn entry_for_txid(&self, txid: u64) -> Option<IndexRow> {
        let idx = self.rows.partition_point(|r| r.txid < txid);
        self.rows[idx..].iter().find(|r| r.record_count > 0).copied()
    }

    /// Plan a read of the held entries among `first..=last`, stopping
    /// before an entry that would push the payload total past `max_bytes`
    /// (the first held entry is always included). Held entries are
    /// consecutive records of the file, so one span covers them. `None`
    /// when no entry of the range is held.
    pub fn plan_read(&self, first: u64, last: u64, max_bytes: usize) -> Option<ReadPlan> {
        if first > last {
            return None;
        }
        let first_idx = self.rows.partition_point(|r| r.entry_id < first);
        let end_idx = self.rows.partition_point(|r| r.entry_id <= last);
        if first_idx >= end_idx {
            return None;
        }
        let mut rows = Vec::new();
        let mut total: u64 = 0;
        for row in &self.rows[first_idx..end_idx] {
            let len = u64::from(row.len);
            if !rows.is_empty() && total + len > max_bytes as u64 {
                break;
            }
            total += len;
            rows.push(*row);
        }
        let start = self.offsets[first_idx];
        let last_idx = first_idx + rows.len() - 1;
        let span = self.offsets[last_idx] + HEADER_LEN as u64 + u64::from(self.rows[last_idx].len) - start;
        Some(ReadPlan { rows, start, span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(rows: &[(u64, u64, u32)]) -> LedgerIndex {
        sparse_index(
            &rows
                .iter()
                .enumerate()
                .map(|(i, r)| (i as u64, *r))
                .collect::<Vec<_>>(),
        )
    }

    /// An index of the given entry ids (strictly increasing).
    fn sparse_index(rows: &[(u64, (u64, u64, u32))]) -> LedgerIndex {
        let mut idx = LedgerIndex::default();
        let mut off = 0;
        for &(entry_id, (first_seq, txid, len)) in rows {
            idx.push(
                IndexRow {
                    entry_id,
                    first_seq,
                    record_count: 1,
                    txid,
                    len,
                },
                off,
            );
            off += HEADER_LEN as u64 + u64::from(len);
        }
        idx
    }

    #[test]
    fn lower_bounds() {
        let idx = index(&[(10, 100, 1), (20, 100, 1), (30, 200, 1)]);
        assert_eq!(idx.entry_for_seq(9), None);
        assert_eq!(idx.entry_for_seq(10).map(|r| r.entry_id), Some(0));
        assert_eq!(idx.entry_for_seq(25).map(|r| r.entry_id), Some(1));
        assert_eq!(idx.entry_for_seq(1000).map(|r| r.entry_id), Some(2));
        assert_eq!(idx.entry_for_txid(0).map(|r| r.entry_id), Some(0));
        assert_eq!(idx.entry_for_txid(100).map(|r| r.entry_id), Some(0));
        assert_eq!(idx.entry_for_txid(101).map(|r| r.entry_id), Some(2));
        assert_eq!(idx.entry_for_txid(201), None);
        assert_eq!(LedgerIndex::default().entry_for_seq(0), None);
    }

    #[test]
    fn read_plan_honours_max_bytes_and_bounds() {
        let idx = index(&[(0, 0, 10), (1, 0, 10), (2, 0, 10)]);
        let p = idx.plan_read(0, 2, 15).expect("entry 0 exists");
        assert_eq!(p.rows.len(), 1);
        assert_eq!((p.start, p.span), (0, 50));
        let p = idx.plan_read(1, 99, 20).expect("entry 1 exists");
        assert_eq!(p.rows.iter().map(|r| r.entry_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!((p.start, p.span), (50, 100));
        let p = idx.plan_read(2, 2, 0).expect("entry 2 exists");
        assert_eq!(p.rows.len(), 1);
        assert!(idx.plan_read(3, 5, 100).is_none());
        assert!(idx.plan_read(2, 1, 100).is_none());
    }

    #[test]
    fn a_striped_index_plans_reads_of_the_entries_it_holds() {
        // The stripe of bookie 0 of a 3/2 ensemble: entries 0, 2, 3, 5.
        let idx = sparse_index(&[
            (0, (0, 0, 10)),
            (2, (20, 1, 10)),
            (3, (30, 2, 10)),
            (5, (50, 3, 10)),
        ]);
        assert_eq!(idx.len(), 4);
        assert!(idx.contains(3) && !idx.contains(1) && !idx.contains(4) && !idx.contains(6));
        let ids = |p: Option<ReadPlan>| p.map(|p| p.rows.iter().map(|r| r.entry_id).collect::<Vec<_>>());
        assert_eq!(ids(idx.plan_read(1, 4, 100)), Some(vec![2, 3]));
        assert_eq!(ids(idx.plan_read(4, 4, 100)), None);
        assert_eq!(ids(idx.plan_read(4, 99, 0)), Some(vec![5]));
        assert_eq!(ids(idx.plan_read(6, 99, 100)), None);
        // One span over the held records 2 and 3 (the second and third in the file).
        let p = idx.plan_read(1, 4, 100).expect("held");
        assert_eq!((p.start, p.span), (50, 100));
        assert_eq!(idx.entry_for_seq(45).map(|r| r.entry_id), Some(3));
        assert_eq!(idx.entry_for_txid(2).map(|r| r.entry_id), Some(3));
    }
}
