//! A log stream whose segments are replicated over three bookies reached
//! through the bookie network service (E/Qw/Qa = 3/3/2 from topic configs):
//! every acknowledged append is on at least two bookies, writes carry on
//! with one bookie down, and stop with an error, never an acknowledgement,
//! with two down (the stream then stays unavailable: it cannot be recovered
//! without a fencing quorum).

use std::sync::Arc;
use std::time::Duration;

mod common;

use bytes::{BufMut, BytesMut};
use distlog_metadata::NodeId;
use distlog_storage::bookie::LocalBookie;
use distlog_storage::ledger::BookieClient;
use distlog_storage::log::{AppendRequest, Namespace, NamespaceConfig, StampFn};

fn stamp() -> StampFn {
    Arc::new(|buf: &mut BytesMut, base: u64, _epoch: u64| {
        buf[0..8].copy_from_slice(&base.to_be_bytes());
    })
}

fn append(tag: u64) -> AppendRequest {
    let mut b = BytesMut::with_capacity(24);
    b.put_u64(u64::MAX);
    b.put_u64(tag);
    b.put_u64(tag.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    AppendRequest {
        payload: b,
        record_count: 1,
        max_timestamp: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bookies_replicate_and_two_failures_stop_acknowledgements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = common::open_meta(dir.path()).await;

    // Bookies 1, 2, 3, each in its own directory and served over TCP.
    let mut bookies = Vec::new();
    let mut servers = Vec::new();
    for id in 1..=3u32 {
        let bookie = common::open_bookie(dir.path(), id).await;
        let server = common::serve_registered(&meta, &bookie, id).await;
        bookies.push(bookie);
        servers.push(Some(server));
    }

    let ns = Namespace::open(
        meta.clone(),
        Arc::new(LocalBookie(bookies[0].clone())),
        NamespaceConfig {
            broker_id: NodeId::new(1),
            stamp: stamp(),
            tail_cache_bytes: 0,
            stream_config: common::replicated_stream_configs(),
            speculative_read_delay: Some(std::time::Duration::from_millis(50)),
            ownership: Default::default(),
            stream_state: None,
            reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
        },
    )
    .await
    .expect("namespace opens");
    let stream = common::create_replicated_topic(&meta, "replicated", (3, 3, 2)).await;

    for tag in 0..200u64 {
        let r = ns
            .append(stream, append(tag))
            .await
            .expect("append with all bookies up");
        assert_eq!(r.base_offset, tag);
    }
    let segment = meta.read(|s| s.stream(&stream).expect("stream").segments[0].clone());
    assert_eq!(segment.ensemble.len(), 3);
    assert_eq!((segment.write_quorum, segment.ack_quorum), (3, 2));
    let mut ensemble = segment.ensemble.clone();
    ensemble.sort();
    assert_eq!(ensemble, [1, 2, 3].map(NodeId::new));
    // Every acknowledged entry is durable on at least two bookies (Qa); with Qw = 3 all three
    // receive it, and the slowest may still be catching up.
    let mut holders = Vec::new();
    for b in &bookies {
        let last = LocalBookie(b.clone())
            .last_entry(segment.ledger_id)
            .await
            .expect("last entry");
        holders.push(last.map(|r| r.first_seq + u64::from(r.record_count)));
    }
    let complete = holders.iter().filter(|h| **h == Some(200)).count();
    assert!(complete >= 2, "entries on fewer than Qa bookies: {holders:?}");

    // The whole stream reads back in order.
    let read = ns.read(stream, 0, 1 << 20).await.expect("read");
    let mut seq = 0u64;
    for e in &read.entries {
        assert_eq!(e.first_seq, seq);
        seq += u64::from(e.record_count);
    }
    assert!(seq > 0);

    // One bookie (not this node's) down: appends still reach Qa = 2.
    servers[2].take().expect("server 3").shutdown().await;
    for tag in 200..300u64 {
        let r = tokio::time::timeout(Duration::from_secs(30), ns.append(stream, append(tag)))
            .await
            .expect("append with one bookie down finishes")
            .expect("append with one bookie down succeeds");
        assert_eq!(r.base_offset, tag);
    }

    // A second bookie down: Qa can no longer be met, so appends fail; none is acknowledged.
    servers[1].take().expect("server 2").shutdown().await;
    let mut refused = 0;
    for tag in 300..305u64 {
        match tokio::time::timeout(Duration::from_secs(30), ns.append(stream, append(tag))).await {
            Ok(Ok(r)) => panic!(
                "append {tag} acknowledged at offset {} with one bookie of three",
                r.base_offset
            ),
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("append {tag} hung instead of failing"),
        }
    }
    assert_eq!(refused, 5);
    // Without a fencing quorum (E - Qa + 1 = 2 bookies) the stream cannot be recovered, so it is
    // unavailable rather than served from one copy.
    assert!(
        ns.bounds(stream).await.is_err(),
        "a stream with one bookie of three must not recover"
    );
    // Every acknowledged append (0..300) is on this node's bookie.
    let ledgers = meta.read(|s| s.stream(&stream).expect("stream").segments.clone());
    let mut records = 0u64;
    for seg in &ledgers {
        if let Some(last) = LocalBookie(bookies[0].clone())
            .last_entry(seg.ledger_id)
            .await
            .expect("last")
        {
            records = records.max(last.first_seq + u64::from(last.record_count));
        }
    }
    assert!(
        records >= 300,
        "acknowledged appends missing from bookie 1: {records}"
    );

    ns.shutdown().await.ok();
    for s in servers.into_iter().flatten() {
        s.shutdown().await;
    }
    for b in bookies {
        b.shutdown();
    }
    meta.shutdown().await.expect("metadata shutdown");
}
