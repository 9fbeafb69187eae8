//! Topics as the broker manages them: the known topic configs (names,
//! types, node defaults, validation), the effective config of a topic
//! (overrides over node defaults), and topic creation — the one code path
//! used by both CreateTopics and Metadata auto-creation.

use std::collections::BTreeMap;

use distlog_metadata::{Command, TopicMeta};
use distlog_storage::log::StreamConfig;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::cluster::Replication;
use crate::config::BrokerConfig;
use crate::error::{metadata_error, topic_name_error};
use crate::Broker;

/// Most partitions one topic may have (guards the metadata store against
/// absurd requests).
pub const MAX_PARTITIONS: u32 = 10_000;

/// Kafka's `ConfigType` codes as used by DescribeConfigs v3+.
pub mod config_type {
    /// STRING.
    pub const STRING: i8 = 2;
    /// INT.
    pub const INT: i8 = 3;
    /// LONG.
    pub const LONG: i8 = 5;
    /// LIST.
    pub const LIST: i8 = 7;
    /// BOOLEAN.
    pub const BOOLEAN: i8 = 1;
}

/// Kafka's `ConfigSource` codes (DescribeConfigs v1+, CreateTopics v5+).
pub mod config_source {
    /// A topic-level override.
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    /// Set in the node's static configuration.
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    /// A built-in default.
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// What values a topic config accepts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer within `[min, max]`, reported with this config type.
    Num { min: i64, max: i64, ty: i8 },
    /// One of a fixed set of strings (the only ones distlog honours).
    Choice(&'static [&'static str], i8),
}

/// The topic configs distlog knows; any other name is INVALID_CONFIG.
const TOPIC_CONFIGS: &[(&str, Kind)] = &[
    ("cleanup.policy", Kind::Choice(&["delete"], config_type::LIST)),
    (
        "compression.type",
        Kind::Choice(&["producer"], config_type::STRING),
    ),
    (
        "distlog.ack.quorum",
        Kind::Num {
            min: 1,
            max: 16,
            ty: config_type::INT,
        },
    ),
    (
        "distlog.ensemble.size",
        Kind::Num {
            min: 1,
            max: 16,
            ty: config_type::INT,
        },
    ),
    (
        "distlog.write.quorum",
        Kind::Num {
            min: 1,
            max: 16,
            ty: config_type::INT,
        },
    ),
    (
        "max.message.bytes",
        Kind::Num {
            min: 0,
            max: i32::MAX as i64,
            ty: config_type::INT,
        },
    ),
    (
        "message.timestamp.type",
        Kind::Choice(&["CreateTime"], config_type::STRING),
    ),
    (
        "min.insync.replicas",
        Kind::Num {
            min: 1,
            max: i32::MAX as i64,
            ty: config_type::INT,
        },
    ),
    (
        "retention.bytes",
        Kind::Num {
            min: -1,
            max: i64::MAX,
            ty: config_type::LONG,
        },
    ),
    (
        "retention.ms",
        Kind::Num {
            min: -1,
            max: i64::MAX,
            ty: config_type::LONG,
        },
    ),
    (
        "segment.bytes",
        Kind::Num {
            min: 14,
            max: i32::MAX as i64,
            ty: config_type::INT,
        },
    ),
    (
        "segment.ms",
        Kind::Num {
            min: 1,
            max: i64::MAX,
            ty: config_type::LONG,
        },
    ),
];

/// The node default of a known topic config.
fn topic_default(cfg: &BrokerConfig, name: &str) -> String {
    match name {
        "cleanup.policy" => "delete".into(),
        "compression.type" => "producer".into(),
        "distlog.ack.quorum" => cfg.default_replication.ack.to_string(),
        "distlog.ensemble.size" => cfg.default_replication.ensemble.to_string(),
        "distlog.write.quorum" => cfg.default_replication.write.to_string(),
        "max.message.bytes" => cfg.message_max_bytes.to_string(),
        "message.timestamp.type" => "CreateTime".into(),
        "min.insync.replicas" => "1".into(),
        "retention.bytes" => "-1".into(),
        "retention.ms" => "604800000".into(),
        "segment.bytes" => cfg.segment_bytes.to_string(),
        "segment.ms" => cfg.segment_ms.to_string(),
        _ => String::new(),
    }
}

/// One entry of a topic's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name.
    pub name: &'static str,
    /// Effective value.
    pub value: String,
    /// Kafka `ConfigSource` ([`config_source`]).
    pub source: i8,
    /// Kafka `ConfigType` ([`config_type`]).
    pub config_type: i8,
}

impl ConfigEntry {
    /// Whether the value is the default (no topic override).
    pub fn is_default(&self) -> bool {
        self.source != config_source::DYNAMIC_TOPIC_CONFIG
    }
}

