//! ElectLeaders: move partitions to their preferred owner (Kafka's
//! preferred leader election).
//!
//! A partition's preferred owner is computed (see [`crate::preferred`]);
//! the move is the controller's own ownership change, an `AcquireStream`
//! compare-and-set on the stream's owner epoch: the new epoch fences the
//! old owner (its writer can no longer add or seal segments) and the new
//! owner recovers and seals the old owner's in-progress ledger before it
//! writes (docs/architecture.md, "fencing"). The controller never moves a
//! stream off its preferred owner for balance, so the result stays.
//!
//! Per partition, as Kafka's controller answers: already on the preferred
//! owner → ELECTION_NOT_NEEDED; preferred owner not live →
//! PREFERRED_LEADER_NOT_AVAILABLE; unknown topic or partition →
//! UNKNOWN_TOPIC_OR_PARTITION. Unclean election (type 1): a partition with
//! a live owner needs none (ELECTION_NOT_NEEDED, as Kafka); one without is
//! ELIGIBLE_LEADERS_NOT_AVAILABLE with a message — distlog has no unclean
//! election, the controller gives such a stream a live owner itself,
//! without losing data. A null partition list means every partition.

use distlog_metadata::{ApplyError, Command, MetaState, MetadataError, NodeId, StreamId};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::error::metadata_error;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 2);

/// Kafka's `ElectionType.PREFERRED`.
const PREFERRED: i8 = 0;
/// Kafka's `ElectionType.UNCLEAN`.
const UNCLEAN: i8 = 1;
/// How often a move that lost a compare-and-set race is retried.
const ATTEMPTS: usize = 3;

/// A partition's refusal: the Kafka error and its message.
type Refusal = (ResponseError, String);

/// Handle an elect-leaders request.
pub async fn handle(broker: &Broker, version: i16, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let election_type = if version >= 1 {
        req.election_type
    } else {
        PREFERRED
    };
    let resp = ElectLeadersResponse::default().with_throttle_time_ms(0);
    if election_type != PREFERRED && election_type != UNCLEAN {
        return resp.with_error_code(ResponseError::InvalidRequest.code());
    }
    let wanted: Vec<(TopicName, Vec<i32>)> = match req.topic_partitions {
        Some(list) => list.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => broker.meta.read(|s| {
            s.topics
                .values()
                .map(|t| {
                    let name = TopicName(StrBytes::from_string(t.name.clone()));
                    (name, (0..t.partitions).map(|p| p as i32).collect())
                })
                .collect()
        }),
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (topic, partitions) in wanted {
        let mut partition_result = Vec::with_capacity(partitions.len());
        for p in partitions {
            let outcome = elect_one(broker, topic.0.as_str(), p, election_type).await;
            let r = PartitionResult::default().with_partition_id(p);
            partition_result.push(match outcome {
                Ok(()) => r.with_error_code(0).with_error_message(None),
                Err((e, m)) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(m))),
            });
        }
        results.push(
            ReplicaElectionResult::default()
                .with_topic(topic)
                .with_partition_result(partition_result),
        );
    }
    resp.with_error_code(0).with_replica_election_results(results)
}

/// What an election of one partition should do, decided from metadata.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Move `stream` to broker `to`, expecting this owner epoch.
    Move {
        stream: StreamId,
        to: NodeId,
        expected_epoch: u64,
    },
    /// Nothing to do or refused.
    Answer(Result<(), Refusal>),
}

/// Decide one partition's election. `single` is this node when it runs
/// alone (it owns every partition, which is therefore always on its
/// preferred owner).
fn decide(
    s: &MetaState,
    topic: &str,
    partition: i32,
    election_type: i8,
    single: Option<NodeId>,
    now_ms: u64,
) -> Decision {
    let unknown = |m: String| Decision::Answer(Err((ResponseError::UnknownTopicOrPartition, m)));
    let Some(t) = s.topic(topic) else {
        return unknown(format!("No such topic as {topic}"));
    };
    let Some(stream) = u32::try_from(partition)
        .ok()
        .filter(|p| *p < t.partitions)
        .and_then(|p| s.stream(&t.stream(p)))
    else {
        return unknown(format!("No such partition as {topic}-{partition}"));
    };
    let live = |b: NodeId| {
        s.brokers
            .get(&b)
            .is_some_and(|i| i.is_broker() && i.is_live(now_ms))
    };
    let not_needed = |m: String| Decision::Answer(Err((ResponseError::ElectionNotNeeded, m)));
    if single.is_some() {
        return not_needed(format!(
            "{topic}-{partition} is already led by its preferred broker (this single node)"
        ));
    }
    if election_type == UNCLEAN {
        return match stream.owner.filter(|o| live(*o)) {
            Some(o) => not_needed(format!(
                "{topic}-{partition} already has a live leader, broker {o}"
            )),
            None => Decision::Answer(Err((
                ResponseError::EligibleLeadersNotAvailable,
                format!(
                    "distlog has no unclean leader election: every live broker is eligible, and the \
                     controller gives {topic}-{partition} a live owner itself without losing data"
                ),
            ))),
        };
    }
    let Some(preferred) = crate::preferred::preferred_in(s, stream.id) else {
        return Decision::Answer(Err((
            ResponseError::PreferredLeaderNotAvailable,
            "no broker is registered".into(),
        )));
    };
    if stream.owner == Some(preferred) {
        return not_needed(format!(
            "{topic}-{partition} is already led by its preferred broker {preferred}"
        ));
    }
    if !live(preferred) {
        return Decision::Answer(Err((
            ResponseError::PreferredLeaderNotAvailable,
            format!("the preferred broker {preferred} of {topic}-{partition} is not live"),
        )));
    }
    Decision::Move {
        stream: stream.id,
        to: preferred,
        expected_epoch: stream.owner_epoch,
    }
}

