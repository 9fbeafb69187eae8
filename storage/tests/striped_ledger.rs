//! Striped ledgers (ensemble E > write quorum Qw) over real bookies: bookie
//! 1 in-process, the others served over TCP. Entry `e` goes to the `Qw`
//! bookies from ensemble index `e mod E`; each bookie must hold exactly its
//! stripe, range reads must merge the stripes back in order, lookups by
//! sequence id and txid must combine every bookie's answer exactly, ledger
//! recovery must end at the exact last acknowledged entry and re-replicate
//! it, and a bookie that missed entries of its stripe must be caught.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use distlog_metadata::NodeId;
use distlog_storage::bookie::{Bookie, LocalBookie};
use distlog_storage::bookie_net::{BookieServer, ClientConfig, RemoteBookie, ServerConfig};
use distlog_storage::ledger::handle::{
    entry_for_seq, entry_for_txid, read_entries, recover, BookieFault, Ensemble, LedgerWriter,
};
use distlog_storage::ledger::{AddRequest, BookieClient, Entry, IndexRow};
use distlog_storage::StorageError;

const LEDGER: u64 = 77;
const SPECULATIVE: Option<Duration> = Some(Duration::from_millis(50));

/// Payload of entry `e`: 64 bytes derived from `e`.
fn body(e: u64) -> Bytes {
    Bytes::from((0..64u64).map(|b| (b * 7 + e * 13) as u8).collect::<Vec<u8>>())
}

/// Txids rise in steps of 5 every third entry (so several entries share one).
fn txid(e: u64) -> u64 {
    1000 + 5 * (e / 3)
}

/// The row entry `e` is written with: 10 records from offset `10 e`.
fn row(e: u64) -> IndexRow {
    IndexRow {
        entry_id: e,
        first_seq: 10 * e,
        record_count: 10,
        txid: txid(e),
        len: 64,
    }
}

/// `n` bookies (ids 1..=n) in one temp dir; index 0 is reached in-process,
/// the others through their TCP servers, which tests stop and restart.
struct Bookies {
    _dir: tempfile::TempDir,
    bookies: Vec<Arc<Bookie>>,
    servers: Vec<Option<BookieServer>>,
    addrs: Vec<SocketAddr>,
    clients: Vec<Arc<dyn BookieClient>>,
}

impl Bookies {
    async fn start(n: u32) -> Bookies {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut bookies, mut servers, mut addrs, mut clients) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let config = ClientConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        for id in 1..=n {
            let bookie = common::open_bookie(dir.path(), id).await;
            let server = BookieServer::bind(
                "127.0.0.1:0",
                Arc::new(LocalBookie(bookie.clone())),
                ServerConfig::default(),
            )
            .await
            .expect("bookie serves");
            let client: Arc<dyn BookieClient> = if id == 1 {
                Arc::new(LocalBookie(bookie.clone()))
            } else {
                Arc::new(RemoteBookie::new(
                    NodeId::from(id),
                    server.local_addr(),
                    config.clone(),
                ))
            };
            addrs.push(server.local_addr());
            servers.push(Some(server));
            bookies.push(bookie);
            clients.push(client);
        }
        Bookies {
            _dir: dir,
            bookies,
            servers,
            addrs,
            clients,
        }
    }

    fn ensemble(&self, qw: usize, qa: usize) -> Ensemble {
        Ensemble::new(self.clients.clone(), qw, qa).expect("valid ensemble")
    }

    /// Stop serving the bookie at ensemble index `i` (its client then fails at once).
    async fn down(&mut self, i: usize) {
        assert!(i > 0, "bookie 1 is in-process");
        self.servers[i].take().expect("serving").shutdown().await;
    }

    /// Serve the bookie at index `i` again on its old address (its data intact).
    async fn up(&mut self, i: usize) {
        let server = BookieServer::bind(
            self.addrs[i],
            Arc::new(LocalBookie(self.bookies[i].clone())),
            ServerConfig::default(),
        )
        .await
        .expect("serves again");
        self.servers[i] = Some(server);
    }

    async fn stop(self) {
        for s in self.servers.into_iter().flatten() {
            s.shutdown().await;
        }
        for b in self.bookies {
            b.shutdown();
        }
    }
}

/// Add entries `range` through `writer`, each acknowledged, then confirmed.
async fn write(writer: &mut LedgerWriter, range: std::ops::Range<u64>) {
    for e in range {
        let r = row(e);
        let (id, fut) = writer.add(r.first_seq, r.record_count, r.txid, vec![body(e)]);
        assert_eq!(id, e);
        fut.await
            .unwrap_or_else(|err| panic!("entry {e} not acknowledged: {err}"));
        writer.confirm(e);
    }
}

