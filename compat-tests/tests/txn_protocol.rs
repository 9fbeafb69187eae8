//! The transaction coordinator at the protocol level, against a real `distlog` process:
//! FindCoordinator for transactional ids, InitProducerId with a transactional id (epoch bumps,
//! KIP-360, INVALID_TRANSACTION_TIMEOUT, CONCURRENT_TRANSACTIONS while the previous transaction
//! aborts), AddPartitionsToTxn in the client form (v0–3: all or nothing, PRODUCER_FENCED or, at
//! old versions, INVALID_PRODUCER_EPOCH) and the brokers' verify_only form (v4+),
//! AddOffsetsToTxn, EndTxn, and the abort of a transaction that outlived its timeout. Requests
//! are encoded with the kafka-protocol crate and sent over a plain socket with read timeouts.
//!
//! Commit and abort markers are written by partition owners; a transaction with partitions is
//! checked here only up to its prepare, one with only a group completes at once.

use std::time::{Duration, Instant};

use distlog_compat_tests::raw;
use distlog_compat_tests::{kafka, DistlogOptions, DistlogProcess, OrPanic};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Kafka error codes the tests expect.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;

/// The broker's default `transaction.max.timeout.ms`.
const MAX_TIMEOUT_MS: i32 = 900_000;

struct Conn(raw::Conn);

impl Conn {
    fn open(broker: &DistlogProcess) -> Conn {
        Conn(raw::Conn::open(broker.kafka_addr(), "txn-protocol-test").or_panic("connect"))
    }

    fn call<Req: Encodable, Resp: Decodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> Resp {
        self.0.call(key, version, req).or_panic("request")
    }

    /// InitProducerId v4 for `id`: (error, producer id, epoch).
    fn init(&mut self, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
        self.init_at(4, id, timeout_ms, (-1, -1))
    }

    /// InitProducerId at `version`, naming `current` (KIP-360; (-1, -1) for none).
    fn init_at(&mut self, version: i16, id: &str, timeout_ms: i32, current: (i64, i16)) -> (i16, i64, i16) {
        let r: InitProducerIdResponse = self.call(
            ApiKey::InitProducerId,
            version,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(id))))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(current.0))
                .with_producer_epoch(current.1),
        );
        (r.error_code, r.producer_id.0, r.producer_epoch)
    }

    /// AddPartitionsToTxn at `version` (0–3): (topic, partition, error) per partition.
    fn add_partitions(
        &mut self,
        version: i16,
        id: &str,
        producer: (i64, i16),
        partitions: &[(&str, i32)],
    ) -> Vec<(String, i32, i16)> {
        let r: AddPartitionsToTxnResponse = self.call(
            ApiKey::AddPartitionsToTxn,
            version,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(id)))
                .with_v3_and_below_producer_id(ProducerId(producer.0))
                .with_v3_and_below_producer_epoch(producer.1)
                .with_v3_and_below_topics(topics(partitions)),
        );
        flatten(&r.results_by_topic_v3_and_below)
    }

    /// AddPartitionsToTxn v4 with one verify_only transaction.
    fn verify(
        &mut self,
        id: &str,
        producer: (i64, i16),
        partitions: &[(&str, i32)],
    ) -> Vec<(String, i32, i16)> {
        let r: AddPartitionsToTxnResponse = self.call(
            ApiKey::AddPartitionsToTxn,
            4,
            &AddPartitionsToTxnRequest::default().with_transactions(vec![
                AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(TransactionalId(s(id)))
                    .with_producer_id(ProducerId(producer.0))
                    .with_producer_epoch(producer.1)
                    .with_verify_only(true)
                    .with_topics(topics(partitions)),
            ]),
        );
        assert_eq!(r.error_code, NONE, "{r:?}");
        assert_eq!(r.results_by_transaction.len(), 1, "{r:?}");
        assert_eq!(r.results_by_transaction[0].transactional_id.as_str(), id);
        flatten(&r.results_by_transaction[0].topic_results)
    }

    fn add_offsets(&mut self, version: i16, id: &str, producer: (i64, i16), group: &str) -> i16 {
        let r: AddOffsetsToTxnResponse = self.call(
            ApiKey::AddOffsetsToTxn,
            version,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_group_id(GroupId(s(group))),
        );
        r.error_code
    }

    fn end(&mut self, version: i16, id: &str, producer: (i64, i16), commit: bool) -> i16 {
        let r: EndTxnResponse = self.call(
            ApiKey::EndTxn,
            version,
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_committed(commit),
        );
        r.error_code
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topics(partitions: &[(&str, i32)]) -> Vec<AddPartitionsToTxnTopic> {
    let mut out: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for &(name, p) in partitions {
        match out.iter_mut().find(|t| t.name.as_str() == name) {
            Some(t) => t.partitions.push(p),
            None => out.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s(name)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    out
}

fn flatten(results: &[AddPartitionsToTxnTopicResult]) -> Vec<(String, i32, i16)> {
    let mut out: Vec<(String, i32, i16)> = results
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.partition_error_code))
        })
        .collect();
    out.sort();
    out
}

