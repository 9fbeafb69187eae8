//! Placement by a [`BookieSet`] with and without a bookie of its own,
//! over a real (single-voter) metadata store.

use std::sync::Arc;

use distlog_metadata::{
    BrokerInfo, Command, MetadataConfig, MetadataStore, NodeId, SegmentMeta, SegmentState, StreamId,
};

use super::BookieSet;
use crate::bookie::{Bookie, BookieConfig, LocalBookie};
use crate::error::StorageError;
use crate::ledger::BookieClient;

/// Node ids from numbers.
fn nodes(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId::new).collect()
}

async fn open_meta(dir: &std::path::Path) -> Arc<MetadataStore> {
    MetadataStore::open(MetadataConfig {
        data_dir: dir.join("meta"),
        node_id: NodeId::new(1),
        raft_addr: "127.0.0.1:0".into(),
        advertised_raft_addr: None,
        voters: Default::default(),
        seeds: Vec::new(),
    })
    .await
    .expect("metadata opens")
}

/// Register node `id`: a bookie at a (never dialled) address when
/// `bookie`, a Kafka broker when `broker`, with a live or lapsed lease.
async fn register(meta: &MetadataStore, id: u64, bookie: bool, broker: bool, live: bool) {
    meta.write(Command::RegisterBroker(BrokerInfo {
        id: NodeId::new(id),
        kafka_host: if broker { "127.0.0.1".into() } else { String::new() },
        kafka_port: if broker { 9092 } else { 0 },
        listeners: Default::default(),
        rack: None,
        bookie_addr: bookie.then(|| format!("127.0.0.{id}:3181")),
        lease_expires_ms: if live { u64::MAX } else { 1 },
    }))
    .await
    .expect("register");
}

/// Nodes 1-3 `meta,bookie` (live), 4 and 5 `broker` only, 6 a bookie
/// whose lease lapsed.
async fn split_cluster(meta: &MetadataStore) {
    for id in 1..=3 {
        register(meta, id, true, false, true).await;
    }
    register(meta, 4, false, true, true).await;
    register(meta, 5, false, true, true).await;
    register(meta, 6, true, false, false).await;
}

/// An in-progress segment of a fresh one-partition topic on `ensemble`
/// (load for placement).
async fn in_progress_segment(meta: &MetadataStore, name: &str, ensemble: Vec<NodeId>) {
    let id = uuid::Uuid::new_v4();
    meta.write(Command::CreateTopic {
        name: name.into(),
        id,
        partitions: 1,
        configs: Default::default(),
        created_ms: 0,
    })
    .await
    .expect("topic");
    let stream = StreamId {
        topic_id: id,
        partition: 0,
    };
    meta.write(Command::AcquireStream {
        stream,
        owner: NodeId::new(4),
        expected_epoch: None,
    })
    .await
    .expect("acquire");
    let epoch = meta.read(|s| s.stream(&stream).expect("stream").owner_epoch);
    let next_lssn = meta.read(|s| s.stream(&stream).expect("stream").next_lssn);
    meta.write(Command::AddSegment {
        stream,
        owner_epoch: epoch,
        segment: SegmentMeta {
            lssn: next_lssn,
            ledger_id: 100 + ensemble[0].get(),
            ensemble,
            write_quorum: 1,
            ack_quorum: 1,
            base_offset: 0,
            start_txid: 0,
            state: SegmentState::InProgress,
            last_offset: None,
            end_txid: 0,
            last_entry_id: None,
            size_bytes: 0,
            created_ms: 0,
            owner_epoch: epoch,
        },
    })
    .await
    .expect("segment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_only_places_e1_on_a_live_remote_bookie_never_on_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    split_cluster(&meta).await;
    let set = BookieSet::new(None, meta.clone());
    assert!(set.local().is_none());
    assert_eq!(set.registered(), nodes(&[1, 2, 3, 6]));
    for ledger in 0..30u64 {
        let ids = set.place(1, ledger, &[]).expect("E=1 placed");
        assert_eq!(ids.len(), 1);
        assert!(
            nodes(&[1, 2, 3]).contains(&ids[0]),
            "ledger {ledger} on {ids:?}: not a live bookie"
        );
    }
    let mut three = set.place(3, 7, &[]).expect("E=3 placed");
    three.sort_unstable();
    assert_eq!(three, nodes(&[1, 2, 3]));
    // Least loaded first: bookies 1 and 2 hold open segments, 3 does not.
    in_progress_segment(&meta, "a", nodes(&[1])).await;
    in_progress_segment(&meta, "b", nodes(&[2])).await;
    for ledger in 0..10u64 {
        assert_eq!(set.place(1, ledger, &[]).expect("placed"), nodes(&[3]));
    }
    // The failed bookie is avoided.
    assert_eq!(set.place(1, 1, &nodes(&[3])).expect("placed").len(), 1);
    assert_ne!(set.place(1, 1, &nodes(&[3])).expect("placed"), nodes(&[3]));
    meta.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_only_without_enough_bookies_says_what_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    // Only brokers, and a bookie whose lease lapsed.
    register(&meta, 4, false, true, true).await;
    register(&meta, 6, true, false, false).await;
    let set = BookieSet::new(None, meta.clone());
    for (size, exclude) in [(1usize, vec![]), (3, vec![]), (1, nodes(&[6]))] {
        match set.place(size, 1, &exclude) {
            Err(StorageError::NotEnoughBookies(msg)) => {
                assert!(msg.contains("runs no bookie"), "{msg}");
                assert!(msg.contains("--bookie-listen"), "{msg}");
                assert!(msg.contains("--roles"), "{msg}");
            }
            other => panic!("E={size}: expected NotEnoughBookies, got {other:?}"),
        }
    }
    match set.place_degraded(3, 2, 1) {
        Err(StorageError::NotEnoughBookies(msg)) => assert!(msg.contains("runs no bookie"), "{msg}"),
        other => panic!("expected NotEnoughBookies, got {other:?}"),
    }
    // Two live bookies: E=1 works, E=3 does not.
    register(&meta, 1, true, false, true).await;
    register(&meta, 2, true, false, true).await;
    assert!(nodes(&[1, 2]).contains(&set.place(1, 5, &[]).expect("placed")[0]));
    assert!(matches!(
        set.place(3, 5, &[]),
        Err(StorageError::NotEnoughBookies(_))
    ));
    meta.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_bookie_keeps_e1_ledgers_local() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    split_cluster(&meta).await;
    let cfg = BookieConfig {
        dir: dir.path().join("bookie"),
        bookie_id: NodeId::new(2),
    };
    let bookie = tokio::task::spawn_blocking(move || Bookie::open(cfg))
        .await
        .expect("join")
        .expect("bookie opens");
    let local: Arc<dyn BookieClient> = Arc::new(LocalBookie(bookie.clone()));
    let set = BookieSet::new(Some(local), meta.clone());
    for ledger in 0..10u64 {
        assert_eq!(set.place(1, ledger, &[]).expect("placed"), nodes(&[2]));
    }
    assert_eq!(
        set.client(NodeId::new(2)).await.expect("client").bookie_id(),
        NodeId::new(2)
    );
    assert!(matches!(
        set.place(1, 1, &nodes(&[2])),
        Err(StorageError::NotEnoughBookies(_))
    ));
    meta.shutdown().await.expect("shutdown");
    tokio::task::spawn_blocking(move || bookie.shutdown())
        .await
        .expect("bookie shutdown");
}
