//! ListOffsets: earliest, latest, largest timestamp, and by timestamp.
//!
//! By-timestamp lookups are DL's "position by txid": storage finds the
//! first entry whose txid (max-so-far record timestamp) is `>= T`, which by
//! construction holds the first record with timestamp `>= T`; the records
//! helper then finds that record inside the entry.
//!
//! From v4 the request carries the client's `current_leader_epoch`
//! (checked as Fetch checks it) and the answer the leader epoch of the
//! returned offset, from the stream's epoch history: the epoch whose
//! segment holds the record, the current epoch for the latest offset.
//!
//! With `isolation_level` READ_COMMITTED (1) the latest offset is the last
//! stable offset (the first offset of the oldest transaction not yet
//! decided), and a timestamp lookup answers nothing at or past it, as
//! Kafka does.

use distlog_metadata::StreamId;
use distlog_storage::log::StreamHandle;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::leader_epoch::{checked_history, open_stream, to_wire, UNDEFINED_EPOCH};
use crate::error::{list_offsets_code, read_storage_error};
use crate::producer::with_partition;
use crate::records::{self, TimestampHit};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (1, 7);

/// Special timestamp: the high watermark.
pub const LATEST: i64 = -1;
/// Special timestamp: the log start offset.
pub const EARLIEST: i64 = -2;
/// Special timestamp (v7+, KIP-734): the record with the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;

/// `isolation_level` READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

/// First version whose responses (and requests) carry leader epochs.
const LEADER_EPOCH_MIN_VERSION: i16 = 4;
/// First version that knows [`MAX_TIMESTAMP`].
const MAX_TIMESTAMP_MIN_VERSION: i16 = 7;

/// Handle a list-offsets request (earliest, latest, by timestamp via txid).
pub async fn handle(broker: &Broker, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // isolation_level exists from v2.
    let read_committed = version >= 2 && req.isolation_level == READ_COMMITTED;
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let parts = join_all(topic.partitions.iter().map(|p| async {
            let epoch = if version >= LEADER_EPOCH_MIN_VERSION {
                p.current_leader_epoch
            } else {
                -1
            };
            let res = match broker.resolve(&topic.name, p.partition_index) {
                // One mapping for every storage error of the lookup (see `list_offsets_code`).
                Ok((_, stream)) => lookup(broker, version, stream, epoch, p.timestamp, read_committed)
                    .await
                    .map_err(list_offsets_code),
                Err(e) => Err(e),
            };
            partition_response(version, p.partition_index, res)
        }))
        .await;
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(parts),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The answer for one partition: offset, its record's timestamp (-1 for
/// the special positions) and its leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The offset (-1 when no record matches a timestamp).
    pub offset: i64,
    /// The record's timestamp (-1 for earliest/latest or no match).
    pub timestamp: i64,
    /// The leader (owner) epoch that wrote the offset's record; for the
    /// latest offset the current epoch; -1 when unknown or no offset.
    pub leader_epoch: i32,
}

/// Kafka's answer when no record has a timestamp `>= T`.
const NO_MATCH: (i64, i64) = (-1, -1);

