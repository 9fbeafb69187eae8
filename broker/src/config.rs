//! Node configuration: command line, TOML file and `DISTLOG_*` environment.
//!
//! Resolution order, lowest to highest: built-in defaults < TOML file
//! (`--config FILE`) < `DISTLOG_*` environment variables < flags. Clap reads
//! a flag or, when the flag is absent, its environment variable; both arrive
//! as `Some(..)` in [`ServerArgs`] and override the file, which overrides the
//! defaults in [`BrokerConfig::default`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use distlog_metadata::NodeId;
use serde::Deserialize;

use crate::cluster::{parse_seeds, parse_voters, Replication, Roles};
use crate::error::BrokerError;
use crate::listeners::{KafkaListener, DEFAULT_LISTENER};
pub use crate::server_args::{Cli, CliCommand, ServerArgs};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Broker/node configuration resolved from flags, TOML and DISTLOG_* env.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// This node's id: its Kafka broker id, Raft node id and bookie id.
    pub node_id: NodeId,
    /// Largest request frame accepted (bytes), Kafka's `socket.request.max.bytes`.
    pub max_request_bytes: usize,
    /// Largest record batch accepted in a produce (`message.max.bytes`).
    pub message_max_bytes: usize,
    /// Root of this node's data (metadata, bookie).
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds (`host:port`).
    pub kafka_listen: String,
    /// Host advertised to Kafka clients in Metadata responses.
    pub advertised_kafka_host: String,
    /// Port advertised to Kafka clients in Metadata responses.
    pub advertised_kafka_port: u16,
    /// Every Kafka listener (`--listeners`); the first is `kafka_listen`
    /// with the advertised host and port above. One listener named
    /// `PLAINTEXT` unless `--listeners` names several.
    pub listeners: Vec<KafkaListener>,
    /// Address of the HTTP server (metrics, health, admin).
    pub http_listen: String,
    /// Address of the Raft RPC listener (recorded in membership).
    pub raft_listen: String,
    /// Address the bookie (segment store) service listens on for other
    /// nodes' ledger clients; `None`: the bookie serves this node only.
    pub bookie_listen: Option<String>,
    /// Address other nodes reach the Raft listener at (`--advertised-raft`);
    /// `None`: `raft_listen` itself.
    pub advertised_raft: Option<String>,
    /// Address other nodes reach the bookie service at
    /// (`--advertised-bookie`); `None`: `bookie_listen` itself.
    pub advertised_bookie: Option<String>,
    /// Whether Metadata requests create unknown topics (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of a topic created without an explicit count (`num.partitions`).
    pub num_partitions: u32,
    /// Node default `segment.bytes` (roll a segment at this size).
    pub segment_bytes: u64,
    /// Node default `segment.ms` (roll a segment at this age).
    pub segment_ms: u64,
    /// Node default `retention.ms` (Kafka's `log.retention.ms`): a sealed
    /// segment whose newest record is older than this is deleted; -1 keeps
    /// data forever. Kafka's default: 7 days.
    pub log_retention_ms: i64,
    /// Node default `retention.bytes` (Kafka's `log.retention.bytes`): the
    /// oldest sealed segments are deleted while a partition holds more; -1
    /// (the default) has no size limit.
    pub log_retention_bytes: i64,
    /// How often each owner checks its streams against their retention
    /// limits (Kafka's `log.retention.check.interval.ms`; default 5 min).
    pub log_retention_check_interval_ms: u64,
    /// Bytes of recent entries each stream keeps in memory for tailing readers.
    pub tail_cache_bytes: usize,
    /// Default tracing filter when `RUST_LOG` is unset.
    pub log_level: String,
    /// Log output format.
    pub log_format: LogFormat,
    /// A ledger read unanswered this long (ms) is also sent to the next
    /// replica; 0 sends it there only on error.
    pub speculative_read_ms: u64,
    /// `producer.id.expiration.ms`: a partition forgets an idempotent
    /// producer not written for this long (Kafka's default: 1 day).
    pub producer_id_expiration_ms: u64,
    /// `transaction.max.timeout.ms`: the longest transaction timeout a
    /// producer may ask for in InitProducerId (Kafka's default: 15 min);
    /// a longer one is refused with INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: u64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how
    /// often the Raft leader looks for transactions that outlived their
    /// timeout and aborts them (Kafka's default: 10 s).
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transactional.id.expiration.ms`: a transactional id without an
    /// open transaction and unused this long is forgotten by the same
    /// sweeper (Kafka's default: 7 days).
    pub transactional_id_expiration_ms: u64,
    /// Test-only fault: the probability (0 to 1) that a produce whose
    /// records were appended gets its connection closed instead of its
    /// answer, as a network fault after the write would. 0 (the default)
    /// never does; only tests set it (`DISTLOG_TEST_DROP_PRODUCE_RESPONSES`).
    pub test_drop_produce_responses: f64,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits for more members to join.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`: the shortest session timeout a member may ask for.
    pub group_min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`: the longest session timeout a member may ask for.
    pub group_max_session_timeout_ms: u64,
    /// `offsets.retention.minutes`: how long an empty group's committed offsets are kept.
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are looked for.
    pub offsets_retention_check_interval_ms: u64,
    /// The roles this node runs (`--roles`).
    pub roles: Roles,
    /// Metadata Raft voters, node id → Raft address (`--meta-voters`);
    /// empty with no seeds: a single-node cluster.
    pub meta_voters: BTreeMap<NodeId, String>,
    /// Raft addresses of running members to join through (`--meta-seeds`).
    pub meta_seeds: Vec<String>,
    /// E/Qw/Qa of topics that set none (`--default-replication`): 3/3/2 in a
    /// cluster, 1/1/1 on a single node.
    pub default_replication: Replication,
    /// How long a node's registration (lease) lives without renewal; the
    /// controller moves the streams of a broker whose lease expired
    /// (Kafka's `broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
    /// How often a node renews its lease (`broker.heartbeat.interval.ms`).
    pub broker_heartbeat_interval_ms: u64,
    /// This node's rack (`broker.rack`): segment placement spreads replicas over racks.
    pub rack: Option<String>,
}

