//! Tests of a topic's record policy: resolution from configs, the
//! zero-copy default, recompression and Kafka's timestamp rules.

use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;

use super::super::batch::{ATTRIBUTES_OFFSET, CRC_OFFSET, MAX_TIMESTAMP_OFFSET, TIMESTAMP_TYPE_BIT};
use super::super::validate;
use super::*;

const NOW: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn configs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn policy(kv: &[(&str, &str)]) -> RecordPolicy {
    RecordPolicy::from_configs(&configs(kv))
}

fn batch(codec: Compression, timestamps: &[i64]) -> (BytesMut, BatchSpan) {
    let b = crate::records::tests::batch(codec, timestamps);
    let span = validate(&b, usize::MAX).expect("valid").batches[0];
    (b, span)
}

fn timestamp_errors(r: Result<Applied, BatchError>) -> Vec<i32> {
    match r {
        Err(BatchError::InvalidTimestamp(errors)) => errors.into_iter().map(|(i, _)| i).collect(),
        other => panic!(
            "expected INVALID_TIMESTAMP, got {:?}",
            other.map(|a| a.payload.len())
        ),
    }
}

#[test]
fn defaults_are_kafka_4s_and_invalid_overrides_fall_back() {
    assert_eq!(
        policy(&[]),
        RecordPolicy {
            timestamp_type: TimestampType::CreateTime,
            codec: None,
            before_max_ms: i64::MAX,
            after_max_ms: HOUR,
        }
    );
    let p = policy(&[
        ("message.timestamp.type", "LogAppendTime"),
        ("compression.type", "zstd"),
        ("message.timestamp.before.max.ms", "1000"),
        ("message.timestamp.after.max.ms", "9223372036854775807"),
    ]);
    assert_eq!(p.timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(
        (p.codec, p.before_max_ms, p.after_max_ms),
        (Some(Codec::Zstd), 1000, i64::MAX)
    );
    for (name, codec) in [
        ("uncompressed", Some(Codec::None)),
        ("gzip", Some(Codec::Gzip)),
        ("snappy", Some(Codec::Snappy)),
        ("lz4", Some(Codec::Lz4)),
        ("zstd", Some(Codec::Zstd)),
        ("producer", None),
        ("brotli", None),
    ] {
        assert_eq!(policy(&[("compression.type", name)]).codec, codec, "{name}");
    }
    assert_eq!(
        policy(&[
            ("message.timestamp.type", "WallClock"),
            ("message.timestamp.after.max.ms", "-5")
        ]),
        policy(&[])
    );
}

#[test]
fn the_rows_accept_kafkas_values_and_refuse_others() {
    use crate::cluster::Replication;
    use crate::topic_config::validate_topic_configs;
    for (k, v) in [
        ("compression.type", "uncompressed"),
        ("compression.type", "zstd"),
        ("compression.type", "lz4"),
        ("compression.type", "snappy"),
        ("compression.type", "gzip"),
        ("compression.type", "producer"),
        ("message.timestamp.type", "LogAppendTime"),
        ("message.timestamp.type", "CreateTime"),
        ("message.timestamp.before.max.ms", "0"),
        ("message.timestamp.after.max.ms", "9223372036854775807"),
    ] {
        assert_eq!(
            validate_topic_configs(&configs(&[(k, v)]), Replication::SINGLE),
            Ok(()),
            "{k}={v}"
        );
    }
    for (k, v) in [
        ("compression.type", "none"),
        ("compression.type", "brotli"),
        ("message.timestamp.type", "logappendtime"),
        ("message.timestamp.before.max.ms", "-1"),
        ("message.timestamp.after.max.ms", "soon"),
    ] {
        let err = validate_topic_configs(&configs(&[(k, v)]), Replication::SINGLE).expect_err(k);
        assert!(err.contains(k), "{err}");
    }
}

#[test]
fn the_default_policy_keeps_the_produced_buffer() {
    for codec in [Compression::None, Compression::Lz4] {
        let (b, span) = batch(codec, &[NOW - 5, NOW]);
        let (ptr, copy) = (b.as_ptr(), b.clone());
        let a = policy(&[]).apply(b, &span, usize::MAX, NOW).expect("applies");
        assert_eq!(a.payload.as_ptr(), ptr, "no copy");
        assert_eq!(a.payload, copy);
        assert!(!a.recompressed && !a.log_append_time);
        // The topic's codec equal to the batch's is the same zero-copy path.
        let (b, span) = batch(codec, &[NOW]);
        let ptr = b.as_ptr();
        let name = if codec == Compression::None {
            "uncompressed"
        } else {
            "lz4"
        };
        let a = policy(&[("compression.type", name)])
            .apply(b, &span, usize::MAX, NOW)
            .expect("applies");
        assert_eq!((a.payload.as_ptr(), a.recompressed), (ptr, false));
    }
}

#[test]
fn a_batch_in_another_codec_is_recompressed_and_size_checked_again() {
    let ts: Vec<i64> = (0..50).map(|i| NOW - 100 + i).collect();
    let (b, span) = batch(Compression::Lz4, &ts);
    let a = policy(&[("compression.type", "zstd")])
        .apply(b.clone(), &span, usize::MAX, NOW)
        .expect("recompresses");
    assert!(a.recompressed);
    let out = validate(&a.payload, usize::MAX).expect("valid");
    assert_eq!(out.batches[0].header.compression(), Codec::Zstd.id());
    assert_eq!(out.record_count, 50);
    // Uncompressed, the batch is larger than the limit it was sent under.
    let limit = b.len();
    match policy(&[("compression.type", "uncompressed")]).apply(b, &span, limit, NOW) {
        Err(e @ BatchError::TooLarge { .. }) => assert_eq!(e.kafka_error(), ResponseError::MessageTooLarge),
        other => panic!(
            "expected MESSAGE_TOO_LARGE, got {:?}",
            other.map(|a| a.payload.len())
        ),
    }
}

#[test]
fn create_time_bounds_refuse_each_record_outside_them() {
    let ts = [NOW - 10, NOW + 2 * HOUR, NOW, NOW + HOUR, NOW + HOUR + 1, -1];
    // Default: one hour ahead at most, no limit behind.
    let (b, span) = batch(Compression::None, &ts);
    assert_eq!(
        timestamp_errors(policy(&[]).apply(b, &span, usize::MAX, NOW)),
        vec![1, 4]
    );
    let bounded = policy(&[
        ("message.timestamp.before.max.ms", "5"),
        ("message.timestamp.after.max.ms", "0"),
    ]);
    for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
        // Compressed batches are decompressed for the before-bound.
        let (b, span) = batch(codec, &ts);
        assert_eq!(
            timestamp_errors(bounded.apply(b, &span, usize::MAX, NOW)),
            vec![0, 1, 3, 4],
            "{codec:?}"
        );
        // Recompressed batches are checked on the records decoded anyway.
        let (b, span) = batch(codec, &ts);
        let recompressing = RecordPolicy {
            codec: Some(Codec::Snappy),
            ..bounded
        };
        assert_eq!(
            timestamp_errors(recompressing.apply(b, &span, usize::MAX, NOW)),
            vec![0, 1, 3, 4]
        );
    }
    // With only the after-bound, a compressed batch is judged by its max timestamp.
    let (b, span) = batch(Compression::Lz4, &[NOW - 5 * HOUR, NOW + 2 * HOUR]);
    assert_eq!(
        timestamp_errors(policy(&[]).apply(b, &span, usize::MAX, NOW)),
        vec![0]
    );
    let (b, span) = batch(Compression::Lz4, &[NOW - 5 * HOUR, NOW + HOUR]);
    assert!(policy(&[]).apply(b, &span, usize::MAX, NOW).is_ok());
    // Unlimited both ways accepts anything; extreme values do not overflow.
    let open = policy(&[("message.timestamp.after.max.ms", "9223372036854775807")]);
    for extreme in [i64::MIN + 1, i64::MAX, 0] {
        let (b, span) = batch(Compression::None, &[extreme]);
        assert!(open.apply(b, &span, usize::MAX, NOW).is_ok(), "{extreme}");
        let (b, span) = batch(Compression::None, &[extreme]);
        assert_eq!(
            timestamp_errors(bounded.apply(b, &span, usize::MAX, NOW)),
            vec![0],
            "{extreme}"
        );
    }
    assert_eq!(
        BatchError::InvalidTimestamp(vec![]).kafka_error(),
        ResponseError::InvalidTimestamp
    );
}

