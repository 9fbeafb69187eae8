//! The one owner of topic configuration: a typed table with a row per
//! config key (name, type, validator, default, broker synonym, whether it
//! may change on a live topic, documentation).
//!
//! Everything that reads or checks a topic config goes through this
//! table: CreateTopics validation, the effective configs reported by
//! CreateTopics v5+ and DescribeConfigs (sources, synonyms, types,
//! documentation), the produce size limit, and the typed
//! [`StreamConfig`] handed to storage when a stream opens and whenever a
//! topic config or a dynamic broker default changes. AlterConfigs and
//! IncrementalAlterConfigs validate against the same rows, and dynamic
//! broker configs (`crate::broker_config`) are validated by the row they
//! supply the default of.
//!
//! Every topic config Kafka 4.x defines has a row (the two
//! `message.timestamp.{before,after}.max.ms` aside, still to come). A value
//! distlog does not honour is refused with INVALID_CONFIG, never accepted
//! and ignored: some rows accept any well-formed value because the config
//! cannot change distlog's behaviour (e.g. `flush.messages`: every entry is
//! fsync'd before it is acknowledged; the compaction settings: compaction
//! cannot be enabled), others accept only the value distlog implements
//! ([`Validator::Only`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::{MetadataStore, TopicMeta};
use distlog_storage::log::{Retention, StreamConfig, StreamConfigFn};

use crate::broker_config::DynamicDefaults;
use crate::cluster::Replication;
use crate::config::BrokerConfig;

/// Kafka's `ConfigType` (DescribeConfigs v3+): how clients should read a
/// config's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean = 1,
    /// Free text.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 16-bit integer.
    Short = 4,
    /// A 64-bit integer.
    Long = 5,
    /// A floating-point number.
    Double = 6,
    /// A comma-separated list.
    List = 7,
    /// A Java class name.
    Class = 8,
    /// A secret (never reported).
    Password = 9,
}

impl ConfigType {
    /// The code sent on the wire.
    pub const fn code(self) -> i8 {
        self as i8
    }
}

/// Kafka's `ConfigType` codes as used by DescribeConfigs v3+.
pub mod config_type {
    use super::ConfigType;
    /// STRING.
    pub const STRING: i8 = ConfigType::String.code();
    /// INT.
    pub const INT: i8 = ConfigType::Int.code();
    /// LONG.
    pub const LONG: i8 = ConfigType::Long.code();
    /// LIST.
    pub const LIST: i8 = ConfigType::List.code();
    /// BOOLEAN.
    pub const BOOLEAN: i8 = ConfigType::Boolean.code();
}

/// Kafka's `ConfigSource` codes (DescribeConfigs v1+, CreateTopics v5+).
pub mod config_source {
    /// A topic-level override.
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    /// A dynamic broker config set for this broker (AlterConfigs on
    /// broker resource "N").
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    /// A dynamic broker config set cluster-wide (AlterConfigs on broker
    /// resource "").
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    /// Set in the node's static configuration.
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    /// A built-in default.
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// The names of the topic configs code refers to directly.
pub mod keys {
    /// Cleanup policy (only `delete`).
    pub const CLEANUP_POLICY: &str = "cleanup.policy";
    /// Codec of stored batches (`producer` keeps the producer's).
    pub const COMPRESSION_TYPE: &str = "compression.type";
    /// Ack quorum Qa.
    pub const ACK_QUORUM: &str = "distlog.ack.quorum";
    /// Ensemble size E.
    pub const ENSEMBLE_SIZE: &str = "distlog.ensemble.size";
    /// Write quorum Qw.
    pub const WRITE_QUORUM: &str = "distlog.write.quorum";
    /// Largest record batch a producer may send.
    pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
    /// How far in the future a CreateTime timestamp may be (KIP-937).
    pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
    /// How far in the past a CreateTime timestamp may be (KIP-937).
    pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
    /// Which timestamp records carry (`CreateTime` or `LogAppendTime`).
    pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
    /// Kafka's in-sync replica minimum (accepted, not used).
    pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
    /// Retention by size.
    pub const RETENTION_BYTES: &str = "retention.bytes";
    /// Retention by time.
    pub const RETENTION_MS: &str = "retention.ms";
    /// Segment roll size.
    pub const SEGMENT_BYTES: &str = "segment.bytes";
    /// Segment roll time.
    pub const SEGMENT_MS: &str = "segment.ms";
}

/// What values a topic config accepts.
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    /// An integer within `[min, max]`.
    Range {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// One of a fixed set of strings (the only ones distlog honours).
    OneOf(&'static [&'static str]),
    /// An integer within `[min, max]`, or exactly `or` (gzip's -1 default).
    RangeOr {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
        /// The one value accepted outside the range.
        or: i64,
    },
    /// `true` or `false` (any case, as Kafka parses booleans).
    Bool,
    /// A number within `[0, 1]`.
    Fraction,
    /// Kafka's throttled-replica list: `*`, or `partition:broker` pairs
    /// separated by commas (possibly none).
    ReplicaList,
    /// A value `base` accepts, of which distlog honours only `value`: any
    /// other well-formed value is refused with the reason `why`.
    Only {
        /// What a well-formed value is.
        base: &'static Validator,
        /// The one value distlog honours (compared as a number or boolean
        /// when `base` reads one).
        value: &'static str,
        /// Why no other value is honoured.
        why: &'static str,
    },
}

