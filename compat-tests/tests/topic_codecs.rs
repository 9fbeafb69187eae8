//! Topic-level record settings against a real `distlog` process and real clients (librdkafka
//! via rdkafka, hand-built frames where the exact answer matters):
//! `message.timestamp.type=LogAppendTime` (consumers see the append time, Produce answers it,
//! ListOffsets by time finds it), `compression.type` recompression on the broker (consumed
//! records identical, stored batches in the topic's codec, idempotent producers unaffected), and
//! the KIP-937 timestamp bounds (INVALID_TIMESTAMP with Kafka's per-record errors).

use std::thread;
use std::time::Duration;

use bytes::Bytes;
use distlog_compat_tests::http::metric_sum;
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::raw;
use distlog_compat_tests::{now_ms, start_broker, DistlogProcess, OrPanic};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Timestamp;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);
const INVALID_TIMESTAMP: i16 = 32;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

fn connect(broker: &DistlogProcess) -> raw::Conn {
    raw::Conn::open(broker.kafka_addr(), "topic-codecs-test").or_panic("connect")
}

/// Records with a key, a value, two headers and a CreateTime `t0 + i`.
fn records(tag: &str, n: usize, t0: i64) -> Vec<TestRecord> {
    (0..n)
        .map(|i| TestRecord {
            key: Some(format!("{tag}-key-{i}").into_bytes()),
            payload: Some(format!("{tag}-value-{i}-{}", "abc".repeat(i % 40)).into_bytes()),
            headers: vec![
                ("h1".to_string(), Some(format!("v{i}").into_bytes())),
                ("h2".to_string(), None),
            ],
            timestamp: Some(t0 + i as i64),
        })
        .collect()
}

fn producer(bootstrap: &str, codec: &str) -> rdkafka::ClientConfig {
    let mut config = kafka::producer_config(bootstrap, "all");
    config.set("compression.type", codec);
    config
}

/// Produces `recs` to partition 0 and asserts they got offsets `first..`.
fn produce_at(config: &rdkafka::ClientConfig, topic: &str, recs: &[TestRecord], first: i64) {
    let deliveries = kafka::produce_records(config, topic, Some(0), recs, TIMEOUT).or_panic("produce");
    for d in &deliveries {
        assert_eq!(d.result, Ok(first + d.id as i64), "{topic}: message {}", d.id);
    }
}

/// Every batch of partition 0 of `topic` from offset 0 to `hw`, by raw Fetch v11 (crc checked by
/// the decoder).
fn fetch_batches(c: &mut raw::Conn, topic: &str, hw: i64) -> Vec<RecordSet> {
    let mut out: Vec<RecordSet> = Vec::new();
    let mut next = 0i64;
    for _ in 0..100 {
        if next >= hw {
            break;
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(next)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req).or_panic("fetch");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch {topic} at {next}");
        let Some(mut bytes) = p.records.clone() else {
            continue;
        };
        for set in RecordBatchDecoder::decode_all(&mut bytes).or_panic("decode fetched batches") {
            let last = set.records.last().map_or(next - 1, |r| r.offset);
            if last >= next {
                next = last + 1;
                out.push(set);
            }
        }
    }
    assert_eq!(next, hw, "fetched {topic} up to its high watermark");
    out
}

/// The sum of metric `name` (a name with labels picks one series) on `broker`'s `/metrics`.
fn metric(broker: &DistlogProcess, name: &str) -> f64 {
    let metrics = broker.http_get("/metrics").or_panic("GET /metrics");
    assert_eq!(metrics.status, 200);
    metric_sum(&metrics.body, name).unwrap_or(0.0)
}

fn assert_consumed_equal(bootstrap: &str, topic: &str, sent: &[TestRecord]) {
    let got = kafka::consume_n(bootstrap, topic, 0, 0, sent.len(), TIMEOUT).or_panic("consume");
    for (i, (g, s)) in got.iter().zip(sent).enumerate() {
        assert_eq!(g.offset, i as i64, "{topic}");
        assert_eq!((&g.key, &g.payload), (&s.key, &s.payload), "{topic} offset {i}");
        assert_eq!(g.headers, s.headers, "{topic} offset {i}");
        assert_eq!(
            g.timestamp,
            Timestamp::CreateTime(s.timestamp.expect("set")),
            "{topic} offset {i}"
        );
    }
}

