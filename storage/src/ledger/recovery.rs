//! Ledger recovery, the first half of a writer failover: make sure the old
//! writer can no longer confirm anything, find where the ledger ends, and
//! leave every entry up to that end durable on at least `Qa` bookies before
//! the segment is sealed there.
//!
//! 1. **Fence** every bookie of the ensemble (concurrently). Enough must be
//!    fenced that no entry can still reach its ack quorum without one of
//!    them: more than `Qw - Qa` members of *every* write set (with `E = Qw`,
//!    `E - Qa + 1` bookies). Fewer is the retriable `NotEnoughBookies`.
//!    The same condition means every entry ever confirmed is held by at
//!    least one fenced bookie.
//! 2. **Find the end.** Each fenced bookie reports its last entry; by the
//!    stripe-prefix invariant (see [`super::ensemble`]) it holds exactly the
//!    entries of its stripe up to there. The candidate end is the highest
//!    last entry. The LAC the old writer piggybacked (the highest any fenced
//!    bookie knows) marks what is certainly confirmed.
//! 3. **Walk and re-replicate** from the first entry where the fenced
//!    copies may differ (the lowest entry some fenced bookie lacks of its
//!    stripe), or from the LAC + 1 if lower, to the candidate end. Below
//!    the divergence point an entry is on every fenced member of its write
//!    set — at least `Qw - Qa + 1`, which is `Qa` for majority quorums but
//!    may be one bookie (3/2/2, 2/2/2) — so past the LAC those entries are
//!    checked too. For each entry:
//!    * no fenced bookie holds it: it was never confirmed (a confirmed one
//!      would be on a fenced bookie), so neither was anything after it —
//!      the ledger ends just before it (later entries some bookie got stay
//!      past the sealed end, never read). Below the LAC that would be lost
//!      data, so recovery fails instead;
//!    * fenced members of its write set lacking it get it with a recovery
//!      add (accepted by fenced ledgers; in entry order, so stripes stay
//!      prefixes), read from a fenced member holding it;
//!    * past the LAC it must then be on `Qa` members of its write set, or
//!      recovery fails (retriable) rather than seal an under-replicated
//!      tail. Entries up to the LAC are confirmed already; copying them to
//!      lagging bookies is best effort.
//!
//! Recovery is idempotent (a repeat finds the copies made and the same
//! end), so a failed attempt is simply retried when the stream is opened
//! again. An entry whose add failed for its writer may still be recovered
//! into the ledger (once) — as in BookKeeper; an acknowledged entry is never
//! lost.

use std::time::Duration;

use distlog_metadata::{LedgerId, NodeId};

use super::ensemble::Ensemble;
use super::{AddRequest, Entry, IndexRow};
use crate::error::{Result, StorageError};

