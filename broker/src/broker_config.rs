//! Broker configs as Kafka's admin API sees them: the node's settings
//! under Kafka's broker config names, and the few that may change at
//! runtime (Kafka's KIP-226 dynamic broker configs) — set cluster-wide
//! (broker resource "") or for one broker (resource "N"), stored in
//! metadata (`MetaState.broker_configs`), and used as the default of every
//! topic that sets none of the matching topic config.
//!
//! A dynamic broker config is exactly a broker-level synonym of a topic
//! config (`log.retention.ms` of `retention.ms`, …): its values are
//! validated by that topic config's row in [`crate::topic_config`], and
//! storage applies a change to open streams at once (the namespace
//! recomputes their settings on `BrokerConfigsChanged`). Every other broker
//! config is read-only (`read_only = true` in DescribeConfigs, refused by
//! AlterConfigs).

use std::collections::BTreeMap;

use distlog_metadata::{MetaState, MetadataStore, NodeId};

use crate::config::BrokerConfig;
use crate::listeners::KafkaListener;
use crate::topic_config::{self, config_source, ConfigEntry, ConfigSynonym, ConfigType};

/// One broker config distlog reports: its Kafka name and type, the node's
/// value, and, for a dynamic one, the topic config it supplies the default
/// of.
#[derive(Debug, Clone, Copy)]
pub struct BrokerConfigKey {
    /// Kafka's broker config name.
    pub name: &'static str,
    /// How clients should read the value.
    pub ty: ConfigType,
    /// The node's own (static) value: a flag, or what its setup implies.
    pub value: fn(&BrokerConfig) -> String,
    /// For a dynamic config, the topic config whose row validates its
    /// values and whose default it supplies; `None`: read-only.
    pub topic: Option<&'static str>,
    /// What the config does (DescribeConfigs v3+ `documentation`).
    pub doc: &'static str,
}

impl BrokerConfigKey {
    /// Whether AlterConfigs may change it.
    pub fn dynamic(&self) -> bool {
        self.topic.is_some()
    }
}

fn listeners(c: &BrokerConfig, f: fn(&KafkaListener) -> String) -> String {
    c.listeners.iter().map(f).collect::<Vec<_>>().join(",")
}

