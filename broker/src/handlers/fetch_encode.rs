//! Fetch responses encoded without copying record bytes.
//!
//! The kafka-protocol encoder copies every partition's `records` into the
//! response buffer (16% of broker CPU on a catch-up consume). Here the
//! response is written as a list of chunks: small buffers holding the
//! encoded metadata, and between them the stored record `Bytes` exactly as
//! read (tail cache or bookie), which the connection writes out as they are.
//!
//! Only the records field is spliced: each partition's metadata is still
//! encoded by kafka-protocol (with `records` null), its trailing null
//! marker replaced by the real length. A test checks the result is
//! byte-for-byte what kafka-protocol produces, for every supported version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;

/// Record payloads of one response: `[topic][partition]` → stored chunks,
/// in the same order as the response's topics and partitions.
pub type FetchRecords = Vec<Vec<Vec<Bytes>>>;

/// Why a response could not be encoded (a broker bug, never client input).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The response does not have the shape this encoder splices.
    #[error("fetch response cannot be spliced: {0}")]
    Shape(&'static str),
    /// A length does not fit its wire type.
    #[error("fetch response field too large for the wire format")]
    TooLarge,
    /// kafka-protocol refused to encode a part.
    #[error("kafka-protocol encoding failed: {0}")]
    Protocol(String),
}

fn proto(e: impl std::fmt::Display) -> EncodeError {
    EncodeError::Protocol(e.to_string())
}

/// Largest fetch version this encoder understands (v13 adds topic ids).
pub const MAX_VERSION: i16 = 12;

