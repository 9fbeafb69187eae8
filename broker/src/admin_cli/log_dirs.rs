//! `distlog admin log-dirs describe`: DescribeLogDirs to each broker —
//! its log dirs, their disk totals, and each partition's size.

use clap::Subcommand;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use serde::Serialize;

use super::error::{code_name, Result};
use super::output::{or_dash, table, Report};
use super::routing::{topic_name, Cluster};

/// `distlog admin log-dirs` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum LogDirsCommand {
    /// Each broker's log dirs and partition sizes.
    Describe {
        /// Only these brokers (repeatable; all when omitted).
        #[arg(long = "broker", value_name = "ID")]
        brokers: Vec<i32>,
        /// Only these topics (repeatable; all when omitted).
        #[arg(long = "topic", value_name = "TOPIC")]
        topics: Vec<String>,
    },
}

/// A partition in a log dir (`log-dirs describe --json`).
#[derive(Debug, Serialize, PartialEq)]
pub struct LogDirPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Bytes on disk.
    pub size_bytes: i64,
    /// How far the replica is behind the leader's log end.
    pub offset_lag: i64,
    /// Whether this is a future replica (being moved).
    pub is_future: bool,
}

/// A log dir (`log-dirs describe --json`).
#[derive(Debug, Serialize, PartialEq)]
pub struct LogDir {
    /// Path on the broker.
    pub path: String,
    /// Kafka's error name, `null` when healthy.
    pub error: Option<String>,
    /// Disk size in bytes (-1: unknown).
    pub total_bytes: i64,
    /// Free bytes (-1: unknown).
    pub usable_bytes: i64,
    /// Partitions in it, by topic and index.
    pub partitions: Vec<LogDirPartition>,
}

/// A broker's log dirs (`log-dirs describe --json`).
#[derive(Debug, Serialize, PartialEq)]
pub struct BrokerLogDirs {
    /// Broker id.
    pub broker: i32,
    /// Its log dirs.
    pub log_dirs: Vec<LogDir>,
}

/// The DescribeLogDirs request of `topics` with their partitions (`None`:
/// every partition of every topic).
pub fn describe_request(topics: Option<Vec<(String, Vec<i32>)>>) -> DescribeLogDirsRequest {
    DescribeLogDirsRequest::default().with_topics(topics.map(|topics| {
        topics
            .into_iter()
            .map(|(t, partitions)| {
                DescribableLogDirTopic::default()
                    .with_topic(topic_name(&t))
                    .with_partitions(partitions)
            })
            .collect()
    }))
}

/// A DescribeLogDirs answer of `version` as log dirs (v4 has the disk
/// totals; older versions report -1).
pub fn log_dirs_of(version: i16, answer: &DescribeLogDirsResponse) -> Vec<LogDir> {
    answer
        .results
        .iter()
        .map(|r| {
            let mut partitions: Vec<LogDirPartition> = r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| LogDirPartition {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        size_bytes: p.partition_size,
                        offset_lag: p.offset_lag,
                        is_future: p.is_future_key,
                    })
                })
                .collect();
            partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            LogDir {
                path: r.log_dir.to_string(),
                error: (r.error_code != 0).then(|| code_name(r.error_code)),
                total_bytes: if version >= 4 { r.total_bytes } else { -1 },
                usable_bytes: if version >= 4 { r.usable_bytes } else { -1 },
                partitions,
            }
        })
        .collect()
}

/// Runs a `log-dirs` subcommand.
pub async fn run(cmd: &LogDirsCommand, cluster: &mut Cluster) -> Result<Report> {
    let LogDirsCommand::Describe { brokers, topics } = cmd;
    // Kafka's tool names every partition of the wanted topics.
    let wanted = if topics.is_empty() {
        None
    } else {
        let meta = cluster.metadata(Some(topics)).await?;
        let mut wanted = Vec::new();
        for t in &meta.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            super::error::check(|| format!("look up topic '{name}'"), t.error_code, None)?;
            wanted.push((name, t.partitions.iter().map(|p| p.partition_index).collect()));
        }
        Some(wanted)
    };
    let request = describe_request(wanted);
    let ids = if brokers.is_empty() {
        cluster.broker_ids()
    } else {
        brokers.clone()
    };
    let mut out = Vec::new();
    for id in ids {
        let (version, answer) = cluster.broker(id).await?.send(&request).await?;
        super::error::check(
            || format!("describe the log dirs of broker {id}"),
            answer.error_code,
            None,
        )?;
        out.push(BrokerLogDirs {
            broker: id,
            log_dirs: log_dirs_of(version, &answer),
        });
    }
    let text = describe_text(&out);
    Report::new(&serde_json::json!({ "brokers": out }), text)
}

/// The human form of `log-dirs describe`: one line per log dir, then a
/// table of the partitions.
pub fn describe_text(brokers: &[BrokerLogDirs]) -> String {
    let mut dirs = Vec::new();
    let mut parts = Vec::new();
    for b in brokers {
        for d in &b.log_dirs {
            let known = |v: i64| if v < 0 { "-".to_string() } else { v.to_string() };
            dirs.push(vec![
                b.broker.to_string(),
                d.path.clone(),
                known(d.total_bytes),
                known(d.usable_bytes),
                d.partitions.len().to_string(),
                or_dash(d.error.as_ref()),
            ]);
            for p in &d.partitions {
                parts.push(vec![
                    b.broker.to_string(),
                    d.path.clone(),
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.size_bytes.to_string(),
                    p.offset_lag.to_string(),
                ]);
            }
        }
    }
    format!(
        "{}\n{}",
        table(
            &[
                "BROKER",
                "LOG-DIR",
                "TOTAL-BYTES",
                "USABLE-BYTES",
                "PARTITIONS",
                "ERROR"
            ],
            &dirs
        ),
        table(
            &["BROKER", "LOG-DIR", "TOPIC", "PARTITION", "SIZE", "OFFSET-LAG"],
            &parts
        )
    )
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_log_dirs_response::{
        DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    #[test]
    fn reads_dirs_and_sizes() {
        let answer = DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_static_str("/data"))
            .with_total_bytes(100)
            .with_usable_bytes(40)
            .with_topics(vec![DescribeLogDirsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![DescribeLogDirsPartition::default()
                    .with_partition_index(0)
                    .with_partition_size(12)])])]);
        let dirs = log_dirs_of(4, &answer);
        assert_eq!(dirs[0].total_bytes, 100);
        assert_eq!(dirs[0].partitions[0].size_bytes, 12);
        assert_eq!(log_dirs_of(3, &answer)[0].usable_bytes, -1);
        let text = describe_text(&[BrokerLogDirs {
            broker: 1,
            log_dirs: dirs,
        }]);
        assert_eq!(
            text,
            "BROKER  LOG-DIR  TOTAL-BYTES  USABLE-BYTES  PARTITIONS  ERROR\n\
             1       /data    100          40            1           -\n\
             \n\
             BROKER  LOG-DIR  TOPIC  PARTITION  SIZE  OFFSET-LAG\n\
             1       /data    t      0          12    0\n"
        );
        assert!(describe_request(None).topics.is_none());
        let r = describe_request(Some(vec![("t".to_string(), vec![0, 1])]));
        assert_eq!(r.topics.expect("topics")[0].partitions, vec![0, 1]);
    }
}