#[test]
fn codec_topics_recompress_batches_of_other_codecs_and_consumers_see_the_same_records() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let t0 = now_ms() - 60_000;
    let mut c = connect(&broker);
    // (topic codec, producer codecs, codec every stored batch must have)
    for (topic_codec, producer_codecs, stored) in [
        ("zstd", &["none", "lz4", "snappy", "zstd"][..], Compression::Zstd),
        ("gzip", &["lz4", "none"][..], Compression::Gzip),
        ("lz4", &["zstd", "gzip"][..], Compression::Lz4),
        ("snappy", &["none"][..], Compression::Snappy),
        ("uncompressed", &["zstd", "snappy"][..], Compression::None),
    ] {
        let topic = format!("codec-{topic_codec}");
        kafka::create_topic_with_config(&bootstrap, &topic, 1, &[("compression.type", topic_codec)])
            .or_panic("create topic");
        let mut sent = Vec::new();
        for codec in producer_codecs {
            let recs = records(codec, 300, t0 + sent.len() as i64);
            produce_at(&producer(&bootstrap, codec), &topic, &recs, sent.len() as i64);
            sent.extend(recs);
        }
        assert_consumed_equal(&bootstrap, &topic, &sent);
        let batches = fetch_batches(&mut c, &topic, sent.len() as i64);
        assert!(!batches.is_empty());
        for set in &batches {
            assert_eq!(
                set.compression, stored,
                "{topic}: a stored batch is {:?}",
                set.compression
            );
        }
        let n: usize = batches.iter().map(|s| s.records.len()).sum();
        assert_eq!(n, sent.len(), "{topic}");
    }
    let recompressed = metric(&broker, "distlog_produce_recompressed_batches_total");
    assert!(
        recompressed >= 10.0,
        "at least one batch per differing producer codec (10): {recompressed}"
    );
    // `producer` (the default) keeps each batch's own codec, recompressing nothing.
    kafka::create_topic(&bootstrap, "codec-producer", 1).or_panic("create topic");
    let (a, b) = (records("lz4", 50, t0), records("zstd", 50, t0 + 50));
    produce_at(&producer(&bootstrap, "lz4"), "codec-producer", &a, 0);
    produce_at(&producer(&bootstrap, "zstd"), "codec-producer", &b, 50);
    let codecs: Vec<Compression> = fetch_batches(&mut c, "codec-producer", 100)
        .iter()
        .map(|s| s.compression)
        .collect();
    assert!(
        codecs.contains(&Compression::Lz4) && codecs.contains(&Compression::Zstd),
        "{codecs:?}"
    );
    assert_eq!(
        metric(&broker, "distlog_produce_recompressed_batches_total"),
        recompressed
    );
    // librdkafka's admin test creates a topic with compression.type=lz4; unknown codecs are refused.
    let err = kafka::create_topic_with_config(&bootstrap, "codec-bad", 1, &[("compression.type", "brotli")])
        .expect_err("brotli is not a codec");
    assert!(format!("{err:#}").contains("InvalidConfig"), "{err:#}");
}

/// The librdkafka settings of an idempotent producer.
fn idempotent_producer(bootstrap: &str, codec: &str) -> rdkafka::ClientConfig {
    let mut config = producer(bootstrap, codec);
    config
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "5");
    config
}

/// Appends a zigzag varint.
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// An uncompressed idempotent batch of producer `pid` (epoch 0), sequences `first..first + n`,
/// CreateTime `ts + i`.
fn idempotent_batch(pid: i64, first: i32, n: i32, ts: i64) -> Bytes {
    let mut recs = Vec::new();
    for i in 0..n {
        let value = format!("pid{pid}-seq{}", first + i).into_bytes();
        let mut body = vec![0u8];
        put_varint(&mut body, i64::from(i));
        put_varint(&mut body, i64::from(i));
        put_varint(&mut body, -1);
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(&value);
        put_varint(&mut body, 0);
        put_varint(&mut recs, body.len() as i64);
        recs.extend_from_slice(&body);
    }
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + recs.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(ts + i64::from(n) - 1).to_be_bytes());
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&recs);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn produce_raw(
    c: &mut raw::Conn,
    version: i16,
    topic: &str,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let resp: ProduceResponse = c
        .call(ApiKey::Produce, version, &raw::produce_request(topic, 0, records))
        .or_panic("produce");
    resp.responses[0].partition_responses[0].clone()
}

