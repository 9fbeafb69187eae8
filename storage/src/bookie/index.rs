//! The in-memory index of one ledger: one row per durable entry.
//!
//! A bookie holds the entries of its stripe of the ledger (all of them when
//! E = Qw, see [`crate::ledger::ensemble`]), so entry ids are strictly
//! increasing along the index but not necessarily dense: rows are found by
//! binary search on the entry id, and `at[k]` is where `rows[k]` is stored
//! (a file offset in a ledger file, or a slot of ledger storage in storage
//! engine v2). Sequence ids and txids are non-decreasing along the ledger,
//! so both lookups are binary searches too.

use crate::ledger::IndexRow;

use super::format::HEADER_LEN;

/// Rows of a ledger's durable entries and where each is stored (`L`: by
/// default the offset of its record header in the ledger's file).
#[derive(Debug)]
pub(crate) struct LedgerIndex<L = u64> {
    rows: Vec<IndexRow>,
    at: Vec<L>,
}

impl<L> Default for LedgerIndex<L> {
    fn default() -> Self {
        LedgerIndex {
            rows: Vec::new(),
            at: Vec::new(),
        }
    }
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

impl<L: Copy> LedgerIndex<L> {
    /// Number of durable entries.
    pub fn len(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Record a newly durable entry stored at `at`.
    /// The caller guarantees `row.entry_id` is above every held entry id.
    pub fn push(&mut self, row: IndexRow, at: L) {
        debug_assert!(self.rows.last().is_none_or(|l| l.entry_id < row.entry_id));
        self.rows.push(row);
        self.at.push(at);
    }

    /// Move entry `entry_id` to `at`; false if it is not held.
    #[cfg_attr(not(test), allow(dead_code))] // storage engine v2, not yet wired
    pub fn relocate(&mut self, entry_id: u64, at: L) -> bool {
        match self.rows.binary_search_by_key(&entry_id, |r| r.entry_id) {
            Ok(i) => {
                self.at[i] = at;
                true
            }
            Err(_) => false,
        }
    }

    /// The held entries among `first..=last` with where each is stored, in
    /// entry order, stopping before an entry that would push the payload
    /// total past `max_bytes` (the first held entry is always included).
    #[cfg_attr(not(test), allow(dead_code))] // storage engine v2, not yet wired
    pub fn range(&self, first: u64, last: u64, max_bytes: usize) -> Vec<(IndexRow, L)> {
        let Some((first_idx, count)) = self.bounded(first, last, max_bytes) else {
            return Vec::new();
        };
        let span = first_idx..first_idx + count;
        self.rows[span.clone()]
            .iter()
            .copied()
            .zip(self.at[span].iter().copied())
            .collect()
    }

    /// Index and count of the held entries among `first..=last` that fit
    /// `max_bytes` (at least one); `None` when none is held.
    fn bounded(&self, first: u64, last: u64, max_bytes: usize) -> Option<(usize, usize)> {
        if first > last {
            return None;
        }
        let first_idx = self.rows.partition_point(|r| r.entry_id < first);
        let end_idx = self.rows.partition_point(|r| r.entry_id <= last);
        if first_idx >= end_idx {
            return None;
        }
        let mut count = 0;
        let mut total: u64 = 0;
        for row in &self.rows[first_idx..end_idx] {
            let len = u64::from(row.len);
            if count > 0 && total + len > max_bytes as u64 {
                break;
            }
            total += len;
            count += 1;
        }
        Some((first_idx, count))
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
}

impl LedgerIndex<u64> {
    /// Plan a read of the held entries among `first..=last`, stopping
    /// before an entry that would push the payload total past `max_bytes`
    /// (the first held entry is always included). Held entries are
    /// consecutive records of the file, so one span covers them. `None`
    /// when no entry of the range is held.
    pub fn plan_read(&self, first: u64, last: u64, max_bytes: usize) -> Option<ReadPlan> {
        let (first_idx, count) = self.bounded(first, last, max_bytes)?;
        let last_idx = first_idx + count - 1;
        let rows = self.rows[first_idx..=last_idx].to_vec();
        let start = self.at[first_idx];
        let span = self.at[last_idx] + HEADER_LEN as u64 + u64::from(self.rows[last_idx].len) - start;
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
        assert_eq!(LedgerIndex::<u64>::default().entry_for_seq(0), None);
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

    #[test]
    fn a_located_index_gives_ranges_with_their_slots_and_moves_entries() {
        let mut idx = LedgerIndex::<Option<u32>>::default();
        for entry_id in [1u64, 2, 4] {
            let row = IndexRow {
                entry_id,
                first_seq: entry_id,
                record_count: 1,
                txid: entry_id,
                len: 10,
            };
            idx.push(row, None);
        }
        assert!(idx.relocate(2, Some(7)));
        assert!(!idx.relocate(3, Some(8)), "entry 3 is not held");
        let got: Vec<_> = idx
            .range(0, 9, usize::MAX)
            .into_iter()
            .map(|(r, at)| (r.entry_id, at))
            .collect();
        assert_eq!(got, vec![(1, None), (2, Some(7)), (4, None)]);
        assert_eq!(
            idx.range(2, 3, 0).len(),
            1,
            "the first held entry is always given"
        );
        assert_eq!(idx.range(1, 9, 25).len(), 2);
        assert!(idx.range(5, 9, 100).is_empty());
        assert!(idx.range(4, 2, 100).is_empty());
    }
}
