//! Tests of broker-side recompression and LogAppendTime stamping: every
//! codec pair (idempotent batches included) keeps the records byte for
//! byte and the header but for codec, length and crc; corrupt compressed
//! payloads are errors, never panics.

use bytes::BytesMut;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use super::super::batch::{BatchWalker, CRC_OFFSET, HEADER_SIZE, RECORD_COUNT_OFFSET, TIMESTAMP_TYPE_BIT};
use super::super::stamp::stamp_log_append_time;
use super::super::{validate, BatchError, BatchSpan};
use super::*;

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes_field(b: Option<&[u8]>, out: &mut Vec<u8>) {
    match b {
        None => zigzag(-1, out),
        Some(b) => {
            zigzag(b.len() as i64, out);
            out.extend_from_slice(b);
        }
    }
}

/// A records section written by hand: negative timestamp deltas, a null
/// key, duplicate header keys, a header key that is not UTF-8 and a null
/// header value (what a Kafka broker must keep as is).
fn hand_records(n: usize) -> Vec<u8> {
    let mut area = Vec::new();
    for i in 0..n {
        let mut rec = Vec::new();
        rec.push(0); // attributes
        zigzag(if i % 2 == 0 { 5 * i as i64 } else { -7 }, &mut rec);
        zigzag(i as i64, &mut rec);
        let key = format!("k{i}");
        bytes_field((i % 3 != 0).then_some(key.as_bytes()), &mut rec);
        bytes_field(
            Some(format!("value {i} {}", "v".repeat(i * 11)).as_bytes()),
            &mut rec,
        );
        zigzag(3, &mut rec);
        bytes_field(Some(b"dup"), &mut rec);
        bytes_field(Some(b"one"), &mut rec);
        bytes_field(Some(b"dup"), &mut rec);
        bytes_field(None, &mut rec);
        bytes_field(Some(&[0xff, 0xfe]), &mut rec);
        bytes_field(Some(b"\x00binary"), &mut rec);
        zigzag(rec.len() as i64, &mut area);
        area.extend_from_slice(&rec);
    }
    area
}

