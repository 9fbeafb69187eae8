//! A namespace on a node without a bookie of its own (a broker of the
//! split topology) over three bookies served over TCP: every ledger, E = 1
//! included, lands on a registered bookie; a deleted topic's ledgers are
//! deleted on every bookie of their ensembles, a bookie that was down
//! collects its copy as an orphan when it starts, and when the stream's
//! owner is gone each bookie node deletes its own copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use distlog_metadata::{Command, LedgerId, MetadataStore, NodeId, StreamId};
use distlog_storage::bookie::{Bookie, LocalBookie};
use distlog_storage::log::{Namespace, NamespaceConfig};

/// The broker-only node's id (no bookie registered under it).
const BROKER: u64 = 4;

fn config(broker_id: u64) -> NamespaceConfig {
    NamespaceConfig {
        broker_id: NodeId::new(broker_id),
        stamp: common::stamp(),
        tail_cache_bytes: 0,
        stream_config: common::replicated_stream_configs(),
        speculative_read_delay: Some(Duration::from_millis(50)),
        ownership: Default::default(),
        stream_state: None,
        reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
    }
}

/// Append `n` records and read them back in order.
async fn write_and_read(ns: &Namespace, stream: StreamId, n: u64) {
    for tag in 0..n {
        let r = ns.append(stream, common::record(tag, 0)).await.expect("append");
        assert_eq!(r.base_offset, tag);
    }
    let mut next = 0u64;
    while next < n {
        let read = ns.read(stream, next, 1 << 20).await.expect("read");
        for e in &read.entries {
            assert_eq!(e.first_seq, next);
            for i in 0..u64::from(e.record_count) {
                let at = 16 * i as usize;
                let tag = u64::from_be_bytes(e.payload[at + 8..at + 16].try_into().expect("8 bytes"));
                assert_eq!(tag, next + i);
            }
            next += u64::from(e.record_count);
        }
    }
}

fn ledgers_of(meta: &MetadataStore, stream: StreamId) -> Vec<(LedgerId, Vec<u64>)> {
    meta.read(|s| {
        s.stream(&stream)
            .expect("stream")
            .segments
            .iter()
            .map(|g| (g.ledger_id, g.ensemble.iter().map(|b| b.get()).collect()))
            .collect()
    })
}

/// Wait until `bookie` holds `ledger` (`present`) or not.
async fn wait_holds(bookie: &Bookie, ledger: LedgerId, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while bookie.ledgers().contains(&ledger) != present {
        assert!(
            Instant::now() < deadline,
            "ledger {ledger}: expected present={present} on the bookie within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn delete_topic(meta: &MetadataStore, name: &str) {
    meta.write(Command::DeleteTopic { name: name.into() })
        .await
        .expect("delete topic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_only_node_writes_to_remote_bookies_and_deletes_ledgers_on_every_ensemble_bookie() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = common::open_meta(dir.path()).await;
    let mut bookies: Vec<Arc<Bookie>> = Vec::new();
    let mut servers = Vec::new();
    for id in 1..=3u32 {
        let bookie = common::open_bookie(dir.path(), id).await;
        servers.push(Some(common::serve_registered(&meta, &bookie, id).await));
        bookies.push(bookie);
    }
    let ns = Namespace::open_without_bookie(meta.clone(), config(BROKER))
        .await
        .expect("namespace opens");

    // E = 1 and E = 3 streams: every ledger on bookies 1-3, none on the broker.
    let one = common::create_replicated_topic(&meta, "one", (1, 1, 1)).await;
    let three = common::create_replicated_topic(&meta, "three", (3, 3, 2)).await;
    write_and_read(&ns, one, 300).await;
    write_and_read(&ns, three, 300).await;
    let one_ledgers = ledgers_of(&meta, one);
    let three_ledgers = ledgers_of(&meta, three);
    for (ledger, ensemble) in &one_ledgers {
        assert_eq!(ensemble.len(), 1, "ledger {ledger}");
        assert!((1..=3).contains(&ensemble[0]), "ledger {ledger} on {ensemble:?}");
        assert!(bookies[ensemble[0] as usize - 1].ledgers().contains(ledger));
    }
    for (ledger, ensemble) in &three_ledgers {
        let mut e = ensemble.clone();
        e.sort_unstable();
        assert_eq!(e, vec![1, 2, 3], "ledger {ledger}");
    }
    assert!(!dir.path().join(format!("bookie{BROKER}")).exists());

    // Bookie 3 down: the owner deletes on 1 and 2; 3 keeps its copy.
    servers[2].take().expect("server 3").shutdown().await;
    delete_topic(&meta, "three").await;
    for (ledger, _) in &three_ledgers {
        wait_holds(&bookies[0], *ledger, false).await;
        wait_holds(&bookies[1], *ledger, false).await;
        assert!(bookies[2].ledgers().contains(ledger), "bookie 3 was down");
        let seen = ns.ledger_whereabouts(*ledger).await;
        let summary: Vec<(u64, bool, bool)> = seen
            .iter()
            .map(|r| (r.bookie.get(), r.reachable, r.exists))
            .collect();
        assert_eq!(
            summary,
            vec![(1, true, false), (2, true, false), (3, false, false)],
            "ledger {ledger}: {seen:?}"
        );
    }
    // Bookie 3 starts again: its startup GC collects exactly what it missed.
    let mut collected = distlog_storage::log::gc::collect_orphan_ledgers(&meta, &bookies[2])
        .await
        .expect("gc");
    collected.sort_unstable();
    let mut expected: Vec<LedgerId> = three_ledgers.iter().map(|(l, _)| *l).collect();
    expected.sort_unstable();
    assert_eq!(collected, expected);
    servers[2] = Some(common::serve_registered(&meta, &bookies[2], 3).await);

    // The owner is gone (shut down, never registered live): each bookie
    // node deletes its own copy of the E = 1 stream's ledgers.
    ns.shutdown().await.expect("shutdown");
    let (l, e) = one_ledgers[0].clone();
    let holder = e[0];
    let bookie_ns = Namespace::open(
        meta.clone(),
        Arc::new(LocalBookie(bookies[holder as usize - 1].clone())),
        config(holder),
    )
    .await
    .expect("bookie node namespace");
    delete_topic(&meta, "one").await;
    wait_holds(&bookies[holder as usize - 1], l, false).await;
    bookie_ns.shutdown().await.expect("shutdown");

    for s in servers.into_iter().flatten() {
        s.shutdown().await;
    }
    for b in bookies {
        b.shutdown();
    }
    meta.shutdown().await.expect("metadata shutdown");
}
