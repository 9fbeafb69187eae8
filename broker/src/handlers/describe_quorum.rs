//! DescribeQuorum (v0–2): the metadata Raft group's real state, as
//! `kafka-metadata-quorum.sh describe` and `describeMetadataQuorum` read
//! KRaft's. In distlog the Raft group (openraft) plays KRaft's part, so
//! this is where operators look first.
//!
//! The request must name `__cluster_metadata` partition 0 (and nothing
//! else); otherwise every named partition gets UNKNOWN_TOPIC_OR_PARTITION,
//! as KRaft answers. Only the leader knows the members' replication
//! progress: as a KRaft non-leader does, any other node answers
//! NOT_LEADER_OR_FOLLOWER for the partition (clients go to the leader; no
//! forwarding). The leader answers:
//! - leader id and epoch = the Raft term;
//! - high watermark = committed log index + 1, and each member's log end
//!   offset = the index of the last entry known to be replicated to it + 1
//!   (Raft indexes count from 0 and Kafka's offsets are exclusive ends; -1
//!   when nothing is known);
//! - voters and learners (Kafka's observers); last fetch and caught-up
//!   timestamps are known only for the leader itself (now), -1 for others
//!   (openraft does not report them);
//! - v2: every member's Raft endpoint as a listener named [`LISTENER`]
//!   and a zero directory id (there are no directory ids).

use distlog_metadata::{NodeId, QuorumStatus};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;

use super::kafka_broker_id;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 2);

/// The topic KRaft's quorum is described under (its only partition is 0).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The listener name the Raft endpoints are reported under (v2).
pub const LISTENER: &str = "RAFT";

/// Handle a DescribeQuorum request.
pub async fn handle(broker: &Broker, version: i16, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    if !names_the_quorum(&req) {
        return partition_errors(&req, ResponseError::UnknownTopicOrPartition);
    }
    match broker.meta.quorum_status().await {
        Ok(status) => describe(&status, version, distlog_metadata::now_ms() as i64),
        Err(e) => {
            warn!(error = %e, "DescribeQuorum: the metadata raft core does not answer");
            let mut resp =
                DescribeQuorumResponse::default().with_error_code(ResponseError::UnknownServerError.code());
            if version >= 2 {
                resp = resp.with_error_message(Some(StrBytes::from_string(e.to_string())));
            }
            resp
        }
    }
}

/// Whether the request names exactly `__cluster_metadata` partition 0.
fn names_the_quorum(req: &DescribeQuorumRequest) -> bool {
    match req.topics.as_slice() {
        [t] => {
            t.topic_name.0.as_str() == METADATA_TOPIC
                && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0)
        }
        _ => false,
    }
}

/// Every partition the request names, with `error`.
fn partition_errors(req: &DescribeQuorumRequest, error: ResponseError) -> DescribeQuorumResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code())
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

/// The answer for `status` at `version` (`now_ms`: the leader's own fetch
/// and caught-up time).
pub fn describe(status: &QuorumStatus, version: i16, now_ms: i64) -> DescribeQuorumResponse {
    let topic = TopicData::default().with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)));
    if !status.is_leader {
        let p = PartitionData::default()
            .with_partition_index(0)
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_leader_id(
                status
                    .leader
                    .map_or(kafka_protocol::messages::BrokerId(-1), kafka_broker_id),
            )
            .with_leader_epoch(epoch(status.term));
        return DescribeQuorumResponse::default().with_topics(vec![topic.with_partitions(vec![p])]);
    }
    let replica = |id: NodeId| {
        let end = status.matched.get(&id).copied().flatten().map_or(-1, log_end);
        let mut r = ReplicaState::default()
            .with_replica_id(kafka_broker_id(id))
            .with_log_end_offset(end);
        if version >= 1 && id == status.node_id {
            r = r
                .with_last_fetch_timestamp(now_ms)
                .with_last_caught_up_timestamp(now_ms);
        }
        r
    };
    let p = PartitionData::default()
        .with_partition_index(0)
        .with_error_code(0)
        .with_leader_id(kafka_broker_id(status.node_id))
        .with_leader_epoch(epoch(status.term))
        .with_high_watermark(status.committed.map_or(-1, log_end))
        .with_current_voters(status.members.voters.keys().map(|id| replica(*id)).collect())
        .with_observers(status.members.learners.keys().map(|id| replica(*id)).collect());
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![topic.with_partitions(vec![p])]);
    if version >= 2 {
        let nodes = status
            .members
            .voters
            .iter()
            .chain(&status.members.learners)
            .map(|(id, addr)| {
                Node::default()
                    .with_node_id(kafka_broker_id(*id))
                    .with_listeners(listener(addr).into_iter().collect())
            })
            .collect();
        resp = resp.with_nodes(nodes);
    }
    resp
}

