//! Produce and consume through librdkafka: 10,000 messages at every acks level, keys, headers
//! and timestamps, all four compression codecs, and messages at the size limit.

use std::time::Duration;

use distlog_compat_tests::kafka::{self, patterned_payload, TestRecord};
use distlog_compat_tests::{now_ms, start_broker, OrPanic};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Timestamp;

const N: usize = 10_000;

fn keyed_records(n: usize, size: usize) -> Vec<TestRecord> {
    (0..n)
        .map(|i| TestRecord {
            key: Some(format!("key-{i}").into_bytes()),
            payload: Some(patterned_payload(i, size)),
            ..TestRecord::default()
        })
        .collect()
}

fn round_trip_10k(acks: &str) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = format!("acks-{acks}");
    kafka::create_topic(&bootstrap, &topic, 1).or_panic("create topic");
    let records = keyed_records(N, 100);
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, acks),
        &topic,
        Some(0),
        &records,
        Duration::from_secs(60),
    )
    .or_panic("produce");
    for d in &deliveries {
        if let Err(e) = &d.result {
            panic!("message {} not delivered: {e:?}", d.id);
        }
    }
    // acks=0: the broker never answers, so librdkafka reports no offset.
    if acks != "0" {
        let misplaced: Vec<(usize, i64)> = deliveries
            .iter()
            .filter_map(|d| d.result.as_ref().ok().map(|o| (d.id, *o)))
            .filter(|(id, offset)| *offset != *id as i64)
            .collect();
        assert!(
            misplaced.is_empty(),
            "{} of {N} messages got an offset other than their send position (pipelined produce \
             requests on one connection must be appended in order); first (id, offset): {:?}",
            misplaced.len(),
            &misplaced[..misplaced.len().min(5)]
        );
    }

    let consumed = kafka::consume_n(&bootstrap, &topic, 0, 0, N, Duration::from_secs(60)).or_panic("consume");
    for (i, got) in consumed.iter().enumerate() {
        assert_eq!(got.offset, i as i64, "offset at position {i}");
    }
    let out_of_place = consumed
        .iter()
        .zip(&records)
        .filter(|(got, sent)| got.key != sent.key)
        .count();
    assert_eq!(
        out_of_place, 0,
        "records stored out of send order (keys differ at {out_of_place} offsets)"
    );
    for (i, (got, sent)) in consumed.iter().zip(&records).enumerate() {
        assert_eq!(got.payload, sent.payload, "payload at offset {i}");
    }
    assert_eq!(
        kafka::watermarks(&bootstrap, &topic, 0).or_panic("watermarks"),
        (0, N as i64)
    );
}

#[test]
fn ten_thousand_messages_round_trip_with_acks_0() {
    round_trip_10k("0");
}

#[test]
fn ten_thousand_messages_round_trip_with_acks_1() {
    round_trip_10k("1");
}

#[test]
fn ten_thousand_messages_round_trip_with_acks_all() {
    round_trip_10k("all");
}

