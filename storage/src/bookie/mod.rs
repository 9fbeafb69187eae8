//! The segment store ("bookie"): durable, append-only ledgers.
//!
//! * `Bookie::open(config)` recovers every ledger (cutting torn/corrupt tails
//!   by crc) and starts the group-commit thread.
//! * `LocalBookie` wraps `Arc<Bookie>` and implements
//!   [`crate::ledger::BookieClient`] in-process.
//!
//! Layout: one append-only file per ledger under `<dir>/ledgers/` (module
//! `format` describes the records), a durable `.fenced` marker per fenced
//! ledger, an in-memory `index` per ledger holding only durable entries, and
//! a `group_commit` thread that owns all writes and group-commits adds
//! (one fdatasync per touched ledger per group).

// Storage engine v2 lands in steps: the journal, its force-write stage, the
// write cache, the entry logs and the checkpoint are built and tested, not
// yet wired into the group committer.
#[cfg_attr(not(test), allow(dead_code))]
mod checkpoint;
#[cfg(test)]
mod engine_bench;
#[cfg_attr(not(test), allow(dead_code))]
mod entry_log;
#[cfg_attr(not(test), allow(dead_code))]
mod force_write;
mod format;
mod group_commit;
mod index;
#[cfg_attr(not(test), allow(dead_code))]
mod journal;
#[cfg_attr(not(test), allow(dead_code))]
mod journal_commit;
mod lac;
mod ledger_file;
#[cfg_attr(not(test), allow(dead_code))]
mod ledger_storage;
#[cfg_attr(not(test), allow(dead_code))]
mod recovery;
#[cfg(test)]
#[path = "bookie_tests.rs"]
mod tests;
#[cfg_attr(not(test), allow(dead_code))]
mod write_cache;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlog_metadata::{LedgerId, NodeId};
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::error::{Result, StorageError};
use crate::ledger::{AddFuture, AddRequest, BookieClient, Entry, IndexRow, LedgerInfo};

use group_commit::Op;
use ledger_file::{fsync_dir, parse_name, LedgerFile};

/// How to open a bookie.
#[derive(Debug, Clone)]
pub struct BookieConfig {
    /// Directory for ledger files (created if missing).
    pub dir: PathBuf,
    /// This bookie's node id.
    pub bookie_id: NodeId,
}

/// Counters of one bookie instance (the Prometheus metrics are process-wide;
/// these let a caller measure one bookie, e.g. fsyncs per add).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookieStats {
    /// fdatasync calls issued by the group committer (one per ledger per group).
    pub fsyncs: u64,
    /// Entries made durable and acknowledged.
    pub entries_added: u64,
    /// Payload bytes made durable and acknowledged.
    pub bytes_written: u64,
}

#[derive(Default)]
struct Stats {
    fsyncs: AtomicU64,
    entries_added: AtomicU64,
    bytes_written: AtomicU64,
}

/// State shared between the async API and the group-commit thread.
pub(crate) struct Shared {
    ledgers_dir: PathBuf,
    ledgers: RwLock<HashMap<LedgerId, Arc<LedgerFile>>>,
    stats: Stats,
    /// LACs piggybacked on durable adds, for `read_lac` long polls.
    lac: lac::LacTracker,
}

impl Shared {
    fn get(&self, id: LedgerId) -> Option<Arc<LedgerFile>> {
        self.ledgers.read().get(&id).cloned()
    }

    /// Create a ledger's file durably and register it (group-commit thread only).
    fn create(&self, id: LedgerId) -> Result<Arc<LedgerFile>> {
        let ledger = Arc::new(LedgerFile::create(&self.ledgers_dir, id)?);
        self.ledgers.write().insert(id, ledger.clone());
        tracing::debug!(ledger = id, "ledger created");
        Ok(ledger)
    }
}

/// The local segment store.
///
/// Guarantees: an add is acknowledged only after the fdatasync covering it;
/// readers only ever see acknowledged (durable) entries; a fence is durable
/// before it is acknowledged; after a crash, recovery keeps every record up
/// to the first torn/corrupt one and cuts the rest.
pub struct Bookie {
    config: BookieConfig,
    shared: Arc<Shared>,
    closed: AtomicBool,
    tx: mpsc::Sender<Op>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Exclusive lock on the ledger directory, held while the bookie lives.
    _lock: File,
}

