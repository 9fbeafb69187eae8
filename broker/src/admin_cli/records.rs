//! `distlog admin records delete`: DeleteRecords to each partition's
//! leader, from flags or a kafka-delete-records.sh style JSON file
//! (`{"partitions":[{"topic":"t","partition":0,"offset":5}],"version":1}`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::DeleteRecordsRequest;
use serde::{Deserialize, Serialize};

use super::error::{code_name, hint, AdminError, Result};
use super::output::{or_dash, table, Report};
use super::routing::{topic_name, Cluster};

/// `distlog admin records` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RecordsCommand {
    /// Delete the records before an offset: the partition's log start
    /// offset moves there (-1: to the high watermark).
    Delete {
        /// Topic (with --partition and --before-offset).
        #[arg(long, requires_all = ["partition", "before_offset"], conflicts_with = "offset_json_file")]
        topic: Option<String>,
        /// Partition.
        #[arg(long)]
        partition: Option<i32>,
        /// Delete every record below this offset.
        #[arg(long, allow_negative_numbers = true)]
        before_offset: Option<i64>,
        /// kafka-delete-records.sh's JSON file instead of the three flags.
        #[arg(long, value_name = "FILE", required_unless_present = "topic")]
        offset_json_file: Option<PathBuf>,
    },
}

/// One partition to truncate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeleteTarget {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The new log start offset (-1: the high watermark).
    pub offset: i64,
}

#[derive(Debug, Deserialize)]
struct OffsetFile {
    partitions: Vec<DeleteTarget>,
}

/// Parses kafka-delete-records.sh's offset JSON.
pub fn parse_offset_json(text: &str) -> Result<Vec<DeleteTarget>> {
    let file: OffsetFile = serde_json::from_str(text).map_err(|e| {
        AdminError::usage(
            "--offset-json-file",
            format!("{e}; expected {{\"partitions\":[{{\"topic\":\"t\",\"partition\":0,\"offset\":5}}],\"version\":1}}"),
        )
    })?;
    if file.partitions.is_empty() {
        return Err(AdminError::usage(
            "--offset-json-file",
            "the file lists no partitions",
        ));
    }
    Ok(file.partitions)
}

/// The outcome of one partition in `records delete --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct DeleteOutcome {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The new low watermark (log start offset), `null` on error.
    pub low_watermark: Option<i64>,
    /// Kafka's error name, `null` on success.
    pub error: Option<String>,
}

