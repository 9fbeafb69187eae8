//! Retention and DeleteRecords against a real broker: old segments disappear (from metadata and
//! from the bookie), the log start offset moves, ListOffsets earliest answers it, a fetch below it
//! is OFFSET_OUT_OF_RANGE, consumers reset as `auto.offset.reset` says, and a restart keeps all
//! of it.

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::raw::Conn;
use distlog_compat_tests::{now_ms, DistlogOptions, DistlogProcess, OrPanic};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    delete_records_request, fetch_request, list_offsets_request, ApiKey, BrokerId, DeleteRecordsRequest,
    DeleteRecordsResponse, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// A broker that checks retention twice a second.
fn broker() -> DistlogProcess {
    DistlogProcess::start(DistlogOptions {
        extra_args: vec!["--log-retention-check-interval-ms".into(), "500".into()],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog")
}

/// The partition's entry of `/admin/topics`: owner, log start offset, segments.
fn partition_json(b: &DistlogProcess, topic: &str, partition: u64) -> Value {
    let resp = b.http_get("/admin/topics").or_panic("GET /admin/topics");
    let v: Value = serde_json::from_str(&resp.body).expect("topics JSON");
    let t = v["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .unwrap_or_else(|| panic!("topic {topic} in {v}"));
    t["partitions"][partition as usize].clone()
}

/// Ledger ids of the partition's segments, in order.
fn ledgers(p: &Value) -> Vec<u64> {
    p["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["ledger_id"].as_u64().expect("ledger id"))
        .collect()
}

/// Whether any bookie still holds `ledger` (`/admin/ledgers/{ledger}`).
fn ledger_exists(b: &DistlogProcess, ledger: u64) -> bool {
    let resp = b
        .http_get(&format!("/admin/ledgers/{ledger}"))
        .or_panic("GET ledger");
    let v: Value = serde_json::from_str(&resp.body).expect("ledger JSON");
    v["bookies"]
        .as_array()
        .expect("bookies")
        .iter()
        .any(|r| r["exists"] == true)
}

/// Value of the first metric line starting with `prefix` (0 when absent).
fn metric(b: &DistlogProcess, prefix: &str) -> f64 {
    let text = b.http_get("/metrics").or_panic("GET /metrics").body;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn produce(bootstrap: &str, topic: &str, records: &[TestRecord]) {
    let deliveries = kafka::produce_records(
        &kafka::producer_config(bootstrap, "all"),
        topic,
        Some(0),
        records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert!(deliveries.iter().all(|d| d.result.is_ok()), "{deliveries:?}");
}

/// Polls the partition's `/admin/topics` entry until `cond` holds; returns it.
fn wait_for_partition(b: &DistlogProcess, topic: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Duration::from_secs(15);
    let started = Instant::now();
    loop {
        let p = partition_json(b, topic, 0);
        if cond(&p) {
            return p;
        }
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}: {p:#}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// ListOffsets (v7) for `timestamp` (-2 earliest, -1 latest, -3 max timestamp): (error, offset).
fn list_offset(conn: &mut Conn, topic: &str, timestamp: i64) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            ])]);
    let resp: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &req).or_panic("ListOffsets");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// A Fetch (v12) of partition 0 at `offset`: (error, log start offset, high watermark).
fn fetch_at(conn: &mut Conn, topic: &str, offset: i64) -> (i16, i64, i64) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &req).or_panic("Fetch");
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.log_start_offset, p.high_watermark)
}

/// DeleteRecords (at `version`) of partition `partition` before `offset`: (error, low watermark).
fn delete_records(conn: &mut Conn, version: i16, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset),
            ])]);
    let resp: DeleteRecordsResponse = conn
        .call(ApiKey::DeleteRecords, version, &req)
        .or_panic("DeleteRecords");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

/// The first offset an assign-based consumer gets when it starts at `start` with
/// `auto.offset.reset` = `reset`, once something arrives.
fn first_offset_after_reset(bootstrap: &str, topic: &str, start: i64, reset: &str) -> Option<i64> {
    let mut config = kafka::consumer_config(bootstrap);
    config.set("auto.offset.reset", reset);
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(start))
        .expect("partition list");
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => return Some(m.offset()),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    None
}