fn row(topic: &str, partition: i32, code: i16) -> (String, i32, i16) {
    (topic.to_string(), partition, code)
}

fn metric(broker: &DistlogProcess, name: &str) -> f64 {
    let body = broker.http_get("/metrics").or_panic("GET /metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn api_versions_advertises_the_transaction_apis() {
    let broker = DistlogProcess::start_default().or_panic("start distlog");
    let mut c = Conn::open(&broker);
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let range = |key: ApiKey| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::InitProducerId), Some((0, 5)));
    assert_eq!(range(ApiKey::AddPartitionsToTxn), Some((0, 5)));
    assert_eq!(range(ApiKey::AddOffsetsToTxn), Some((0, 4)));
    assert_eq!(range(ApiKey::EndTxn), Some((0, 4)));
}

#[test]
fn coordinator_inits_fences_adds_verifies_and_ends_transactions() {
    let broker = DistlogProcess::start_default().or_panic("start distlog");
    kafka::create_topic(&broker.bootstrap(), "t", 2).or_panic("create topic");
    let mut c = Conn::open(&broker);
    let port = broker.kafka_addr().port() as i32;

    // FindCoordinator names this broker for a transactional id; an empty one is refused.
    let one: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(s("tx-a"))
            .with_key_type(1),
    );
    assert_eq!(
        (one.error_code, one.node_id.0, one.port),
        (NONE, 1, port),
        "{one:?}"
    );
    let batch: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s("tx-a"), s("")]),
    );
    let got: Vec<(String, i16, i32)> = batch
        .coordinators
        .iter()
        .map(|k| (k.key.to_string(), k.error_code, k.node_id.0))
        .collect();
    assert_eq!(
        got,
        vec![("tx-a".into(), NONE, 1), ("".into(), INVALID_REQUEST, -1)]
    );

    // InitProducerId: a new id at epoch 0, again: the same id at epoch 1.
    let (code, pid, epoch) = c.init("tx-a", 60_000);
    assert_eq!((code, epoch), (NONE, 0));
    assert!(pid >= 0, "{pid}");
    assert_eq!(c.init("tx-a", 60_000), (NONE, pid, 1));
    // Refused: an empty transactional id, a timeout above the maximum or not positive.
    assert_eq!(c.init("", 60_000), (INVALID_REQUEST, -1, -1));
    assert_eq!(
        c.init("tx-a", MAX_TIMEOUT_MS + 1),
        (INVALID_TRANSACTION_TIMEOUT, -1, -1)
    );
    assert_eq!(c.init("tx-a", 0), (INVALID_TRANSACTION_TIMEOUT, -1, -1));
    assert_eq!(c.init("tx-a", MAX_TIMEOUT_MS), (NONE, pid, 2));
    // KIP-360: naming the current id and epoch bumps it; naming an old epoch is fenced (v3: the
    // pre-KIP-588 INVALID_PRODUCER_EPOCH).
    assert_eq!(c.init_at(4, "tx-a", 60_000, (pid, 2)), (NONE, pid, 3));
    assert_eq!(c.init_at(4, "tx-a", 60_000, (pid, 2)), (PRODUCER_FENCED, -1, -1));
    assert_eq!(
        c.init_at(3, "tx-a", 60_000, (pid, 2)),
        (INVALID_PRODUCER_EPOCH, -1, -1)
    );
    assert_eq!(
        c.init_at(4, "tx-unknown", 60_000, (pid, 0)),
        (INVALID_PRODUCER_ID_MAPPING, -1, -1)
    );
    let current = (pid, 3);

    // An old epoch is fenced: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH below.
    for (version, code) in [
        (3, PRODUCER_FENCED),
        (2, PRODUCER_FENCED),
        (1, INVALID_PRODUCER_EPOCH),
    ] {
        assert_eq!(
            c.add_partitions(version, "tx-a", (pid, 1), &[("t", 0)]),
            vec![row("t", 0, code)],
            "v{version}"
        );
    }
    // Another producer id is not the transactional id's.
    assert_eq!(
        c.add_partitions(3, "tx-a", (pid + 1000, 3), &[("t", 0)]),
        vec![row("t", 0, INVALID_PRODUCER_ID_MAPPING)]
    );
    // One unknown partition: nothing is added.
    assert_eq!(
        c.add_partitions(3, "tx-a", current, &[("t", 0), ("t", 7), ("nope", 0)]),
        vec![
            row("nope", 0, UNKNOWN_TOPIC_OR_PARTITION),
            row("t", 0, OPERATION_NOT_ATTEMPTED),
            row("t", 7, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    // Nothing open: EndTxn is refused, and verification finds nothing.
    assert_eq!(c.end(3, "tx-a", current, true), INVALID_TXN_STATE);
    assert_eq!(
        c.verify("tx-a", current, &[("t", 0)]),
        vec![row("t", 0, INVALID_TXN_STATE)]
    );

    // Open a transaction with partition 0: verification finds it, and only it.
    assert_eq!(
        c.add_partitions(3, "tx-a", current, &[("t", 0)]),
        vec![row("t", 0, NONE)]
    );
    assert_eq!(
        c.verify("tx-a", current, &[("t", 0), ("t", 1)]),
        vec![row("t", 0, NONE), row("t", 1, INVALID_TXN_STATE)]
    );
    assert_eq!(
        c.verify("tx-a", (pid, 2), &[("t", 0)]),
        vec![row("t", 0, PRODUCER_FENCED)]
    );
    assert_eq!(
        c.verify("tx-other", current, &[("t", 0)]),
        vec![row("t", 0, INVALID_PRODUCER_ID_MAPPING)]
    );
    // A stale epoch cannot end it; the current one prepares the commit.
    assert_eq!(c.end(1, "tx-a", (pid, 2), true), INVALID_PRODUCER_EPOCH);
    assert_eq!(c.end(3, "tx-a", (pid, 2), true), PRODUCER_FENCED);
    assert_eq!(c.end(3, "tx-a", current, true), NONE);
    // Prepared (or, once its marker is written, complete): no longer open.
    assert_eq!(
        c.verify("tx-a", current, &[("t", 0)]),
        vec![row("t", 0, INVALID_TXN_STATE)]
    );

    // A transaction of only a group completes at once.
    let (code, gpid, _) = c.init("tx-g", 60_000);
    assert_eq!(code, NONE);
    let g = (gpid, 0);
    assert_eq!(c.add_offsets(3, "tx-g", g, "group-1"), NONE);
    assert_eq!(
        c.add_offsets(1, "tx-g", (gpid, -5), "group-1"),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(c.add_offsets(2, "tx-g", (gpid, -5), "group-1"), PRODUCER_FENCED);
    assert_eq!(c.add_offsets(3, "", g, "group-1"), INVALID_REQUEST);
    assert_eq!(c.end(3, "tx-g", g, true), NONE);
    // A retried commit is answered as the first was; an abort of it is not.
    assert_eq!(c.end(3, "tx-g", g, true), NONE);
    assert_eq!(c.end(3, "tx-g", g, false), INVALID_TXN_STATE);
    // The next transaction aborts.
    assert_eq!(c.add_offsets(3, "tx-g", g, "group-1"), NONE);
    assert_eq!(c.end(0, "tx-g", g, false), NONE);

    // A new producer of the id while a transaction is open: that transaction is aborted (the
    // epoch bumped to fence its producer) and the caller retries.
    assert_eq!(c.add_offsets(3, "tx-g", g, "group-1"), NONE);
    assert_eq!(c.init("tx-g", 60_000), (CONCURRENT_TRANSACTIONS, -1, -1));
    assert_eq!(c.init("tx-g", 60_000), (NONE, gpid, 2));
    assert_eq!(c.end(3, "tx-g", g, true), PRODUCER_FENCED);

    assert_eq!(
        metric(&broker, "distlog_transactions_total{outcome=\"commit\"}"),
        3.0
    );
    assert_eq!(
        metric(&broker, "distlog_transactions_total{outcome=\"abort\"}"),
        1.0
    );
}

#[test]
fn a_transaction_outliving_its_timeout_is_aborted_and_its_producer_fenced() {
    let broker = DistlogProcess::start(DistlogOptions {
        extra_args: vec![
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms".into(),
            "500".into(),
        ],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog");
    let mut c = Conn::open(&broker);
    let (code, pid, epoch) = c.init("tx-slow", 2_000);
    assert_eq!((code, epoch), (NONE, 0));
    let producer = (pid, 0);
    assert_eq!(c.add_offsets(3, "tx-slow", producer, "group-slow"), NONE);
    // Another transaction stays open well within its timeout.
    let (code, other, _) = c.init("tx-open", 60_000);
    assert_eq!(code, NONE);
    assert_eq!(c.add_offsets(3, "tx-open", (other, 0), "group-open"), NONE);
    let opened = Instant::now();
    let deadline = opened + Duration::from_secs(20);
    let timeouts = "distlog_transactions_total{outcome=\"timeout\"}";
    while metric(&broker, timeouts) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the transaction was not aborted within 20 s; log:\n{}",
            broker.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(1_900),
        "aborted after {:?}, before its 2 s timeout",
        opened.elapsed()
    );
    assert_eq!(metric(&broker, timeouts), 1.0);
    // The abort bumped the epoch: the producer is fenced and cannot commit.
    assert_eq!(c.end(3, "tx-slow", producer, true), PRODUCER_FENCED);
    assert_eq!(c.end(1, "tx-slow", producer, true), INVALID_PRODUCER_EPOCH);
    // The leader's sweeper counts what is still open: only the other transaction.
    while metric(&broker, "distlog_transactions_open") != 1.0 {
        assert!(
            Instant::now() < deadline,
            "distlog_transactions_open is {}, not 1",
            metric(&broker, "distlog_transactions_open")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.end(3, "tx-open", (other, 0), true), NONE);
    // A new producer of the id starts after the bumped epoch.
    assert_eq!(c.init("tx-slow", 2_000), (NONE, pid, 2));
    let log = broker.log_tail(400);
    assert!(
        log.lines()
            .any(|l| l.contains("outlived its timeout") && l.contains("tx-slow")),
        "no log line names the aborted transaction"
    );
}
