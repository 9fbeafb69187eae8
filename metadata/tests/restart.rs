//! End-to-end tests of the metadata store: durability across restarts,
//! snapshots, notifications and concurrent writers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::*;
use uuid::Uuid;

fn config(dir: &std::path::Path) -> MetadataConfig {
    MetadataConfig {
        data_dir: dir.join("meta"),
        node_id: NodeId::new(1),
        raft_addr: "127.0.0.1:0".into(),
        advertised_raft_addr: None,
        voters: Default::default(),
        seeds: Vec::new(),
    }
}

fn create_topic(name: &str, partitions: u32) -> (Command, Uuid) {
    let id = Uuid::new_v4();
    let cmd = Command::CreateTopic {
        name: name.into(),
        id,
        partitions,
        configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        created_ms: 123,
    };
    (cmd, id)
}

fn segment(lssn: u64, ledger_id: u64, base_offset: u64) -> SegmentMeta {
    SegmentMeta {
        lssn,
        ledger_id,
        ensemble: vec![NodeId::new(1)],
        write_quorum: 1,
        ack_quorum: 1,
        base_offset,
        start_txid: base_offset,
        state: SegmentState::InProgress,
        last_offset: None,
        end_txid: base_offset,
        last_entry_id: None,
        size_bytes: 0,
        created_ms: 5,
        owner_epoch: 0,
    }
}

async fn ledger(store: &MetadataStore) -> u64 {
    store.allocate_ledger().await.expect("allocate a ledger id")
}