/// An add of entry `e` straight to the bookie at index `i` (a writer's
/// in-flight add that reached only some bookies before it crashed).
async fn add_to(en: &Ensemble, i: usize, e: u64, lac: Option<u64>) -> Result<(), StorageError> {
    en.bookies[i]
        .add_entry(AddRequest {
            ledger_id: LEDGER,
            row: row(e),
            prev_entry_id: en.prev_in_stripe(i, e),
            lac,
            payload: vec![body(e)],
            recovery: false,
        })
        .await
}

/// The entries of `0..n` whose write set holds index `i`, computed from the write sets.
fn stripe(en: &Ensemble, i: usize, n: u64) -> Vec<u64> {
    (0..n).filter(|e| en.write_set(*e).any(|m| m == i)).collect()
}

/// Wait until bookie `i` holds as many entries as its stripe of `0..n`:
/// with Qa < Qw an entry is acknowledged before its last copy lands.
async fn settle(en: &Ensemble, i: usize, n: u64) {
    let want = stripe(en, i, n).len() as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while en.bookies[i].ledger_info(LEDGER).await.expect("info").entries < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bookie {} never got its stripe",
            i + 1
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What bookie `i` holds of the test ledger, checked byte for byte.
async fn held(en: &Ensemble, i: usize) -> Vec<u64> {
    let entries = en.bookies[i]
        .read_entries(LEDGER, 0, u64::MAX - 1, usize::MAX)
        .await
        .expect("read a bookie");
    check_exact(&entries);
    entries.iter().map(|x| x.row.entry_id).collect()
}

fn check_exact(entries: &[Entry]) {
    for x in entries {
        assert_eq!(x.row, row(x.row.entry_id));
        assert_eq!(x.payload, body(x.row.entry_id), "entry {} bytes", x.row.entry_id);
    }
}

/// The merged reads and the combined lookups all answer exactly for a
/// ledger of entries `0..n`.
async fn check_reads_and_lookups(en: &Ensemble, n: u64, what: &str) {
    let all = read_entries(en, LEDGER, 0, n - 1, usize::MAX, SPECULATIVE)
        .await
        .expect("read all");
    assert_eq!(
        all.iter().map(|x| x.row.entry_id).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "{what}"
    );
    check_exact(&all);
    // In pieces of about three entries, as the log reader goes.
    let mut next = 0;
    while next < n {
        let got = read_entries(en, LEDGER, next, n - 1, 200, SPECULATIVE)
            .await
            .expect("read a piece");
        assert!(
            !got.is_empty() && got.len() <= 4,
            "{what}: {} entries from {next}",
            got.len()
        );
        check_exact(&got);
        for x in got {
            assert_eq!(x.row.entry_id, next, "{what}: consecutive from {next}");
            next += 1;
        }
    }
    let (from, to) = (n / 4 + 1, (n / 4 + 7).min(n - 1));
    let mid = read_entries(en, LEDGER, from, to, usize::MAX, SPECULATIVE)
        .await
        .expect("read a middle range");
    assert_eq!(
        mid.iter().map(|x| x.row.entry_id).collect::<Vec<_>>(),
        (from..=to).collect::<Vec<_>>()
    );
    for seq in (0..10 * n).step_by(3) {
        let got = entry_for_seq(en, LEDGER, seq).await.expect("entry for seq");
        assert_eq!(got, Some(row(seq / 10)), "{what}: seq {seq}");
    }
    // Past the end: the ledger's last entry (the last one starting before it).
    assert_eq!(
        entry_for_seq(en, LEDGER, 10 * n + 5).await.expect("seq"),
        Some(row(n - 1))
    );
    for t in [
        0,
        999,
        1000,
        1001,
        1005,
        1006,
        1010,
        txid(n / 2) + 1,
        txid(n - 1),
        txid(n - 1) + 1,
    ] {
        let want = (0..n).find(|e| txid(*e) >= t).map(row);
        let got = entry_for_txid(en, LEDGER, t, n - 1)
            .await
            .expect("entry for txid");
        assert_eq!(got, want, "{what}: txid {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bookie_holds_exactly_its_stripe_and_reads_merge_every_entry_in_order() {
    for (e, qw, qa) in [(3u32, 2usize, 2usize), (4, 2, 2), (5, 3, 2)] {
        let what = format!("{e}/{qw}/{qa}");
        let mut c = Bookies::start(e).await;
        let en = c.ensemble(qw, qa);
        let mut writer = LedgerWriter::new(LEDGER, en.clone());
        let n = 60u64;
        write(&mut writer, 0..n).await;
        for i in 0..e as usize {
            settle(&en, i, n).await;
        }
        assert!(writer.faults().is_empty(), "{what}: {:?}", writer.faults());
        let mut total = 0;
        for i in 0..e as usize {
            let mine = stripe(&en, i, n);
            assert_eq!(
                held(&en, i).await,
                mine,
                "{what}: bookie {} holds its stripe",
                i + 1
            );
            let info = en.bookies[i].ledger_info(LEDGER).await.expect("info");
            assert_eq!(
                (info.entries, info.last_entry_id),
                (mine.len() as u64, mine.last().copied())
            );
            total += info.entries;
        }
        assert_eq!(total, n * qw as u64, "{what}: every entry on exactly Qw bookies");
        check_reads_and_lookups(&en, n, &what).await;
        // One bookie down: every entry still has a holder; reads and lookups stay exact.
        c.down(e as usize - 1).await;
        check_reads_and_lookups(&en, n, &format!("{what}, bookie {e} down")).await;
        c.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_with_a_bookie_down_ends_at_the_last_acknowledged_entry_and_re_replicates_it() {
    // 5/3/2: entry e goes to indexes e, e+1, e+2 (mod 5).
    let mut c = Bookies::start(5).await;
    let en = c.ensemble(3, 2);
    let mut writer = LedgerWriter::new(LEDGER, en.clone());
    write(&mut writer, 0..20).await;
    // Bookie 5 (index 4) goes down; entries 20..30 are still acknowledged by two of three.
    c.down(4).await;
    write(&mut writer, 20..30).await;
    // The writer then crashes with entries 30.. in flight: 30 (write set 0, 1, 2) reached
    // indexes 0 and 1 — its ack quorum, so it was acknowledged; 31 (1, 2, 3) reached no
    // bookie; 33 (3, 4, 0) reached index 0.
    for i in 0..4 {
        settle(&en, i, 30).await;
    }
    for i in [0, 1] {
        add_to(&en, i, 30, Some(29))
            .await
            .expect("entry 30 on its ack quorum");
    }
    add_to(&en, 0, 33, Some(30)).await.expect("entry 33 on bookie 1");
    assert_eq!(held(&en, 2).await, stripe(&en, 2, 30), "bookie 3 lacks entry 30");

    let end = recover(&en, LEDGER)
        .await
        .expect("recovery")
        .expect("a last entry");
    assert_eq!(
        end,
        row(30),
        "ends at the last acknowledged entry, before the hole at 31"
    );
    // Entry 30 was copied to the member of its write set that lacked it.
    assert_eq!(held(&en, 2).await, stripe(&en, 2, 31));
    assert_eq!(held(&en, 1).await, stripe(&en, 1, 31));
    assert_eq!(held(&en, 3).await, stripe(&en, 3, 31));
    // Index 0 still has 33 past the sealed end (never read: reads stop at the end).
    let mut zero = stripe(&en, 0, 31);
    zero.push(33);
    assert_eq!(held(&en, 0).await, zero);
    check_reads_and_lookups(&en, 31, "recovered, bookie 5 down").await;
    // Idempotent: a repeat finds the same end.
    assert_eq!(recover(&en, LEDGER).await.expect("again"), Some(row(30)));
    // The old writer is fenced out.
    let (_, fut) = writer.add(300, 10, txid(30), vec![body(30)]);
    assert!(
        matches!(fut.await, Err(StorageError::Fenced(LEDGER))),
        "old writer fenced"
    );
    assert_eq!(
        writer.faults(),
        BTreeMap::from([(NodeId::new(5), BookieFault::Unreachable)])
    );

    // Two adjacent bookies down leave write set (3, 4, 0) with one fenced member:
    // the old writer could still reach its ack quorum there, so recovery refuses.
    c.down(3).await;
    match recover(&en, LEDGER).await {
        Err(StorageError::NotEnoughBookies(msg)) => assert!(msg.contains("needs 2 fenced"), "{msg}"),
        other => panic!("expected NotEnoughBookies, got {other:?}"),
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_fails_retriably_while_an_unconfirmed_entry_cannot_reach_the_ack_quorum() {
    // 3/2/2: entry e goes to indexes e, e+1 (mod 3).
    let mut c = Bookies::start(3).await;
    let en = c.ensemble(2, 2);
    let mut writer = LedgerWriter::new(LEDGER, en.clone());
    write(&mut writer, 0..9).await;
    // Entries 9 (write set 0, 1) and 10 (write set 1, 2) reached only index 1 when the
    // writer crashed; then bookie 3 (index 2) went down. Index 0 lacks 9 of its stripe:
    // the fenced copies differ from entry 9 on.
    add_to(&en, 1, 9, Some(8)).await.expect("entry 9 on bookie 2");
    add_to(&en, 1, 10, Some(8)).await.expect("entry 10 on bookie 2");
    c.down(2).await;
    match recover(&en, LEDGER).await {
        Err(StorageError::NotEnoughBookies(msg)) => {
            assert!(msg.contains("entry 10 reached 1 bookies"), "{msg}");
        }
        other => panic!("expected NotEnoughBookies, got {other:?}"),
    }
    // Entry 9 reached bookie 1 on the way (its write set is both fenced bookies).
    assert_eq!(held(&en, 0).await, stripe(&en, 0, 10));
    // Nothing was sealed or lost: with bookie 3 back, recovery copies entry 10 to it.
    c.up(2).await;
    let end = recover(&en, LEDGER)
        .await
        .expect("recovery")
        .expect("a last entry");
    assert_eq!(end, row(10));
    for i in 0..3 {
        assert_eq!(held(&en, i).await, stripe(&en, i, 11), "bookie {}", i + 1);
    }
    check_reads_and_lookups(&en, 11, "3/2/2 recovered").await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_does_not_seal_an_unconfirmed_entry_on_one_bookie_even_when_the_fenced_ones_agree() {
    // 3/2/2: 10 goes to indexes 1, 2 and 11 to indexes 2, 0.
    let mut c = Bookies::start(3).await;
    let en = c.ensemble(2, 2);
    let mut writer = LedgerWriter::new(LEDGER, en.clone());
    write(&mut writer, 0..10).await;
    // In flight at the crash: 10 reached index 1, 11 reached index 0; index 2 then went
    // down. Both fenced bookies hold their whole stripe up to their last entry (their
    // copies agree), yet 10 and 11 are each on one bookie and past the LAC (9).
    add_to(&en, 1, 10, Some(9)).await.expect("entry 10 on bookie 2");
    add_to(&en, 0, 11, Some(9)).await.expect("entry 11 on bookie 1");
    c.down(2).await;
    match recover(&en, LEDGER).await {
        Err(StorageError::NotEnoughBookies(msg)) => {
            assert!(msg.contains("entry 10 reached 1 bookies"), "{msg}");
        }
        other => panic!("expected NotEnoughBookies, got {other:?}"),
    }
    c.up(2).await;
    assert_eq!(recover(&en, LEDGER).await.expect("recovery"), Some(row(11)));
    for i in 0..3 {
        assert_eq!(held(&en, i).await, stripe(&en, i, 12), "bookie {}", i + 1);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookie_that_missed_entries_of_its_stripe_is_detected_as_behind() {
    // 5/3/2: index 3 holds residues 1, 2, 3 (entries 1, 2, 3, 6, 7, 8, 11, ...).
    let mut c = Bookies::start(5).await;
    let en = c.ensemble(3, 2);
    let mut writer = LedgerWriter::new(LEDGER, en.clone());
    write(&mut writer, 0..10).await;
    c.down(3).await;
    write(&mut writer, 10..15).await; // index 3 misses 11, 12, 13
    c.up(3).await;
    write(&mut writer, 15..25).await; // its next stripe entry, 16, follows 13: refused
                                      // The faults of adds that completed after their quorum land in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while writer.faults().get(&NodeId::new(4)) != Some(&BookieFault::Behind) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "faults: {:?}",
            writer.faults()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        writer.faults(),
        BTreeMap::from([(NodeId::new(4), BookieFault::Behind)])
    );
    assert_eq!(
        held(&en, 3).await,
        stripe(&en, 3, 10),
        "nothing past the missed entries"
    );
    // The bookie says exactly what it lacks: entry 21 follows 18 of its stripe; its last is 8.
    match add_to(&en, 3, 21, None).await {
        Err(StorageError::OutOfOrder { ledger, last, prev }) => {
            assert_eq!((ledger, last, prev), (LEDGER, Some(8), Some(18)));
        }
        other => panic!("expected OutOfOrder, got {other:?}"),
    }
    // Every acknowledged entry reads back, index 3's missing ones from the other holders.
    check_reads_and_lookups(&en, 25, "with a bookie behind").await;
    c.stop().await;
}
