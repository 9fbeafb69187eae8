//! Reading the embedded consumer protocol (KIP-62's `ConsumerProtocol`):
//! the subscription a member sends in JoinGroup and the assignment the
//! leader sends in SyncGroup.
//!
//! The coordinator relays both as opaque bytes; it only looks inside for
//! OffsetDelete (which topics a live group is subscribed to) and for the
//! admin API (which partitions each member owns). Undecodable bytes are
//! treated as "no topics", never as an error: a client is free to use
//! another protocol type.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

/// The newest consumer protocol version this crate decodes; newer versions
/// only append fields, so they are read as this one (as Kafka does).
const LATEST: i16 = 3;

fn decode<T: Decodable>(bytes: &Bytes) -> Option<T> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    T::decode(&mut buf, version.min(LATEST)).ok()
}

/// Topics named in any of these consumer subscriptions, sorted and unique.
pub fn subscribed_topics(subscriptions: &[Bytes]) -> Vec<String> {
    let mut topics: Vec<String> = subscriptions
        .iter()
        .filter_map(decode::<ConsumerProtocolSubscription>)
        .flat_map(|s| s.topics.into_iter().map(|t| t.to_string()))
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// The partitions of a consumer assignment, by topic (empty when the bytes
/// are not a consumer assignment).
pub fn assigned_partitions(assignment: &Bytes) -> Vec<(String, Vec<i32>)> {
    decode::<ConsumerProtocolAssignment>(assignment)
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .map(|tp| (tp.topic.0.to_string(), tp.partitions))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode<T: Encodable>(version: i16, msg: &T) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        msg.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn reads_subscriptions_of_every_version_and_skips_garbage() {
        let sub = ConsumerProtocolSubscription::default().with_topics(vec![
            StrBytes::from_static_str("b"),
            StrBytes::from_static_str("a"),
        ]);
        let v0 = encode(0, &sub);
        let v3 = encode(3, &sub);
        let garbage = Bytes::from_static(&[0, 1, 0xff]);
        assert_eq!(
            subscribed_topics(&[v0, v3, garbage, Bytes::new()]),
            vec!["a", "b"]
        );
    }

    #[test]
    fn reads_assignments() {
        let a =
            ConsumerProtocolAssignment::default().with_assigned_partitions(vec![TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![0, 2])]);
        assert_eq!(
            assigned_partitions(&encode(1, &a)),
            vec![("t".to_string(), vec![0, 2])]
        );
        assert!(assigned_partitions(&Bytes::from_static(&[0])).is_empty());
    }
}
