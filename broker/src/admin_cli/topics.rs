//! `distlog admin topics …`: list and describe (Metadata, DescribeConfigs),
//! create (CreateTopics), delete (DeleteTopics), alter-config
//! (IncrementalAlterConfigs) and add-partitions (CreatePartitions).

use clap::Subcommand;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::error::{check, code_name, hint, AdminError, Result};
use super::output::{table, Report};
use super::parse_key_value;
use super::routing::{topic_name, Cluster};
use super::topic_configs::{alter_config, configs_of, ConfigEntry, RESOURCE_TOPIC};

/// How long the broker may take for a topic operation (the request's
/// `timeout_ms`).
const OPERATION_TIMEOUT_MS: i32 = 30_000;

/// `distlog admin topics` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TopicsCommand {
    /// Every topic with its partition count.
    List,
    /// Partitions (leader, epoch, replicas) and configs of topics (all when
    /// none is named).
    Describe {
        /// Topic names.
        topics: Vec<String>,
    },
    /// Create a topic.
    Create {
        /// Topic name.
        topic: String,
        /// Partition count (the broker's `num.partitions` when omitted).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (the broker's default when omitted).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config, KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Only check that the broker would create it.
        #[arg(long)]
        validate_only: bool,
    },
    /// Delete topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Set or delete topic configs (IncrementalAlterConfigs).
    AlterConfig {
        /// Topic name.
        topic: String,
        /// Set KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Delete KEY, back to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        /// Only check that the broker would accept it.
        #[arg(long)]
        validate_only: bool,
    },
    /// Raise a topic's partition count (CreatePartitions).
    AddPartitions {
        /// Topic name.
        topic: String,
        /// The new total partition count.
        #[arg(long)]
        total: i32,
        /// Only check that the broker would accept it.
        #[arg(long)]
        validate_only: bool,
    },
}

/// Runs a `topics` subcommand.
pub async fn run(cmd: &TopicsCommand, cluster: &mut Cluster) -> Result<Report> {
    match cmd {
        TopicsCommand::List => list(cluster).await,
        TopicsCommand::Describe { topics } => describe(cluster, topics).await,
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } => {
            create(
                cluster,
                topic,
                *partitions,
                *replication_factor,
                configs,
                *validate_only,
            )
            .await
        }
        TopicsCommand::Delete { topics } => delete(cluster, topics).await,
        TopicsCommand::AlterConfig {
            topic,
            set,
            delete,
            validate_only,
        } => alter_config(cluster, topic, set, delete, *validate_only).await,
        TopicsCommand::AddPartitions {
            topic,
            total,
            validate_only,
        } => add_partitions(cluster, topic, *total, *validate_only).await,
    }
}

/// A topic in `topics list --json`.
#[derive(Debug, Serialize)]
pub struct ListedTopic {
    /// Topic name.
    pub name: String,
    /// Topic id (UUID).
    pub topic_id: String,
    /// Partition count.
    pub partitions: usize,
    /// Replicas of its first partition.
    pub replication_factor: usize,
    /// Whether it is an internal topic.
    pub internal: bool,
}

fn name_of(t: &MetadataResponseTopic) -> String {
    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default()
}

async fn list(cluster: &mut Cluster) -> Result<Report> {
    let meta = cluster.metadata(None).await?;
    let mut topics: Vec<ListedTopic> = meta
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .map(|t| ListedTopic {
            name: name_of(t),
            topic_id: t.topic_id.to_string(),
            partitions: t.partitions.len(),
            replication_factor: t.partitions.first().map_or(0, |p| p.replica_nodes.len()),
            internal: t.is_internal,
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.partitions.to_string(),
                t.replication_factor.to_string(),
            ]
        })
        .collect();
    let text = table(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"], &rows);
    Report::new(&serde_json::json!({ "topics": topics }), text)
}

/// A partition in `topics describe --json`.
#[derive(Debug, Serialize)]
pub struct DescribedPartition {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id (-1: none).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
}

/// A topic in `topics describe --json`.
#[derive(Debug, Serialize)]
pub struct DescribedTopic {
    /// Topic name.
    pub name: String,
    /// Topic id (UUID).
    pub topic_id: String,
    /// Whether it is internal.
    pub internal: bool,
    /// Partitions, by index.
    pub partitions: Vec<DescribedPartition>,
    /// Configs, by name.
    pub configs: Vec<ConfigEntry>,
}

