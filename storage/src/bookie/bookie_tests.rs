//! Tests of the bookie through the [`BookieClient`] interface, including
//! crash recovery from torn, corrupt and garbage ledger files.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use distlog_metadata::{LedgerId, NodeId};

use super::format::HEADER_LEN;
use super::ledger_file::{fence_path, log_path};
use super::{Bookie, BookieConfig, LocalBookie};
use crate::error::StorageError;
use crate::ledger::{AddRequest, BookieClient, Entry, IndexRow};

/// Bookies holding one stripe of a striped ledger.
#[path = "bookie_stripe_tests.rs"]
mod stripe;

fn open(dir: &Path) -> LocalBookie {
    LocalBookie(
        Bookie::open(BookieConfig {
            dir: dir.to_path_buf(),
            bookie_id: NodeId::new(7),
        })
        .expect("bookie opens"),
    )
}

fn file_of(dir: &Path, id: LedgerId) -> PathBuf {
    log_path(&dir.join("ledgers"), id)
}

fn row(entry_id: u64, first_seq: u64, txid: u64, len: usize) -> IndexRow {
    IndexRow {
        entry_id,
        first_seq,
        record_count: 10,
        txid,
        len: u32::try_from(len).expect("test payload fits u32"),
    }
}

/// An add of entry `entry_id` whose payload is `chunks`; first_seq is
/// `100 + 10 * entry_id` and txid `entry_id`; it follows entry
/// `entry_id - 1` (a bookie holding every entry).
fn add(ledger: LedgerId, entry_id: u64, chunks: &[&[u8]]) -> AddRequest {
    after(ledger, entry_id, entry_id.checked_sub(1), chunks)
}

/// Like [`add`], following `prev` (a striped bookie's previous entry).
fn after(ledger: LedgerId, entry_id: u64, prev: Option<u64>, chunks: &[&[u8]]) -> AddRequest {
    let len = chunks.iter().map(|c| c.len()).sum();
    AddRequest {
        ledger_id: ledger,
        row: row(
            entry_id,
            entry_id.wrapping_mul(10).wrapping_add(100),
            entry_id,
            len,
        ),
        prev_entry_id: prev,
        lac: entry_id.checked_sub(1),
        recovery: false,
        payload: chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
    }
}

/// Payload of entry `i` used by the recovery tests: 100 bytes.
fn body(i: u64) -> Vec<u8> {
    (0..100u64).map(|b| (b + i * 7) as u8).collect()
}

async fn add_n(b: &LocalBookie, ledger: LedgerId, n: u64) {
    for i in 0..n {
        b.add_entry(add(ledger, i, &[&body(i)]))
            .await
            .expect("add succeeds");
    }
}

async fn read_all(b: &LocalBookie, ledger: LedgerId) -> Vec<Entry> {
    b.read_entries(ledger, 0, u64::MAX, usize::MAX)
        .await
        .expect("read succeeds")
}

fn assert_bodies(entries: &[Entry], n: u64) {
    assert_eq!(entries.len() as u64, n);
    for (i, e) in entries.iter().enumerate() {
        let i = i as u64;
        assert_eq!(e.row, row(i, 100 + 10 * i, i, 100));
        assert_eq!(e.payload, Bytes::from(body(i)));
    }
}

/// Bytes one recovery-test entry takes on disk.
const REC: u64 = HEADER_LEN as u64 + 100;