fn put_array_len(buf: &mut BytesMut, n: usize, flexible: bool) -> Result<(), EncodeError> {
    if flexible {
        put_uvarint(buf, u32::try_from(n + 1).map_err(|_| EncodeError::TooLarge)?);
    } else {
        buf.put_i32(i32::try_from(n).map_err(|_| EncodeError::TooLarge)?);
    }
    Ok(())
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Encode a whole fetch response frame (size prefix, header, body) as
/// chunks. `resp`'s partitions must carry `records: None`; their records
/// come from `records`, which must have the same shape.
pub fn encode(
    version: i16,
    correlation_id: i32,
    resp: &FetchResponse,
    records: &FetchRecords,
) -> Result<Vec<Bytes>, EncodeError> {
    if !(4..=MAX_VERSION).contains(&version) {
        return Err(EncodeError::Shape("unsupported version"));
    }
    if records.len() != resp.responses.len() {
        return Err(EncodeError::Shape("records do not match the topics"));
    }
    let flexible = version >= 12;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // size, patched below
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
        .map_err(proto)?;
    buf.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(resp.error_code);
        buf.put_i32(resp.session_id);
    }
    put_array_len(&mut buf, resp.responses.len(), flexible)?;
    for (topic, topic_records) in resp.responses.iter().zip(records) {
        if topic_records.len() != topic.partitions.len() {
            return Err(EncodeError::Shape("records do not match the partitions"));
        }
        let name: &[u8] = topic.topic.as_bytes();
        if flexible {
            put_uvarint(
                &mut buf,
                u32::try_from(name.len() + 1).map_err(|_| EncodeError::TooLarge)?,
            );
        } else {
            buf.put_i16(i16::try_from(name.len()).map_err(|_| EncodeError::TooLarge)?);
        }
        buf.put_slice(name);
        put_array_len(&mut buf, topic.partitions.len(), flexible)?;
        for (part, parts) in topic.partitions.iter().zip(topic_records) {
            if part.records.is_some() || !part.unknown_tagged_fields.is_empty() {
                return Err(EncodeError::Shape(
                    "partition records must be null, without tagged fields",
                ));
            }
            part.encode(&mut buf, version).map_err(proto)?;
            // Null records end the partition: i32 -1, or (flexible) a
            // zero varint followed by an empty tagged-field section.
            let marker: &[u8] = if flexible { &[0, 0] } else { &[0xff; 4] };
            if !buf.ends_with(marker) || (flexible && part_has_tagged(part)) {
                return Err(EncodeError::Shape("unexpected partition encoding"));
            }
            buf.truncate(buf.len() - marker.len());
            let len: usize = parts.iter().map(Bytes::len).sum();
            if flexible {
                put_uvarint(
                    &mut buf,
                    u32::try_from(len + 1).map_err(|_| EncodeError::TooLarge)?,
                );
            } else {
                buf.put_i32(i32::try_from(len).map_err(|_| EncodeError::TooLarge)?);
            }
            // A partition's records may be several slices (runs of batches
            // cut from consecutive entries): nothing is written between
            // them, so no empty metadata chunk is pushed either.
            for p in parts.iter().filter(|p| !p.is_empty()) {
                if !buf.is_empty() {
                    chunks.push(buf.split().freeze());
                }
                chunks.push(p.clone());
            }
            if flexible {
                buf.put_u8(0); // partition tagged fields
            }
        }
        if flexible {
            buf.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        buf.put_u8(0); // response tagged fields
    }
    chunks.push(buf.freeze());
    let total: usize = chunks.iter().map(Bytes::len).sum::<usize>() - 4;
    let size = i32::try_from(total).map_err(|_| EncodeError::TooLarge)?;
    let mut first = BytesMut::from(&chunks[0][..]);
    first[..4].copy_from_slice(&size.to_be_bytes());
    chunks[0] = first.freeze();
    Ok(chunks)
}

/// Whether a (v12) partition would carry tagged fields, which this encoder
/// does not splice around.
fn part_has_tagged(part: &kafka_protocol::messages::fetch_response::PartitionData) -> bool {
    use kafka_protocol::messages::fetch_response::{EpochEndOffset, LeaderIdAndEpoch, SnapshotId};
    part.diverging_epoch != EpochEndOffset::default()
        || part.current_leader != LeaderIdAndEpoch::default()
        || part.snapshot_id != SnapshotId::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn part(i: i32, err: i16) -> PartitionData {
        PartitionData::default()
            .with_partition_index(i)
            .with_error_code(err)
            .with_high_watermark(100 + i as i64)
            .with_last_stable_offset(100 + i as i64)
            .with_log_start_offset(3)
            .with_aborted_transactions(Some(Vec::new()))
            .with_preferred_read_replica((-1).into())
            .with_records(None)
    }

    #[test]
    fn chunks_equal_kafka_protocol_encoding_at_every_version() {
        let recs: FetchRecords = vec![
            vec![
                vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defgh")],
                vec![],
            ],
            vec![vec![Bytes::from(vec![7u8; 300])]],
        ];
        let resp = FetchResponse::default()
            .with_session_id(0)
            .with_throttle_time_ms(5)
            .with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("alpha")))
                    .with_partitions(vec![part(0, 0), part(1, 1)]),
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("b")))
                    .with_partitions(vec![part(4, 0)]),
            ]);
        for version in 4..=MAX_VERSION {
            // Reference: kafka-protocol with the records joined in.
            let mut full = resp.clone();
            for (t, topic) in full.responses.iter_mut().enumerate() {
                for (p, pd) in topic.partitions.iter_mut().enumerate() {
                    pd.records = Some(Bytes::from(recs[t][p].concat()));
                }
            }
            let mut expect = BytesMut::new();
            expect.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(42)
                .encode(&mut expect, ApiKey::Fetch.response_header_version(version))
                .unwrap();
            full.encode(&mut expect, version).unwrap();
            let n = (expect.len() - 4) as i32;
            expect[..4].copy_from_slice(&n.to_be_bytes());

            let chunks = encode(version, 42, &resp, &recs).unwrap();
            assert_eq!(chunks.concat(), expect.to_vec(), "version {version}");
            // The stored record bytes travel as they are (same allocation).
            assert!(chunks.iter().any(|c| c.as_ptr() == recs[1][0][0].as_ptr()));
        }
    }

    #[test]
    fn refuses_what_it_cannot_splice() {
        let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![part(0, 0).with_records(Some(Bytes::new()))])]);
        assert!(
            encode(8, 1, &resp, &vec![vec![vec![]]]).is_err(),
            "records must be spliced, not set"
        );
        let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![part(0, 0)])]);
        assert!(encode(8, 1, &resp, &vec![vec![vec![]]]).is_ok());
        let resp = FetchResponse::default();
        assert!(encode(13, 1, &resp, &vec![]).is_err());
        assert!(encode(8, 1, &resp, &vec![vec![]]).is_err(), "shape mismatch");
    }
}
