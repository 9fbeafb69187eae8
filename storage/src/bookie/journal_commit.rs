//! The journaled group committer (storage engine v2): BookKeeper's journal
//! thread, force-write thread and checkpoint, over this crate's journal,
//! [`ForceWriter`] and [`LedgerStorage`].
//!
//! * The committer thread ([`run`]) takes every queued operation, validates
//!   adds (fencing; each add follows the bookie's last entry of its ledger,
//!   counting entries still in flight in earlier groups), appends the group
//!   to the journal with one vectored write and hands it to the force-write
//!   stage, then goes on with the next group while that one is synced.
//! * The force-write stage ([`apply_durable`]) runs once a group is
//!   durable: its adds go to ledger storage (write cache and index), fences
//!   and deletes to the durable sets, and only then are the operations
//!   answered; last it advances the durable position.
//! * A checkpoint ([`checkpoint`]) flushes ledger storage, stores the
//!   durable position with the fenced and deleted sets, and lets the
//!   committer retire the journal files wholly before that position.
//!
//! An add is acknowledged only after the fdatasync of its journal group;
//! fences and deletes likewise. A crash loses nothing acknowledged: start-up
//! ([`super::recovery`]) replays the journal from the last checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use distlog_metadata::LedgerId;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::error::{Result, StorageError};
use crate::ledger::{AddRequest, IndexRow};

use super::checkpoint::Checkpoint;
use super::force_write::{Durable, ForceWrite, ForceWriter};
use super::group_commit::{check_follows, check_order_fields, next_batch, Op, MAX_GROUP_OPS};
use super::journal::{GroupRecord, JournalFile, JournalPosition, JournalWriter, RecordKind, NO_ROW};
use super::lac::LacTracker;
use super::ledger_storage::LedgerStorage;

/// Retired journal files kept for recycling.
const JOURNAL_FILES_KEPT: usize = 4;

/// State shared by the committer, the force-write stage, checkpoints and
/// readers.
pub(crate) struct Journaled {
    /// Entry logs, index and write cache.
    pub storage: Arc<LedgerStorage>,
    /// LACs piggybacked on durable adds.
    pub lac: LacTracker,
    /// Ledgers fenced by durable fence records.
    pub fenced: RwLock<BTreeSet<LedgerId>>,
    /// Ledgers deleted by durable delete records (their records may still
    /// be in entry logs).
    pub deleted: RwLock<BTreeSet<LedgerId>>,
    /// The journal is durable up to here, and every record before it is
    /// applied to the sets and ledger storage.
    durable: Mutex<JournalPosition>,
    /// Journal files below this sequence number are in ledger storage (a
    /// checkpoint says so) and may be retired.
    retire_below: AtomicU64,
    /// Where the checkpoint lives.
    storage_dir: PathBuf,
}

impl Journaled {
    /// Shared state over recovered parts; `start` is where the journal
    /// writer starts (everything before it is durable and applied).
    pub fn new(
        storage: Arc<LedgerStorage>,
        fenced: BTreeSet<LedgerId>,
        deleted: BTreeSet<LedgerId>,
        start: JournalPosition,
        storage_dir: &Path,
    ) -> Journaled {
        Journaled {
            storage,
            lac: LacTracker::default(),
            fenced: RwLock::new(fenced),
            deleted: RwLock::new(deleted),
            durable: Mutex::new(start),
            retire_below: AtomicU64::new(0),
            storage_dir: storage_dir.to_path_buf(),
        }
    }

    /// The journal position up to which everything is durable and applied.
    pub fn durable(&self) -> JournalPosition {
        *self.durable.lock()
    }

