//! Stream ownership moved by the controller (Assigned mode) between two
//! namespaces with their own bookies, over a 2/2/2 replicated ensemble: the
//! new owner adopts the stream at the assigned epoch, recovers the old
//! owner's in-progress segment through the network (fencing it), and
//! carries on at the next offset; the old owner can no longer append, and
//! every acknowledged record is read back in order from the new owner.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use distlog_metadata::{Command, MetadataStore, NodeId, StreamId};
use distlog_storage::bookie::{Bookie, LocalBookie};
use distlog_storage::bookie_net::BookieServer;
use distlog_storage::log::{Namespace, NamespaceConfig, Ownership};
use distlog_storage::StorageError;

/// Two nodes, each a namespace (Assigned ownership) with its own bookie
/// served over the network, sharing one metadata store.
struct TwoNodes {
    _dir: tempfile::TempDir,
    meta: Arc<MetadataStore>,
    bookies: Vec<Arc<Bookie>>,
    servers: Vec<BookieServer>,
    namespaces: Vec<Arc<Namespace>>,
}

impl TwoNodes {
    async fn start() -> TwoNodes {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = common::open_meta(dir.path()).await;
        let mut bookies = Vec::new();
        let mut servers = Vec::new();
        let mut namespaces = Vec::new();
        for id in 1..=2u32 {
            let bookie = common::open_bookie(dir.path(), id).await;
            let server = common::serve_registered(&meta, &bookie, id).await;
            let ns = Namespace::open(
                meta.clone(),
                Arc::new(LocalBookie(bookie.clone())),
                NamespaceConfig {
                    broker_id: NodeId::from(id),
                    stamp: common::stamp(),
                    tail_cache_bytes: 1 << 20,
                    stream_config: common::replicated_stream_configs(),
                    speculative_read_delay: Some(Duration::from_millis(50)),
                    ownership: Ownership::Assigned,
                    stream_state: None,
                    reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
                },
            )
            .await
            .expect("namespace");
            bookies.push(bookie);
            servers.push(server);
            namespaces.push(ns);
        }
        TwoNodes {
            _dir: dir,
            meta,
            bookies,
            servers,
            namespaces,
        }
    }

    async fn stop(self) {
        common::stop_all(&self.namespaces, self.servers, self.bookies, &self.meta).await;
    }
}

async fn assign(meta: &MetadataStore, stream: StreamId, owner: u32) {
    let epoch = meta.read(|s| s.stream(&stream).expect("stream").owner_epoch);
    meta.write(Command::AcquireStream {
        stream,
        owner: NodeId::from(owner),
        expected_epoch: Some(epoch),
    })
    .await
    .expect("assignment");
}

