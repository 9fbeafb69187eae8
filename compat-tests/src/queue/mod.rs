//! The reliability campaign's trials: a cluster in network namespaces, the
//! queue [`workload`] running under a [`nemesis`](crate::nemesis) schedule,
//! a final full read, and the [`checker`]'s verdict.
//!
//! A trial is a function of its seed: the schedule is drawn from it, and
//! the report prints the seed and the schedule, so
//! `scripts/chaos.sh --seed S` replays the same faults.

pub mod checker;
pub mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::cluster::{ClusterOptions, LocalCluster};
use crate::kafka;
use crate::nemesis::{runner, Schedule};
use checker::{Anomaly, History, SendOutcome};
use workload::{Workload, WorkloadConfig};

/// A trial's settings.
#[derive(Debug, Clone)]
pub struct TrialConfig {
    /// The seed of the schedule.
    pub seed: u64,
    /// Cluster size (3 or 5).
    pub nodes: usize,
    /// How long faults are injected.
    pub duration: Duration,
    /// How soon after healing writes must be acknowledged again.
    pub recovery_bound: Duration,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Where cluster directories go; a failed trial's node logs are copied
    /// to `keep/seed-<seed>/`.
    pub work_dir: PathBuf,
}

/// What a trial did and found.
#[derive(Debug, Clone)]
pub struct TrialReport {
    /// The settings.
    pub config: TrialConfig,
    /// The schedule drawn from the seed.
    pub schedule: Schedule,
    /// What the nemesis did, line by line.
    pub history: Vec<String>,
    /// Faults applied per kind.
    pub applied: BTreeMap<&'static str, usize>,
    /// Values sent, acknowledged (and so checked), and records in the
    /// final read.
    pub sent: usize,
    /// Acknowledged values.
    pub acked: usize,
    /// Records in the final read.
    pub final_records: usize,
    /// Records polled by the readers and the group member.
    pub polled: usize,
    /// The group member's commits: (acknowledged, attempted), and its
    /// assignments (read sessions).
    pub group: (usize, usize, usize),
    /// Client errors seen (expected under faults), by kind.
    pub client_errors: BTreeMap<String, usize>,
    /// The anomalies (empty: the trial passed).
    pub anomalies: Vec<Anomaly>,
    /// Problems of the harness itself (a fault it could not inject, a
    /// final read it could not finish): the trial fails on them too.
    pub harness_errors: Vec<String>,
    /// Wall time of the trial.
    pub took: Duration,
}

impl TrialReport {
    /// Whether the trial passed.
    pub fn passed(&self) -> bool {
        self.anomalies.is_empty() && self.harness_errors.is_empty()
    }

    /// The compact account a failed trial prints: seed, schedule, what
    /// the nemesis did, the anomalies (at most 20 of each kind), and the
    /// command that replays it.
    pub fn describe(&self) -> String {
        let mut out = self.schedule.describe();
        out.push_str("nemesis:\n");
        for line in &self.history {
            out.push_str(&format!("  {line}\n"));
        }
        out.push_str(&format!(
            "{} sent, {} acknowledged, {} in the final read, {} polled; group: {} of {} commits \
             acknowledged over {} assignments; client errors {:?}\n",
            self.sent,
            self.acked,
            self.final_records,
            self.polled,
            self.group.0,
            self.group.1,
            self.group.2,
            self.client_errors
        ));
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &self.anomalies {
            let n = shown.entry(a.name()).or_default();
            *n += 1;
            if *n <= 20 {
                out.push_str(&format!("ANOMALY {a}\n"));
            }
        }
        for (name, n) in shown.iter().filter(|(_, n)| **n > 20) {
            out.push_str(&format!("ANOMALY {name}: {n} in all\n"));
        }
        for e in &self.harness_errors {
            out.push_str(&format!("HARNESS {e}\n"));
        }
        out.push_str(&format!(
            "replay: scripts/chaos.sh --seed {} --nodes {} --duration {}\n",
            self.config.seed,
            self.config.nodes,
            self.config.duration.as_secs()
        ));
        out
    }
}

/// The small disk's size: room for a trial's data many times over, small
/// enough to fill in a blink.
const SMALL_DISK_MB: u64 = 256;

