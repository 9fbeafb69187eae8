//! The split DistributedLog topology with real processes on real TCP: a
//! storage tier of three `meta,bookie` nodes (127.0.0.1-3, the Raft voters
//! and the only bookies) and a serving tier of two `broker` nodes
//! (127.0.0.4-5, Raft learners with no bookie of their own), started by
//! scripts/local-cluster.sh with `DISTLOG_NODE_ROLES`.
//!
//! One scenario, phase by phase (one 5-process cluster is what a 2-core
//! machine affords): clients see exactly the two brokers; 3/3/2 and 1/1/1
//! topics take 2,000 acks=all records each and give them back exactly;
//! every ledger lives on bookies 1-3 only; a consumer group consumes and
//! commits; `kill -9` of the broker owning
//! the 3/3/2 partition under a continuous producer moves it to the other
//! broker within 10 s without losing or duplicating an acknowledged
//! record; and a deleted topic's ledgers are gone from every bookie.

use std::collections::BTreeSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::chaos::{acknowledged, verify_zero_loss, ContinuousProducer};
use distlog_compat_tests::cluster::LocalCluster;
use distlog_compat_tests::group::{group_consumer_config, CommitPolicy, GroupMember, GroupRun};
use distlog_compat_tests::kafka;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// Session timeout (lease) of every node: failover takes about this long
/// plus a controller tick.
const SESSION_MS: u64 = 6000;
const STORAGE: [usize; 3] = [1, 2, 3];
const BROKERS: [usize; 2] = [4, 5];
const RECORDS: usize = 2000;

fn split_cluster() -> LocalCluster {
    LocalCluster::up_with_roles(
        &["meta,bookie", "meta,bookie", "meta,bookie", "broker", "broker"],
        &format!(
            "--broker-session-timeout-ms {SESSION_MS} --broker-heartbeat-interval-ms 1500 \
             --group-initial-rebalance-delay-ms 0"
        ),
    )
    .expect("split cluster up")
}

