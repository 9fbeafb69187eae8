//! Log streams on striped ensembles (E > Qw) over real bookies served over
//! TCP: every acknowledged record reads back from the bookies (no tail
//! cache) at its offset, lookups by offset and timestamp (txid) are exact,
//! the replica report shows every committed entry on exactly its write
//! set, and a new owner recovers the stream and carries on.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use distlog_metadata::{MetadataStore, NodeId, StreamId};
use distlog_storage::bookie::{Bookie, LocalBookie};
use distlog_storage::bookie_net::BookieServer;
use distlog_storage::log::{Namespace, NamespaceConfig, ReadEntry, SegmentReplicas};

struct Cluster {
    _dir: tempfile::TempDir,
    meta: Arc<MetadataStore>,
    bookies: Vec<Arc<Bookie>>,
    servers: Vec<BookieServer>,
    /// Namespaces of nodes 1 and 2 (each with its own bookie in-process).
    ns: Vec<Arc<Namespace>>,
    stream: StreamId,
}

async fn cluster(n: u32, shape: (u8, u8, u8)) -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = common::open_meta(dir.path()).await;
    let (mut bookies, mut servers) = (Vec::new(), Vec::new());
    for id in 1..=n {
        let bookie = common::open_bookie(dir.path(), id).await;
        servers.push(common::serve_registered(&meta, &bookie, id).await);
        bookies.push(bookie);
    }
    // Node 1 opens the new topic's stream (taking ownership) before node 2
    // exists, so node 2 only writes once it takes the stream over.
    let open = |id: u32| {
        Namespace::open(
            meta.clone(),
            Arc::new(LocalBookie(bookies[id as usize - 1].clone())),
            NamespaceConfig {
                broker_id: NodeId::from(id),
                stamp: common::stamp(),
                // Reads come from the bookies, not the writer's memory.
                tail_cache_bytes: 0,
                stream_config: common::replicated_stream_configs(),
                speculative_read_delay: Some(Duration::from_millis(50)),
                ownership: Default::default(),
                stream_state: None,
                reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
            },
        )
    };
    let first = open(1).await.expect("namespace 1 opens");
    let stream = common::create_replicated_topic(&meta, "striped", shape).await;
    first.bounds(stream).await.expect("node 1 opens the stream");
    while meta.read(|s| s.stream(&stream).and_then(|st| st.owner)) != Some(NodeId::new(1)) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = open(2).await.expect("namespace 2 opens");
    let ns = vec![first, second];
    Cluster {
        _dir: dir,
        meta,
        bookies,
        servers,
        ns,
        stream,
    }
}

impl Cluster {
    /// Append `tags` through node `k`'s namespace, pipelined (so entries
    /// batch several records); each must be acknowledged at offset = tag.
    async fn append(&self, k: usize, tags: std::ops::Range<u64>) {
        let mut tickets = Vec::new();
        for tag in tags.clone() {
            tickets.push(
                self.ns[k]
                    .submit_append(self.stream, common::record(tag, 10 * tag as i64))
                    .await
                    .expect("queued"),
            );
        }
        for (tag, t) in tags.zip(tickets) {
            let r = tokio::time::timeout(Duration::from_secs(10), t.wait())
                .await
                .unwrap_or_else(|_| panic!("append {tag} hung"))
                .unwrap_or_else(|e| panic!("append {tag} failed: {e}"));
            assert_eq!(r.base_offset, tag);
        }
    }

    /// Read offsets `0..end` through node `k` and check each record is the
    /// append whose tag is its offset; returns the entries read.
    async fn read_all(&self, k: usize, end: u64) -> Vec<ReadEntry> {
        let mut next = 0u64;
        let mut all = Vec::new();
        while next < end {
            let r = self.ns[k].read(self.stream, next, 300).await.expect("read");
            assert!(!r.entries.is_empty(), "no entry at offset {next}");
            for e in r.entries {
                assert_eq!(e.first_seq, next, "entries are consecutive");
                let mut p = e.payload.clone();
                assert_eq!(p.len(), 16 * e.record_count as usize);
                for _ in 0..e.record_count {
                    assert_eq!(p.get_u64(), next, "stamped offset");
                    assert_eq!(p.get_u64(), next, "tag of the record at offset {next}");
                    next += 1;
                }
                assert_eq!(e.txid, 10 * (next - 1), "txid = max timestamp so far");
                all.push(e);
            }
        }
        assert_eq!(next, end);
        all
    }

    /// Offset and timestamp lookups agree with the entries read.
    async fn check_lookups(&self, k: usize, entries: &[ReadEntry]) {
        for (i, e) in entries.iter().enumerate() {
            for offset in [e.first_seq, e.first_seq + u64::from(e.record_count) - 1] {
                let (dlsn, txid) = self.ns[k].locate(self.stream, offset).await.expect("locate");
                assert_eq!(txid, e.txid, "offset {offset}");
                assert_eq!(dlsn.slot_id, offset - e.first_seq, "offset {offset}");
            }
            // The first entry reaching a timestamp holds the first record with it.
            let last_txid = entries.last().map_or(0, |x| x.txid);
            for ts in [10 * e.first_seq, 10 * e.first_seq + 1, e.txid]
                .into_iter()
                .filter(|t| *t <= last_txid)
            {
                let want = entries
                    .iter()
                    .position(|x| x.txid >= ts)
                    .expect("an entry reaches it");
                let got = self.ns[k]
                    .find_by_txid(self.stream, ts)
                    .await
                    .expect("find by txid")
                    .expect("found");
                assert_eq!(
                    got.entry.first_seq, entries[want].first_seq,
                    "timestamp {ts} (entry {i})"
                );
            }
        }
        let past = entries.last().expect("entries").txid + 1;
        assert!(self.ns[k]
            .find_by_txid(self.stream, past)
            .await
            .expect("lookup")
            .is_none());
    }

