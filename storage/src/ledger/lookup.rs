//! Lookups over a ledger's ensemble: which entry holds a sequence id, the
//! first entry with a txid at or above a value, and what each bookie holds.
//!
//! Each bookie answers from the entries *it* holds — with striping (see
//! [`super::ensemble`]) only its stripe, and a bookie that missed the
//! ledger's tail only a prefix — so one bookie's answer is not the
//! ledger's. The bookies are asked concurrently and their answers combined:
//!
//! * by sequence id, the answer is the entry that *covers* the sequence id
//!   (`first_seq <= seq < first_seq + record_count`): exactly one entry of
//!   the ledger does, and every bookie holding it returns it, so the first
//!   covering answer is final; otherwise the latest entry any bookie
//!   returned (the ledger's last entry starting at or before `seq`);
//! * by txid, the answer is the *smallest* entry any bookie returned —
//!   each bookie returns the first entry of its own with `txid >= T`, and
//!   the ledger's first such entry is returned by every bookie holding it.
//!   When not every bookie answered, that minimum is checked against the
//!   entry just before it (txids never decrease along a ledger, so the
//!   answer is exact once the entry before it is known to be below `T`).

use std::time::Duration;

use distlog_metadata::{LedgerId, NodeId};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use super::ensemble::Ensemble;
use super::{IndexRow, LedgerInfo};
use crate::error::{Result, StorageError};

/// Whether `row` holds sequence id `seq`.
fn covers(row: &IndexRow, seq: u64) -> bool {
    row.first_seq <= seq && seq - row.first_seq < u64::from(row.record_count)
}

/// The entry of the ledger holding sequence id `seq` (see the module docs):
/// the covering entry as soon as one bookie returns it; otherwise, once
/// every bookie answered or failed, the latest entry returned (an entry
/// before `seq`, or `None`). Fails only when no bookie answered.
pub async fn entry_for_seq(ensemble: &Ensemble, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>> {
    let mut asks: FuturesUnordered<_> = ensemble
        .bookies
        .iter()
        .map(|b| b.entry_for_seq(ledger, seq))
        .collect();
    let mut last_err = None;
    let mut answered = false;
    let mut latest: Option<IndexRow> = None;
    while let Some(answer) = asks.next().await {
        match answer {
            Ok(Some(row)) if covers(&row, seq) => return Ok(Some(row)),
            Ok(row) => {
                answered = true;
                // A bookie must not claim an entry starting after `seq`.
                if let Some(r) = row.filter(|r| r.first_seq <= seq) {
                    if latest.is_none_or(|l| r.entry_id > l.entry_id) {
                        latest = Some(r);
                    }
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    if answered {
        return Ok(latest);
    }
    Err(last_err.unwrap_or(StorageError::NoSuchLedger(ledger)))
}

/// The first entry of the ledger up to entry `last` (the ledger's
/// committed end) with txid `>= txid` (see the module docs). Entries past
/// `last` — a recovered ledger may leave never-confirmed ones on some
/// bookies — count as absent: a bookie whose first such entry lies past it
/// has none within the ledger. Exact when every bookie answers. When some failed, the smallest
/// answer `m` is kept only once the entry before it is known to have a
/// smaller txid — because a bookie that holds entry `m - 1` answered (it
/// would have returned `m - 1` otherwise), or by looking entry `m - 1` up
/// by sequence id; a `None` is kept only when the bookies that answered
/// include, in every write set, one that must hold each committed entry.
/// Fails (retriably) when the answer cannot be made exact.
pub async fn entry_for_txid(
    ensemble: &Ensemble,
    ledger: LedgerId,
    txid: u64,
    last: u64,
) -> Result<Option<IndexRow>> {
    let mut asks: FuturesUnordered<_> = ensemble
        .bookies
        .iter()
        .enumerate()
        .map(|(i, b)| b.entry_for_txid(ledger, txid).map(move |r| (i, r)))
        .collect();
    let mut last_err = None;
    // Per bookie: None = failed, Some(answer) = answered.
    let mut answers: Vec<Option<Option<IndexRow>>> = vec![None; ensemble.size()];
    while let Some((i, answer)) = asks.next().await {
        match answer {
            // A bookie must not claim an entry below `txid`.
            Ok(row) => answers[i] = Some(row.filter(|r| r.txid >= txid && r.entry_id <= last)),
            Err(e) => last_err = Some(e),
        }
    }
    let all_answered = answers.iter().all(Option::is_some);
    let smallest = answers
        .iter()
        .flatten()
        .flatten()
        .min_by_key(|r| r.entry_id)
        .copied();
    let Some(mut candidate) = smallest else {
        let enough = ensemble.covers_every_write_set(ensemble.coverage_quorum(), |i| answers[i].is_some());
        if all_answered || enough {
            return Ok(None);
        }
        return Err(cannot_decide(ledger, txid, last_err));
    };
    if all_answered {
        return Ok(Some(candidate));
    }
    loop {
        let Some(before) = candidate.entry_id.checked_sub(1) else {
            return Ok(Some(candidate));
        };
        // A bookie that returned an entry after `before` and whose stripe
        // holds `before` holds it too (stripe prefixes): its txid is < T.
        let vouched = answers.iter().enumerate().any(|(i, a)| {
            a.flatten().is_some_and(|r| r.entry_id > before) && ensemble.in_write_set(i, before)
        });
        if vouched {
            return Ok(Some(candidate));
        }
        let prev_seq = candidate
            .first_seq
            .checked_sub(1)
            .ok_or_else(|| cannot_decide(ledger, txid, None))?;
        match entry_for_seq(ensemble, ledger, prev_seq).await? {
            Some(row) if row.entry_id == before && covers(&row, prev_seq) => {
                if row.txid < txid {
                    return Ok(Some(candidate));
                }
                candidate = row;
            }
            _ => return Err(cannot_decide(ledger, txid, last_err)),
        }
    }
}

/// The retriable error of a txid lookup whose answer could not be made
/// exact with the bookies that answered.
fn cannot_decide(ledger: LedgerId, txid: u64, cause: Option<StorageError>) -> StorageError {
    StorageError::NotEnoughBookies(format!(
        "ledger {ledger}: too few bookies answered to find the first entry with txid >= {txid}{}",
        cause.map_or(String::new(), |e| format!(" (last error: {e})"))
    ))
}

/// What each bookie of an ensemble holds of `ledger`, in ensemble order,
/// asked concurrently; a bookie that does not answer within `wait` counts
/// as unreachable (its entry is the error).
pub async fn ledger_infos(
    ensemble: &Ensemble,
    ledger: LedgerId,
    wait: Duration,
) -> Vec<(NodeId, Result<LedgerInfo>)> {
    let asks = ensemble.bookies.iter().map(|b| async move {
        let id = b.bookie_id();
        let answer = match tokio::time::timeout(wait, b.ledger_info(ledger)).await {
            Ok(r) => r,
            Err(_) => Err(StorageError::io(
                format!("bookie {id}"),
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no ledger info within {wait:?}"),
                ),
            )),
        };
        (id, answer)
    });
    futures::future::join_all(asks).await
}