/// Append until the namespace accepts (it opens the stream on the ownership event).
async fn append_when_open(ns: &Namespace, stream: StreamId, tag: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ns.append(stream, common::record(tag, 0)).await {
            Ok(r) => return r.base_offset,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("append {tag} never accepted: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assigned_owner_recovers_and_continues_and_the_old_owner_is_locked_out() {
    let nodes = TwoNodes::start().await;
    let (meta, namespaces) = (&nodes.meta, &nodes.namespaces);
    let stream = common::create_replicated_topic(meta, "moving", (2, 2, 2)).await;
    let (ns1, ns2) = (&namespaces[0], &namespaces[1]);

    // Unassigned: nobody writes.
    assert!(
        ns1.append(stream, common::record(0, 0)).await.is_err(),
        "no owner yet"
    );
    assign(meta, stream, 1).await;
    assert_eq!(append_when_open(ns1, stream, 0).await, 0);
    for tag in 1..50u64 {
        assert_eq!(
            ns1.append(stream, common::record(tag, 0))
                .await
                .expect("owner 1 appends")
                .base_offset,
            tag
        );
    }
    assert!(
        ns2.append(stream, common::record(999, 0)).await.is_err(),
        "a non-owner refuses appends"
    );

    // A handle resolved on the owner before the move, as a request holds it.
    let handle = ns1.open_stream(stream).await.expect("owner 1 opens a handle");
    let mut watch = handle.watch_high_watermark().expect("watch");
    watch.mark_unchanged();

    // The controller moves the stream to broker 2.
    assign(meta, stream, 2).await;
    assert_eq!(
        append_when_open(ns2, stream, 50).await,
        50,
        "the new owner continues at the next offset"
    );
    // The old incarnation ended: its watchers wake, and the handle answers
    // as a call by id does (NotOwner), reads included.
    tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .expect("a long poll on the old owner wakes when its stream closes")
        .expect("the handle keeps the watch open");
    assert!(
        matches!(handle.append(common::record(999, 0)).await, Err(StorageError::NotOwner(s)) if s == stream),
        "an append through the old owner's handle is refused as by id"
    );
    assert!(matches!(
        handle.read(0, 1 << 20).await,
        Err(StorageError::NotOwner(_))
    ));
    assert!(matches!(handle.bounds(), Err(StorageError::NotOwner(_))));
    assert!(matches!(
        ns1.read(stream, 0, 1 << 20).await,
        Err(StorageError::NotOwner(_))
    ));
    for tag in 51..100u64 {
        assert_eq!(
            ns2.append(stream, common::record(tag, 0))
                .await
                .expect("owner 2 appends")
                .base_offset,
            tag
        );
    }
    assert!(
        ns1.append(stream, common::record(999, 0)).await.is_err(),
        "the old owner is locked out"
    );

    // Every acknowledged record, in order, from the new owner.
    let (start, hw) = ns2.bounds(stream).await.expect("bounds");
    assert_eq!((start, hw), (0, 100));
    let mut tags = Vec::new();
    let mut off = 0;
    while off < hw {
        let r = ns2.read(stream, off, 1 << 20).await.expect("read");
        for e in &r.entries {
            let mut p = &e.payload[..];
            while !p.is_empty() {
                tags.push(u64::from_be_bytes(p[8..16].try_into().expect("tag")));
                p = &p[16..];
            }
            off = e.first_seq + u64::from(e.record_count);
        }
    }
    assert_eq!(tags, (0..100).collect::<Vec<u64>>());
    let segments = meta.read(|s| s.stream(&stream).expect("stream").segments.clone());
    assert!(
        segments.len() >= 2,
        "the old owner's segment was sealed and a new one opened"
    );
    assert_eq!(
        segments[0].last_offset,
        Some(49),
        "recovery sealed the old segment at its last acknowledged record"
    );

    nodes.stop().await;
}

/// The owner epoch of `ns`'s incarnation of `stream`, if it serves one.
async fn served_epoch(ns: &Namespace, stream: StreamId) -> Option<u64> {
    ns.open_stream(stream).await.ok()?.owner_epoch().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_that_move_while_a_stream_opens_leave_the_owner_at_the_assigned_epoch() {
    // The campaign's seed 2108: the stream was assigned to a node at epoch
    // 2 and, while it was opening there, again at epoch 3. The event of
    // epoch 3 found no open incarnation, waited for the opening, and kept
    // it: the node served epoch 2 while metadata said 3, and consumers
    // asking for epoch 3 were refused (UNKNOWN_LEADER_EPOCH) for good.
    let nodes = TwoNodes::start().await;
    let (meta, namespaces) = (&nodes.meta, &nodes.namespaces);
    let stream = common::create_replicated_topic(meta, "flapping", (2, 2, 2)).await;
    for round in 0..12u32 {
        let next = u64::from(round);
        // Moves in quick succession, each opening racing the next event:
        // elsewhere and back, then again to the same node.
        let target = 1 + round % 2;
        let other = 3 - target;
        assign(meta, stream, other).await;
        assign(meta, stream, target).await;
        assign(meta, stream, target).await;
        let epoch = meta.read(|s| s.stream(&stream).expect("stream").owner_epoch);
        let owner_ns = &namespaces[target as usize - 1];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if served_epoch(owner_ns, stream).await == Some(epoch) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: node {target} serves epoch {:?}, metadata assigned epoch {epoch}",
                served_epoch(owner_ns, stream).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            append_when_open(owner_ns, stream, next).await,
            next,
            "round {round}"
        );
        assert_eq!(
            served_epoch(&namespaces[other as usize - 1], stream).await,
            None,
            "round {round}: node {other} no longer serves the stream"
        );
    }

    nodes.stop().await;
}
