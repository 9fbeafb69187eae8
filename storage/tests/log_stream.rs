//! Log streams over the real metadata store (openraft + sled) and the real
//! bookie (journal + fsync), in a temp directory.
//!
//! Each "process incarnation" runs on its own tokio runtime; dropping the
//! runtime without a shutdown simulates a crash (nothing is sealed).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use distlog_metadata::{Command, MetadataConfig, MetadataStore, NodeId, SegmentState, StreamId, TopicMeta};
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::ledger::BookieClient;
use distlog_storage::log::{AppendRequest, Namespace, NamespaceConfig, StampFn, StreamConfig};
use distlog_storage::{Dlsn, StorageError};

/// Test record format: one "batch" = 8-byte base offset + 8-byte epoch +
/// body. The stamp hook fills the first 16 bytes.
fn stamp() -> StampFn {
    Arc::new(|buf: &mut BytesMut, base: u64, epoch: u64| {
        buf[0..8].copy_from_slice(&base.to_be_bytes());
        buf[8..16].copy_from_slice(&epoch.to_be_bytes());
    })
}

/// A one-record test batch: base(8) epoch(8) tag(8) body_len(4) body.
fn payload(tag: u64, len: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(28 + len);
    b.put_u64(u64::MAX);
    b.put_u64(u64::MAX);
    b.put_u64(tag);
    b.put_u32(len as u32);
    b.put_bytes((tag % 251) as u8, len);
    b
}

struct Node {
    meta: Arc<MetadataStore>,
    bookie: Arc<Bookie>,
    ns: Arc<Namespace>,
}

async fn start(dir: &Path, defaults: StreamConfig, tail_cache_bytes: usize) -> Node {
    let meta = MetadataStore::open(MetadataConfig {
        data_dir: dir.join("meta"),
        node_id: NodeId::new(1),
        raft_addr: "127.0.0.1:0".into(),
        advertised_raft_addr: None,
        voters: Default::default(),
        seeds: Vec::new(),
    })
    .await
    .expect("metadata opens");
    let bdir = dir.join("bookie");
    let bookie = tokio::task::spawn_blocking(move || {
        Bookie::open(BookieConfig {
            dir: bdir,
            bookie_id: NodeId::new(1),
        })
    })
    .await
    .expect("join")
    .expect("bookie opens");
    let ns = Namespace::open(
        meta.clone(),
        Arc::new(LocalBookie(bookie.clone())),
        NamespaceConfig {
            broker_id: NodeId::new(1),
            stamp: stamp(),
            tail_cache_bytes,
            stream_config: defaults.for_every_stream(),
            speculative_read_delay: Some(std::time::Duration::from_millis(50)),
            ownership: Default::default(),
            stream_state: None,
            reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
        },
    )
    .await
    .expect("namespace opens");
    Node { meta, bookie, ns }
}

async fn stop(n: Node) {
    n.ns.shutdown().await.expect("namespace shutdown");
    n.bookie.shutdown();
    n.meta.shutdown().await.expect("metadata shutdown");
}

