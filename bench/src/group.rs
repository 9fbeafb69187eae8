//! Consumer-group scenarios: synchronous commit throughput and latency (`group-commit`), and how
//! long a group takes to rebalance when a member joins or leaves (`group-rebalance`).
//!
//! Unlike the read scenarios these consumers subscribe: they exercise the group coordinator
//! (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit). Every run uses a
//! fresh group id, so reruns against the same broker measure the same thing.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use serde_json::{json, Value};

use super::stats::Latencies;
use super::{ensure_topic, watermarks};
use crate::probe::BrokerProbe;
use distlog_compat_tests::group::{
    assignments_cover, group_consumer_config, CommitPolicy, GroupMember, GroupRun, CLOSE_DEADLINE,
};
use distlog_compat_tests::kafka::{self, patterned_payload, TestRecord};

/// A group id no earlier run used: `<prefix>-<pid>-<unix ms>`.
fn fresh_group(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        distlog_compat_tests::now_ms()
    )
}

/// What `group-commit` does.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The topic (one partition; created if missing, filled up to `messages` if shorter).
    pub topic: String,
    /// Messages to consume, each followed by a synchronous commit.
    pub messages: usize,
    /// Value size of the messages produced to fill the topic.
    pub size: usize,
    /// Give up (error) after this long.
    pub timeout: Duration,
}

/// `group-commit`: one group member consumes `messages` messages of a one-partition topic from
/// the beginning and commits each synchronously (OffsetCommit of `offset + 1`) before polling the
/// next. Reports commits per second over the commit window (first commit sent → last answered),
/// the commit latency percentiles, and the time from subscribe to the first message (joining).
pub fn commit(opts: &CommitOptions, probe: &BrokerProbe) -> anyhow::Result<Vec<(String, Value)>> {
    ensure_topic(&opts.bootstrap, &opts.topic, 1)?;
    let (low, high) = watermarks(&opts.bootstrap, &opts.topic, 0)?;
    let have = usize::try_from(high - low).unwrap_or(0);
    if have < opts.messages {
        let records: Vec<TestRecord> = (have..opts.messages)
            .map(|i| TestRecord::value(patterned_payload(i, opts.size)))
            .collect();
        kafka::produce_records(
            &kafka::producer_config(&opts.bootstrap, "all"),
            &opts.topic,
            Some(0),
            &records,
            opts.timeout,
        )
        .context("fill the topic")?;
    }

    let group = fresh_group("bench-commit");
    let member = GroupMember::subscribe(
        &group_consumer_config(&opts.bootstrap, &group),
        "bench-commit",
        &[&opts.topic],
    )?;
    let consumer = member.consumer();
    let subscribed = Instant::now();
    let mut first_message = None;
    let mut latencies = Latencies::with_capacity(opts.messages);
    let mut window: Option<(Instant, Instant)> = None;
    let mut before = None;
    let mut committed = 0usize;
    while committed < opts.messages {
        if subscribed.elapsed() > opts.timeout {
            bail!(
                "committed {committed} of {} messages within {:?}",
                opts.messages,
                opts.timeout
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                first_message.get_or_insert_with(|| subscribed.elapsed());
                if before.is_none() {
                    before = Some(probe.sample());
                }
                let started = Instant::now();
                consumer
                    .commit_message(&msg, CommitMode::Sync)
                    .with_context(|| format!("commit after message {committed}"))?;
                let done = Instant::now();
                latencies
                    .record_ns(u64::try_from(done.duration_since(started).as_nanos()).unwrap_or(u64::MAX));
                window = Some((window.map_or(started, |(s, _)| s), done));
                committed += 1;
            }
            Some(Err(e)) => return Err(e).context("consume"),
            None => {}
        }
    }
    let after = probe.sample();
    let (start, end) = window.context("no commit was made")?;
    let secs = end.duration_since(start).as_secs_f64().max(1e-9);
    let mut out = vec![
        ("topic".to_string(), json!(opts.topic)),
        ("messages".to_string(), json!(opts.messages)),
        ("commits".to_string(), json!(committed)),
        ("commit_secs".to_string(), json!(secs)),
        ("commits_per_s".to_string(), json!(committed as f64 / secs)),
        (
            "join_ms".to_string(),
            json!(first_message.unwrap_or_default().as_secs_f64() * 1000.0),
        ),
    ];
    out.extend(latencies.summary("commit"));
    if let Some(before) = before {
        out.extend(probe.delta(&before, &after, 0));
    }
    member.close(CLOSE_DEADLINE)?;
    Ok(out)
}