#[tokio::test]
async fn add_read_round_trip_with_multi_chunk_payloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    assert_eq!(b.bookie_id(), NodeId::new(7));
    b.add_entry(add(1, 0, &[b"abc", b"", b"defgh"]))
        .await
        .expect("add 0");
    b.add_entry(add(1, 1, &[b"0123456789"])).await.expect("add 1");
    b.add_entry(add(1, 2, &[b"x", b"y", b"z", b"w"]))
        .await
        .expect("add 2");

    let all = b.read_entries(1, 0, 2, usize::MAX).await.expect("read");
    let payloads: Vec<&[u8]> = all.iter().map(|e| e.payload.as_ref()).collect();
    assert_eq!(payloads, vec![&b"abcdefgh"[..], b"0123456789", b"xyzw"]);
    assert_eq!(all[1].row, row(1, 110, 1, 10));

    // max_bytes: stops before exceeding, but always returns the first entry.
    let ids = |v: Vec<Entry>| v.iter().map(|e| e.row.entry_id).collect::<Vec<_>>();
    assert_eq!(ids(b.read_entries(1, 0, 2, 1).await.expect("read")), vec![0]);
    assert_eq!(ids(b.read_entries(1, 0, 2, 18).await.expect("read")), vec![0, 1]);
    assert_eq!(
        ids(b.read_entries(1, 1, 99, usize::MAX).await.expect("read")),
        vec![1, 2]
    );
    assert_eq!(
        ids(b.read_entries(1, 3, 9, usize::MAX).await.expect("read")),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(b.read_entries(1, 2, 1, usize::MAX).await.expect("read")),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(b.read_entries(99, 0, 9, usize::MAX).await.expect("read")),
        Vec::<u64>::new()
    );
    assert_eq!(b.last_entry(1).await.expect("last"), Some(row(2, 120, 2, 4)));
    assert_eq!(b.last_entry(99).await.expect("last"), None);
    assert_eq!(b.0.ledgers(), vec![1]);
    assert_eq!(b.0.stats().entries_added, 3);
    assert_eq!(b.0.stats().bytes_written, 22);
}

#[tokio::test]
async fn adds_must_follow_the_last_entry_and_be_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    match b.add_entry(add(5, 1, &[b"a"])).await {
        Err(StorageError::OutOfOrder {
            ledger: 5,
            last: None,
            prev: Some(0),
        }) => {}
        other => panic!("expected OutOfOrder(last None, prev 0), got {other:?}"),
    }
    assert_eq!(b.0.ledgers(), Vec::<LedgerId>::new());
    b.add_entry(add(5, 0, &[b"a"])).await.expect("add 0");
    // A repeat of entry 0 (it would follow no entry, but 0 is the last).
    match b.add_entry(add(5, 0, &[b"a"])).await {
        Err(StorageError::OutOfOrder {
            ledger: 5,
            last: Some(0),
            prev: None,
        }) => {}
        other => panic!("expected OutOfOrder(last 0, prev None), got {other:?}"),
    }
    match b.add_entry(add(5, 2, &[b"a"])).await {
        Err(StorageError::OutOfOrder {
            ledger: 5,
            last: Some(0),
            prev: Some(1),
        }) => {}
        other => panic!("expected OutOfOrder(last 0, prev 1), got {other:?}"),
    }
    let mut bad = add(5, 1, &[b"abc"]);
    bad.row.len = 4;
    assert!(matches!(b.add_entry(bad).await, Err(StorageError::Io { .. })));
    // Impossible ordering fields are refused as invalid input.
    for (entry, prev) in [(1, Some(1)), (1, Some(7)), (u64::MAX, Some(0))] {
        match b.add_entry(after(5, entry, prev, &[b"x"])).await {
            Err(StorageError::Io { source, .. }) => {
                assert_eq!(
                    source.kind(),
                    std::io::ErrorKind::InvalidInput,
                    "{entry} after {prev:?}"
                );
            }
            other => panic!("{entry} after {prev:?}: expected invalid input, got {other:?}"),
        }
    }
    b.add_entry(add(5, 1, &[b"b"]))
        .await
        .expect("add 1 after rejected ones");
    assert_eq!(b.last_entry(5).await.expect("last").map(|r| r.entry_id), Some(1));
}

