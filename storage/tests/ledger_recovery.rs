//! Ledger recovery over a 3/3/2 ensemble of real bookies: the new owner
//! fences the ledger, finds the last entry any bookie holds, and copies
//! every entry the other bookies lack (recovery adds pass the fence), so the
//! recovered tail is on the ack quorum before the segment is sealed; the old
//! writer is locked out.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use distlog_metadata::NodeId;
use distlog_storage::bookie::LocalBookie;
use distlog_storage::ledger::handle::{recover, Ensemble, LedgerWriter};
use distlog_storage::ledger::{AddRequest, BookieClient, IndexRow};
use distlog_storage::StorageError;

fn body(i: u64) -> Bytes {
    Bytes::from((0..64u64).map(|b| (b * 3 + i) as u8).collect::<Vec<u8>>())
}

fn row(entry_id: u64) -> IndexRow {
    IndexRow {
        entry_id,
        first_seq: entry_id * 10,
        record_count: 10,
        txid: entry_id,
        len: 64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_re_replicates_the_tail_and_fences_the_old_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bookies = Vec::new();
    for id in 1..=3u32 {
        bookies.push(common::open_bookie(dir.path(), id).await);
    }
    let clients: Vec<Arc<dyn BookieClient>> = bookies
        .iter()
        .map(|b| Arc::new(LocalBookie(b.clone())) as Arc<dyn BookieClient>)
        .collect();
    let ensemble = Ensemble::new(clients.clone(), 3, 2).expect("3/3/2");
    let ledger = 42;

    // The old writer: entries 0..10 on all three bookies.
    let mut writer = LedgerWriter::new(ledger, ensemble.clone());
    for i in 0..10u64 {
        let (id, fut) = writer.add(i * 10, 10, i, vec![body(i)]);
        assert_eq!(id, i);
        fut.await.expect("add confirmed");
        writer.confirm(i);
    }
    // It then crashed while sending entries 10 and 11: only bookie 1 got them.
    for i in 10..12u64 {
        clients[0]
            .add_entry(AddRequest {
                ledger_id: ledger,
                row: row(i),
                prev_entry_id: Some(i - 1),
                lac: Some(9),
                payload: vec![body(i)],
                recovery: false,
            })
            .await
            .expect("bookie 1 stores the tail");
    }

    let end = recover(&ensemble, ledger)
        .await
        .expect("recovery")
        .expect("a last entry");
    assert_eq!(end.entry_id, 11);
    assert_eq!(end.first_seq + u64::from(end.record_count), 120);
    for (i, c) in clients.iter().enumerate() {
        let last = c.last_entry(ledger).await.expect("last").expect("entries");
        assert_eq!(last.entry_id, 11, "bookie {} holds the recovered tail", i + 1);
        let tail = c.read_entries(ledger, 10, 11, 1 << 20).await.expect("read tail");
        let payloads: Vec<Bytes> = tail.into_iter().map(|e| e.payload).collect();
        assert_eq!(
            payloads,
            vec![body(10), body(11)],
            "bookie {}: exact bytes",
            i + 1
        );
    }
    // Recovery again is a no-op with the same answer.
    let again = recover(&ensemble, ledger)
        .await
        .expect("recovery again")
        .expect("last");
    assert_eq!(again.entry_id, 11);
    // The old writer is fenced out everywhere.
    let (_, fut) = writer.add(100, 10, 12, vec![body(12)]);
    assert!(
        matches!(fut.await, Err(StorageError::Fenced(42))),
        "old writer fenced"
    );

    // With two of three bookies unreachable recovery refuses (E - Qa + 1 = 2 must be fenced).
    let lonely = Ensemble::new(
        vec![
            clients[0].clone(),
            Arc::new(Unreachable(NodeId::new(2))) as Arc<dyn BookieClient>,
            Arc::new(Unreachable(NodeId::new(3))) as Arc<dyn BookieClient>,
        ],
        3,
        2,
    )
    .expect("ensemble");
    assert!(
        recover(&lonely, ledger).await.is_err(),
        "no fencing quorum, no recovery"
    );
    for b in bookies {
        b.shutdown();
    }
}

/// A bookie that never answers successfully (down).
struct Unreachable(NodeId);

#[async_trait::async_trait]
impl BookieClient for Unreachable {
    fn bookie_id(&self) -> NodeId {
        self.0
    }
    fn add_entry(&self, _req: AddRequest) -> distlog_storage::ledger::AddFuture {
        Box::pin(async { Err(StorageError::io("down", std::io::Error::other("bookie down"))) })
    }
    async fn read_entries(
        &self,
        _l: u64,
        _f: u64,
        _t: u64,
        _m: usize,
    ) -> distlog_storage::Result<Vec<distlog_storage::ledger::Entry>> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
    async fn entry_for_seq(&self, _l: u64, _s: u64) -> distlog_storage::Result<Option<IndexRow>> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
    async fn entry_for_txid(&self, _l: u64, _t: u64) -> distlog_storage::Result<Option<IndexRow>> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
    async fn last_entry(&self, _l: u64) -> distlog_storage::Result<Option<IndexRow>> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
    async fn fence(&self, _l: u64) -> distlog_storage::Result<Option<IndexRow>> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
    async fn delete(&self, _l: u64) -> distlog_storage::Result<()> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
    async fn read_lac(
        &self,
        _l: u64,
        _k: Option<u64>,
        _w: std::time::Duration,
    ) -> distlog_storage::Result<Option<u64>> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
    async fn ledger_info(&self, _l: u64) -> distlog_storage::Result<distlog_storage::ledger::LedgerInfo> {
        Err(StorageError::io("down", std::io::Error::other("bookie down")))
    }
}