/// A Raft log index as a Kafka log end offset (the offset after it).
fn log_end(index: u64) -> i64 {
    index.saturating_add(1).min(i64::MAX as u64) as i64
}

/// A Raft term as a Kafka epoch.
fn epoch(term: u64) -> i32 {
    term.min(i32::MAX as u64) as i32
}

/// A Raft address `host:port` as a listener; `None` when it has no valid
/// port (it is then left out).
fn listener(addr: &str) -> Option<Listener> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(
        Listener::default()
            .with_name(StrBytes::from_static_str(LISTENER))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use distlog_metadata::Members;
    use kafka_protocol::messages::describe_quorum_request;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    /// A listener as (name, host, port).
    type Listed = (String, String, u16);

    fn status(is_leader: bool) -> QuorumStatus {
        let n = NodeId::new;
        QuorumStatus {
            node_id: n(1),
            leader: Some(if is_leader { n(1) } else { n(2) }),
            term: 3,
            is_leader,
            committed: Some(41),
            last_log_index: Some(42),
            members: Members {
                voters: [
                    (n(1), "h1:7001".into()),
                    (n(2), "h2:7002".into()),
                    (n(3), "h3:7003".into()),
                ]
                .into(),
                learners: [(n(4), "h4:bad".into())].into(),
            },
            matched: if is_leader {
                [(n(1), Some(42)), (n(2), Some(41)), (n(3), None), (n(4), Some(7))].into()
            } else {
                BTreeMap::new()
            },
        }
    }

    fn request(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| describe_quorum_request::PartitionData::default().with_partition_index(*p))
                    .collect(),
            )])
    }

    #[test]
    fn only_the_metadata_partition_is_described() {
        assert!(names_the_quorum(&request(METADATA_TOPIC, &[0])));
        assert!(!names_the_quorum(&request(METADATA_TOPIC, &[1])));
        assert!(!names_the_quorum(&request(METADATA_TOPIC, &[0, 0])));
        assert!(!names_the_quorum(&request("other", &[0])));
        assert!(!names_the_quorum(&DescribeQuorumRequest::default()));
        let resp = partition_errors(&request("other", &[0, 5]), ResponseError::UnknownTopicOrPartition);
        let codes: Vec<(i32, i16)> = resp.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect();
        assert_eq!(codes, vec![(0, 3), (5, 3)]);
        assert_eq!(resp.topics[0].topic_name.0.as_str(), "other");
    }

    #[test]
    fn the_leader_reports_every_member_s_progress() {
        let resp = describe(&status(true), 2, 1000);
        assert_eq!(resp.error_code, 0);
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_id.0, p.leader_epoch, p.high_watermark),
            (0, 1, 3, 42)
        );
        let voters: Vec<(i32, i64, i64)> = p
            .current_voters
            .iter()
            .map(|r| (r.replica_id.0, r.log_end_offset, r.last_fetch_timestamp))
            .collect();
        assert_eq!(voters, vec![(1, 43, 1000), (2, 42, -1), (3, -1, -1)]);
        let observers: Vec<(i32, i64)> = p
            .observers
            .iter()
            .map(|r| (r.replica_id.0, r.log_end_offset))
            .collect();
        assert_eq!(observers, vec![(4, 8)]);
        let nodes: Vec<(i32, Vec<Listed>)> = resp
            .nodes
            .iter()
            .map(|n| {
                (
                    n.node_id.0,
                    n.listeners
                        .iter()
                        .map(|l| (l.name.to_string(), l.host.to_string(), l.port))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(nodes[0], (1, vec![("RAFT".into(), "h1".into(), 7001)]));
        assert_eq!(nodes[3], (4, vec![]), "an address without a port is left out");
    }

    #[test]
    fn a_follower_answers_not_leader() {
        let resp = describe(&status(false), 1, 1000);
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
        assert_eq!(p.leader_id.0, 2);
        assert!(p.current_voters.is_empty());
    }

    #[test]
    fn answers_encode_at_every_version() {
        for v in VERSIONS.0..=VERSIONS.1 {
            for leader in [true, false] {
                let resp = describe(&status(leader), v, 1000);
                let mut buf = BytesMut::new();
                resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
                let back = DescribeQuorumResponse::decode(&mut buf.freeze(), v).expect("decodes");
                assert_eq!(back, resp, "v{v}");
            }
        }
    }

    #[test]
    fn listeners_from_raft_addresses() {
        let l = listener("[::1]:9000").expect("ipv6");
        assert_eq!((l.host.as_str(), l.port), ("::1", 9000));
        assert!(listener("nohost").is_none());
        assert!(listener("h:99999").is_none());
    }
}