    /// The last entry of `ledger` in ledger storage.
    fn stored_last(&self, ledger: LedgerId) -> Option<IndexRow> {
        self.storage.index(ledger).and_then(|i| i.read().last())
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// A group's operations, answered once the group is durable (or failed).
#[derive(Default)]
pub(crate) struct GroupDone {
    /// Adds written in the group.
    adds: Vec<(AddRequest, Reply<()>)>,
    fences: Vec<(LedgerId, Reply<Option<IndexRow>>)>,
    deletes: Vec<(LedgerId, Reply<()>)>,
}

impl GroupDone {
    fn fail(self, e: &StorageError) {
        let err = || StorageError::io("journal", std::io::Error::other(e.to_string()));
        for (_, reply) in self.adds {
            let _ = reply.send(Err(err()));
        }
        for (_, reply) in self.fences {
            let _ = reply.send(Err(err()));
        }
        for (_, reply) in self.deletes {
            let _ = reply.send(Err(err()));
        }
    }
}

/// Apply a durable run of groups (the force-write stage's report) and
/// answer their operations. Runs on the force-write thread, in journal order.
pub(crate) fn apply_durable(shared: &Journaled, durable: Durable<GroupDone>) {
    let end = match durable.outcome {
        Ok(end) => end,
        Err(e) => {
            for group in durable.done {
                group.fail(&e);
            }
            return;
        }
    };
    // Apply everything, advance the durable position, then answer: a
    // checkpoint that reads the position finds everything before it
    // applied, and an answered operation is covered by the position.
    let mut acks: Vec<Reply<()>> = Vec::new();
    let mut fence_answers: Vec<(Reply<Option<IndexRow>>, Option<IndexRow>)> = Vec::new();
    for group in durable.done {
        for (req, reply) in group.adds {
            shared.storage.add(req.ledger_id, req.row, req.payload);
            if let Some(lac) = req.lac {
                shared.lac.advance(req.ledger_id, lac);
            }
            acks.push(reply);
        }
        for (ledger, reply) in group.fences {
            shared.fenced.write().insert(ledger);
            fence_answers.push((reply, shared.stored_last(ledger)));
        }
        for (ledger, reply) in group.deletes {
            shared.storage.delete(ledger);
            shared.lac.remove(ledger);
            shared.fenced.write().remove(&ledger);
            shared.deleted.write().insert(ledger);
            acks.push(reply);
        }
    }
    {
        let mut durable_at = shared.durable.lock();
        *durable_at = (*durable_at).max(end);
    }
    for reply in acks {
        let _ = reply.send(Ok(()));
    }
    for (reply, last) in fence_answers {
        let _ = reply.send(Ok(last));
    }
}

/// Flush ledger storage and store a checkpoint at the durable position;
/// the committer then retires the journal files wholly before it.
/// Blocking; one at a time (the caller's thread).
pub(crate) fn checkpoint(shared: &Journaled) -> Result<JournalPosition> {
    // Position first, sets and flush after: they cover at least everything
    // before the position (more is harmless: replay redoes it).
    let position = shared.durable();
    let fenced = shared.fenced.read().clone();
    let deleted = shared.deleted.read().clone();
    shared.storage.flush()?;
    Checkpoint {
        journal: position,
        fenced,
        deleted,
    }
    .store(&shared.storage_dir)?;
    shared.retire_below.fetch_max(position.file, Ordering::AcqRel);
    Ok(position)
}

/// The committer thread's own state.
struct Committer {
    shared: Arc<Journaled>,
    journal: JournalWriter,
    force: ForceWriter<JournalFile, GroupDone>,
    /// Fenced ledgers, including fences not yet durable.
    fenced: BTreeSet<LedgerId>,
    /// The last entry accepted per ledger (durable or in flight), once the
    /// committer has seen the ledger.
    accepted: HashMap<LedgerId, Option<u64>>,
    /// Oldest journal file not yet retired.
    oldest: u64,
    /// Set once the journal cannot be written: every later operation fails.
    broken: Option<String>,
}

/// Run the journaled committer until a `Shutdown` op arrives or every
/// sender is gone; groups already handed to the force-write stage are
/// durable and answered when it returns. Call on a dedicated thread.
pub(crate) fn run(shared: Arc<Journaled>, journal: JournalWriter, rx: mpsc::Receiver<Op>) -> Result<()> {
    let stage_shared = shared.clone();
    let force = ForceWriter::start("bookie-force-write".into(), move |d| {
        apply_durable(&stage_shared, d);
    })
    .map_err(|e| StorageError::io("journal", e))?;
    let fenced = shared.fenced.read().clone();
    let oldest = journal.position().file;
    let mut committer = Committer {
        shared,
        journal,
        force,
        fenced,
        accepted: HashMap::new(),
        oldest,
        broken: None,
    };
    let mut stopping = false;
    while !stopping {
        let Some(batch) = next_batch(&rx) else { break };
        stopping = committer.process(batch);
        committer.retire();
    }
    // Drain what was queued before the shutdown request was seen.
    loop {
        let batch: Vec<Op> = rx.try_iter().take(MAX_GROUP_OPS).collect();
        if batch.is_empty() {
            break;
        }
        committer.process(batch);
    }
    committer.force.shutdown();
    Ok(())
}

impl Committer {
    /// Validate, journal and hand over one batch; true if it held a shutdown.
    fn process(&mut self, batch: Vec<Op>) -> bool {
        let mut done = GroupDone::default();
        let mut stop = false;
        for op in batch {
            match op {
                Op::Add(req, reply) => match self.validate(&req) {
                    Ok(true) => done.adds.push((req, reply)),
                    Ok(false) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Op::Fence(ledger, reply) => {
                    self.fenced.insert(ledger);
                    done.fences.push((ledger, reply));
                }
                Op::Delete(ledger, reply) => {
                    self.fenced.remove(&ledger);
                    self.accepted.remove(&ledger);
                    done.deletes.push((ledger, reply));
                }
                Op::Shutdown => stop = true,
            }
        }
        if done.adds.is_empty() && done.fences.is_empty() && done.deletes.is_empty() {
            return stop;
        }
        if let Some(why) = &self.broken {
            let e = StorageError::io("journal", std::io::Error::other(why.clone()));
            done.fail(&e);
            return stop;
        }
        match self.write(&done) {
            Ok(end) => {
                let request = ForceWrite {
                    file: self.journal.current().clone(),
                    end,
                    done,
                };
                if let Err(request) = self.force.submit(request) {
                    request.done.fail(&StorageError::ShuttingDown);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "journal write failed; the bookie takes no more writes");
                self.broken = Some(format!(
                    "a journal write failed ({e}); restart the node to recover from the journal"
                ));
                done.fail(&e);
            }
        }
        stop
    }

    /// Append the group's records (adds, then fences, then deletes, the
    /// order they are applied in) to the journal.
    fn write(&mut self, done: &GroupDone) -> Result<JournalPosition> {
        let mut records: Vec<GroupRecord<'_>> = done
            .adds
            .iter()
            .map(|(req, _)| GroupRecord {
                kind: RecordKind::Add,
                ledger: req.ledger_id,
                row: req.row,
                payload: &req.payload,
            })
            .collect();
        let marks = done
            .fences
            .iter()
            .map(|(l, _)| (RecordKind::Fence, *l))
            .chain(done.deletes.iter().map(|(l, _)| (RecordKind::Delete, *l)));
        records.extend(marks.map(|(kind, ledger)| GroupRecord {
            kind,
            ledger,
            row: NO_ROW,
            payload: &[],
        }));
        self.journal.append_group(&records)
    }

    /// Check an add: `Ok(true)` to write it, `Ok(false)` for a recovery add
    /// of an entry already in ledger storage (acknowledged at once).
    fn validate(&mut self, req: &AddRequest) -> Result<bool> {
        check_order_fields(req)?;
        let ledger = req.ledger_id;
        if self.fenced.contains(&ledger) && !req.recovery {
            return Err(StorageError::Fenced(ledger));
        }
        let shared = &self.shared;
        let last = *self
            .accepted
            .entry(ledger)
            .or_insert_with(|| shared.stored_last(ledger).map(|r| r.entry_id));
        // A recovery add of an entry this bookie holds is acknowledged as
        // is. (Entries of earlier groups still in flight are not "held":
        // recovery adds come after a fence's answer, which waits for them.)
        if req.recovery && last.is_some_and(|l| l >= req.row.entry_id) {
            let held = shared
                .storage
                .index(ledger)
                .is_some_and(|i| i.read().contains(req.row.entry_id));
            if held {
                return Ok(false);
            }
        }
        check_follows(req, last, format!("ledger {ledger}"))?;
        self.accepted.insert(ledger, Some(req.row.entry_id));
        Ok(true)
    }

    /// Retire the journal files a checkpoint has covered.
    fn retire(&mut self) {
        let below = self
            .shared
            .retire_below
            .load(Ordering::Acquire)
            .min(self.journal.position().file);
        if below <= self.oldest {
            return;
        }
        match self.journal.retire(self.oldest..below, JOURNAL_FILES_KEPT) {
            Ok(()) => self.oldest = below,
            Err(e) => {
                tracing::warn!(error = %e, "cannot retire journal files; retrying after the next group");
            }
        }
    }
}

/// Start a journaled committer on `root`'s `journal` and `data`
/// directories as a bookie's start-up will: recovery, then the committer
/// thread. For tests and the engine benchmark.
#[cfg(test)]
pub(crate) fn start_on(
    root: &Path,
    sizes: super::recovery::Sizes,
) -> (
    Arc<Journaled>,
    mpsc::Sender<Op>,
    std::thread::JoinHandle<Result<()>>,
) {
    let (jd, sd) = (root.join("journal"), root.join("data"));
    let r = super::recovery::recover(&jd, &sd, sizes).expect("recover");
    let start = r.journal.position();
    let shared = Arc::new(Journaled::new(
        Arc::new(r.storage),
        r.fenced,
        r.deleted,
        start,
        &sd,
    ));
    let (tx, rx) = mpsc::channel();
    let committer_shared = shared.clone();
    let journal = r.journal;
    let thread = std::thread::spawn(move || run(committer_shared, journal, rx));
    (shared, tx, thread)
}

#[cfg(test)]
#[path = "journal_commit_tests.rs"]
mod tests;