/// The DeleteRecords request for `targets` (all led by one broker).
pub fn delete_request(targets: &[DeleteTarget], timeout_ms: i32) -> DeleteRecordsRequest {
    let mut by_topic: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
    for t in targets {
        by_topic.entry(&t.topic).or_default().push(
            DeleteRecordsPartition::default()
                .with_partition_index(t.partition)
                .with_offset(t.offset),
        );
    }
    DeleteRecordsRequest::default()
        .with_topics(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    DeleteRecordsTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_timeout_ms(timeout_ms)
}

/// Runs a `records` subcommand.
pub async fn run(cmd: &RecordsCommand, cluster: &mut Cluster) -> Result<Report> {
    let RecordsCommand::Delete {
        topic,
        partition,
        before_offset,
        offset_json_file,
    } = cmd;
    let targets = match (topic, partition, before_offset, offset_json_file) {
        (Some(topic), Some(partition), Some(offset), None) => vec![DeleteTarget {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        }],
        (_, _, _, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                AdminError::usage(
                    "--offset-json-file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            parse_offset_json(&text)?
        }
        _ => {
            return Err(AdminError::usage(
                "records delete",
                "give --topic, --partition and --before-offset, or --offset-json-file",
            ))
        }
    };
    // Group by leader, as Kafka's AdminClient sends DeleteRecords.
    let mut by_leader: BTreeMap<i32, Vec<DeleteTarget>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut leaders_of: BTreeMap<String, BTreeMap<i32, i32>> = BTreeMap::new();
    for t in &targets {
        if !leaders_of.contains_key(&t.topic) {
            let leaders = cluster.leaders(&t.topic).await?;
            leaders_of.insert(t.topic.clone(), leaders);
        }
        match leaders_of.get(&t.topic).and_then(|l| l.get(&t.partition)) {
            Some(leader) if *leader >= 0 => by_leader.entry(*leader).or_default().push(t.clone()),
            found => outcomes.push(DeleteOutcome {
                topic: t.topic.clone(),
                partition: t.partition,
                low_watermark: None,
                error: Some(code_name(if found.is_some() {
                    E::LeaderNotAvailable.code()
                } else {
                    E::UnknownTopicOrPartition.code()
                })),
            }),
        }
    }
    for (leader, targets) in by_leader {
        let request = delete_request(&targets, 30_000);
        let (_, answer) = cluster.broker(leader).await?.send(&request).await?;
        for t in &targets {
            let p = answer
                .topics
                .iter()
                .filter(|r| *r.name.0 == *t.topic)
                .flat_map(|r| r.partitions.iter())
                .find(|p| p.partition_index == t.partition);
            outcomes.push(match p {
                Some(p) if p.error_code == 0 => DeleteOutcome {
                    topic: t.topic.clone(),
                    partition: t.partition,
                    low_watermark: Some(p.low_watermark),
                    error: None,
                },
                Some(p) => DeleteOutcome {
                    topic: t.topic.clone(),
                    partition: t.partition,
                    low_watermark: None,
                    error: Some(code_name(p.error_code)),
                },
                None => DeleteOutcome {
                    topic: t.topic.clone(),
                    partition: t.partition,
                    low_watermark: None,
                    error: Some("NO_ANSWER".to_string()),
                },
            });
        }
    }
    outcomes.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let text = delete_text(&outcomes);
    let total = outcomes.len();
    Ok(Report::new(&serde_json::json!({ "partitions": outcomes }), text)?.with_failures(failed, total))
}

/// The human form of `records delete`.
pub fn delete_text(outcomes: &[DeleteOutcome]) -> String {
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let error = o.error.as_ref().map(|e| match super::error::code_of(e) {
                Some(code) => format!("{e} — {}", hint(code)),
                None => e.clone(),
            });
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                or_dash(o.low_watermark),
                or_dash(error),
            ]
        })
        .collect();
    table(&["TOPIC", "PARTITION", "LOW-WATERMARK", "ERROR"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_offset_file() {
        let targets = parse_offset_json(
            r#"{"partitions":[{"topic":"t","partition":0,"offset":5},{"topic":"t","partition":1,"offset":-1}],"version":1}"#,
        )
        .expect("parses");
        assert_eq!(targets.len(), 2);
        assert_eq!(
            targets[1],
            DeleteTarget {
                topic: "t".into(),
                partition: 1,
                offset: -1
            }
        );
        assert!(parse_offset_json(r#"{"partitions":[]}"#).is_err());
        let err = parse_offset_json("nope").expect_err("not json");
        assert!(err.to_string().contains("expected {\"partitions\""), "{err}");
    }

    #[test]
    fn groups_partitions_by_topic() {
        let r = delete_request(
            &[
                DeleteTarget {
                    topic: "b".into(),
                    partition: 0,
                    offset: 3,
                },
                DeleteTarget {
                    topic: "a".into(),
                    partition: 1,
                    offset: 4,
                },
                DeleteTarget {
                    topic: "b".into(),
                    partition: 2,
                    offset: 5,
                },
            ],
            1000,
        );
        assert_eq!(r.topics.len(), 2);
        assert_eq!(&*r.topics[1].name.0, "b");
        assert_eq!(r.topics[1].partitions.len(), 2);
        assert_eq!(r.topics[1].partitions[1].offset, 5);
    }

    #[test]
    fn renders_outcomes() {
        let text = delete_text(&[DeleteOutcome {
            topic: "t".into(),
            partition: 0,
            low_watermark: Some(5),
            error: None,
        }]);
        assert_eq!(
            text,
            "TOPIC  PARTITION  LOW-WATERMARK  ERROR\nt      0          5              -\n"
        );
    }
}
