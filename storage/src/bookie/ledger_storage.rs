//! Ledger storage: where entries live once the journal has made them
//! durable (storage engine v2, BookKeeper's `DbLedgerStorage` in spirit).
//!
//! An entry made durable by the journal is handed to [`LedgerStorage::add`]:
//! its row goes into its ledger's index, its payload into the
//! [`WriteCache`]. [`LedgerStorage::flush`] (run at checkpoints) writes
//! what the cache holds to the entry logs, one run per ledger, syncs them,
//! points the index at the records, and only then lets the cache drop the
//! entries. After a flush returns, everything added before it is in
//! synced entry logs: the journal files holding it may be retired.
//!
//! Reads take rows and slots from the index: an entry whose slot names no
//! location is read from the cache. If the cache no longer has it, a flush
//! moved it between the two looks, and the index (updated before the cache
//! dropped it) now names its location.
//!
//! At start, [`LedgerStorage::open`] scans the entry logs (cutting a torn
//! tail of the newest) and rebuilds every ledger's index, leaving out the
//! ledgers a checkpoint lists as deleted; journal replay then adds what the
//! entry logs miss ([`LedgerStorage::add`] skips an entry already held).

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use distlog_metadata::LedgerId;
use parking_lot::{Mutex, RwLock};

use crate::error::{Result, StorageError};
use crate::ledger::{Entry, IndexRow};

use super::entry_log::{self, EntryLogFile, EntryLogWriter, Location, PendingEntry};
use super::index::LedgerIndex;
use super::write_cache::WriteCache;

/// Where an entry of ledger storage is: `None` while only the write cache
/// (and the journal) hold it, then its entry log record.
pub(crate) type Slot = Option<Location>;

/// One ledger's index in ledger storage.
pub(crate) type StoredIndex = Arc<RwLock<LedgerIndex<Slot>>>;

/// What [`LedgerStorage::open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Entry logs scanned.
    pub logs: usize,
    /// Entries indexed (deleted ledgers' records not counted).
    pub entries: u64,
    /// Bytes cut from a torn tail.
    pub cut: u64,
}

/// The entry logs, their index and the write cache of one bookie.
pub(crate) struct LedgerStorage {
    dir: PathBuf,
    cache: WriteCache,
    ledgers: RwLock<HashMap<LedgerId, StoredIndex>>,
    /// Every entry log, open for reads (the current one included).
    logs: RwLock<HashMap<u64, Arc<EntryLogFile>>>,
    /// The only writer of entry logs; held for a whole flush (one at a time).
    writer: Mutex<EntryLogWriter>,
}

