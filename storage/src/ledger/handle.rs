//! Ledger handles: writing one ledger through its ensemble with write and
//! ack quorums, reading it back, and recovering it after its writer died.
//!
//! Placement is striped as in BookKeeper: entry `e` goes to the `Qw`
//! bookies starting at ensemble index `e mod E`; it is confirmed once `Qa`
//! of them have made it durable. On a single node the ensemble is the
//! local bookie and E = Qw = Qa = 1.

use std::sync::Arc;

use bytes::Bytes;
use distlog_metadata::LedgerId;
use futures::stream::{FuturesUnordered, StreamExt};

use super::{AddFuture, AddRequest, BookieClient, Entry, IndexRow};
use crate::error::{Result, StorageError};

/// The bookies of a ledger and its quorum sizes.
#[derive(Clone)]
pub struct Ensemble {
    /// Bookie clients, in ensemble order (as recorded in segment metadata).
    pub bookies: Vec<Arc<dyn BookieClient>>,
    /// Copies written of each entry.
    pub write_quorum: usize,
    /// Copies that must be durable before an entry is confirmed.
    pub ack_quorum: usize,
}

impl Ensemble {
    /// Check E >= Qw >= Qa >= 1.
    pub fn new(bookies: Vec<Arc<dyn BookieClient>>, write_quorum: usize, ack_quorum: usize) -> Result<Self> {
        if bookies.is_empty()
            || write_quorum == 0
            || ack_quorum == 0
            || write_quorum > bookies.len()
            || ack_quorum > write_quorum
        {
            return Err(StorageError::NotEnoughBookies(format!(
                "ensemble of {} with write quorum {write_quorum} and ack quorum {ack_quorum} is not valid \
                 (need E >= Qw >= Qa >= 1)",
                bookies.len()
            )));
        }
        Ok(Ensemble {
            bookies,
            write_quorum,
            ack_quorum,
        })
    }

    /// Bookie ids in ensemble order.
    pub fn ids(&self) -> Vec<u32> {
        self.bookies.iter().map(|b| b.bookie_id()).collect()
    }

    /// Indexes (into `bookies`) of the write set of entry `entry_id`.
    pub fn write_set(&self, entry_id: u64) -> impl Iterator<Item = usize> + '_ {
        let e = self.bookies.len();
        let start = (entry_id % e as u64) as usize;
        (0..self.write_quorum).map(move |i| (start + i) % e)
    }
}

/// The single writer of one ledger. Adds are issued in entry-id order and
/// may be pipelined; each returned future resolves once the entry is on
/// `Qa` bookies. The caller confirms entries in order (LAC).
pub struct LedgerWriter {
    ledger_id: LedgerId,
    ensemble: Ensemble,
    next_entry_id: u64,
    lac: Option<u64>,
}

impl LedgerWriter {
    /// A writer for a new (empty) ledger.
    pub fn new(ledger_id: LedgerId, ensemble: Ensemble) -> Self {
        LedgerWriter {
            ledger_id,
            ensemble,
            next_entry_id: 0,
            lac: None,
        }
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
        let mut pending: FuturesUnordered<AddFuture> = self
            .ensemble
            .write_set(entry_id)
            .map(|i| {
                self.ensemble.bookies[i].add_entry(AddRequest {
                    ledger_id: self.ledger_id,
                    row,
                    lac: self.lac,
                    payload: payload.clone(),
                })
            })
            .collect();
        let need = self.ensemble.ack_quorum;
        let can_fail = self.ensemble.write_quorum - need;
        let fut: AddFuture = Box::pin(async move {
            let (mut acked, mut failed) = (0usize, 0usize);
            let mut first_err = None;
            while let Some(r) = pending.next().await {
                match r {
                    Ok(()) => {
                        acked += 1;
                        if acked >= need {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        if first_err.is_none() {
                            first_err = Some(e);
                        }
                        if failed > can_fail {
                            break;
                        }
                    }
                }
            }
            Err(first_err.unwrap_or_else(|| StorageError::NotEnoughBookies("write set ended early".into())))
        });
        (entry_id, fut)
    }
}

/// Read entries `first..=last` of a ledger from its ensemble: from the first
/// bookie of each entry's write set, falling back to the others on error.
pub async fn read_entries(
    ensemble: &Ensemble,
    ledger: LedgerId,
    first: u64,
    last: u64,
    max_bytes: usize,
) -> Result<Vec<Entry>> {
    let mut last_err = None;
    for i in ensemble.write_set(first) {
        match ensemble.bookies[i]
            .read_entries(ledger, first, last, max_bytes)
            .await
        {
            Ok(v) => return Ok(v),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or(StorageError::NoSuchEntry { ledger, entry: first }))
}

/// Ask the ensemble which entry holds sequence id `seq` (first answer wins).
pub async fn entry_for_seq(ensemble: &Ensemble, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>> {
    let mut last_err = None;
    for b in &ensemble.bookies {
        match b.entry_for_seq(ledger, seq).await {
            Ok(r) => return Ok(r),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or(StorageError::NoSuchLedger(ledger)))
}

/// Ask the ensemble for the first entry with txid `>= txid`.
pub async fn entry_for_txid(ensemble: &Ensemble, ledger: LedgerId, txid: u64) -> Result<Option<IndexRow>> {
    let mut last_err = None;
    for b in &ensemble.bookies {
        match b.entry_for_txid(ledger, txid).await {
            Ok(r) => return Ok(r),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or(StorageError::NoSuchLedger(ledger)))
}

/// Ledger recovery (the first half of a writer failover): fence the ledger
/// on the ensemble so the old writer can no longer reach `Qa`, and return
/// the last entry that may have been confirmed.
///
/// Fencing must succeed on more than `Qw - Qa` bookies of every write set;
/// with E = Qw that is `E - Qa + 1` bookies. The last entry is the highest
/// one any fenced bookie holds (on a single node, exactly what the bookie
/// made durable). Re-replication of entries held by fewer than `Qa`
/// bookies belongs to the replicated ledger client.
pub async fn recover(ensemble: &Ensemble, ledger: LedgerId) -> Result<Option<IndexRow>> {
    let needed = ensemble.bookies.len() - ensemble.ack_quorum + 1;
    let mut fenced = 0usize;
    let mut last: Option<IndexRow> = None;
    let mut last_err = None;
    for b in &ensemble.bookies {
        match b.fence(ledger).await {
            Ok(row) => {
                fenced += 1;
                if let Some(r) = row {
                    if last.is_none_or(|l| r.entry_id > l.entry_id) {
                        last = Some(r);
                    }
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    if fenced < needed {
        return Err(last_err.unwrap_or_else(|| {
            StorageError::NotEnoughBookies(format!(
                "fenced ledger {ledger} on {fenced} bookies, need {needed}"
            ))
        }));
    }
    Ok(last)
}
