//! The write cache: entries durable in the journal, not yet in ledger
//! storage.
//!
//! With a journal, an add is acknowledged once its journal group is synced;
//! the entry reaches an entry log later, when ledger storage is flushed at a
//! checkpoint. Until then reads are served from here (BookKeeper's
//! `WriteCache` in `DbLedgerStorage`).
//!
//! Two generations, as in BookKeeper: `active` takes new entries; a flush
//! freezes it as `flushing` (a snapshot the flusher writes out, sorted by
//! ledger and entry so each ledger's entries land as one run of the entry
//! log) and starts an empty `active`. The flusher drops the snapshot only
//! after every entry of it is in an entry log and in the index.
//!
//! Reads must ask this cache first and ledger storage second: an entry
//! leaves the cache only after it is in the index, so a read that misses
//! here finds it there. (The other order could miss both: index first, the
//! flush completes, cache second.)

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use distlog_metadata::LedgerId;
use parking_lot::RwLock;

use crate::ledger::{Entry, IndexRow};

/// One cached entry: its row and its payload chunks as they were added
/// (no copy on the write path).
#[derive(Debug, Clone)]
pub(crate) struct CachedEntry {
    /// The entry's index row.
    pub row: IndexRow,
    /// The payload, in chunks.
    pub payload: Vec<Bytes>,
}

impl CachedEntry {
    /// The entry as a read returns it (one buffer: chunks are joined, a
    /// single chunk is shared).
    pub fn to_entry(&self) -> Entry {
        let payload = match self.payload.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            chunks => {
                let mut joined = BytesMut::with_capacity(self.row.len as usize);
                for chunk in chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        };
        Entry {
            row: self.row,
            payload,
        }
    }
}

/// Entries of one generation, by (ledger, entry id).
type Generation = BTreeMap<(LedgerId, u64), CachedEntry>;

/// A frozen generation, handed to the flusher.
pub(crate) type FlushSnapshot = Arc<Generation>;

#[derive(Default)]
struct Inner {
    active: Generation,
    active_bytes: u64,
    flushing: Option<FlushSnapshot>,
    flushing_bytes: u64,
}

/// The bookie's write cache (see the module docs).
#[derive(Default)]
pub(crate) struct WriteCache {
    inner: RwLock<Inner>,
}

impl WriteCache {
    /// Hold a durable entry until ledger storage has it. Entries of a
    /// ledger arrive in increasing entry order (the committer validates it).
    pub fn put(&self, ledger: LedgerId, row: IndexRow, payload: Vec<Bytes>) {
        let mut inner = self.inner.write();
        inner.active_bytes += u64::from(row.len);
        inner
            .active
            .insert((ledger, row.entry_id), CachedEntry { row, payload });
    }

    /// Payload bytes held, both generations.
    pub fn bytes(&self) -> u64 {
        let inner = self.inner.read();
        inner.active_bytes + inner.flushing_bytes
    }

    /// Payload bytes that a flush started now would write.
    pub fn unflushed_bytes(&self) -> u64 {
        self.inner.read().active_bytes
    }

    /// Entry `entry` of `ledger`, if held.
    pub fn get(&self, ledger: LedgerId, entry: u64) -> Option<CachedEntry> {
        let inner = self.inner.read();
        let key = (ledger, entry);
        inner
            .active
            .get(&key)
            .or_else(|| inner.flushing.as_ref().and_then(|f| f.get(&key)))
            .cloned()
    }

    /// The held entries of `ledger` among `first..=last`, in entry order,
    /// stopping before an entry that would take the payload total past
    /// `max_bytes` (the first one found is always included).
    pub fn read(&self, ledger: LedgerId, first: u64, last: u64, max_bytes: usize) -> Vec<Entry> {
        if first > last {
            return Vec::new();
        }
        let inner = self.inner.read();
        let range = (ledger, first)..=(ledger, last);
        // The generations hold disjoint entries; merge them in entry order.
        let mut found: BTreeMap<u64, &CachedEntry> = BTreeMap::new();
        if let Some(flushing) = &inner.flushing {
            found.extend(flushing.range(range.clone()).map(|(k, e)| (k.1, e)));
        }
        found.extend(inner.active.range(range).map(|(k, e)| (k.1, e)));
        let mut entries = Vec::new();
        let mut total = 0usize;
        for entry in found.into_values() {
            let len = entry.row.len as usize;
            if !entries.is_empty() && total.saturating_add(len) > max_bytes {
                break;
            }
            total = total.saturating_add(len);
            entries.push(entry.to_entry());
        }
        entries
    }

