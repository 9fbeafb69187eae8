//! Range reads of a ledger through its ensemble.
//!
//! **Without striping** (`E = Qw`) every bookie holds every entry, so a
//! range is read from one replica: the first member of the first entry's
//! write set, falling back to the next member on an error or an empty
//! answer (a replica that missed the entries answers like one past the
//! ledger's end), and — with a speculative delay — also sent to the next
//! member when the current one has not answered within the delay.
//!
//! **With striping** (`E > Qw`) each bookie holds only its stripe (see
//! [`super::ensemble`]), so no single replica can answer a range. The read
//! asks a *cover*: a few bookies that together hold every residue
//! `e mod E` (about `E / Qw` of them, each holding `Qw` consecutive
//! residues), each for the whole range with a share of the byte budget, and
//! merges their answers in entry order. Which entries an answer settles
//! follows from the stripe-prefix invariant: a bookie returns every entry
//! of its stripe it holds from the start of the range up to where its
//! budget ran out (its *horizon*), so an entry of its stripe at or below
//! that horizon that it did not return is one it lacks — and then it lacks
//! every later entry of its stripe too (it is left out for the rest of the
//! read). The merge stops at an entry that no asked bookie can supply:
//!
//! * if a member of the entry's write set is still being asked, it waits;
//!   after the speculative delay it also asks other (not yet asked)
//!   bookies covering the residues still unanswered (a slow or hung bookie
//!   costs one delay, not a timeout);
//! * otherwise it plans a new cover from that entry without the bookies
//!   that failed or lack entries, and goes on; when no member of the
//!   entry's write set is left, the read ends there.
//!
//! Either way the entries returned are consecutive from `first`, exactly as
//! written, and at most about `max_bytes` (at least one entry when `first`
//! can be read).

use std::collections::BTreeMap;
use std::time::Duration;

use distlog_metadata::LedgerId;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use super::ensemble::Ensemble;
use super::Entry;
use crate::error::{Result, StorageError};
use crate::metrics;

/// Read entries `first..=last` of a ledger from its ensemble (see the
/// module docs for how, with and without striping). Entries come back in
/// entry-id order, consecutive from `first`; the read may stop early (byte
/// budget, or entries no reachable bookie holds). An empty answer means no
/// bookie that answered holds `first`; an error, that none could be read.
pub async fn read_entries(
    ensemble: &Ensemble,
    ledger: LedgerId,
    first: u64,
    last: u64,
    max_bytes: usize,
    speculative: Option<Duration>,
) -> Result<Vec<Entry>> {
    if first > last {
        return Ok(Vec::new());
    }
    if ensemble.is_striped() {
        StripedRead::new(ensemble, ledger, last, max_bytes, speculative)
            .run(first)
            .await
    } else {
        read_one_replica(ensemble, ledger, first, last, max_bytes, speculative).await
    }
}

/// The read without striping: one replica at a time, in write-set order,
/// hedged after `speculative`.
async fn read_one_replica(
    ensemble: &Ensemble,
    ledger: LedgerId,
    first: u64,
    last: u64,
    max_bytes: usize,
    speculative: Option<Duration>,
) -> Result<Vec<Entry>> {
    let order: Vec<usize> = ensemble.write_set(first).collect();
    let read = |i: usize| ensemble.bookies[i].read_entries(ledger, first, last, max_bytes);
    let mut pending = FuturesUnordered::new();
    pending.push(read(order[0]));
    let mut next = 1;
    let mut last_err = None;
    let mut empty = false;
    loop {
        let hedge = async {
            match speculative {
                Some(d) if next < order.len() => tokio::time::sleep(d).await,
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            done = pending.next() => match done {
                Some(Ok(entries)) if !entries.is_empty() => return Ok(entries),
                Some(answer) => {
                    // An error, or no entry at all: a replica that missed
                    // the entry (it was down while it was written) answers
                    // like one past the ledger's end. Ask the next one.
                    match answer {
                        Ok(_) => empty = true,
                        Err(e) => last_err = Some(e),
                    }
                    if next < order.len() {
                        pending.push(read(order[next]));
                        next += 1;
                    } else if pending.is_empty() {
                        break;
                    }
                }
                None => break,
            },
            _ = hedge => {
                metrics::SPECULATIVE_READS.inc();
                pending.push(read(order[next]));
                next += 1;
            }
        }
    }
    if empty {
        return Ok(Vec::new());
    }
    Err(last_err.unwrap_or(StorageError::NoSuchEntry { ledger, entry: first }))
}

/// Where one bookie stands in the current plan of a striped read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Not asked (since the last re-plan).
    Idle,
    /// Asked, no answer yet.
    Pending,
    /// Answered: it returned every entry of its stripe it holds from the
    /// plan's start up to `horizon`.
    Answered { horizon: u64 },
}

