//! Cluster and disk introspection against real `distlog` processes, with hand-built frames:
//! DescribeLogDirs (exact partition sizes on a single node, before and after the segment is
//! sealed; on a 3-node cluster, each node reports the partitions whose segments its bookie holds),
//! DescribeTopicPartitions (cursor paging with a limit of 1), ListPartitionReassignments (always
//! empty) and DescribeQuorum (the metadata Raft group: the leader answers, followers answer
//! NOT_LEADER_OR_FOLLOWER).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_compat_tests::cluster::LocalCluster;
use distlog_compat_tests::raw::{self, Conn};
use distlog_compat_tests::{kafka, start_broker, OrPanic};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResult;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    describe_quorum_request, ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest, MetadataResponse,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Produce one single-record batch of `len` value bytes to `topic`/`partition` through `conn`
/// (retrying while the partition has no leader yet) and return the batch's size in bytes, which
/// is what the partition stores.
fn produce_batch(conn: &mut Conn, topic: &str, partition: i32, len: usize) -> u64 {
    let batch: Bytes = raw::one_record_batch(
        (-1, -1, -1),
        distlog_compat_tests::now_ms(),
        Bytes::from(vec![b'x'; len]),
    )
    .or_panic("batch");
    let size = batch.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp: ProduceResponse = conn
            .call(
                ApiKey::Produce,
                9,
                &raw::produce_request(topic, partition, batch.clone()),
            )
            .or_panic("produce");
        let code = resp.responses[0].partition_responses[0].error_code;
        if code == 0 {
            return size;
        }
        assert!(
            Instant::now() < deadline && matches!(code, 5 | 6),
            "produce to {topic}-{partition}: error {code}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn describe_log_dirs(
    conn: &mut Conn,
    version: i16,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> DescribeLogDirsResponse {
    let topics = topics.map(|ts| {
        ts.into_iter()
            .map(|(t, p)| {
                DescribableLogDirTopic::default()
                    .with_topic(name(t))
                    .with_partitions(p)
            })
            .collect()
    });
    conn.call(
        ApiKey::DescribeLogDirs,
        version,
        &DescribeLogDirsRequest::default().with_topics(topics),
    )
    .or_panic("DescribeLogDirs")
}

/// (topic, partition) → size of a log dir result, checking the fixed fields on the way.
fn sizes(result: &DescribeLogDirsResult) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    for t in &result.topics {
        for p in &t.partitions {
            assert_eq!((p.offset_lag, p.is_future_key), (0, false));
            out.insert((t.name.0.to_string(), p.partition_index), p.partition_size);
        }
    }
    out
}

#[test]
fn describe_log_dirs_reports_exact_partition_sizes_and_the_disk() {
    let mut broker = start_broker();
    kafka::create_topic(&broker.bootstrap(), "sized", 2).or_panic("create topic");
    kafka::create_topic(&broker.bootstrap(), "other", 1).or_panic("create topic");
    let mut conn = Conn::open(broker.kafka_addr(), "introspection").or_panic("connect");
    let p0 = produce_batch(&mut conn, "sized", 0, 100)
        + produce_batch(&mut conn, "sized", 0, 1000)
        + produce_batch(&mut conn, "sized", 0, 7);
    let p1 = produce_batch(&mut conn, "sized", 1, 333);
    let o0 = produce_batch(&mut conn, "other", 0, 1);
    let expected: BTreeMap<(String, i32), i64> = [
        (("other".to_string(), 0), o0 as i64),
        (("sized".to_string(), 0), p0 as i64),
        (("sized".to_string(), 1), p1 as i64),
    ]
    .into();

    let data_dir = std::fs::canonicalize(broker.data_dir()).or_panic_io("data dir");
    let check_all = |conn: &mut Conn, when: &str| {
        for v in 1..=4 {
            let resp = describe_log_dirs(conn, v, None);
            assert_eq!((resp.error_code, resp.results.len()), (0, 1), "v{v} {when}");
            let r = &resp.results[0];
            assert_eq!(r.error_code, 0);
            assert_eq!(
                r.log_dir.as_str(),
                data_dir.join("bookie").to_str().unwrap(),
                "v{v}"
            );
            assert_eq!(sizes(r), expected, "v{v} {when}: sizes are the produced bytes");
            if v >= 4 {
                assert!(
                    r.total_bytes >= r.usable_bytes && r.usable_bytes > 0,
                    "disk: total {} usable {}",
                    r.total_bytes,
                    r.usable_bytes
                );
            } else {
                assert_eq!(
                    (r.total_bytes, r.usable_bytes),
                    (-1, -1),
                    "v{v}: not in this version"
                );
            }
        }
    };
    // The segments are in progress: the owner's writer knows their sizes.
    check_all(&mut conn, "in progress");

    // Only what is asked for: one partition of a topic; unknown topics are absent.
    let resp = describe_log_dirs(&mut conn, 4, Some(vec![("sized", vec![1, 5]), ("nope", vec![0])]));
    assert_eq!(
        sizes(&resp.results[0]),
        [(("sized".to_string(), 1), p1 as i64)].into()
    );
    let resp = describe_log_dirs(&mut conn, 2, Some(vec![]));
    assert_eq!(resp.results.len(), 1);
    assert!(
        resp.results[0].topics.is_empty(),
        "an empty list asks for nothing"
    );

    // A clean restart seals the segments: the sizes now come from the sealed segments' metadata.
    broker.restart().or_panic("restart");
    let sealed = kafka::fetch_metadata(&broker.bootstrap(), Some("sized")).or_panic("metadata");
    assert_eq!(sealed.topics().len(), 1);
    let mut conn = Conn::open(broker.kafka_addr(), "introspection").or_panic("connect");
    check_all(&mut conn, "after the seal");
}

trait OrPanicIo<T> {
    fn or_panic_io(self, what: &str) -> T;
}

impl<T> OrPanicIo<T> for std::io::Result<T> {
    fn or_panic_io(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

#[test]
fn describe_topic_partitions_pages_with_its_cursor_and_no_reassignment_is_listed() {
    let broker = start_broker();
    kafka::create_topic(&broker.bootstrap(), "paged", 3).or_panic("create topic");
    let mut conn = Conn::open(broker.kafka_addr(), "introspection").or_panic("connect");
    let meta: MetadataResponse = conn
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(name("paged"))),
            ])),
        )
        .or_panic("metadata");
    let meta_parts: Vec<(i32, i32, i32)> = meta.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0, p.leader_epoch))
        .collect();

    // A limit of 1 walks p0, p1, p2 through the cursor.
    let mut cursor: Option<Cursor> = None;
    let mut seen = Vec::new();
    let mut cursors = Vec::new();
    for _ in 0..5 {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(vec![TopicRequest::default().with_name(name("paged"))])
            .with_response_partition_limit(1)
            .with_cursor(cursor.clone());
        let resp: DescribeTopicPartitionsResponse = conn
            .call(ApiKey::DescribeTopicPartitions, 0, &req)
            .or_panic("DescribeTopicPartitions");
        assert_eq!(resp.topics.len(), 1);
        let t = &resp.topics[0];
        assert_eq!((t.error_code, t.topic_id), (0, meta.topics[0].topic_id));
        assert_eq!(t.topic_authorized_operations, i32::MIN);
        seen.extend(
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0, p.leader_epoch)),
        );
        cursors.push(
            resp.next_cursor
                .as_ref()
                .map(|c| (c.topic_name.0.to_string(), c.partition_index)),
        );
        cursor = resp.next_cursor.map(|c| {
            Cursor::default()
                .with_topic_name(c.topic_name)
                .with_partition_index(c.partition_index)
        });
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, meta_parts, "every partition once, as Metadata describes it");
    assert_eq!(
        cursors,
        vec![Some(("paged".into(), 1)), Some(("paged".into(), 2)), None]
    );

    // All topics (empty list) and an unknown one by name.
    let req = DescribeTopicPartitionsRequest::default().with_topics(vec![
        TopicRequest::default().with_name(name("paged")),
        TopicRequest::default().with_name(name("missing")),
    ]);
    let resp: DescribeTopicPartitionsResponse = conn
        .call(ApiKey::DescribeTopicPartitions, 0, &req)
        .or_panic("DescribeTopicPartitions");
    let got: Vec<(String, i16, usize)> = resp
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().0.to_string(),
                t.error_code,
                t.partitions.len(),
            )
        })
        .collect();
    assert_eq!(got, vec![("missing".into(), 3, 0), ("paged".into(), 0, 3)]);
    assert!(resp.next_cursor.is_none());
    let all: DescribeTopicPartitionsResponse = conn
        .call(
            ApiKey::DescribeTopicPartitions,
            0,
            &DescribeTopicPartitionsRequest::default(),
        )
        .or_panic("DescribeTopicPartitions");
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].partitions.len(), 3);

    // ListPartitionReassignments: nothing in progress, for all or for named partitions.
    for topics in [
        None,
        Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(name("paged"))
                .with_partition_indexes(vec![0, 1]),
            ListPartitionReassignmentsTopics::default()
                .with_name(name("missing"))
                .with_partition_indexes(vec![0]),
        ]),
    ] {
        let resp: ListPartitionReassignmentsResponse = conn
            .call(
                ApiKey::ListPartitionReassignments,
                0,
                &ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(1000)
                    .with_topics(topics),
            )
            .or_panic("ListPartitionReassignments");
        assert_eq!(resp.error_code, 0);
        assert!(resp.topics.is_empty());
    }
}