    /// The last held entry of `ledger`, if any.
    pub fn last(&self, ledger: LedgerId) -> Option<IndexRow> {
        let inner = self.inner.read();
        let range = (ledger, 0)..=(ledger, u64::MAX);
        let active = inner.active.range(range.clone()).next_back().map(|(_, e)| e.row);
        let flushing = inner
            .flushing
            .as_ref()
            .and_then(|f| f.range(range).next_back().map(|(_, e)| e.row));
        match (active, flushing) {
            (Some(a), Some(f)) => Some(if a.entry_id >= f.entry_id { a } else { f }),
            (a, f) => a.or(f),
        }
    }

    /// Freeze the active generation for the flusher and start a new one.
    /// `None` when a flush is already under way (one at a time) or nothing
    /// is held.
    pub fn begin_flush(&self) -> Option<FlushSnapshot> {
        let mut inner = self.inner.write();
        if inner.flushing.is_some() || inner.active.is_empty() {
            return None;
        }
        let frozen = Arc::new(std::mem::take(&mut inner.active));
        inner.flushing_bytes = std::mem::take(&mut inner.active_bytes);
        inner.flushing = Some(frozen.clone());
        Some(frozen)
    }

    /// The flush is done: every entry of the snapshot is in ledger storage
    /// and its index. Call only then.
    pub fn end_flush(&self) {
        let mut inner = self.inner.write();
        inner.flushing = None;
        inner.flushing_bytes = 0;
    }

    /// A flush failed: its entries go back to the active generation, to be
    /// written by the next flush (they are still only in the journal).
    pub fn abort_flush(&self) {
        let mut inner = self.inner.write();
        let Some(frozen) = inner.flushing.take() else {
            return;
        };
        let bytes = std::mem::take(&mut inner.flushing_bytes);
        let frozen = Arc::try_unwrap(frozen).unwrap_or_else(|shared| (*shared).clone());
        // Entries added since the flush began are newer: keep them.
        for (key, entry) in frozen {
            inner.active.entry(key).or_insert(entry);
        }
        inner.active_bytes += bytes;
    }

