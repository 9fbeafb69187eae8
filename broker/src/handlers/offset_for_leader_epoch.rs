//! OffsetForLeaderEpoch (KIP-101, KIP-279, KIP-320): the end offset of a
//! leader epoch, which clients use to detect log truncation after a leader
//! change (librdkafka and the Java consumer validate their position with
//! it when the leader epoch moves).
//!
//! The answer comes from the stream's epoch history (every segment records
//! the owner epoch that wrote it), with the semantics of a Kafka leader's
//! `LeaderEpochFileCache.endOffsetFor`: the largest epoch `<=` the
//! requested one that wrote records and the start offset of the next epoch,
//! or the log end offset for the current epoch; -1/-1 (undefined) for an
//! epoch newer than the current one or an undefined requested epoch.

use distlog_storage::log::{EpochHistory, StreamHandle};
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::leader_epoch::{
    checked_history, confirm_owner, open_stream, to_wire, UNDEFINED_EPOCH, UNDEFINED_OFFSET,
};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions): those of the
/// protocol schema (Kafka 4.0 removed v0 and v1); `current_leader_epoch`
/// exists from v2, `replica_id` from v3.
pub const VERSIONS: (i16, i16) = (2, 4);

/// Handle an OffsetForLeaderEpoch request. `replica_id` changes nothing:
/// Kafka answers consumers and followers alike from the leader.
pub async fn handle(
    broker: &Broker,
    _version: i16,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let parts = join_all(topic.partitions.iter().map(|p| async {
            let res = match broker.resolve(&topic.topic, p.partition) {
                Ok((_, stream)) => match open_stream(broker, stream, p.current_leader_epoch).await {
                    Ok(s) => match checked_history(broker, &s, p.current_leader_epoch) {
                        Ok(h) if is_future(&h, p.leader_epoch) => future_epoch(broker, &s).await,
                        Ok(h) => Ok(end_offset(&h, p.leader_epoch)),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            partition_response(p.partition, res)
        }))
        .await;
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(parts),
        );
    }
    OffsetForLeaderEpochResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}

/// Whether `requested` is an epoch newer than the one this node serves.
fn is_future(history: &EpochHistory, requested: i32) -> bool {
    u64::try_from(requested).is_ok_and(|r| r > history.current_epoch)
}

/// The answer for an epoch newer than the one this node serves. A Kafka
/// leader's epoch is never behind a record a client has read, so Kafka
/// answers -1/-1 and librdkafka resets the consumer's position. Here a node
/// cut off from the metadata quorum may still serve a stream whose new
/// owner wrote records of a later epoch: Kafka's answer only once a read
/// barrier confirms this node owns the stream at its epoch; otherwise
/// UNKNOWN_LEADER_EPOCH (this node is behind) or NOT_LEADER_OR_FOLLOWER (it
/// lost the stream), which consumers retry after looking the leader up
/// again (campaign seed 5037).
async fn future_epoch(broker: &Broker, stream: &StreamHandle) -> Result<(i32, i64), ResponseError> {
    match confirm_owner(broker, stream).await {
        Some(true) => Ok((UNDEFINED_EPOCH, UNDEFINED_OFFSET)),
        Some(false) => Err(ResponseError::NotLeaderOrFollower),
        None => Err(ResponseError::UnknownLeaderEpoch),
    }
}

/// The (leader epoch, end offset) answered for `requested`: Kafka's
/// `endOffsetFor`, with -1/-1 for an undefined (negative) requested epoch or
/// one newer than the current epoch.
pub fn end_offset(history: &EpochHistory, requested: i32) -> (i32, i64) {
    let Ok(requested) = u64::try_from(requested) else {
        return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
    };
    match history.end_offset_for(requested) {
        Some((epoch, offset)) => (to_wire(epoch), i64::try_from(offset).unwrap_or(i64::MAX)),
        None => (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
    }
}

/// One partition's answer; an error carries -1/-1.
fn partition_response(partition: i32, res: Result<(i32, i64), ResponseError>) -> EpochEndOffset {
    let base = EpochEndOffset::default().with_partition(partition);
    match res {
        Ok((epoch, offset)) => base.with_leader_epoch(epoch).with_end_offset(offset),
        Err(e) => base
            .with_error_code(e.code())
            .with_leader_epoch(UNDEFINED_EPOCH)
            .with_end_offset(UNDEFINED_OFFSET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlog_storage::log::segment::SegmentView;

    fn seg(lssn: u64, base: u64, next: u64, epoch: u64) -> SegmentView {
        SegmentView {
            lssn,
            ledger_id: lssn,
            ensemble: vec![distlog_metadata::NodeId::new(1)],
            write_quorum: 1,
            ack_quorum: 1,
            base_offset: base,
            next_offset: next,
            last_entry_id: (next > base).then_some(0),
            start_txid: 0,
            end_txid: 0,
            completed: true,
            owner_epoch: epoch,
        }
    }

    #[test]
    fn answers_follow_the_epoch_history() {
        // Epoch 1 wrote [0,5), epoch 2 wrote [5,8); epoch 3 is current.
        let h = EpochHistory::new(&[seg(1, 0, 5, 1), seg(2, 5, 8, 2)], 0, 8, 3);
        assert_eq!(end_offset(&h, 1), (1, 5));
        assert_eq!(end_offset(&h, 2), (2, 8));
        assert_eq!(end_offset(&h, 3), (3, 8));
        assert_eq!(end_offset(&h, 0), (0, 0));
        assert_eq!(end_offset(&h, 4), (-1, -1));
        assert_eq!(end_offset(&h, -1), (-1, -1));
        assert!(is_future(&h, 4) && !is_future(&h, 3) && !is_future(&h, -1));
    }

    #[test]
    fn responses_encode_at_every_supported_version() {
        use kafka_protocol::messages::TopicName;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let parts = vec![
            partition_response(0, Ok((2, 8))),
            partition_response(1, Err(ResponseError::FencedLeaderEpoch)),
        ];
        assert_eq!(
            (parts[1].error_code, parts[1].leader_epoch, parts[1].end_offset),
            (74, -1, -1)
        );
        let topic = OffsetForLeaderTopicResult::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(parts);
        let resp = OffsetForLeaderEpochResponse::default().with_topics(vec![topic]);
        for version in VERSIONS.0..=VERSIONS.1 {
            resp.encode(&mut bytes::BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
