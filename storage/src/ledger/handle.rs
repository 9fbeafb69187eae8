//! Ledger handles: writing one ledger through its ensemble with write and
//! ack quorums. Reading it back ([`super::read`], [`super::lookup`]) and
//! recovering it after its writer died ([`super::recovery`]) are
//! re-exported here, so this module is the one entry point of the ledger
//! client.
//!
//! Placement is striped as in BookKeeper (see [`super::ensemble`]): entry
//! `e` goes to the `Qw` bookies starting at ensemble index `e mod E`; it is
//! confirmed once `Qa` of them have made it durable. Each add tells its
//! bookie which entry of the bookie's stripe precedes it, so a bookie that
//! missed one is caught at its next add. On a single node the ensemble is
//! the local bookie and E = Qw = Qa = 1.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use distlog_metadata::{LedgerId, NodeId};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use parking_lot::Mutex;

use super::{AddFuture, AddRequest, IndexRow};
use crate::error::StorageError;

pub use super::ensemble::Ensemble;
pub use super::lookup::{entry_for_seq, entry_for_txid, ledger_infos};
pub use super::read::read_entries;
pub use super::recovery::recover;

/// How a bookie of the ensemble failed an add (fencing is not a bookie
/// fault: it means the writer lost the ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookieFault {
    /// The bookie could not be reached, timed out, broke the protocol or
    /// failed on its disk: a new ensemble should avoid it.
    Unreachable,
    /// The bookie answered but is missing earlier entries of its stripe of
    /// this ledger (it was down and came back, or an earlier add to it
    /// failed): it can no longer take this ledger's adds, but it is
    /// healthy enough for a new ledger.
    Behind,
}

impl BookieFault {
    /// The fault an add error reveals, `None` for fencing.
    fn of(e: &StorageError) -> Option<BookieFault> {
        match e {
            StorageError::Fenced(_) => None,
            StorageError::OutOfOrder { .. } => Some(BookieFault::Behind),
            _ => Some(BookieFault::Unreachable),
        }
    }
}

/// The faults seen on the bookies of one ledger, by bookie id (the latest
/// fault of each bookie wins).
type Faults = Arc<Mutex<BTreeMap<NodeId, BookieFault>>>;

/// The single writer of one ledger. Adds are issued in entry-id order and
/// may be pipelined; each returned future resolves once the entry is on
/// `Qa` bookies. The caller confirms entries in order (LAC).
///
/// A bookie of the write set that fails an add while the entry still
/// reaches `Qa` is remembered (see [`LedgerWriter::faults`]), including
/// failures that arrive after the entry was confirmed: the log writer uses
/// them to roll the segment to a healthy ensemble.
pub struct LedgerWriter {
    ledger_id: LedgerId,
    ensemble: Ensemble,
    next_entry_id: u64,
    lac: Option<u64>,
    faults: Faults,
}

impl LedgerWriter {
    /// A writer for a new (empty) ledger.
    pub fn new(ledger_id: LedgerId, ensemble: Ensemble) -> Self {
        LedgerWriter {
            ledger_id,
            ensemble,
            next_entry_id: 0,
            lac: None,
            faults: Faults::default(),
        }
    }

    /// Bookie ids of the ensemble, in ensemble order.
    pub fn ensemble_ids(&self) -> Vec<NodeId> {
        self.ensemble.ids()
    }

    /// The bookies that failed an add of this ledger so far (other than by
    /// fencing), with the latest fault of each.
    pub fn faults(&self) -> BTreeMap<NodeId, BookieFault> {
        self.faults.lock().clone()
    }

    /// The ledger being written.
    pub fn ledger_id(&self) -> LedgerId {
        self.ledger_id
    }

    /// Entry id the next add will get.
    pub fn next_entry_id(&self) -> u64 {
        self.next_entry_id
    }

    /// Last add confirmed, as known to this writer.
    pub fn lac(&self) -> Option<u64> {
        self.lac
    }