async fn lookup(
    broker: &Broker,
    version: i16,
    stream: StreamId,
    requested_epoch: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<Position, ResponseError> {
    let stream = open_stream(broker, stream, requested_epoch).await?;
    let history = checked_history(broker, &stream, requested_epoch)?;
    let requested = timestamp;
    // read_committed sees nothing at or past the last stable offset.
    let visible_end = if read_committed {
        with_partition(&stream, |p| p.last_stable_offset(history.log_end_offset))
            .unwrap_or(history.log_end_offset)
    } else {
        history.log_end_offset
    } as i64;
    // The epoch that wrote a returned offset (Kafka answers the batch's
    // partitionLeaderEpoch); -1 for no offset.
    let epoch_at = |offset: i64| {
        u64::try_from(offset)
            .ok()
            .and_then(|o| history.epoch_for_offset(o))
            .map_or(UNDEFINED_EPOCH, to_wire)
    };
    let (offset, timestamp, leader_epoch) = match timestamp {
        // The log end belongs to the current leader epoch.
        LATEST => (visible_end, -1, to_wire(history.current_epoch)),
        EARLIEST => (
            history.log_start_offset as i64,
            -1,
            history.earliest_epoch().map_or(UNDEFINED_EPOCH, to_wire),
        ),
        MAX_TIMESTAMP if version >= MAX_TIMESTAMP_MIN_VERSION => {
            let (offset, ts) = max_timestamp(&stream).await?;
            (offset, ts, epoch_at(offset))
        }
        t if t >= 0 => {
            let (offset, ts) = match stream
                .find_by_txid(t as u64)
                .await
                .map_err(|e| read_storage_error(&e))?
            {
                None => NO_MATCH,
                Some(found) => {
                    let hit = records::find_offset_for_timestamp(&found.entry.payload, t);
                    refine(hit, found.entry.first_seq, found.entry.txid)
                }
            };
            (offset, ts, epoch_at(offset))
        }
        _ => return Err(ResponseError::InvalidRequest),
    };
    // A lookup can land inside the hidden head of a segment that
    // DeleteRecords cut: nothing below the log start offset is answered.
    let start = history.log_start_offset as i64;
    let (offset, leader_epoch) = if (0..start).contains(&offset) {
        (start, epoch_at(start))
    } else {
        (offset, leader_epoch)
    };
    let looked_up = requested >= 0 || requested == MAX_TIMESTAMP;
    let (offset, timestamp, leader_epoch) = if looked_up && offset >= visible_end {
        (NO_MATCH.0, NO_MATCH.1, UNDEFINED_EPOCH)
    } else {
        (offset, timestamp, leader_epoch)
    };
    Ok(Position {
        offset,
        timestamp,
        leader_epoch,
    })
}

/// Offset and timestamp from a record-level lookup inside an entry, falling
/// back to the entry's first offset and txid if its batches cannot be read
/// or their headers promised a record that is not there.
fn refine(hit: Result<Option<TimestampHit>, records::BatchError>, first_seq: u64, txid: u64) -> (i64, i64) {
    match hit {
        Ok(Some(h)) => (h.offset, h.timestamp),
        Ok(None) | Err(_) => (first_seq as i64, i64::try_from(txid).unwrap_or(i64::MAX)),
    }
}

/// The record with the largest timestamp: the last entry's txid is the
/// largest timestamp so far, and the first entry reaching that txid holds
/// its first occurrence.
async fn max_timestamp(stream: &StreamHandle) -> Result<(i64, i64), ResponseError> {
    let (start, hw) = stream.bounds().map_err(|e| read_storage_error(&e))?;
    if hw <= start {
        return Ok(NO_MATCH);
    }
    let last = stream.read(hw - 1, 1).await.map_err(|e| read_storage_error(&e))?;
    let Some(last) = last.entries.into_iter().next() else {
        return Ok(NO_MATCH);
    };
    let found = stream
        .find_by_txid(last.txid)
        .await
        .map_err(|e| read_storage_error(&e))?;
    let entry = found.map(|f| f.entry).unwrap_or(last);
    Ok(refine(
        records::max_timestamp_record(&entry.payload),
        entry.first_seq,
        entry.txid,
    ))
}

/// Build one partition's response; fields a version lacks keep their
/// defaults (the encoder refuses a leader epoch before v4).
fn partition_response(
    version: i16,
    index: i32,
    res: Result<Position, ResponseError>,
) -> ListOffsetsPartitionResponse {
    let base = ListOffsetsPartitionResponse::default().with_partition_index(index);
    match res {
        Ok(p) => {
            let r = base.with_offset(p.offset).with_timestamp(p.timestamp);
            if version >= LEADER_EPOCH_MIN_VERSION {
                r.with_leader_epoch(p.leader_epoch)
            } else {
                r
            }
        }
        Err(e) => base.with_error_code(e.code()).with_offset(-1).with_timestamp(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_encode_at_every_supported_version() {
        use kafka_protocol::messages::TopicName;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        for version in VERSIONS.0..=VERSIONS.1 {
            let p = Position {
                offset: 10,
                timestamp: 99,
                leader_epoch: 3,
            };
            let parts = vec![
                partition_response(version, 0, Ok(p)),
                partition_response(version, 1, Err(ResponseError::FencedLeaderEpoch)),
            ];
            let topic = ListOffsetsTopicResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(parts);
            let resp = ListOffsetsResponse::default().with_topics(vec![topic]);
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[test]
    fn leader_epoch_only_from_v4() {
        let p = Position {
            offset: 10,
            timestamp: 99,
            leader_epoch: 3,
        };
        let r = partition_response(3, 1, Ok(p));
        assert_eq!(
            (r.partition_index, r.offset, r.timestamp, r.leader_epoch),
            (1, 10, 99, -1)
        );
        let r = partition_response(4, 1, Ok(p));
        assert_eq!(r.leader_epoch, 3);
        assert_eq!(r.error_code, 0);
    }

    #[test]
    fn errors_answer_minus_one() {
        let r = partition_response(7, 2, Err(ResponseError::UnknownTopicOrPartition));
        assert_eq!(
            (r.error_code, r.offset, r.timestamp, r.leader_epoch),
            (3, -1, -1, -1)
        );
    }

    #[test]
    fn refine_prefers_the_record_and_falls_back_to_the_entry() {
        let hit = TimestampHit {
            offset: 42,
            timestamp: 1500,
        };
        assert_eq!(refine(Ok(Some(hit)), 40, 1600), (42, 1500));
        assert_eq!(refine(Ok(None), 40, 1600), (40, 1600));
        assert_eq!(
            refine(Err(records::BatchError::NoBatch), 40, u64::MAX),
            (40, i64::MAX)
        );
    }
}
