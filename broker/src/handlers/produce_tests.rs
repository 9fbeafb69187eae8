//! Tests of the produce handler's pure parts: validation, response shape, failure answers.

use kafka_protocol::records::Compression;

use super::*;

fn batch(codec: Compression, n: usize) -> Bytes {
    let timestamps: Vec<i64> = (0..n).map(|i| 500 + i as i64).collect();
    crate::records::tests::batch(codec, &timestamps).freeze()
}

#[test]
fn responses_encode_at_every_supported_version() {
    use kafka_protocol::protocol::Encodable;
    for version in VERSIONS.0..=VERSIONS.1 {
        let names = vec![TopicName(StrBytes::from_static_str("t"))];
        let ok = PartitionProduceResponse::default()
            .with_index(0)
            .with_base_offset(7)
            .with_log_start_offset(0);
        let bad = failed(1, ResponseError::CorruptMessage, Some("crc".into()), version);
        let resp = assemble(names, vec![(0, ok), (0, bad)]);
        let mut buf = BytesMut::new();
        resp.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
        assert!(!buf.is_empty());
    }
}

#[test]
fn single_partition_frame_reaches_the_payload_without_a_copy() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::Encodable;
    for version in VERSIONS.0..=VERSIONS.1 {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("topic")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(Compression::None, 3)))])]);
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("client")))
            .encode(&mut frame, ApiKey::Produce.request_header_version(version))
            .expect("header");
        req.encode(&mut frame, version).expect("body");
        // As the connection and dispatcher do it.
        let raw = crate::server::connection::parse_header(frame.freeze()).expect("header parses");
        let mut body = raw.body;
        let decoded: ProduceRequest =
            crate::handlers::decode_body(ApiKey::Produce, &mut body, version).expect("decodes");
        drop(body);
        let topics = detach(decoded);
        let (_, parts) = topics.into_iter().next().expect("topic");
        let records = parts.into_iter().next().expect("partition").1;
        let ptr = records.as_ref().map(|r| r.as_ptr());
        let checked = check_records(version, records, 1 << 20).expect("valid");
        assert_eq!(Some(checked.payload.as_ptr()), ptr, "v{version}: records copied");
        assert_eq!(raw.header.client_id.as_deref(), Some("client"));
    }
}

#[test]
fn invalid_timestamps_answer_kafkas_message_and_record_errors_from_v8() {
    let e = BatchError::InvalidTimestamp(vec![(0, "first".into()), (2, "third".into())]);
    let r = refused_partition(1, e.clone(), 8);
    assert_eq!((r.index, r.error_code, r.base_offset), (1, 32, -1));
    assert_eq!(
        r.error_message.as_deref(),
        Some(records::policy::INVALID_TIMESTAMP_MESSAGE)
    );
    let errors: Vec<(i32, Option<&str>)> = r
        .record_errors
        .iter()
        .map(|e| (e.batch_index, e.batch_index_error_message.as_deref()))
        .collect();
    assert_eq!(errors, vec![(0, Some("first")), (2, Some("third"))]);
    let r = refused_partition(1, e, 7);
    assert_eq!(
        (r.error_code, r.error_message.as_deref(), r.record_errors.len()),
        (32, None, 0)
    );
    let r = refused_partition(0, BatchError::Decompress("bad".into()), 9);
    assert_eq!((r.error_code, r.record_errors.len()), (2, 0));
}

#[test]
fn log_append_time_stamping_moves_the_txid_to_the_append_time() {
    let payload = BytesMut::from(&batch(Compression::Lz4, 3)[..]);
    let ptr = payload.as_ptr();
    let mut append = AppendRequest {
        payload,
        record_count: 3,
        max_timestamp: 502,
    };
    stamp_append_time(&mut append, 9_000);
    assert_eq!(append.max_timestamp, 9_000, "the txid follows the append time");
    assert_eq!(append.payload.as_ptr(), ptr, "stamped in place");
    let v = records::validate(&append.payload, 1 << 20).expect("crc recomputed");
    assert!(v.batches[0].header.log_append_time());
    assert_eq!(v.max_timestamp, 9_000);
}

