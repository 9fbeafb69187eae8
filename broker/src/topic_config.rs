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

const I32_MAX: i64 = i32::MAX as i64;
const NON_NEGATIVE_LONG: Validator = Validator::Range {
    min: 0,
    max: i64::MAX,
};
const BOOL: Validator = Validator::Bool;

/// Every topic config distlog accepts (each name once; listings sort them
/// by name); any other name is INVALID_CONFIG.
pub const TOPIC_CONFIGS: &[TopicConfigKey] = &[
    TopicConfigKey {
        name: keys::CLEANUP_POLICY,
        ty: ConfigType::List,
        validator: Validator::OneOf(&["delete"]),
        default: DefaultValue::Fixed("delete"),
        broker_synonym: Some("log.cleanup.policy"),
        dynamic: true,
        doc: "What happens to old segments: 'delete' removes them once retention allows. \
              Compaction is not supported.",
    },
    TopicConfigKey {
        name: keys::COMPRESSION_TYPE,
        ty: ConfigType::String,
        validator: Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        default: DefaultValue::Fixed("producer"),
        broker_synonym: Some("compression.type"),
        dynamic: true,
        doc: "The codec batches are stored in: 'producer' keeps each batch as the producer \
              compressed it (no copy); 'uncompressed', 'gzip', 'snappy', 'lz4' or 'zstd' \
              recompresses batches arriving in another codec on the stream owner.",
    },
    TopicConfigKey {
        name: keys::ACK_QUORUM,
        ty: ConfigType::Int,
        validator: Validator::Range { min: 1, max: 16 },
        default: DefaultValue::Derived(|c| c.default_replication.ack.to_string()),
        broker_synonym: None,
        dynamic: true,
        doc: "Ack quorum Qa: bookies that must have stored an entry before a produce is \
              acknowledged (1 <= Qa <= write quorum). Applies to new segments.",
    },
    TopicConfigKey {
        name: keys::ENSEMBLE_SIZE,
        ty: ConfigType::Int,
        validator: Validator::Range { min: 1, max: 16 },
        default: DefaultValue::Derived(|c| c.default_replication.ensemble.to_string()),
        broker_synonym: None,
        dynamic: true,
        doc: "Ensemble size E: bookies each new segment is spread over (E >= write quorum; \
              larger E stripes entries). Applies to new segments.",
    },
    TopicConfigKey {
        name: keys::WRITE_QUORUM,
        ty: ConfigType::Int,
        validator: Validator::Range { min: 1, max: 16 },
        default: DefaultValue::Derived(|c| c.default_replication.write.to_string()),
        broker_synonym: None,
        dynamic: true,
        doc: "Write quorum Qw: copies stored of each entry (ack quorum <= Qw <= ensemble size). \
              Applies to new segments.",
    },
    TopicConfigKey {
        name: keys::MAX_MESSAGE_BYTES,
        ty: ConfigType::Int,
        validator: Validator::Range { min: 0, max: I32_MAX },
        default: DefaultValue::Node(|c| c.message_max_bytes.to_string()),
        broker_synonym: Some("message.max.bytes"),
        dynamic: true,
        doc: "Largest record batch, in bytes, a producer may append to this topic.",
    },
    TopicConfigKey {
        name: keys::MESSAGE_TIMESTAMP_AFTER_MAX_MS,
        ty: ConfigType::Long,
        validator: Validator::Range {
            min: 0,
            max: i64::MAX,
        },
        default: DefaultValue::Fixed("3600000"),
        broker_synonym: Some("log.message.timestamp.after.max.ms"),
        dynamic: true,
        doc: "How far, in milliseconds, a record's CreateTime timestamp may lie after the \
              broker's clock; a batch with a later one is refused with INVALID_TIMESTAMP. \
              Ignored for LogAppendTime.",
    },
    TopicConfigKey {
        name: keys::MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
        ty: ConfigType::Long,
        validator: Validator::Range {
            min: 0,
            max: i64::MAX,
        },
        default: DefaultValue::Fixed("9223372036854775807"),
        broker_synonym: Some("log.message.timestamp.before.max.ms"),
        dynamic: true,
        doc: "How far, in milliseconds, a record's CreateTime timestamp may lie before the \
              broker's clock; a batch with an earlier one is refused with INVALID_TIMESTAMP. \
              Ignored for LogAppendTime.",
    },
    TopicConfigKey {
        name: keys::MESSAGE_TIMESTAMP_TYPE,
        ty: ConfigType::String,
        validator: Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        default: DefaultValue::Fixed("CreateTime"),
        broker_synonym: Some("log.message.timestamp.type"),
        dynamic: true,
        doc: "'CreateTime': records keep the producer's timestamps (within \
              message.timestamp.before/after.max.ms). 'LogAppendTime': the stream owner stamps \
              each batch with the time it appends it, and ListOffsets by time uses that time.",
    },
    TopicConfigKey {
        name: keys::MIN_INSYNC_REPLICAS,
        ty: ConfigType::Int,
        validator: Validator::Range { min: 1, max: I32_MAX },
        default: DefaultValue::Fixed("1"),
        broker_synonym: Some("min.insync.replicas"),
        dynamic: true,
        doc: "Accepted for Kafka compatibility; durability of acks=all is governed by \
              distlog.ack.quorum.",
    },
    TopicConfigKey {
        name: keys::RETENTION_BYTES,
        ty: ConfigType::Long,
        validator: Validator::Range {
            min: -1,
            max: i64::MAX,
        },
        default: DefaultValue::Node(|c| c.log_retention_bytes.to_string()),
        broker_synonym: Some("log.retention.bytes"),
        dynamic: true,
        doc: "Largest size, in bytes, a partition may keep before its oldest segments are \
              deleted; -1 means no size limit.",
    },
    TopicConfigKey {
        name: keys::RETENTION_MS,
        ty: ConfigType::Long,
        validator: Validator::Range {
            min: -1,
            max: i64::MAX,
        },
        default: DefaultValue::Node(|c| c.log_retention_ms.to_string()),
        broker_synonym: Some("log.retention.ms"),
        dynamic: true,
        doc: "How long, in milliseconds, records are kept before their segment may be \
              deleted; -1 means no time limit.",
    },
    TopicConfigKey {
        name: keys::SEGMENT_BYTES,
        ty: ConfigType::Int,
        validator: Validator::Range {
            min: 14,
            max: I32_MAX,
        },
        default: DefaultValue::Node(|c| c.segment_bytes.to_string()),
        broker_synonym: Some("log.segment.bytes"),
        dynamic: true,
        doc: "Size, in bytes, at which a partition's current segment is closed and a new \
              one started.",
    },
    TopicConfigKey {
        name: keys::SEGMENT_MS,
        ty: ConfigType::Long,
        validator: Validator::Range {
            min: 1,
            max: i64::MAX,
        },
        default: DefaultValue::Node(|c| c.segment_ms.to_string()),
        broker_synonym: Some("log.roll.ms"),
        dynamic: true,
        doc: "Age, in milliseconds, at which a partition's current (non-empty) segment is \
              closed and a new one started.",
    },
    TopicConfigKey {
        name: "compression.gzip.level",
        ty: ConfigType::Int,
        validator: Validator::Only {
            base: &Validator::RangeOr { min: 1, max: 9, or: -1 },
            value: "-1",
            why: "batches are recompressed at the codec's default level only",
        },
        default: DefaultValue::Fixed("-1"),
        broker_synonym: Some("compression.gzip.level"),
        dynamic: true,
        doc: "The gzip level used when the topic's compression.type is gzip. Only the default (-1) is supported.",
    },
    TopicConfigKey {
        name: "compression.lz4.level",
        ty: ConfigType::Int,
        validator: Validator::Only {
            base: &Validator::Range { min: 1, max: 17 },
            value: "9",
            why: "batches are recompressed at the codec's default level only",
        },
        default: DefaultValue::Fixed("9"),
        broker_synonym: Some("compression.lz4.level"),
        dynamic: true,
        doc: "The lz4 level used when the topic's compression.type is lz4. Only the default (9) is supported.",
    },
    TopicConfigKey {
        name: "compression.zstd.level",
        ty: ConfigType::Int,
        validator: Validator::Only {
            base: &Validator::Range { min: -131072, max: 22 },
            value: "3",
            why: "batches are recompressed at the codec's default level only",
        },
        default: DefaultValue::Fixed("3"),
        broker_synonym: Some("compression.zstd.level"),
        dynamic: true,
        doc: "The zstd level used when the topic's compression.type is zstd. Only the default (3) is supported.",
    },
    TopicConfigKey {
        name: "delete.retention.ms",
        ty: ConfigType::Long,
        validator: NON_NEGATIVE_LONG,
        default: DefaultValue::Fixed("86400000"),
        broker_synonym: Some("log.cleaner.delete.retention.ms"),
        dynamic: true,
        doc: "How long delete markers are kept by log compaction. Accepted for compatibility: it has no effect, since compaction cannot be enabled.",
    },
    TopicConfigKey {
        name: "file.delete.delay.ms",
        ty: ConfigType::Long,
        validator: NON_NEGATIVE_LONG,
        default: DefaultValue::Fixed("60000"),
        broker_synonym: Some("log.segment.delete.delay.ms"),
        dynamic: true,
        doc: "Delay before a deleted segment's files are removed. Accepted for compatibility: records leave the log as soon as retention moves the log start offset, and the segment's ledger is then deleted on its bookies.",
    },
    TopicConfigKey {
        name: "flush.messages",
        ty: ConfigType::Long,
        validator: Validator::Range { min: 1, max: i64::MAX },
        default: DefaultValue::Fixed("9223372036854775807"),
        broker_synonym: Some("log.flush.interval.messages"),
        dynamic: true,
        doc: "Records after which the log is forced to disk. Accepted for compatibility: distlog fsyncs every entry on its ack quorum before acknowledging it, which satisfies any value.",
    },
    TopicConfigKey {
        name: "flush.ms",
        ty: ConfigType::Long,
        validator: NON_NEGATIVE_LONG,
        default: DefaultValue::Fixed("9223372036854775807"),
        broker_synonym: Some("log.flush.interval.ms"),
        dynamic: true,
        doc: "Time after which the log is forced to disk. Accepted for compatibility: distlog fsyncs every entry on its ack quorum before acknowledging it, which satisfies any value.",
    },
    TopicConfigKey {
        name: "follower.replication.throttled.replicas",
        ty: ConfigType::List,
        validator: Validator::ReplicaList,
        default: DefaultValue::Fixed(""),
        broker_synonym: Some("follower.replication.throttled.replicas"),
        dynamic: true,
        doc: "Replicas whose follower replication is throttled during reassignment. Accepted for compatibility: distlog has no follower replication (bookies store each entry as it is written), so there is nothing to throttle.",
    },
    TopicConfigKey {
        name: "index.interval.bytes",
        ty: ConfigType::Int,
        validator: Validator::Range { min: 0, max: I32_MAX },
        default: DefaultValue::Fixed("4096"),
        broker_synonym: Some("log.index.interval.bytes"),
        dynamic: true,
        doc: "Bytes between offset-index entries. Accepted for compatibility: distlog indexes every entry, which is at least as fine as any value.",
    },
    TopicConfigKey {
        name: "leader.replication.throttled.replicas",
        ty: ConfigType::List,
        validator: Validator::ReplicaList,
        default: DefaultValue::Fixed(""),
        broker_synonym: Some("leader.replication.throttled.replicas"),
        dynamic: true,
        doc: "Replicas whose leader-side replication is throttled during reassignment. Accepted for compatibility: distlog has no follower replication (bookies store each entry as it is written), so there is nothing to throttle.",
    },
    TopicConfigKey {
        name: "local.retention.bytes",
        ty: ConfigType::Long,
        validator: Validator::Range { min: -2, max: i64::MAX },
        default: DefaultValue::Fixed("-2"),
        broker_synonym: Some("log.local.retention.bytes"),
        dynamic: true,
        doc: "Local size limit of a tiered-storage topic. Accepted for compatibility: it has no effect, since tiered storage cannot be enabled.",
    },
    TopicConfigKey {
        name: "local.retention.ms",
        ty: ConfigType::Long,
        validator: Validator::Range { min: -2, max: i64::MAX },
        default: DefaultValue::Fixed("-2"),
        broker_synonym: Some("log.local.retention.ms"),
        dynamic: true,
        doc: "Local time limit of a tiered-storage topic. Accepted for compatibility: it has no effect, since tiered storage cannot be enabled.",
    },
    TopicConfigKey {
        name: "max.compaction.lag.ms",
        ty: ConfigType::Long,
        validator: Validator::Range { min: 1, max: i64::MAX },
        default: DefaultValue::Fixed("9223372036854775807"),
        broker_synonym: Some("log.cleaner.max.compaction.lag.ms"),
        dynamic: true,
        doc: "Longest time a record stays ineligible for compaction. Accepted for compatibility: it has no effect, since compaction cannot be enabled.",
    },
    TopicConfigKey {
        name: "message.downconversion.enable",
        ty: ConfigType::Boolean,
        validator: BOOL,
        default: DefaultValue::Fixed("true"),
        broker_synonym: Some("log.message.downconversion.enable"),
        dynamic: true,
        doc: "Down-conversion for old fetchers. Accepted for compatibility: a no-op, as in Kafka 4.x (distlog serves record batches of format v2 only).",
    },
    TopicConfigKey {
        name: "min.cleanable.dirty.ratio",
        ty: ConfigType::Double,
        validator: Validator::Fraction,
        default: DefaultValue::Fixed("0.5"),
        broker_synonym: Some("log.cleaner.min.cleanable.ratio"),
        dynamic: true,
        doc: "Dirty ratio at which a log is compacted. Accepted for compatibility: it has no effect, since compaction cannot be enabled.",
    },
    TopicConfigKey {
        name: "min.compaction.lag.ms",
        ty: ConfigType::Long,
        validator: NON_NEGATIVE_LONG,
        default: DefaultValue::Fixed("0"),
        broker_synonym: Some("log.cleaner.min.compaction.lag.ms"),
        dynamic: true,
        doc: "Shortest time a record stays uncompacted. Accepted for compatibility: it has no effect, since compaction cannot be enabled.",
    },
    TopicConfigKey {
        name: "preallocate",
        ty: ConfigType::Boolean,
        validator: Validator::Only {
            base: &BOOL,
            value: "false",
            why: "segments are ledgers written by bookies, which do not preallocate files",
        },
        default: DefaultValue::Fixed("false"),
        broker_synonym: Some("log.preallocate"),
        dynamic: true,
        doc: "Whether segment files are preallocated. Only false is supported.",
    },
    TopicConfigKey {
        name: "remote.log.copy.disable",
        ty: ConfigType::Boolean,
        validator: BOOL,
        default: DefaultValue::Fixed("false"),
        broker_synonym: None,
        dynamic: true,
        doc: "Stops copying segments to tiered storage. Accepted for compatibility: it has no effect, since tiered storage cannot be enabled.",
    },
    TopicConfigKey {
        name: "remote.log.delete.on.disable",
        ty: ConfigType::Boolean,
        validator: BOOL,
        default: DefaultValue::Fixed("false"),
        broker_synonym: None,
        dynamic: true,
        doc: "Deletes tiered-storage data when tiered storage is disabled. Accepted for compatibility: it has no effect, since tiered storage cannot be enabled.",
    },
    TopicConfigKey {
        name: "remote.storage.enable",
        ty: ConfigType::Boolean,
        validator: Validator::Only {
            base: &BOOL,
            value: "false",
            why: "distlog has no tiered storage (segments live on bookies)",
        },
        default: DefaultValue::Fixed("false"),
        broker_synonym: None,
        dynamic: true,
        doc: "Whether segments are copied to tiered storage. Only false is supported: segments live on bookies.",
    },
    TopicConfigKey {
        name: "segment.index.bytes",
        ty: ConfigType::Int,
        validator: Validator::Range { min: 4, max: I32_MAX },
        default: DefaultValue::Fixed("10485760"),
        broker_synonym: Some("log.index.size.max.bytes"),
        dynamic: true,
        doc: "Size limit of a segment's offset index. Accepted for compatibility: bookies index entries in memory without a size limit, so it never forces a roll.",
    },
    TopicConfigKey {
        name: "segment.jitter.ms",
        ty: ConfigType::Long,
        validator: Validator::Only {
            base: &NON_NEGATIVE_LONG,
            value: "0",
            why: "segments roll exactly at segment.ms",
        },
        default: DefaultValue::Fixed("0"),
        broker_synonym: Some("log.roll.jitter.ms"),
        dynamic: true,
        doc: "Random jitter subtracted from segment.ms. Only 0 is supported: segments roll exactly at segment.ms.",
    },
    TopicConfigKey {
        name: "unclean.leader.election.enable",
        ty: ConfigType::Boolean,
        validator: Validator::Only {
            base: &BOOL,
            value: "false",
            why: "a new owner always recovers the last segment from its bookies and never loses acknowledged records",
        },
        default: DefaultValue::Fixed("false"),
        broker_synonym: Some("unclean.leader.election.enable"),
        dynamic: true,
        doc: "Whether an out-of-sync replica may become leader, losing data. Only false is supported: a new owner always recovers the last segment from the bookies.",
    },
];

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
