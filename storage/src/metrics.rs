//! Prometheus metrics of the storage layer, registered once in the default
//! registry (the broker's `/metrics` gathers it).

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};

/// Latency of each group-commit fdatasync.
pub static FSYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "distlog_bookie_fsync_seconds",
        "Latency of bookie group-commit fdatasync calls",
        vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
    )
    .expect("metric registers once")
});

/// Number of fdatasync calls (one covers a whole group commit).
pub static FSYNCS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("distlog_bookie_fsyncs_total", "Bookie fdatasync calls")
        .expect("metric registers once")
});

/// Entries per group commit (how well concurrent adds share fsyncs).
pub static GROUP_COMMIT_ENTRIES: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "distlog_bookie_group_commit_entries",
        "Entries made durable by one bookie group commit",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0]
    )
    .expect("metric registers once")
});

/// Entries added (acknowledged durable) on this bookie.
pub static ENTRIES_ADDED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_bookie_entries_added_total",
        "Entries made durable by the bookie"
    )
    .expect("metric registers once")
});

/// Bytes of entry payload made durable on this bookie.
pub static BYTES_WRITTEN: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_bookie_bytes_written_total",
        "Entry payload bytes written by the bookie"
    )
    .expect("metric registers once")
});

/// Bytes read from ledger files (tail-cache misses).
pub static BYTES_READ_DISK: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_bookie_bytes_read_total",
        "Entry payload bytes read from disk by the bookie"
    )
    .expect("metric registers once")
});

/// Log segments currently open for writing (InProgress, owned here).
pub static ACTIVE_SEGMENTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "distlog_active_segments",
        "Log segments open for writing on this node"
    )
    .expect("metric registers once")
});

/// Segments rolled (completed) by writers on this node.
pub static SEGMENT_ROLLS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_segment_rolls_total",
        "Log segments completed by writers on this node"
    )
    .expect("metric registers once")
});

/// Open streams handed new settings after a topic config or a node-wide
/// default changed (applied without reopening the stream).
pub static STREAM_RECONFIGURED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_stream_reconfigured_total",
        "Open streams handed new settings after a topic or broker config change"
    )
    .expect("metric registers once")
});

/// Segments rolled early because a bookie of their ensemble failed an add
/// (the new segment's ensemble leaves the failed bookies out).
pub static ENSEMBLE_ROLLS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_log_ensemble_rolls_total",
        "Segments sealed and replaced on a new ensemble because a bookie failed"
    )
    .expect("metric registers once")
});

/// Open segments written degraded: a bookie of their ensemble failed and
/// too few healthy bookies exist to roll to a full new ensemble, so they go
/// on with the ack quorum of the remaining ones.
pub static DEGRADED_SEGMENTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "distlog_log_degraded_segments",
        "Open segments written with a failed ensemble bookie (no healthy replacement yet)"
    )
    .expect("metric registers once")
});

/// Stream-state snapshots written as control entries at segment starts.
pub static STATE_SNAPSHOTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_log_state_snapshots_total",
        "Stream-state snapshots (e.g. idempotent producer state) written at the start of a segment"
    )
    .expect("metric registers once")
});

/// Time to rebuild a stream's state when it opens (snapshot + replay).
pub static STATE_REBUILD_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "distlog_log_state_rebuild_seconds",
        "Time to rebuild a stream's state (e.g. idempotent producer state) from its last snapshot and the entries after it, when the stream opens",
        vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registers once")
});

/// Reads served from the writer's tail cache.
pub static TAIL_CACHE_HITS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_tail_cache_hits_total",
        "Entry reads served from the tail cache"
    )
    .expect("metric registers once")
});

/// Payload bytes held by all tail caches of this node.
pub static TAIL_CACHE_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "distlog_tail_cache_bytes",
        "Payload bytes held in stream tail caches"
    )
    .expect("metric registers once")
});

/// Reads that had to go to the segment store.
pub static TAIL_CACHE_MISSES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_tail_cache_misses_total",
        "Entry reads that missed the tail cache"
    )
    .expect("metric registers once")
});