/// Take an exclusive `flock` on `<ledgers>/LOCK` so two bookies (in one
/// process or two) never write the same ledger files. The kernel drops the
/// lock when the file is closed, including on a crash.
fn lock_dir(ledgers_dir: &Path) -> Result<File> {
    let path = ledgers_dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))?;
    // SAFETY: flock on a valid, owned file descriptor; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        let e = if e.kind() == std::io::ErrorKind::WouldBlock {
            std::io::Error::new(e.kind(), "ledger directory is in use by another bookie")
        } else {
            e
        };
        return Err(StorageError::io(&path, e));
    }
    Ok(file)
}

impl Bookie {
    /// Open the store, recover all ledgers, start the group-commit thread.
    /// Blocking (does file I/O): call before serving or via spawn_blocking.
    pub fn open(config: BookieConfig) -> Result<Arc<Bookie>> {
        let started = Instant::now();
        let ledgers_dir = config.dir.join("ledgers");
        std::fs::create_dir_all(&ledgers_dir).map_err(|e| StorageError::io(&ledgers_dir, e))?;
        fsync_dir(&config.dir)?;
        fsync_dir(&ledgers_dir)?;
        let lock = lock_dir(&ledgers_dir)?;

        let mut logs = Vec::new();
        let mut markers = Vec::new();
        let entries = std::fs::read_dir(&ledgers_dir).map_err(|e| StorageError::io(&ledgers_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&ledgers_dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = parse_name(name, "log") {
                logs.push(id);
            } else if let Some(id) = parse_name(name, "fenced") {
                markers.push(id);
            } else if name != "LOCK" {
                tracing::debug!(file = name, "ignoring unknown file in ledger directory");
            }
        }
        logs.sort_unstable();

        let mut ledgers = HashMap::with_capacity(logs.len());
        let (mut entries_total, mut cut_total, mut cut_ledgers) = (0u64, 0u64, 0usize);
        for &id in &logs {
            let recovered = LedgerFile::recover(&ledgers_dir, id)?;
            entries_total += recovered.ledger.index.read().len();
            if recovered.cut > 0 {
                cut_total += recovered.cut;
                cut_ledgers += 1;
            }
            ledgers.insert(id, Arc::new(recovered.ledger));
        }
        // A marker without its record file is the leftover of an interrupted
        // delete (the record file goes first): finish the delete.
        let orphans: Vec<_> = markers
            .into_iter()
            .filter(|id| !ledgers.contains_key(id))
            .collect();
        for &id in &orphans {
            LedgerFile::remove(&ledgers_dir, id)?;
        }
        tracing::info!(
            dir = %config.dir.display(),
            ledgers = ledgers.len(),
            entries = entries_total,
            ledgers_cut = cut_ledgers,
            bytes_cut = cut_total,
            orphan_markers_removed = orphans.len(),
            millis = started.elapsed().as_millis() as u64,
            "bookie recovered"
        );

        let shared = Arc::new(Shared {
            ledgers_dir,
            ledgers: RwLock::new(ledgers),
            stats: Stats::default(),
            lac: lac::LacTracker::default(),
        });
        let (tx, rx) = mpsc::channel();
        let committer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("bookie-{}-commit", config.bookie_id))
            .spawn(move || group_commit::run(committer_shared, rx))
            .map_err(|e| StorageError::io(&config.dir, e))?;
        Ok(Arc::new(Bookie {
            config,
            shared,
            closed: AtomicBool::new(false),
            tx,
            thread: Mutex::new(Some(thread)),
            _lock: lock,
        }))
    }

    /// This bookie's node id.
    pub fn bookie_id(&self) -> NodeId {
        self.config.bookie_id
    }

