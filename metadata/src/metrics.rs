//! Prometheus metrics of the metadata store, registered once in the default
//! registry (so the broker's `/metrics` endpoint exports them).

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

fn register<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    if let Err(e) = prometheus::register(Box::new(metric.clone())) {
        // Registration fails only if the name is taken already; the metric
        // still counts, it is just not exported twice.
        tracing::warn!(error = %e, "metadata metric not registered in the default registry");
    }
    metric
}

/// Register every metadata metric now, so they are exported (at zero)
/// before the first write. Idempotent.
pub fn init() {
    LazyLock::force(&WRITES);
    LazyLock::force(&WRITE_SECONDS);
    LazyLock::force(&LAST_APPLIED_INDEX);
    LazyLock::force(&APPLY_REFUSALS);
    LazyLock::force(&SNAPSHOTS_BUILT);
}

/// Commands submitted through `MetadataStore::write`, by outcome
/// (`ok`, `rejected`, `error`).
pub static WRITES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("distlog_metadata_writes_total", "Metadata writes by outcome"),
            &["outcome"],
        )
        .expect("static metric definition is valid"),
    )
});

/// Latency of `MetadataStore::write` (replicate + apply).
pub static WRITE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(HistogramOpts::new(
            "distlog_metadata_write_seconds",
            "Latency of metadata writes (commit and apply)",
        ))
        .expect("static metric definition is valid"),
    )
});

/// Index of the last log entry applied by the local state machine.
pub static LAST_APPLIED_INDEX: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "distlog_metadata_last_applied_index",
            "Raft log index last applied by the local metadata state machine",
        )
        .expect("static metric definition is valid"),
    )
});

/// Commands the state machine refused (deterministic refusals).
pub static APPLY_REFUSALS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "distlog_metadata_apply_refusals_total",
            "Commands refused by the metadata state machine",
        )
        .expect("static metric definition is valid"),
    )
});

/// Snapshots built by the local state machine.
pub static SNAPSHOTS_BUILT: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "distlog_metadata_snapshots_built_total",
            "Metadata snapshots built",
        )
        .expect("static metric definition is valid"),
    )
});
