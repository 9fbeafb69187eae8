//! CreateTopics: validated topic creation (names, partitions, replication
//! factor, configs), honouring `validate_only`.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::topics::{effective_topic_configs, TopicError};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (2, 7);

/// Handle a create-topics request.
pub async fn handle(broker: &Broker, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.as_str()))
        .map(|t| t.name.0.as_str().to_string())
        .collect();
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.as_str().to_string();
        let outcome = if duplicates.contains(&name) {
            Err(TopicError {
                code: ResponseError::InvalidRequest,
                message: format!("topic '{name}' appears more than once in the request"),
            })
        } else {
            create_one(broker, &topic, req.validate_only).await
        };
        results.push(result_entry(broker, version, topic.name, outcome));
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(results)
}

/// Check the request's partition/replica fields and create (or validate).
async fn create_one(
    broker: &Broker,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<distlog_metadata::TopicMeta, TopicError> {
    let err = |code, message: String| Err(TopicError { code, message });
    let node = broker.config.node_id as i32;
    let partitions = if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return err(
                ResponseError::InvalidRequest,
                "both manual assignments and a partition count or replication factor were given".into(),
            );
        }
        for (i, a) in t.assignments.iter().enumerate() {
            if a.partition_index != i as i32 || a.broker_ids.iter().map(|b| b.0).ne([node]) {
                return err(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "partition {} must be assigned to broker {node} only",
                        a.partition_index
                    ),
                );
            }
        }
        Some(t.assignments.len() as u32)
    } else {
        match t.num_partitions {
            -1 => None,
            n if n >= 1 => Some(n as u32),
            n => {
                return err(
                    ResponseError::InvalidPartitions,
                    format!("number of partitions {n} is below 1"),
                )
            }
        }
    };
    if t.assignments.is_empty() && !(t.replication_factor == -1 || t.replication_factor == 1) {
        return err(
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is not available: this cluster has 1 broker",
                t.replication_factor
            ),
        );
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return err(
                ResponseError::InvalidConfig,
                format!("config '{}' has a null value", c.name.as_str()),
            );
        };
        configs.insert(c.name.as_str().to_string(), value.as_str().to_string());
    }
    broker
        .create_topic(t.name.0.as_str(), partitions, configs, validate_only)
        .await
}

fn result_entry(
    broker: &Broker,
    version: i16,
    name: TopicName,
    outcome: Result<distlog_metadata::TopicMeta, TopicError>,
) -> CreatableTopicResult {
    let base = CreatableTopicResult::default().with_name(name);
    match outcome {
        Ok(topic) => {
            let mut r = base
                .with_error_code(0)
                .with_error_message(None)
                .with_topic_id(topic.id);
            if version >= 5 {
                let configs = effective_topic_configs(&broker.config, &topic.configs)
                    .into_iter()
                    .map(|c| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(c.name))
                            .with_value(Some(StrBytes::from_string(c.value)))
                            .with_read_only(false)
                            .with_config_source(c.source)
                            .with_is_sensitive(false)
                    })
                    .collect();
                r = r
                    .with_num_partitions(topic.partitions as i32)
                    .with_replication_factor(1)
                    .with_configs(Some(configs));
            }
            r
        }
        Err(e) => {
            let mut r = base.with_error_code(e.code.code());
            r.error_message = Some(StrBytes::from_string(e.message));
            if version >= 5 {
                r.topic_config_error_code = 0;
                r.configs = Some(Vec::new());
            }
            r
        }
    }
}
