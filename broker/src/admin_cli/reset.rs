//! `distlog admin groups reset-offsets`, as kafka-consumer-groups.sh
//! `--reset-offsets` does it: only for an inactive group (state `Empty`,
//! or `Dead` for a group that has none yet), targets resolved with
//! ListOffsets at each partition's leader, committed with OffsetCommit as
//! a non-member (generation -1, no member id), `--dry-run` printing the
//! plan without committing. Unlike Kafka's tool, committing is the
//! default (`--execute` is accepted and changes nothing).

use std::collections::BTreeMap;

use clap::{ArgGroup, Args};
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::error::{check, AdminError, Result};
use super::groups::{describe_one, fetch_committed, list_offsets, TopicPartition, EARLIEST, LATEST};
use super::output::{or_dash, table, Report};
use super::routing::{topic_name, Cluster};
use super::time::parse_timestamp_ms;

/// Flags of `groups reset-offsets`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
#[command(group(ArgGroup::new("scope").required(true).args(["topics", "all_topics"])))]
pub struct ResetArgs {
    /// The group.
    #[arg(long)]
    pub group: String,
    /// A topic, or TOPIC:P,P,… for some partitions (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:P,…]")]
    pub topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// To each partition's log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (kept within the partition's earliest and latest).
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// To the first offset at or after this time (RFC 3339 or ms since the
    /// epoch; the log end when no record is that new).
    #[arg(long, value_name = "RFC3339|MS")]
    pub to_datetime: Option<String>,
    /// Show the plan, commit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the plan (the default; for kafka-consumer-groups.sh habits).
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
}

/// Where to move the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// Log start.
    Earliest,
    /// Log end.
    Latest,
    /// An offset, clamped to the partition's range.
    Offset(i64),
    /// The first offset whose timestamp is at or after this (ms).
    Datetime(i64),
}

impl ResetArgs {
    /// The target the flags ask for.
    pub fn target(&self) -> Result<ResetTarget> {
        if self.to_earliest {
            Ok(ResetTarget::Earliest)
        } else if self.to_latest {
            Ok(ResetTarget::Latest)
        } else if let Some(o) = self.to_offset {
            if o < 0 {
                return Err(AdminError::usage("--to-offset", "give a non-negative offset"));
            }
            Ok(ResetTarget::Offset(o))
        } else if let Some(t) = &self.to_datetime {
            parse_timestamp_ms(t)
                .map(ResetTarget::Datetime)
                .map_err(|reason| AdminError::usage("--to-datetime", reason))
        } else {
            Err(AdminError::usage(
                "reset-offsets",
                "give one of --to-earliest, --to-latest, --to-offset N, --to-datetime T",
            ))
        }
    }
}

/// Parses `TOPIC` or `TOPIC:P,P,…` (`None`: every partition).
pub fn parse_topic_spec(spec: &str) -> Result<(String, Option<Vec<i32>>)> {
    let bad = |why: &str| {
        AdminError::usage(
            "--topic",
            format!("'{spec}': {why}; expected TOPIC or TOPIC:0,1,2"),
        )
    };
    match spec.split_once(':') {
        None if !spec.is_empty() => Ok((spec.to_string(), None)),
        None => Err(bad("empty topic")),
        Some(("", _)) => Err(bad("empty topic")),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0))
                .collect::<Option<Vec<i32>>>()
                .ok_or_else(|| bad("partitions must be non-negative numbers"))?;
            Ok((t.to_string(), Some(parts)))
        }
    }
}

/// One partition of the plan (`reset-offsets --json`).
#[derive(Debug, Serialize, PartialEq)]
pub struct PlannedReset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset before (`null`: none).
    pub previous_offset: Option<i64>,
    /// The offset committed (or, with `--dry-run`, that would be).
    pub new_offset: i64,
}

/// Clamps a requested offset into `[earliest, latest]`, as Kafka's tool
/// does, saying why when it moved.
pub fn clamp(requested: i64, earliest: i64, latest: i64) -> (i64, Option<String>) {
    if requested < earliest {
        (
            earliest,
            Some(format!(
                "New offset ({requested}) is lower than earliest offset. Value will be set to {earliest}"
            )),
        )
    } else if requested > latest {
        (
            latest,
            Some(format!(
                "New offset ({requested}) is higher than latest offset. Value will be set to {latest}"
            )),
        )
    } else {
        (requested, None)
    }
}

