//! Retention on the 3-node cluster (scripts/local-cluster.sh), a 3/3/2 topic: expired segments
//! leave the metadata and their ledgers leave every bookie of their ensembles, and a `kill -9`
//! of the partition's owner while it is truncating loses nothing that should be kept and leaks no
//! ledger once the node is back.
//!
//! The topic keeps records for 2 s and rolls a segment every 4 KiB. An idempotent producer writes
//! rounds of records stamped an hour ago (each round seals a segment that is expired at once, so
//! the owner truncates continuously) and the owner is killed half-way. After the restart, fresh
//! records follow; then every segment holding only old records must be gone, every ledger copy
//! any bookie still holds must belong to a segment in metadata, and the partition must read back
//! exactly the records at and after its log start offset, fresh ones included, each once.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::cluster::LocalCluster;
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{now_ms, OrPanic};
use serde_json::Value;

const NODES: [usize; 3] = [1, 2, 3];

fn cluster() -> LocalCluster {
    LocalCluster::up(
        3,
        "--broker-session-timeout-ms 4000 --broker-heartbeat-interval-ms 1000 \
         --log-retention-check-interval-ms 500",
    )
    .expect("3-node cluster up")
}

/// The partition's `/admin/topics` entry, as the first answering node has it.
fn partition(c: &LocalCluster, topic: &str) -> Value {
    let v = c.get_json_any(&NODES, "/admin/topics").or_panic("/admin/topics");
    v["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .unwrap_or_else(|| panic!("{topic} not in {v}"))["partitions"][0]
        .clone()
}

/// Ledger ids of the partition's segments.
fn referenced(p: &Value) -> BTreeSet<u64> {
    p["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["ledger_id"].as_u64().expect("ledger id"))
        .collect()
}

/// Ledger ids of the partition's sealed segments.
fn sealed(p: &Value) -> Vec<u64> {
    p["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter(|s| s["state"] == "completed")
        .map(|s| s["ledger_id"].as_u64().expect("ledger id"))
        .collect()
}

/// The bookies (node ids) holding a copy of `ledger`; every bookie must answer.
fn holders(c: &LocalCluster, ledger: u64) -> Vec<u64> {
    let v = c
        .get_json_any(&NODES, &format!("/admin/ledgers/{ledger}"))
        .or_panic("ledger whereabouts");
    let bookies = v["bookies"].as_array().expect("bookies");
    assert!(
        bookies.iter().all(|b| b["reachable"] == true),
        "a bookie did not answer: {v}"
    );
    bookies
        .iter()
        .filter(|b| b["exists"] == true)
        .map(|b| b["bookie"].as_u64().expect("bookie id"))
        .collect()
}

fn idempotent_producer(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut config = kafka::producer_config(bootstrap, "all");
    config
        .set("enable.idempotence", "true")
        .set("message.send.max.retries", "2147483647")
        .set("message.timeout.ms", "60000");
    config
}

fn produce_round(bootstrap: &str, topic: &str, ids: std::ops::Range<usize>, timestamp: Option<i64>) {
    let records: Vec<TestRecord> = ids
        .map(|i| TestRecord {
            timestamp,
            ..TestRecord::value(kafka::patterned_payload(i, 1000))
        })
        .collect();
    let deliveries = kafka::produce_records(
        &idempotent_producer(bootstrap),
        topic,
        Some(0),
        &records,
        Duration::from_secs(60),
    )
    .or_panic("produce");
    assert!(deliveries.iter().all(|d| d.result.is_ok()), "{deliveries:?}");
}

#[test]
fn retention_frees_every_copy_and_survives_a_kill_during_truncation() {
    let c = cluster();
    let bootstrap = c.bootstrap().to_string();
    let topic = "expiring";
    kafka::create_topic_replicated(
        &bootstrap,
        topic,
        1,
        3,
        &[("retention.ms", "2000"), ("segment.bytes", "4096")],
    )
    .or_panic("create");
    let owner = c
        .wait_owner(&NODES, topic, 0, Duration::from_secs(20))
        .or_panic("owner");

    // Old records, five per round; the owner dies half-way while it truncates what it sealed.
    let old = now_ms() - 3_600_000;
    for round in 0..8 {
        if round == 4 {
            c.kill9(owner).or_panic("kill -9 the owner");
        }
        produce_round(&bootstrap, topic, round * 5..round * 5 + 5, Some(old));
    }
    c.start(owner).or_panic("restart the killed node");
    produce_round(&bootstrap, topic, 40..45, None);

    // Every segment of old records goes: only segments holding fresh records stay.
    let deadline = Instant::now() + Duration::from_secs(30);
    let p = loop {
        let p = partition(&c, topic);
        let start = p["log_start_offset"].as_u64().unwrap_or(0);
        let segs = p["segments"].as_array().expect("segments");
        let expired_left = segs
            .iter()
            .rev()
            .skip(1)
            .any(|s| s["end_txid"].as_i64().unwrap_or(0) < old + 1000);
        if start > 0 && !expired_left {
            break p;
        }
        assert!(Instant::now() < deadline, "expired segments still there: {p:#}");
        thread::sleep(Duration::from_millis(200));
    };
    let start = p["log_start_offset"].as_i64().expect("start");
    assert!(start <= 40, "a fresh record was truncated: {p:#}");

    // No leak: every copy a bookie holds belongs to a segment in metadata (the orphan collector
    // removes what the killed owner did not get to delete), and every segment is on Qw bookies.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refs = referenced(&partition(&c, topic));
        let max = refs.iter().max().copied().unwrap_or(0);
        let leaked: Vec<(u64, Vec<u64>)> = (1..=max + 3)
            .filter(|l| !refs.contains(l))
            .map(|l| (l, holders(&c, l)))
            .filter(|(_, h)| !h.is_empty())
            .collect();
        if leaked.is_empty() {
            // Every sealed segment kept is on its 3 bookies (the one being written may not have
            // reached a bookie yet).
            for l in sealed(&partition(&c, topic)) {
                assert_eq!(holders(&c, l).len(), 3, "segment ledger {l} not on 3 bookies");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaked ledger copies (ledger, bookies): {leaked:?}"
        );
        thread::sleep(Duration::from_millis(500));
    }

    // Exactly the records from the log start on, each once and in order.
    let (low, high) = kafka::watermarks(&bootstrap, topic, 0).or_panic("watermarks");
    assert_eq!(low, start);
    assert_eq!(high, 45, "45 records, each written once");
    let read = kafka::consume_n(
        &bootstrap,
        topic,
        0,
        start,
        (high - start) as usize,
        Duration::from_secs(30),
    )
    .or_panic("read back");
    for (i, r) in read.iter().enumerate() {
        let offset = start + i as i64;
        assert_eq!(r.offset, offset);
        assert_eq!(
            r.payload.as_deref(),
            Some(&kafka::patterned_payload(offset as usize, 1000)[..]),
            "offset {offset}"
        );
    }
}