/// The Kafka address of node `k` (1-based) from the cluster's bootstrap list.
fn kafka_addr(c: &LocalCluster, k: usize) -> SocketAddr {
    c.bootstrap()
        .split(',')
        .find(|a| a.starts_with(&format!("127.0.0.{k}:")))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("node {k} not in {}", c.bootstrap()))
}

fn describe_quorum(conn: &mut Conn, version: i16, topic: &str, partition: i32) -> DescribeQuorumResponse {
    let req =
        DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
            .with_topic_name(name(topic))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default().with_partition_index(partition)
            ])]);
    conn.call(ApiKey::DescribeQuorum, version, &req)
        .or_panic("DescribeQuorum")
}

/// Per partition of `topic`: (ensemble nodes of all its segments, owner) from node 1's
/// `/admin/topics`.
fn placement(c: &LocalCluster, topic: &str) -> BTreeMap<i32, (BTreeSet<usize>, Option<usize>)> {
    let v = c.get_json(1, "/admin/topics").or_panic("/admin/topics");
    let t = v["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .unwrap_or_else(|| panic!("{topic} not listed"))
        .clone();
    let mut out = BTreeMap::new();
    for p in t["partitions"].as_array().expect("partitions") {
        let ensembles: BTreeSet<usize> = p["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .flat_map(|s| s["ensemble"].as_array().cloned().unwrap_or_default())
            .filter_map(|n: Value| n.as_u64().map(|n| n as usize))
            .collect();
        out.insert(
            p["partition"].as_i64().expect("partition") as i32,
            (ensembles, p["owner"].as_u64().map(|o| o as usize)),
        );
    }
    out
}

#[test]
fn a_three_node_cluster_describes_its_log_dirs_and_its_quorum() {
    let c = LocalCluster::up(3, "").expect("3-node cluster up");

    // --- DescribeQuorum: one leader with every voter's progress; followers refuse.
    let leader = c.raft_leader(1).or_panic("raft leader").expect("a leader");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let mut conn = Conn::open(kafka_addr(&c, leader), "introspection").or_panic("connect");
        let resp = describe_quorum(&mut conn, 2, "__cluster_metadata", 0);
        let p = &resp.topics[0].partitions[0];
        let caught_up = p.current_voters.len() == 3 && p.current_voters.iter().all(|v| v.log_end_offset > 0);
        if caught_up || Instant::now() > deadline {
            break resp;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(answer.error_code, 0);
    let p = &answer.topics[0].partitions[0];
    assert_eq!(answer.topics[0].topic_name.0.as_str(), "__cluster_metadata");
    assert_eq!((p.error_code, p.leader_id.0), (0, leader as i32));
    assert!(p.leader_epoch >= 1, "epoch {}", p.leader_epoch);
    assert!(p.high_watermark > 0, "high watermark {}", p.high_watermark);
    let voters: BTreeSet<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    assert_eq!(voters, [1, 2, 3].into());
    for v in &p.current_voters {
        assert!(
            v.log_end_offset > 0,
            "voter {} log end offset {}",
            v.replica_id.0,
            v.log_end_offset
        );
    }
    let me = p
        .current_voters
        .iter()
        .find(|v| v.replica_id.0 == leader as i32)
        .expect("leader");
    assert!(me.log_end_offset >= p.high_watermark);
    assert!(me.last_fetch_timestamp > 0);
    assert!(p.observers.is_empty());
    let nodes: BTreeMap<i32, String> = answer
        .nodes
        .iter()
        .map(|n| (n.node_id.0, n.listeners[0].host.to_string()))
        .collect();
    assert_eq!(
        nodes,
        (1..=3)
            .map(|k| (k, format!("127.0.0.{k}")))
            .collect::<BTreeMap<_, _>>()
    );
    for k in (1..=3).filter(|k| *k != leader) {
        let mut conn = Conn::open(kafka_addr(&c, k), "introspection").or_panic("connect");
        for v in 0..=2 {
            let resp = describe_quorum(&mut conn, v, "__cluster_metadata", 0);
            assert_eq!(
                resp.topics[0].partitions[0].error_code, 6,
                "node {k} v{v}: NOT_LEADER_OR_FOLLOWER"
            );
        }
    }
    let mut conn = Conn::open(kafka_addr(&c, leader), "introspection").or_panic("connect");
    let resp = describe_quorum(&mut conn, 1, "__cluster_metadata", 1);
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let resp = describe_quorum(&mut conn, 0, "orders", 0);
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    // --- DescribeLogDirs: each node reports the partitions its bookie holds segments of.
    kafka::create_topic_replicated(c.bootstrap(), "single", 6, 1, &[]).or_panic("create rf=1 topic");
    kafka::create_topic_replicated(c.bootstrap(), "triple", 1, 3, &[]).or_panic("create rf=3 topic");
    let mut produced: BTreeMap<(String, i32), u64> = BTreeMap::new();
    for (topic, partitions) in [("single", 6), ("triple", 1)] {
        for p in 0..partitions {
            let owner = c
                .wait_owner(&[1, 2, 3], topic, p as u64, Duration::from_secs(30))
                .or_panic("owner");
            let mut conn = Conn::open(kafka_addr(&c, owner), "introspection").or_panic("connect");
            let bytes = produce_batch(&mut conn, topic, p, 50 + p as usize);
            produced.insert((topic.to_string(), p), bytes);
        }
    }
    let mut holders: BTreeMap<(String, i32), BTreeSet<usize>> = BTreeMap::new();
    for topic in ["single", "triple"] {
        let placed = placement(&c, topic);
        for k in 1..=3usize {
            let expected: BTreeSet<i32> = placed
                .iter()
                .filter(|(_, (ensemble, _))| ensemble.contains(&k))
                .map(|(p, _)| *p)
                .collect();
            // Each node answers from its own metadata replica, which may
            // trail node 1's (where the placement was read) by a moment.
            let deadline = Instant::now() + Duration::from_secs(10);
            let (reported, got) = loop {
                let mut conn = Conn::open(kafka_addr(&c, k), "introspection").or_panic("connect");
                let resp = describe_log_dirs(&mut conn, 4, Some(vec![(topic, (0..6).collect())]));
                assert_eq!(resp.results.len(), 1, "node {k}: one log dir");
                let r = &resp.results[0];
                assert!(r.log_dir.as_str().ends_with("/bookie"), "{}", r.log_dir.as_str());
                assert!(r.total_bytes >= r.usable_bytes && r.usable_bytes > 0);
                let reported = sizes(r);
                let got: BTreeSet<i32> = reported.keys().map(|(_, p)| *p).collect();
                if got == expected || Instant::now() >= deadline {
                    break (reported, got);
                }
                thread::sleep(Duration::from_millis(100));
            };
            assert_eq!(
                got, expected,
                "node {k}: the {topic} partitions whose segments it holds"
            );
            for ((t, p), size) in &reported {
                holders.entry((t.clone(), *p)).or_default().insert(k);
                // The owner knows its in-progress segment's size exactly.
                if placed[p].1 == Some(k) {
                    assert_eq!(*size, produced[&(t.clone(), *p)] as i64, "node {k}: {t}-{p}");
                }
            }
        }
    }
    let single_copies: Vec<usize> = (0..6)
        .map(|p| holders[&("single".to_string(), p)].len())
        .collect();
    assert_eq!(
        single_copies,
        vec![1; 6],
        "a replication factor of 1: one node holds each partition"
    );
    assert_eq!(
        holders[&("triple".to_string(), 0)],
        [1, 2, 3].into(),
        "every node holds a copy"
    );
}
