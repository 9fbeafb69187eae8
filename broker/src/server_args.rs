//! The `distlog` command line: its subcommands and every flag of `distlog
//! server` with its `DISTLOG_*` environment variable. Every flag is
//! optional, so an absent one falls through to the TOML file and the
//! defaults; [`crate::config`] resolves them into a `BrokerConfig`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// The `distlog` command line.
#[derive(Debug, Parser)]
#[command(
    name = "distlog",
    about = "A Kafka-compatible log broker on DistributedLog's architecture"
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// Subcommands of `distlog`.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup
pub enum CliCommand {
    /// Run a node (metadata + bookie + Kafka broker).
    Server(ServerArgs),
    /// Print the version and exit.
    Version,
    /// Administer a cluster over the Kafka protocol and the HTTP admin API.
    Admin(crate::admin_cli::AdminArgs),
}

/// Flags of `distlog server`. Every flag is optional so that absent flags
/// fall through to the environment, the TOML file and the defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "DISTLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Node id (Kafka broker id).
    #[arg(long, env = "DISTLOG_NODE_ID")]
    pub node_id: Option<u32>,
    /// Data directory.
    #[arg(long, env = "DISTLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka listener address HOST:PORT.
    #[arg(long, env = "DISTLOG_KAFKA_LISTEN")]
    pub kafka_listen: Option<String>,
    /// Kafka address advertised to clients HOST:PORT (default: the listen address).
    #[arg(long, env = "DISTLOG_ADVERTISED_KAFKA")]
    pub advertised_kafka: Option<String>,
    /// Named Kafka listeners NAME://HOST:PORT,... (Kafka's listeners; replaces --kafka-listen).
    #[arg(long, env = "DISTLOG_LISTENERS")]
    pub listeners: Option<String>,
    /// Address advertised per listener NAME://HOST:PORT,... (Kafka's advertised.listeners).
    #[arg(long, env = "DISTLOG_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// HTTP (metrics, health, admin) listener address HOST:PORT.
    #[arg(long, env = "DISTLOG_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Raft listener address HOST:PORT.
    #[arg(long, env = "DISTLOG_RAFT_LISTEN")]
    pub raft_listen: Option<String>,
    /// Serve this node's bookie to other nodes on HOST:PORT.
    #[arg(long, env = "DISTLOG_BOOKIE_LISTEN")]
    pub bookie_listen: Option<String>,
    /// Raft address other nodes dial, HOST:PORT (default: --raft-listen).
    #[arg(long, env = "DISTLOG_ADVERTISED_RAFT")]
    pub advertised_raft: Option<String>,
    /// Bookie address other nodes dial, HOST:PORT (default: --bookie-listen).
    #[arg(long, env = "DISTLOG_ADVERTISED_BOOKIE")]
    pub advertised_bookie: Option<String>,
    /// Create unknown topics on Metadata requests (true|false).
    #[arg(long, env = "DISTLOG_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Default partition count of new topics.
    #[arg(long, env = "DISTLOG_NUM_PARTITIONS")]
    pub num_partitions: Option<u32>,
    /// Default segment.bytes.
    #[arg(long, env = "DISTLOG_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,
    /// Default segment.ms.
    #[arg(long, env = "DISTLOG_SEGMENT_MS")]
    pub segment_ms: Option<u64>,
    /// Default retention.ms: delete sealed segments whose newest record is older (-1: never; log.retention.ms).
    #[arg(long, env = "DISTLOG_LOG_RETENTION_MS", allow_hyphen_values = true)]
    pub log_retention_ms: Option<i64>,
    /// Default retention.bytes: delete the oldest sealed segments while a partition holds more (-1: no limit; log.retention.bytes).
    #[arg(long, env = "DISTLOG_LOG_RETENTION_BYTES", allow_hyphen_values = true)]
    pub log_retention_bytes: Option<i64>,
    /// How often retention is checked, ms (log.retention.check.interval.ms).
    #[arg(long, env = "DISTLOG_LOG_RETENTION_CHECK_INTERVAL_MS")]
    pub log_retention_check_interval_ms: Option<u64>,
    /// Largest request accepted (socket.request.max.bytes).
    #[arg(long, env = "DISTLOG_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Largest record batch accepted (message.max.bytes).
    #[arg(long, env = "DISTLOG_MESSAGE_MAX_BYTES")]
    pub message_max_bytes: Option<usize>,
    /// Tail cache bytes per stream.
    #[arg(long, env = "DISTLOG_TAIL_CACHE_BYTES")]
    pub tail_cache_bytes: Option<usize>,
    /// Default log filter when RUST_LOG is unset (e.g. info, debug).
    #[arg(long, env = "DISTLOG_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, env = "DISTLOG_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Send a slow ledger read to another replica after this many ms (0: only on error).
    #[arg(long, env = "DISTLOG_SPECULATIVE_READ_MS")]
    pub speculative_read_ms: Option<u64>,
    /// Forget an idempotent producer idle this long, ms (producer.id.expiration.ms; default 1 day).
    #[arg(long, env = "DISTLOG_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<u64>,
    /// Longest transaction timeout a producer may ask for, ms (transaction.max.timeout.ms; default 15 min).
    #[arg(long, env = "DISTLOG_TRANSACTION_MAX_TIMEOUT_MS")]
    pub transaction_max_timeout_ms: Option<u64>,
    /// How often timed-out transactions are aborted, ms
    /// (transaction.abort.timed.out.transaction.cleanup.interval.ms; default 10 s).
    #[arg(
        long,
        env = "DISTLOG_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS"
    )]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    /// Forget transactional ids idle this long without an open transaction
    /// (transactional.id.expiration.ms; default 7 days).
    #[arg(long, env = "DISTLOG_TRANSACTIONAL_ID_EXPIRATION_MS")]
    pub transactional_id_expiration_ms: Option<u64>,
    /// Test-only fault: close a connection instead of answering a produce
    /// that was appended, with this probability (0 to 1; default 0).
    #[arg(long, env = "DISTLOG_TEST_DROP_PRODUCE_RESPONSES", hide = true)]
    pub test_drop_produce_responses: Option<f64>,
    /// Initial rebalance delay of an empty group in ms (group.initial.rebalance.delay.ms).
    #[arg(long, env = "DISTLOG_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Smallest session timeout a group member may use, ms (group.min.session.timeout.ms).
    #[arg(long, env = "DISTLOG_GROUP_MIN_SESSION_TIMEOUT_MS")]
    pub group_min_session_timeout_ms: Option<u64>,
    /// Largest session timeout a group member may use, ms (group.max.session.timeout.ms).
    #[arg(long, env = "DISTLOG_GROUP_MAX_SESSION_TIMEOUT_MS")]
    pub group_max_session_timeout_ms: Option<u64>,
    /// Committed offsets of an empty group are removed after this many minutes (offsets.retention.minutes).
    #[arg(long, env = "DISTLOG_OFFSETS_RETENTION_MINUTES")]
    pub offsets_retention_minutes: Option<u64>,
    /// How often expired group offsets are removed, ms (offsets.retention.check.interval.ms).
    #[arg(long, env = "DISTLOG_OFFSETS_RETENTION_CHECK_INTERVAL_MS")]
    pub offsets_retention_check_interval_ms: Option<u64>,
    /// Roles this node runs: a comma-separated subset of meta,bookie,broker (default: all).
    #[arg(long, env = "DISTLOG_ROLES")]
    pub roles: Option<String>,
    /// Metadata Raft voters ID=HOST:PORT,... (their --raft-listen addresses); forms a cluster.
    #[arg(long, env = "DISTLOG_META_VOTERS")]
    pub meta_voters: Option<String>,
    /// Raft addresses HOST:PORT,... of running members to join through, as a learner.
    #[arg(long, env = "DISTLOG_META_SEEDS")]
    pub meta_seeds: Option<String>,
    /// Replication E/QW/QA of topics that set none (default 3/3/2 in a cluster, 1/1/1 alone).
    #[arg(long, env = "DISTLOG_DEFAULT_REPLICATION")]
    pub default_replication: Option<String>,
    /// A node whose lease is not renewed for this long (ms) is considered dead.
    #[arg(long, env = "DISTLOG_BROKER_SESSION_TIMEOUT_MS")]
    pub broker_session_timeout_ms: Option<u64>,
    /// How often (ms) a node renews its lease.
    #[arg(long, env = "DISTLOG_BROKER_HEARTBEAT_INTERVAL_MS")]
    pub broker_heartbeat_interval_ms: Option<u64>,
    /// This node's rack; replicas of a segment are spread over racks.
    #[arg(long, env = "DISTLOG_RACK")]
    pub rack: Option<String>,
}