fn as_log_append_time(b: &mut BytesMut, max: i64) {
    let attrs = i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]]) | TIMESTAMP_TYPE_BIT;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn log_append_time_topics_ignore_bounds_and_refuse_producer_set_append_time() {
    let lat = policy(&[
        ("message.timestamp.type", "LogAppendTime"),
        ("message.timestamp.before.max.ms", "0"),
    ]);
    let (b, span) = batch(Compression::None, &[NOW - 9 * HOUR, NOW + 9 * HOUR]);
    let a = lat.apply(b, &span, usize::MAX, NOW).expect("bounds ignored");
    assert!(a.log_append_time);
    let (mut b, _) = batch(Compression::None, &[NOW, NOW]);
    as_log_append_time(&mut b, NOW);
    let span = validate(&b, usize::MAX).expect("valid").batches[0];
    assert_eq!(
        timestamp_errors(lat.apply(b.clone(), &span, usize::MAX, NOW)),
        vec![0, 1]
    );
    // A CreateTime topic reads such a batch's records as its max timestamp.
    assert!(policy(&[]).apply(b.clone(), &span, usize::MAX, NOW).is_ok());
    let tight = policy(&[("message.timestamp.after.max.ms", "0")]);
    let mut late = b.clone();
    as_log_append_time(&mut late, NOW + 1);
    let span = validate(&late, usize::MAX).expect("valid").batches[0];
    assert_eq!(
        timestamp_errors(tight.apply(late, &span, usize::MAX, NOW)),
        vec![0, 1]
    );
}