#[test]
fn time_retention_drops_expired_segments_everywhere_and_consumers_reset() {
    let mut b = broker();
    let bootstrap = b.bootstrap();
    let topic = "aging";
    kafka::create_topic_with_config(
        &bootstrap,
        topic,
        1,
        &[("retention.ms", "2000"), ("segment.bytes", "4096")],
    )
    .or_panic("create");
    // 40 records an hour old (about ten 4 KiB segments), then 5 fresh ones.
    let old = now_ms() - 3_600_000;
    let records: Vec<TestRecord> = (0..40)
        .map(|i| TestRecord {
            timestamp: Some(old + i),
            ..TestRecord::value(kafka::patterned_payload(i as usize, 1000))
        })
        .collect();
    produce(&bootstrap, topic, &records);
    let now = now_ms();
    let fresh: Vec<TestRecord> = (40..45)
        .map(|i| TestRecord {
            timestamp: Some(now + i),
            ..TestRecord::value(kafka::patterned_payload(i as usize, 1000))
        })
        .collect();
    produce(&bootstrap, topic, &fresh);

    // Within a check interval plus slack every segment holding only old records is gone.
    let p = wait_for_partition(&b, topic, "retention", |p| {
        let segs = p["segments"].as_array().expect("segments");
        segs.len() <= 2 && p["log_start_offset"].as_u64().unwrap_or(0) > 0
    });
    let start = p["log_start_offset"].as_u64().expect("log start");
    let segs = p["segments"].as_array().expect("segments").clone();
    // The first segment left starts at the log start offset; only the newest (being written)
    // and at most one sealed segment holding fresh records remain.
    assert_eq!(segs[0]["base_offset"].as_u64(), Some(start), "{p}");
    assert!(start <= 40, "a fresh record was deleted: start {start}, {p}");
    for s in &segs[..segs.len() - 1] {
        assert!(
            s["end_txid"].as_i64().expect("end txid") > old + 40,
            "an expired sealed segment survived: {p}"
        );
    }
    let first_kept_ledger = ledgers(&p)[0];
    for ledger in 1..first_kept_ledger {
        assert!(!ledger_exists(&b, ledger), "ledger {ledger} still on a bookie");
    }
    // The check sets its gauges right after the truncation it did.
    let gauge = format!("distlog_log_start_offset{{partition=\"0\",topic=\"{topic}\"}}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&b, &gauge) != start as f64 {
        assert!(
            Instant::now() < deadline,
            "{gauge} is {}, not {start}",
            metric(&b, &gauge)
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&b, "distlog_log_truncated_segments_total{cause=\"retention\"}") >= 1.0);

    let start = start as i64;
    let mut conn = Conn::open(b.kafka_addr(), "retention-test").or_panic("connect");
    assert_eq!(list_offset(&mut conn, topic, -2), (0, start), "earliest");
    assert_eq!(list_offset(&mut conn, topic, -1), (0, 45), "latest");
    assert_eq!(
        list_offset(&mut conn, topic, -3).1,
        44,
        "max timestamp: the last fresh record"
    );
    assert_eq!(
        fetch_at(&mut conn, topic, 0).0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(fetch_at(&mut conn, topic, start), (0, start, 45));

    // From earliest: exactly the records kept, in order, with their payloads.
    let kept = kafka::consume_n(
        &bootstrap,
        topic,
        0,
        start,
        (45 - start) as usize,
        Duration::from_secs(20),
    )
    .or_panic("consume kept");
    for (i, r) in kept.iter().enumerate() {
        let offset = start + i as i64;
        assert_eq!(r.offset, offset);
        assert_eq!(
            r.payload.as_deref(),
            Some(&kafka::patterned_payload(offset as usize, 1000)[..])
        );
    }
    // A consumer positioned below the log start resets as auto.offset.reset says.
    assert_eq!(
        first_offset_after_reset(&bootstrap, topic, 0, "earliest"),
        Some(start)
    );

    // A restart keeps the log start offset and the kept records.
    b.restart().or_panic("restart");
    let bootstrap = b.bootstrap();
    let mut conn = Conn::open(b.kafka_addr(), "retention-test").or_panic("reconnect");
    assert_eq!(
        list_offset(&mut conn, topic, -2),
        (0, start),
        "earliest after restart"
    );
    let again = kafka::consume_n(
        &bootstrap,
        topic,
        0,
        start,
        (45 - start) as usize,
        Duration::from_secs(20),
    )
    .or_panic("consume after restart");
    assert_eq!(again.len(), kept.len());
    for ledger in 1..first_kept_ledger {
        assert!(!ledger_exists(&b, ledger), "ledger {ledger} back after restart");
    }
}

#[test]
fn size_retention_keeps_the_partition_within_one_segment_of_the_limit() {
    let b = broker();
    let bootstrap = b.bootstrap();
    let topic = "bounded";
    kafka::create_topic_with_config(
        &bootstrap,
        topic,
        1,
        &[("retention.bytes", "20000"), ("segment.bytes", "4096")],
    )
    .or_panic("create");
    // Ten rounds of ten 1 KB records: each round is at least one entry, and each rolls a segment.
    for round in 0..10 {
        let records: Vec<TestRecord> = (round * 10..round * 10 + 10)
            .map(|i| TestRecord::value(kafka::patterned_payload(i, 1000)))
            .collect();
        produce(&bootstrap, topic, &records);
    }
    let sealed_sizes = |p: &Value| -> Vec<u64> {
        p["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .filter(|s| s["state"] == "completed")
            .map(|s| s["size_bytes"].as_u64().expect("size"))
            .collect()
    };
    // The partition's size counts the segment being written too (the size gauge, refreshed by
    // every check). Kafka's rule: the oldest sealed segment goes while the partition without it
    // still holds at least the limit; so once done, limit <= size < limit + oldest kept segment.
    let gauge = |name: &str| metric(&b, &format!("{name}{{partition=\"0\",topic=\"{topic}\"}}")) as u64;
    let p = wait_for_partition(&b, topic, "size retention", |p| {
        let sizes = sealed_sizes(p);
        let size = gauge("distlog_log_size_bytes");
        !sizes.is_empty()
            && size.saturating_sub(sizes[0]) < 20_000
            && p["log_start_offset"]
                .as_u64()
                .is_some_and(|s| s > 0 && s == gauge("distlog_log_start_offset"))
    });
    let size = gauge("distlog_log_size_bytes");
    assert!(size >= 20_000, "dropped too much: {size} bytes left, {p}");
    let start = p["log_start_offset"].as_i64().expect("start");
    assert!(start > 0, "{p}");
    assert_eq!(
        kafka::watermarks(&bootstrap, topic, 0).or_panic("watermarks"),
        (start, 100)
    );
}

#[test]
fn delete_records_moves_the_low_watermark_and_hides_what_is_below() {
    let b = broker();
    let bootstrap = b.bootstrap();
    let topic = "trimmed";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create");
    let records: Vec<TestRecord> = (0..20).map(|i| TestRecord::value(format!("r{i}"))).collect();
    produce(&bootstrap, topic, &records);
    let mut conn = Conn::open(b.kafka_addr(), "delete-records-test").or_panic("connect");

    // Inside the one segment: the start moves, the bytes stay stored but hidden.
    assert_eq!(delete_records(&mut conn, 0, topic, 0, 7), (0, 7));
    assert_eq!(list_offset(&mut conn, topic, -2), (0, 7));
    assert_eq!(
        fetch_at(&mut conn, topic, 3).0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(
        kafka::watermarks(&bootstrap, topic, 0).or_panic("watermarks"),
        (7, 20)
    );
    let kept = kafka::consume_n(&bootstrap, topic, 0, 7, 13, Duration::from_secs(20)).or_panic("consume");
    let values: Vec<String> = kept
        .iter()
        .map(|r| String::from_utf8(r.payload.clone().unwrap_or_default()).expect("utf8"))
        .collect();
    assert_eq!(values, (7..20).map(|i| format!("r{i}")).collect::<Vec<_>>());
    // A timestamp lookup never answers a hidden offset.
    assert_eq!(list_offset(&mut conn, topic, 0), (0, 7));

    // Bad input: beyond the high watermark, negative, unknown topic and partition.
    assert_eq!(
        delete_records(&mut conn, 1, topic, 0, 21),
        (ResponseError::OffsetOutOfRange.code(), -1)
    );
    assert_eq!(
        delete_records(&mut conn, 1, topic, 0, -5),
        (ResponseError::OffsetOutOfRange.code(), -1)
    );
    assert_eq!(
        delete_records(&mut conn, 2, "no-such-topic", 0, 1),
        (ResponseError::UnknownTopicOrPartition.code(), -1)
    );
    assert_eq!(
        delete_records(&mut conn, 2, topic, 3, 1),
        (ResponseError::UnknownTopicOrPartition.code(), -1)
    );
    // Below the current start changes nothing; -1 is the high watermark.
    assert_eq!(delete_records(&mut conn, 2, topic, 0, 2), (0, 7));
    assert_eq!(delete_records(&mut conn, 2, topic, 0, -1), (0, 20));
    assert_eq!(
        kafka::watermarks(&bootstrap, topic, 0).or_panic("watermarks"),
        (20, 20)
    );
    // New records after an emptying delete are readable from the new start.
    produce(
        &bootstrap,
        topic,
        &[TestRecord::value(Bytes::from_static(b"after").to_vec())],
    );
    let after = kafka::consume_n(&bootstrap, topic, 0, 20, 1, Duration::from_secs(20)).or_panic("after");
    assert_eq!(after[0].offset, 20);
}
