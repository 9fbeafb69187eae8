//! Idempotent producers through the two pure-Python clients against a real `distlog`:
//! kafka-python's default `KafkaProducer()` (idempotence on since kafka-python 3, KIP-679) and
//! aiokafka with `enable_idempotence=True` each produce 10,000 messages to one partition. Each
//! asks for a producer id (InitProducerId), numbers its batches, and every message is
//! acknowledged at offsets 0..9999 in send order; consumption reads exactly those messages, in
//! order; the partition's producer state holds that one producer with its last sequence 9999.
//!
//! The clients run `compat-tests/python/idempotent_produce.py` with the interpreter of the
//! virtualenv that `scripts/install-deps.sh` (through `scripts/install-python-clients.sh`)
//! creates at `target/python-clients`, or `$DISTLOG_PYTHON`. A missing interpreter fails these
//! tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use distlog_compat_tests::command::{python_clients as python, run_with_deadline};
use distlog_compat_tests::kafka;
use distlog_compat_tests::{http, raw, start_broker, DistlogProcess, OrPanic};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::{ApiKey, DescribeProducersRequest, DescribeProducersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

/// Messages each client produces.
const MESSAGES: usize = 10_000;
/// The script's own deadline for one run; the process is killed 30 s after it.
const RUN_TIMEOUT_S: u64 = 90;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/idempotent_produce.py")
}

/// The value of message `i`, as the script writes it.
fn value(i: usize) -> Vec<u8> {
    format!("m-{i:07}").into_bytes()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs the script for `client` to completion (killed 30 s past its own deadline) and returns
/// the JSON document it printed; panics with its output and the broker's log when it failed.
fn run_idempotent_produce(broker: &DistlogProcess, client: &str, topic: &str) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(script())
        .args([
            "--client",
            client,
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            topic,
        ])
        .args(["--count", &MESSAGES.to_string()])
        .args(["--timeout-s", &RUN_TIMEOUT_S.to_string()])
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if std::env::var("DISTLOG_PYTHON_DEBUG").as_deref() == Ok("1") {
        cmd.arg("--debug");
    }
    let out = run_with_deadline(cmd, None, Duration::from_secs(RUN_TIMEOUT_S + 30)).unwrap_or_else(|e| {
        panic!(
            "{client}: {e:#}\n---- broker log (tail) ----\n{}",
            broker.log_tail(60)
        )
    });
    let stdout = out.stdout_text();
    assert!(
        out.status.success(),
        "{client} idempotent producer failed ({}).\n---- stderr (tail) ----\n{}\n\
         ---- stdout (first 3000 bytes) ----\n{}\n---- broker log (tail) ----\n{}",
        out.status,
        tail(&out.stderr, 100),
        stdout.chars().take(3000).collect::<String>(),
        broker.log_tail(60)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{client} printed no JSON document ({e}): {stdout}\n---- stderr (tail) ----\n{}",
            tail(&out.stderr, 40)
        )
    })
}

/// `distlog_producer_ids_active` from the broker's /metrics (`None` when it is not exported; it
/// is from start-up, at 0).
fn producer_ids_active(broker: &DistlogProcess) -> Option<f64> {
    let metrics = broker.http_get("/metrics").or_panic("GET /metrics");
    assert_eq!(metrics.status, 200, "GET /metrics: {}", metrics.body);
    http::metric_sum(&metrics.body, "distlog_producer_ids_active")
}

/// The active producers of `topic`/0 as the broker's DescribeProducers v0 reports them.
fn describe_producers(broker: &DistlogProcess, topic: &str) -> Vec<ProducerState> {
    let mut conn = raw::Conn::open(broker.kafka_addr(), "python-idempotence-test").or_panic("connect");
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_indexes(vec![0])]);
    let resp: DescribeProducersResponse = conn
        .call(ApiKey::DescribeProducers, 0, &req)
        .or_panic("DescribeProducers");
    assert_eq!(resp.topics.len(), 1, "{resp:?}");
    assert_eq!(resp.topics[0].partitions.len(), 1, "{resp:?}");
    let partition = &resp.topics[0].partitions[0];
    assert_eq!(
        (partition.partition_index, partition.error_code),
        (0, 0),
        "{resp:?}"
    );
    partition.active_producers.clone()
}

