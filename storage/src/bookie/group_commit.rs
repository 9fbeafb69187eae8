//! The group committer: one OS thread that owns every write to the bookie's
//! ledger files and group-commits adds into them.
//!
//! This is not (yet) BookKeeper's journal: there is no separate write-ahead
//! log; each touched ledger file is written and fdatasync'd per group. The
//! storage engine work replaces it with one journal per disk plus ledger
//! storage written behind it (see docs/architecture.md).
//!
//! Adds, fences and deletes are sent over a channel. The thread takes
//! everything queued (up to a cap), validates each add (fencing, and that
//! it follows the bookie's last entry of the ledger), writes all of a
//! ledger's staged entries with vectored writes, issues one `fdatasync`
//! per touched ledger, and only then publishes the entries to
//! the in-memory index and acknowledges them: many concurrent adds share one
//! fsync, and readers never see an entry that is not durable.
//!
//! Fences are processed in queue order: the adds staged before one are
//! committed first, so a fence returns the true last entry and no add queued
//! after it can succeed.
//!
//! Deletes leave the thread's path: a deleted ledger's segment left the
//! metadata after it was sealed, so no add to it can be legitimate. The
//! committer drops the ledger from the bookie's maps at the end of the batch
//! (from then on it is unknown: reads fail, listings omit it) and hands the
//! files to the deleter thread, which unlinks every ledger queued with one
//! directory fsync and answers each. Retention frees hundreds of ledgers at
//! once; with unlinks and directory syncs on this thread every add queued
//! behind them would wait for all of them. A crash before the unlink leaves a
//! file that recovery loads and orphan collection deletes.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use distlog_metadata::LedgerId;
use tokio::sync::oneshot;

use crate::error::{Result, StorageError};
use crate::ledger::{order_problem, AddRequest, IndexRow};
use crate::metrics;

use super::format::{encode_header, HEADER_LEN};
use super::ledger_file::{clone_io, LedgerFile};
use super::Shared;

/// Most operations taken into one group.
pub(super) const MAX_GROUP_OPS: usize = 4096;
/// Most payload bytes taken into one group (one add is always taken).
const MAX_GROUP_BYTES: usize = 32 << 20;

/// A request to the group-commit thread.
pub(crate) enum Op {
    /// Add one entry; reply once durable (or failed).
    Add(AddRequest, oneshot::Sender<Result<()>>),
    /// Fence a ledger durably; reply with its last entry.
    Fence(LedgerId, oneshot::Sender<Result<Option<IndexRow>>>),
    /// Delete a ledger's files.
    Delete(LedgerId, oneshot::Sender<Result<()>>),
    /// Drain what is queued, then stop.
    Shutdown,
}

/// An add that passed validation and waits for the group's write.
struct Staged {
    req: AddRequest,
    reply: oneshot::Sender<Result<()>>,
}

/// The adds of one group, per ledger, in arrival order.
#[derive(Default)]
struct Group {
    ledgers: Vec<(Arc<LedgerFile>, Vec<Staged>)>,
    by_id: HashMap<LedgerId, usize>,
}

/// Run the group-commit loop until a `Shutdown` op arrives or every sender is
/// gone. Call on a dedicated thread.
pub(crate) fn run(shared: Arc<Shared>, rx: mpsc::Receiver<Op>) {
    let (deletes, deleter) = start_deleter(shared.ledgers_dir.clone());
    let committer = GroupCommitter {
        shared,
        syncers: SyncPool::start(MAX_PARALLEL_SYNCS - 1),
        deletes,
    };
    let mut stopping = false;
    while !stopping {
        let Some(batch) = next_batch(&rx) else { break };
        stopping = committer.process(batch);
    }
    // Drain what was queued before the shutdown request was seen.
    loop {
        let batch: Vec<Op> = rx.try_iter().take(MAX_GROUP_OPS).collect();
        if batch.is_empty() {
            break;
        }
        committer.process(batch);
    }
    // Deletes handed over are finished before the bookie reports closed.
    drop(committer);
    if deleter.is_some_and(|d| d.join().is_err()) {
        tracing::error!("bookie ledger deleter thread panicked");
    }
    tracing::debug!("bookie group committer stopped");
}

