//! CreatePartitions: raise a topic's partition count (new, empty streams),
//! honouring `validate_only`.
//!
//! Refusals follow Kafka's controller: an unknown topic is
//! UNKNOWN_TOPIC_OR_PARTITION (topic deletion is one metadata step here, as
//! in KRaft, so there is no "queued for deletion" state); a count that is
//! not an increase (equal, smaller, zero or negative) or above
//! [`MAX_PARTITIONS`] is INVALID_PARTITIONS; a topic named twice is
//! INVALID_REQUEST. Manual `assignments` name replica lists, and distlog
//! places no replicas per partition (copies live on bookies, ownership is
//! the controller's): an assignment is accepted only when it lists exactly
//! the broker that will own the partition anyway (its preferred owner, see
//! [`crate::preferred`]; the node itself on a single node), otherwise it is
//! INVALID_REPLICA_ASSIGNMENT with a message — never silently ignored.
//! The new streams get owners from the controller (in a cluster) and are
//! opened on the `PartitionsCreated` event.

use std::collections::HashSet;

use distlog_metadata::{ApplyError, Command, MetadataError, NodeId, StreamId};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::kafka_broker_id;
use crate::error::metadata_error;
use crate::topics::{TopicError, MAX_PARTITIONS};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 3);

/// Handle a create-partitions request: one result per distinct topic, in
/// request order, then one INVALID_REQUEST result per topic named more
/// than once (as Kafka answers duplicates).
pub async fn handle(
    broker: &Broker,
    _version: i16,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let mut duplicates: Vec<TopicName> = Vec::new();
    for t in &req.topics {
        if !seen.insert(t.name.0.as_str()) && !duplicates.contains(&t.name) {
            duplicates.push(t.name.clone());
        }
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        if duplicates.contains(&topic.name) {
            continue;
        }
        let outcome = create_one(broker, topic, req.validate_only).await;
        results.push(result(topic.name.clone(), outcome));
    }
    for name in duplicates {
        let refusal = refuse(ResponseError::InvalidRequest, "Duplicate topic name.".into());
        results.push(result(name, refusal));
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}

fn refuse(code: ResponseError, message: String) -> Result<(), TopicError> {
    Err(TopicError { code, message })
}

fn result(name: TopicName, outcome: Result<(), TopicError>) -> CreatePartitionsTopicResult {
    let r = CreatePartitionsTopicResult::default().with_name(name);
    match outcome {
        Ok(()) => r.with_error_code(0).with_error_message(None),
        Err(e) => r
            .with_error_code(e.code.code())
            .with_error_message(Some(StrBytes::from_string(e.message))),
    }
}

/// Validate one topic's request and (unless `validate_only`) apply it.
async fn create_one(
    broker: &Broker,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), TopicError> {
    let name = t.name.0.as_str();
    let Some((id, current)) = broker.meta.read(|s| s.topic(name).map(|t| (t.id, t.partitions))) else {
        return refuse(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        );
    };
    let count = check_count(name, current, t.count)?;
    if let Some(assignments) = &t.assignments {
        let single = (!broker.config.is_cluster()).then_some(broker.config.node_id);
        let owners: Vec<Option<NodeId>> = broker.meta.read(|s| {
            let candidates = crate::preferred::candidate_brokers(s);
            (current..count)
                .map(|p| {
                    let stream = StreamId {
                        topic_id: id,
                        partition: p,
                    };
                    single.or_else(|| crate::preferred::preferred_owner(stream, &candidates))
                })
                .collect()
        });
        let given: Vec<Vec<i32>> = assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        check_assignments(current, &owners, &given)?;
    }
    if validate_only {
        return Ok(());
    }
    let cmd = Command::CreatePartitions {
        name: name.to_string(),
        id,
        partitions: count,
    };
    match broker.meta.write(cmd).await {
        Ok(_) => {
            tracing::info!(topic = name, from = current, to = count, "partitions created");
            Ok(())
        }
        // Raced with another request that grew the topic.
        Err(MetadataError::Rejected(ApplyError::Invalid(m))) => refuse(ResponseError::InvalidPartitions, m),
        // Raced with a delete (and maybe a re-create under the name).
        Err(MetadataError::Rejected(ApplyError::UnknownTopic(_))) => refuse(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        ),
        Err(e) => refuse(metadata_error(&e), e.to_string()),
    }
}

/// The new partition count, if `requested` is an increase over `current`
/// within [`MAX_PARTITIONS`] (Kafka's messages).
fn check_count(name: &str, current: u32, requested: i32) -> Result<u32, TopicError> {
    let invalid = |message: String| {
        Err(TopicError {
            code: ResponseError::InvalidPartitions,
            message,
        })
    };
    if i64::from(requested) == i64::from(current) {
        return invalid(format!("Topic already has {current} partition(s)."));
    }
    if i64::from(requested) < i64::from(current) {
        return invalid(format!(
            "The topic {name} currently has {current} partition(s); {requested} would not be an increase."
        ));
    }
    let count = requested as u32;
    if count > MAX_PARTITIONS {
        return invalid(format!(
            "number of partitions must be within [1, {MAX_PARTITIONS}], got {count}"
        ));
    }
    Ok(count)
}

/// Manual assignments: one per new partition, each naming exactly the
/// broker that will own that partition (`owners`, from partition
/// `current` on).
fn check_assignments(current: u32, owners: &[Option<NodeId>], given: &[Vec<i32>]) -> Result<(), TopicError> {
    let invalid = |message: String| {
        Err(TopicError {
            code: ResponseError::InvalidReplicaAssignment,
            message,
        })
    };
    if given.len() != owners.len() {
        return invalid(format!(
            "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
            owners.len(),
            given.len()
        ));
    }
    for (i, (owner, brokers)) in owners.iter().zip(given).enumerate() {
        let partition = current as usize + i;
        let Some(owner) = owner.map(|o| kafka_broker_id(o).0) else {
            return invalid(format!(
                "partition {partition} cannot be assigned: no broker is registered"
            ));
        };
        if brokers.as_slice() != [owner] {
            return invalid(format!(
                "distlog places no replicas per partition (copies live on bookies and the controller \
                 assigns owners); partition {partition} can only be assigned to broker {owner}, its \
                 preferred owner, but {brokers:?} was given"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: std::fmt::Debug>(r: Result<T, TopicError>) -> (ResponseError, String) {
        let e = r.expect_err("refused");
        (e.code, e.message)
    }

    #[test]
    fn counts_must_increase() {
        assert_eq!(check_count("t", 2, 5).expect("ok"), 5);
        assert_eq!(
            code(check_count("t", 2, 2)),
            (
                ResponseError::InvalidPartitions,
                "Topic already has 2 partition(s).".into()
            )
        );
        for n in [1, 0, -3, i32::MIN] {
            assert_eq!(
                code(check_count("t", 2, n)),
                (
                    ResponseError::InvalidPartitions,
                    format!("The topic t currently has 2 partition(s); {n} would not be an increase.")
                )
            );
        }
        let (c, m) = code(check_count("t", 2, MAX_PARTITIONS as i32 + 1));
        assert_eq!(c, ResponseError::InvalidPartitions);
        assert!(m.contains("10000"), "{m}");
    }

    #[test]
    fn assignments_must_name_the_owner_to_be() {
        let owners = [Some(NodeId::new(2)), Some(NodeId::new(3))];
        assert!(check_assignments(1, &owners, &[vec![2], vec![3]]).is_ok());
        let (c, m) = code(check_assignments(1, &owners, &[vec![2]]));
        assert_eq!(c, ResponseError::InvalidReplicaAssignment);
        assert_eq!(
            m,
            "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
        );
        for wrong in [
            vec![vec![2], vec![1]],
            vec![vec![2], vec![3, 1]],
            vec![vec![2], vec![]],
        ] {
            let (c, m) = code(check_assignments(1, &owners, &wrong));
            assert_eq!(c, ResponseError::InvalidReplicaAssignment);
            assert!(m.contains("partition 2 can only be assigned to broker 3"), "{m}");
        }
        let (c, _) = code(check_assignments(0, &[None], &[vec![1]]));
        assert_eq!(c, ResponseError::InvalidReplicaAssignment);
    }
}