async fn create_topic(meta: &MetadataStore, name: &str, partitions: u32) -> TopicMeta {
    meta.write(Command::CreateTopic {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions,
        configs: BTreeMap::new(),
        created_ms: 0,
    })
    .await
    .expect("topic created");
    meta.read(|s| s.topic(name).cloned()).expect("topic exists")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Read the whole stream back as (offset of batch, tag) pairs, checking the
/// stamped base offsets match the entry layout.
async fn read_all(ns: &Namespace, s: StreamId) -> Vec<(u64, u64)> {
    let (start, hw) = ns.bounds(s).await.expect("bounds");
    let mut out = Vec::new();
    let mut off = start;
    while off < hw {
        let r = ns.read(s, off, 64 * 1024).await.expect("read");
        assert!(
            !r.entries.is_empty(),
            "read at {off} below hw {hw} returned nothing"
        );
        for e in r.entries {
            // Each entry holds one or more 1-record test batches.
            let mut p = &e.payload[..];
            let mut seq = e.first_seq;
            while !p.is_empty() {
                let base = u64::from_be_bytes(p[0..8].try_into().unwrap());
                let tag = u64::from_be_bytes(p[16..24].try_into().unwrap());
                let len = u32::from_be_bytes(p[24..28].try_into().unwrap()) as usize;
                assert_eq!(base, seq, "stamped base offset");
                assert!(
                    p[28..28 + len].iter().all(|b| *b == (tag % 251) as u8),
                    "body intact"
                );
                out.push((base, tag));
                seq += 1;
                p = &p[28 + len..];
            }
            off = e.first_seq + e.record_count as u64;
        }
    }
    out
}

#[test]
fn concurrent_appends_get_continuous_offsets_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let t = create_topic(&n.meta, "t", 1).await;
        let s = t.stream(0);
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let ns = n.ns.clone();
            tasks.push(tokio::spawn(async move {
                let mut offs = Vec::new();
                for i in 0..250u64 {
                    let tag = w * 1000 + i;
                    let r = ns
                        .append(
                            s,
                            AppendRequest {
                                payload: payload(tag, 8),
                                record_count: 1,
                                max_timestamp: 1000 + i as i64,
                            },
                        )
                        .await
                        .expect("append");
                    offs.push((r.base_offset, tag));
                }
                offs
            }));
        }
        let mut acked = Vec::new();
        for t in tasks {
            acked.extend(t.await.unwrap());
        }
        acked.sort();
        assert_eq!(acked.len(), 2000);
        assert!(
            acked.iter().enumerate().all(|(i, (o, _))| *o == i as u64),
            "offsets 0..2000, no gaps"
        );
        assert_eq!(n.ns.bounds(s).await.unwrap(), (0, 2000));
        assert_eq!(read_all(&n.ns, s).await, acked);
        // Per-writer order is preserved in the stream.
        for w in 0..8u64 {
            let mine: Vec<u64> = acked
                .iter()
                .filter(|(_, t)| t / 1000 == w)
                .map(|(_, t)| *t)
                .collect();
            assert_eq!(mine, (0..250).map(|i| w * 1000 + i).collect::<Vec<_>>());
        }
        assert!(matches!(
            n.ns.read(s, 2001, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert!(n.ns.read(s, 2000, 100).await.unwrap().entries.is_empty());
        stop(n).await;
    });
}

#[test]
fn clean_restart_and_crash_restart_keep_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let s = create_topic(&n.meta, "t", 1).await.stream(0);
        for i in 0..100u64 {
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(i, 100),
                    record_count: 1,
                    max_timestamp: i as i64,
                },
            )
            .await
            .unwrap();
        }
        stop(n).await;
        s
    });
    // Clean restart: the segment was sealed; appends continue at 100.
    let runtime = rt();
    runtime.block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let segs = n.meta.read(|st| st.stream(&s).unwrap().segments.clone());
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].state, SegmentState::Completed);
        assert_eq!(segs[0].last_offset, Some(99));
        assert_eq!(segs[0].last_entry_id.map(|e| e <= 99), Some(true));
        let r =
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(100, 100),
                    record_count: 1,
                    max_timestamp: 5,
                },
            )
            .await
            .unwrap();
        assert_eq!(r.base_offset, 100);
        assert_eq!(r.dlsn, Some(Dlsn::new(2, 0, 0)));
        for i in 101..150u64 {
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(i, 100),
                    record_count: 1,
                    max_timestamp: i as i64,
                },
            )
            .await
            .unwrap();
        }
        // No shutdown: dropping the runtime below kills every task (crash);
        // nothing is sealed or flushed beyond what was acknowledged.
        drop(n);
    });
    drop(runtime);
    rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 0).await;
        let got = read_all(&n.ns, s).await;
        assert_eq!(got, (0..150u64).map(|i| (i, i)).collect::<Vec<_>>());
        let segs = n.meta.read(|st| st.stream(&s).unwrap().segments.clone());
        assert_eq!(
            segs[1].state,
            SegmentState::Completed,
            "recovery sealed the crashed segment"
        );
        assert_eq!(segs[1].base_offset, 100);
        assert_eq!(segs[1].last_offset, Some(149));
        let r =
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(150, 10),
                    record_count: 1,
                    max_timestamp: 1,
                },
            )
            .await
            .unwrap();
        assert_eq!(r.base_offset, 150);
        stop(n).await;
    });
}