/// Check topic config overrides: known names, well-formed values, and
/// quorum sizes with 1 ≤ ack ≤ write ≤ ensemble (write < ensemble stripes
/// entries over the ensemble). The error message says which config is
/// wrong and why (answered with INVALID_CONFIG).
///
/// Quorum sizes a topic does not set take the node default `defaults`.
pub fn validate_topic_configs(
    configs: &BTreeMap<String, String>,
    defaults: Replication,
) -> Result<(), String> {
    for (name, value) in configs {
        let kind = TOPIC_CONFIGS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("unknown topic config '{name}'"))?;
        match kind {
            Kind::Num { min, max, .. } => {
                let v: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("config '{name}': '{value}' is not an integer"))?;
                if v < min || v > max {
                    return Err(format!("config '{name}': {v} is outside [{min}, {max}]"));
                }
            }
            Kind::Choice(allowed, _) => {
                if !allowed.contains(&value.as_str()) {
                    return Err(format!(
                        "config '{name}': '{value}' is not supported (allowed: {allowed:?})"
                    ));
                }
            }
        }
    }
    let q = |n: &str, default: u8| {
        configs
            .get(n)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default as i64)
    };
    let (e, w, a) = (
        q("distlog.ensemble.size", defaults.ensemble),
        q("distlog.write.quorum", defaults.write),
        q("distlog.ack.quorum", defaults.ack),
    );
    // E >= Qw >= Qa >= 1 (each is already >= 1 by its range). Qw < E
    // stripes entries over the ensemble (each bookie holds Qw/E of them).
    if !(a <= w && w <= e) {
        return Err(format!(
            "quorum sizes must satisfy distlog.ensemble.size >= distlog.write.quorum >= \
             distlog.ack.quorum >= 1, got ensemble {e}, write {w}, ack {a}"
        ));
    }
    Ok(())
}

/// A topic's effective configuration: every known config, with the
/// override where the topic sets one and the node default otherwise,
/// sorted by name.
pub fn effective_topic_configs(cfg: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .map(|(name, kind)| {
            let ty = match kind {
                Kind::Num { ty, .. } | Kind::Choice(_, ty) => *ty,
            };
            match overrides.get(*name) {
                Some(v) => ConfigEntry {
                    name,
                    value: v.clone(),
                    source: config_source::DYNAMIC_TOPIC_CONFIG,
                    config_type: ty,
                },
                None => ConfigEntry {
                    name,
                    value: topic_default(cfg, name),
                    source: match *name {
                        "segment.bytes" | "segment.ms" | "max.message.bytes" => {
                            config_source::STATIC_BROKER_CONFIG
                        }
                        _ => config_source::DEFAULT_CONFIG,
                    },
                    config_type: ty,
                },
            }
        })
        .collect()
}