#[tokio::test]
async fn lookups_by_seq_and_txid_are_lower_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    // first_seq 100, 110, 120 (10 records each); txids 5, 5, 9.
    for (i, txid) in [5u64, 5, 9].into_iter().enumerate() {
        let mut r = add(3, i as u64, &[b"p"]);
        r.row.txid = txid;
        b.add_entry(r).await.expect("add");
    }
    let mut b = Some(b);
    for reopen in [false, true] {
        if reopen {
            drop(b.take());
            b = Some(open(dir.path()));
        }
        let b = b.clone().expect("bookie is open");
        let seq = |s| {
            let b = b.clone();
            async move { b.entry_for_seq(3, s).await.expect("lookup").map(|r| r.entry_id) }
        };
        assert_eq!(seq(0).await, None, "before first");
        assert_eq!(seq(99).await, None, "just before first");
        assert_eq!(seq(100).await, Some(0), "exactly first");
        assert_eq!(seq(105).await, Some(0), "inside first");
        assert_eq!(seq(110).await, Some(1), "exactly second");
        assert_eq!(seq(119).await, Some(1), "between");
        assert_eq!(seq(120).await, Some(2), "exactly last");
        assert_eq!(seq(1_000_000).await, Some(2), "after last");
        let tx = |t| {
            let b = b.clone();
            async move { b.entry_for_txid(3, t).await.expect("lookup").map(|r| r.entry_id) }
        };
        assert_eq!(tx(0).await, Some(0), "before first");
        assert_eq!(tx(5).await, Some(0), "exactly first (duplicates)");
        assert_eq!(tx(6).await, Some(2), "between");
        assert_eq!(tx(9).await, Some(2), "exactly last");
        assert_eq!(tx(10).await, None, "after last");
        assert_eq!(
            b.entry_for_seq(4, 100).await.expect("lookup"),
            None,
            "unknown ledger"
        );
        assert_eq!(
            b.entry_for_txid(4, 0).await.expect("lookup"),
            None,
            "unknown ledger"
        );
        let full = b.entry_for_seq(3, 111).await.expect("lookup");
        assert_eq!(full, Some(row(1, 110, 5, 1)));
    }
}

#[tokio::test]
async fn fence_blocks_adds_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    add_n(&b, 1, 2).await;
    let last = Some(row(1, 110, 1, 100));
    assert_eq!(b.fence(1).await.expect("fence"), last);
    assert!(fence_path(&dir.path().join("ledgers"), 1).exists());
    assert!(matches!(
        b.add_entry(add(1, 2, &[b"x"])).await,
        Err(StorageError::Fenced(1))
    ));
    assert_eq!(b.fence(1).await.expect("fence again"), last);
    // Fencing an unknown ledger creates it empty and fenced.
    assert_eq!(b.fence(2).await.expect("fence unknown"), None);
    assert!(matches!(
        b.add_entry(add(2, 0, &[b"x"])).await,
        Err(StorageError::Fenced(2))
    ));
    assert_eq!(b.0.ledgers(), vec![1, 2]);
    drop(b);

    let b = open(dir.path());
    assert_eq!(b.0.ledgers(), vec![1, 2]);
    assert!(matches!(
        b.add_entry(add(1, 2, &[b"x"])).await,
        Err(StorageError::Fenced(1))
    ));
    assert!(matches!(
        b.add_entry(add(2, 0, &[b"x"])).await,
        Err(StorageError::Fenced(2))
    ));
    assert_eq!(b.last_entry(1).await.expect("last"), last);
    assert_bodies(&read_all(&b, 1).await, 2);
}