    /// Record that every entry up to `entry_id` is confirmed (piggybacked
    /// on later adds so bookies learn the LAC).
    pub fn confirm(&mut self, entry_id: u64) {
        self.lac = Some(self.lac.map_or(entry_id, |l| l.max(entry_id)));
    }

    /// Issue the next entry to its write set. Returns the entry id and a
    /// future that resolves once `Qa` copies are durable, or fails once that
    /// has become impossible (the first error is reported).
    pub fn add(
        &mut self,
        first_seq: u64,
        record_count: u32,
        txid: u64,
        payload: Vec<Bytes>,
    ) -> (u64, AddFuture) {
        let entry_id = self.next_entry_id;
        self.next_entry_id += 1;
        let len: usize = payload.iter().map(Bytes::len).sum();
        let row = IndexRow {
            entry_id,
            first_seq,
            record_count,
            txid,
            len: len as u32,
        };
        let mut pending: FuturesUnordered<_> = self
            .ensemble
            .write_set(entry_id)
            .map(|i| {
                let bookie = &self.ensemble.bookies[i];
                let id = bookie.bookie_id();
                bookie
                    .add_entry(AddRequest {
                        ledger_id: self.ledger_id,
                        row,
                        prev_entry_id: self.ensemble.prev_in_stripe(i, entry_id),
                        lac: self.lac,
                        payload: payload.clone(),
                        recovery: false,
                    })
                    .map(move |r| (id, r))
            })
            .collect();
        let need = self.ensemble.ack_quorum;
        let can_fail = self.ensemble.write_quorum - need;
        let ledger = self.ledger_id;
        let faults = self.faults.clone();
        let record = move |id: NodeId, e: &StorageError| {
            if let Some(f) = BookieFault::of(e) {
                tracing::debug!(bookie = id.get(), ledger, entry = entry_id, error = %e, "bookie failed an add");
                faults.lock().insert(id, f);
            }
        };
        let fut: AddFuture = Box::pin(async move {
            let (mut acked, mut failed) = (0usize, 0usize);
            let mut errors: Vec<(NodeId, StorageError)> = Vec::new();
            while let Some((id, r)) = pending.next().await {
                match r {
                    Ok(()) => {
                        acked += 1;
                        if acked >= need {
                            // Confirmed. The rest of the write set keeps
                            // going in the background so that a bookie
                            // failing after the quorum is still noticed.
                            if !pending.is_empty() {
                                tokio::spawn(async move {
                                    while let Some((id, r)) = pending.next().await {
                                        if let Err(e) = r {
                                            record(id, &e);
                                        }
                                    }
                                });
                            }
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        record(id, &e);
                        failed += 1;
                        errors.push((id, e));
                        if failed > can_fail {
                            break;
                        }
                    }
                }
            }
            Err(quorum_lost(ledger, entry_id, need, acked, errors))
        });
        (entry_id, fut)
    }
}

/// The error of an add that can no longer reach its ack quorum: `Fenced`
/// when any bookie reported fencing (the writer lost the ledger), otherwise
/// the retriable [`StorageError::NotEnoughBookies`] naming each failure.
fn quorum_lost(
    ledger: LedgerId,
    entry_id: u64,
    need: usize,
    acked: usize,
    errors: Vec<(NodeId, StorageError)>,
) -> StorageError {
    if let Some((_, e)) = errors.iter().find(|(_, e)| matches!(e, StorageError::Fenced(_))) {
        return e.duplicate();
    }
    let detail: Vec<String> = errors.iter().map(|(id, e)| format!("bookie {id}: {e}")).collect();
    StorageError::NotEnoughBookies(format!(
        "ledger {ledger} entry {entry_id} cannot reach the ack quorum of {need}: {} bookies of its write \
         set failed, {acked} acknowledged ({})",
        errors.len(),
        if detail.is_empty() {
            "write set ended early".to_string()
        } else {
            detail.join("; ")
        }
    ))
}