/// Where a topic config's value comes from when the topic sets none.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// A built-in value, the same on every node (source `DEFAULT_CONFIG`).
    Fixed(&'static str),
    /// A node setting (a command-line flag or its default), reported as
    /// the node's static configuration (source `STATIC_BROKER_CONFIG`).
    Node(fn(&BrokerConfig) -> String),
    /// A value the node derives from its setup (e.g. single node or
    /// cluster), reported as a built-in default (source `DEFAULT_CONFIG`).
    Derived(fn(&BrokerConfig) -> String),
}

/// One row of the table: everything distlog knows about a topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigKey {
    /// The config's name, as clients send it.
    pub name: &'static str,
    /// How clients should read the value.
    pub ty: ConfigType,
    /// What values are accepted (checked on every write of the config).
    pub validator: Validator,
    /// The value of a topic that sets none.
    pub default: DefaultValue,
    /// The node-level config that supplies the default (reported as a
    /// synonym), when Kafka has one.
    pub broker_synonym: Option<&'static str>,
    /// Whether the config may change on an existing topic (AlterConfigs);
    /// changes to stream settings apply from the stream's next open.
    pub dynamic: bool,
    /// What the config does (DescribeConfigs v3+ `documentation`).
    pub doc: &'static str,
}

#[path = "topic_config_table.rs"]
mod table;
pub use table::TOPIC_CONFIGS;

/// The row of a known topic config.
pub fn key(name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIGS.iter().find(|k| k.name == name)
}

impl TopicConfigKey {
    /// Check a value against the row's validator; the error says which
    /// config is wrong and why.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        self.validator.check(self.name, value)
    }

    /// Whether the config holds a comma-separated list (the only kind
    /// IncrementalAlterConfigs may APPEND to or SUBTRACT from).
    pub fn is_list(&self) -> bool {
        self.ty == ConfigType::List
    }

    /// The value of a topic that does not set this config.
    pub fn default_value(&self, cfg: &BrokerConfig) -> String {
        match self.default {
            DefaultValue::Fixed(v) => v.to_string(),
            DefaultValue::Node(f) | DefaultValue::Derived(f) => f(cfg),
        }
    }

    /// The `ConfigSource` reported for the default value.
    pub fn default_source(&self) -> i8 {
        match self.default {
            DefaultValue::Node(_) => config_source::STATIC_BROKER_CONFIG,
            DefaultValue::Fixed(_) | DefaultValue::Derived(_) => config_source::DEFAULT_CONFIG,
        }
    }

    /// Where the value of a topic that does not set this config comes
    /// from, most specific first: the dynamic broker config of this broker,
    /// the cluster-wide dynamic one (each when set and valid, under the
    /// broker-level name), then the node's static value or the built-in
    /// default. The first is the one in force.
    pub fn default_synonyms(&self, cfg: &BrokerConfig, dynamic: &DynamicDefaults) -> Vec<ConfigSynonym> {
        let mut v: Vec<ConfigSynonym> = self
            .broker_synonym
            .map(|b| {
                dynamic
                    .layers(b)
                    .filter(|s| self.validate(&s.value).is_ok())
                    .collect()
            })
            .unwrap_or_default();
        v.push(ConfigSynonym {
            name: self.broker_synonym.unwrap_or(self.name),
            value: self.default_value(cfg),
            source: self.default_source(),
        });
        v
    }

    /// The value of a topic that does not set this config, dynamic broker
    /// configs included.
    pub fn effective_default(&self, cfg: &BrokerConfig, dynamic: &DynamicDefaults) -> String {
        self.default_synonyms(cfg, dynamic)
            .into_iter()
            .next()
            .map_or_else(|| self.default_value(cfg), |s| s.value)
    }

    /// The topic's valid override of this config, if it sets one.
    fn valid_override<'a>(&self, overrides: &'a BTreeMap<String, String>) -> Option<&'a str> {
        overrides
            .get(self.name)
            .map(String::as_str)
            .filter(|v| self.validate(v).is_ok())
    }

    /// The effective integer value: a valid override, else the default
    /// (dynamic broker configs included; a node flag too large for an i64
    /// counts as i64::MAX).
    fn int(
        &self,
        cfg: &BrokerConfig,
        dynamic: &DynamicDefaults,
        overrides: &BTreeMap<String, String>,
    ) -> i64 {
        self.valid_override(overrides)
            .and_then(parse_int)
            .or_else(|| parse_int(&self.effective_default(cfg, dynamic)))
            .unwrap_or(i64::MAX)
    }
}