#[tokio::test]
async fn delete_removes_the_ledger_and_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    add_n(&b, 4, 3).await;
    b.fence(4).await.expect("fence");
    add_n(&b, 5, 1).await;
    b.delete(4).await.expect("delete");
    assert_eq!(b.0.ledgers(), vec![5]);
    assert!(!file_of(dir.path(), 4).exists());
    assert!(!fence_path(&dir.path().join("ledgers"), 4).exists());
    assert_eq!(b.last_entry(4).await.expect("last"), None);
    assert!(read_all(&b, 4).await.is_empty());
    b.delete(4).await.expect("deleting an unknown ledger is ok");
    // The id can be used again from entry 0, unfenced.
    b.add_entry(add(4, 0, &[b"new"])).await.expect("re-add");
    assert!(matches!(
        b.add_entry(add(4, 2, &[b"x"])).await,
        Err(StorageError::OutOfOrder { .. })
    ));
    drop(b);
    let b = open(dir.path());
    assert_eq!(b.0.ledgers(), vec![4, 5]);
    assert_eq!(read_all(&b, 4).await[0].payload, Bytes::from_static(b"new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    let before = b.0.stats();
    // 64 adds to one ledger, enqueued in order, awaited from 64 tasks.
    let tasks: Vec<_> = (0..64u64)
        .map(|i| tokio::spawn(b.add_entry(add(9, i, &[&body(i)[..50], &body(i)[50..]]))))
        .collect();
    for t in tasks {
        t.await.expect("task").expect("add");
    }
    let after = b.0.stats();
    assert_eq!(after.entries_added - before.entries_added, 64);
    assert!(
        after.fsyncs - before.fsyncs < 64,
        "64 adds took {} fsyncs",
        after.fsyncs - before.fsyncs
    );
    assert_bodies(&read_all(&b, 9).await, 64);

    // 8 writer tasks, each pipelining 8 adds into its own ledger.
    let before = b.0.stats();
    let writers: Vec<_> = (100..108u64)
        .map(|ledger| {
            let b = b.clone();
            tokio::spawn(async move {
                let adds: Vec<_> = (0..8).map(|i| b.add_entry(add(ledger, i, &[&body(i)]))).collect();
                futures::future::join_all(adds).await
            })
        })
        .collect();
    for w in writers {
        for r in w.await.expect("task") {
            r.expect("add");
        }
    }
    let after = b.0.stats();
    assert_eq!(after.entries_added - before.entries_added, 64);
    assert!(after.fsyncs - before.fsyncs < 64);
    for ledger in 100..108 {
        assert_bodies(&read_all(&b, ledger).await, 8);
    }
}

#[tokio::test]
async fn large_entries_round_trip_and_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    let big: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    let chunks = [&big[..1], &big[1..10 << 20], &big[10 << 20..]];
    b.add_entry(add(6, 0, &chunks)).await.expect("big add");
    b.add_entry(add(6, 1, &[b"small"])).await.expect("small add");
    let got = b.read_entries(6, 0, 0, 1).await.expect("read");
    assert_eq!(got.len(), 1);
    assert!(got[0].payload == big[..]);
    drop(b);
    let b = open(dir.path());
    let got = read_all(&b, 6).await;
    assert_eq!(got.len(), 2);
    assert!(got[0].payload == big[..]);
    assert_eq!(got[1].payload, Bytes::from_static(b"small"));
}

/// Write 5 recovery-test entries into ledger 1, then shut down cleanly.
async fn five_entries(dir: &Path) {
    let b = open(dir);
    add_n(&b, 1, 5).await;
    b.0.shutdown();
    assert_eq!(std::fs::metadata(file_of(dir, 1)).expect("file").len(), 5 * REC);
}

#[tokio::test]
async fn recovery_cuts_a_torn_tail() {
    for cut_at in [4 * REC + 70, 4 * REC + 10, 4 * REC + 1] {
        let dir = tempfile::tempdir().expect("tempdir");
        five_entries(dir.path()).await;
        let f = OpenOptions::new()
            .write(true)
            .open(file_of(dir.path(), 1))
            .expect("open");
        f.set_len(cut_at).expect("truncate");
        drop(f);

        let b = open(dir.path());
        assert_eq!(
            std::fs::metadata(file_of(dir.path(), 1)).expect("file").len(),
            4 * REC
        );
        assert_bodies(&read_all(&b, 1).await, 4);
        match b.add_entry(add(1, 5, &[&body(5)])).await {
            Err(StorageError::OutOfOrder {
                last: Some(3),
                prev: Some(4),
                ..
            }) => {}
            other => panic!("expected OutOfOrder(last 3, prev 4), got {other:?}"),
        }
        b.add_entry(add(1, 4, &[&body(4)]))
            .await
            .expect("add continues at 4");
        assert_bodies(&read_all(&b, 1).await, 5);
        drop(b);
        let b = open(dir.path());
        assert_bodies(&read_all(&b, 1).await, 5);
    }
}

#[tokio::test]
async fn recovery_cuts_an_entry_with_a_corrupt_payload() {
    let dir = tempfile::tempdir().expect("tempdir");
    five_entries(dir.path()).await;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file_of(dir.path(), 1))
        .expect("open");
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, 5 * REC - 1).expect("read");
    f.write_all_at(&[byte[0] ^ 0x01], 5 * REC - 1).expect("flip");
    drop(f);

    let b = open(dir.path());
    assert_eq!(
        std::fs::metadata(file_of(dir.path(), 1)).expect("file").len(),
        4 * REC
    );
    assert_bodies(&read_all(&b, 1).await, 4);
    assert_eq!(b.last_entry(1).await.expect("last").map(|r| r.entry_id), Some(3));
    b.add_entry(add(1, 4, &[&body(4)]))
        .await
        .expect("add continues at 4");
}

