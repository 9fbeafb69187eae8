//! DescribeConfigs: a topic's effective configuration (overrides and
//! defaults, with their sources: topic override, this broker's or the
//! cluster-wide dynamic broker config, static node setting, built-in
//! default) and the broker configs — this broker's (resource "N", every
//! config with a truthful `read_only`) or the cluster-wide dynamic ones
//! (resource "", only those set, as Kafka answers).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker_config::{broker_configs, cluster_default_configs, DynamicDefaults};
use crate::config::BrokerConfig;
use crate::topic_config::{effective_topic_configs, ConfigEntry};
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (1, 4);

/// Kafka's resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Optional parts of each config entry a request asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    /// `include_synonyms` (v1+): where each value may come from.
    pub synonyms: bool,
    /// `include_documentation` (v3+): what each config does.
    pub documentation: bool,
}

impl Include {
    /// Neither synonyms nor documentation.
    pub const NONE: Include = Include {
        synonyms: false,
        documentation: false,
    };
}

/// Handle a describe-configs request.
pub async fn handle(broker: &Broker, version: i16, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let include = Include {
        synonyms: req.include_synonyms,
        documentation: req.include_documentation,
    };
    let dynamic = DynamicDefaults::read(&broker.meta, broker.config.node_id);
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let overrides = (r.resource_type == RESOURCE_TOPIC)
                .then(|| {
                    broker
                        .meta
                        .read(|s| s.topic(r.resource_name.as_str()).map(|t| t.configs.clone()))
                })
                .flatten();
            describe(&broker.config, &dynamic, version, include, r, overrides)
        })
        .collect();
    DescribeConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}

/// Describe one resource. `dynamic` is this broker's dynamic broker
/// configs; `topic_overrides` is the topic's overrides when the resource is
/// an existing topic, `None` otherwise.
pub fn describe(
    cfg: &BrokerConfig,
    dynamic: &DynamicDefaults,
    version: i16,
    include: Include,
    r: DescribeConfigsResource,
    topic_overrides: Option<BTreeMap<String, String>>,
) -> DescribeConfigsResult {
    let keys: Option<Vec<String>> = r
        .configuration_keys
        .map(|k| k.into_iter().map(|s| s.as_str().to_string()).collect());
    let name = r.resource_name.as_str().to_string();
    let base = DescribeConfigsResult::default()
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name);
    let entries = match r.resource_type {
        RESOURCE_TOPIC => match topic_overrides {
            Some(overrides) => Ok(effective_topic_configs(cfg, dynamic, &overrides)),
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )),
        },
        RESOURCE_BROKER if name.is_empty() => Ok(cluster_default_configs(dynamic)),
        RESOURCE_BROKER if name == cfg.node_id.to_string() => Ok(broker_configs(cfg, dynamic)),
        RESOURCE_BROKER => Err((
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                cfg.node_id
            ),
        )),
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
                .map(|e| config_result(version, include, e))
                .collect(),
        ),
        Err((e, m)) => base
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(m))),
    }
}