impl Validator {
    /// Check `value` of config `name`; the error says which config is
    /// wrong and why.
    pub fn check(&self, name: &str, value: &str) -> Result<(), String> {
        let int = || parse_int(value).ok_or_else(|| format!("config '{name}': '{value}' is not an integer"));
        match *self {
            Validator::Range { min, max } => {
                let v = int()?;
                if v < min || v > max {
                    return Err(format!("config '{name}': {v} is outside [{min}, {max}]"));
                }
            }
            Validator::RangeOr { min, max, or } => {
                let v = int()?;
                if v != or && (v < min || v > max) {
                    return Err(format!(
                        "config '{name}': {v} is outside [{min}, {max}] and is not {or}"
                    ));
                }
            }
            Validator::OneOf(allowed) => {
                if !allowed.contains(&value) {
                    return Err(format!(
                        "config '{name}': '{value}' is not supported (allowed: {allowed:?})"
                    ));
                }
            }
            Validator::Bool => {
                parse_bool(value)
                    .ok_or_else(|| format!("config '{name}': '{value}' is not a boolean (true or false)"))?;
            }
            Validator::Fraction => {
                let v: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("config '{name}': '{value}' is not a number"))?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("config '{name}': {v} is outside [0, 1]"));
                }
            }
            Validator::ReplicaList => {
                let pair = |p: &str| {
                    let p = p.trim();
                    p.is_empty()
                        || p.split_once(':').is_some_and(|(a, b)| {
                            [a, b]
                                .iter()
                                .all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
                        })
                };
                if value.trim() != "*" && !value.split(',').all(pair) {
                    return Err(format!(
                        "config '{name}': '{value}' must be the literal '*' or a list of replicas in \
                         the form [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                    ));
                }
            }
            Validator::Only {
                base,
                value: only,
                why,
            } => {
                base.check(name, value)?;
                if canonical(value) != canonical(only) {
                    return Err(format!(
                        "config '{name}': '{value}' is not supported, only '{only}' is: {why}"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn parse_int(v: &str) -> Option<i64> {
    v.trim().parse().ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A value in a form that compares equal whatever its spelling (numbers,
/// booleans in any case, surrounding blanks).
fn canonical(v: &str) -> String {
    parse_int(v)
        .map(|i| i.to_string())
        .or_else(|| parse_bool(v).map(|b| b.to_string()))
        .unwrap_or_else(|| v.trim().to_string())
}

fn row(name: &str) -> &'static TopicConfigKey {
    key(name).unwrap_or_else(|| panic!("'{name}' is a row of TOPIC_CONFIGS"))
}

/// One synonym of a config (DescribeConfigs v1+ with `include_synonyms`):
/// a place its value may come from, most specific first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The synonym's name (the topic config or its broker-level config).
    pub name: &'static str,
    /// The value it holds.
    pub value: String,
    /// Kafka `ConfigSource` ([`config_source`]).
    pub source: i8,
}

/// One entry of a topic's effective configuration (or of the node's).
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
    /// Where the value may come from, the effective one first.
    pub synonyms: Vec<ConfigSynonym>,
    /// Whether clients may not alter it.
    pub read_only: bool,
    /// What the config does, when known.
    pub documentation: Option<&'static str>,
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
        key(name)
            .ok_or_else(|| format!("unknown topic config '{name}'"))?
            .validate(value)?;
    }
    let Replication {
        ensemble: e,
        write: w,
        ack: a,
    } = replication(configs, defaults);
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

/// The E/Qw/Qa a topic asks for: each valid quorum override, else the
/// node default `defaults`.
pub fn replication(overrides: &BTreeMap<String, String>, defaults: Replication) -> Replication {
    let q = |name: &str, default: u8| {
        row(name)
            .valid_override(overrides)
            .and_then(parse_int)
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(default)
    };
    Replication {
        ensemble: q(keys::ENSEMBLE_SIZE, defaults.ensemble),
        write: q(keys::WRITE_QUORUM, defaults.write),
        ack: q(keys::ACK_QUORUM, defaults.ack),
    }
}

/// A topic's effective configuration: every known config, with the
/// override where the topic sets one and the default otherwise (a dynamic
/// broker config, else the node's), sorted by name. Each entry carries its
/// synonyms (the override, then the defaults under their broker-level
/// names, most specific first) and documentation.
pub fn effective_topic_configs(
    cfg: &BrokerConfig,
    dynamic: &DynamicDefaults,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let mut rows: Vec<&TopicConfigKey> = TOPIC_CONFIGS.iter().collect();
    rows.sort_by_key(|k| k.name);
    rows.into_iter()
        .map(|k| {
            let mut synonyms = Vec::with_capacity(3);
            if let Some(v) = overrides.get(k.name) {
                synonyms.push(ConfigSynonym {
                    name: k.name,
                    value: v.clone(),
                    source: config_source::DYNAMIC_TOPIC_CONFIG,
                });
            }
            synonyms.extend(k.default_synonyms(cfg, dynamic));
            let effective = &synonyms[0];
            ConfigEntry {
                name: k.name,
                value: effective.value.clone(),
                source: effective.source,
                config_type: k.ty.code(),
                read_only: false,
                documentation: Some(k.doc),
                synonyms,
            }
        })
        .collect()
}

/// The largest batch a producer may append to a topic with these
/// overrides: its valid `max.message.bytes`, else the dynamic or static
/// `message.max.bytes` of this broker.
pub fn max_message_bytes(
    cfg: &BrokerConfig,
    dynamic: &DynamicDefaults,
    overrides: &BTreeMap<String, String>,
) -> usize {
    usize::try_from(row(keys::MAX_MESSAGE_BYTES).int(cfg, dynamic, overrides))
        .unwrap_or(cfg.message_max_bytes)
}

/// The topic's valid `max.message.bytes` override, when it sets one.
pub fn max_message_bytes_override(overrides: &BTreeMap<String, String>) -> Option<usize> {
    row(keys::MAX_MESSAGE_BYTES)
        .valid_override(overrides)
        .and_then(parse_int)
        .and_then(|v| usize::try_from(v).ok())
}

/// The stream settings of a topic in storage's terms: each valid override,
/// else the default (a dynamic broker config, else the node's), read
/// through the table.
pub fn stream_config(
    cfg: &BrokerConfig,
    dynamic: &DynamicDefaults,
    overrides: &BTreeMap<String, String>,
) -> StreamConfig {
    let int = |name: &str| row(name).int(cfg, dynamic, overrides);
    // Ranges make these conversions exact; -1 (or any negative) is unlimited.
    let positive = |name: &str| u64::try_from(int(name)).ok();
    let Replication { ensemble, write, ack } = replication(overrides, cfg.default_replication);
    StreamConfig {
        max_segment_bytes: positive(keys::SEGMENT_BYTES).unwrap_or(u64::MAX),
        segment_rolling_interval: Duration::from_millis(positive(keys::SEGMENT_MS).unwrap_or(u64::MAX)),
        ensemble_size: ensemble,
        write_quorum: write,
        ack_quorum: ack,
        retention: Retention {
            period: positive(keys::RETENTION_MS).map(Duration::from_millis),
            max_bytes: positive(keys::RETENTION_BYTES),
        },
        ..StreamConfig::default()
    }
}

/// The seam to storage: the namespace calls this each time it opens a
/// stream and when a topic's configs or the dynamic broker configs change,
/// and gets the topic's settings resolved through this table over this
/// node's configuration and the dynamic broker configs in `meta` (read
/// with `read_nested`: storage may call this under a metadata read).
pub fn stream_config_fn(cfg: &BrokerConfig, meta: Arc<MetadataStore>) -> StreamConfigFn {
    let cfg = Arc::new(cfg.clone());
    Arc::new(move |topic: &TopicMeta| {
        let dynamic = meta.read_nested(|s| DynamicDefaults::of(s, cfg.node_id));
        stream_config(&cfg, &dynamic, &topic.configs)
    })
}

#[cfg(test)]
#[path = "topic_config_tests.rs"]
mod tests;