async fn describe(cluster: &mut Cluster, names: &[String]) -> Result<Report> {
    let meta = cluster
        .metadata(if names.is_empty() { None } else { Some(names) })
        .await?;
    let mut topics = Vec::new();
    for t in &meta.topics {
        let name = name_of(t);
        check(|| format!("describe topic '{name}'"), t.error_code, None)?;
        let mut partitions: Vec<DescribedPartition> = t
            .partitions
            .iter()
            .map(|p| DescribedPartition {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        topics.push(DescribedTopic {
            name,
            topic_id: t.topic_id.to_string(),
            internal: t.is_internal,
            partitions,
            configs: Vec::new(),
        });
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if !topics.is_empty() {
        let request = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(StrBytes::from_string(t.name.clone()))
                        .with_configuration_keys(None)
                })
                .collect(),
        );
        let (_, answer) = cluster.any().send(&request).await?;
        for t in &mut topics {
            t.configs = configs_of(&answer, &t.name)?;
        }
    }
    let text = describe_text(&topics);
    Report::new(&serde_json::json!({ "topics": topics }), text)
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The human form of `topics describe`.
pub fn describe_text(topics: &[DescribedTopic]) -> String {
    let mut out = String::new();
    for (i, t) in topics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "Topic: {}  TopicId: {}  PartitionCount: {}  ReplicationFactor: {}\n",
            t.name,
            t.topic_id,
            t.partitions.len(),
            t.partitions.first().map_or(0, |p| p.replicas.len())
        ));
        let rows: Vec<Vec<String>> = t
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.partition.to_string(),
                    p.leader.to_string(),
                    p.leader_epoch.to_string(),
                    join_ids(&p.replicas),
                    join_ids(&p.isr),
                ]
            })
            .collect();
        out.push_str(&table(
            &["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR"],
            &rows,
        ));
        let rows: Vec<Vec<String>> = t
            .configs
            .iter()
            .map(|c| {
                let value = if c.sensitive {
                    "(sensitive)".to_string()
                } else {
                    c.value.clone().unwrap_or_else(|| "(null)".to_string())
                };
                vec![c.name.clone(), value, c.source.clone(), c.read_only.to_string()]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["CONFIG", "VALUE", "SOURCE", "READ-ONLY"], &rows));
    }
    out
}

/// The CreateTopics request of `topics create`.
pub fn create_request(
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    validate_only: bool,
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            )])
        .with_timeout_ms(OPERATION_TIMEOUT_MS)
        .with_validate_only(validate_only)
}

async fn create(
    cluster: &mut Cluster,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    validate_only: bool,
) -> Result<Report> {
    if partitions == 0 || partitions < -1 {
        return Err(AdminError::usage(
            "--partitions",
            "give a positive partition count",
        ));
    }
    if replication_factor == 0 || replication_factor < -1 {
        return Err(AdminError::usage(
            "--replication-factor",
            "give a positive replication factor",
        ));
    }
    let request = create_request(topic, partitions, replication_factor, configs, validate_only);
    let (version, answer) = cluster.controller().await?.send(&request).await?;
    let result = answer
        .topics
        .iter()
        .find(|t| &*t.name.0 == topic)
        .ok_or_else(|| AdminError::Protocol {
            addr: String::new(),
            api: "CreateTopics".to_string(),
            reason: format!("no result for topic '{topic}'"),
        })?;
    check(
        || format!("create topic '{topic}'"),
        result.error_code,
        result.error_message.as_deref(),
    )?;
    // v5+ answers the resulting counts; older versions only what was asked.
    let (partitions, replication_factor) = if version >= 5 {
        (result.num_partitions, result.replication_factor)
    } else {
        (partitions, replication_factor)
    };
    let topic_id = (version >= 7).then(|| result.topic_id.to_string());
    let doc = serde_json::json!({
        "topic": topic,
        "topic_id": topic_id,
        "partitions": partitions,
        "replication_factor": replication_factor,
        "validate_only": validate_only,
    });
    let verb = if validate_only { "Would create" } else { "Created" };
    let text =
        format!("{verb} topic {topic} ({partitions} partitions, replication factor {replication_factor}).\n");
    Report::new(&doc, text)
}