impl BrokerConfig {
    /// Whether this node is part of a multi-node cluster (voters or seeds
    /// given): stream ownership is then assigned by the controller.
    pub fn is_cluster(&self) -> bool {
        !self.meta_voters.is_empty() || !self.meta_seeds.is_empty()
    }
}

/// Default Kafka listener address.
pub const DEFAULT_KAFKA_LISTEN: &str = "127.0.0.1:9092";

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: NodeId::new(1),
            max_request_bytes: 104_857_600,
            message_max_bytes: 1_048_588,
            data_dir: PathBuf::from("./distlog-data"),
            kafka_listen: DEFAULT_KAFKA_LISTEN.to_string(),
            advertised_kafka_host: "127.0.0.1".to_string(),
            advertised_kafka_port: 9092,
            listeners: vec![KafkaListener {
                name: DEFAULT_LISTENER.to_string(),
                bind: DEFAULT_KAFKA_LISTEN.to_string(),
                advertised_host: "127.0.0.1".to_string(),
                advertised_port: 9092,
            }],
            http_listen: "127.0.0.1:9644".to_string(),
            raft_listen: "127.0.0.1:9093".to_string(),
            bookie_listen: None,
            advertised_raft: None,
            advertised_bookie: None,
            auto_create_topics: true,
            num_partitions: 1,
            segment_bytes: 134_217_728,
            segment_ms: 604_800_000,
            log_retention_ms: 604_800_000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            tail_cache_bytes: 8 * 1024 * 1024,
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            speculative_read_ms: 100,
            producer_id_expiration_ms: 86_400_000,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transactional_id_expiration_ms: 604_800_000,
            test_drop_produce_responses: 0.0,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            roles: Roles::default(),
            meta_voters: BTreeMap::new(),
            meta_seeds: Vec::new(),
            default_replication: Replication::SINGLE,
            broker_session_timeout_ms: 6000,
            broker_heartbeat_interval_ms: 1500,
            rack: None,
        }
    }
}