/// The partitions to reset.
async fn partitions(args: &ResetArgs, cluster: &mut Cluster) -> Result<Vec<TopicPartition>> {
    let mut out = Vec::new();
    if args.all_topics {
        out.extend(fetch_committed(cluster, &args.group, None).await?.into_keys());
        if out.is_empty() {
            return Err(AdminError::usage(
                "--all-topics",
                format!(
                    "group '{}' has no committed offsets; name the topics with --topic",
                    args.group
                ),
            ));
        }
    }
    for spec in &args.topics {
        let (topic, wanted) = parse_topic_spec(spec)?;
        let leaders = cluster.leaders(&topic).await?;
        match wanted {
            None => out.extend(leaders.keys().map(|p| (topic.clone(), *p))),
            Some(ps) => {
                for p in ps {
                    if !leaders.contains_key(&p) {
                        return Err(AdminError::kafka(
                            format!("reset partition {p} of topic '{topic}'"),
                            E::UnknownTopicOrPartition.code(),
                            Some(&format!("the topic has {} partitions", leaders.len())),
                        ));
                    }
                    out.push((topic.clone(), p));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The OffsetCommit request committing `offsets` as a non-member.
pub fn commit_request(group: &str, offsets: &[PlannedReset]) -> OffsetCommitRequest {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for o in offsets {
        by_topic.entry(&o.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(o.partition)
                .with_committed_offset(o.new_offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_retention_time_ms(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        )
}

/// Runs `groups reset-offsets`.
pub async fn run(args: &ResetArgs, cluster: &mut Cluster) -> Result<Report> {
    let target = args.target()?;
    let group = &args.group;
    let (state, _, _, _) = describe_one(cluster, group).await?;
    if state != "Empty" && state != "Dead" {
        return Err(AdminError::GroupActive {
            group: group.clone(),
            state,
        });
    }
    let parts = partitions(args, cluster).await?;
    let previous = fetch_committed(cluster, group, Some(&parts)).await?;
    let resolved: BTreeMap<TopicPartition, i64> = match target {
        ResetTarget::Earliest => flatten(list_offsets(cluster, &parts, EARLIEST).await?, 0),
        ResetTarget::Latest => flatten(list_offsets(cluster, &parts, LATEST).await?, 0),
        ResetTarget::Datetime(ts) => {
            let at = list_offsets(cluster, &parts, ts).await?;
            let latest = flatten(list_offsets(cluster, &parts, LATEST).await?, 0);
            at.into_iter()
                .map(|(tp, o)| {
                    let end = latest.get(&tp).copied().unwrap_or(0);
                    (tp, o.unwrap_or(end))
                })
                .collect()
        }
        ResetTarget::Offset(n) => {
            let earliest = flatten(list_offsets(cluster, &parts, EARLIEST).await?, 0);
            let latest = flatten(list_offsets(cluster, &parts, LATEST).await?, 0);
            parts
                .iter()
                .map(|tp| {
                    let lo = earliest.get(tp).copied().unwrap_or(0);
                    let hi = latest.get(tp).copied().unwrap_or(0);
                    let (offset, warning) = clamp(n, lo, hi);
                    if let Some(w) = warning {
                        eprintln!("WARN: {}-{}: {w}", tp.0, tp.1);
                    }
                    (tp.clone(), offset)
                })
                .collect()
        }
    };
    let plan: Vec<PlannedReset> = parts
        .iter()
        .map(|tp| PlannedReset {
            topic: tp.0.clone(),
            partition: tp.1,
            previous_offset: previous.get(tp).copied(),
            new_offset: resolved.get(tp).copied().unwrap_or(0),
        })
        .collect();
    if !args.dry_run && !plan.is_empty() {
        let request = commit_request(group, &plan);
        let (_, answer) = cluster.coordinator(group).await?.send(&request).await?;
        for t in &answer.topics {
            for p in &t.partitions {
                let name = t.name.0.to_string();
                if [E::UnknownMemberId, E::IllegalGeneration, E::RebalanceInProgress]
                    .iter()
                    .any(|e| e.code() == p.error_code)
                {
                    // UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / REBALANCE_IN_PROGRESS: a member
                    // joined between the state check and the commit.
                    return Err(AdminError::GroupActive {
                        group: group.clone(),
                        state: "active (a member joined during the reset)".to_string(),
                    });
                }
                check(
                    || {
                        format!(
                            "commit the new offset of {name}-{} for group '{group}'",
                            p.partition_index
                        )
                    },
                    p.error_code,
                    None,
                )?;
            }
        }
    }
    let text = plan_text(group, &plan, args.dry_run);
    Report::new(
        &serde_json::json!({"group": group, "dry_run": args.dry_run, "partitions": plan}),
        text,
    )
}

fn flatten(m: BTreeMap<TopicPartition, Option<i64>>, default: i64) -> BTreeMap<TopicPartition, i64> {
    m.into_iter().map(|(k, v)| (k, v.unwrap_or(default))).collect()
}

/// The human form of the plan.
pub fn plan_text(group: &str, plan: &[PlannedReset], dry_run: bool) -> String {
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|p| {
            vec![
                group.to_string(),
                p.topic.clone(),
                p.partition.to_string(),
                or_dash(p.previous_offset),
                p.new_offset.to_string(),
            ]
        })
        .collect();
    let mut text = table(
        &["GROUP", "TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"],
        &rows,
    );
    if dry_run {
        text.push_str("Dry run: nothing was committed; rerun without --dry-run to apply.\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        reset: ResetArgs,
    }

    fn parse(args: &[&str]) -> std::result::Result<ResetArgs, clap::Error> {
        TestCli::try_parse_from(std::iter::once("reset").chain(args.iter().copied())).map(|c| c.reset)
    }

    #[test]
    fn one_target_and_a_scope_are_required() {
        let a = parse(&[
            "--group",
            "g",
            "--topic",
            "t:0,2",
            "--to-offset",
            "5",
            "--dry-run",
        ])
        .expect("parses");
        assert_eq!(a.target().expect("target"), ResetTarget::Offset(5));
        assert!(a.dry_run);
        assert!(parse(&["--group", "g", "--topic", "t"]).is_err(), "no target");
        assert!(parse(&["--group", "g", "--to-earliest"]).is_err(), "no scope");
        assert!(parse(&["--group", "g", "--topic", "t", "--to-earliest", "--to-latest"]).is_err());
        assert!(parse(&[
            "--group",
            "g",
            "--topic",
            "t",
            "--to-latest",
            "--dry-run",
            "--execute"
        ])
        .is_err());
        let a = parse(&[
            "--group",
            "g",
            "--all-topics",
            "--to-datetime",
            "1970-01-01T00:00:01Z",
        ])
        .expect("parses");
        assert_eq!(a.target().expect("target"), ResetTarget::Datetime(1000));
        let a = parse(&["--group", "g", "--all-topics", "--to-datetime", "soon"]).expect("parses");
        assert!(a
            .target()
            .expect_err("bad time")
            .to_string()
            .starts_with("invalid --to-datetime: 'soon'"));
    }

    #[test]
    fn topic_specs_parse() {
        assert_eq!(parse_topic_spec("t").expect("ok"), ("t".to_string(), None));
        assert_eq!(
            parse_topic_spec("t:0, 3").expect("ok"),
            ("t".to_string(), Some(vec![0, 3]))
        );
        assert!(parse_topic_spec("t:x").is_err());
        assert!(parse_topic_spec(":1").is_err());
        assert!(parse_topic_spec("t:-1").is_err());
    }

    #[test]
    fn offsets_are_clamped_like_kafkas_tool() {
        assert_eq!(clamp(5, 0, 10), (5, None));
        assert_eq!(clamp(50, 0, 10).0, 10);
        assert_eq!(clamp(1, 3, 10).0, 3);
        assert_eq!(
            clamp(50, 0, 10).1.as_deref(),
            Some("New offset (50) is higher than latest offset. Value will be set to 10")
        );
    }

    #[test]
    fn commits_as_a_non_member() {
        let plan = vec![
            PlannedReset {
                topic: "t".into(),
                partition: 0,
                previous_offset: Some(9),
                new_offset: 5,
            },
            PlannedReset {
                topic: "t".into(),
                partition: 1,
                previous_offset: None,
                new_offset: 0,
            },
        ];
        let r = commit_request("g", &plan);
        assert_eq!(r.generation_id_or_member_epoch, -1);
        assert!(r.member_id.is_empty());
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].partitions[0].committed_offset, 5);
        assert_eq!(
            plan_text("g", &plan, true),
            "GROUP  TOPIC  PARTITION  PREVIOUS-OFFSET  NEW-OFFSET\n\
             g      t      0          9                5\n\
             g      t      1          -                0\n\
             Dry run: nothing was committed; rerun without --dry-run to apply.\n"
        );
    }
}