/// An idempotent producer batch (producer id 4242, epoch 7, base sequence
/// 1000) of `n` hand-written records in `codec`, with a valid crc.
fn idempotent_batch(codec: Codec, n: usize) -> BytesMut {
    let raw = hand_records(n);
    let packed = codec.compress(&raw).expect("compress");
    let mut b = Vec::with_capacity(HEADER_SIZE + packed.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    b.extend_from_slice(&((HEADER_SIZE - 12 + packed.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&codec.id().to_be_bytes()); // attributes
    b.extend_from_slice(&(n as i32 - 1).to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // baseTimestamp
    b.extend_from_slice(&(1_700_000_000_000i64 + 5 * n as i64).to_be_bytes()); // maxTimestamp
    b.extend_from_slice(&4242i64.to_be_bytes()); // producerId
    b.extend_from_slice(&7i16.to_be_bytes()); // producerEpoch
    b.extend_from_slice(&1000i32.to_be_bytes()); // baseSequence
    b.extend_from_slice(&(n as i32).to_be_bytes()); // recordCount
    b.extend_from_slice(&packed);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    BytesMut::from(&b[..])
}

fn span(buf: &[u8]) -> BatchSpan {
    let v = validate(buf, usize::MAX).expect("valid batch");
    assert_eq!(v.batches.len(), 1);
    v.batches[0]
}

fn proto(codec: Codec) -> Compression {
    match codec {
        Codec::None => Compression::None,
        Codec::Gzip => Compression::Gzip,
        Codec::Snappy => Compression::Snappy,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd => Compression::Zstd,
    }
}

#[test]
fn every_codec_pair_keeps_records_and_header_of_idempotent_batches() {
    for source in Codec::ALL {
        let original = idempotent_batch(source, 40);
        let s = span(&original);
        let raw = decoded_records(&original, &s).expect("decodes");
        assert_eq!(raw, hand_records(40), "{source:?} decodes to the written records");
        for target in Codec::ALL {
            let (out, records) = recompress(&original, &s, target).expect("recompresses");
            assert_eq!(records, raw);
            let t = span(&out);
            let (h, oh) = (t.header, s.header);
            assert_eq!(
                t.len,
                out.len(),
                "{source:?}->{target:?}: one batch, nothing after it"
            );
            assert_eq!(h.compression(), target.id());
            assert_eq!(
                h.attributes & !COMPRESSION_MASK,
                oh.attributes & !COMPRESSION_MASK
            );
            assert_eq!(h.crc, crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]));
            assert_eq!(h.batch_length as usize, out.len() - LOG_OVERHEAD);
            assert_eq!(
                (
                    h.base_offset,
                    h.partition_leader_epoch,
                    h.last_offset_delta,
                    h.record_count
                ),
                (
                    oh.base_offset,
                    oh.partition_leader_epoch,
                    oh.last_offset_delta,
                    oh.record_count
                )
            );
            assert_eq!(
                (
                    h.base_timestamp,
                    h.max_timestamp,
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence
                ),
                (oh.base_timestamp, oh.max_timestamp, 4242, 7, 1000)
            );
            assert_eq!(
                decoded_records(&out, &t).expect("re-decodes"),
                raw,
                "{source:?}->{target:?}"
            );
            // Back to uncompressed gives the exact bytes an uncompressed producer would send.
            let (plain, _) = recompress(&out, &t, Codec::None).expect("decompresses");
            assert_eq!(
                plain,
                idempotent_batch(Codec::None, 40),
                "{source:?}->{target:?}->none"
            );
        }
    }
}

#[test]
fn recompressed_batches_decode_with_kafka_protocol_to_the_same_records() {
    let timestamps: Vec<i64> = (0..25).map(|i| 1_000 + (i * 37) % 11).collect();
    for source in Codec::ALL {
        let original = crate::records::tests::batch(proto(source), &timestamps);
        let s = span(&original);
        let expected = RecordBatchDecoder::decode(&mut original.clone().freeze()).expect("decodes");
        for target in Codec::ALL {
            let (out, _) = recompress(&original, &s, target).expect("recompresses");
            let got = RecordBatchDecoder::decode(&mut out.freeze()).expect("kafka-protocol decodes it");
            assert_eq!(got.compression, proto(target), "{source:?}->{target:?}");
            assert_eq!(got.records.len(), expected.records.len());
            for (g, e) in got.records.iter().zip(&expected.records) {
                assert_eq!(
                    (g.offset, g.timestamp, &g.key, &g.value, &g.headers, g.sequence),
                    (e.offset, e.timestamp, &e.key, &e.value, &e.headers, e.sequence),
                    "{source:?}->{target:?}"
                );
            }
        }
    }
}

#[test]
fn corrupt_compressed_payloads_are_refused_never_panic() {
    for source in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let good = idempotent_batch(source, 30);
        for seed in 0..60usize {
            let mut bad = good.clone();
            let area = HEADER_SIZE..bad.len();
            // Flip a few bytes of the compressed records, keeping the crc valid
            // so the batch reaches recompression.
            for k in 0..=(seed % 4) {
                let at = area.start + (seed * 131 + k * 977) % area.len();
                bad[at] ^= 0x24 | (seed as u8);
            }
            let crc = crc32c::crc32c(&bad[ATTRIBUTES_OFFSET..]);
            bad[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            let s = span(&bad);
            match recompress(&bad, &s, Codec::Zstd) {
                Ok((out, records)) => {
                    // Some flips leave a valid stream (e.g. inside a literal);
                    // the result must still be a valid batch of those records.
                    assert_eq!(decoded_records(&out, &span(&out)).expect("valid"), records);
                }
                Err(e) => assert!(
                    matches!(e, BatchError::Decompress(_) | BatchError::InvalidRecords(_)),
                    "{source:?} seed {seed}: {e:?}"
                ),
            }
        }
        // Truncated compressed streams (crc fixed, lengths consistent).
        for keep in [0usize, 1, 7, 20] {
            let mut b = good[..HEADER_SIZE].to_vec();
            b.extend_from_slice(&good[HEADER_SIZE..HEADER_SIZE + keep.min(good.len() - HEADER_SIZE)]);
            let len = (b.len() - LOG_OVERHEAD) as i32;
            b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
            let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
            b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            let s = span(&b);
            let e = recompress(&b, &s, Codec::Lz4).expect_err("truncated");
            assert!(
                matches!(e, BatchError::Decompress(_) | BatchError::InvalidRecords(_)),
                "{source:?} keep {keep}: {e:?}"
            );
        }
    }
    // A record count that the (valid) compressed records do not match.
    let mut b = idempotent_batch(Codec::Zstd, 5);
    b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&6i32.to_be_bytes());
    b[23..27].copy_from_slice(&5i32.to_be_bytes()); // lastOffsetDelta = 5
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    let e = recompress(&b, &span(&b), Codec::None).expect_err("count mismatch");
    assert!(matches!(e, BatchError::InvalidRecords(_)), "{e:?}");
    assert_eq!(
        e.kafka_error(),
        kafka_protocol::error::ResponseError::InvalidRecord
    );
    assert_eq!(
        BatchError::Decompress("x".into()).kafka_error(),
        kafka_protocol::error::ResponseError::CorruptMessage
    );
}

#[test]
fn log_append_time_is_stamped_in_place_with_a_new_crc() {
    for codec in Codec::ALL {
        let original = idempotent_batch(codec, 12);
        let mut b = original.clone();
        let ptr = b.as_ptr();
        stamp_log_append_time(&mut b[..], 1_800_000_000_123).expect("stamps");
        assert_eq!(b.as_ptr(), ptr);
        let s = span(&b); // the crc validates
        assert!(s.header.log_append_time());
        assert_eq!(s.header.max_timestamp, 1_800_000_000_123);
        assert_eq!(
            s.header.attributes,
            original_attributes(&original) | TIMESTAMP_TYPE_BIT
        );
        // Nothing else moved: only attributes, maxTimestamp and crc differ.
        let changed: Vec<usize> = (0..b.len()).filter(|&i| b[i] != original[i]).collect();
        assert!(
            changed.iter().all(|&i| (CRC_OFFSET..CRC_OFFSET + 4).contains(&i)
                || (ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2).contains(&i)
                || (35..43).contains(&i)),
            "{codec:?}: {changed:?}"
        );
        // Every record reads as the append time.
        let hit = crate::records::max_timestamp_record(&b)
            .expect("reads")
            .expect("a record");
        assert_eq!(hit.timestamp, 1_800_000_000_123);
        // Stamping again with the same time changes nothing.
        let again = b.clone();
        stamp_log_append_time(&mut b[..], 1_800_000_000_123).expect("stamps");
        assert_eq!(b, again);
    }
    // Bad framing stops with an error after the good batches.
    let mut two = idempotent_batch(Codec::None, 2);
    let first = two.len();
    two.extend_from_slice(&[0u8; 5]);
    assert!(stamp_log_append_time(&mut two[..], 5).is_err());
    assert_eq!(BatchWalker::new(&two[..first]).count(), 1);
    assert!(span(&two[..first]).header.log_append_time());
}

fn original_attributes(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]])
}
