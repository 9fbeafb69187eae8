//! The rows of [`TOPIC_CONFIGS`]: every topic config Kafka 4.x defines, with
//! its type, default, validator, broker synonym and documentation. Kept apart
//! from the code that reads it (`topic_config.rs`) because it is data: one
//! row per config, sorted by name in every listing.

#[allow(clippy::wildcard_imports)]
use super::*;

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
