//! Prometheus metrics of the Kafka front end.
//!
//! Registered once, lazily, in the default registry, so `/metrics`
//! (`prometheus::gather()`) exports them together with the storage and
//! metadata crates' metrics.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};

/// Requests received, by API name (e.g. `Produce`, `Metadata`).
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_requests_total",
        "Kafka requests received, by API",
        &["api"]
    )
    .expect("metric distlog_requests_total registers once")
});

/// Request handling latency (decode to encoded response), by API.
pub static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "distlog_request_seconds",
        "Kafka request handling latency in seconds, by API",
        &["api"],
        vec![0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric distlog_request_seconds registers once")
});

/// Requests that failed as a whole (undecodable body, handler failure), by API.
pub static REQUEST_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_request_errors_total",
        "Kafka requests that failed as a whole, by API",
        &["api"]
    )
    .expect("metric distlog_request_errors_total registers once")
});

/// Bytes read from Kafka client sockets.
pub static BYTES_IN: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("distlog_bytes_in_total", "Bytes received from Kafka clients")
        .expect("metric distlog_bytes_in_total registers once")
});

/// Bytes written to Kafka client sockets.
pub static BYTES_OUT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("distlog_bytes_out_total", "Bytes sent to Kafka clients")
        .expect("metric distlog_bytes_out_total registers once")
});

/// Open Kafka client connections.
pub static CONNECTIONS_ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("distlog_connections_active", "Open Kafka client connections")
        .expect("metric distlog_connections_active registers once")
});

/// Stream ownership changes the controller applied (assignments of
/// unowned streams, moves off dead brokers, rebalancing moves).
pub static OWNERSHIP_MOVES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_controller_ownership_moves_total",
        "Stream ownership changes applied by the controller"
    )
    .expect("metric distlog_controller_ownership_moves_total registers once")
});

/// Partitions moved to their preferred owner by ElectLeaders.
pub static PREFERRED_ELECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_preferred_leader_elections_total",
        "Partitions moved to their preferred owner by ElectLeaders"
    )
    .expect("metric distlog_preferred_leader_elections_total registers once")
});

/// Registered nodes by lease state as this node sees them (`live`, `expired`).
pub static NODES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "distlog_cluster_nodes",
        "Registered nodes by lease state as seen by this node",
        &["state"]
    )
    .expect("metric distlog_cluster_nodes registers once")
});

/// Force registration of every metric, so `/metrics` lists them (at zero)
/// before the first request.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&REQUEST_SECONDS);
    LazyLock::force(&REQUEST_ERRORS);
    LazyLock::force(&BYTES_IN);
    LazyLock::force(&BYTES_OUT);
    LazyLock::force(&CONNECTIONS_ACTIVE);
    LazyLock::force(&OWNERSHIP_MOVES);
    LazyLock::force(&PREFERRED_ELECTIONS);
    LazyLock::force(&NODES);
    LazyLock::force(&PRODUCER_IDS_ACTIVE);
    LazyLock::force(&PRODUCER_DUPLICATES);
    LazyLock::force(&PRODUCE_GAPS_EXPLAINED);
    LazyLock::force(&PRODUCE_REFUSED);
    LazyLock::force(&RECOMPRESSED_BATCHES);
    LazyLock::force(&RECOMPRESSED_BYTES);
    LazyLock::force(&TXN_MARKER_SECONDS);
    LazyLock::force(&TRANSACTIONS);
    LazyLock::force(&TRANSACTIONS_OPEN);
}

/// Time from a transaction's prepare to each of its markers being durable
/// in its partition (and reported), on the node that wrote it.
pub static TXN_MARKER_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "distlog_txn_marker_write_seconds",
        "Seconds from a transaction's prepare to one of its markers written and recorded",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric distlog_txn_marker_write_seconds registers once")
});

/// Decrements [`CONNECTIONS_ACTIVE`] when dropped, so every exit path of a
/// connection task is counted.
pub struct ConnectionGuard(());

impl ConnectionGuard {
    /// Count one more open connection until the guard drops.
    pub fn new() -> Self {
        CONNECTIONS_ACTIVE.inc();
        ConnectionGuard(())
    }
}

impl Default for ConnectionGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        CONNECTIONS_ACTIVE.dec();
    }
}

/// Idempotent producers known to the partitions this node owns (each
/// partition counts its own; a producer writing to three counts three).
pub static PRODUCER_IDS_ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "distlog_producer_ids_active",
        "Idempotent producer ids in the producer state of the partitions owned by this node"
    )
    .expect("metric distlog_producer_ids_active registers once")
});

/// Retried batches recognised as duplicates and answered with their
/// original offset, without a write.
pub static PRODUCER_DUPLICATES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_producer_duplicate_batches_total",
        "Produced batches recognised as duplicates of a batch already written (answered with the original offset, not written again)"
    )
    .expect("metric distlog_producer_duplicate_batches_total registers once")
});