#[test]
fn idempotent_producers_keep_their_guarantees_on_a_recompressing_topic() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic_with_config(&bootstrap, "idem-zstd", 1, &[("compression.type", "zstd")])
        .or_panic("create topic");
    let t0 = now_ms() - 1000;
    let sent = records("idem", 500, t0);
    produce_at(&idempotent_producer(&bootstrap, "lz4"), "idem-zstd", &sent, 0);
    assert_consumed_equal(&bootstrap, "idem-zstd", &sent);

    let mut c = connect(&broker);
    let resp: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .or_panic("init producer id");
    assert_eq!(resp.error_code, 0);
    let pid = resp.producer_id.0;
    let first = idempotent_batch(pid, 0, 3, t0);
    let p = produce_raw(&mut c, 9, "idem-zstd", first.clone());
    assert_eq!((p.error_code, p.base_offset), (0, 500));
    // A retry of the same batch is a duplicate: its original offset, nothing written.
    let p = produce_raw(&mut c, 9, "idem-zstd", first);
    assert_eq!((p.error_code, p.base_offset), (0, 500));
    let p = produce_raw(&mut c, 9, "idem-zstd", idempotent_batch(pid, 3, 3, t0));
    assert_eq!((p.error_code, p.base_offset), (0, 503));
    let p = produce_raw(&mut c, 9, "idem-zstd", idempotent_batch(pid, 9, 1, t0));
    assert_eq!(p.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    // Stored in zstd, with the producer id and sequences of the batches as sent.
    let batches = fetch_batches(&mut c, "idem-zstd", 506);
    assert!(batches.iter().all(|s| s.compression == Compression::Zstd));
    let tail: Vec<(i64, i64, i32)> = batches
        .iter()
        .flat_map(|s| &s.records)
        .filter(|r| r.offset >= 500)
        .map(|r| (r.offset, r.producer_id, r.sequence))
        .collect();
    let expected: Vec<(i64, i64, i32)> = (0..6).map(|i| (500 + i, pid, i as i32)).collect();
    assert_eq!(tail, expected);
}

fn offset_for(consumer: &BaseConsumer, topic: &str, timestamp: i64) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(timestamp))
        .expect("valid query");
    let answer = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("ListOffsets");
    let elem = answer
        .find_partition(topic, 0)
        .expect("partition 0 in the answer");
    assert!(
        elem.error().is_ok(),
        "ListOffsets {timestamp}: {:?}",
        elem.error()
    );
    elem.offset()
}

#[test]
fn log_append_time_topics_carry_the_append_time_and_list_offsets_finds_it() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic_with_config(
        &bootstrap,
        "lat",
        1,
        &[
            ("message.timestamp.type", "LogAppendTime"),
            ("compression.type", "zstd"),
        ],
    )
    .or_panic("create topic");
    // Producer timestamps far in the past, and beyond the CreateTime bounds: both ignored.
    let old = now_ms() - 30 * 24 * 3_600_000;
    let before = now_ms();
    let mut sent = Vec::new();
    for (round, codec) in ["lz4", "none", "zstd"].iter().enumerate() {
        let recs = records(codec, 100, old + 1000 * round as i64);
        produce_at(&producer(&bootstrap, codec), "lat", &recs, sent.len() as i64);
        sent.extend(recs);
        thread::sleep(Duration::from_millis(30));
    }
    // A hand-built batch: Produce v8 answers its log append time.
    let mut c = connect(&broker);
    let p = produce_raw(&mut c, 8, "lat", idempotent_batch(-1, -1, 2, old));
    assert_eq!((p.error_code, p.base_offset), (0, 300));
    let after = now_ms();
    assert!(
        (before..=after).contains(&p.log_append_time_ms),
        "log_append_time_ms {} not in [{before}, {after}]",
        p.log_append_time_ms
    );

    let got = kafka::consume_n(&bootstrap, "lat", 0, 0, 302, TIMEOUT).or_panic("consume");
    let times: Vec<i64> = got
        .iter()
        .map(|r| match r.timestamp {
            Timestamp::LogAppendTime(t) => t,
            other => panic!("offset {}: {other:?}, not LogAppendTime", r.offset),
        })
        .collect();
    for (i, t) in times.iter().enumerate() {
        assert!(
            (before..=after).contains(t),
            "offset {i}: {t} not in [{before}, {after}]"
        );
    }
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "append times never go back"
    );
    assert_eq!(times[300], p.log_append_time_ms);
    assert_eq!(times[301], p.log_append_time_ms);
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!((&g.key, &g.payload, &g.headers), (&s.key, &s.payload, &s.headers));
    }
    // The rounds' batches got distinct, later append times (30 ms apart): ListOffsets by time
    // finds the first record of each.
    let consumer: BaseConsumer = kafka::consumer_config(&bootstrap).create().expect("consumer");
    assert_eq!(offset_for(&consumer, "lat", old), Offset::Offset(0));
    assert_eq!(offset_for(&consumer, "lat", before), Offset::Offset(0));
    for first in [100usize, 200, 300] {
        assert!(
            times[first] > times[first - 1],
            "round starting at {first} appended later"
        );
        assert_eq!(
            offset_for(&consumer, "lat", times[first]),
            Offset::Offset(first as i64)
        );
    }
    assert_eq!(offset_for(&consumer, "lat", after + 60_000), Offset::End);
    // Stored batches carry the LogAppendTime attribute and the append time.
    let batches = fetch_batches(&mut c, "lat", 302);
    for set in &batches {
        assert_eq!(set.compression, Compression::Zstd);
        for r in &set.records {
            assert_eq!(
                r.timestamp_type,
                kafka_protocol::records::TimestampType::LogAppend
            );
        }
    }
    // A CreateTime topic answers -1.
    kafka::create_topic(&bootstrap, "create-time", 1).or_panic("create topic");
    let p = produce_raw(&mut c, 8, "create-time", idempotent_batch(-1, -1, 1, now_ms()));
    assert_eq!((p.error_code, p.log_append_time_ms), (0, -1));
}