impl LedgerStorage {
    /// Open the entry logs in `dir` (created if missing), rebuild the index
    /// of every ledger not in `deleted`, and go on writing after the last
    /// good record of the newest log. Entry logs roll past `max_log_bytes`.
    /// Blocking.
    pub fn open(
        dir: &Path,
        deleted: &BTreeSet<LedgerId>,
        max_log_bytes: u64,
    ) -> Result<(LedgerStorage, Opened)> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let ids = entry_log::list_logs(dir)?;
        let mut found: HashMap<LedgerId, Vec<(IndexRow, Location)>> = HashMap::new();
        let mut opened = Opened::default();
        let mut end = 0;
        for &id in &ids {
            let scanned = entry_log::scan(dir, id, &mut |ledger, row, at| {
                if !deleted.contains(&ledger) {
                    found.entry(ledger).or_default().push((row, at));
                }
            })?;
            opened.cut += scanned.cut;
            end = scanned.end;
        }
        opened.logs = ids.len();
        let mut ledgers = HashMap::with_capacity(found.len());
        for (ledger, mut rows) in found {
            // Newest record of an entry last, then keep one per entry id (a
            // later log holds an entry twice only after compaction moved it).
            rows.sort_by_key(|(row, at)| (row.entry_id, *at));
            let mut index = LedgerIndex::<Slot>::default();
            let mut held: Option<(IndexRow, Location)> = None;
            for (row, at) in rows {
                if let Some((prev, prev_at)) = held.filter(|(p, _)| p.entry_id != row.entry_id) {
                    index.push(prev, Some(prev_at));
                }
                held = Some((row, at));
            }
            if let Some((row, at)) = held {
                index.push(row, Some(at));
            }
            opened.entries += index.len();
            ledgers.insert(ledger, Arc::new(RwLock::new(index)));
        }
        let (current, offset) = match ids.last() {
            Some(&last) => (last, end),
            None => (1, 0),
        };
        let writer = EntryLogWriter::open(dir, current, offset, max_log_bytes)?;
        let mut logs = HashMap::with_capacity(ids.len() + 1);
        for &id in &ids {
            if id != current {
                logs.insert(id, Arc::new(entry_log::open_log(dir, id)?));
            }
        }
        logs.insert(current, writer.current().clone());
        let storage = LedgerStorage {
            dir: dir.to_path_buf(),
            cache: WriteCache::default(),
            ledgers: RwLock::new(ledgers),
            logs: RwLock::new(logs),
            writer: Mutex::new(writer),
        };
        Ok((storage, opened))
    }

    /// The index of `ledger`, if it holds any entry.
    pub fn index(&self, ledger: LedgerId) -> Option<StoredIndex> {
        self.ledgers.read().get(&ledger).cloned()
    }

    /// Ids of the ledgers held, ascending.
    pub fn ledgers(&self) -> Vec<LedgerId> {
        let mut ids: Vec<_> = self.ledgers.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Payload bytes waiting for a flush (and being flushed).
    pub fn cached_bytes(&self) -> u64 {
        self.cache.bytes()
    }

    /// Take an entry the journal made durable. Entries of a ledger come in
    /// increasing entry order; one already held (journal replay of an entry
    /// flushed before the crash) is skipped and `false` returned.
    pub fn add(&self, ledger: LedgerId, row: IndexRow, payload: Vec<Bytes>) -> bool {
        // Every add takes this path: the map's write lock (which stalls
        // every reader's lookup) only for a ledger's first entry.
        let index = match self.index(ledger) {
            Some(index) => index,
            None => self.ledgers.write().entry(ledger).or_default().clone(),
        };
        let mut index = index.write();
        if index.last().is_some_and(|last| last.entry_id >= row.entry_id) {
            return false;
        }
        // Cache first: a reader that finds the row finds its payload.
        self.cache.put(ledger, row, payload);
        index.push(row, None);
        true
    }

    /// Forget a deleted ledger: its index and cached entries. Its records
    /// stay in the entry logs until compaction (the checkpoint lists it as
    /// deleted, so a restart does not index them again).
    pub fn delete(&self, ledger: LedgerId) {
        self.ledgers.write().remove(&ledger);
        self.cache.remove_ledger(ledger);
    }

    /// Write everything the cache holds to the entry logs and sync them;
    /// returns the number of entries written. Blocking; one flush at a time.
    /// On an error the entries stay in the cache for the next flush.
    pub fn flush(&self) -> Result<usize> {
        let mut writer = self.writer.lock();
        let Some(snapshot) = self.cache.begin_flush() else {
            return Ok(0);
        };
        let pending: Vec<PendingEntry<'_>> = snapshot
            .iter()
            .map(|(&(ledger, _), e)| PendingEntry {
                ledger,
                row: e.row,
                payload: &e.payload,
            })
            .collect();
        let written = writer
            .append(&pending)
            .and_then(|at| writer.sync().map(|()| at))
            .and_then(|at| self.open_new_logs(&writer, &at).map(|()| at));
        let locations = match written {
            Ok(locations) => locations,
            Err(e) => {
                drop(pending);
                self.cache.abort_flush();
                tracing::error!(dir = %self.dir.display(), error = %e, "entry log flush failed; entries stay in the journal and the write cache");
                return Err(e);
            }
        };
        for (entry, at) in pending.iter().zip(&locations) {
            // A ledger deleted meanwhile has no index: nothing to point.
            if let Some(index) = self.index(entry.ledger) {
                index.write().relocate(entry.row.entry_id, Some(*at));
            }
        }
        let n = pending.len();
        drop(pending);
        self.cache.end_flush();
        Ok(n)
    }

    /// Open for reads the entry logs a flush rolled to.
    fn open_new_logs(&self, writer: &EntryLogWriter, written: &[Location]) -> Result<()> {
        let mut logs = self.logs.write();
        let current = writer.current();
        logs.entry(current.id).or_insert_with(|| current.clone());
        for at in written {
            if let MapEntry::Vacant(slot) = logs.entry(at.log) {
                slot.insert(Arc::new(entry_log::open_log(&self.dir, at.log)?));
            }
        }
        Ok(())
    }

    /// The held entries of `ledger` among `first..=last`, bounded by
    /// `max_bytes` as [`LedgerIndex::range`] is. Blocking (reads files).
    pub fn read(&self, ledger: LedgerId, first: u64, last: u64, max_bytes: usize) -> Result<Vec<Entry>> {
        let Some(index) = self.index(ledger) else {
            return Ok(Vec::new());
        };
        let planned = index.read().range(first, last, max_bytes);
        let mut entries = Vec::with_capacity(planned.len());
        for (row, slot) in planned {
            let at = match slot {
                Some(at) => at,
                None => match self.cache.get(ledger, row.entry_id) {
                    Some(cached) => {
                        entries.push(cached.to_entry());
                        continue;
                    }
                    // Flushed between the two looks: the index knows where.
                    None => match index.read().range(row.entry_id, row.entry_id, 0).first() {
                        Some((_, Some(at))) => *at,
                        // Deleted meanwhile.
                        _ => break,
                    },
                },
            };
            let log = self.logs.read().get(&at.log).cloned();
            let log = log.ok_or(StorageError::Corrupt {
                ledger,
                entry: row.entry_id,
            })?;
            let payload = entry_log::read_entry(&log, at, ledger, &row)?;
            entries.push(Entry { row, payload });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(entry_id: u64, len: u32) -> IndexRow {
        IndexRow {
            entry_id,
            first_seq: entry_id * 4,
            record_count: 4,
            txid: entry_id,
            len,
        }
    }

    /// `len` bytes naming the ledger and entry, in two chunks.
    fn payload(ledger: LedgerId, entry: u64, len: usize) -> Vec<Bytes> {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (ledger as u8) ^ (entry as u8) ^ (i as u8))
            .collect();
        let (a, b) = bytes.split_at(len / 2);
        vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]
    }

    fn joined(chunks: &[Bytes]) -> Vec<u8> {
        chunks.concat()
    }

    fn add(storage: &LedgerStorage, ledger: LedgerId, entry: u64, len: u32) -> bool {
        storage.add(ledger, row(entry, len), payload(ledger, entry, len as usize))
    }

    fn check_read(storage: &LedgerStorage, ledger: LedgerId, first: u64, last: u64, ids: &[u64]) {
        let got = storage.read(ledger, first, last, usize::MAX).unwrap();
        assert_eq!(got.iter().map(|e| e.row.entry_id).collect::<Vec<_>>(), ids);
        for e in got {
            let want = joined(&payload(ledger, e.row.entry_id, e.row.len as usize));
            assert_eq!(
                e.payload.as_ref(),
                want.as_slice(),
                "ledger {ledger} entry {}",
                e.row.entry_id
            );
        }
    }

    #[test]
    fn entries_read_the_same_from_the_cache_and_after_a_flush_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, opened) = LedgerStorage::open(dir.path(), &BTreeSet::new(), 1 << 20).unwrap();
        assert_eq!(
            opened,
            Opened {
                logs: 0,
                entries: 0,
                cut: 0
            }
        );
        for e in 0..4 {
            assert!(add(&storage, 1, e, 100));
            assert!(add(&storage, 2, e, 50));
        }
        assert!(!add(&storage, 1, 3, 100), "an entry already held is skipped");
        check_read(&storage, 1, 0, 9, &[0, 1, 2, 3]);
        assert_eq!(storage.flush().unwrap(), 8);
        assert_eq!(storage.cached_bytes(), 0);
        assert_eq!(storage.flush().unwrap(), 0, "nothing new to flush");
        // Now from the entry log, then a mix of log and cache.
        check_read(&storage, 1, 0, 9, &[0, 1, 2, 3]);
        assert!(add(&storage, 1, 4, 100));
        check_read(&storage, 1, 2, 9, &[2, 3, 4]);
        assert_eq!(
            storage.read(1, 0, 9, 150).unwrap().len(),
            1,
            "max_bytes bounds the read"
        );
        let index = storage.index(1).unwrap();
        assert_eq!(index.read().entry_for_seq(9).map(|r| r.entry_id), Some(2));
        assert_eq!(storage.ledgers(), vec![1, 2]);
        drop(index);
        drop(storage);

        // Entry 4 was never flushed: the journal's replay brings it back.
        let (storage, opened) = LedgerStorage::open(dir.path(), &BTreeSet::new(), 1 << 20).unwrap();
        assert_eq!(
            opened,
            Opened {
                logs: 1,
                entries: 8,
                cut: 0
            }
        );
        check_read(&storage, 1, 0, 9, &[0, 1, 2, 3]);
        check_read(&storage, 2, 0, 9, &[0, 1, 2, 3]);
        assert!(!add(&storage, 2, 3, 50), "replay of a flushed entry is skipped");
        assert!(add(&storage, 1, 4, 100));
        assert_eq!(storage.flush().unwrap(), 1);
        check_read(&storage, 1, 0, 9, &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn logs_roll_and_a_torn_tail_is_cut_and_deleted_ledgers_stay_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, _) = LedgerStorage::open(dir.path(), &BTreeSet::new(), 300).unwrap();
        // Ledger 6's run comes first in each flush, ledger 7's last.
        for flush in 0..3 {
            for e in 0..2 {
                assert!(add(&storage, 6, flush * 2 + e, 100));
                assert!(add(&storage, 7, flush * 2 + e, 100));
            }
            assert_eq!(storage.flush().unwrap(), 4);
        }
        storage.delete(6);
        assert!(storage.read(6, 0, 9, usize::MAX).unwrap().is_empty());
        check_read(&storage, 7, 0, 9, &[0, 1, 2, 3, 4, 5]);
        drop(storage);
        let logs = entry_log::list_logs(dir.path()).unwrap();
        assert!(logs.len() >= 3, "a log per flush at this size limit: {logs:?}");
        // Tear the newest log's last record.
        let newest = entry_log::log_path(dir.path(), *logs.last().unwrap());
        let len = std::fs::metadata(&newest).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&newest).unwrap();
        f.set_len(len - 10).unwrap();
        drop(f);

        let deleted = BTreeSet::from([6]);
        let (storage, opened) = LedgerStorage::open(dir.path(), &deleted, 300).unwrap();
        assert_eq!(opened.logs, logs.len());
        assert_eq!(
            opened.entries, 5,
            "ledger 7's last entry was torn; ledger 6 is deleted"
        );
        assert!(opened.cut > 0);
        assert_eq!(storage.ledgers(), vec![7]);
        check_read(&storage, 7, 0, 9, &[0, 1, 2, 3, 4]);
        // The journal brings the torn entry back; the writer goes on after the cut.
        assert!(add(&storage, 7, 5, 100));
        assert!(add(&storage, 7, 6, 100));
        assert_eq!(storage.flush().unwrap(), 2);
        check_read(&storage, 7, 0, 9, &[0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn reads_during_flushes_never_miss_an_added_entry() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let (storage, _) = LedgerStorage::open(dir.path(), &BTreeSet::new(), 64 << 10).unwrap();
        let storage = Arc::new(storage);
        // Entries 0..added have been added.
        let added = Arc::new(AtomicU64::new(0));
        let writer = {
            let (storage, added) = (storage.clone(), added.clone());
            std::thread::spawn(move || {
                for e in 0..1500u64 {
                    assert!(add(&storage, 3, e, 64));
                    added.store(e + 1, Ordering::SeqCst);
                    if e % 40 == 39 {
                        storage.flush().unwrap();
                    }
                }
            })
        };
        let mut reads = 0;
        loop {
            let n = added.load(Ordering::SeqCst);
            if n > 0 {
                let got = storage.read(3, 0, n - 1, usize::MAX).unwrap();
                assert_eq!(got.len() as u64, n, "a read of entries 0..{n} missed some");
                for (i, e) in got.iter().enumerate() {
                    assert_eq!(e.row.entry_id, i as u64);
                    assert_eq!(e.payload.as_ref(), joined(&payload(3, i as u64, 64)).as_slice());
                }
                reads += 1;
            }
            if n == 1500 {
                break;
            }
        }
        writer.join().unwrap();
        assert!(reads > 1);
        assert_eq!(storage.flush().unwrap(), 1500 % 40);
    }
}