/// Wait for the next operation, then take every one queued behind it, up to
/// a group's caps (operations and payload bytes); `None` once every sender
/// is gone. Shared by both committers.
pub(super) fn next_batch(rx: &mpsc::Receiver<Op>) -> Option<Vec<Op>> {
    let first = rx.recv().ok()?;
    let mut bytes = op_bytes(&first);
    let mut batch = vec![first];
    while batch.len() < MAX_GROUP_OPS && bytes < MAX_GROUP_BYTES {
        match rx.try_recv() {
            Ok(op) => {
                bytes += op_bytes(&op);
                batch.push(op);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// A delete handed to the deleter thread.
type DeleteJob = (LedgerId, oneshot::Sender<Result<()>>);

/// Start the deleter thread: it unlinks the files of every ledger queued
/// together, syncs the directory once, then answers each delete. It ends
/// when the sender is dropped, after the deletes queued before.
/// When the thread cannot be started, its receiver is gone and deletes run
/// inline on the committer (see `GroupCommitter::delete`).
fn start_deleter(
    ledgers_dir: std::path::PathBuf,
) -> (mpsc::Sender<DeleteJob>, Option<std::thread::JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel::<DeleteJob>();
    let handle = std::thread::Builder::new()
        .name("bookie-deleter".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let jobs: Vec<DeleteJob> = std::iter::once(first).chain(rx.try_iter()).collect();
                let unlinked: Vec<Result<()>> = jobs
                    .iter()
                    .map(|(id, _)| LedgerFile::unlink(&ledgers_dir, *id))
                    .collect();
                let synced = super::ledger_file::fsync_dir(&ledgers_dir);
                for ((id, reply), unlinked) in jobs.into_iter().zip(unlinked) {
                    let outcome = unlinked.and_then(|()| match &synced {
                        Ok(()) => Ok(()),
                        Err(e) => Err(StorageError::io(&ledgers_dir, clone_io_error(e))),
                    });
                    if outcome.is_ok() {
                        tracing::info!(ledger = id, "ledger deleted");
                    }
                    let _ = reply.send(outcome);
                }
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "cannot start the bookie-deleter thread; ledgers are deleted inline"))
        .ok();
    (tx, handle)
}

/// The io error inside a storage error, for answering each delete of a
/// batch whose directory sync failed.
fn clone_io_error(e: &StorageError) -> io::Error {
    io::Error::other(e.to_string())
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Add(req, _) => req.row.len as usize,
        _ => 0,
    }
}

/// What to do with a valid add.
enum Validated {
    /// Stage it for the next group commit.
    Stage(Arc<LedgerFile>),
    /// A recovery add of an entry already durable: acknowledge it as is.
    AlreadyDurable,
}

struct GroupCommitter {
    shared: Arc<Shared>,
    syncers: SyncPool,
    /// Deletes for the deleter thread.
    deletes: mpsc::Sender<DeleteJob>,
}

impl GroupCommitter {
    /// Process one batch; true if it contained a shutdown request.
    fn process(&self, batch: Vec<Op>) -> bool {
        let mut group = Group::default();
        let mut stop = false;
        let mut deletes = Vec::new();
        for op in batch {
            match op {
                Op::Add(req, reply) => self.stage(&mut group, req, reply),
                Op::Fence(id, reply) => {
                    self.commit(std::mem::take(&mut group));
                    let _ = reply.send(self.fence(id));
                }
                Op::Delete(id, reply) => deletes.push((id, reply)),
                Op::Shutdown => stop = true,
            }
        }
        self.commit(group);
        for (id, reply) in deletes {
            self.delete(id, reply);
        }
        stop
    }

    /// Validate an add and stage it, or answer it with its error.
    fn stage(&self, group: &mut Group, req: AddRequest, reply: oneshot::Sender<Result<()>>) {
        match self.validate(group, &req) {
            Ok(Validated::AlreadyDurable) => {
                let _ = reply.send(Ok(()));
            }
            Ok(Validated::Stage(ledger)) => {
                let slot = *group.by_id.entry(ledger.id).or_insert_with(|| {
                    group.ledgers.push((ledger, Vec::new()));
                    group.ledgers.len() - 1
                });
                group.ledgers[slot].1.push(Staged { req, reply });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Check an add against the ledger's state. An add is accepted when it
    /// follows the bookie's last entry of the ledger (durable or staged in
    /// this group): `req.prev_entry_id` must be exactly that entry, so the
    /// bookie's entries stay a gap-free prefix of its stripe (see
    /// [`crate::ledger::ensemble`]). A bookie that missed an entry of its
    /// stripe answers every later add with `OutOfOrder`. A recovery add of
    /// an entry already held is acknowledged as is.
    fn validate(&self, group: &Group, req: &AddRequest) -> Result<Validated> {
        let id = req.ledger_id;
        let got = req.row.entry_id;
        check_order_fields(req)?;
        let ledger = match self.shared.get(id) {
            Some(l) => l,
            None if req.prev_entry_id.is_none() => self.shared.create(id)?,
            None => {
                return Err(StorageError::OutOfOrder {
                    ledger: id,
                    last: None,
                    prev: req.prev_entry_id,
                })
            }
        };
        if ledger.fenced.load(Ordering::Acquire) && !req.recovery {
            return Err(StorageError::Fenced(id));
        }
        if ledger.broken.load(Ordering::Acquire) {
            return Err(ledger.broken_error());
        }
        let staged_last = group
            .by_id
            .get(&id)
            .and_then(|&i| group.ledgers[i].1.last())
            .map(|s| s.req.row.entry_id);
        let last = {
            let index = ledger.index.read();
            if req.recovery && index.contains(got) {
                return Ok(Validated::AlreadyDurable);
            }
            staged_last.or_else(|| index.last().map(|r| r.entry_id))
        };
        check_follows(req, last, &ledger.path)?;
        Ok(Validated::Stage(ledger))
    }

    /// Write, fsync, publish and acknowledge every staged add: first all
    /// touched ledgers are written, then fsync'd (in parallel when there are
    /// several), then published and acknowledged.
    fn commit(&self, group: Group) {
        if group.ledgers.is_empty() {
            return;
        }
        let entries: usize = group.ledgers.iter().map(|(_, adds)| adds.len()).sum();
        let bytes: u64 = group
            .ledgers
            .iter()
            .flat_map(|(_, adds)| adds.iter().map(|a| u64::from(a.req.row.len)))
            .sum();
        let span = tracing::debug_span!("group_commit", ledgers = group.ledgers.len(), entries, bytes);
        let _enter = span.enter();
        metrics::GROUP_COMMIT_ENTRIES.observe(entries as f64);

        let written: Vec<_> = group
            .ledgers
            .into_iter()
            .filter_map(|(ledger, adds)| write_ledger(&ledger, adds).map(|adds| (ledger, adds)))
            .collect();
        let synced = self.syncers.sync_all(&written);
        let mut slowest = Duration::ZERO;
        for ((ledger, adds), result) in written.into_iter().zip(synced) {
            metrics::FSYNCS.inc();
            self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(elapsed) => {
                    metrics::FSYNC_SECONDS.observe(elapsed.as_secs_f64());
                    slowest = slowest.max(elapsed);
                    self.publish(&ledger, adds);
                }
                Err(e) => {
                    // fsync errors are not retryable on Linux (the dirty pages
                    // may be dropped): this ledger takes no more adds.
                    tracing::error!(ledger = ledger.id, error = %e, "ledger fsync failed; ledger marked broken");
                    ledger.broken.store(true, Ordering::Release);
                    ledger.rollback();
                    fail_all(&ledger, adds, &e);
                }
            }
        }
        tracing::debug!(fsync_micros = slowest.as_micros() as u64, "group committed");
    }

    /// Make durable entries visible to readers and acknowledge them.
    fn publish(&self, ledger: &LedgerFile, adds: Vec<Staged>) {
        ledger.publish(adds.iter().map(|a| a.req.row));
        if let Some(lac) = adds.iter().filter_map(|a| a.req.lac).max() {
            self.shared.lac.advance(ledger.id, lac);
        }
        let n = adds.len() as u64;
        let bytes: u64 = adds.iter().map(|a| u64::from(a.req.row.len)).sum();
        metrics::ENTRIES_ADDED.inc_by(n);
        metrics::BYTES_WRITTEN.inc_by(bytes);
        self.shared.stats.entries_added.fetch_add(n, Ordering::Relaxed);
        self.shared
            .stats
            .bytes_written
            .fetch_add(bytes, Ordering::Relaxed);
        for add in adds {
            let _ = add.reply.send(Ok(()));
        }
    }

    fn fence(&self, id: LedgerId) -> Result<Option<IndexRow>> {
        let ledger = match self.shared.get(id) {
            Some(l) => l,
            None => self.shared.create(id)?,
        };
        ledger.fence(&self.shared.ledgers_dir)?;
        tracing::info!(ledger = id, "ledger fenced");
        let last = ledger.index.read().last();
        Ok(last)
    }

    /// Forget the ledger and hand its files to the deleter thread, which
    /// answers `reply` once they are gone (see the module docs).
    fn delete(&self, id: LedgerId, reply: oneshot::Sender<Result<()>>) {
        self.shared.ledgers.write().remove(&id);
        self.shared.lac.remove(id);
        // Without a deleter thread (it could not be started), inline.
        if let Err(mpsc::SendError((_, reply))) = self.deletes.send((id, reply)) {
            let _ = reply.send(LedgerFile::remove(&self.shared.ledgers_dir, id));
        }
    }
}

/// An add must follow `last`, the bookie's last entry of its ledger
/// (durable, in flight or staged): `req.prev_entry_id` must be exactly that
/// entry, so the bookie's entries stay a gap-free prefix of its stripe; and
/// its payload must be as long as its row says. `what` names the ledger's
/// storage in the error.
pub(super) fn check_follows(
    req: &AddRequest,
    last: Option<u64>,
    what: impl AsRef<std::path::Path>,
) -> Result<()> {
    if last != req.prev_entry_id {
        return Err(StorageError::OutOfOrder {
            ledger: req.ledger_id,
            last,
            prev: req.prev_entry_id,
        });
    }
    let actual: u64 = req.payload.iter().map(|c| c.len() as u64).sum();
    if actual != u64::from(req.row.len) {
        return Err(StorageError::io(
            what,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "entry {}: row.len {} but payload has {actual} bytes",
                    req.row.entry_id, req.row.len
                ),
            ),
        ));
    }
    Ok(())
}

/// The ordering fields of an add must be possible ([`order_problem`]).
pub(super) fn check_order_fields(req: &AddRequest) -> Result<()> {
    match order_problem(req.row.entry_id, req.prev_entry_id) {
        Some(what) => Err(StorageError::io(
            format!("ledger {}", req.ledger_id),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
        )),
        None => Ok(()),
    }
}

/// Write one ledger's staged entries (headers and payload chunks, with
/// vectored writes, no copies). On failure the tail is cut back, every add
/// is answered with the error, and `None` is returned.
fn write_ledger(ledger: &LedgerFile, adds: Vec<Staged>) -> Option<Vec<Staged>> {
    let headers: Vec<[u8; HEADER_LEN]> = adds
        .iter()
        .map(|a| encode_header(&a.req.row, &a.req.payload))
        .collect();
    let mut slices = Vec::with_capacity(adds.iter().map(|a| 1 + a.req.payload.len()).sum());
    for (header, add) in headers.iter().zip(&adds) {
        slices.push(IoSlice::new(header));
        let chunks = add.req.payload.iter().filter(|c| !c.is_empty());
        slices.extend(chunks.map(|c| IoSlice::new(c)));
    }
    let written = ledger.append(&mut slices);
    drop(slices);
    match written {
        Ok(()) => Some(adds),
        Err(e) => {
            tracing::error!(ledger = ledger.id, error = %e, "ledger write failed; group not acknowledged");
            ledger.rollback();
            fail_all(ledger, adds, &e);
            None
        }
    }
}

/// Most fsyncs issued at once when a group touched several ledgers.
const MAX_PARALLEL_SYNCS: usize = 16;

fn timed_sync(ledger: &LedgerFile) -> io::Result<Duration> {
    let started = Instant::now();
    ledger.file.sync_data().map(|()| started.elapsed())
}

/// A sync job: fdatasync this ledger, report (slot, result) back.
type SyncJob = (
    usize,
    Arc<LedgerFile>,
    mpsc::Sender<(usize, io::Result<Duration>)>,
);

/// Long-lived fsync threads, so a group that touched several ledgers waits
/// about one fsync rather than their sum. (Spawning threads per group cost
/// more CPU than the syncs themselves at ~1,000 groups/s over 16 ledgers.)
struct SyncPool {
    jobs: Option<mpsc::Sender<SyncJob>>,
}

impl SyncPool {
    /// Start `n` sync threads; if a thread cannot start, syncs that would
    /// have gone to it run on the group-commit thread instead.
    fn start(n: usize) -> SyncPool {
        let (tx, rx) = mpsc::channel::<SyncJob>();
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        let mut started = 0;
        for i in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bookie-fsync-{i}"))
                .spawn(move || loop {
                    let job = rx.lock().recv();
                    let Ok((slot, ledger, done)) = job else { return };
                    let _ = done.send((slot, timed_sync(&ledger)));
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        SyncPool {
            jobs: (started > 0).then_some(tx),
        }
    }

    /// fdatasync every written ledger, timing each: the first on this
    /// thread, the rest on the pool, all at once.
    fn sync_all(&self, written: &[(Arc<LedgerFile>, Vec<Staged>)]) -> Vec<io::Result<Duration>> {
        let mut results: Vec<Option<io::Result<Duration>>> = (0..written.len()).map(|_| None).collect();
        let (done_tx, done_rx) = mpsc::channel();
        let mut sent = 0usize;
        for (slot, (ledger, _)) in written.iter().enumerate().skip(1) {
            let queued = self
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.send((slot, ledger.clone(), done_tx.clone())).is_ok());
            if queued {
                sent += 1;
            } else {
                results[slot] = Some(timed_sync(ledger));
            }
        }
        drop(done_tx);
        if let Some((ledger, _)) = written.first() {
            results[0] = Some(timed_sync(ledger));
        }
        for _ in 0..sent {
            match done_rx.recv() {
                Ok((slot, r)) => results[slot] = Some(r),
                Err(_) => break,
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("fsync thread stopped"))))
            .collect()
    }
}

fn fail_all(ledger: &LedgerFile, adds: Vec<Staged>, e: &std::io::Error) {
    for add in adds {
        let _ = add.reply.send(Err(StorageError::io(&ledger.path, clone_io(e))));
    }
}
