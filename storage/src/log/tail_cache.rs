//! The tail cache: the most recent committed entries of a stream, kept by
//! the writer so readers of fresh data (tailing consumers, fan-out) never
//! touch the segment store.
//!
//! The cache holds *pieces*: the appends an entry was built from, each
//! whole record batches with its own first sequence id and running txid,
//! so caching never copies payload bytes to rebuild an entry.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::dlsn::Dlsn;
use crate::ledger::IndexRow;
use crate::metrics;

/// One cached, committed piece of an entry.
#[derive(Debug, Clone)]
pub struct CachedEntry {
    /// Segment holding the entry.
    pub lssn: u64,
    /// First sequence id of the whole entry (for DLSN slots).
    pub entry_first_seq: u64,
    /// The piece's row: the entry's id, the piece's first sequence id,
    /// record count, running txid and length.
    pub row: IndexRow,
    /// Stored payload.
    pub payload: Bytes,
}

/// Committed entries with contiguous sequence ids, newest last, bounded by
/// payload bytes (at least the newest entry is always kept).
#[derive(Debug, Default)]
pub struct TailCache {
    entries: VecDeque<CachedEntry>,
    bytes: usize,
    capacity: usize,
}

impl TailCache {
    /// An empty cache holding up to `capacity` payload bytes.
    pub fn new(capacity: usize) -> Self {
        TailCache {
            entries: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    /// Add the next committed entry (its first sequence id must follow the
    /// previous entry's last; otherwise the cache restarts from it).
    pub fn push(&mut self, entry: CachedEntry) {
        if self.capacity == 0 {
            return;
        }
        if let Some(last) = self.entries.back() {
            if last.row.first_seq + last.row.record_count as u64 != entry.row.first_seq {
                self.clear();
            }
        }
        self.bytes += entry.payload.len();
        metrics::TAIL_CACHE_BYTES.add(entry.payload.len() as i64);
        self.entries.push_back(entry);
        while self.bytes > self.capacity && self.entries.len() > 1 {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.payload.len();
                metrics::TAIL_CACHE_BYTES.sub(old.payload.len() as i64);
            }
        }
    }

    /// Drop everything (e.g. after truncation).
    pub fn clear(&mut self) {
        self.entries.clear();
        metrics::TAIL_CACHE_BYTES.sub(self.bytes as i64);
        self.bytes = 0;
    }

    /// Entries starting with the one holding `offset`, up to about
    /// `max_bytes` (the first is always included), if the cache reaches
    /// back to `offset`.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Option<Vec<CachedEntry>> {
        let first = self.entries.front()?;
        let last = self.entries.back()?;
        if offset < first.row.first_seq || offset >= last.row.first_seq + last.row.record_count as u64 {
            return None;
        }
        let idx = self.entries.partition_point(|e| e.row.first_seq <= offset) - 1;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for e in self.entries.range(idx..) {
            if !out.is_empty() && bytes + e.payload.len() > max_bytes {
                break;
            }
            bytes += e.payload.len();
            out.push(e.clone());
        }
        Some(out)
    }

    /// The cached entry with the first txid `>= txid`, if the cache covers it
    /// (the entry before it, if cached, has a smaller txid).
    pub fn find_txid(&self, txid: u64) -> Option<CachedEntry> {
        let idx = self.entries.partition_point(|e| e.row.txid < txid);
        if idx == 0 || idx >= self.entries.len() {
            return None;
        }
        self.entries.get(idx).cloned()
    }

    /// The DLSN and txid of `offset` if cached.
    pub fn locate(&self, offset: u64) -> Option<(Dlsn, u64)> {
        let e = self.read(offset, 0)?.into_iter().next()?;
        Some((
            Dlsn::new(e.lssn, e.row.entry_id, offset - e.entry_first_seq),
            e.row.txid,
        ))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        metrics::TAIL_CACHE_BYTES.sub(self.bytes as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(entry_id: u64, first_seq: u64, n: u32, txid: u64, len: usize) -> CachedEntry {
        CachedEntry {
            lssn: 1,
            entry_first_seq: first_seq,
            row: IndexRow {
                entry_id,
                first_seq,
                record_count: n,
                txid,
                len: len as u32,
            },
            payload: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn reads_from_the_entry_holding_the_offset_and_evicts_oldest() {
        let mut c = TailCache::new(300);
        c.push(entry(0, 0, 10, 5, 100));
        c.push(entry(1, 10, 10, 6, 100));
        c.push(entry(2, 20, 5, 9, 100));
        assert_eq!(
            c.read(15, 1000)
                .unwrap()
                .iter()
                .map(|e| e.row.entry_id)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(c.read(0, 150).unwrap().len(), 1);
        assert!(c.read(25, 1000).is_none());
        c.push(entry(3, 25, 1, 9, 100));
        assert_eq!(c.bytes(), 300);
        assert!(c.read(5, 1000).is_none(), "entry 0 evicted");
        assert_eq!(c.read(25, 0).unwrap()[0].row.entry_id, 3);
        assert_eq!(c.locate(22), Some((Dlsn::new(1, 2, 2), 9)));
    }

    #[test]
    fn txid_lookup_needs_a_cached_predecessor() {
        let mut c = TailCache::new(1 << 20);
        c.push(entry(0, 0, 1, 5, 1));
        c.push(entry(1, 1, 1, 7, 1));
        c.push(entry(2, 2, 1, 7, 1));
        c.push(entry(3, 3, 1, 9, 1));
        assert!(c.find_txid(5).is_none(), "could be in an earlier, evicted entry");
        assert_eq!(c.find_txid(6).unwrap().row.entry_id, 1);
        assert_eq!(c.find_txid(7).unwrap().row.entry_id, 1);
        assert_eq!(c.find_txid(8).unwrap().row.entry_id, 3);
        assert!(c.find_txid(10).is_none());
    }

    #[test]
    fn a_gap_restarts_the_cache() {
        let mut c = TailCache::new(1 << 20);
        c.push(entry(0, 0, 10, 1, 10));
        c.push(entry(0, 50, 10, 1, 10));
        assert!(c.read(5, 100).is_none());
        assert_eq!(c.read(55, 100).unwrap().len(), 1);
    }
}