#[test]
fn segments_roll_by_size_and_reads_cross_them_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = StreamConfig {
            max_segment_bytes: 4096,
            ..StreamConfig::default()
        };
        let n = start(dir.path(), cfg, 0).await;
        let s = create_topic(&n.meta, "t", 1).await.stream(0);
        for i in 0..200u64 {
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(i, 200),
                    record_count: 1,
                    max_timestamp: 10 * i as i64,
                },
            )
            .await
            .unwrap();
        }
        let segs = n.meta.read(|st| st.stream(&s).unwrap().segments.clone());
        assert!(segs.len() >= 5, "rolled into {} segments", segs.len());
        let mut expect_base = 0;
        for (i, g) in segs.iter().enumerate() {
            assert_eq!(g.lssn, i as u64 + 1);
            assert_eq!(g.base_offset, expect_base);
            if g.state == SegmentState::Completed {
                expect_base = g.last_offset.unwrap() + 1;
                assert!(g.size_bytes >= 4096);
            }
        }
        // Tail cache disabled: everything is read from the bookie.
        let got = read_all(&n.ns, s).await;
        assert_eq!(got, (0..200u64).map(|i| (i, i)).collect::<Vec<_>>());
        // offset -> DLSN -> txid
        let (dlsn, txid) = n.ns.locate(s, 150).await.unwrap();
        assert_eq!(txid, 1500);
        let seg = segs.iter().find(|g| g.lssn == dlsn.lssn).unwrap();
        assert!(seg.base_offset <= 150);
        // txid lookups: first entry with txid >= T
        let hit = n.ns.find_by_txid(s, 1495).await.unwrap().unwrap();
        assert_eq!(hit.entry.first_seq, 150);
        assert_eq!(hit.entry.txid, 1500);
        let hit = n.ns.find_by_txid(s, 0).await.unwrap().unwrap();
        assert_eq!(hit.entry.first_seq, 0);
        assert!(n.ns.find_by_txid(s, 1991).await.unwrap().is_none());
        stop(n).await;
    });
}

#[test]
fn txid_never_decreases_when_timestamps_do() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let s = create_topic(&n.meta, "t", 1).await.stream(0);
        for (i, ts) in [100i64, 50, 200, 150, -1].iter().enumerate() {
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(i as u64, 8),
                    record_count: 1,
                    max_timestamp: *ts,
                },
            )
            .await
            .unwrap();
        }
        let txids: Vec<u64> = {
            let mut v = Vec::new();
            for o in 0..5 {
                v.push(n.ns.locate(s, o).await.unwrap().1);
            }
            v
        };
        assert_eq!(txids, vec![100, 100, 200, 200, 200]);
        assert_eq!(
            n.ns.find_by_txid(s, 150).await.unwrap().unwrap().entry.first_seq,
            2
        );
        stop(n).await;
    });
}

#[test]
fn deleting_a_topic_deletes_its_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let s = create_topic(&n.meta, "gone", 2).await.stream(1);
        n.ns.append(
            s,
            AppendRequest {
                payload: payload(1, 8),
                record_count: 1,
                max_timestamp: 0,
            },
        )
        .await
        .unwrap();
        let ledger = n.meta.read(|st| st.stream(&s).unwrap().segments[0].ledger_id);
        assert!(n.bookie.ledgers().contains(&ledger));
        n.meta
            .write(Command::DeleteTopic { name: "gone".into() })
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while n.bookie.ledgers().contains(&ledger) {
            assert!(
                std::time::Instant::now() < deadline,
                "ledger {ledger} not deleted"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(matches!(
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(2, 8),
                    record_count: 1,
                    max_timestamp: 0
                }
            )
            .await,
            Err(StorageError::NoSuchStream(_))
        ));
        stop(n).await;
    });
}