#[test]
fn keys_headers_and_create_timestamps_round_trip() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "rich", 1).or_panic("create topic");
    let t0 = now_ms() - 3_600_000;
    let header = |k: &str, v: Option<&[u8]>| (k.to_string(), v.map(<[u8]>::to_vec));
    let records = vec![
        TestRecord {
            key: Some(b"k0".to_vec()),
            payload: Some(b"v0".to_vec()),
            headers: vec![
                header("h1", Some(b"a")),
                header("h2", None),
                header("h1", Some(b"b")),
            ],
            timestamp: Some(t0),
        },
        TestRecord {
            key: None,
            payload: Some(b"v1 no key".to_vec()),
            headers: vec![],
            timestamp: Some(t0 + 1),
        },
        TestRecord {
            key: Some(b"k2".to_vec()),
            payload: None,
            headers: vec![header("tombstone", Some(b"yes"))],
            // Older than the previous record: client timestamps are stored as given.
            timestamp: Some(t0 - 10_000),
        },
        TestRecord {
            key: Some(vec![0, 255, 1, 254]),
            payload: Some((0..=255u8).collect()),
            headers: vec![header("bin", Some(&[0, 1, 2, 255]))],
            timestamp: Some(t0 + 100),
        },
    ];
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "rich",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert_eq!(
        deliveries.iter().map(|d| d.result.clone()).collect::<Vec<_>>(),
        vec![Ok(0), Ok(1), Ok(2), Ok(3)]
    );

    let consumed = kafka::consume_n(&bootstrap, "rich", 0, 0, records.len(), Duration::from_secs(20))
        .or_panic("consume");
    for (i, (got, sent)) in consumed.iter().zip(&records).enumerate() {
        assert_eq!(got.offset, i as i64);
        assert_eq!(got.key, sent.key, "key of record {i}");
        assert_eq!(got.payload, sent.payload, "payload of record {i}");
        assert_eq!(got.headers, sent.headers, "headers of record {i}");
        let ts = sent.timestamp.expect("all test records carry a timestamp");
        assert_eq!(
            got.timestamp,
            Timestamp::CreateTime(ts),
            "timestamp of record {i}"
        );
    }
}

fn codec_round_trip(codec: &str) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = format!("codec-{codec}");
    kafka::create_topic(&bootstrap, &topic, 1).or_panic("create topic");
    // Compressible payloads, batched (linger) so each batch holds many records.
    let records: Vec<TestRecord> = (0..3_000)
        .map(|i| TestRecord {
            key: Some(format!("k{i}").into_bytes()),
            payload: Some(format!("{codec} payload {i} {}", "repetitive text ".repeat(8)).into_bytes()),
            ..TestRecord::default()
        })
        .collect();
    let mut config = kafka::producer_config(&bootstrap, "all");
    config.set("compression.type", codec).set("linger.ms", "20");
    let deliveries = kafka::produce_records(&config, &topic, Some(0), &records, Duration::from_secs(60))
        .or_panic("produce");
    for d in &deliveries {
        assert_eq!(d.result, Ok(d.id as i64), "delivery of message {}", d.id);
    }
    let consumed = kafka::consume_n(&bootstrap, &topic, 0, 0, records.len(), Duration::from_secs(60))
        .or_panic("consume");
    for (i, (got, sent)) in consumed.iter().zip(&records).enumerate() {
        assert_eq!(got.offset, i as i64, "offset at position {i}");
        assert_eq!(got.key, sent.key, "key at offset {i}");
        assert_eq!(got.payload, sent.payload, "payload at offset {i}");
    }
    // Reading from the middle of a compressed batch starts at the requested offset.
    let tail =
        kafka::consume_n(&bootstrap, &topic, 0, 1_501, 10, Duration::from_secs(20)).or_panic("consume");
    assert_eq!(tail[0].offset, 1_501);
    assert_eq!(tail[0].payload, records[1_501].payload);
}

#[test]
fn gzip_batches_round_trip() {
    codec_round_trip("gzip");
}

#[test]
fn snappy_batches_round_trip() {
    codec_round_trip("snappy");
}

#[test]
fn lz4_batches_round_trip() {
    codec_round_trip("lz4");
}

#[test]
fn zstd_batches_round_trip() {
    codec_round_trip("zstd");
}