/// What the merge found at the cursor.
enum Blocked {
    /// Done: `last` reached or the byte budget spent.
    Done,
    /// A pending bookie may still supply the cursor's entry.
    Wait,
    /// No asked bookie can supply it: re-plan from the cursor.
    Replan,
}

/// One striped range read (see the module docs).
struct StripedRead<'a> {
    ensemble: &'a Ensemble,
    ledger: LedgerId,
    last: u64,
    max_bytes: usize,
    speculative: Option<Duration>,
    /// Bookies (by ensemble index) left out for the rest of the read: they
    /// failed, or lack an entry of their stripe at or after the cursor (so,
    /// by the stripe-prefix invariant, every later one as well).
    out_of_read: Vec<bool>,
    /// Some bookie answered that it lacks the first entry (as opposed to
    /// every bookie failing).
    lacking_seen: bool,
    last_err: Option<StorageError>,
    entries: Vec<Entry>,
    bytes: u64,
}

impl<'a> StripedRead<'a> {
    fn new(
        ensemble: &'a Ensemble,
        ledger: LedgerId,
        last: u64,
        max_bytes: usize,
        speculative: Option<Duration>,
    ) -> Self {
        StripedRead {
            ensemble,
            ledger,
            last,
            max_bytes,
            speculative,
            out_of_read: vec![false; ensemble.size()],
            lacking_seen: false,
            last_err: None,
            entries: Vec::new(),
            bytes: 0,
        }
    }

    async fn run(mut self, first: u64) -> Result<Vec<Entry>> {
        let mut cursor = first;
        loop {
            let before = (cursor, self.out_of_read.iter().filter(|b| **b).count());
            match self.plan_round(cursor).await {
                Some(next) if next <= self.last && !self.budget_spent() => {
                    // Each round delivers entries or leaves a bookie out;
                    // a round that did neither cannot do better again.
                    let after = (next, self.out_of_read.iter().filter(|b| **b).count());
                    if after == before {
                        break;
                    }
                    cursor = next;
                }
                _ => break,
            }
        }
        if !self.entries.is_empty() || self.lacking_seen {
            return Ok(self.entries);
        }
        Err(self.last_err.unwrap_or(StorageError::NoSuchEntry {
            ledger: self.ledger,
            entry: first,
        }))
    }

    fn budget_spent(&self) -> bool {
        !self.entries.is_empty() && self.bytes >= self.max_bytes as u64
    }