/// The TOML file's shape: same keys as the flags, with underscores.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`BrokerConfig::node_id`].
    pub node_id: Option<u32>,
    /// See [`BrokerConfig::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`BrokerConfig::kafka_listen`].
    pub kafka_listen: Option<String>,
    /// `HOST:PORT` advertised to clients.
    pub advertised_kafka: Option<String>,
    /// See [`BrokerConfig::listeners`] (`"INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092"`).
    pub listeners: Option<String>,
    /// Advertised address per listener (`"INTERNAL://node1:9092,EXTERNAL://localhost:19092"`).
    pub advertised_listeners: Option<String>,
    /// See [`BrokerConfig::http_listen`].
    pub http_listen: Option<String>,
    /// See [`BrokerConfig::raft_listen`].
    pub raft_listen: Option<String>,
    /// See [`BrokerConfig::bookie_listen`].
    pub bookie_listen: Option<String>,
    /// See [`BrokerConfig::advertised_raft`].
    pub advertised_raft: Option<String>,
    /// See [`BrokerConfig::advertised_bookie`].
    pub advertised_bookie: Option<String>,
    /// See [`BrokerConfig::auto_create_topics`].
    pub auto_create_topics: Option<bool>,
    /// See [`BrokerConfig::num_partitions`].
    pub num_partitions: Option<u32>,
    /// See [`BrokerConfig::segment_bytes`].
    pub segment_bytes: Option<u64>,
    /// See [`BrokerConfig::segment_ms`].
    pub segment_ms: Option<u64>,
    /// See [`BrokerConfig::log_retention_ms`].
    pub log_retention_ms: Option<i64>,
    /// See [`BrokerConfig::log_retention_bytes`].
    pub log_retention_bytes: Option<i64>,
    /// See [`BrokerConfig::log_retention_check_interval_ms`].
    pub log_retention_check_interval_ms: Option<u64>,
    /// See [`BrokerConfig::max_request_bytes`].
    pub max_request_bytes: Option<usize>,
    /// See [`BrokerConfig::message_max_bytes`].
    pub message_max_bytes: Option<usize>,
    /// See [`BrokerConfig::tail_cache_bytes`].
    pub tail_cache_bytes: Option<usize>,
    /// See [`BrokerConfig::log_level`].
    pub log_level: Option<String>,
    /// See [`BrokerConfig::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`BrokerConfig::speculative_read_ms`].
    pub speculative_read_ms: Option<u64>,
    /// See [`BrokerConfig::producer_id_expiration_ms`].
    pub producer_id_expiration_ms: Option<u64>,
    /// See [`BrokerConfig::transaction_max_timeout_ms`].
    pub transaction_max_timeout_ms: Option<u64>,
    /// See [`BrokerConfig::transaction_abort_timed_out_transaction_cleanup_interval_ms`].
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    /// See [`BrokerConfig::transactional_id_expiration_ms`].
    pub transactional_id_expiration_ms: Option<u64>,
    /// See [`BrokerConfig::test_drop_produce_responses`].
    pub test_drop_produce_responses: Option<f64>,
    /// See [`BrokerConfig::group_initial_rebalance_delay_ms`].
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// See [`BrokerConfig::group_min_session_timeout_ms`].
    pub group_min_session_timeout_ms: Option<u64>,
    /// See [`BrokerConfig::group_max_session_timeout_ms`].
    pub group_max_session_timeout_ms: Option<u64>,
    /// See [`BrokerConfig::offsets_retention_minutes`].
    pub offsets_retention_minutes: Option<u64>,
    /// See [`BrokerConfig::offsets_retention_check_interval_ms`].
    pub offsets_retention_check_interval_ms: Option<u64>,
    /// See [`BrokerConfig::roles`] (`"meta,bookie,broker"`).
    pub roles: Option<String>,
    /// See [`BrokerConfig::meta_voters`] (`"1=host:port,2=host:port"`).
    pub meta_voters: Option<String>,
    /// See [`BrokerConfig::meta_seeds`] (`"host:port,host:port"`).
    pub meta_seeds: Option<String>,
    /// See [`BrokerConfig::default_replication`] (`"3/3/2"`).
    pub default_replication: Option<String>,
    /// See [`BrokerConfig::broker_session_timeout_ms`].
    pub broker_session_timeout_ms: Option<u64>,
    /// See [`BrokerConfig::broker_heartbeat_interval_ms`].
    pub broker_heartbeat_interval_ms: Option<u64>,
    /// See [`BrokerConfig::rack`].
    pub rack: Option<String>,
}