/// Recover `ledger` (see the module docs). Returns the row of the ledger's
/// last entry (`None` for an empty ledger); every entry up to it is then
/// durable on at least `Qa` bookies and no later entry can be confirmed.
pub async fn recover(ensemble: &Ensemble, ledger: LedgerId) -> Result<Option<IndexRow>> {
    let fences = futures::future::join_all(ensemble.bookies.iter().map(|b| b.fence(ledger))).await;
    let mut last_err = None;
    // Per bookie (ensemble index): None when not fenced, else its last entry.
    let mut tips: Vec<Option<Option<IndexRow>>> = Vec::with_capacity(fences.len());
    for answer in fences {
        match answer {
            Ok(row) => tips.push(Some(row)),
            Err(e) => {
                tips.push(None);
                last_err = Some(e);
            }
        }
    }
    let fenced = |i: usize| tips[i].is_some();
    if !ensemble.covers_every_write_set(ensemble.coverage_quorum(), fenced) {
        let ids: Vec<NodeId> = (0..tips.len())
            .filter(|i| fenced(*i))
            .map(|i| ensemble.bookies[i].bookie_id())
            .collect();
        // Retriable: the stream comes back once enough bookies do.
        return Err(StorageError::NotEnoughBookies(format!(
            "fenced ledger {ledger} on bookies {ids:?} of ensemble {:?}; every write set needs {} fenced \
             members (Qw {} - Qa {} + 1){}",
            ensemble.ids(),
            ensemble.coverage_quorum(),
            ensemble.write_quorum,
            ensemble.ack_quorum,
            last_err.map_or(String::new(), |e| format!(" (last error: {e})"))
        )));
    }
    let Some(candidate_end) = tips.iter().flatten().flatten().map(|r| r.entry_id).max() else {
        return Ok(None);
    };
    let lac = known_lac(ensemble, ledger, &tips).await;
    if lac.is_some_and(|l| l > candidate_end) {
        return Err(committed_missing(ensemble, ledger, candidate_end + 1));
    }
    let mut walk = Walk {
        ensemble,
        ledger,
        lac,
        held: tips.iter().map(|t| t.map(|r| r.map(|r| r.entry_id))).collect(),
        copying: tips.iter().map(Option::is_some).collect(),
        last_err: None,
    };
    let end = walk.run(candidate_end).await?;
    let Some(end) = end else { return Ok(None) };
    // The end's row: a fenced bookie's last entry, or read back.
    if let Some(row) = tips.iter().flatten().flatten().find(|r| r.entry_id == end) {
        return Ok(Some(*row));
    }
    walk.read_from_holders(end).await.map(|e| Some(e.row))
}

/// The highest LAC any fenced bookie learned from the old writer (entries
/// up to it were confirmed); `None` when none knows one.
async fn known_lac(ensemble: &Ensemble, ledger: LedgerId, tips: &[Option<Option<IndexRow>>]) -> Option<u64> {
    let asks = ensemble
        .bookies
        .iter()
        .enumerate()
        .filter(|(i, _)| tips[*i].is_some())
        .map(|(_, b)| b.read_lac(ledger, None, Duration::ZERO));
    futures::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .max()
}

/// A confirmed entry that no fenced bookie holds: sealing would lose it.
fn committed_missing(ensemble: &Ensemble, ledger: LedgerId, entry: u64) -> StorageError {
    StorageError::NotEnoughBookies(format!(
        "ledger {ledger}: entry {entry} was confirmed but no fenced bookie of ensemble {:?} holds it; \
         not sealing the ledger before it",
        ensemble.ids()
    ))
}

/// The walk of step 3 (see the module docs).
struct Walk<'a> {
    ensemble: &'a Ensemble,
    ledger: LedgerId,
    lac: Option<u64>,
    /// Per bookie: None when not fenced, else the last entry it holds (kept
    /// current as recovery adds land).
    held: Vec<Option<Option<u64>>>,
    /// Bookies recovery still copies to: fenced, and no recovery add to
    /// them failed or was skipped (their stripe must stay a prefix).
    copying: Vec<bool>,
    last_err: Option<StorageError>,
}