#[test]
fn long_poll_watch_sees_new_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let s = create_topic(&n.meta, "t", 1).await.stream(0);
        let mut w = n.ns.watch_high_watermark(s).await.unwrap();
        assert_eq!(*w.borrow(), 0);
        let ns = n.ns.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            ns.append(
                s,
                AppendRequest {
                    payload: payload(7, 8),
                    record_count: 3,
                    max_timestamp: 0,
                },
            )
            .await
            .unwrap();
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), w.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*w.borrow(), 3);
        stop(n).await;
    });
}

#[test]
fn a_stream_handle_serves_its_incarnation_then_answers_as_a_call_by_id() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let kept = create_topic(&n.meta, "kept", 1).await.stream(0);
        let gone = create_topic(&n.meta, "gone", 1).await.stream(0);
        let h = n.ns.open_stream(kept).await.expect("handle");
        assert_eq!(h.id(), kept);
        let r = h
            .append(AppendRequest {
                payload: payload(1, 8),
                record_count: 2,
                max_timestamp: 5,
            })
            .await
            .expect("append through the handle");
        assert_eq!(r.base_offset, 0);
        assert_eq!(h.bounds().unwrap(), (0, 2));
        assert_eq!(h.bounds().unwrap(), n.ns.bounds(kept).await.unwrap());
        assert_eq!(h.read(0, 1 << 20).await.unwrap().entries.len(), 1);
        assert_eq!(h.find_by_txid(5).await.unwrap().unwrap().entry.first_seq, 0);
        assert_eq!(h.locate(1).await.unwrap(), n.ns.locate(kept, 1).await.unwrap());
        let epoch = h.owner_epoch().unwrap();
        assert_eq!(h.epochs().unwrap().current_epoch, epoch);

        // The topic is deleted under an open handle: its long polls wake and
        // it answers NoSuchStream, as a call by id does.
        let g = n.ns.open_stream(gone).await.expect("handle");
        let mut w = g.watch_high_watermark().unwrap();
        w.mark_unchanged();
        n.meta
            .write(Command::DeleteTopic { name: "gone".into() })
            .await
            .expect("topic deleted");
        tokio::time::timeout(std::time::Duration::from_secs(5), w.changed())
            .await
            .expect("the watch wakes when the stream closes")
            .expect("the handle keeps the watch open");
        assert!(matches!(g.read(0, 100).await, Err(StorageError::NoSuchStream(s)) if s == gone));
        assert!(matches!(g.bounds(), Err(StorageError::NoSuchStream(_))));
        assert!(matches!(
            n.ns.bounds(gone).await,
            Err(StorageError::NoSuchStream(_))
        ));

        // Shutdown: the handle fails as calls by id do.
        n.ns.shutdown().await.unwrap();
        assert!(matches!(h.read(0, 100).await, Err(StorageError::ShuttingDown)));
        assert!(matches!(h.owner_epoch(), Err(StorageError::ShuttingDown)));
        assert!(matches!(
            n.ns.read(kept, 0, 100).await,
            Err(StorageError::ShuttingDown)
        ));
        stop(n).await;
    });
}

#[test]
fn orphan_ledgers_are_collected_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let n = start(dir.path(), StreamConfig::default(), 1 << 20).await;
        let s = create_topic(&n.meta, "t", 1).await.stream(0);
        n.ns.append(
            s,
            AppendRequest {
                payload: payload(1, 8),
                record_count: 1,
                max_timestamp: 0,
            },
        )
        .await
        .unwrap();
        let live = n.meta.read(|st| st.stream(&s).unwrap().segments[0].ledger_id);
        // A ledger left behind by a crash between a metadata change and the
        // bookie delete.
        let orphan = 9999;
        LocalBookie(n.bookie.clone())
            .add_entry(distlog_storage::ledger::AddRequest {
                ledger_id: orphan,
                row: distlog_storage::ledger::IndexRow {
                    entry_id: 0,
                    first_seq: 0,
                    record_count: 1,
                    txid: 0,
                    len: 3,
                },
                prev_entry_id: None,
                lac: None,
                recovery: false,
                payload: vec![bytes::Bytes::from_static(b"abc")],
            })
            .await
            .unwrap();
        let deleted = distlog_storage::log::gc::collect_orphan_ledgers(&n.meta, &n.bookie)
            .await
            .unwrap();
        assert_eq!(deleted, vec![orphan]);
        let mut left = n.bookie.ledgers();
        left.sort();
        assert_eq!(left, vec![live]);
        stop(n).await;
    });
}

