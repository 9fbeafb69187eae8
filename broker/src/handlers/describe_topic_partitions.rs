//! DescribeTopicPartitions (v0, KIP-966): what newer admin clients use
//! instead of Metadata to describe topics, with cursor paging.
//!
//! Each partition is described as Metadata describes it (the same
//! [`super::metadata::topic_entry`]: leader = stream owner, leader epoch =
//! owner epoch, replicas and ISR as Metadata reports them), with empty
//! ELR lists and no offline replicas. As Kafka's broker does:
//! - an empty topic list means every topic; named topics are answered in
//!   name order, an unknown one with UNKNOWN_TOPIC_OR_PARTITION (an
//!   invalid name with INVALID_TOPIC_EXCEPTION);
//! - topics that sort before the cursor's topic are skipped, and the cursor's
//!   topic starts at the cursor's partition; a negative cursor partition
//!   is INVALID_REQUEST;
//! - at most `response_partition_limit` partitions are answered, capped
//!   at [`MAX_PARTITION_LIMIT`] (Kafka's `max.request.partition.size.limit`
//!   default) and at least 1; when partitions are left, `next_cursor`
//!   names the first one not answered (a topic's partition 0 when the limit
//!   ran out exactly at the end of the previous topic).
//!
//! There are no ACLs: authorized operations are not provided (`i32::MIN`),
//! as in Metadata.

use std::collections::BTreeSet;

use distlog_metadata::MetaState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::kafka_broker_id;
use super::metadata::{topic_entry, Leadership};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 0);

/// The most partitions one response carries (Kafka's
/// `max.request.partition.size.limit` default).
pub const MAX_PARTITION_LIMIT: i32 = 2000;

/// What a request asks for, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Named topics; empty = every topic.
    pub topics: Vec<String>,
    /// Partitions at most in the answer (already capped).
    pub limit: usize,
    /// Where to resume: topic name and partition index.
    pub cursor: Option<(String, i32)>,
}

/// Handle a DescribeTopicPartitions request.
pub async fn handle(
    broker: &Broker,
    _version: i16,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let topics: Vec<String> = req.topics.iter().map(|t| t.name.0.to_string()).collect();
    let cursor = req
        .cursor
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    if cursor.as_ref().is_some_and(|(_, p)| *p < 0) {
        let refused = topics
            .into_iter()
            .map(|n| error_topic(n, ResponseError::InvalidRequest))
            .collect();
        return DescribeTopicPartitionsResponse::default().with_topics(refused);
    }
    let query = Query {
        topics,
        limit: req.response_partition_limit.clamp(1, MAX_PARTITION_LIMIT) as usize,
        cursor,
    };
    let node = Leadership {
        node: kafka_broker_id(broker.config.node_id).0,
        cluster: broker.config.is_cluster(),
    };
    let (topics, next) = broker.meta.read(|s| describe(s, node, &query));
    DescribeTopicPartitionsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
        .with_next_cursor(next)
}

/// The page of topics `query` asks for, and the cursor of the next page
/// when partitions are left (see the module doc for the rules).
pub fn describe(
    s: &MetaState,
    node: Leadership,
    query: &Query,
) -> (Vec<DescribeTopicPartitionsResponseTopic>, Option<Cursor>) {
    let names: BTreeSet<String> = if query.topics.is_empty() {
        s.topics.keys().cloned().collect()
    } else {
        query.topics.iter().cloned().collect()
    };
    let (cursor_topic, cursor_partition) = match &query.cursor {
        Some((t, p)) => (t.as_str(), *p),
        None => ("", 0),
    };
    let mut out = Vec::new();
    let mut remaining = query.limit;
    for name in names.iter().filter(|n| n.as_str() >= cursor_topic) {
        if remaining == 0 {
            return (out, Some(cursor(name, 0)));
        }
        let Some(t) = s.topic(name) else {
            let code = if crate::error::topic_name_error(name).is_some() {
                ResponseError::InvalidTopicException
            } else {
                ResponseError::UnknownTopicOrPartition
            };
            out.push(error_topic(name.clone(), code));
            continue;
        };
        let start = if name == cursor_topic { cursor_partition } else { 0 };
        let entry = topic_entry(s, t, node);
        let mut partitions: Vec<DescribeTopicPartitionsResponsePartition> = entry
            .partitions
            .into_iter()
            .filter(|p| p.partition_index >= start)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(p.error_code)
                    .with_partition_index(p.partition_index)
                    .with_leader_id(p.leader_id)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replica_nodes)
                    .with_isr_nodes(p.isr_nodes)
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(p.offline_replicas)
            })
            .collect();
        let next = (partitions.len() > remaining).then(|| partitions[remaining].partition_index);
        partitions.truncate(remaining);
        remaining -= partitions.len();
        out.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(entry.error_code)
                .with_name(entry.name)
                .with_topic_id(entry.topic_id)
                .with_is_internal(entry.is_internal)
                .with_partitions(partitions),
        );
        if let Some(p) = next {
            return (out, Some(cursor(name, p)));
        }
    }
    (out, None)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition)
}

