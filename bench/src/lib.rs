//! The benchmark suite's load generator (`distlog-bench`), as a library.
//!
//! Every scenario of the suite (issue 3) is a function here that drives a running broker with
//! librdkafka clients and returns one JSON object of results; the `distlog-bench` binary prints it
//! as one line, and `bench/run.sh` aggregates the lines of repeated runs into the results table.
//!
//! - [`stats`]: latency recording and percentiles.
//! - [`probe`]: the broker's own costs — CPU time and RSS from `/proc/<pid>`, fsyncs and bytes
//!   written from its `/metrics` — sampled around a scenario's measured window.
//! - [`produce`]: the producer engine (full speed or paced, bounded in-flight window, ack latency).
//! - [`consume`]: catch-up reads, a tail consumer keeping up with a producer, and fan-out.
//! - [`e2e`]: produce → consume latency at a fixed rate.
//! - [`idle`]: the RSS of a broker that is idle with many partitions.
//! - [`group`]: consumer groups — synchronous commit rate and latency, rebalance times.
//! - [`idempotence`]: idempotent vs plain produce throughput, measured back to back (issue 12).
//! - [`raw_produce`]: hand-built InitProducerId and idempotent Produce requests, pipelined.
//! - [`rebuild`]: the time to rebuild many idempotent producers' state when a partition is opened
//!   by a new incarnation of its owner, and the time to the first produce after a restart.
//! - [`retention`]: the time retention takes to free a large expired topic, and the ack latency
//!   of a steady produce load while it does (issue 13).
//! - [`transactions`]: transactional vs idempotent produce throughput with 1 and 8 producers, and
//!   the latency of a committed message to a `read_committed` consumer (issue 14).
//! - [`json_log`]: the broker's JSON log lines, with their times, read back.
//! - [`steady_load`]: a paced acks=all producer that keeps every message's send instant, so its
//!   latency can be cut into windows of a scenario's timeline.
//!
//! The read scenarios position their consumers with `assign()` and never commit (each consumer
//! still gets its own `group.id`); only [`group`] subscribes and commits.

pub mod consume;
pub mod e2e;
pub mod group;
pub mod idempotence;
pub mod idle;
pub mod json_log;
pub mod probe;
pub mod produce;
pub mod raw_produce;
pub mod rebuild;
pub mod retention;
pub mod stats;
pub mod steady_load;
pub mod transactions;
pub mod txn_visibility;

use std::time::Duration;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use distlog_compat_tests::kafka;

/// Creates `topic` with `partitions` partitions, accepting a topic that already exists (a rerun
/// against the same broker reuses it).
pub fn ensure_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    ensure_topic_replicated(bootstrap, topic, partitions, 1)
}

/// [`ensure_topic`] with replication factor `rf`.
pub fn ensure_topic_replicated(bootstrap: &str, topic: &str, partitions: i32, rf: i32) -> anyhow::Result<()> {
    match kafka::create_topic_replicated(bootstrap, topic, partitions, rf, &[]) {
        Ok(()) => Ok(()),
        Err(e) if format!("{e:#}").contains("TopicAlreadyExists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The (low, high) watermarks of one partition, asked of the broker (ListOffsets).
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
    let consumer: BaseConsumer = kafka::consumer_config(bootstrap)
        .create()
        .context("create consumer for watermarks")?;
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .with_context(|| format!("watermarks of {topic}/{partition}"))
}

/// A consumer configuration for benchmark reads: assign-only (no commits), its own `group.id`, a
/// large local queue and `fetch_max_kbytes` per partition per fetch, so the client is not the
/// first thing to limit read throughput.
pub fn bench_consumer_config(bootstrap: &str, group: &str, fetch_max_kbytes: usize) -> ClientConfig {
    let mut config = kafka::consumer_config(bootstrap);
    config
        .set("group.id", group)
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .set("fetch.message.max.bytes", (fetch_max_kbytes * 1024).to_string())
        .set(
            "fetch.max.bytes",
            (fetch_max_kbytes * 1024 * 4).max(52_428_800).to_string(),
        )
        .set("queued.max.messages.kbytes", "262144")
        .set("check.crcs", "false");
    config
}

/// Megabytes (10^6 bytes) per second, 0 for an empty interval.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 / secs / 1e6
    }
}