impl Walk<'_> {
    /// Whether bookie `i` holds entry `e` (stripe-prefix invariant).
    fn holds(&self, i: usize, e: u64) -> bool {
        self.ensemble.in_write_set(i, e) && self.held[i].flatten().is_some_and(|last| last >= e)
    }

    /// Walk up to `candidate_end`; returns the recovered last entry id.
    async fn run(&mut self, candidate_end: u64) -> Result<Option<u64>> {
        let en = self.ensemble;
        // The lowest entry some fenced bookie lacks of its stripe; below it
        // every fenced bookie holds its whole stripe.
        let from = (0..en.size())
            .filter_map(|i| {
                let held = self.held[i]?;
                Some(match held {
                    None => en.nth_in_stripe(i, 0),
                    Some(last) => en.nth_in_stripe(i, en.stripe_count(i, last.saturating_add(1))),
                })
            })
            .min()
            .unwrap_or(0);
        let start = from.min(self.lac.map_or(0, |l| l.saturating_add(1)));
        for e in start..=candidate_end {
            let confirmed = self.lac.is_some_and(|l| e <= l);
            let holders = en.write_set(e).filter(|i| self.holds(*i, e)).count();
            if holders == 0 {
                if confirmed {
                    return Err(committed_missing(en, self.ledger, e));
                }
                // Never confirmed, nor anything after it: the ledger ends here.
                tracing::info!(
                    ledger = self.ledger,
                    entry = e,
                    "recovery: no fenced bookie holds the entry; the ledger ends before it"
                );
                return Ok(e.checked_sub(1));
            }
            let lacking: Vec<usize> = en
                .write_set(e)
                .filter(|i| self.held[*i].is_some() && !self.holds(*i, e))
                .collect();
            let copied = if lacking.is_empty() {
                0
            } else {
                self.copy(e, &lacking, confirmed).await?
            };
            let copies = holders + copied;
            if !confirmed && copies < en.ack_quorum {
                return Err(StorageError::NotEnoughBookies(format!(
                    "ledger {}: recovered entry {e} reached {copies} bookies of its write set {:?}, the ack \
                     quorum is {}{}",
                    self.ledger,
                    en.write_set(e)
                        .map(|i| en.bookies[i].bookie_id())
                        .collect::<Vec<_>>(),
                    en.ack_quorum,
                    self.last_err
                        .as_ref()
                        .map_or(String::new(), |err| format!(" (last error: {err})"))
                )));
            }
        }
        Ok(Some(candidate_end))
    }

    /// Copy entry `e` to the fenced bookies in `lacking` with recovery
    /// adds; returns how many now hold it. For an unconfirmed entry a
    /// failed read fails recovery; for a confirmed one it only stops the
    /// copying to those bookies.
    async fn copy(&mut self, e: u64, lacking: &[usize], confirmed: bool) -> Result<usize> {
        let targets: Vec<usize> = lacking.iter().copied().filter(|i| self.copying[*i]).collect();
        if targets.is_empty() {
            return Ok(0);
        }
        let entry = match self.read_from_holders(e).await {
            Ok(entry) => entry,
            Err(err) if confirmed => {
                tracing::warn!(ledger = self.ledger, entry = e, error = %err, "recovery: could not read a confirmed entry to copy it");
                for i in targets {
                    self.copying[i] = false;
                }
                return Ok(0);
            }
            Err(err) => return Err(err),
        };
        let en = self.ensemble;
        let adds = targets.iter().map(|&i| {
            en.bookies[i].add_entry(AddRequest {
                ledger_id: self.ledger,
                row: entry.row,
                prev_entry_id: en.prev_in_stripe(i, e),
                lac: None,
                payload: vec![entry.payload.clone()],
                recovery: true,
            })
        });
        let results = futures::future::join_all(adds).await;
        let mut copied = 0;
        for (i, r) in targets.into_iter().zip(results) {
            match r {
                Ok(()) => {
                    self.held[i] = Some(Some(e));
                    copied += 1;
                }
                Err(err) => {
                    tracing::warn!(ledger = self.ledger, entry = e, bookie = en.bookies[i].bookie_id().get(), error = %err, "recovery add failed");
                    self.copying[i] = false;
                    self.last_err = Some(err);
                }
            }
        }
        Ok(copied)
    }

    /// Read entry `e` from a fenced bookie holding it.
    async fn read_from_holders(&mut self, e: u64) -> Result<Entry> {
        let holders: Vec<usize> = self.ensemble.write_set(e).filter(|i| self.holds(*i, e)).collect();
        for i in holders {
            match self.ensemble.bookies[i].read_entries(self.ledger, e, e, 0).await {
                Ok(v) => {
                    if let Some(entry) = v.into_iter().find(|x| x.row.entry_id == e) {
                        return Ok(entry);
                    }
                }
                Err(err) => self.last_err = Some(err),
            }
        }
        Err(self.last_err.take().unwrap_or(StorageError::NoSuchEntry {
            ledger: self.ledger,
            entry: e,
        }))
    }
}