    /// Forget a deleted ledger's entries (both generations; a snapshot
    /// already handed to the flusher still writes them, and the deleted
    /// ledger's space is reclaimed by compaction).
    pub fn remove_ledger(&self, ledger: LedgerId) {
        let mut inner = self.inner.write();
        let range = (ledger, 0)..=(ledger, u64::MAX);
        let keys: Vec<_> = inner.active.range(range).map(|(k, _)| *k).collect();
        for key in keys {
            if let Some(e) = inner.active.remove(&key) {
                inner.active_bytes -= u64::from(e.row.len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(entry_id: u64, len: u32) -> IndexRow {
        IndexRow {
            entry_id,
            first_seq: entry_id * 10,
            record_count: 10,
            txid: entry_id,
            len,
        }
    }

    /// A payload of `len` bytes in `chunks` chunks, each byte naming the entry.
    fn payload(entry: u64, len: usize, chunks: usize) -> Vec<Bytes> {
        let all = vec![entry as u8; len];
        let step = len.div_ceil(chunks.max(1)).max(1);
        all.chunks(step).map(Bytes::copy_from_slice).collect()
    }

    fn put(cache: &WriteCache, ledger: LedgerId, entry: u64, len: u32, chunks: usize) {
        cache.put(ledger, row(entry, len), payload(entry, len as usize, chunks));
    }

    #[test]
    fn reads_join_chunks_honour_bounds_and_keep_ledgers_apart() {
        let cache = WriteCache::default();
        for e in 0..5 {
            put(&cache, 7, e, 100, (e as usize % 3) + 1);
            put(&cache, 8, e, 50, 1);
        }
        assert_eq!(cache.bytes(), 750);
        let got = cache.read(7, 1, 3, usize::MAX);
        assert_eq!(
            got.iter().map(|e| e.row.entry_id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        for e in &got {
            assert_eq!(e.payload.len(), 100);
            assert!(e.payload.iter().all(|&b| b == e.row.entry_id as u8));
        }
        // max_bytes: 250 allows two entries of 100; the first is always given.
        assert_eq!(cache.read(7, 0, 4, 250).len(), 2);
        assert_eq!(cache.read(7, 0, 4, 1).len(), 1);
        assert!(cache.read(7, 5, 9, usize::MAX).is_empty());
        assert!(cache.read(7, 3, 1, usize::MAX).is_empty());
        assert!(cache.read(9, 0, u64::MAX, usize::MAX).is_empty());
        assert_eq!(cache.last(8).map(|r| r.entry_id), Some(4));
        assert_eq!(cache.get(8, 2).map(|e| e.to_entry().payload.len()), Some(50));
        assert!(cache.get(8, 5).is_none());
    }

    #[test]
    fn a_flush_freezes_a_sorted_snapshot_while_new_entries_stay_readable() {
        let cache = WriteCache::default();
        put(&cache, 2, 0, 10, 1);
        put(&cache, 1, 0, 10, 1);
        put(&cache, 1, 1, 10, 2);
        let snapshot = cache.begin_flush().expect("entries to flush");
        assert!(cache.begin_flush().is_none(), "one flush at a time");
        let keys: Vec<_> = snapshot.keys().copied().collect();
        assert_eq!(keys, vec![(1, 0), (1, 1), (2, 0)], "ledger runs, entry order");
        put(&cache, 1, 2, 10, 1);
        assert_eq!(cache.unflushed_bytes(), 10);
        assert_eq!(cache.bytes(), 40);
        // Reads see both generations, merged in entry order.
        let ids: Vec<_> = cache
            .read(1, 0, 9, usize::MAX)
            .iter()
            .map(|e| e.row.entry_id)
            .collect();
        assert_eq!(ids, vec![0, 1, 2]);
        assert_eq!(cache.last(1).map(|r| r.entry_id), Some(2));
        assert_eq!(cache.last(2).map(|r| r.entry_id), Some(0));
        cache.end_flush();
        assert_eq!(cache.bytes(), 10);
        assert!(
            cache.get(1, 0).is_none(),
            "flushed entries are read from ledger storage"
        );
        assert!(cache.get(1, 2).is_some());
        // Nothing new since: nothing to flush... until an entry comes.
        let next = cache.begin_flush().expect("entry 2 to flush");
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), vec![(1, 2)]);
        cache.end_flush();
        assert!(cache.begin_flush().is_none());
    }

    #[test]
    fn an_aborted_flush_puts_its_entries_back_for_the_next_one() {
        let cache = WriteCache::default();
        put(&cache, 1, 0, 10, 1);
        put(&cache, 1, 1, 10, 1);
        let first = cache.begin_flush().unwrap();
        put(&cache, 1, 2, 10, 1);
        drop(first);
        cache.abort_flush();
        assert_eq!(cache.bytes(), 30);
        let again = cache.begin_flush().unwrap();
        assert_eq!(
            again.keys().copied().collect::<Vec<_>>(),
            vec![(1, 0), (1, 1), (1, 2)]
        );
        assert_eq!(cache.unflushed_bytes(), 0);
    }

    #[test]
    fn a_deleted_ledger_leaves_the_active_generation() {
        let cache = WriteCache::default();
        put(&cache, 1, 0, 10, 1);
        put(&cache, 2, 0, 20, 1);
        put(&cache, 2, 1, 20, 1);
        cache.remove_ledger(2);
        assert_eq!(cache.bytes(), 10);
        assert!(cache.read(2, 0, 9, usize::MAX).is_empty());
        assert_eq!(cache.last(2), None);
        assert_eq!(cache.last(1).map(|r| r.entry_id), Some(0));
    }
}