#[test]
fn a_batch_behind_a_retriably_failed_one_is_answered_with_that_error() {
    // The campaign's seed 2135: the batch at sequence 1853 failed (no
    // ensemble could be placed); batches 1854 and 1860, already in
    // flight, arrived after the stream reopened, still expecting 1853.
    use crate::producer::state::BatchIdentity;
    use distlog_storage::StorageError;
    let failed = FailedBatches::default();
    let stream = StreamId {
        topic_id: uuid::Uuid::from_u128(1),
        partition: 0,
    };
    let origin = |first_seq: i32| Origin {
        stream,
        batch: Some(BatchIdentity {
            producer_id: 9,
            epoch: 0,
            first_seq,
            last_seq: first_seq + 5,
            record_count: 6,
            max_timestamp: 0,
        }),
    };
    let now = std::time::Instant::now();
    let (code, _) = failure_answer(
        &failed,
        &origin(1853),
        &StorageError::NotEnoughBookies("ensemble of 3 needs 3 live bookies, 1 available".into()),
        now,
    );
    assert_eq!(code, ResponseError::NotEnoughReplicas);
    let out_of_order = |received: i32| {
        StorageError::Refused(std::sync::Arc::new(ProducerStateError::OutOfOrderSequence {
            producer_id: 9,
            expected: 1853,
            received,
        }))
    };
    for first in [1854, 1860] {
        let (code, message) = failure_answer(&failed, &origin(first), &out_of_order(first), now);
        assert_eq!(code, ResponseError::NotEnoughReplicas, "{message}");
        assert!(message.contains("follows sequence 1853"), "{message}");
    }
    // Once a batch of the producer is written, a gap is a gap again.
    failed.written(stream, 9);
    let (code, _) = failure_answer(&failed, &origin(1854), &out_of_order(1854), now);
    assert_eq!(code, ResponseError::OutOfOrderSequenceNumber);
    // A producer with no failure on record gets Kafka's answer.
    let (code, _) = failure_answer(&failed, &origin(1860), &out_of_order(1860), now);
    assert_eq!(code, ResponseError::OutOfOrderSequenceNumber);
}

#[test]
fn acks_must_be_0_1_or_all() {
    assert!(acks_valid(0) && acks_valid(1) && acks_valid(-1));
    assert!(!acks_valid(2) && !acks_valid(-2) && !acks_valid(i16::MAX));
}

#[test]
fn check_records_accepts_one_batch_without_copying() {
    let bytes = batch(Compression::None, 3);
    let ptr = bytes.as_ptr();
    let c = check_records(3, Some(bytes), 1 << 20).expect("valid");
    assert_eq!(c.record_count, 3);
    assert_eq!(c.max_timestamp, 502);
    assert_eq!(c.payload.as_ptr(), ptr, "unique bytes must not be copied");
}

#[test]
fn check_records_applies_kafka_produce_rules() {
    assert_eq!(
        check_records(9, None, 1 << 20).map(|c| c.record_count),
        Err(BatchError::NoBatch)
    );
    assert_eq!(
        check_records(9, Some(Bytes::new()), 1 << 20).map(|c| c.record_count),
        Err(BatchError::NoBatch)
    );
    let mut two = BytesMut::from(&batch(Compression::None, 1)[..]);
    two.extend_from_slice(&batch(Compression::None, 2));
    assert_eq!(
        check_records(9, Some(two.freeze()), 1 << 20).map(|c| c.record_count),
        Err(BatchError::MultipleBatches)
    );
    let z = batch(Compression::Zstd, 2);
    assert_eq!(
        check_records(6, Some(z.clone()), 1 << 20).map(|c| c.record_count),
        Err(BatchError::ZstdNotAllowed)
    );
    assert_eq!(
        BatchError::ZstdNotAllowed.kafka_error(),
        ResponseError::UnsupportedCompressionType
    );
    assert_eq!(check_records(7, Some(z), 1 << 20).map(|c| c.record_count), Ok(2));
    let big = batch(Compression::None, 50);
    let len = big.len();
    assert_eq!(
        check_records(9, Some(big), len - 1).map(|c| c.record_count),
        Err(BatchError::TooLarge {
            size: len,
            max: len - 1
        })
    );
}

#[test]
fn topic_override_of_max_message_bytes() {
    let mut c = std::collections::BTreeMap::new();
    assert_eq!(topic_max_message_bytes(&c), None);
    c.insert("max.message.bytes".to_string(), "2048".to_string());
    assert_eq!(topic_max_message_bytes(&c), Some(2048));
    c.insert("max.message.bytes".to_string(), "-5".to_string());
    assert_eq!(topic_max_message_bytes(&c), None);
}

#[test]
fn failed_partitions_carry_minus_one_offsets_and_message_from_v8() {
    let r = failed(3, ResponseError::CorruptMessage, Some("bad".into()), 8);
    assert_eq!(
        (r.index, r.error_code, r.base_offset, r.log_start_offset),
        (3, 2, -1, -1)
    );
    assert_eq!(r.error_message.as_deref(), Some("bad"));
    let r = failed(3, ResponseError::CorruptMessage, Some("bad".into()), 7);
    assert_eq!(r.error_message, None);
}

#[test]
fn assemble_groups_partitions_under_topics_in_order() {
    let names = vec![
        TopicName(StrBytes::from_static_str("a")),
        TopicName(StrBytes::from_static_str("b")),
    ];
    let ok = |i| PartitionProduceResponse::default().with_index(i);
    let resp = assemble(names, vec![(0, ok(0)), (1, ok(5)), (0, ok(1))]);
    assert_eq!(resp.responses.len(), 2);
    assert_eq!(&*resp.responses[0].name, "a");
    let idx: Vec<i32> = resp.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.index)
        .collect();
    assert_eq!(idx, vec![0, 1]);
    assert_eq!(resp.responses[1].partition_responses[0].index, 5);
}