fn config_result(version: i16, include: Include, e: ConfigEntry) -> DescribeConfigsResourceResult {
    let synonyms = match include.synonyms {
        true => e
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(s.name))
                    .with_value(Some(StrBytes::from_string(s.value)))
                    .with_source(s.source)
            })
            .collect(),
        false => Vec::new(),
    };
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(e.name))
        .with_value(Some(StrBytes::from_string(e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms);
    if version >= 3 {
        let doc = e.documentation.filter(|_| include.documentation);
        r = r
            .with_config_type(e.config_type)
            .with_documentation(doc.map(StrBytes::from_static_str));
    }
    r
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;
    use crate::topic_config::{config_source, config_type};

    fn resource(ty: i8, name: &'static str, keys: Option<Vec<&'static str>>) -> DescribeConfigsResource {
        DescribeConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(StrBytes::from_static_str(name))
            .with_configuration_keys(keys.map(|k| k.into_iter().map(StrBytes::from_static_str).collect()))
    }

    #[test]
    fn topic_configs_with_sources_and_key_filter() {
        let cfg = BrokerConfig::default();
        let overrides: BTreeMap<String, String> = [("retention.ms".to_string(), "1000".to_string())].into();
        let r = describe(
            &cfg,
            &DynamicDefaults::default(),
            4,
            Include::NONE,
            resource(RESOURCE_TOPIC, "t", None),
            Some(overrides.clone()),
        );
        assert_eq!(r.error_code, 0);
        let ret = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .expect("listed");
        assert_eq!(ret.value.as_ref().map(|v| v.as_str()), Some("1000"));
        assert_eq!(ret.config_source, config_source::DYNAMIC_TOPIC_CONFIG);
        assert_eq!(ret.config_type, config_type::LONG);
        let seg = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "segment.bytes")
            .expect("listed");
        assert_eq!(seg.value.as_ref().map(|v| v.as_str()), Some("134217728"));
        assert_ne!(seg.config_source, config_source::DYNAMIC_TOPIC_CONFIG);

        let r = describe(
            &cfg,
            &DynamicDefaults::default(),
            1,
            Include::NONE,
            resource(RESOURCE_TOPIC, "t", Some(vec!["segment.ms"])),
            Some(overrides),
        );
        let names: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["segment.ms"]);
    }

    #[test]
    fn unknown_topic_and_foreign_broker_are_errors() {
        let cfg = BrokerConfig::default();
        let r = describe(
            &cfg,
            &DynamicDefaults::default(),
            2,
            Include::NONE,
            resource(RESOURCE_TOPIC, "nope", None),
            None,
        );
        assert_eq!(r.error_code, ResponseError::UnknownTopicOrPartition.code());
        assert!(r.configs.is_empty());
        let r = describe(
            &cfg,
            &DynamicDefaults::default(),
            2,
            Include::NONE,
            resource(RESOURCE_BROKER, "9", None),
            None,
        );
        assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
        let r = describe(
            &cfg,
            &DynamicDefaults::default(),
            2,
            Include::NONE,
            resource(RESOURCE_BROKER, "1", None),
            None,
        );
        assert_eq!(r.error_code, 0);
        assert!(r.configs.iter().any(|c| c.name.as_str() == "broker.id"));
    }

    #[test]
    fn responses_encode_at_every_version() {
        let cfg = BrokerConfig::default();
        for v in VERSIONS.0..=VERSIONS.1 {
            let results = vec![
                describe(
                    &cfg,
                    &DynamicDefaults::default(),
                    v,
                    Include::NONE,
                    resource(RESOURCE_TOPIC, "t", None),
                    Some(BTreeMap::new()),
                ),
                describe(
                    &cfg,
                    &DynamicDefaults::default(),
                    v,
                    Include::NONE,
                    resource(RESOURCE_BROKER, "", None),
                    None,
                ),
                describe(
                    &cfg,
                    &DynamicDefaults::default(),
                    v,
                    Include::NONE,
                    resource(RESOURCE_TOPIC, "x", None),
                    None,
                ),
            ];
            let resp = DescribeConfigsResponse::default().with_results(results);
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = DescribeConfigsResponse::decode(&mut buf.freeze(), v).expect("decodes");
            assert_eq!(back.results.len(), 3, "v{v}");
            assert_eq!(back.results[2].error_code, 3, "v{v}");
        }
    }

    #[test]
    fn synonyms_and_documentation_when_asked_for() {
        let cfg = BrokerConfig::default();
        let all = Include {
            synonyms: true,
            documentation: true,
        };
        let overrides: BTreeMap<String, String> = [("segment.bytes".to_string(), "4096".to_string())].into();
        let r = describe(
            &cfg,
            &DynamicDefaults::default(),
            4,
            all,
            resource(RESOURCE_TOPIC, "t", None),
            Some(overrides.clone()),
        );
        let seg = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "segment.bytes")
            .expect("listed");
        let syn: Vec<(&str, Option<&str>, i8)> = seg
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
            .collect();
        assert_eq!(
            syn,
            vec![
                ("segment.bytes", Some("4096"), config_source::DYNAMIC_TOPIC_CONFIG),
                (
                    "log.segment.bytes",
                    Some("134217728"),
                    config_source::STATIC_BROKER_CONFIG
                ),
            ]
        );
        assert_eq!(seg.config_type, config_type::INT);
        assert!(seg.documentation.as_deref().is_some_and(|d| !d.is_empty()));
        // Not asked for: none.
        let r = describe(
            &cfg,
            &DynamicDefaults::default(),
            4,
            Include::NONE,
            resource(RESOURCE_TOPIC, "t", None),
            Some(overrides.clone()),
        );
        assert!(r
            .configs
            .iter()
            .all(|c| c.synonyms.is_empty() && c.documentation.is_none()));
        // Every version encodes with both asked for.
        for v in VERSIONS.0..=VERSIONS.1 {
            let r = describe(
                &cfg,
                &DynamicDefaults::default(),
                v,
                all,
                resource(RESOURCE_TOPIC, "t", None),
                Some(overrides.clone()),
            );
            let resp = DescribeConfigsResponse::default().with_results(vec![r]);
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = DescribeConfigsResponse::decode(&mut buf.freeze(), v).expect("decodes");
            let seg = back.results[0]
                .configs
                .iter()
                .find(|c| c.name.as_str() == "segment.bytes")
                .expect("listed");
            assert_eq!(seg.synonyms.len(), 2, "v{v}");
            if v >= 3 {
                assert!(
                    seg.documentation.as_deref().is_some_and(|d| !d.is_empty()),
                    "v{v}"
                );
            }
        }
    }

    #[test]
    fn broker_configs_reflect_the_node() {
        let c = BrokerConfig {
            node_id: distlog_metadata::NodeId::new(3),
            ..BrokerConfig::default()
        };
        let v = broker_configs(&c, &DynamicDefaults::default());
        let get = |n: &str| v.iter().find(|e| e.name == n).map(|e| e.value.clone());
        assert_eq!(get("broker.id").as_deref(), Some("3"));
        assert_eq!(get("num.partitions").as_deref(), Some("1"));
        assert_eq!(get("socket.request.max.bytes").as_deref(), Some("104857600"));
        assert_eq!(
            get("advertised.listeners").as_deref(),
            Some("PLAINTEXT://127.0.0.1:9092")
        );
        assert!(v.iter().all(|e| e.source == config_source::STATIC_BROKER_CONFIG));
        let read_only = |n: &str| v.iter().find(|e| e.name == n).map(|e| e.read_only);
        assert_eq!(read_only("advertised.listeners"), Some(true));
        assert_eq!(read_only("broker.id"), Some(true));
        assert_eq!(read_only("log.retention.ms"), Some(false));
        assert_eq!(read_only("message.max.bytes"), Some(false));
    }
}
