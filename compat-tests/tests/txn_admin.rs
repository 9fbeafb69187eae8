//! Transactional offset commits and the transaction admin APIs at the protocol level, against a
//! real `distlog` process, with requests encoded by the kafka-protocol crate: TxnOffsetCommit
//! (refusals for an unknown transactional id, unknown topics and members; offsets staged by an
//! open transaction invisible to OffsetFetch, answered UNSTABLE_OFFSET_COMMIT to `require_stable`
//! fetches at v7 and v8, and committed by EndTxn), ListTransactions with its state, producer id
//! and duration filters, DescribeTransactions, and the `/admin/transactions` HTTP listing.

use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::raw::Conn;
use distlog_compat_tests::{kafka, start_broker, DistlogProcess, OrPanic};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

/// Kafka error codes the tests expect.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn connect(broker: &DistlogProcess) -> Conn {
    Conn::open(broker.kafka_addr(), "txn-admin-test").or_panic("connect")
}

/// TxnOffsetCommit at `version` of `offsets` ((topic, partition, offset)) for `group`, with the
/// consumer identity (generation, member id) v3+ carries; per (topic, partition), the error code.
#[allow(clippy::too_many_arguments)]
fn txn_offset_commit(
    c: &mut Conn,
    version: i16,
    transactional_id: &str,
    producer: (i64, i16),
    group: &str,
    member: (i32, &str),
    offsets: &[(&str, i32, i64)],
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(Some(s("m")));
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == *topic => t.partitions.push(p),
            _ => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(transactional_id)))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_generation_id(member.0)
        .with_member_id(s(member.1))
        .with_topics(topics);
    let resp: TxnOffsetCommitResponse = c
        .call(ApiKey::TxnOffsetCommit, version, &req)
        .or_panic("TxnOffsetCommit");
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// OffsetFetch v7 (one group) of `topic`/`partition`: (offset, error code).
fn offset_fetch_v7(
    c: &mut Conn,
    group: &str,
    topic: &str,
    partition: i32,
    require_stable: bool,
) -> (i64, i16) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![partition])]))
        .with_require_stable(require_stable);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req).or_panic("OffsetFetch v7");
    assert_eq!(resp.error_code, NONE, "{resp:?}");
    let p = &resp.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

/// OffsetFetch v8 (the per-group form) of `topic`/`partition`: (offset, error code).
fn offset_fetch_v8(
    c: &mut Conn,
    group: &str,
    topic: &str,
    partition: i32,
    require_stable: bool,
) -> (i64, i16) {
    let req = OffsetFetchRequest::default()
        .with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![partition])]))])
        .with_require_stable(require_stable);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &req).or_panic("OffsetFetch v8");
    let g = &resp.groups[0];
    assert_eq!(g.error_code, NONE, "{resp:?}");
    let p = &g.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

/// ListTransactions at `version`: the unknown state filters and (transactional id, producer id,
/// state) of every listed transaction.
fn list_transactions(
    c: &mut Conn,
    version: i16,
    states: &[&str],
    producer_ids: &[i64],
    duration_ms: i64,
) -> (Vec<String>, Vec<(String, i64, String)>) {
    let req = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|x| s(x)).collect())
        .with_producer_id_filters(producer_ids.iter().map(|p| ProducerId(*p)).collect())
        .with_duration_filter(duration_ms);
    let resp: ListTransactionsResponse = c
        .call(ApiKey::ListTransactions, version, &req)
        .or_panic("ListTransactions");
    assert_eq!(resp.error_code, NONE, "{resp:?}");
    let unknown = resp.unknown_state_filters.iter().map(|x| x.to_string()).collect();
    let listed = resp
        .transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.0.to_string(),
                t.producer_id.0,
                t.transaction_state.to_string(),
            )
        })
        .collect();
    (unknown, listed)
}

fn describe_transactions(c: &mut Conn, ids: &[&str]) -> DescribeTransactionsResponse {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(ids.iter().map(|id| TransactionalId(s(id))).collect());
    c.call(ApiKey::DescribeTransactions, 0, &req)
        .or_panic("DescribeTransactions")
}

fn admin_transactions(broker: &DistlogProcess) -> Vec<Value> {
    let resp = broker
        .http_get("/admin/transactions")
        .or_panic("GET /admin/transactions");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let v: Value = serde_json::from_str(&resp.body).expect("JSON");
    v["transactions"]
        .as_array()
        .cloned()
        .expect("a transactions list")
}

