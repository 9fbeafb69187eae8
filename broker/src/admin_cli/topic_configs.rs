//! Topic configs for `distlog admin topics`: reading them (DescribeConfigs,
//! for `topics describe`) and changing them (IncrementalAlterConfigs, for
//! `topics alter-config`).

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{DescribeConfigsResponse, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::error::{check, AdminError, Result};
use super::output::Report;
use super::routing::Cluster;

/// Kafka's resource type of a topic in the config APIs.
pub const RESOURCE_TOPIC: i8 = 2;

/// A config entry in `topics describe --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: String,
    /// Value (`null` when sensitive or unset).
    pub value: Option<String>,
    /// Kafka's config source name (`DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`…).
    pub source: String,
    /// Whether it cannot be altered.
    pub read_only: bool,
    /// Whether the value is hidden.
    pub sensitive: bool,
}

/// Kafka's name of a DescribeConfigs `config_source`.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// The configs of topic `name` from a DescribeConfigs answer, sorted.
pub fn configs_of(answer: &DescribeConfigsResponse, name: &str) -> Result<Vec<ConfigEntry>> {
    let result = answer
        .results
        .iter()
        .find(|r| r.resource_type == RESOURCE_TOPIC && &*r.resource_name == name)
        .ok_or_else(|| AdminError::Protocol {
            addr: String::new(),
            api: "DescribeConfigs".to_string(),
            reason: format!("no result for topic '{name}'"),
        })?;
    check(
        || format!("describe the configs of topic '{name}'"),
        result.error_code,
        result.error_message.as_deref(),
    )?;
    let mut configs: Vec<ConfigEntry> = result
        .configs
        .iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.as_ref().map(ToString::to_string),
            source: config_source_name(c.config_source).to_string(),
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(configs)
}

/// The IncrementalAlterConfigs request of `topics alter-config`: SET (0)
/// for each `--set`, DELETE (1) for each `--delete`.
pub fn alter_request(
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    configs.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(1)
            .with_value(None)
    }));
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs)])
        .with_validate_only(validate_only)
}

/// Runs `topics alter-config`.
pub async fn alter_config(
    cluster: &mut Cluster,
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
    validate_only: bool,
) -> Result<Report> {
    if set.is_empty() && delete.is_empty() {
        return Err(AdminError::usage(
            "alter-config",
            "give at least one --set KEY=VALUE or --delete KEY",
        ));
    }
    let request = alter_request(topic, set, delete, validate_only);
    let (_, answer) = cluster.any().send(&request).await?;
    let result = answer
        .responses
        .iter()
        .find(|r| r.resource_type == RESOURCE_TOPIC && &*r.resource_name == topic)
        .ok_or_else(|| AdminError::Protocol {
            addr: String::new(),
            api: "IncrementalAlterConfigs".to_string(),
            reason: format!("no result for topic '{topic}'"),
        })?;
    check(
        || format!("alter the configs of topic '{topic}'"),
        result.error_code,
        result.error_message.as_deref(),
    )?;
    let set_map: BTreeMap<&str, &str> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let doc = serde_json::json!({
        "topic": topic,
        "set": set_map,
        "deleted": delete,
        "validate_only": validate_only,
    });
    let mut text = format!(
        "{} the configs of topic {topic}:\n",
        if validate_only { "Would alter" } else { "Altered" }
    );
    for (k, v) in &set_map {
        text.push_str(&format!("  set {k}={v}\n"));
    }
    for k in delete {
        text.push_str(&format!("  deleted {k}\n"));
    }
    Report::new(&doc, text)
}
