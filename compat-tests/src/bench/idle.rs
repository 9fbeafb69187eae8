//! Idle RSS: how much memory a broker holds when it owns many partitions and nothing happens.

use std::thread;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::probe::BrokerProbe;
use crate::kafka;

/// Measures the broker's RSS, creates `topic` with `partitions` partitions (CreateTopics), checks
/// through Metadata that they all exist, waits `settle` for the broker to open every stream, and
/// measures the RSS again.
pub fn run(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
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
    let after = probe.rss_mib().context("broker RSS")?;
    let active_segments = probe.metric("distlog_active_segments");
    Ok(vec![
        ("active_segments".to_string(), json!(active_segments)),
        ("partitions".to_string(), json!(partitions)),
        ("rss_before_mib".to_string(), json!(before)),
        ("rss_mib".to_string(), json!(after)),
        ("settle_secs".to_string(), json!(settle.as_secs_f64())),
    ])
}