/// The stream settings of a topic: its overrides over the node defaults.
pub fn stream_config(cfg: &BrokerConfig, overrides: &BTreeMap<String, String>) -> StreamConfig {
    let num = |name: &str, default: u64| {
        overrides
            .get(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    StreamConfig {
        segment_bytes: num("segment.bytes", cfg.segment_bytes),
        segment_ms: num("segment.ms", cfg.segment_ms),
        ..StreamConfig::default()
    }
}

/// A refused topic operation: the Kafka error and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    /// The Kafka error code.
    pub code: ResponseError,
    /// Human-readable reason.
    pub message: String,
}

impl TopicError {
    fn new(code: ResponseError, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

/// Validate the parts of a topic creation that need no metadata: the name,
/// the partition count (`None` = node default) and the configs. Returns the
/// resolved partition count.
pub fn validate_new_topic(
    cfg: &BrokerConfig,
    name: &str,
    partitions: Option<u32>,
    configs: &BTreeMap<String, String>,
) -> Result<u32, TopicError> {
    if let Some(m) = topic_name_error(name) {
        return Err(TopicError::new(ResponseError::InvalidTopicException, m));
    }
    let partitions = partitions.unwrap_or(cfg.num_partitions);
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(TopicError::new(
            ResponseError::InvalidPartitions,
            format!("number of partitions must be within [1, {MAX_PARTITIONS}], got {partitions}"),
        ));
    }
    validate_topic_configs(configs, cfg.default_replication)
        .map_err(|m| TopicError::new(ResponseError::InvalidConfig, m))?;
    Ok(partitions)
}

impl Broker {
    /// Create a topic (or, with `validate_only`, only check that it could
    /// be created). `partitions: None` uses the node default. Returns the
    /// topic as stored (or as it would be).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: Option<u32>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicMeta, TopicError> {
        let partitions = validate_new_topic(&self.config, name, partitions, &configs)?;
        if self.meta.read(|s| s.topic(name).is_some()) {
            return Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let topic = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
            created_ms: distlog_metadata::now_ms(),
        };
        if validate_only {
            return Ok(topic);
        }
        let cmd = Command::CreateTopic {
            name: topic.name.clone(),
            id: topic.id,
            partitions,
            configs: topic.configs.clone(),
            created_ms: topic.created_ms,
        };
        self.meta
            .write(cmd)
            .await
            .map_err(|e| TopicError::new(metadata_error(&e), e.to_string()))?;
        tracing::info!(topic = name, partitions, id = %topic.id, "topic created");
        Ok(self.meta.read(|s| s.topic(name).cloned()).unwrap_or(topic))
    }

    /// The stream settings of a topic (its overrides over node defaults).
    pub fn stream_config(&self, topic: &TopicMeta) -> StreamConfig {
        stream_config(&self.config, &topic.configs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn known_configs_validate() {
        assert_eq!(validate_topic_configs(&map(&[]), Replication::SINGLE), Ok(()));
        let ok = map(&[
            ("segment.bytes", "1048576"),
            ("segment.ms", "60000"),
            ("retention.ms", "-1"),
            ("retention.bytes", "1000"),
            ("cleanup.policy", "delete"),
            ("max.message.bytes", "2000000"),
            ("message.timestamp.type", "CreateTime"),
            ("compression.type", "producer"),
            ("distlog.ensemble.size", "3"),
            ("distlog.write.quorum", "3"),
            ("distlog.ack.quorum", "2"),
        ]);
        assert_eq!(validate_topic_configs(&ok, Replication::SINGLE), Ok(()));
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        for (k, v, needle) in [
            ("no.such.config", "1", "unknown"),
            ("segment.bytes", "abc", "not an integer"),
            ("segment.bytes", "1", "outside"),
            ("cleanup.policy", "compact", "not supported"),
            ("retention.ms", "-2", "outside"),
            ("distlog.ack.quorum", "2", "got ensemble 1, write 1, ack 2"),
            ("distlog.write.quorum", "2", "got ensemble 1, write 2, ack 1"),
            ("distlog.ack.quorum", "0", "outside [1, 16]"),
            ("distlog.ensemble.size", "17", "outside [1, 16]"),
        ] {
            let err = validate_topic_configs(&map(&[(k, v)]), Replication::SINGLE).expect_err(k);
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }

    #[test]
    fn quorum_sizes_need_ensemble_at_least_write_at_least_ack() {
        let q = |e: &str, w: &str, a: &str| {
            validate_topic_configs(
                &map(&[
                    ("distlog.ensemble.size", e),
                    ("distlog.write.quorum", w),
                    ("distlog.ack.quorum", a),
                ]),
                Replication::CLUSTER,
            )
        };
        // Striped (E > Qw) and unstriped shapes are valid.
        for (e, w, a) in [
            ("3", "2", "2"),
            ("5", "3", "2"),
            ("4", "2", "1"),
            ("3", "3", "2"),
            ("1", "1", "1"),
        ] {
            assert_eq!(q(e, w, a), Ok(()), "{e}/{w}/{a}");
        }
        for (e, w, a) in [("2", "3", "2"), ("3", "2", "3"), ("3", "4", "4"), ("2", "2", "3")] {
            let err = q(e, w, a).expect_err("invalid shape");
            assert_eq!(
                err,
                format!(
                    "quorum sizes must satisfy distlog.ensemble.size >= distlog.write.quorum >= \
                     distlog.ack.quorum >= 1, got ensemble {e}, write {w}, ack {a}"
                )
            );
        }
        // Unset quorums take the node default (3/3/2): write 3 > ensemble 2.
        let err = validate_topic_configs(&map(&[("distlog.ensemble.size", "2")]), Replication::CLUSTER)
            .expect_err("default write quorum exceeds the ensemble");
        assert!(err.contains("got ensemble 2, write 3, ack 2"), "{err}");
    }

    #[test]
    fn effective_configs_mix_overrides_and_defaults() {
        let cfg = BrokerConfig::default();
        let eff = effective_topic_configs(&cfg, &map(&[("segment.ms", "5")]));
        let get = |n: &str| eff.iter().find(|e| e.name == n).cloned().expect("present");
        let seg_ms = get("segment.ms");
        assert_eq!(
            (seg_ms.value.as_str(), seg_ms.source),
            ("5", config_source::DYNAMIC_TOPIC_CONFIG)
        );
        assert!(!seg_ms.is_default());
        let seg_b = get("segment.bytes");
        assert_eq!(seg_b.value, "134217728");
        assert!(seg_b.is_default());
        assert_eq!(get("max.message.bytes").value, "1048588");
        assert_eq!(eff.len(), TOPIC_CONFIGS.len());
    }

    #[test]
    fn stream_config_prefers_overrides() {
        let cfg = BrokerConfig::default();
        let sc = stream_config(&cfg, &map(&[("segment.bytes", "4096")]));
        assert_eq!(sc.segment_bytes, 4096);
        assert_eq!(sc.segment_ms, cfg.segment_ms);
    }

    #[test]
    fn new_topic_validation() {
        let cfg = BrokerConfig::default();
        assert_eq!(validate_new_topic(&cfg, "t", None, &map(&[])), Ok(1));
        assert_eq!(validate_new_topic(&cfg, "t", Some(8), &map(&[])), Ok(8));
        let e = validate_new_topic(&cfg, "bad name", None, &map(&[])).expect_err("invalid");
        assert_eq!(e.code, ResponseError::InvalidTopicException);
        let e = validate_new_topic(&cfg, "t", Some(0), &map(&[])).expect_err("zero");
        assert_eq!(e.code, ResponseError::InvalidPartitions);
        let e = validate_new_topic(&cfg, "t", None, &map(&[("x", "1")])).expect_err("config");
        assert_eq!(e.code, ResponseError::InvalidConfig);
    }
}
