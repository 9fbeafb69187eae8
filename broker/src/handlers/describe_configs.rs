//! DescribeConfigs: a topic's effective configuration (overrides and
//! defaults, with their sources) and this broker's node configuration.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::config::BrokerConfig;
use crate::topics::{config_source, config_type, effective_topic_configs, ConfigEntry};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (1, 4);

/// Kafka's resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Handle a describe-configs request.
pub async fn handle(broker: &Broker, version: i16, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .map(|k| k.into_iter().map(|s| s.as_str().to_string()).collect());
            let name = r.resource_name.as_str().to_string();
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match broker.meta.read(|s| s.topic(&name).map(|t| t.configs.clone())) {
                    Some(overrides) => Ok(effective_topic_configs(&broker.config, &overrides)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic '{name}' does not exist"),
                    )),
                },
                RESOURCE_BROKER => {
                    if name.is_empty() || name == broker.config.node_id.to_string() {
                        Ok(broker_configs(&broker.config))
                    } else {
                        Err((
                            ResponseError::InvalidRequest,
                            format!(
                                "unexpected broker id {name}, this is broker {}",
                                broker.config.node_id
                            ),
                        ))
                    }
                }
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => base.with_error_code(0).with_error_message(None).with_configs(
                    entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|k| k.iter().any(|k| k == e.name)))
                        .map(|e| config_result(version, e))
                        .collect(),
                ),
                Err((e, m)) => base
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(m))),
            }
        })
        .collect();
    DescribeConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}

fn config_result(version: i16, e: ConfigEntry) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(Some(StrBytes::from_string(e.value)))
        .with_read_only(false)
        .with_config_source(e.source)
        .with_is_sensitive(false)
        .with_synonyms(Vec::new());
    if version >= 3 {
        r = r.with_config_type(e.config_type).with_documentation(None);
    }
    r
}

/// This node's configuration under Kafka's broker config names (static,
/// read-only in effect: distlog does not alter broker configs at runtime).
pub fn broker_configs(c: &BrokerConfig) -> Vec<ConfigEntry> {
    let listener = format!("PLAINTEXT://{}", c.kafka_listen);
    let advertised = format!(
        "PLAINTEXT://{}:{}",
        c.advertised_kafka_host, c.advertised_kafka_port
    );
    let entry = |name: &'static str, value: String, ty: i8| ConfigEntry {
        name,
        value,
        source: config_source::STATIC_BROKER_CONFIG,
        config_type: ty,
    };
    let mut v = vec![
        entry("advertised.listeners", advertised, config_type::STRING),
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            config_type::BOOLEAN,
        ),
        entry("broker.id", c.node_id.to_string(), config_type::INT),
        entry("default.replication.factor", "1".into(), config_type::INT),
        entry("listeners", listener, config_type::STRING),
        entry("log.dirs", c.data_dir.display().to_string(), config_type::STRING),
        entry("log.roll.ms", c.segment_ms.to_string(), config_type::LONG),
        entry("log.segment.bytes", c.segment_bytes.to_string(), config_type::INT),
        entry(
            "message.max.bytes",
            c.message_max_bytes.to_string(),
            config_type::INT,
        ),
        entry("node.id", c.node_id.to_string(), config_type::INT),
        entry("num.partitions", c.num_partitions.to_string(), config_type::INT),
        entry(
            "socket.request.max.bytes",
            c.max_request_bytes.to_string(),
            config_type::INT,
        ),
    ];
    v.sort_by_key(|e| e.name);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_configs_reflect_the_node() {
        let c = BrokerConfig {
            node_id: 3,
            ..BrokerConfig::default()
        };
        let v = broker_configs(&c);
        let get = |n: &str| v.iter().find(|e| e.name == n).map(|e| e.value.clone());
        assert_eq!(get("broker.id").as_deref(), Some("3"));
        assert_eq!(get("num.partitions").as_deref(), Some("1"));
        assert_eq!(get("socket.request.max.bytes").as_deref(), Some("104857600"));
        assert_eq!(
            get("advertised.listeners").as_deref(),
            Some("PLAINTEXT://127.0.0.1:9092")
        );
        assert!(v.iter().all(|e| e.source == config_source::STATIC_BROKER_CONFIG));
    }
}