/// What `group-rebalance` does.
#[derive(Debug, Clone)]
pub struct RebalanceOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The topic (created with `partitions` partitions if missing; no data needed).
    pub topic: String,
    /// Partitions of the topic (at least 3, so every member of three can own one).
    pub partitions: i32,
    /// The members' `session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// The members' `heartbeat.interval.ms` (how soon a member learns of a rebalance).
    pub heartbeat_interval_ms: u64,
    /// Give up (error) when one step takes longer than this.
    pub timeout: Duration,
}

/// `group-rebalance`: two members form a group (`form_ms`, which includes the broker's initial
/// rebalance delay); a third subscribes and the time until all three own partitions that cover
/// the topic is `join_ms`; then the first member closes (LeaveGroup) and the time until the
/// remaining two cover the topic is `leave_ms` (of which the close itself took `close_ms`).
pub fn rebalance(opts: &RebalanceOptions) -> anyhow::Result<Vec<(String, Value)>> {
    if opts.partitions < 3 {
        bail!(
            "group-rebalance needs at least 3 partitions, got {}",
            opts.partitions
        );
    }
    ensure_topic(&opts.bootstrap, &opts.topic, opts.partitions)?;
    let group = fresh_group("bench-rebalance");
    let mut config: ClientConfig = group_consumer_config(&opts.bootstrap, &group);
    config
        .set("session.timeout.ms", opts.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", opts.heartbeat_interval_ms.to_string());
    let topics = [opts.topic.as_str()];
    let partitions = opts.partitions;
    // Messages that happen to be in the topic are read and dropped; only assignments matter.
    let mut run = GroupRun::new();

    let started = Instant::now();
    let m1 = GroupMember::subscribe(&config, "bench-m1", &topics)?;
    let m2 = GroupMember::subscribe(&config, "bench-m2", &topics)?;
    run.drive(
        &[&m1, &m2],
        CommitPolicy::Never,
        opts.timeout,
        "two members form the group",
        |_, m| assignments_cover(m, partitions),
    )?;
    let form = started.elapsed();

    let started = Instant::now();
    let m3 = GroupMember::subscribe(&config, "bench-m3", &topics)?;
    run.drive(
        &[&m1, &m2, &m3],
        CommitPolicy::Never,
        opts.timeout,
        "the third member joins",
        |_, m| assignments_cover(m, partitions),
    )?;
    let join = started.elapsed();

    let started = Instant::now();
    m1.close(CLOSE_DEADLINE)?;
    let close = started.elapsed();
    run.drive(
        &[&m2, &m3],
        CommitPolicy::Never,
        opts.timeout,
        "the first member leaves",
        |_, m| assignments_cover(m, partitions),
    )?;
    let leave = started.elapsed();

    let ms = |d: Duration| json!(d.as_secs_f64() * 1000.0);
    Ok(vec![
        ("topic".to_string(), json!(opts.topic)),
        ("partitions".to_string(), json!(opts.partitions)),
        ("session_timeout_ms".to_string(), json!(opts.session_timeout_ms)),
        (
            "heartbeat_interval_ms".to_string(),
            json!(opts.heartbeat_interval_ms),
        ),
        ("form_ms".to_string(), ms(form)),
        ("join_ms".to_string(), ms(join)),
        ("leave_ms".to_string(), ms(leave)),
        ("close_ms".to_string(), ms(close)),
        (
            "rebalance_callbacks".to_string(),
            json!([&m2, &m3].iter().map(|m| m.events().len()).sum::<usize>()),
        ),
    ])
}