fn error_topic(name: String, e: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(e.code())
        .with_name(Some(TopicName(StrBytes::from_string(name))))
        .with_topic_id(Uuid::nil())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use distlog_metadata::TopicMeta;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn state() -> MetaState {
        let mut s = MetaState::default();
        for (name, partitions) in [("a", 3), ("b", 2), ("c", 1)] {
            s.topics.insert(
                name.into(),
                TopicMeta {
                    name: name.into(),
                    id: Uuid::new_v4(),
                    partitions,
                    configs: BTreeMap::new(),
                    created_ms: 1,
                },
            );
        }
        s
    }

    const SINGLE: Leadership = Leadership {
        node: 1,
        cluster: false,
    };

    /// (topic, error, partitions) of a page, and its next cursor.
    type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

    fn page(s: &MetaState, topics: &[&str], limit: usize, cursor: Option<(&str, i32)>) -> Page {
        let q = Query {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            limit,
            cursor: cursor.map(|(t, p)| (t.to_string(), p)),
        };
        let (topics, next) = describe(s, SINGLE, &q);
        (
            topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        t.error_code,
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    )
                })
                .collect(),
            next.map(|c| (c.topic_name.0.to_string(), c.partition_index)),
        )
    }

    fn t(name: &str, error: i16, parts: &[i32]) -> (String, i16, Vec<i32>) {
        (name.into(), error, parts.to_vec())
    }

    #[test]
    fn all_topics_in_name_order_within_the_limit() {
        let s = state();
        assert_eq!(
            page(&s, &[], 100, None),
            (
                vec![t("a", 0, &[0, 1, 2]), t("b", 0, &[0, 1]), t("c", 0, &[0])],
                None
            )
        );
        // The limit cuts inside a topic: the cursor names the next partition.
        assert_eq!(
            page(&s, &[], 2, None),
            (vec![t("a", 0, &[0, 1])], Some(("a".into(), 2)))
        );
        assert_eq!(
            page(&s, &[], 2, Some(("a", 2))),
            (vec![t("a", 0, &[2]), t("b", 0, &[0])], Some(("b".into(), 1)))
        );
        // Exactly at a topic's end: the cursor is the next topic's partition 0.
        assert_eq!(
            page(&s, &[], 3, None),
            (vec![t("a", 0, &[0, 1, 2])], Some(("b".into(), 0)))
        );
        // The last page has no cursor.
        assert_eq!(
            page(&s, &[], 5, Some(("b", 1))),
            (vec![t("b", 0, &[1]), t("c", 0, &[0])], None)
        );
    }

    #[test]
    fn a_limit_of_one_walks_every_partition() {
        let s = state();
        let mut cursor: Option<(String, i32)> = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (topics, next) = page(&s, &["a"], 1, cursor.as_ref().map(|(t, p)| (t.as_str(), *p)));
            for (name, _, parts) in topics {
                seen.extend(parts.into_iter().map(|p| (name.clone(), p)));
            }
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        let want: Vec<(String, i32)> = (0..3).map(|p| ("a".to_string(), p)).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn named_topics_with_unknown_ones() {
        let s = state();
        assert_eq!(
            page(&s, &["c", "nope", "a", "bad/name"], 100, None),
            (
                vec![
                    t("a", 0, &[0, 1, 2]),
                    t("bad/name", ResponseError::InvalidTopicException.code(), &[]),
                    t("c", 0, &[0]),
                    t("nope", 3, &[]),
                ],
                None
            )
        );
        // Named topics before the cursor's are skipped.
        assert_eq!(
            page(&s, &["a", "c"], 100, Some(("b", 0))),
            (vec![t("c", 0, &[0])], None)
        );
    }

    #[test]
    fn partitions_are_described_as_metadata_describes_them() {
        let s = state();
        let q = Query {
            topics: vec!["a".into()],
            limit: 100,
            cursor: None,
        };
        let (topics, _) = describe(&s, SINGLE, &q);
        let meta = topic_entry(&s, s.topic("a").unwrap(), SINGLE);
        assert_eq!(topics[0].topic_id, meta.topic_id);
        assert_eq!(topics[0].topic_authorized_operations, i32::MIN);
        for (d, m) in topics[0].partitions.iter().zip(&meta.partitions) {
            assert_eq!(
                (d.leader_id, d.leader_epoch, &d.replica_nodes, &d.isr_nodes),
                (m.leader_id, m.leader_epoch, &m.replica_nodes, &m.isr_nodes)
            );
        }
        let resp = DescribeTopicPartitionsResponse::default()
            .with_topics(topics)
            .with_next_cursor(Some(cursor("a", 1)));
        let mut buf = BytesMut::new();
        resp.encode(&mut buf, 0).expect("encodes");
        let back = DescribeTopicPartitionsResponse::decode(&mut buf.freeze(), 0).expect("decodes");
        assert_eq!(back, resp);
    }
}