#[test]
fn a_changed_topic_or_broker_config_applies_to_the_open_stream() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut n = start(dir.path(), StreamConfig::default(), 0).await;
        // The embedder's settings: segment size from the topic's "seg" config, else the
        // cluster-wide dynamic broker config "seg", else 1 MiB (read nested: the namespace may
        // call this under a metadata read).
        let meta = n.meta.clone();
        let cfg_fn: distlog_storage::log::StreamConfigFn = Arc::new(move |t: &TopicMeta| {
            let broker = meta.read_nested(|s| s.broker_configs.cluster.get("seg").cloned());
            let seg = t.configs.get("seg").cloned().or(broker);
            StreamConfig {
                max_segment_bytes: seg.and_then(|v| v.parse().ok()).unwrap_or(1 << 20),
                ..StreamConfig::default()
            }
        });
        n.ns.shutdown().await.unwrap();
        n.ns = Namespace::open(
            n.meta.clone(),
            Arc::new(LocalBookie(n.bookie.clone())),
            NamespaceConfig {
                broker_id: NodeId::new(1),
                stamp: stamp(),
                tail_cache_bytes: 0,
                stream_config: cfg_fn,
                speculative_read_delay: None,
                ownership: Default::default(),
                stream_state: None,
                reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
            },
        )
        .await
        .unwrap();
        let s = create_topic(&n.meta, "t", 1).await.stream(0);
        let append = |i: u64| {
            n.ns.append(
                s,
                AppendRequest {
                    payload: payload(i, 1000),
                    record_count: 1,
                    max_timestamp: i as i64,
                },
            )
        };
        for i in 0..10 {
            append(i).await.unwrap();
        }
        let segments = || n.meta.read(|st| st.stream(&s).unwrap().segments.clone());
        let epoch = || n.meta.read(|st| st.stream(&s).unwrap().owner_epoch);
        assert_eq!(segments().len(), 1);
        let epoch_before = epoch();

        // Rolls at the new size from now on, without reopening: each entry is ~1028 bytes.
        let mut i = 10;
        let changes = [
            (
                4096,
                Command::AlterTopicConfigs {
                    name: "t".into(),
                    configs: BTreeMap::from([("seg".to_string(), "4096".to_string())]),
                },
            ),
            (
                2048,
                Command::AlterBrokerConfigs {
                    broker: None,
                    configs: BTreeMap::from([("seg".to_string(), "2048".to_string())]),
                },
            ),
        ];
        for (limit, cmd) in changes {
            if let Command::AlterBrokerConfigs { .. } = cmd {
                // The topic's own value would win over the broker's: remove it first.
                n.meta
                    .write(Command::AlterTopicConfigs {
                        name: "t".into(),
                        configs: BTreeMap::new(),
                    })
                    .await
                    .unwrap();
            }
            n.meta.write(cmd).await.unwrap();
            let completed_before = segments().len() - 1;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                append(i).await.unwrap();
                i += 1;
                let segs = segments();
                // Skip the segment that was open when the config changed.
                let rolled: Vec<u64> = segs
                    .iter()
                    .skip(completed_before + 1)
                    .filter(|g| g.state == SegmentState::Completed)
                    .map(|g| g.size_bytes)
                    .collect();
                if rolled.len() >= 3 {
                    for size in rolled {
                        assert!(
                            (limit..limit + 1100).contains(&size),
                            "rolled at {size}, limit {limit}"
                        );
                    }
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no rolls at {limit}: {segs:?}"
                );
            }
        }
        assert_eq!(epoch(), epoch_before, "the stream was not reopened");
        let got = read_all(&n.ns, s).await;
        assert_eq!(got, (0..i).map(|k| (k, k)).collect::<Vec<_>>());
        stop(n).await;
    });
}