    /// Ids of all ledgers on this bookie, ascending.
    pub fn ledgers(&self) -> Vec<LedgerId> {
        let mut ids: Vec<_> = self.shared.ledgers.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Counters of this bookie instance since it was opened.
    pub fn stats(&self) -> BookieStats {
        let s = &self.shared.stats;
        BookieStats {
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            entries_added: s.entries_added.load(Ordering::Relaxed),
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
        }
    }

    /// Flush and stop the group-commit thread; later adds fail with ShuttingDown.
    /// Adds queued before the call are still written and acknowledged. Blocks
    /// until the group committer has drained (call via spawn_blocking from async
    /// code if that matters). Idempotent; also run on drop.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.tx.send(Op::Shutdown);
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("bookie group-commit thread panicked");
            }
            tracing::info!(bookie = self.config.bookie_id.get(), "bookie shut down");
        }
    }

    /// Hand an op to the group committer now (so ops keep their call order) and
    /// return the wait for its answer.
    fn enqueue<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op,
    ) -> BoxFuture<'static, Result<T>> {
        let queued = if self.closed.load(Ordering::Acquire) {
            Err(StorageError::ShuttingDown)
        } else {
            let (reply, answer) = oneshot::channel();
            match self.tx.send(make(reply)) {
                Ok(()) => Ok(answer),
                Err(_) => Err(StorageError::ShuttingDown),
            }
        };
        Box::pin(async move {
            // A dropped reply means the group committer stopped before handling the op.
            queued?.await.unwrap_or(Err(StorageError::ShuttingDown))
        })
    }

    async fn read_entries(
        &self,
        id: LedgerId,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>> {
        let Some(ledger) = self.shared.get(id) else {
            return Ok(Vec::new());
        };
        let Some(plan) = ledger.index.read().plan_read(first, last, max_bytes) else {
            return Ok(Vec::new());
        };
        let path = ledger.path.clone();
        tokio::task::spawn_blocking(move || ledger.read_planned(&plan))
            .await
            .map_err(|e| StorageError::io(path, std::io::Error::other(format!("read task failed: {e}"))))?
    }

    fn lookup<T>(&self, id: LedgerId, f: impl FnOnce(&index::LedgerIndex) -> Option<T>) -> Option<T> {
        let ledger = self.shared.get(id)?;
        let index = ledger.index.read();
        f(&index)
    }
}

impl Drop for Bookie {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// In-process [`BookieClient`] over a local [`Bookie`].
///
/// Reads of an unknown ledger behave like reads of an empty one (no
/// entries, `None` lookups): a segment's ledger only comes into existence on
/// this bookie with its first add.
#[derive(Clone)]
pub struct LocalBookie(pub Arc<Bookie>);

#[async_trait]
impl BookieClient for LocalBookie {
    fn bookie_id(&self) -> NodeId {
        self.0.config.bookie_id
    }
    fn add_entry(&self, req: AddRequest) -> AddFuture {
        self.0.enqueue(|reply| Op::Add(req, reply))
    }
    async fn read_entries(
        &self,
        ledger: LedgerId,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>> {
        self.0.read_entries(ledger, first, last, max_bytes).await
    }
    async fn entry_for_seq(&self, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>> {
        Ok(self.0.lookup(ledger, |i| i.entry_for_seq(seq)))
    }
    async fn entry_for_txid(&self, ledger: LedgerId, txid: u64) -> Result<Option<IndexRow>> {
        Ok(self.0.lookup(ledger, |i| i.entry_for_txid(txid)))
    }
    async fn last_entry(&self, ledger: LedgerId) -> Result<Option<IndexRow>> {
        Ok(self.0.lookup(ledger, |i| i.last()))
    }
    async fn fence(&self, ledger: LedgerId) -> Result<Option<IndexRow>> {
        self.0.enqueue(|reply| Op::Fence(ledger, reply)).await
    }
    async fn delete(&self, ledger: LedgerId) -> Result<()> {
        self.0.enqueue(|reply| Op::Delete(ledger, reply)).await
    }
    async fn read_lac(&self, ledger: LedgerId, known: Option<u64>, wait: Duration) -> Result<Option<u64>> {
        Ok(self.0.shared.lac.wait(ledger, known, wait).await)
    }
    async fn ledger_info(&self, ledger: LedgerId) -> Result<LedgerInfo> {
        let lac = self.0.shared.lac.get(ledger);
        let Some(file) = self.0.shared.get(ledger) else {
            return Ok(LedgerInfo {
                lac,
                ..LedgerInfo::default()
            });
        };
        let index = file.index.read();
        Ok(LedgerInfo {
            exists: true,
            entries: index.len(),
            last_entry_id: index.last().map(|r| r.entry_id),
            bytes: file.durable_len.load(Ordering::Acquire),
            fenced: file.fenced.load(Ordering::Acquire),
            lac,
        })
    }
}
