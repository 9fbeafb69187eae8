//! Ledger handles: writing one ledger through its ensemble with write and
//! ack quorums, reading it back, and recovering it after its writer died.
//!
//! Placement is striped as in BookKeeper: entry `e` goes to the `Qw`
//! bookies starting at ensemble index `e mod E`; it is confirmed once `Qa`
//! of them have made it durable. On a single node the ensemble is the
//! local bookie and E = Qw = Qa = 1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use distlog_metadata::LedgerId;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use parking_lot::Mutex;

use super::{AddFuture, AddRequest, BookieClient, Entry, IndexRow, LedgerInfo};
use crate::error::{Result, StorageError};
use crate::metrics;

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

/// How a bookie of the ensemble failed an add (fencing is not a bookie
/// fault: it means the writer lost the ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookieFault {
    /// The bookie could not be reached, timed out, broke the protocol or
    /// failed on its disk: a new ensemble should avoid it.
    Unreachable,
    /// The bookie answered but is missing earlier entries of this ledger
    /// (it was down and came back): it can no longer take this ledger's
    /// adds, but it is healthy enough for a new ledger.
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
type Faults = Arc<Mutex<BTreeMap<u32, BookieFault>>>;

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
    pub fn ensemble_ids(&self) -> Vec<u32> {
        self.ensemble.ids()
    }

    /// The bookies that failed an add of this ledger so far (other than by
    /// fencing), with the latest fault of each.
    pub fn faults(&self) -> BTreeMap<u32, BookieFault> {
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
        let record = move |id: u32, e: &StorageError| {
            if let Some(f) = BookieFault::of(e) {
                tracing::debug!(bookie = id, ledger, entry = entry_id, error = %e, "bookie failed an add");
                faults.lock().insert(id, f);
            }
        };
        let fut: AddFuture = Box::pin(async move {
            let (mut acked, mut failed) = (0usize, 0usize);
            let mut errors: Vec<(u32, StorageError)> = Vec::new();
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
    errors: Vec<(u32, StorageError)>,
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

/// Read entries `first..=last` of a ledger from its ensemble: from the first
/// bookie of the first entry's write set, falling back to the next one on
/// error. With `speculative` set, a read that has not answered within that
/// delay is also sent to the next replica, and the first answer wins (a
/// slow or hung bookie costs one delay, not a timeout).
pub async fn read_entries(
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

/// Ask the ensemble which entry holds sequence id `seq`: the first answer
/// whose entry covers `seq` wins. A replica that missed the tail of the
/// ledger (it was down for a while) answers with an earlier entry, so such
/// an answer is only returned when no replica has better.
pub async fn entry_for_seq(ensemble: &Ensemble, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>> {
    let mut last_err = None;
    let mut partial: Option<Option<IndexRow>> = None;
    for b in &ensemble.bookies {
        match b.entry_for_seq(ledger, seq).await {
            Ok(Some(r)) if r.first_seq + u64::from(r.record_count) > seq => return Ok(Some(r)),
            Ok(r) => {
                if partial.flatten().is_none() {
                    partial = Some(r);
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    match partial {
        Some(r) => Ok(r),
        None => Err(last_err.unwrap_or(StorageError::NoSuchLedger(ledger))),
    }
}

/// Ask the ensemble for the first entry with txid `>= txid`: the first
/// replica that has one answers (a replica that missed the ledger's tail
/// may have none).
pub async fn entry_for_txid(ensemble: &Ensemble, ledger: LedgerId, txid: u64) -> Result<Option<IndexRow>> {
    let mut last_err = None;
    let mut none = false;
    for b in &ensemble.bookies {
        match b.entry_for_txid(ledger, txid).await {
            Ok(Some(r)) => return Ok(Some(r)),
            Ok(None) => none = true,
            Err(e) => last_err = Some(e),
        }
    }
    if none {
        return Ok(None);
    }
    Err(last_err.unwrap_or(StorageError::NoSuchLedger(ledger)))
}

/// What each bookie of an ensemble holds of `ledger`, in ensemble order,
/// asked concurrently; a bookie that does not answer within `wait` counts
/// as unreachable (its entry is the error).
pub async fn ledger_infos(
    ensemble: &Ensemble,
    ledger: LedgerId,
    wait: Duration,
) -> Vec<(u32, Result<LedgerInfo>)> {
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

/// Ledger recovery (the first half of a writer failover): fence the ledger
/// on the ensemble so the old writer can no longer reach `Qa`, find the
/// last entry any fenced bookie holds, and re-replicate every entry past
/// the point where the fenced copies diverge, so that each entry up to the
/// recovered end is durable on at least `Qa` bookies before the segment is
/// sealed there.
///
/// Fencing must succeed on more than `Qw - Qa` bookies of every write set;
/// with E = Qw that is `E - Qa + 1` bookies. Entries are copied with
/// recovery adds (accepted by fenced ledgers). An entry that cannot reach
/// `Qa` copies fails the recovery: the stream stays closed rather than
/// sealing a segment whose tail is under-replicated. Recovery is
/// idempotent, so a later attempt picks up where this one stopped.
pub async fn recover(ensemble: &Ensemble, ledger: LedgerId) -> Result<Option<IndexRow>> {
    let needed = ensemble.bookies.len() - ensemble.ack_quorum + 1;
    // Per bookie: None when it could not be fenced, else the next entry id it lacks.
    let mut next: Vec<Option<u64>> = Vec::with_capacity(ensemble.bookies.len());
    let mut last: Option<IndexRow> = None;
    let mut last_err = None;
    for b in &ensemble.bookies {
        match b.fence(ledger).await {
            Ok(row) => {
                next.push(Some(row.map_or(0, |r| r.entry_id + 1)));
                if let Some(r) = row {
                    if last.is_none_or(|l| r.entry_id > l.entry_id) {
                        last = Some(r);
                    }
                }
            }
            Err(e) => {
                next.push(None);
                last_err = Some(e);
            }
        }
    }
    let fenced = next.iter().filter(|n| n.is_some()).count();
    if fenced < needed {
        // Retriable: the stream comes back once enough bookies do.
        return Err(StorageError::NotEnoughBookies(format!(
            "fenced ledger {ledger} on {fenced} bookies, need {needed}{}",
            last_err.map_or(String::new(), |e| format!(" (last error: {e})"))
        )));
    }
    let Some(end) = last else { return Ok(None) };
    let from = next.iter().flatten().copied().min().unwrap_or(0);
    for entry_id in from..=end.entry_id {
        let holders: Vec<usize> = (0..next.len())
            .filter(|i| next[*i].is_some_and(|n| n > entry_id))
            .collect();
        let mut entry = None;
        for i in &holders {
            match ensemble.bookies[*i]
                .read_entries(ledger, entry_id, entry_id, 0)
                .await
            {
                Ok(mut v) if !v.is_empty() => {
                    entry = Some(v.swap_remove(0));
                    break;
                }
                Ok(_) => {}
                Err(e) => last_err = Some(e),
            }
        }
        let Some(entry) = entry else {
            return Err(last_err.unwrap_or(StorageError::NoSuchEntry {
                ledger,
                entry: entry_id,
            }));
        };
        let mut copies = 0usize;
        for i in ensemble.write_set(entry_id) {
            match next[i] {
                Some(n) if n > entry_id => copies += 1,
                Some(n) if n == entry_id => {
                    let add = ensemble.bookies[i].add_entry(AddRequest {
                        ledger_id: ledger,
                        row: entry.row,
                        lac: None,
                        payload: vec![entry.payload.clone()],
                        recovery: true,
                    });
                    match add.await {
                        Ok(()) => {
                            copies += 1;
                            next[i] = Some(entry_id + 1);
                        }
                        Err(e) => {
                            next[i] = None;
                            last_err = Some(e);
                        }
                    }
                }
                _ => {}
            }
        }
        if copies < ensemble.ack_quorum {
            return Err(StorageError::NotEnoughBookies(format!(
                "ledger {ledger}: recovered entry {entry_id} reached {copies} bookies, the ack quorum is {}",
                ensemble.ack_quorum
            )));
        }
    }
    Ok(Some(end))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use async_trait::async_trait;

    use super::*;

    /// A test double: answers reads after `delay` with one entry tagged by its id.
    struct Replica {
        id: u32,
        delay: Duration,
    }

    #[async_trait]
    impl BookieClient for Replica {
        fn bookie_id(&self) -> u32 {
            self.id
        }
        fn add_entry(&self, _req: AddRequest) -> AddFuture {
            Box::pin(async { Err(StorageError::NoSuchLedger(0)) })
        }
        async fn read_entries(
            &self,
            _l: LedgerId,
            first: u64,
            _last: u64,
            _max: usize,
        ) -> Result<Vec<Entry>> {
            tokio::time::sleep(self.delay).await;
            Ok(vec![Entry {
                row: IndexRow {
                    entry_id: first,
                    first_seq: u64::from(self.id),
                    record_count: 1,
                    txid: 0,
                    len: 0,
                },
                payload: Bytes::new(),
            }])
        }
        async fn entry_for_seq(&self, l: LedgerId, _s: u64) -> Result<Option<IndexRow>> {
            Err(StorageError::NoSuchLedger(l))
        }
        async fn entry_for_txid(&self, l: LedgerId, _t: u64) -> Result<Option<IndexRow>> {
            Err(StorageError::NoSuchLedger(l))
        }
        async fn last_entry(&self, l: LedgerId) -> Result<Option<IndexRow>> {
            Err(StorageError::NoSuchLedger(l))
        }
        async fn fence(&self, l: LedgerId) -> Result<Option<IndexRow>> {
            Err(StorageError::NoSuchLedger(l))
        }
        async fn delete(&self, l: LedgerId) -> Result<()> {
            Err(StorageError::NoSuchLedger(l))
        }
        async fn read_lac(&self, l: LedgerId, _k: Option<u64>, _w: Duration) -> Result<Option<u64>> {
            Err(StorageError::NoSuchLedger(l))
        }
        async fn ledger_info(&self, l: LedgerId) -> Result<LedgerInfo> {
            Err(StorageError::NoSuchLedger(l))
        }
    }

    fn ensemble(delays_ms: &[u64]) -> Ensemble {
        let bookies: Vec<Arc<dyn BookieClient>> = delays_ms
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Arc::new(Replica {
                    id: i as u32 + 1,
                    delay: Duration::from_millis(*d),
                }) as Arc<dyn BookieClient>
            })
            .collect();
        let n = bookies.len();
        Ensemble::new(bookies, n, n).expect("valid ensemble")
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_replica_is_overtaken_after_the_speculative_delay() {
        // Entry 0's write set starts at bookie 1, which takes 5 s; bookie 2 answers in 10 ms.
        let e = ensemble(&[5_000, 10, 10]);
        let started = Instant::now();
        let t0 = tokio::time::Instant::now();
        let got = read_entries(&e, 7, 0, 0, 0, Some(Duration::from_millis(50)))
            .await
            .expect("read");
        assert_eq!(got[0].row.first_seq, 2, "answered by the second replica");
        assert_eq!(tokio::time::Instant::now() - t0, Duration::from_millis(60));
        assert!(started.elapsed() < Duration::from_secs(5));
        // Without speculation the first replica's answer is awaited.
        let t0 = tokio::time::Instant::now();
        let got = read_entries(&e, 7, 0, 0, 0, None).await.expect("read");
        assert_eq!(got[0].row.first_seq, 1);
        assert_eq!(tokio::time::Instant::now() - t0, Duration::from_millis(5_000));
        // A fast first replica is never hedged.
        let e = ensemble(&[10, 10, 10]);
        let before = metrics::SPECULATIVE_READS.get();
        let got = read_entries(&e, 7, 0, 0, 0, Some(Duration::from_millis(50)))
            .await
            .expect("read");
        assert_eq!(got[0].row.first_seq, 1);
        assert_eq!(metrics::SPECULATIVE_READS.get(), before);
    }
}