#[tokio::test]
async fn recovery_cuts_appended_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    five_entries(dir.path()).await;
    let mut f = OpenOptions::new()
        .append(true)
        .open(file_of(dir.path(), 1))
        .expect("open");
    f.write_all(&pseudo_random(1, 1000)).expect("garbage");
    drop(f);

    let b = open(dir.path());
    assert_eq!(
        std::fs::metadata(file_of(dir.path(), 1)).expect("file").len(),
        5 * REC
    );
    assert_bodies(&read_all(&b, 1).await, 5);
    b.add_entry(add(1, 5, &[&body(5)]))
        .await
        .expect("add continues at 5");
    assert_bodies(&read_all(&b, 1).await, 6);
}

#[tokio::test]
async fn reopen_after_clean_shutdown_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    add_n(&b, 1, 20).await;
    add_n(&b, 2, 3).await;
    b.0.shutdown();
    assert!(matches!(
        b.add_entry(add(1, 20, &[b"x"])).await,
        Err(StorageError::ShuttingDown)
    ));
    assert!(matches!(b.fence(1).await, Err(StorageError::ShuttingDown)));
    // Reads of durable entries still work after shutdown.
    assert_bodies(&read_all(&b, 1).await, 20);
    drop(b);

    let b = open(dir.path());
    assert_eq!(b.0.ledgers(), vec![1, 2]);
    assert_bodies(&read_all(&b, 1).await, 20);
    assert_bodies(&read_all(&b, 2).await, 3);
    assert_eq!(
        b.entry_for_seq(1, 255).await.expect("lookup").map(|r| r.entry_id),
        Some(15)
    );
}

#[tokio::test]
async fn shutdown_drains_queued_adds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    let pending: Vec<_> = (0..50).map(|i| b.add_entry(add(1, i, &[&body(i)]))).collect();
    b.0.shutdown();
    for p in pending {
        p.await.expect("queued add completes");
    }
    assert_bodies(&read_all(&b, 1).await, 50);
}

#[tokio::test]
async fn dropping_the_bookie_drains_queued_adds_and_stops_the_group_committer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    let pending: Vec<_> = (0..50).map(|i| b.add_entry(add(1, i, &[&body(i)]))).collect();
    drop(b);
    for p in pending {
        p.await.expect("queued add completes");
    }
    // The directory lock is free again and everything is there.
    let b = open(dir.path());
    assert_bodies(&read_all(&b, 1).await, 50);
}

#[tokio::test]
async fn reads_detect_corruption_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    add_n(&b, 1, 3).await;
    let f = OpenOptions::new()
        .write(true)
        .open(file_of(dir.path(), 1))
        .expect("open");
    f.write_all_at(b"\xff\xfe", REC + HEADER_LEN as u64 + 10)
        .expect("corrupt");
    drop(f);
    match b.read_entries(1, 0, 2, usize::MAX).await {
        Err(StorageError::Corrupt { ledger: 1, entry: 1 }) => {}
        other => panic!("expected Corrupt(1, 1), got {other:?}"),
    }
    let first = b
        .read_entries(1, 0, 0, usize::MAX)
        .await
        .expect("entry 0 is intact");
    assert_eq!(first[0].payload, Bytes::from(body(0)));
}

/// Deterministic pseudo-random bytes (xorshift64).
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn hostile_ledger_files_never_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledgers = dir.path().join("ledgers");
    std::fs::create_dir_all(&ledgers).expect("mkdir");
    let mut magic_huge = super::format::encode_header(&row(0, 0, 0, 0), &[]).to_vec();
    magic_huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let files: Vec<Vec<u8>> = vec![
        pseudo_random(7, 10_000),
        pseudo_random(8, 39),
        pseudo_random(9, 1),
        Vec::new(),
        magic_huge,
        [&super::format::MAGIC.to_le_bytes()[..], &pseudo_random(10, 5000)].concat(),
    ];
    for (i, data) in files.iter().enumerate() {
        std::fs::write(log_path(&ledgers, i as u64), data).expect("write");
    }
    std::fs::write(ledgers.join("not-a-ledger.txt"), b"hello").expect("write");
    std::fs::write(fence_path(&ledgers, 77), b"orphan").expect("write");

    let b = open(dir.path());
    assert_eq!(b.0.ledgers(), (0..files.len() as u64).collect::<Vec<_>>());
    assert!(!fence_path(&ledgers, 77).exists(), "orphan marker removed");
    for id in 0..files.len() as u64 {
        assert_eq!(b.last_entry(id).await.expect("last"), None);
        assert_eq!(std::fs::metadata(log_path(&ledgers, id)).expect("file").len(), 0);
        b.add_entry(add(id, 0, &[b"ok"]))
            .await
            .expect("add after hostile file");
        assert_eq!(read_all(&b, id).await[0].payload, Bytes::from_static(b"ok"));
    }
}