    /// One plan: ask a cover of the bookies not left out, merge answers
    /// from `start` on, hedge slow ones. Returns the entry the next plan
    /// must start at (`None` when no bookie can be asked for `start`).
    async fn plan_round(&mut self, start: u64) -> Option<u64> {
        let en = self.ensemble;
        let mut asks = vec![Ask::Idle; en.size()];
        let mut got: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut pending = FuturesUnordered::new();
        // Each asked bookie holds about Qw/E of the range; a share of the
        // budget in that proportion fills the merge to about the budget.
        let left = (self.max_bytes as u64).saturating_sub(self.bytes);
        let share = usize::try_from((left / en.size() as u64).saturating_mul(en.write_quorum as u64))
            .unwrap_or(usize::MAX);
        let (ledger, last) = (self.ledger, self.last);
        let ask = |i: usize, asks: &mut Vec<Ask>, pending: &mut FuturesUnordered<_>| {
            asks[i] = Ask::Pending;
            pending.push(
                en.bookies[i]
                    .read_entries(ledger, start, last, share)
                    .map(move |r| (i, r)),
            );
        };
        let out = &self.out_of_read;
        if en.write_set(start).all(|i| out[i]) {
            return None;
        }
        let first_plan = cover(en, start, |_| true, |i| out[i]);
        for i in first_plan {
            ask(i, &mut asks, &mut pending);
        }
        let mut cursor = start;
        loop {
            match self.merge(&mut cursor, &asks, &mut got) {
                Blocked::Done | Blocked::Replan => return Some(cursor),
                Blocked::Wait => {}
            }
            let hedge_possible = asks
                .iter()
                .enumerate()
                .any(|(i, a)| *a == Ask::Idle && !self.out_of_read[i]);
            let delay = self.speculative;
            let hedge = async move {
                match delay {
                    Some(d) if hedge_possible => tokio::time::sleep(d).await,
                    _ => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                answer = pending.next() => match answer {
                    Some((i, Ok(read))) => {
                        let mut horizon = None;
                        for e in read {
                            let id = e.row.entry_id;
                            // Only entries of the asked range and of the
                            // bookie's stripe count (a confused bookie's
                            // extra entries are ignored).
                            if id >= start && id <= last && en.in_write_set(i, id) {
                                horizon = horizon.max(Some(id));
                                if id >= cursor {
                                    got.entry(id).or_insert(e);
                                }
                            }
                        }
                        // No entry at all: it lacks its whole stripe of the range.
                        asks[i] = Ask::Answered { horizon: horizon.unwrap_or(last) };
                    }
                    Some((i, Err(e))) => {
                        tracing::debug!(ledger, bookie = en.bookies[i].bookie_id().get(), error = %e, "striped read failed on a bookie");
                        self.out_of_read[i] = true;
                        asks[i] = Ask::Idle;
                        self.last_err = Some(e);
                    }
                    // Nothing pending: merge() decides (it cannot wait).
                    None => {}
                },
                _ = hedge => {
                    // Ask bookies not yet asked for the residues no answer
                    // covers yet, leaving the slow ones pending.
                    let answered = |r: u64| {
                        asks.iter().enumerate().any(|(i, a)| {
                            matches!(a, Ask::Answered { .. }) && !self.out_of_read[i] && en.in_write_set(i, r)
                        })
                    };
                    let extra = cover(en, cursor, |r| !answered(r), |i| asks[i] != Ask::Idle || self.out_of_read[i]);
                    if !extra.is_empty() {
                        metrics::SPECULATIVE_READS.inc();
                    }
                    for i in extra {
                        ask(i, &mut asks, &mut pending);
                    }
                }
            }
        }
    }

    /// Move answered entries from `got` to the result in order from
    /// `cursor`, and say why it stopped. An answered bookie of the
    /// cursor's write set whose horizon passed the cursor lacks the
    /// cursor's entry: it is left out from here on.
    fn merge(&mut self, cursor: &mut u64, asks: &[Ask], got: &mut BTreeMap<u64, Entry>) -> Blocked {
        loop {
            if *cursor > self.last || self.budget_spent() {
                return Blocked::Done;
            }
            if let Some(entry) = got.remove(cursor) {
                let len = entry.payload.len() as u64;
                if !self.entries.is_empty() && self.bytes + len > self.max_bytes as u64 {
                    return Blocked::Done;
                }
                self.bytes += len;
                self.entries.push(entry);
                *cursor += 1;
                continue;
            }
            let mut wait = false;
            for i in self.ensemble.write_set(*cursor) {
                match asks[i] {
                    Ask::Pending if !self.out_of_read[i] => wait = true,
                    Ask::Answered { horizon } if *cursor <= horizon => {
                        self.out_of_read[i] = true;
                        // Nothing read yet: the cursor is the read's first entry.
                        if self.entries.is_empty() {
                            self.lacking_seen = true;
                        }
                    }
                    _ => {}
                }
            }
            return if wait { Blocked::Wait } else { Blocked::Replan };
        }
    }
}

/// Choose bookies (ensemble indexes) that together hold every residue
/// `need` asks for, skipping `skip`: going through the residues from
/// `from`'s on, each residue not yet held by a chosen bookie gets the
/// member of its write set that holds the most residues ahead of it (the
/// last member not skipped). A residue whose whole write set is skipped
/// stays uncovered.
fn cover(
    ensemble: &Ensemble,
    from: u64,
    need: impl Fn(u64) -> bool,
    skip: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let e = ensemble.size() as u64;
    let qw = ensemble.write_quorum as u64;
    let mut held = vec![false; ensemble.size()];
    let mut chosen = Vec::new();
    for j in 0..e {
        let r = (from % e + j) % e;
        if held[r as usize] || !need(r) {
            continue;
        }
        let pick = (0..qw)
            .rev()
            .map(|t| ((r + t) % e) as usize)
            .find(|b| !skip(*b) && !chosen.contains(b));
        if let Some(b) = pick {
            chosen.push(b);
            for (residue, h) in held.iter_mut().enumerate() {
                if ensemble.in_write_set(b, residue as u64) {
                    *h = true;
                }
            }
        }
    }
    chosen
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