#[test]
fn mixed_codecs_in_one_partition_get_contiguous_offsets() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "mixed", 1).or_panic("create topic");
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let per_codec = 400;
    let mut expected = Vec::new();
    for codec in codecs {
        let records: Vec<TestRecord> = (0..per_codec)
            .map(|i| TestRecord::value(format!("{codec}-{i}-{}", "x".repeat(50))))
            .collect();
        let mut config = kafka::producer_config(&bootstrap, "all");
        config.set("compression.type", codec);
        let deliveries = kafka::produce_records(&config, "mixed", Some(0), &records, Duration::from_secs(30))
            .or_panic("produce");
        for d in &deliveries {
            assert_eq!(
                d.result,
                Ok((expected.len() + d.id) as i64),
                "{codec} message {}",
                d.id
            );
        }
        expected.extend(records);
    }
    let consumed = kafka::consume_n(&bootstrap, "mixed", 0, 0, expected.len(), Duration::from_secs(60))
        .or_panic("consume");
    for (i, (got, sent)) in consumed.iter().zip(&expected).enumerate() {
        assert_eq!(got.offset, i as i64);
        assert_eq!(got.payload, sent.payload, "payload at offset {i}");
    }
}

/// Produces one message of `size` bytes to `topic` and returns its delivery result.
fn produce_one_large(bootstrap: &str, topic: &str, payload: &[u8]) -> Result<i64, kafka::DeliveryError> {
    let mut config = kafka::producer_config(bootstrap, "all");
    // Client-side limits well above the broker's, so the broker is the one that decides.
    config
        .set("message.max.bytes", "4194304")
        .set("batch.size", "4194304");
    let deliveries = kafka::produce_records(
        &config,
        topic,
        Some(0),
        &[TestRecord::value(payload.to_vec())],
        Duration::from_secs(30),
    )
    .or_panic("produce");
    deliveries[0].result.clone()
}

fn large_consumer_config(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut config = kafka::consumer_config(bootstrap);
    config
        .set("max.partition.fetch.bytes", "4194304")
        .set("fetch.max.bytes", "8388608");
    config
}

#[test]
fn one_mib_message_round_trips_on_a_topic_allowing_it() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic_with_config(&bootstrap, "big", 1, &[("max.message.bytes", "2097152")])
        .or_panic("create topic");
    let payload = patterned_payload(1, 1024 * 1024);
    assert_eq!(produce_one_large(&bootstrap, "big", &payload), Ok(0));
    let consumed = kafka::consume_n_with(
        &large_consumer_config(&bootstrap),
        "big",
        0,
        0,
        1,
        Duration::from_secs(30),
    )
    .or_panic("consume");
    assert_eq!(consumed[0].payload.as_ref().map(Vec::len), Some(payload.len()));
    assert!(
        consumed[0].payload.as_deref() == Some(&payload[..]),
        "1 MiB payload differs"
    );
}

#[test]
fn message_just_under_the_default_limit_round_trips() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "near-limit", 1).or_panic("create topic");
    // Default message.max.bytes is 1048588; leave 1 KiB for batch and record overhead.
    let payload = patterned_payload(2, 1_048_588 - 1024);
    assert_eq!(produce_one_large(&bootstrap, "near-limit", &payload), Ok(0));
    let consumed = kafka::consume_n_with(
        &large_consumer_config(&bootstrap),
        "near-limit",
        0,
        0,
        1,
        Duration::from_secs(30),
    )
    .or_panic("consume");
    assert!(
        consumed[0].payload.as_deref() == Some(&payload[..]),
        "payload differs"
    );
}

#[test]
fn batch_over_the_default_limit_is_rejected_with_message_too_large() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "too-big", 1).or_panic("create topic");
    let payload = patterned_payload(3, 1024 * 1024 + 1024);
    match produce_one_large(&bootstrap, "too-big", &payload) {
        Err(e) => assert_eq!(e.code, Some(RDKafkaErrorCode::MessageSizeTooLarge), "{e:?}"),
        Ok(offset) => panic!("an oversized batch was accepted at offset {offset}"),
    }
    // Nothing was stored, and the partition still takes normal messages at offset 0.
    assert_eq!(
        kafka::watermarks(&bootstrap, "too-big", 0).or_panic("watermarks"),
        (0, 0)
    );
    assert_eq!(produce_one_large(&bootstrap, "too-big", b"small"), Ok(0));
}