#[tokio::test]
async fn a_second_bookie_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    let again = Bookie::open(BookieConfig {
        dir: dir.path().to_path_buf(),
        bookie_id: NodeId::new(8),
    });
    assert!(matches!(again, Err(StorageError::Io { .. })));
    drop(b);
    let _reopened = open(dir.path());
}

#[tokio::test]
async fn a_full_disk_fails_the_add_without_panicking() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ledgers = dir.path().join("ledgers");
    std::fs::create_dir_all(&ledgers).expect("mkdir");
    // Every write to this "ledger file" fails with ENOSPC.
    std::os::unix::fs::symlink(full, log_path(&ledgers, 1)).expect("symlink");
    let b = open(dir.path());
    match b.add_entry(add(1, 0, &[b"data"])).await {
        Err(StorageError::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::StorageFull),
        other => panic!("expected an ENOSPC Io error, got {other:?}"),
    }
    assert_eq!(
        b.last_entry(1).await.expect("last"),
        None,
        "nothing acknowledged is visible"
    );
    // The failed write could not be cut from a device: the ledger refuses adds.
    assert!(matches!(
        b.add_entry(add(1, 0, &[b"data"])).await,
        Err(StorageError::Io { .. })
    ));
    // Other ledgers are unaffected.
    b.add_entry(add(2, 0, &[b"fine"])).await.expect("other ledger");
    assert_eq!(read_all(&b, 2).await[0].payload, Bytes::from_static(b"fine"));
}

#[tokio::test]
async fn read_lac_follows_piggybacked_lac_of_durable_adds() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    assert_eq!(b.read_lac(3, None, Duration::ZERO).await.expect("read_lac"), None);
    // Entry 0 carries no LAC, entry 1 carries LAC 0, entry 2 carries LAC 1.
    for i in 0..3 {
        b.add_entry(add(3, i, &[b"x"])).await.expect("add");
    }
    assert_eq!(
        b.read_lac(3, None, Duration::ZERO).await.expect("read_lac"),
        Some(1)
    );
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.read_lac(3, Some(1), Duration::from_secs(10)).await })
    };
    b.add_entry(add(3, 3, &[b"y"])).await.expect("add");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("long poll wakes on the next add")
        .expect("task")
        .expect("read_lac");
    assert_eq!(got, Some(2));
    b.delete(3).await.expect("delete");
    assert_eq!(b.read_lac(3, None, Duration::ZERO).await.expect("read_lac"), None);
}

#[tokio::test]
async fn ledger_info_reports_entries_bytes_fence_and_lac() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    // Unknown ledger: reported, not an error.
    assert_eq!(
        b.ledger_info(3).await.expect("info"),
        crate::ledger::LedgerInfo::default()
    );
    add_n(&b, 3, 4).await;
    let info = b.ledger_info(3).await.expect("info");
    assert_eq!(
        info,
        crate::ledger::LedgerInfo {
            exists: true,
            entries: 4,
            last_entry_id: Some(3),
            bytes: 4 * (HEADER_LEN as u64 + 100),
            fenced: false,
            // Entry 3 carried LAC 2.
            lac: Some(2),
        }
    );
    b.fence(3).await.expect("fence");
    assert!(b.ledger_info(3).await.expect("info").fenced);
    // Fencing an unknown ledger creates it empty and fenced.
    b.fence(9).await.expect("fence");
    let info = b.ledger_info(9).await.expect("info");
    assert_eq!(
        (info.exists, info.entries, info.last_entry_id, info.fenced),
        (true, 0, None, true)
    );
    b.0.shutdown();
}