impl FileConfig {
    /// Parse TOML text.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, BrokerError> {
        toml::from_str(text).map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))
    }

    /// Read and parse a TOML file (blocking; call before the runtime serves).
    pub fn load(path: &Path) -> Result<FileConfig, BrokerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BrokerError::Config(format!("cannot read config file {}: {e}", path.display())))?;
        FileConfig::parse(&text, path)
    }

    /// Turn the flag/env values into the same shape, so one overlay
    /// function serves both layers.
    fn from_args(a: &ServerArgs) -> FileConfig {
        FileConfig {
            node_id: a.node_id,
            data_dir: a.data_dir.clone(),
            kafka_listen: a.kafka_listen.clone(),
            advertised_kafka: a.advertised_kafka.clone(),
            listeners: a.listeners.clone(),
            advertised_listeners: a.advertised_listeners.clone(),
            http_listen: a.http_listen.clone(),
            raft_listen: a.raft_listen.clone(),
            bookie_listen: a.bookie_listen.clone(),
            advertised_raft: a.advertised_raft.clone(),
            advertised_bookie: a.advertised_bookie.clone(),
            auto_create_topics: a.auto_create_topics,
            num_partitions: a.num_partitions,
            segment_bytes: a.segment_bytes,
            segment_ms: a.segment_ms,
            log_retention_ms: a.log_retention_ms,
            log_retention_bytes: a.log_retention_bytes,
            log_retention_check_interval_ms: a.log_retention_check_interval_ms,
            max_request_bytes: a.max_request_bytes,
            message_max_bytes: a.message_max_bytes,
            tail_cache_bytes: a.tail_cache_bytes,
            log_level: a.log_level.clone(),
            log_format: a.log_format,
            speculative_read_ms: a.speculative_read_ms,
            producer_id_expiration_ms: a.producer_id_expiration_ms,
            transaction_max_timeout_ms: a.transaction_max_timeout_ms,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: a
                .transaction_abort_timed_out_transaction_cleanup_interval_ms,
            transactional_id_expiration_ms: a.transactional_id_expiration_ms,
            test_drop_produce_responses: a.test_drop_produce_responses,
            group_initial_rebalance_delay_ms: a.group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms: a.group_min_session_timeout_ms,
            group_max_session_timeout_ms: a.group_max_session_timeout_ms,
            offsets_retention_minutes: a.offsets_retention_minutes,
            offsets_retention_check_interval_ms: a.offsets_retention_check_interval_ms,
            roles: a.roles.clone(),
            meta_voters: a.meta_voters.clone(),
            meta_seeds: a.meta_seeds.clone(),
            default_replication: a.default_replication.clone(),
            broker_session_timeout_ms: a.broker_session_timeout_ms,
            broker_heartbeat_interval_ms: a.broker_heartbeat_interval_ms,
            rack: a.rack.clone(),
        }
    }
}

