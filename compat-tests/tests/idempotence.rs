//! Idempotent producers through librdkafka against a real `distlog`: every batch written once,
//! in order, when answers are lost after the write (the test-only fault
//! `DISTLOG_TEST_DROP_PRODUCE_RESPONSES` closes connections between append and answer) and
//! across a restart of the node, whose producer state is rebuilt from snapshot plus replay.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::process::{DistlogOptions, DistlogProcess};
use distlog_compat_tests::raw::{self, Conn};
use distlog_compat_tests::OrPanic;
use kafka_protocol::messages::*;
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
fn assert_exactly_once_in_order(
    bootstrap: &str,
    topic: &str,
    records: &[TestRecord],
    deliveries: &[kafka::Delivery],
) {
    let n = records.len();
    for d in deliveries {
        let offset = d
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("message {} not delivered: {e:?}", d.id));
        assert_eq!(
            *offset, d.id as i64,
            "message {} acknowledged at another offset",
            d.id
        );
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
    let dropped = broker
        .log_tail(100_000)
        .matches("DISTLOG_TEST_DROP_PRODUCE_RESPONSES")
        .count();
    assert!(dropped > 0, "the fault never closed a connection");
    assert!(
        metric(&broker, "distlog_producer_duplicate_batches_total") > 0.0,
        "no retried batch was answered as a duplicate although {dropped} answers were dropped"
    );
}

/// One v2 batch of one record from producer `pid` (epoch 0) at sequence `seq`.
fn idempotent_batch(pid: i64, seq: i32, value: String) -> Bytes {
    raw::one_record_batch((pid, 0, seq), 1_700_000_000_000, Bytes::from(value))
        .or_panic("encode record batch")
}

