//! Unit tests of range reads with in-memory replicas whose timing and
//! failures are scripted (paused time). Real bookies are exercised by
//! `storage/tests/striped_ledger.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use distlog_metadata::{LedgerId, NodeId};

use super::*;
use crate::ledger::{AddFuture, AddRequest, BookieClient, IndexRow, LedgerInfo};

/// A test double: holds the entries of its stripe among `0..entries`
/// (payload = the entry id, tagged with the replica id in `first_seq`),
/// answers reads after `delay`, or fails every read.
struct Replica {
    id: NodeId,
    delay: Duration,
    /// Entry ids it holds, ascending.
    held: Vec<u64>,
    fails: bool,
}

#[async_trait]
impl BookieClient for Replica {
    fn bookie_id(&self) -> NodeId {
        self.id
    }
    fn add_entry(&self, _req: AddRequest) -> AddFuture {
        Box::pin(async { Err(StorageError::NoSuchLedger(0)) })
    }
    async fn read_entries(&self, l: LedgerId, first: u64, last: u64, max: usize) -> Result<Vec<Entry>> {
        tokio::time::sleep(self.delay).await;
        if self.fails {
            return Err(StorageError::io(
                format!("bookie {}", self.id),
                std::io::Error::other("down"),
            ));
        }
        let _ = l;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for &e in self.held.iter().filter(|e| **e >= first && **e <= last) {
            if !out.is_empty() && bytes + 8 > max {
                break;
            }
            bytes += 8;
            out.push(Entry {
                row: IndexRow {
                    entry_id: e,
                    first_seq: u64::from(self.id),
                    record_count: 1,
                    txid: 0,
                    len: 8,
                },
                payload: Bytes::copy_from_slice(&e.to_be_bytes()),
            });
        }
        Ok(out)
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

/// Replicas with these delays (ms), holding every entry of `0..100`.
fn ensemble(delays_ms: &[u64]) -> Ensemble {
    let n = delays_ms.len();
    striped(n, n, delays_ms, &[], 100)
}

/// An E/Qw ensemble over `0..entries`; `failing` replicas fail every read.
fn striped(e: usize, qw: usize, delays_ms: &[u64], failing: &[usize], entries: u64) -> Ensemble {
    let shape = |bookies: Vec<Arc<dyn BookieClient>>| Ensemble::new(bookies, qw, 1).expect("valid ensemble");
    let probe = shape(
        (0..e)
            .map(|i| {
                Arc::new(Replica {
                    id: NodeId::new(i as u64 + 1),
                    delay: Duration::ZERO,
                    held: Vec::new(),
                    fails: false,
                }) as Arc<dyn BookieClient>
            })
            .collect(),
    );
    shape(
        (0..e)
            .map(|i| {
                Arc::new(Replica {
                    id: NodeId::new(i as u64 + 1),
                    delay: Duration::from_millis(delays_ms[i]),
                    held: (0..entries).filter(|x| probe.in_write_set(i, *x)).collect(),
                    fails: failing.contains(&i),
                }) as Arc<dyn BookieClient>
            })
            .collect(),
    )
}

fn ids(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.row.entry_id).collect()
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

#[test]
fn a_cover_holds_every_residue_with_few_bookies() {
    let e = striped(5, 2, &[0; 5], &[], 0);
    // Bookie b holds residues b - 1 and b. From entry 0: residues {0, 1} on
    // bookie 1, {2, 3} on bookie 3, {4, 0} on bookie 0.
    assert_eq!(cover(&e, 0, |_| true, |_| false), vec![1, 3, 0]);
    // Without bookie 1: {4, 0} on bookie 0, {1, 2} on bookie 2, {3, 4} on bookie 4.
    let c = cover(&e, 0, |_| true, |i| i == 1);
    assert_eq!(c, vec![0, 2, 4]);
    // From entry 3: {3, 4} on bookie 4, {0, 1} on bookie 1, {2, 3} on bookie 3.
    assert_eq!(cover(&e, 3, |_| true, |_| false), vec![4, 1, 3]);
    // Both holders of residue 1 skipped: it stays uncovered, the rest is covered.
    let c = cover(&e, 0, |_| true, |i| i == 1 || i == 2);
    assert!(!c.iter().any(|b| e.in_write_set(*b, 1)), "{c:?}");
    for r in [0u64, 2, 3, 4] {
        assert!(c.iter().any(|b| e.in_write_set(*b, r)), "residue {r}: {c:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn striped_reads_merge_every_entry_in_order() {
    for (n, qw) in [(3usize, 2usize), (4, 2), (5, 3), (5, 2)] {
        let e = striped(n, qw, &vec![1; n], &[], 50);
        let got = read_entries(&e, 7, 0, 49, usize::MAX, None).await.expect("read");
        assert_eq!(ids(&got), (0..50).collect::<Vec<_>>(), "{n}/{qw}");
        for x in &got {
            assert_eq!(x.payload.as_ref(), &x.row.entry_id.to_be_bytes()[..]);
        }
        // A small budget returns a consecutive prefix from `first`, at least one entry.
        let got = read_entries(&e, 7, 13, 49, 0, None).await.expect("read");
        assert_eq!(ids(&got), vec![13], "{n}/{qw}");
        let got = read_entries(&e, 7, 13, 49, 80, None).await.expect("read");
        assert_eq!(
            ids(&got),
            (13..23).collect::<Vec<_>>(),
            "{n}/{qw}: 10 entries of 8 bytes"
        );
        // Past the end: nothing.
        let got = read_entries(&e, 7, 50, 60, usize::MAX, None).await.expect("read");
        assert!(got.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn striped_reads_fall_back_and_hedge() {
    // 5/3: bookie 2 (index 1) fails every read; the others hold its residues.
    let e = striped(5, 3, &[1; 5], &[1], 40);
    let got = read_entries(&e, 7, 0, 39, usize::MAX, None).await.expect("read");
    assert_eq!(ids(&got), (0..40).collect::<Vec<_>>());
    assert!(
        got.iter().all(|x| x.row.first_seq != 2),
        "nothing from the failing bookie"
    );
    // A hung bookie: the read finishes one speculative delay later, not after it.
    let e = striped(3, 2, &[1, 60_000, 1], &[], 30);
    let t0 = tokio::time::Instant::now();
    let before = metrics::SPECULATIVE_READS.get();
    let got = read_entries(&e, 7, 0, 29, usize::MAX, Some(Duration::from_millis(50)))
        .await
        .expect("read");
    assert_eq!(ids(&got), (0..30).collect::<Vec<_>>());
    assert!(tokio::time::Instant::now() - t0 < Duration::from_secs(1));
    assert!(metrics::SPECULATIVE_READS.get() > before);
    // Every holder of residue 1 (bookies 2 and 3 of 3/2) failing: the read stops before entry 1.
    let e = striped(3, 2, &[1; 3], &[1, 2], 30);
    let got = read_entries(&e, 7, 0, 29, usize::MAX, None).await.expect("read");
    assert_eq!(ids(&got), vec![0]);
    match read_entries(&e, 7, 1, 29, usize::MAX, None).await {
        Err(StorageError::Io { .. }) => {}
        other => panic!("expected the bookies' error, got {other:?}"),
    }
}