/// Idempotent batches refused as out of order only because the batch
/// before them had failed retriably, answered with that failure's error
/// instead of OUT_OF_ORDER_SEQUENCE_NUMBER (`crate::producer::failed`).
pub static PRODUCE_GAPS_EXPLAINED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_producer_gaps_explained_total",
        "Idempotent batches behind a retriably failed batch, answered with its retriable error instead of OUT_OF_ORDER_SEQUENCE_NUMBER"
    )
    .expect("metric distlog_producer_gaps_explained_total registers once")
});

/// Produced batches a partition refused at validation, by reason
/// (`invalid_timestamp`, `too_large`, `corrupt`, `invalid`).
pub static PRODUCE_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_produce_refused_batches_total",
        "Produced batches refused before the append, by reason",
        &["reason"]
    )
    .expect("metric distlog_produce_refused_batches_total registers once")
});

/// Batches recompressed into their topic's `compression.type`.
pub static RECOMPRESSED_BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_produce_recompressed_batches_total",
        "Produced batches recompressed into the topic's compression.type"
    )
    .expect("metric distlog_produce_recompressed_batches_total registers once")
});

/// Bytes of the batches produced by recompression (their stored size).
pub static RECOMPRESSED_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_produce_recompressed_bytes_total",
        "Stored bytes of batches recompressed into the topic's compression.type"
    )
    .expect("metric distlog_produce_recompressed_bytes_total registers once")
});

/// Consumer groups by state (`Empty`, `PreparingRebalance`, …).
pub static GROUPS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!("distlog_groups", "Consumer groups, by state", &["state"])
        .expect("metric distlog_groups registers once")
});

/// Rebalances started (a group entering PreparingRebalance).
pub static GROUP_REBALANCES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_group_rebalances_total",
        "Consumer group rebalances started"
    )
    .expect("metric distlog_group_rebalances_total registers once")
});

/// Partition offsets committed (durably), over all groups.
pub static GROUP_OFFSET_COMMITS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_group_offset_commits_total",
        "Partition offsets committed by consumer groups"
    )
    .expect("metric distlog_group_offset_commits_total registers once")
});

/// Raft writes of group state (each carries a batch of commits and records).
pub static GROUP_STORE_WRITES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_group_store_writes_total",
        "Metadata-store writes of consumer group state (batched)"
    )
    .expect("metric distlog_group_store_writes_total registers once")
});

/// Group ops per metadata-store write: how well commits batch.
pub static GROUP_STORE_BATCH_OPS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "distlog_group_store_batch_ops",
        "Consumer group changes carried by one metadata-store write",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 512.0, 4096.0]
    )
    .expect("metric distlog_group_store_batch_ops registers once")
});

/// Group changes skipped at apply: their coordinator's claim was not the
/// group's latest (another broker took it over), or a member's commit was
/// of a generation older than the stored one. Each failed with
/// NOT_COORDINATOR.
pub static GROUP_STORE_FENCED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_group_store_fenced_total",
        "Consumer group changes fenced at apply (a newer coordinator claim or generation); answered NOT_COORDINATOR"
    )
    .expect("metric distlog_group_store_fenced_total registers once")
});

/// Coordinator claims of consumer groups, by outcome (`ok`, `error`): each
/// load of a group onto a broker makes one.
pub static GROUP_CLAIMS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_group_claims_total",
        "Coordinator claims of consumer groups (one per load of a group onto this broker), by outcome",
        &["outcome"]
    )
    .expect("metric distlog_group_claims_total registers once")
});

/// Config changes asked by AlterConfigs and IncrementalAlterConfigs, per
/// resource: by resource kind (`topic`, `broker`, `other`) and outcome
/// (`applied`, `validated` for validate_only, or the Kafka error name).
pub static CONFIG_ALTERATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_config_alterations_total",
        "Config changes asked by AlterConfigs/IncrementalAlterConfigs, by resource kind and outcome",
        &["resource", "outcome"]
    )
    .expect("metric distlog_config_alterations_total registers once")
});

/// Transactions ended, by outcome: `commit` and `abort` for EndTxn
/// requests this node accepted, `timeout` for transactions the Raft
/// leader's sweeper aborted because they outlived their timeout.
pub static TRANSACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_transactions_total",
        "Transactions ended, by outcome (commit, abort, timeout)",
        &["outcome"]
    )
    .expect("metric distlog_transactions_total registers once")
});

/// Transactions open or being completed (Ongoing, PrepareCommit,
/// PrepareAbort), as counted by the timeout sweeper on the Raft leader
/// each round; 0 on other nodes.
pub static TRANSACTIONS_OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "distlog_transactions_open",
        "Transactions open or being completed, counted by the Raft leader (0 elsewhere)"
    )
    .expect("metric distlog_transactions_open registers once")
});