/// Reads also sent to a second replica because the first was slow.
pub static SPECULATIVE_READS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "distlog_ledger_speculative_reads_total",
        "Ledger reads also sent to another replica after the speculative read delay"
    )
    .expect("metric distlog_ledger_speculative_reads_total registers once")
});

/// Bookie protocol requests by side (`server`: answered by this node's
/// bookie service, `client`: sent to remote bookies), op and outcome
/// (`ok` or the error, e.g. `fenced`, `unavailable`).
pub static BOOKIE_NET_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_bookie_net_requests_total",
        "Bookie protocol requests by side, op and outcome",
        &["side", "op", "outcome"]
    )
    .expect("metric registers once")
});

/// Bookie protocol request latency by side and op (server: decode to
/// answer queued; client: submit to answer received). Long-poll LAC reads
/// include their wait.
pub static BOOKIE_NET_REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "distlog_bookie_net_request_seconds",
        "Bookie protocol request latency by side and op",
        &["side", "op"],
        vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]
    )
    .expect("metric registers once")
});

/// Bookie protocol bytes on the wire by side and direction (`in`/`out`).
pub static BOOKIE_NET_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_bookie_net_bytes_total",
        "Bookie protocol bytes read (in) and written (out), by side",
        &["side", "direction"]
    )
    .expect("metric registers once")
});

/// Open connections to this node's bookie service.
pub static BOOKIE_NET_SERVER_CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "distlog_bookie_net_server_connections",
        "Open client connections to this node's bookie service"
    )
    .expect("metric registers once")
});

/// Connection attempts to remote bookies by outcome (`ok`, `refused`,
/// `timeout`, `error`).
pub static BOOKIE_NET_CONNECTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_bookie_net_client_connects_total",
        "Connection attempts to remote bookies by outcome",
        &["outcome"]
    )
    .expect("metric registers once")
});

/// Ledger copies deleted from bookies (or not), by why the ledger was freed
/// (`topic_deleted`, `truncated`: its segment left the metadata, deleted on
/// every bookie of its ensemble; `orphan`: found unreferenced by the
/// startup garbage collection) and outcome (`ok`, `failed`: the bookie did
/// not answer; it collects the ledger as an orphan when it next starts).
pub static LEDGER_DELETES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_ledger_deletes_total",
        "Ledger copies deleted from bookies, by reason and outcome",
        &["reason", "outcome"]
    )
    .expect("metric registers once")
});

/// Payload bytes of sealed segments truncated away, by cause (`retention`:
/// the retention check; `delete_records`: a client's DeleteRecords).
pub static LOG_TRUNCATED_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_log_truncated_bytes_total",
        "Payload bytes of segments truncated from streams, by cause",
        &["cause"]
    )
    .expect("metric registers once")
});

/// Sealed segments truncated away, by cause (as
/// [`LOG_TRUNCATED_BYTES`]).
pub static LOG_TRUNCATED_SEGMENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "distlog_log_truncated_segments_total",
        "Segments truncated from streams, by cause",
        &["cause"]
    )
    .expect("metric registers once")
});

/// Log start offset of each partition this node owns, refreshed by every
/// retention check (and by each truncation).
pub static LOG_START_OFFSET: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "distlog_log_start_offset",
        "First readable offset of each partition this node owns",
        &["topic", "partition"]
    )
    .expect("metric registers once")
});

/// Bytes held by each partition this node owns (its sealed segments, from
/// metadata, plus what the writer put in the segment it is writing),
/// refreshed by every retention check.
pub static LOG_SIZE_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "distlog_log_size_bytes",
        "Payload bytes of each partition this node owns",
        &["topic", "partition"]
    )
    .expect("metric registers once")
});

/// Duration of one retention check over every stream this node owns.
pub static RETENTION_CHECK_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "distlog_log_retention_check_seconds",
        "Duration of a retention check over the streams this node owns",
        vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]
    )
    .expect("metric registers once")
});