/// Split `host:port` (IPv6 hosts in brackets) into its parts.
pub fn split_host_port(addr: &str, flag: &str) -> Result<(String, u16), BrokerError> {
    let bad = || BrokerError::Config(format!("--{flag}: expected HOST:PORT, got '{addr}'"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

impl BrokerConfig {
    /// Resolve the configuration: defaults, then `file`, then `args` (flags
    /// and environment, as clap merged them). Validates addresses and sizes.
    pub fn resolve(file: Option<FileConfig>, args: &ServerArgs) -> Result<BrokerConfig, BrokerError> {
        let mut c = BrokerConfig::default();
        let mut advertised: Option<String> = None;
        let mut replication: Option<String> = None;
        let (mut kafka_listen_set, mut listeners, mut advertised_listeners) = (false, None, None);
        for layer in file
            .into_iter()
            .chain(std::iter::once(FileConfig::from_args(args)))
        {
            c.overlay(&layer)?;
            kafka_listen_set |= layer.kafka_listen.is_some();
            if layer.advertised_kafka.is_some() {
                advertised = layer.advertised_kafka;
            }
            if layer.listeners.is_some() {
                listeners = layer.listeners;
            }
            if layer.advertised_listeners.is_some() {
                advertised_listeners = layer.advertised_listeners;
            }
            if layer.default_replication.is_some() {
                replication = layer.default_replication;
            }
        }
        c.default_replication = match replication {
            Some(r) => r.parse()?,
            None if c.is_cluster() => Replication::CLUSTER,
            None => Replication::SINGLE,
        };
        if c.is_cluster() && c.roles.meta && !c.meta_voters.contains_key(&c.node_id) {
            return Err(BrokerError::Config(format!(
                "--roles includes meta but node {} is not in --meta-voters; list it there with its \
                 --raft-listen address, or drop meta from --roles to join as a learner through --meta-seeds",
                c.node_id
            )));
        }
        if c.is_cluster() && c.roles.bookie && c.bookie_listen.is_none() {
            return Err(BrokerError::Config(
                "the bookie role in a cluster needs --bookie-listen HOST:PORT, the address other nodes \
                 write this node's segment replicas to"
                    .into(),
            ));
        }
        if !c.roles.bookie && (c.bookie_listen.is_some() || c.advertised_bookie.is_some()) {
            // A broker without a bookie writes to the cluster's bookies; a
            // bookie address here would be registered by nobody and served
            // by nothing, so say so rather than ignore it.
            return Err(BrokerError::Config(format!(
                "--bookie-listen or --advertised-bookie is set but --roles ({}) has no bookie; add \
                 bookie to --roles to serve a segment store on this node, or drop those flags \
                 (DISTLOG_BOOKIE_LISTEN, DISTLOG_ADVERTISED_BOOKIE)",
                c.roles
            )));
        }
        if !c.is_cluster() && c.roles != Roles::default() {
            return Err(BrokerError::Config(
                "--roles other than all needs a cluster: give --meta-voters (or --meta-seeds to join one)"
                    .into(),
            ));
        }
        if c.broker_heartbeat_interval_ms == 0
            || c.broker_session_timeout_ms < 2 * c.broker_heartbeat_interval_ms
        {
            return Err(BrokerError::Config(
                "--broker-session-timeout-ms must be at least twice --broker-heartbeat-interval-ms (> 0)"
                    .into(),
            ));
        }
        split_host_port(&c.kafka_listen, "kafka-listen")?;
        split_host_port(&c.http_listen, "http-listen")?;
        split_host_port(&c.raft_listen, "raft-listen")?;
        if let Some(addr) = &c.bookie_listen {
            split_host_port(addr, "bookie-listen")?;
        }
        if let Some(addr) = &c.advertised_raft {
            split_host_port(addr, "advertised-raft")?;
        }
        if let Some(addr) = &c.advertised_bookie {
            split_host_port(addr, "advertised-bookie")?;
        }
        c.listeners = match listeners {
            Some(list) => {
                if kafka_listen_set || advertised.is_some() {
                    return Err(BrokerError::Config(
                        "--listeners replaces --kafka-listen and --advertised-kafka; give the \
                         advertised addresses with --advertised-listeners"
                            .into(),
                    ));
                }
                crate::listeners::resolve(&list, advertised_listeners.as_deref())?
            }
            None if advertised_listeners.is_some() => {
                return Err(BrokerError::Config(
                    "--advertised-listeners needs --listeners naming the same listeners".into(),
                ))
            }
            None => {
                let mut l = KafkaListener::from_bind(DEFAULT_LISTENER, &c.kafka_listen, "kafka-listen")?;
                if let Some(a) = advertised {
                    (l.advertised_host, l.advertised_port) = split_host_port(&a, "advertised-kafka")?;
                }
                vec![l]
            }
        };
        // The first listener is the node's primary address.
        let primary = &c.listeners[0];
        c.kafka_listen = primary.bind.clone();
        c.advertised_kafka_host = primary.advertised_host.clone();
        c.advertised_kafka_port = primary.advertised_port;
        if c.num_partitions == 0 {
            return Err(BrokerError::Config("--num-partitions must be at least 1".into()));
        }
        if c.segment_bytes == 0 || c.segment_ms == 0 {
            return Err(BrokerError::Config(
                "--segment-bytes and --segment-ms must be positive".into(),
            ));
        }
        if c.log_retention_ms < -1 || c.log_retention_bytes < -1 {
            return Err(BrokerError::Config(
                "--log-retention-ms and --log-retention-bytes must be -1 (unlimited) or at least 0".into(),
            ));
        }
        if c.log_retention_check_interval_ms == 0 {
            return Err(BrokerError::Config(
                "--log-retention-check-interval-ms must be positive".into(),
            ));
        }
        if i32::try_from(c.node_id).is_err() {
            return Err(BrokerError::Config(format!(
                "--node-id {} is out of range: Kafka broker ids are within [0, 2^31-1]",
                c.node_id
            )));
        }
        if c.max_request_bytes < 1024 || c.max_request_bytes > i32::MAX as usize {
            return Err(BrokerError::Config(
                "max request bytes must be within [1024, 2^31-1]".into(),
            ));
        }
        if c.message_max_bytes == 0 || c.message_max_bytes > i32::MAX as usize {
            return Err(BrokerError::Config(
                "message max bytes must be within [1, 2^31-1]".into(),
            ));
        }
        if c.group_min_session_timeout_ms > c.group_max_session_timeout_ms {
            return Err(BrokerError::Config(
                "--group-min-session-timeout-ms must not exceed --group-max-session-timeout-ms".into(),
            ));
        }
        if c.offsets_retention_minutes == 0 || c.offsets_retention_check_interval_ms == 0 {
            return Err(BrokerError::Config(
                "--offsets-retention-minutes and --offsets-retention-check-interval-ms must be positive"
                    .into(),
            ));
        }
        if c.log_retention_ms < -1 || c.log_retention_bytes < -1 {
            return Err(BrokerError::Config(
                "--log-retention-ms and --log-retention-bytes must be -1 (unlimited) or non-negative".into(),
            ));
        }
        if c.log_retention_check_interval_ms == 0 {
            return Err(BrokerError::Config(
                "--log-retention-check-interval-ms must be positive".into(),
            ));
        }
        if c.producer_id_expiration_ms == 0 || c.producer_id_expiration_ms > i64::MAX as u64 {
            return Err(BrokerError::Config(
                "--producer-id-expiration-ms must be positive".into(),
            ));
        }
        if c.transaction_max_timeout_ms == 0 || c.transaction_max_timeout_ms > i32::MAX as u64 {
            return Err(BrokerError::Config(
                "--transaction-max-timeout-ms must be within [1, 2^31-1]".into(),
            ));
        }
        if c.transaction_abort_timed_out_transaction_cleanup_interval_ms == 0 {
            return Err(BrokerError::Config(
                "--transaction-abort-timed-out-transaction-cleanup-interval-ms must be positive".into(),
            ));
        }
        if c.transactional_id_expiration_ms == 0 || c.transactional_id_expiration_ms > i64::MAX as u64 {
            return Err(BrokerError::Config(
                "--transactional-id-expiration-ms must be positive".into(),
            ));
        }
        if !(0.0..=1.0).contains(&c.test_drop_produce_responses) {
            return Err(BrokerError::Config(
                "DISTLOG_TEST_DROP_PRODUCE_RESPONSES must be a probability within [0, 1]".into(),
            ));
        }
        Ok(c)
    }

    /// Resolve from parsed args, loading the TOML file they name, if any.
    pub fn from_args(args: &ServerArgs) -> Result<BrokerConfig, BrokerError> {
        let file = args.config.as_deref().map(FileConfig::load).transpose()?;
        BrokerConfig::resolve(file, args)
    }

    fn overlay(&mut self, l: &FileConfig) -> Result<(), BrokerError> {
        fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
            if let Some(v) = src {
                *dst = v.clone();
            }
        }
        if let Some(id) = l.node_id {
            self.node_id = NodeId::from(id);
        }
        set(&mut self.data_dir, &l.data_dir);
        set(&mut self.kafka_listen, &l.kafka_listen);
        set(&mut self.http_listen, &l.http_listen);
        set(&mut self.raft_listen, &l.raft_listen);
        if l.bookie_listen.is_some() {
            self.bookie_listen = l.bookie_listen.clone();
        }
        if l.advertised_raft.is_some() {
            self.advertised_raft = l.advertised_raft.clone();
        }
        if l.advertised_bookie.is_some() {
            self.advertised_bookie = l.advertised_bookie.clone();
        }
        set(&mut self.auto_create_topics, &l.auto_create_topics);
        set(&mut self.num_partitions, &l.num_partitions);
        set(&mut self.segment_bytes, &l.segment_bytes);
        set(&mut self.segment_ms, &l.segment_ms);
        set(&mut self.log_retention_ms, &l.log_retention_ms);
        set(&mut self.log_retention_bytes, &l.log_retention_bytes);
        set(
            &mut self.log_retention_check_interval_ms,
            &l.log_retention_check_interval_ms,
        );
        set(&mut self.max_request_bytes, &l.max_request_bytes);
        set(&mut self.message_max_bytes, &l.message_max_bytes);
        set(&mut self.tail_cache_bytes, &l.tail_cache_bytes);
        set(&mut self.log_level, &l.log_level);
        set(&mut self.log_format, &l.log_format);
        set(&mut self.speculative_read_ms, &l.speculative_read_ms);
        set(&mut self.producer_id_expiration_ms, &l.producer_id_expiration_ms);
        set(
            &mut self.transaction_max_timeout_ms,
            &l.transaction_max_timeout_ms,
        );
        set(
            &mut self.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            &l.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        );
        set(
            &mut self.transactional_id_expiration_ms,
            &l.transactional_id_expiration_ms,
        );
        set(
            &mut self.test_drop_produce_responses,
            &l.test_drop_produce_responses,
        );
        set(
            &mut self.group_initial_rebalance_delay_ms,
            &l.group_initial_rebalance_delay_ms,
        );
        set(
            &mut self.group_min_session_timeout_ms,
            &l.group_min_session_timeout_ms,
        );
        set(
            &mut self.group_max_session_timeout_ms,
            &l.group_max_session_timeout_ms,
        );
        set(&mut self.offsets_retention_minutes, &l.offsets_retention_minutes);
        set(
            &mut self.offsets_retention_check_interval_ms,
            &l.offsets_retention_check_interval_ms,
        );
        if let Some(r) = &l.roles {
            self.roles = r.parse()?;
        }
        if let Some(v) = &l.meta_voters {
            self.meta_voters = parse_voters(v)?;
        }
        if let Some(v) = &l.meta_seeds {
            self.meta_seeds = parse_seeds(v)?;
        }
        set(&mut self.broker_session_timeout_ms, &l.broker_session_timeout_ms);
        set(
            &mut self.broker_heartbeat_interval_ms,
            &l.broker_heartbeat_interval_ms,
        );
        if l.rack.is_some() {
            self.rack = l.rack.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