/// Create the trial's topic (3 copies). The node answering CreateTopics
/// counts live bookies in its own metadata replica, which can trail the
/// node the readiness check asked by a moment (soak seed 5172, under load):
/// INVALID_REPLICATION_FACTOR is retried for a bounded time, as an operator
/// would, any other error is not.
fn create_queue_topic(cluster: &LocalCluster, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match kafka::create_topic_replicated(cluster.bootstrap(), topic, partitions, 3, &[]) {
            Ok(()) => return Ok(()),
            Err(e) if format!("{e:#}").contains("InvalidReplicationFactor") && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Run one trial.
pub fn run_trial(cfg: &TrialConfig) -> anyhow::Result<TrialReport> {
    let started = Instant::now();
    let schedule = Schedule::generate(cfg.seed, cfg.nodes, cfg.duration);
    std::fs::create_dir_all(&cfg.work_dir)?;
    let cluster = LocalCluster::up_with(
        cfg.nodes,
        "",
        &ClusterOptions {
            netns: true,
            small_disk: Some((schedule.disk_node, SMALL_DISK_MB)),
            parent: Some(cfg.work_dir.clone()),
        },
    )
    .context("start the cluster")?;
    let topic = "queue";
    create_queue_topic(&cluster, topic, cfg.partitions).context("create the topic")?;
    let all: Vec<usize> = (1..=cfg.nodes).collect();
    for p in 0..cfg.partitions {
        cluster.wait_owner(&all, topic, p as u64, Duration::from_secs(30))?;
    }
    let mut workload = Workload::start(WorkloadConfig {
        bootstrap: cluster.bootstrap().to_string(),
        topic: topic.to_string(),
        partitions: cfg.partitions,
        producers: 2,
        readers: 2,
        interval: Duration::from_millis(5),
        group: "queue-group".to_string(),
    })?;
    // A moment of calm first, so a trial always has writes before faults.
    thread::sleep(Duration::from_secs(2));
    let nemesis = runner::run(&cluster, &schedule, Instant::now());
    let mut harness_errors = nemesis.errors.clone();
    let healed = nemesis.healed_at.unwrap_or_else(Instant::now);
    // Writes must come back within the bound; then a few more seconds of
    // a healthy cluster.
    let deadline = healed + cfg.recovery_bound;
    while workload.first_ack_after(healed).is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(3));
    let recovery = workload.first_ack_after(healed);
    workload.stop_sending();
    let final_read = match read_everything(cluster.bootstrap(), topic, cfg.partitions) {
        Ok(r) => r,
        Err(e) => {
            harness_errors.push(format!("final read: {e:#}"));
            BTreeMap::new()
        }
    };
    let ends: BTreeMap<i32, i64> = final_read
        .iter()
        .map(|(p, r)| (*p, r.last().map_or(0, |(o, _)| o + 1)))
        .collect();
    let stuck = workload.stop_reading(&ends, cfg.recovery_bound);
    let final_committed = match committed(cluster.bootstrap(), topic, "queue-group", cfg.partitions) {
        Ok(c) => c,
        Err(e) => {
            harness_errors.push(format!("read the group's committed offsets: {e:#}"));
            BTreeMap::new()
        }
    };
    let client_log = workload.client_log();
    let (sends, sessions, commits, client_errors) = workload.take();
    let history = History {
        sends,
        sessions,
        commits,
        final_committed,
        final_read,
        recovery,
        recovery_bound: cfg.recovery_bound,
        stuck,
    };
    let anomalies = if harness_errors.iter().any(|e| e.starts_with("final read")) {
        Vec::new()
    } else {
        checker::check(&history)
    };
    let report = TrialReport {
        config: cfg.clone(),
        sent: history.sends.len(),
        acked: history
            .sends
            .iter()
            .filter(|s| matches!(s.outcome, SendOutcome::Acked(_)))
            .count(),
        final_records: history.final_read.values().map(Vec::len).sum(),
        polled: history.sessions.iter().map(|s| s.reads.len()).sum(),
        group: (
            history.commits.iter().filter(|c| c.acked).count(),
            history.commits.len(),
            history
                .sessions
                .iter()
                .filter(|s| s.consumer == "group-member")
                .count(),
        ),
        schedule,
        history: nemesis.history,
        applied: nemesis.applied,
        client_errors,
        anomalies,
        harness_errors,
        took: started.elapsed(),
    };
    if !report.passed() {
        keep_logs(&cluster, cfg, &report, &client_log);
    }
    Ok(report)
}

/// Every record of every partition, 0 to the high watermark, read with a
/// fresh consumer (retrying for a minute while the cluster settles).
fn read_everything(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, Vec<(i64, String)>>> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let deadline = Instant::now() + Duration::from_secs(60);
        let records = loop {
            match read_partition(bootstrap, topic, p) {
                Ok(r) => break r,
                Err(e) if Instant::now() >= deadline => return Err(e.context(format!("partition {p}"))),
                Err(_) => thread::sleep(Duration::from_millis(500)),
            }
        };
        out.insert(p, records);
    }
    Ok(out)
}

fn read_partition(bootstrap: &str, topic: &str, p: i32) -> anyhow::Result<Vec<(i64, String)>> {
    let (low, high) = kafka::watermarks(bootstrap, topic, p)?;
    if low != 0 {
        bail!("partition {p}: the log start moved to {low}");
    }
    let consumer = kafka::assigned_consumer(&kafka::consumer_config(bootstrap), topic, p, Offset::Offset(0))?;
    let records = kafka::poll_n_across_failures(&consumer, high as usize, Duration::from_secs(30))?;
    Ok(records
        .into_iter()
        .map(|r| {
            let v = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned();
            (r.offset, v)
        })
        .collect())
}

/// The group's committed offsets (OffsetFetch through a consumer that
/// never joins), retried for half a minute.
fn committed(
    bootstrap: &str,
    topic: &str,
    group: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = crate::group::group_consumer_config(bootstrap, group).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(list) => {
                return Ok(list
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect())
            }
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Copy every node's log, the report and the producers' `eos` log to
/// `work_dir/keep/seed-<seed>/`.
fn keep_logs(c: &LocalCluster, cfg: &TrialConfig, report: &TrialReport, client_log: &[String]) {
    let dir = cfg.work_dir.join("keep").join(format!("seed-{}", cfg.seed));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for k in 1..=c.size() {
        let _ = std::fs::copy(
            c.dir().join(format!("node{k}")).join("log"),
            dir.join(format!("node{k}.log")),
        );
    }
    let _ = std::fs::write(dir.join("report.txt"), report.describe());
    let _ = std::fs::write(dir.join("producers-eos.log"), client_log.join("\n"));
}
