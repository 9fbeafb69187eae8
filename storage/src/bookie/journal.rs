//! The journal: one OS thread that owns every write to the bookie's files.
//!
//! Adds, fences and deletes are sent over a channel. The thread takes
//! everything queued (up to a cap), validates each add (fencing, dense entry
//! ids), writes all of a ledger's staged entries with vectored writes, issues
//! one `fdatasync` per touched ledger, and only then publishes the entries to
//! the in-memory index and acknowledges them: many concurrent adds share one
//! fsync, and readers never see an entry that is not durable.
//!
//! Fences and deletes are processed in queue order: the adds staged before
//! one are committed first, so a fence returns the true last entry and no
//! add queued after it can succeed.

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use distlog_metadata::LedgerId;
use tokio::sync::oneshot;

use crate::error::{Result, StorageError};
use crate::ledger::{AddRequest, IndexRow};
use crate::metrics;

use super::format::{encode_header, HEADER_LEN};
use super::ledger_file::{clone_io, LedgerFile};
use super::Shared;

/// Most operations taken into one group.
const MAX_GROUP_OPS: usize = 4096;
/// Most payload bytes taken into one group (one add is always taken).
const MAX_GROUP_BYTES: usize = 32 << 20;

/// A request to the journal thread.
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

/// Run the journal loop until a `Shutdown` op arrives or every sender is
/// gone. Call on a dedicated thread.
pub(crate) fn run(shared: Arc<Shared>, rx: mpsc::Receiver<Op>) {
    let journal = Journal { shared };
    let mut stopping = false;
    while !stopping {
        let Ok(first) = rx.recv() else { break };
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
        stopping = journal.process(batch);
    }
    // Drain what was queued before the shutdown request was seen.
    loop {
        let batch: Vec<Op> = rx.try_iter().take(MAX_GROUP_OPS).collect();
        if batch.is_empty() {
            break;
        }
        journal.process(batch);
    }
    tracing::debug!("bookie journal stopped");
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Add(req, _) => req.row.len as usize,
        _ => 0,
    }
}

struct Journal {
    shared: Arc<Shared>,
}

impl Journal {
    /// Process one batch; true if it contained a shutdown request.
    fn process(&self, batch: Vec<Op>) -> bool {
        let mut group = Group::default();
        let mut stop = false;
        for op in batch {
            match op {
                Op::Add(req, reply) => self.stage(&mut group, req, reply),
                Op::Fence(id, reply) => {
                    self.commit(std::mem::take(&mut group));
                    let _ = reply.send(self.fence(id));
                }
                Op::Delete(id, reply) => {
                    self.commit(std::mem::take(&mut group));
                    let _ = reply.send(self.delete(id));
                }
                Op::Shutdown => stop = true,
            }
        }
        self.commit(group);
        stop
    }

    /// Validate an add and stage it, or answer it with its error.
    fn stage(&self, group: &mut Group, req: AddRequest, reply: oneshot::Sender<Result<()>>) {
        match self.validate(group, &req) {
            Ok(ledger) => {
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

    fn validate(&self, group: &Group, req: &AddRequest) -> Result<Arc<LedgerFile>> {
        let id = req.ledger_id;
        let got = req.row.entry_id;
        let ledger = match self.shared.get(id) {
            Some(l) => l,
            None if got == 0 => self.shared.create(id)?,
            None => {
                return Err(StorageError::OutOfOrder {
                    ledger: id,
                    expected: 0,
                    got,
                })
            }
        };
        if ledger.fenced.load(Ordering::Acquire) {
            return Err(StorageError::Fenced(id));
        }
        if ledger.broken.load(Ordering::Acquire) {
            return Err(ledger.broken_error());
        }
        let staged = group
            .by_id
            .get(&id)
            .map_or(0, |&i| group.ledgers[i].1.len() as u64);
        let expected = ledger.index.read().len() + staged;
        if got != expected {
            return Err(StorageError::OutOfOrder {
                ledger: id,
                expected,
                got,
            });
        }
        let actual: u64 = req.payload.iter().map(|c| c.len() as u64).sum();
        if actual != u64::from(req.row.len) {
            return Err(StorageError::io(
                &ledger.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "entry {got}: row.len {} but payload has {actual} bytes",
                        req.row.len
                    ),
                ),
            ));
        }
        Ok(ledger)
    }

    /// Write, fsync, publish and acknowledge every staged add.
    fn commit(&self, group: Group) {
        for (ledger, adds) in group.ledgers {
            self.commit_ledger(&ledger, adds);
        }
    }

    fn commit_ledger(&self, ledger: &LedgerFile, adds: Vec<Staged>) {
        let headers: Vec<[u8; HEADER_LEN]> = adds
            .iter()
            .map(|a| encode_header(&a.req.row, &a.req.payload))
            .collect();
        let payload_bytes: u64 = adds.iter().map(|a| u64::from(a.req.row.len)).sum();
        let span = tracing::debug_span!(
            "group_commit",
            ledger = ledger.id,
            entries = adds.len(),
            bytes = payload_bytes
        );
        let _enter = span.enter();
        let mut slices = Vec::with_capacity(adds.iter().map(|a| 1 + a.req.payload.len()).sum());
        for (header, add) in headers.iter().zip(&adds) {
            slices.push(IoSlice::new(header));
            slices.extend(
                add.req
                    .payload
                    .iter()
                    .filter(|c| !c.is_empty())
                    .map(|c| IoSlice::new(c)),
            );
        }
        if let Err(e) = ledger.append(&mut slices) {
            tracing::error!(ledger = ledger.id, error = %e, "ledger write failed; group not acknowledged");
            ledger.rollback();
            fail_all(ledger, adds, &e);
            return;
        }
        let started = Instant::now();
        let synced = ledger.file.sync_data();
        let elapsed = started.elapsed();
        metrics::FSYNC_SECONDS.observe(elapsed.as_secs_f64());
        metrics::FSYNCS.inc();
        self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = synced {
            // fsync errors are not retryable on Linux (the dirty pages may be
            // dropped): this ledger takes no more adds.
            tracing::error!(ledger = ledger.id, error = %e, "ledger fsync failed; ledger marked broken");
            ledger.broken.store(true, Ordering::Release);
            ledger.rollback();
            fail_all(ledger, adds, &e);
            return;
        }
        ledger.publish(adds.iter().map(|a| a.req.row));
        let n = adds.len() as u64;
        metrics::ENTRIES_ADDED.inc_by(n);
        metrics::BYTES_WRITTEN.inc_by(payload_bytes);
        self.shared.stats.entries_added.fetch_add(n, Ordering::Relaxed);
        self.shared
            .stats
            .bytes_written
            .fetch_add(payload_bytes, Ordering::Relaxed);
        tracing::debug!(fsync_micros = elapsed.as_micros() as u64, "group committed");
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

    fn delete(&self, id: LedgerId) -> Result<()> {
        self.shared.ledgers.write().remove(&id);
        LedgerFile::remove(&self.shared.ledgers_dir, id)?;
        tracing::info!(ledger = id, "ledger deleted");
        Ok(())
    }
}

fn fail_all(ledger: &LedgerFile, adds: Vec<Staged>, e: &std::io::Error) {
    for add in adds {
        let _ = add.reply.send(Err(StorageError::io(&ledger.path, clone_io(e))));
    }
}