/// What a broker without any transaction answers: TxnOffsetCommit refusals, empty lists,
/// TRANSACTIONAL_ID_NOT_FOUND, nothing unstable, and the advertised versions.
#[test]
fn transaction_admin_apis_without_transactions() {
    let broker = start_broker();
    kafka::create_topic(&broker.bootstrap(), "t", 2).or_panic("create topic");
    let mut c = connect(&broker);

    let versions: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .or_panic("ApiVersions");
    let range = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k: &&ApiVersion| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::TxnOffsetCommit), Some((0, 4)));
    assert_eq!(range(ApiKey::ListTransactions), Some((0, 1)));
    assert_eq!(range(ApiKey::DescribeTransactions), Some((0, 0)));
    assert_eq!(range(ApiKey::OffsetFetch), Some((1, 9)));

    // An unknown transactional id, at every version; unknown topics and partitions are refused
    // one by one whatever the transaction.
    for version in 0..=4 {
        let answer = txn_offset_commit(
            &mut c,
            version,
            "no-such-txn",
            (1000, 0),
            "g1",
            (-1, ""),
            &[("t", 0, 5), ("t", 9, 5), ("missing", 0, 1)],
        );
        assert_eq!(
            answer,
            vec![
                ("t".to_string(), 0, INVALID_PRODUCER_ID_MAPPING),
                ("t".to_string(), 9, UNKNOWN_TOPIC_OR_PARTITION),
                ("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            ],
            "v{version}"
        );
    }
    // Nothing but unknown partitions: only their errors.
    assert_eq!(
        txn_offset_commit(
            &mut c,
            3,
            "no-such-txn",
            (1000, 0),
            "g1",
            (-1, ""),
            &[("missing", 0, 1)]
        ),
        vec![("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    // v3+: a member the group does not know; an empty group id.
    assert_eq!(
        txn_offset_commit(
            &mut c,
            3,
            "no-such-txn",
            (1000, 0),
            "g1",
            (4, "m-1"),
            &[("t", 1, 5)]
        ),
        vec![("t".to_string(), 1, UNKNOWN_MEMBER_ID)]
    );
    assert_eq!(
        txn_offset_commit(&mut c, 4, "no-such-txn", (1000, 0), "", (-1, ""), &[("t", 1, 5)]),
        vec![("t".to_string(), 1, INVALID_GROUP_ID)]
    );

    // Nothing staged, nothing committed.
    for stable in [false, true] {
        assert_eq!(offset_fetch_v7(&mut c, "g1", "t", 0, stable), (-1, NONE));
        assert_eq!(offset_fetch_v8(&mut c, "g1", "t", 0, stable), (-1, NONE));
    }

    for version in 0..=1 {
        assert_eq!(list_transactions(&mut c, version, &[], &[], -1), (vec![], vec![]));
    }
    assert_eq!(
        list_transactions(&mut c, 1, &["Ongoing", "Bogus"], &[], 10),
        (vec!["Bogus".to_string()], vec![])
    );

    let described = describe_transactions(&mut c, &["t1", ""]);
    let codes: Vec<(String, i16)> = described
        .transaction_states
        .iter()
        .map(|t| (t.transactional_id.0.to_string(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("t1".to_string(), TRANSACTIONAL_ID_NOT_FOUND),
            (String::new(), INVALID_REQUEST)
        ]
    );

    assert!(admin_transactions(&broker).is_empty());
}

/// A whole transaction through the coordinator APIs: staged offsets are invisible, unstable to
/// `require_stable` fetches, listed and described, and committed by EndTxn.
///
/// Needs InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn
/// (the transaction coordinator).
#[test]
fn offsets_committed_in_a_transaction_become_visible_when_it_commits() {
    let broker = start_broker();
    kafka::create_topic(&broker.bootstrap(), "t", 2).or_panic("create topic");
    let mut c = connect(&broker);
    let started = distlog_compat_tests::now_ms();

    let init: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("t1"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .or_panic("InitProducerId");
    assert_eq!(init.error_code, NONE, "{init:?}");
    assert_eq!(init.producer_epoch, 0, "{init:?}");
    let pid = init.producer_id.0;
    assert!(pid >= 0, "{init:?}");

    // Initialised, no transaction open yet.
    assert_eq!(
        list_transactions(&mut c, 1, &[], &[], -1).1,
        vec![("t1".to_string(), pid, "Empty".to_string())]
    );

    let added: AddPartitionsToTxnResponse = c
        .call(
            ApiKey::AddPartitionsToTxn,
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("t1")))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(0)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![1])]),
        )
        .or_panic("AddPartitionsToTxn");
    let codes: Vec<i16> = added
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code))
        .collect();
    assert_eq!(codes, vec![NONE], "{added:?}");

    let offsets: AddOffsetsToTxnResponse = c
        .call(
            ApiKey::AddOffsetsToTxn,
            3,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("t1")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0)
                .with_group_id(GroupId(s("g1"))),
        )
        .or_panic("AddOffsetsToTxn");
    assert_eq!(offsets.error_code, NONE, "{offsets:?}");

    assert_eq!(
        txn_offset_commit(&mut c, 3, "t1", (pid, 0), "g1", (-1, ""), &[("t", 0, 42)]),
        vec![("t".to_string(), 0, NONE)]
    );
    // A zombie's epoch, and the transaction's own id with another producer id.
    assert_eq!(
        txn_offset_commit(&mut c, 3, "t1", (pid + 1, 0), "g1", (-1, ""), &[("t", 0, 43)]),
        vec![("t".to_string(), 0, INVALID_PRODUCER_ID_MAPPING)]
    );

    // Staged: unstable to require_stable fetches, absent otherwise.
    assert_eq!(
        offset_fetch_v7(&mut c, "g1", "t", 0, true),
        (-1, UNSTABLE_OFFSET_COMMIT)
    );
    assert_eq!(
        offset_fetch_v8(&mut c, "g1", "t", 0, true),
        (-1, UNSTABLE_OFFSET_COMMIT)
    );
    assert_eq!(offset_fetch_v7(&mut c, "g1", "t", 0, false), (-1, NONE));
    assert_eq!(offset_fetch_v7(&mut c, "g1", "t", 1, true), (-1, NONE));

    let ongoing = vec![("t1".to_string(), pid, "Ongoing".to_string())];
    assert_eq!(list_transactions(&mut c, 0, &[], &[], -1).1, ongoing);
    assert_eq!(list_transactions(&mut c, 1, &["Ongoing"], &[], -1).1, ongoing);
    assert_eq!(list_transactions(&mut c, 1, &[], &[pid], -1).1, ongoing);
    assert_eq!(list_transactions(&mut c, 1, &[], &[], 0).1, ongoing);
    assert!(list_transactions(&mut c, 1, &["CompleteCommit"], &[], -1)
        .1
        .is_empty());
    assert!(list_transactions(&mut c, 1, &[], &[pid + 1], -1).1.is_empty());
    assert!(list_transactions(&mut c, 1, &[], &[], 3_600_000).1.is_empty());

    let described = describe_transactions(&mut c, &["t1"]);
    let t = &described.transaction_states[0];
    assert_eq!(t.error_code, NONE, "{described:?}");
    assert_eq!(t.transaction_state.as_str(), "Ongoing");
    assert_eq!((t.producer_id.0, t.producer_epoch), (pid, 0));
    assert_eq!(t.transaction_timeout_ms, 60_000);
    let now = distlog_compat_tests::now_ms();
    assert!(
        (started..=now).contains(&t.transaction_start_time_ms),
        "start {} outside [{started}, {now}]",
        t.transaction_start_time_ms
    );
    let topics: Vec<(String, Vec<i32>)> = t
        .topics
        .iter()
        .map(|d| (d.topic.0.to_string(), d.partitions.clone()))
        .collect();
    assert_eq!(topics, vec![("t".to_string(), vec![1])]);

    let open = admin_transactions(&broker);
    assert_eq!(open.len(), 1, "{open:?}");
    let o = &open[0];
    assert_eq!(o["transactional_id"], "t1");
    assert_eq!(o["producer_id"], pid);
    assert_eq!(o["producer_epoch"], 0);
    assert_eq!(o["state"], "Ongoing");
    assert_eq!(o["groups"], serde_json::json!(["g1"]));
    assert_eq!(
        o["partitions"],
        serde_json::json!([{"topic": "t", "partition": 1}])
    );
    assert_eq!(o["timeout_ms"], 60_000);
    assert_eq!(o["start_ms"], t.transaction_start_time_ms);
    assert_eq!(o["pending_markers"], 0);
    let age = o["age_ms"].as_i64().expect("age_ms");
    assert!(
        (0..=distlog_compat_tests::now_ms() - started).contains(&age),
        "age {age}"
    );

    let ended: EndTxnResponse = c
        .call(
            ApiKey::EndTxn,
            3,
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("t1")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0)
                .with_committed(true),
        )
        .or_panic("EndTxn");
    assert_eq!(ended.error_code, NONE, "{ended:?}");

    // Committed with the decision, before the markers are written.
    assert_eq!(offset_fetch_v7(&mut c, "g1", "t", 0, true), (42, NONE));
    assert_eq!(offset_fetch_v8(&mut c, "g1", "t", 0, false), (42, NONE));

    // Once the partition's marker is written the transaction is complete and no longer open.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = list_transactions(&mut c, 1, &[], &[], -1).1;
        if listed == vec![("t1".to_string(), pid, "CompleteCommit".to_string())] {
            break;
        }
        assert!(Instant::now() < deadline, "not completed: {listed:?}");
        thread::sleep(Duration::from_millis(100));
    }
    assert!(admin_transactions(&broker).is_empty());
}