/// Elect one partition's preferred owner.
async fn elect_one(broker: &Broker, topic: &str, partition: i32, election_type: i8) -> Result<(), Refusal> {
    let single = (!broker.config.is_cluster()).then_some(broker.config.node_id);
    for attempt in 1..=ATTEMPTS {
        let now = distlog_metadata::now_ms();
        let decision = broker
            .meta
            .read(|s| decide(s, topic, partition, election_type, single, now));
        let Decision::Move {
            stream,
            to,
            expected_epoch,
        } = decision
        else {
            return match decision {
                Decision::Answer(a) => a,
                Decision::Move { .. } => Ok(()),
            };
        };
        match broker
            .meta
            .write(Command::AcquireStream {
                stream,
                owner: to,
                expected_epoch: Some(expected_epoch),
            })
            .await
        {
            Ok(_) => {
                crate::metrics::PREFERRED_ELECTIONS.inc();
                tracing::info!(%stream, topic, partition, to = to.get(), "preferred leader elected");
                return Ok(());
            }
            // The owner changed meanwhile (the controller, or another
            // election): decide again from the new state.
            Err(MetadataError::Rejected(ApplyError::EpochMismatch { .. })) if attempt < ATTEMPTS => {}
            Err(e) => return Err((metadata_error(&e), e.to_string())),
        }
    }
    Err((
        ResponseError::NotLeaderOrFollower,
        format!("the owner of {topic}-{partition} kept changing; retry"),
    ))
}

#[cfg(test)]
mod tests {
    use distlog_metadata::state_machine::apply;
    use distlog_metadata::BrokerInfo;

    use super::*;

    fn state() -> MetaState {
        let mut s = MetaState::default();
        for (id, lease) in [(1, u64::MAX), (2, u64::MAX), (3, 10)] {
            let cmd = Command::RegisterBroker(BrokerInfo {
                id: NodeId::new(id),
                kafka_host: "h".into(),
                kafka_port: 9092,
                listeners: Default::default(),
                rack: None,
                bookie_addr: None,
                lease_expires_ms: lease,
            });
            apply(&mut s, &cmd).0.expect("register");
        }
        // Topic id 3: preferred owners are brokers 1, 2, 3 for partitions 0, 1, 2.
        let create = Command::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::from_u128(3),
            partitions: 3,
            configs: Default::default(),
            created_ms: 0,
        };
        apply(&mut s, &create).0.expect("topic");
        for (p, owner) in [(0, 2), (1, 2), (2, 1)] {
            let cmd = Command::AcquireStream {
                stream: StreamId {
                    topic_id: uuid::Uuid::from_u128(3),
                    partition: p,
                },
                owner: NodeId::new(owner),
                expected_epoch: None,
            };
            apply(&mut s, &cmd).0.expect("acquire");
        }
        s
    }

    fn code(d: Decision) -> Option<ResponseError> {
        match d {
            Decision::Answer(Err((e, _))) => Some(e),
            _ => None,
        }
    }

    #[test]
    fn preferred_elections() {
        let s = state();
        let now = 100;
        assert_eq!(
            decide(&s, "t", 0, PREFERRED, None, now),
            Decision::Move {
                stream: StreamId {
                    topic_id: uuid::Uuid::from_u128(3),
                    partition: 0
                },
                to: NodeId::new(1),
                expected_epoch: 1
            }
        );
        assert_eq!(
            code(decide(&s, "t", 1, PREFERRED, None, now)),
            Some(ResponseError::ElectionNotNeeded)
        );
        // Broker 3's lease expired at 10.
        assert_eq!(
            code(decide(&s, "t", 2, PREFERRED, None, now)),
            Some(ResponseError::PreferredLeaderNotAvailable)
        );
        for (topic, p) in [("t", 3), ("t", -1), ("u", 0)] {
            assert_eq!(
                code(decide(&s, topic, p, PREFERRED, None, now)),
                Some(ResponseError::UnknownTopicOrPartition)
            );
        }
        // A single node is always on the preferred broker.
        assert_eq!(
            code(decide(&s, "t", 0, PREFERRED, Some(NodeId::new(1)), now)),
            Some(ResponseError::ElectionNotNeeded)
        );
    }

    #[test]
    fn unclean_elections_are_never_needed_or_possible() {
        let s = state();
        assert_eq!(
            code(decide(&s, "t", 0, UNCLEAN, None, 100)),
            Some(ResponseError::ElectionNotNeeded)
        );
        // A partition whose owner (broker 3) lost its lease.
        let mut s2 = s.clone();
        let cmd = Command::AcquireStream {
            stream: StreamId {
                topic_id: uuid::Uuid::from_u128(3),
                partition: 0,
            },
            owner: NodeId::new(3),
            expected_epoch: None,
        };
        apply(&mut s2, &cmd).0.expect("acquire");
        assert_eq!(
            code(decide(&s2, "t", 0, UNCLEAN, None, 100)),
            Some(ResponseError::EligibleLeadersNotAvailable)
        );
    }

    #[test]
    fn responses_encode_at_every_version() {
        use bytes::BytesMut;
        use kafka_protocol::protocol::{Decodable, Encodable};
        for v in VERSIONS.0..=VERSIONS.1 {
            let resp = ElectLeadersResponse::default().with_replica_election_results(vec![
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_result(vec![PartitionResult::default()
                        .with_partition_id(1)
                        .with_error_code(84)
                        .with_error_message(Some(StrBytes::from_static_str("x")))]),
            ]);
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = ElectLeadersResponse::decode(&mut buf.freeze(), v).expect("decodes");
            assert_eq!(
                back.replica_election_results[0].partition_result[0].error_code,
                84
            );
        }
    }
}