/// Every broker config distlog reports, sorted by name.
pub const BROKER_CONFIGS: &[BrokerConfigKey] = &[
    BrokerConfigKey {
        name: "advertised.listeners",
        ty: ConfigType::String,
        value: |c| listeners(c, KafkaListener::advertised_url),
        topic: None,
        doc: "Addresses clients are told to reach this broker at (--listeners / --advertised-*).",
    },
    BrokerConfigKey {
        name: "auto.create.topics.enable",
        ty: ConfigType::Boolean,
        value: |c| c.auto_create_topics.to_string(),
        topic: None,
        doc: "Whether Metadata requests create unknown topics (--auto-create-topics).",
    },
    BrokerConfigKey {
        name: "broker.id",
        ty: ConfigType::Int,
        value: |c| c.node_id.to_string(),
        topic: None,
        doc: "This node's id (--node-id).",
    },
    BrokerConfigKey {
        name: "default.replication.factor",
        ty: ConfigType::Int,
        value: |_| "1".into(),
        topic: None,
        doc: "Reported for compatibility: replication is set per topic by the distlog.* quorum configs.",
    },
    BrokerConfigKey {
        name: "listener.security.protocol.map",
        ty: ConfigType::String,
        // Every listener speaks PLAINTEXT.
        value: |c| listeners(c, |l| format!("{}:PLAINTEXT", l.name)),
        topic: None,
        doc: "Security protocol of each listener (all PLAINTEXT).",
    },
    BrokerConfigKey {
        name: "listeners",
        ty: ConfigType::String,
        value: |c| listeners(c, KafkaListener::bind_url),
        topic: None,
        doc: "Addresses this broker listens on (--listeners).",
    },
    BrokerConfigKey {
        name: "log.dirs",
        ty: ConfigType::String,
        value: |c| c.data_dir.display().to_string(),
        topic: None,
        doc: "This node's data directory (--data-dir).",
    },
    BrokerConfigKey {
        name: "log.retention.bytes",
        ty: ConfigType::Long,
        value: |c| c.log_retention_bytes.to_string(),
        topic: Some(topic_config::keys::RETENTION_BYTES),
        doc: "Default retention.bytes of topics (--log-retention-bytes); dynamic.",
    },
    BrokerConfigKey {
        name: "log.retention.check.interval.ms",
        ty: ConfigType::Long,
        value: |c| c.log_retention_check_interval_ms.to_string(),
        topic: None,
        doc: "How often retention is checked (--log-retention-check-interval-ms).",
    },
    BrokerConfigKey {
        name: "log.retention.ms",
        ty: ConfigType::Long,
        value: |c| c.log_retention_ms.to_string(),
        topic: Some(topic_config::keys::RETENTION_MS),
        doc: "Default retention.ms of topics (--log-retention-ms); dynamic.",
    },
    BrokerConfigKey {
        name: "log.roll.ms",
        ty: ConfigType::Long,
        value: |c| c.segment_ms.to_string(),
        topic: Some(topic_config::keys::SEGMENT_MS),
        doc: "Default segment.ms of topics (--segment-ms); dynamic.",
    },
    BrokerConfigKey {
        name: "log.segment.bytes",
        ty: ConfigType::Int,
        value: |c| c.segment_bytes.to_string(),
        topic: Some(topic_config::keys::SEGMENT_BYTES),
        doc: "Default segment.bytes of topics (--segment-bytes); dynamic.",
    },
    BrokerConfigKey {
        name: "message.max.bytes",
        ty: ConfigType::Int,
        value: |c| c.message_max_bytes.to_string(),
        topic: Some(topic_config::keys::MAX_MESSAGE_BYTES),
        doc: "Default max.message.bytes of topics (--message-max-bytes); dynamic.",
    },
    BrokerConfigKey {
        name: "node.id",
        ty: ConfigType::Int,
        value: |c| c.node_id.to_string(),
        topic: None,
        doc: "This node's id (--node-id).",
    },
    BrokerConfigKey {
        name: "num.partitions",
        ty: ConfigType::Int,
        value: |c| c.num_partitions.to_string(),
        topic: None,
        doc: "Partitions of a topic created without a count (--num-partitions).",
    },
    BrokerConfigKey {
        name: "socket.request.max.bytes",
        ty: ConfigType::Int,
        value: |c| c.max_request_bytes.to_string(),
        topic: None,
        doc: "Largest request accepted (--max-request-bytes).",
    },
];

/// The row of a broker config distlog reports.
pub fn broker_key(name: &str) -> Option<&'static BrokerConfigKey> {
    BROKER_CONFIGS.iter().find(|k| k.name == name)
}

/// The dynamic broker configs that apply on one node: its own values and
/// the cluster-wide ones (a snapshot of `MetaState.broker_configs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicDefaults {
    /// Values set for this broker (source DYNAMIC_BROKER_CONFIG).
    pub broker: BTreeMap<String, String>,
    /// Cluster-wide values (source DYNAMIC_DEFAULT_BROKER_CONFIG).
    pub cluster: BTreeMap<String, String>,
}

impl DynamicDefaults {
    /// The dynamic broker configs of node `node` in `state`.
    pub fn of(state: &MetaState, node: NodeId) -> Self {
        DynamicDefaults {
            broker: state.broker_configs.of(Some(node)).cloned().unwrap_or_default(),
            cluster: state.broker_configs.cluster.clone(),
        }
    }

    /// The dynamic broker configs of node `node` in the local replica.
    pub fn read(meta: &MetadataStore, node: NodeId) -> Self {
        meta.read(|s| Self::of(s, node))
    }

