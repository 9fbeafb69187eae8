//! Idle RSS: how much memory a broker holds when it has many partitions and nothing happens.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::probe::BrokerProbe;
use crate::produce::{self, ProduceOptions};
use distlog_compat_tests::kafka;

/// Measures the broker's RSS; creates `topic` with `partitions` partitions (CreateTopics), checks
/// through Metadata that they all exist, waits `settle` and measures again (partitions created but
/// never written: a broker may not open their streams yet); then writes one message of
/// `touch_bytes` to every partition (which opens every stream), waits `settle` and measures the
/// RSS of a broker idle with that many open partitions.
pub fn run(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    touch_bytes: usize,
    settle: Duration,
    probe: &BrokerProbe,
) -> anyhow::Result<Vec<(String, Value)>> {
    let before = probe.rss_mib().context("idle RSS needs --broker-pid")?;
    kafka::create_topic(bootstrap, topic, partitions)?;
    let metadata = kafka::fetch_metadata(bootstrap, Some(topic))?;
    let seen = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    if seen != usize::try_from(partitions)? {
        bail!("created {partitions} partitions but Metadata shows {seen}");
    }
    thread::sleep(settle);
    let created = probe.rss_mib().context("broker RSS")?;
    let segments_created = probe.metric("distlog_active_segments");

    // One message per partition: round-robin over `partitions` for exactly that many values.
    let touch = ProduceOptions {
        bootstrap: bootstrap.to_string(),
        topic: topic.to_string(),
        partitions,
        size: touch_bytes.max(1),
        acks: "all".to_string(),
        linger_ms: 5,
        batch_bytes: 1_000_000,
        batch_messages: 10_000,
        window_kbytes: 16_384,
        window_messages: 100_000,
        duration: None,
        total_bytes: Some(u64::try_from(partitions)? * touch_bytes.max(1) as u64),
        rate: None,
        stamp_values: false,
        timeout: Duration::from_secs(120),
        idempotent: false,
        max_in_flight: None,
        warmup: None,
    };
    let touched = produce::run(&touch, Instant::now())?;
    thread::sleep(settle);
    let after = probe.rss_mib().context("broker RSS")?;
    Ok(vec![
        ("partitions".to_string(), json!(partitions)),
        ("rss_before_mib".to_string(), json!(before)),
        ("rss_created_mib".to_string(), json!(created)),
        ("active_segments_created".to_string(), json!(segments_created)),
        ("touch_msgs".to_string(), json!(touched.acked)),
        ("rss_mib".to_string(), json!(after)),
        (
            "active_segments".to_string(),
            json!(probe.metric("distlog_active_segments")),
        ),
        ("settle_secs".to_string(), json!(settle.as_secs_f64())),
    ])
}