fn int(doc: &Value, field: &str) -> i64 {
    doc[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer in {doc}"))
}

/// The client's report: idempotent (acks=all, a producer id and epoch 0 from its one
/// InitProducerId, `MESSAGES` records numbered), no client error, every message acknowledged at
/// partition 0, offset = its index. Returns the producer id.
fn assert_client_report(client: &str, doc: &Value) -> i64 {
    let mut summary = doc.clone();
    summary["acked"] = Value::from(doc["acked"].as_array().map_or(0, Vec::len));
    assert_eq!(doc["client"], client, "{summary}");
    assert_eq!(doc["count"], MESSAGES, "{summary}");
    assert_eq!(
        doc["idempotence"], true,
        "{client} did not produce idempotently: {summary}"
    );
    assert_eq!(int(doc, "acks"), -1, "{client} did not use acks=all: {summary}");
    assert_eq!(
        doc["client_errors"].as_array().map(Vec::len),
        Some(0),
        "{client} logged warnings or errors while producing: {summary}"
    );
    let producer_id = int(doc, "producer_id");
    assert!(producer_id >= 0, "{client} holds no producer id: {summary}");
    assert_eq!(int(doc, "producer_epoch"), 0, "{summary}");
    assert_eq!(
        int(doc, "next_sequence"),
        MESSAGES as i64,
        "{client}'s next sequence number for the partition: {summary}"
    );
    let acked: Vec<(i64, i64)> = doc["acked"]
        .as_array()
        .expect("acked")
        .iter()
        .map(|a| match (a[0].as_i64(), a[1].as_i64()) {
            (Some(partition), Some(offset)) => (partition, offset),
            _ => panic!("{client}: not a (partition, offset) acknowledgement: {a}"),
        })
        .collect();
    assert_eq!(acked.len(), MESSAGES, "{client}: acknowledgements: {summary}");
    let wrong: Vec<(usize, (i64, i64))> = acked
        .iter()
        .enumerate()
        .filter(|(i, a)| **a != (0, *i as i64))
        .map(|(i, a)| (i, *a))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "{client}: messages acknowledged elsewhere than partition 0 at their index in send \
         order (index, (partition, offset)), first ten: {wrong:?}"
    );
    assert_eq!(doc["offsets_exact"], true, "{summary}");
    producer_id
}

/// The partition holds exactly the `MESSAGES` values in send order at offsets 0..MESSAGES: no
/// loss, no duplicate (every value is distinct and each sits at its own index), nothing more
/// (the high watermark).
fn assert_partition_holds_exactly_the_messages(client: &str, bootstrap: &str, topic: &str) {
    assert_eq!(
        kafka::watermarks(bootstrap, topic, 0).or_panic("watermarks"),
        (0, MESSAGES as i64),
        "{client}: the partition holds a number of records other than the {MESSAGES} sent \
         (duplicates or losses)"
    );
    let consumed =
        kafka::consume_n(bootstrap, topic, 0, 0, MESSAGES, Duration::from_secs(60)).or_panic("consume");
    assert_eq!(consumed.len(), MESSAGES);
    for (i, record) in consumed.iter().enumerate() {
        assert_eq!(
            (record.partition, record.offset),
            (0, i as i64),
            "{client}: record {i} read at the wrong place"
        );
        assert_eq!(record.key, None, "{client}: key of the record at offset {i}");
        assert_eq!(
            record.payload.as_deref(),
            Some(value(i).as_slice()),
            "{client}: the record at offset {i} is {:?}, not message {i}",
            record.payload.as_deref().map(String::from_utf8_lossy)
        );
    }
}

/// One client's run on a fresh broker with a fresh 1-partition topic.
fn idempotent_produce_exactly_once_in_order(client: &str) {
    let test_started = Instant::now();
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = format!("py-idempotent-{client}");
    kafka::create_topic(&bootstrap, &topic, 1).or_panic("create topic");
    let before = producer_ids_active(&broker);
    assert!(
        before == Some(0.0),
        "a fresh broker knows no producer, yet distlog_producer_ids_active is {before:?}"
    );

    let started = Instant::now();
    let doc = run_idempotent_produce(&broker, client, &topic);
    let produced_in = started.elapsed();
    let producer_id = assert_client_report(client, &doc);

    assert_partition_holds_exactly_the_messages(client, &bootstrap, &topic);

    // The broker saw the producer id: one idempotent producer on the one partition, and the
    // partition's producer state is the client's producer id, epoch 0, last sequence 9999.
    assert_eq!(
        producer_ids_active(&broker),
        Some(1.0),
        "distlog_producer_ids_active after one idempotent producer wrote to one partition"
    );
    let producers: Vec<(i64, i32, i32)> = describe_producers(&broker, &topic)
        .iter()
        .map(|p| (p.producer_id.0, p.producer_epoch, p.last_sequence))
        .collect();
    assert_eq!(
        producers,
        vec![(producer_id, 0, MESSAGES as i32 - 1)],
        "{client}: the partition's producers (id, epoch, last sequence)"
    );
    eprintln!(
        "{client} {}: {MESSAGES} messages produced idempotently in {produced_in:?} \
         (script {} s; producer id {producer_id}), whole test with the broker's start {:?}",
        doc["version"].as_str().unwrap_or("?"),
        doc["elapsed_s"],
        test_started.elapsed()
    );
}

#[test]
fn kafka_python_default_producer_is_idempotent_and_writes_10000_exactly_once_in_order() {
    idempotent_produce_exactly_once_in_order("kafka-python");
}

#[test]
fn aiokafka_idempotent_producer_writes_10000_exactly_once_in_order() {
    idempotent_produce_exactly_once_in_order("aiokafka");
}