    /// The values of dynamic broker config `name` in force here, most
    /// specific first: this broker's, then the cluster-wide one. Empty for
    /// a name that is not dynamic (a stored value of it is never used).
    pub fn layers(&self, name: &'static str) -> impl Iterator<Item = ConfigSynonym> + '_ {
        let dynamic = broker_key(name).is_some_and(BrokerConfigKey::dynamic);
        [
            (&self.broker, config_source::DYNAMIC_BROKER_CONFIG),
            (&self.cluster, config_source::DYNAMIC_DEFAULT_BROKER_CONFIG),
        ]
        .into_iter()
        .filter(move |_| dynamic)
        .filter_map(move |(map, source)| {
            map.get(name).map(|v| ConfigSynonym {
                name,
                value: v.clone(),
                source,
            })
        })
    }
}

/// This broker's `message.max.bytes`: its dynamic value, else the node's.
pub fn message_max_bytes(cfg: &BrokerConfig, meta: &MetadataStore) -> usize {
    let dynamic = DynamicDefaults::read(meta, cfg.node_id);
    topic_config::max_message_bytes(cfg, &dynamic, &BTreeMap::new())
}

/// Check a whole set of dynamic broker configs (as AlterConfigs would
/// store it): every name a dynamic broker config, every value valid for
/// the topic config it supplies the default of. The message names the
/// config and the reason (Kafka answers INVALID_REQUEST for these, see
/// KAFKA-13609).
pub fn validate_broker_configs(configs: &BTreeMap<String, String>) -> Result<(), String> {
    let read_only: Vec<&str> = configs
        .keys()
        .filter_map(|k| broker_key(k).filter(|r| !r.dynamic()).map(|r| r.name))
        .collect();
    if !read_only.is_empty() {
        return Err(format!(
            "Cannot update these configs dynamically: {}",
            read_only.join(", ")
        ));
    }
    for (name, value) in configs {
        let topic = broker_key(name)
            .and_then(|r| r.topic)
            .and_then(topic_config::key)
            .ok_or_else(|| {
                format!(
                    "unknown broker config '{name}' (dynamic broker configs: {})",
                    dynamic_names().join(", ")
                )
            })?;
        topic.validator.check(name, value)?;
    }
    Ok(())
}

fn dynamic_names() -> Vec<&'static str> {
    BROKER_CONFIGS
        .iter()
        .filter(|k| k.dynamic())
        .map(|k| k.name)
        .collect()
}

/// Every broker config of this node (DescribeConfigs of broker resource
/// "N"): the value in force and where it comes from (this broker's dynamic
/// value, the cluster-wide one, or the node's static one), synonyms most
/// specific first, and `read_only` unless AlterConfigs accepts it.
pub fn broker_configs(cfg: &BrokerConfig, dynamic: &DynamicDefaults) -> Vec<ConfigEntry> {
    BROKER_CONFIGS
        .iter()
        .map(|k| {
            let mut synonyms: Vec<ConfigSynonym> = dynamic.layers(k.name).collect();
            synonyms.push(ConfigSynonym {
                name: k.name,
                value: (k.value)(cfg),
                source: config_source::STATIC_BROKER_CONFIG,
            });
            let effective = &synonyms[0];
            ConfigEntry {
                name: k.name,
                value: effective.value.clone(),
                source: effective.source,
                config_type: k.ty.code(),
                read_only: !k.dynamic(),
                documentation: Some(k.doc),
                synonyms,
            }
        })
        .collect()
}

/// The cluster-wide dynamic broker configs (DescribeConfigs of broker
/// resource "", as Kafka answers it: only the values set at that level).
pub fn cluster_default_configs(dynamic: &DynamicDefaults) -> Vec<ConfigEntry> {
    BROKER_CONFIGS
        .iter()
        .filter(|k| k.dynamic())
        .filter_map(|k| {
            let v = dynamic.cluster.get(k.name)?;
            let syn = ConfigSynonym {
                name: k.name,
                value: v.clone(),
                source: config_source::DYNAMIC_DEFAULT_BROKER_CONFIG,
            };
            Some(ConfigEntry {
                name: k.name,
                value: v.clone(),
                source: syn.source,
                config_type: k.ty.code(),
                read_only: false,
                documentation: Some(k.doc),
                synonyms: vec![syn],
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "broker_config_tests.rs"]
mod tests;