#[test]
fn timestamps_outside_the_topic_bounds_get_invalid_timestamp() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic_with_config(
        &bootstrap,
        "bounded",
        1,
        &[("message.timestamp.before.max.ms", "60000")],
    )
    .or_panic("create topic");
    kafka::create_topic(&bootstrap, "defaults", 1).or_panic("create topic");
    let mut c = connect(&broker);
    let now = now_ms();
    // Too old for `bounded` (a minute at most), fine by default (no limit).
    let old = idempotent_batch(-1, -1, 3, now - 10 * 60_000);
    let p = produce_raw(&mut c, 9, "bounded", old.clone());
    assert_eq!((p.error_code, p.base_offset), (INVALID_TIMESTAMP, -1));
    assert_eq!(
        p.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![0, 1, 2]);
    let first = p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .unwrap_or_default();
    assert!(first.contains("is out of range"), "{first}");
    assert_eq!(produce_raw(&mut c, 9, "defaults", old).error_code, 0);
    // Two hours ahead: refused by Kafka 4's default after-bound (one hour), everywhere.
    for topic in ["bounded", "defaults"] {
        let p = produce_raw(&mut c, 9, topic, idempotent_batch(-1, -1, 1, now + 2 * 3_600_000));
        assert_eq!(p.error_code, INVALID_TIMESTAMP, "{topic}");
        // Before v8 the code alone.
        let p = produce_raw(&mut c, 7, topic, idempotent_batch(-1, -1, 1, now + 2 * 3_600_000));
        assert_eq!(
            (p.error_code, p.record_errors.len()),
            (INVALID_TIMESTAMP, 0),
            "{topic}"
        );
    }
    let p = produce_raw(&mut c, 9, "bounded", idempotent_batch(-1, -1, 1, now_ms()));
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "nothing refused was written"
    );
    // librdkafka, as against Kafka: a batch with one record error reports the partition's
    // INVALID_TIMESTAMP, a batch with several reports INVALID_RECORD for each (the per-record
    // errors name the cause). Compressed batches are decompressed to check every record.
    for codec in ["none", "lz4"] {
        let mut config = producer(&bootstrap, codec);
        config.set("linger.ms", "200"); // the five records in one batch
        for (n, code) in [
            (1, RDKafkaErrorCode::InvalidTimestamp),
            (5, RDKafkaErrorCode::InvalidRecord),
        ] {
            let recs = records(codec, n, now_ms() - 3_600_000);
            let deliveries =
                kafka::produce_records(&config, "bounded", Some(0), &recs, TIMEOUT).or_panic("produce");
            for d in &deliveries {
                let err = d.result.as_ref().expect_err("refused");
                assert_eq!(err.code, Some(code), "{codec}, {n} records: {err:?}");
            }
        }
    }
    assert_eq!(
        kafka::watermarks(&bootstrap, "bounded", 0).or_panic("watermarks"),
        (0, 1)
    );
    // 5 hand-built refusals, 4 librdkafka batches.
    assert_eq!(
        metric(
            &broker,
            "distlog_produce_refused_batches_total{reason=\"invalid_timestamp\"}"
        ),
        9.0
    );
}