/// The outcome of one topic of `topics delete`.
#[derive(Debug, Serialize, PartialEq)]
pub struct DeleteOutcome {
    /// Topic name.
    pub topic: String,
    /// Kafka's error name, `null` when deleted.
    pub error: Option<String>,
    /// The broker's message, if any.
    pub error_message: Option<String>,
}

/// The DeleteTopics request of `topics delete` at `version` (v6 names
/// topics in `topics`, older versions in `topic_names`).
pub fn delete_request(topics: &[String], version: i16) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(OPERATION_TIMEOUT_MS);
    if version >= 6 {
        request.with_topics(
            topics
                .iter()
                .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                .collect(),
        )
    } else {
        request.with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
    }
}

/// The per-topic outcomes of a DeleteTopics answer, in the asked order.
pub fn delete_outcomes(topics: &[String], answer: &DeleteTopicsResponse) -> Vec<DeleteOutcome> {
    topics
        .iter()
        .map(|t| {
            let r = answer
                .responses
                .iter()
                .find(|r| r.name.as_ref().is_some_and(|n| &*n.0 == t.as_str()));
            match r {
                Some(r) if r.error_code == 0 => DeleteOutcome {
                    topic: t.clone(),
                    error: None,
                    error_message: None,
                },
                Some(r) => DeleteOutcome {
                    topic: t.clone(),
                    error: Some(code_name(r.error_code)),
                    error_message: r
                        .error_message
                        .as_ref()
                        .map(ToString::to_string)
                        .or_else(|| Some(hint(r.error_code).to_string())),
                },
                None => DeleteOutcome {
                    topic: t.clone(),
                    error: Some("NO_ANSWER".to_string()),
                    error_message: Some("the broker did not answer for this topic; retry".to_string()),
                },
            }
        })
        .collect()
}

async fn delete(cluster: &mut Cluster, topics: &[String]) -> Result<Report> {
    let conn = cluster.controller().await?;
    let version = conn.version_for(kafka_protocol::messages::ApiKey::DeleteTopics)?;
    let (_, answer) = conn.send(&delete_request(topics, version)).await?;
    let outcomes = delete_outcomes(topics, &answer);
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let result = match (&o.error, &o.error_message) {
                (None, _) => "deleted".to_string(),
                (Some(e), Some(m)) => format!("{e}: {m}"),
                (Some(e), None) => e.clone(),
            };
            vec![o.topic.clone(), result]
        })
        .collect();
    let text = table(&["TOPIC", "RESULT"], &rows);
    Ok(Report::new(&serde_json::json!({ "topics": outcomes }), text)?.with_failures(failed, topics.len()))
}

/// The CreatePartitions request of `topics add-partitions`.
pub fn add_partitions_request(topic: &str, total: i32, validate_only: bool) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(total)
            .with_assignments(None)])
        .with_timeout_ms(OPERATION_TIMEOUT_MS)
        .with_validate_only(validate_only)
}

async fn add_partitions(
    cluster: &mut Cluster,
    topic: &str,
    total: i32,
    validate_only: bool,
) -> Result<Report> {
    if total <= 0 {
        return Err(AdminError::usage(
            "--total",
            "give the new total partition count (a positive number)",
        ));
    }
    let request = add_partitions_request(topic, total, validate_only);
    let (_, answer) = cluster.controller().await?.send(&request).await?;
    let result = answer
        .results
        .iter()
        .find(|r| &*r.name.0 == topic)
        .ok_or_else(|| AdminError::Protocol {
            addr: String::new(),
            api: "CreatePartitions".to_string(),
            reason: format!("no result for topic '{topic}'"),
        })?;
    check(
        || format!("add partitions to topic '{topic}'"),
        result.error_code,
        result.error_message.as_deref(),
    )?;
    let doc = serde_json::json!({
        "topic": topic,
        "partitions": total,
        "validate_only": validate_only,
    });
    let text = if validate_only {
        format!("Topic {topic} would have {total} partitions.\n")
    } else {
        format!("Topic {topic} now has {total} partitions.\n")
    };
    Report::new(&doc, text)
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