/// (error code, base offset) of the only partition of a produce answer.
fn answer(resp: &ProduceResponse) -> (i16, i64) {
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Send `requests` pipelined, `window` at a time, and return the answers in order.
fn pipelined<Req: kafka_protocol::protocol::Encodable, Resp: kafka_protocol::protocol::Decodable>(
    conn: &mut Conn,
    key: ApiKey,
    version: i16,
    requests: &[Req],
    window: usize,
) -> Vec<Resp> {
    let mut out = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(window) {
        let ids: Vec<i32> = chunk
            .iter()
            .map(|r| conn.send(key, version, r).or_panic("send"))
            .collect();
        for id in ids {
            out.push(conn.receive(key, version, id).or_panic("receive"));
        }
    }
    out
}

#[test]
fn a_restarted_node_rebuilds_ten_thousand_producers_and_still_answers_a_retry_as_a_duplicate() {
    const PRODUCERS: usize = 10_000;
    let mut broker = DistlogProcess::start_default().or_panic("start broker");
    let topic = "many-producers";
    kafka::create_topic(&broker.bootstrap(), topic, 1).or_panic("create topic");
    let mut conn = Conn::open(broker.kafka_addr(), "idempotence-restart").or_panic("connect");
    // 10,000 producer ids from InitProducerId (v4: Kafka 2.5+ clients).
    let inits: Vec<InitProducerIdResponse> = pipelined(
        &mut conn,
        ApiKey::InitProducerId,
        4,
        &vec![InitProducerIdRequest::default().with_transactional_id(None); PRODUCERS],
        100,
    );
    let pids: Vec<i64> = inits
        .iter()
        .map(|r| {
            assert_eq!((r.error_code, r.producer_epoch), (0, 0), "{r:?}");
            r.producer_id.0
        })
        .collect();
    // Each writes one batch at sequence 0, producer i at offset i.
    let batches: Vec<Bytes> = pids
        .iter()
        .map(|&pid| idempotent_batch(pid, 0, format!("producer-{pid}")))
        .collect();
    let requests: Vec<ProduceRequest> = batches
        .iter()
        .map(|b| raw::produce_request(topic, 0, b.clone()))
        .collect();
    let answers: Vec<ProduceResponse> = pipelined(&mut conn, ApiKey::Produce, 9, &requests, 5);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(answer(a), (0, i as i64), "producer {i}'s first batch");
    }
    assert_eq!(metric(&broker, "distlog_producer_ids_active"), PRODUCERS as f64);
    drop(conn);

    broker.restart().or_panic("restart the broker");
    let mut conn = Conn::open(broker.kafka_addr(), "idempotence-restart").or_panic("reconnect");
    // Retries of batches from before the restart: answered with their
    // original offsets, nothing written.
    for i in [0, 4_321, PRODUCERS - 1] {
        let resp: ProduceResponse = conn
            .call(
                ApiKey::Produce,
                9,
                &raw::produce_request(topic, 0, batches[i].clone()),
            )
            .or_panic("retry");
        assert_eq!(
            answer(&resp),
            (0, i as i64),
            "retry of producer {i}'s batch after the restart"
        );
    }
    assert_eq!(
        kafka::watermarks(&broker.bootstrap(), topic, 0).or_panic("watermarks"),
        (0, PRODUCERS as i64),
        "a retry was written again"
    );
    // Every producer is known again: the next in sequence is written, a gap
    // is out of order (not an unknown producer).
    let next: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &raw::produce_request(topic, 0, idempotent_batch(pids[7], 1, "next".into())),
        )
        .or_panic("next batch");
    assert_eq!(answer(&next), (0, PRODUCERS as i64));
    let gap: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &raw::produce_request(topic, 0, idempotent_batch(pids[8], 2, "gap".into())),
        )
        .or_panic("gap");
    assert_eq!(answer(&gap), (45, -1), "OUT_OF_ORDER_SEQUENCE_NUMBER for a gap");
    assert_eq!(metric(&broker, "distlog_producer_ids_active"), PRODUCERS as f64);
    // The admin API shows the rebuilt state.
    let resp = broker
        .http_get(&format!("/admin/streams/{topic}/0/producers"))
        .or_panic("GET producers");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body: serde_json::Value = serde_json::from_str(&resp.body).expect("producers JSON");
    let listed = body["producers"].as_array().expect("producers array");
    assert_eq!(listed.len(), PRODUCERS);
    let p7 = listed
        .iter()
        .find(|p| p["producer_id"] == pids[7])
        .expect("producer 7 listed");
    let batches: Vec<(i64, i64, i64)> = p7["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|b| {
            let n = |k: &str| b[k].as_i64().expect("a number");
            (n("first_sequence"), n("last_sequence"), n("first_offset"))
        })
        .collect();
    assert_eq!(batches, vec![(0, 0, 7), (1, 1, PRODUCERS as i64)]);
    let missing = broker
        .http_get("/admin/streams/no-such-topic/0/producers")
        .or_panic("GET producers of a missing topic");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        broker.log_tail(2_000).contains("stream state rebuilt"),
        "no rebuild logged:\n{}",
        broker.log_tail(50)
    );
}

#[test]
fn an_idle_producer_expires_and_is_then_unknown() {
    let broker = DistlogProcess::start(DistlogOptions {
        extra_args: vec!["--producer-id-expiration-ms".into(), "1000".into()],
        ..DistlogOptions::default()
    })
    .or_panic("start broker");
    let topic = "expiring";
    kafka::create_topic(&broker.bootstrap(), topic, 1).or_panic("create topic");
    let mut conn = Conn::open(broker.kafka_addr(), "idempotence-expiry").or_panic("connect");
    let init: InitProducerIdResponse = conn
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_transactional_id(None),
        )
        .or_panic("init producer id");
    let pid = init.producer_id.0;
    let first: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &raw::produce_request(topic, 0, idempotent_batch(pid, 0, "a".into())),
        )
        .or_panic("first batch");
    assert_eq!(answer(&first), (0, 0));
    assert_eq!(metric(&broker, "distlog_producer_ids_active"), 1.0);
    // Idle for well over a second: the writer's housekeeping drops it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while metric(&broker, "distlog_producer_ids_active") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle producer never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let next: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &raw::produce_request(topic, 0, idempotent_batch(pid, 1, "b".into())),
        )
        .or_panic("batch after expiry");
    assert_eq!(
        answer(&next),
        (59, -1),
        "UNKNOWN_PRODUCER_ID once the producer expired"
    );
    // Starting again at sequence 0 (what a client does after a reset) is accepted.
    let again: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &raw::produce_request(topic, 0, idempotent_batch(pid, 0, "c".into())),
        )
        .or_panic("batch at sequence 0");
    assert_eq!(answer(&again), (0, 1));
}