    async fn shutdown(self) {
        common::stop_all(&self.ns, self.servers, self.bookies, &self.meta).await;
    }
}

/// Every committed entry of `seg` is on exactly its write set: each bookie
/// holds exactly the committed entries its stripe assigns to it.
fn assert_on_exactly_its_write_set(seg: &SegmentReplicas) {
    let committed = seg.committed_last_entry_id.expect("committed end known");
    let (e, qw) = (seg.ensemble.len() as u64, u64::from(seg.write_quorum));
    assert_eq!(
        (seg.under_replicated_entries, seg.below_write_quorum_entries),
        (0, 0),
        "{seg:?}"
    );
    let mut total = 0;
    for (i, r) in seg.replicas.iter().enumerate() {
        // Entry x's write set holds index i when (i - x) mod E < Qw.
        let stripe = (0..=committed)
            .filter(|x| (i as u64 + e - x % e) % e < qw)
            .count() as u64;
        assert!(r.reachable && r.exists, "{r:?}");
        assert_eq!(
            (r.entries, r.stripe_entries, r.missing_entries),
            (stripe, Some(stripe), Some(0)),
            "bookie {}: {seg:?}",
            r.bookie
        );
        total += r.entries;
    }
    assert_eq!(total, (committed + 1) * qw, "{seg:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_striped_stream_reads_back_exactly_and_each_entry_is_on_its_write_set() {
    for (n, shape) in [(3u32, (3u8, 2u8, 2u8)), (4, (4, 2, 2))] {
        let c = cluster(n, shape).await;
        c.append(0, 0..400).await;
        for tag in 400..420 {
            c.append(0, tag..tag + 1).await;
        }
        let entries = c.read_all(0, 420).await;
        assert!(entries.len() > 20, "{shape:?}: {} entries", entries.len());
        c.check_lookups(0, &entries).await;
        let report = c.ns[0].replica_report(c.stream).await.expect("report");
        assert_eq!(report.len(), 1, "{report:?}");
        assert_eq!(report[0].ensemble.len(), usize::from(shape.0));
        assert_eq!(report[0].write_quorum, shape.1);
        assert_eq!(report[0].state, "in_progress");
        assert_on_exactly_its_write_set(&report[0]);
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_recovers_a_striped_segment_and_continues() {
    let c = cluster(3, (3, 2, 2)).await;
    c.append(0, 0..300).await;
    // Node 2 takes the stream over: it fences and recovers node 1's segment.
    c.append(1, 300..301).await;
    c.append(1, 301..400).await;
    // The old owner can no longer append.
    assert!(
        c.ns[0].append(c.stream, common::record(999, 9990)).await.is_err(),
        "old owner locked out"
    );
    let entries = c.read_all(1, 400).await;
    c.check_lookups(1, &entries).await;
    let report = c.ns[1].replica_report(c.stream).await.expect("report");
    assert_eq!(report.len(), 2, "{report:?}");
    assert_eq!((report[0].state, report[0].last_offset), ("completed", Some(299)));
    assert_eq!(report[1].base_offset, 300);
    for seg in &report {
        assert_on_exactly_its_write_set(seg);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_striped_segment_is_not_placed_on_an_unreachable_bookie() {
    let mut c = cluster(3, (3, 2, 2)).await;
    // Bookie 3 stops answering (its lease is still valid): no ensemble of three can
    // confirm every entry (write sets with bookie 3 would have one copy), so the append
    // fails retriably and no segment is recorded.
    let addr = c.servers[2].local_addr();
    c.servers.remove(2).shutdown().await;
    match c.ns[0].append(c.stream, common::record(0, 0)).await {
        Err(distlog_storage::StorageError::NotEnoughBookies(msg)) => {
            assert!(msg.contains("needs 2 of them"), "{msg}");
        }
        other => panic!("expected NotEnoughBookies, got {other:?}"),
    }
    let segments = c
        .meta
        .read(|s| s.stream(&c.stream).map_or(0, |st| st.segments.len()));
    assert_eq!(segments, 0, "nothing recorded on a dead bookie");
    // Back on its address: the stream is written striped over all three.
    let server = BookieServer::bind(
        addr,
        Arc::new(LocalBookie(c.bookies[2].clone())),
        distlog_storage::bookie_net::ServerConfig::default(),
    )
    .await
    .expect("serves again");
    c.servers.push(server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match c.ns[0].append(c.stream, common::record(0, 0)).await {
            Ok(r) => {
                assert_eq!(r.base_offset, 0);
                break;
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "append never accepted: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.append(0, 1..50).await;
    c.read_all(0, 50).await;
    let report = c.ns[0].replica_report(c.stream).await.expect("report");
    assert_eq!(report.len(), 1);
    assert_on_exactly_its_write_set(&report[0]);
    c.shutdown().await;
}
