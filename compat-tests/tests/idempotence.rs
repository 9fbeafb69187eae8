//! Idempotent producers through librdkafka against a real `distlog`: every batch written once,
//! in order, when answers are lost after the write (the test-only fault
//! `DISTLOG_TEST_DROP_PRODUCE_RESPONSES` closes connections between append and answer) and
//! across a restart of the node, whose producer state is rebuilt from snapshot plus replay.

use std::collections::HashMap;
use std::time::Duration;

use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::process::{DistlogOptions, DistlogProcess};
use distlog_compat_tests::OrPanic;
use rdkafka::config::ClientConfig;

/// An idempotent producer: `enable.idempotence=true`, acks=all, 5 requests in flight, batches of
/// up to `batch` messages.
fn idempotent_config(bootstrap: &str, batch: usize) -> ClientConfig {
    let mut config = kafka::producer_config(bootstrap, "all");
    config
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "5")
        .set("batch.num.messages", batch.to_string())
        .set("message.timeout.ms", "120000")
        .set("retries", "1000000");
    config
}

fn numbered(n: usize) -> Vec<TestRecord> {
    (0..n)
        .map(|i| TestRecord::value(format!("m-{i:07}").into_bytes()))
        .collect()
}

/// Every message delivered, offsets exactly 0..n in send order, and the partition holds exactly
/// the n messages in order: no duplicate, no gap, by value and by offset.
fn assert_exactly_once_in_order(bootstrap: &str, topic: &str, records: &[TestRecord], deliveries: &[kafka::Delivery]) {
    let n = records.len();
    for d in deliveries {
        let offset = d
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("message {} not delivered: {e:?}", d.id));
        assert_eq!(*offset, d.id as i64, "message {} acknowledged at another offset", d.id);
    }
    assert_eq!(
        kafka::watermarks(bootstrap, topic, 0).or_panic("watermarks"),
        (0, n as i64),
        "the partition holds a number of records other than the {n} sent (duplicates or losses)"
    );
    let consumed = kafka::consume_n(bootstrap, topic, 0, 0, n, Duration::from_secs(120)).or_panic("consume");
    let mut seen: HashMap<&[u8], i64> = HashMap::new();
    for (i, (got, sent)) in consumed.iter().zip(records).enumerate() {
        assert_eq!(got.offset, i as i64, "offset at position {i}");
        let value = got.payload.as_deref().unwrap_or_default();
        if let Some(first) = seen.insert(value, got.offset) {
            panic!(
                "{:?} stored twice, at offsets {first} and {}",
                String::from_utf8_lossy(value),
                got.offset
            );
        }
        assert_eq!(got.payload, sent.payload, "value at offset {i}");
    }
}

fn metric(broker: &DistlogProcess, name: &str) -> f64 {
    let body = broker.http_get("/metrics").or_panic("GET /metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn idempotent_produce_survives_answers_lost_after_the_write() {
    const N: usize = 100_000;
    let broker = DistlogProcess::start(DistlogOptions {
        env: vec![("DISTLOG_TEST_DROP_PRODUCE_RESPONSES".into(), "0.02".into())],
        ..DistlogOptions::default()
    })
    .or_panic("start broker");
    let bootstrap = broker.bootstrap();
    let topic = "idempotent-drops";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let records = numbered(N);
    let deliveries = kafka::produce_records(
        &idempotent_config(&bootstrap, 200),
        topic,
        Some(0),
        &records,
        Duration::from_secs(240),
    )
    .or_panic("produce");
    assert_exactly_once_in_order(&bootstrap, topic, &records, &deliveries);
    // The fault really fired, and the retries really met the producer state.
    let dropped = broker.log_tail(100_000).matches("DISTLOG_TEST_DROP_PRODUCE_RESPONSES").count();
    assert!(dropped > 0, "the fault never closed a connection");
    assert!(
        metric(&broker, "distlog_producer_duplicate_batches_total") > 0.0,
        "no retried batch was answered as a duplicate although {dropped} answers were dropped"
    );
}