fn sorted_ids(v: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Produce `r{i}` for i in 0..RECORDS (acks=all, one request in flight so
/// order is kept even across a retry) and read them back: record i at
/// offset i, nothing else in the partition.
fn produce_and_read_back_exactly(c: &LocalCluster, topic: &str) {
    let mut cfg = kafka::producer_config(c.bootstrap(), "all");
    cfg.set("max.in.flight.requests.per.connection", "1");
    let records: Vec<kafka::TestRecord> = (0..RECORDS)
        .map(|i| kafka::TestRecord::value(format!("r{i}")))
        .collect();
    let deliveries =
        kafka::produce_records(&cfg, topic, Some(0), &records, Duration::from_secs(60)).expect("produce");
    for d in &deliveries {
        let offset = *d.result.as_ref().expect("acknowledged");
        assert_eq!(
            offset, d.id as i64,
            "{topic}: record {} acknowledged at {offset}",
            d.id
        );
    }
    let back =
        kafka::consume_n(c.bootstrap(), topic, 0, 0, RECORDS, Duration::from_secs(60)).expect("read back");
    assert_eq!(back.len(), RECORDS);
    for (i, r) in back.iter().enumerate() {
        assert_eq!(r.offset, i as i64, "{topic}: order");
        assert_eq!(
            r.payload.as_deref(),
            Some(format!("r{i}").as_bytes()),
            "{topic}: content at offset {i}"
        );
    }
    assert_eq!(
        kafka::watermarks(c.bootstrap(), topic, 0).expect("watermarks"),
        (0, RECORDS as i64),
        "{topic}: exactly {RECORDS} records"
    );
}

/// The replica report of partition 0 of `topic` from a broker node:
/// every segment on `e` bookies among 1-3, each holding its copy, nothing
/// under-replicated. Returns (ledger, ensemble) per segment.
fn assert_on_storage_tier(c: &LocalCluster, topic: &str, e: usize) -> Vec<(u64, Vec<u64>)> {
    let report = c
        .get_json_any(&BROKERS, &format!("/admin/partitions/{topic}/0/replicas"))
        .expect("replica report");
    let segments = report["segments"].as_array().expect("segments");
    assert!(!segments.is_empty(), "{report}");
    let mut out = Vec::new();
    for seg in segments {
        let ensemble = sorted_ids(&seg["ensemble"]);
        assert_eq!(ensemble.len(), e, "{topic}: {seg}");
        assert!(
            ensemble.iter().all(|b| STORAGE.contains(&(*b as usize))),
            "{topic}: a segment on a non-bookie node: {seg}"
        );
        assert_eq!(seg["under_replicated_entries"], 0, "{seg}");
        for r in seg["replicas"].as_array().expect("replicas") {
            assert_eq!(r["reachable"], true, "{seg}");
            assert_eq!(r["exists"], true, "{seg}");
        }
        out.push((seg["ledger_id"].as_u64().expect("ledger id"), ensemble));
    }
    out
}

/// Which bookies hold `ledger`, as `/admin/ledgers/{ledger}` on a broker
/// reports every registered bookie: (id, reachable, exists).
fn ledger_holders(c: &LocalCluster, ask: &[usize], ledger: u64) -> (Value, Vec<(u64, bool, bool)>) {
    let v = c
        .get_json_any(ask, &format!("/admin/ledgers/{ledger}"))
        .expect("ledger whereabouts");
    let holders = v["bookies"]
        .as_array()
        .expect("bookies")
        .iter()
        .map(|b| {
            (
                b["bookie"].as_u64().expect("id"),
                b["reachable"] == true,
                b["exists"] == true,
            )
        })
        .collect();
    (v, holders)
}

/// `distlog_ledger_deletes_total{reason="topic_deleted",outcome="ok"}` of node `k`.
fn topic_deletes(c: &LocalCluster, k: usize) -> u64 {
    let text = c.get_text(k, "/metrics").expect("metrics");
    text.lines()
        .find(|l| {
            l.starts_with("distlog_ledger_deletes_total{")
                && l.contains(r#"reason="topic_deleted""#)
                && l.contains(r#"outcome="ok""#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse::<f64>().expect("counter value") as u64)
}

/// Node `k`'s Kafka address from the bootstrap list.
fn kafka_addr(c: &LocalCluster, k: usize) -> String {
    let prefix = format!("127.0.0.{k}:");
    c.bootstrap()
        .split(',')
        .find(|a| a.starts_with(&prefix))
        .unwrap_or_else(|| panic!("node {k} is not in the bootstrap list {}", c.bootstrap()))
        .to_string()
}

fn ledger_file(data_dir: &Path, ledger: u64) -> std::path::PathBuf {
    data_dir
        .join("bookie")
        .join("ledgers")
        .join(format!("{ledger:020}.log"))
}

#[test]
fn split_topology_brokers_without_bookies_serve_fail_over_and_free_ledgers() {
    let c = split_cluster();
    assert_eq!(c.nodes_with_role("broker"), BROKERS.to_vec());

    // Topology: voters 1-3 with bookies, learners 4-5 serving Kafka only.
    let v = c.get_json(4, "/admin/cluster").expect("cluster");
    let voters: BTreeSet<String> = v["raft"]["voters"]
        .as_object()
        .expect("voters")
        .keys()
        .cloned()
        .collect();
    let learners: BTreeSet<String> = v["raft"]["learners"]
        .as_object()
        .expect("learners")
        .keys()
        .cloned()
        .collect();
    assert_eq!(voters, ["1", "2", "3"].map(String::from).into(), "{v}");
    assert_eq!(learners, ["4", "5"].map(String::from).into(), "{v}");
    for n in v["nodes"].as_array().expect("nodes") {
        let id = n["id"].as_u64().expect("id") as usize;
        assert_eq!(n["live"], true, "{n}");
        let storage = STORAGE.contains(&id);
        assert_eq!(
            n["bookie"].is_string(),
            storage,
            "node {id}: bookie address iff storage: {n}"
        );
        assert_eq!(
            n["kafka"].is_string(),
            !storage,
            "node {id}: Kafka address iff broker: {n}"
        );
    }
    for k in STORAGE {
        assert!(c.data_dir(k).join("bookie").is_dir(), "node {k} has a bookie");
    }
    for k in BROKERS {
        assert!(
            !c.data_dir(k).join("bookie").exists(),
            "broker {k} created a bookie directory"
        );
    }
    let md = kafka::fetch_metadata(c.bootstrap(), None).expect("metadata");
    let mut brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    brokers.sort_unstable();
    assert_eq!(brokers, vec![4, 5], "Metadata lists exactly the broker nodes");

    // Replicated (3/3/2) and unreplicated (1/1/1) topics on the storage tier.
    kafka::create_topic_replicated(c.bootstrap(), "split3", 1, 3, &[]).expect("create RF 3");
    kafka::create_topic_replicated(c.bootstrap(), "split1", 1, 1, &[]).expect("create RF 1");
    for t in ["split3", "split1"] {
        c.wait_owner(&BROKERS, t, 0, Duration::from_secs(20))
            .expect("owner");
        produce_and_read_back_exactly(&c, t);
    }
    let ledgers3 = assert_on_storage_tier(&c, "split3", 3);
    let ledgers1 = assert_on_storage_tier(&c, "split1", 1);
    for (ledger, ensemble) in &ledgers1 {
        let (v, holders) = ledger_holders(&c, &BROKERS, *ledger);
        let held: Vec<u64> = holders.iter().filter(|h| h.2).map(|h| h.0).collect();
        assert_eq!(&held, ensemble, "RF 1 ledger {ledger} on exactly its bookie: {v}");
        assert_eq!(
            holders.iter().map(|h| h.0).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "only storage nodes are bookies: {v}"
        );
    }
    eprintln!("split3 ledgers {ledgers3:?}; split1 ledgers {ledgers1:?}");

    // A consumer group works with coordinators on broker-only nodes (its
    // state lives in the metadata store).
    let member = GroupMember::subscribe(
        &group_consumer_config(c.bootstrap(), "split-group"),
        "g1",
        &["split1"],
    )
    .expect("subscribe");
    let mut run = GroupRun::new();
    run.drive(
        &[&member],
        CommitPolicy::Never,
        Duration::from_secs(45),
        "group consumes split1",
        |r, _| r.unique_count() >= RECORDS,
    )
    .expect("group consume");
    assert_eq!(run.unique_count(), RECORDS);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("split1", 0, Offset::Offset(RECORDS as i64))
        .expect("tpl");
    member
        .consumer()
        .commit(&commit, CommitMode::Sync)
        .expect("commit");
    assert_eq!(
        member.committed("split1", &[0]).expect("committed"),
        [(0, Some(RECORDS as i64))].into()
    );
    member.close(Duration::from_secs(10)).expect("close member");

    // kill -9 the owner of the 3/3/2 partition under a continuous producer.
    let producer =
        ContinuousProducer::start(c.bootstrap(), "split3", Duration::from_millis(2), &[]).expect("producer");
    thread::sleep(Duration::from_millis(1500));
    let owner = c
        .wait_owner(&BROKERS, "split3", 0, Duration::from_secs(10))
        .expect("owner");
    let survivor = if owner == 4 { 5 } else { 4 };
    c.kill9(owner).expect("kill -9 the owner");
    // From the owner's death (kill9 returns once it is gone).
    let killed_at = Instant::now();
    let new_owner = c
        .wait_owner(&[survivor], "split3", 0, Duration::from_secs(20))
        .expect("the other broker takes over");
    let takeover = killed_at.elapsed();
    let resume = producer
        .wait_ack_of_message_sent_after(killed_at, Duration::from_secs(30))
        .expect("producer resumes");
    eprintln!(
        "killed broker {owner}: broker {new_owner} took over after {takeover:?}; the producer resumed after {resume:?}"
    );
    assert!(takeover < Duration::from_secs(10), "take-over took {takeover:?}");
    thread::sleep(Duration::from_secs(1));
    let sent = producer.stop().expect("stop producer");
    let acked = acknowledged(&sent);
    assert!(acked.len() > 500, "the producer made progress: {}", acked.len());
    // Read through the survivor alone: a client given the dead broker's
    // address reports its transport failures as consumer errors.
    let bootstrap = kafka_addr(&c, survivor);
    // The first RECORDS offsets hold r0..r1999; the producer's m{id} follow.
    let n = verify_zero_loss(&bootstrap, "split3", &acked).expect("every acknowledged record once");
    eprintln!(
        "failover: {} sent, {} acknowledged, {n} records in split3",
        sent.len(),
        acked.len()
    );
    let head = kafka::consume_n(&bootstrap, "split3", 0, 0, RECORDS, Duration::from_secs(30)).expect("head");
    assert!(head
        .iter()
        .enumerate()
        .all(|(i, r)| r.payload.as_deref() == Some(format!("r{i}").as_bytes())));
    // The unreplicated topic survives its broker too: its ledger is on a bookie.
    c.wait_owner(&[survivor], "split1", 0, Duration::from_secs(20))
        .expect("split1 owner");
    let back =
        kafka::consume_n(&bootstrap, "split1", 0, 0, RECORDS, Duration::from_secs(60)).expect("split1");
    assert!(back
        .iter()
        .enumerate()
        .all(|(i, r)| r.offset == i as i64 && r.payload.as_deref() == Some(format!("r{i}").as_bytes())));

    // The killed broker comes back (a learner again, still without a bookie).
    c.start(owner).expect("restart the killed broker");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c.get_json(owner, "/admin/cluster").expect("cluster");
        let me = v["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["id"] == owner as u64).cloned())
            .unwrap_or_default();
        if me["live"] == true {
            assert!(me["bookie"].is_null(), "{me}");
            break;
        }
        assert!(Instant::now() < deadline, "broker {owner} not live again: {v}");
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!c.data_dir(owner).join("bookie").exists());

    // Delete the 3/3/2 topic: every ledger it ever had leaves every bookie.
    let all3: Vec<(u64, Vec<u64>)> = assert_on_storage_tier(&c, "split3", 3);
    for (ledger, ensemble) in &all3 {
        let (v, holders) = ledger_holders(&c, &[survivor], *ledger);
        for b in ensemble {
            assert!(
                holders.contains(&(*b, true, true)),
                "ledger {ledger} on bookie {b}: {v}"
            );
            assert!(ledger_file(&c.data_dir(*b as usize), *ledger).is_file());
        }
    }
    kafka::delete_topic(&bootstrap, "split3").expect("delete split3");
    let deadline = Instant::now() + Duration::from_secs(15);
    for (ledger, _) in &all3 {
        loop {
            let (v, holders) = ledger_holders(&c, &[survivor], *ledger);
            if holders == vec![(1, true, false), (2, true, false), (3, true, false)] {
                assert!(v["segment"].is_null(), "{v}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ledger {ledger} of deleted split3 still on a bookie: {v}"
            );
            thread::sleep(Duration::from_millis(100));
        }
        for k in STORAGE {
            assert!(
                !ledger_file(&c.data_dir(k), *ledger).exists(),
                "ledger {ledger} file left on node {k}"
            );
        }
    }
    eprintln!(
        "deleted split3: ledgers {:?} gone from bookies 1-3",
        all3.iter().map(|l| l.0).collect::<Vec<_>>()
    );
    // The owner deleted every copy over the network; the bookie nodes
    // deleted nothing themselves (the owner was live).
    let copies = all3.iter().map(|(_, e)| e.len() as u64).sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(5);
    while topic_deletes(&c, survivor) < copies && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(topic_deletes(&c, survivor), copies, "copies deleted by the owner");
    for k in STORAGE {
        assert_eq!(topic_deletes(&c, k), 0, "node {k} deleted copies itself");
    }
    // The other topic is untouched.
    for (ledger, ensemble) in &ledgers1 {
        let (v, holders) = ledger_holders(&c, &[survivor], *ledger);
        assert!(holders.contains(&(ensemble[0], true, true)), "{v}");
    }
}