/// Acquire partition 0 of a new topic and write `segments` completed
/// segments of 10 records each; returns the stream id.
async fn populate(store: &MetadataStore, name: &str, segments: u64) -> StreamId {
    let (cmd, id) = create_topic(name, 2);
    store.write(cmd).await.expect("create topic");
    let stream = StreamId {
        topic_id: id,
        partition: 0,
    };
    let epoch = store
        .acquire_stream(stream, NodeId::new(1), Some(0))
        .await
        .expect("acquire");
    for lssn in 1..=segments {
        let ledger_id = ledger(store).await;
        let base = (lssn - 1) * 10;
        store
            .add_segment(stream, epoch, segment(lssn, ledger_id, base))
            .await
            .expect("add segment");
        store
            .seal_segment(
                stream,
                epoch,
                SegmentSeal {
                    lssn,
                    last_offset: Some(base + 9),
                    end_txid: base + 9,
                    last_entry_id: Some(9),
                    size_bytes: 1000,
                },
            )
            .await
            .expect("complete segment");
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_restart_and_ledger_ids_are_not_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(config(dir.path())).await.expect("open");
    assert!(store.is_leader());
    let cluster_id = store.read(|s| s.cluster_id.clone());
    assert_eq!(
        Uuid::parse_str(&cluster_id).map(|u| u.get_version_num()).ok(),
        Some(4)
    );

    let stream = populate(&store, "orders", 3).await;
    store.truncate_stream(stream, 12).await.expect("truncate");
    let err = store
        .acquire_stream(stream, NodeId::new(2), Some(7))
        .await
        .expect_err("stale epoch is refused");
    assert!(matches!(
        err,
        MetadataError::Rejected(ApplyError::EpochMismatch {
            given: 7,
            current: 1,
            ..
        })
    ));
    let before = store.read(|s| s.clone());
    assert_eq!(before.next_ledger_id, 4);
    assert_eq!(
        before
            .stream(&stream)
            .map(|m| (m.log_start_offset, m.segments.len())),
        Some((12, 2))
    );
    store.shutdown().await.expect("shutdown");
    assert!(
        store.write(Command::AllocateLedgerId).await.is_err(),
        "writes fail after shutdown"
    );
    store.shutdown().await.expect("second shutdown is a no-op");
    drop(store);

    let store = MetadataStore::open(config(dir.path())).await.expect("reopen");
    assert_eq!(store.read(|s| s.clone()), before);
    assert_eq!(ledger(&store).await, 4, "ledger ids continue after restart");
    assert!(store.is_leader());
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_recovers_from_snapshot_and_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tuning = RaftTuning {
        snapshot_logs_since_last: 10,
        max_in_snapshot_log_to_keep: 0,
        ..RaftTuning::default()
    };
    let store = MetadataStore::open_tuned(config(dir.path()), tuning.clone())
        .await
        .expect("open");
    // 2 + 3*8 commands: several snapshots, plus a tail after the last one.
    populate(&store, "a", 8).await;
    populate(&store, "b", 1).await;
    // Wait for the snapshot and the purge that follows it.
    let mut snapshotted = false;
    for _ in 0..200 {
        if dir_snapshot_purged(&store) {
            snapshotted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(snapshotted, "a snapshot was built and the log purged");
    let before = store.read(|s| s.clone());
    store.shutdown().await.expect("shutdown");
    drop(store);

    let store = MetadataStore::open_tuned(config(dir.path()), tuning)
        .await
        .expect("reopen");
    assert!(
        dir_snapshot_purged(&store),
        "the reopened log starts after a purged prefix"
    );
    assert_eq!(store.read(|s| s.clone()), before);
    assert_eq!(ledger(&store).await, before.next_ledger_id);
    store.shutdown().await.expect("shutdown");
}

/// Whether Raft reports a snapshot and a purged log prefix.
fn dir_snapshot_purged(store: &MetadataStore) -> bool {
    let m = store.raft_metrics();
    m.snapshot.is_some() && m.purged.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_receive_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(config(dir.path())).await.expect("open");
    let mut events = store.subscribe();
    let (cmd, id) = create_topic("t", 1);
    store.write(cmd).await.expect("create");
    let stream = StreamId {
        topic_id: id,
        partition: 0,
    };
    store
        .write(Command::AcquireStream {
            stream,
            owner: NodeId::new(3),
            expected_epoch: None,
        })
        .await
        .expect("acquire");
    store
        .write(Command::AddSegment {
            stream,
            owner_epoch: 1,
            segment: segment(1, 9, 0),
        })
        .await
        .expect("add");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("event")
                .expect("recv"),
        );
    }
    assert_eq!(
        got,
        vec![
            MetaEvent::TopicCreated { name: "t".into(), id },
            MetaEvent::StreamOwnerChanged {
                stream,
                owner: NodeId::new(3),
                epoch: 1
            },
            MetaEvent::SegmentAdded { stream, lssn: 1 },
        ]
    );
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_all_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(config(dir.path())).await.expect("open");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store: Arc<MetadataStore> = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let (cmd, _) = create_topic(&format!("t{t}-{i}"), 1);
                store.write(cmd).await.expect("create");
                ids.push(ledger(&store).await);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=80).collect::<Vec<u64>>(),
        "every ledger id handed out exactly once"
    );
    assert_eq!(store.read(|s| (s.topics.len(), s.streams.len())), (80, 80));
    let exported: Vec<String> = prometheus::gather()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    for name in [
        "distlog_metadata_writes_total",
        "distlog_metadata_write_seconds",
        "distlog_metadata_last_applied_index",
    ] {
        assert!(
            exported.iter().any(|n| n == name),
            "{name} is exported: {exported:?}"
        );
    }
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_of_a_live_directory_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(config(dir.path())).await.expect("open");
    match MetadataStore::open(config(dir.path())).await {
        Err(MetadataError::Storage(msg)) => assert!(msg.contains("stop it first"), "{msg}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a locked directory must not open twice"),
    }
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_with_another_node_id_fails_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(config(dir.path())).await.expect("open");
    store.shutdown().await.expect("shutdown");
    let mut other = config(dir.path());
    other.node_id = NodeId::new(2);
    let tuning = RaftTuning {
        startup_timeout: Duration::from_secs(1),
        ..RaftTuning::default()
    };
    match MetadataStore::open_tuned(other, tuning).await {
        Err(MetadataError::Raft(msg)) => assert!(msg.contains("node_id 2"), "{msg}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("node 2 is not a member of node 1's group"),
    }
    // The failed open released the directory.
    let store = MetadataStore::open(config(dir.path()))
        .await
        .expect("reopen as node 1");
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_shutdown_eventually_releases_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(config(dir.path())).await.expect("open");
    let (cmd, _) = create_topic("kept", 1);
    store.write(cmd).await.expect("create");
    drop(store);
    let mut reopened = None;
    for _ in 0..100 {
        match MetadataStore::open(config(dir.path())).await {
            Ok(s) => {
                reopened = Some(s);
                break;
            }
            Err(MetadataError::Storage(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let store = reopened.expect("directory released after drop");
    assert!(store.read(|s| s.topic("kept").is_some()));
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_return_their_replies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(config(dir.path())).await.expect("open");

    assert_eq!(store.allocate_producer_ids(10).await.expect("producer ids"), 0);
    assert_eq!(store.allocate_producer_ids(5).await.expect("producer ids"), 10);
    assert!(matches!(
        store.allocate_producer_ids(0).await,
        Err(MetadataError::Rejected(ApplyError::Invalid(_)))
    ));

    let (cmd, _) = create_topic("t", 1);
    store.write(cmd).await.expect("create topic");
    let configs = BTreeMap::from([("segment.bytes".to_string(), "4096".to_string())]);
    store
        .alter_topic_configs("t", configs.clone())
        .await
        .expect("alter configs");
    assert_eq!(
        store.read(|s| s.topic("t").map(|t| t.configs.clone())),
        Some(configs)
    );
    assert!(matches!(
        store.alter_topic_configs("missing", BTreeMap::new()).await,
        Err(MetadataError::Rejected(ApplyError::UnknownTopic(_)))
    ));

    let stream = store.read(|s| s.topic("t").map(|t| t.stream(0))).expect("topic");
    let epoch = store
        .acquire_stream(stream, NodeId::new(1), Some(0))
        .await
        .expect("acquire");
    assert_eq!(epoch, 1);
    let first = store.allocate_ledger().await.expect("ledger");
    store
        .add_segment(stream, epoch, segment(1, first, 0))
        .await
        .expect("add segment");
    let seal = |lssn: u64, last: u64| SegmentSeal {
        lssn,
        last_offset: Some(last),
        end_txid: last,
        last_entry_id: Some(0),
        size_bytes: 100,
    };
    let second = store.allocate_ledger().await.expect("ledger");
    store
        .roll_segment(stream, epoch, seal(1, 9), segment(2, second, 10))
        .await
        .expect("roll");
    assert!(matches!(
        store.seal_segment(stream, epoch + 1, seal(2, 19)).await,
        Err(MetadataError::Rejected(ApplyError::EpochMismatch { .. }))
    ));
    store
        .seal_segment(stream, epoch, seal(2, 19))
        .await
        .expect("seal");
    let segments = store
        .read(|s| s.stream(&stream).map(|m| m.segments.clone()))
        .expect("stream");
    assert_eq!(
        segments
            .iter()
            .map(|s| (s.state, s.last_offset))
            .collect::<Vec<_>>(),
        vec![
            (SegmentState::Completed, Some(9)),
            (SegmentState::Completed, Some(19))
        ]
    );
    assert_eq!(
        store.truncate_stream(stream, 10).await.expect("truncate"),
        vec![first]
    );
    store.shutdown().await.expect("shutdown");
}
