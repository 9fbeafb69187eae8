//! `distlog admin groups …`, like kafka-consumer-groups.sh: list
//! (ListGroups on every broker), describe (DescribeGroups, OffsetFetch and
//! ListOffsets for the lag), delete (DeleteGroups) and reset-offsets
//! ([`super::reset`]). Group requests go to the group's coordinator.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use clap::Subcommand;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, ListOffsetsRequest, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::Serialize;

use super::error::{check, code_name, hint, AdminError, Result};
use super::output::{or_dash, table, Report};
use super::reset::{self, ResetArgs};
use super::routing::{topic_name, Cluster};

/// ListOffsets' timestamp for the log start offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets' timestamp for the log end offset (high watermark).
pub const LATEST: i64 = -1;

/// `distlog admin groups` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum GroupsCommand {
    /// Every group on every broker, with its state.
    List,
    /// Members, assignments, committed offsets and lag of groups.
    Describe {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete groups (only empty groups can be deleted).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move an inactive group's committed offsets.
    ResetOffsets(ResetArgs),
}

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// Runs a `groups` subcommand.
pub async fn run(cmd: &GroupsCommand, cluster: &mut Cluster) -> Result<Report> {
    match cmd {
        GroupsCommand::List => list(cluster).await,
        GroupsCommand::Describe { groups } => describe(cluster, groups).await,
        GroupsCommand::Delete { groups } => delete(cluster, groups).await,
        GroupsCommand::ResetOffsets(args) => reset::run(args, cluster).await,
    }
}

/// A group in `groups list --json`.
#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedGroup {
    /// Group id.
    pub group: String,
    /// State (`Stable`, `Empty`…; `null` from brokers older than ListGroups v4).
    pub state: Option<String>,
    /// Protocol type (`consumer`, or empty for offsets-only groups).
    pub protocol_type: String,
    /// The coordinator that listed it.
    pub coordinator: i32,
}

async fn list(cluster: &mut Cluster) -> Result<Report> {
    let mut groups = BTreeSet::new();
    for id in cluster.broker_ids() {
        let (version, answer) = cluster
            .broker(id)
            .await?
            .send(&ListGroupsRequest::default())
            .await?;
        check(
            || format!("list the groups on broker {id}"),
            answer.error_code,
            None,
        )?;
        for g in answer.groups {
            groups.insert(ListedGroup {
                group: g.group_id.0.to_string(),
                state: (version >= 4).then(|| g.group_state.to_string()),
                protocol_type: g.protocol_type.to_string(),
                coordinator: id,
            });
        }
    }
    let groups: Vec<ListedGroup> = groups.into_iter().collect();
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                or_dash(g.state.as_ref()),
                if g.protocol_type.is_empty() {
                    "-".into()
                } else {
                    g.protocol_type.clone()
                },
                g.coordinator.to_string(),
            ]
        })
        .collect();
    let text = table(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"], &rows);
    Report::new(&serde_json::json!({ "groups": groups }), text)
}

/// A member in `groups describe --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id, if any.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// Assigned partitions (consumer protocol groups).
    pub assignment: Vec<PartitionRef>,
}

/// A topic partition in JSON.
#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
pub struct PartitionRef {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

/// A partition's offsets in `groups describe --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct PartitionOffsets {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The group's committed offset (`null`: none).
    pub current_offset: Option<i64>,
    /// The partition's log end offset (high watermark), `null` if unknown.
    pub log_end_offset: Option<i64>,
    /// `log_end_offset - current_offset` (`null` when either is unknown).
    pub lag: Option<i64>,
    /// The member it is assigned to (`null`: none).
    pub member_id: Option<String>,
}

/// A group in `groups describe --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// State (`Stable`, `Empty`, `PreparingRebalance`, `Dead`…).
    pub state: String,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// The chosen protocol (the assignor, e.g. `range`).
    pub protocol: String,
    /// The coordinator's broker id.
    pub coordinator: i32,
    /// Members.
    pub members: Vec<GroupMember>,
    /// Committed or assigned partitions, by topic and index.
    pub offsets: Vec<PartitionOffsets>,
}

/// Decodes a consumer-protocol assignment (a version, then the
/// ConsumerProtocolAssignment at that version) into sorted partitions.
pub fn decode_assignment(bytes: &Bytes) -> Option<Vec<PartitionRef>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    let mut out: Vec<PartitionRef> = a
        .assigned_partitions
        .iter()
        .flat_map(|tp| {
            tp.partitions.iter().map(|p| PartitionRef {
                topic: tp.topic.0.to_string(),
                partition: *p,
            })
        })
        .collect();
    out.sort();
    Some(out)
}

/// The OffsetFetch request for `group` at `version` (v8+ asks per group);
/// `topics` `None` asks for every committed offset.
pub fn offset_fetch_request(
    group: &str,
    topics: Option<&[TopicPartition]>,
    version: i16,
) -> OffsetFetchRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in topics.unwrap_or_default() {
        by_topic.entry(t).or_default().push(*p);
    }
    let group_id = GroupId(StrBytes::from_string(group.to_string()));
    if version >= 8 {
        let topics = topics.map(|_| {
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        });
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_id)
            .with_member_id(None)
            .with_member_epoch(-1)
            .with_topics(topics)])
    } else {
        let topics = topics.map(|_| {
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        });
        OffsetFetchRequest::default()
            .with_group_id(group_id)
            .with_topics(topics)
    }
}

/// The committed offsets in an OffsetFetch answer of `version` (-1, "no
/// offset", left out), or the group's error.
pub fn committed_of(
    group: &str,
    version: i16,
    answer: &OffsetFetchResponse,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let mut out = BTreeMap::new();
    let what = || format!("fetch the committed offsets of group '{group}'");
    if version >= 8 {
        let g = answer
            .groups
            .iter()
            .find(|g| &*g.group_id.0 == group)
            .ok_or_else(|| {
                AdminError::kafka(what(), E::GroupIdNotFound.code(), Some("no answer for the group"))
            })?;
        check(what, g.error_code, None)?;
        for t in &g.topics {
            for p in &t.partitions {
                check(what, p.error_code, None)?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
    } else {
        check(what, answer.error_code, None)?;
        for t in &answer.topics {
            for p in &t.partitions {
                check(what, p.error_code, None)?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
    }
    Ok(out)
}

/// The group's committed offsets (of `topics`, or all).
pub async fn fetch_committed(
    cluster: &mut Cluster,
    group: &str,
    topics: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let conn = cluster.coordinator(group).await?;
    let version = conn.version_for(kafka_protocol::messages::ApiKey::OffsetFetch)?;
    let (version, answer) = conn.send(&offset_fetch_request(group, topics, version)).await?;
    committed_of(group, version, &answer)
}

/// The offset ListOffsets answers for each partition at `timestamp`
/// ([`EARLIEST`], [`LATEST`] or milliseconds), asked of each leader;
/// `None` for a timestamp after every record.
pub async fn list_offsets(
    cluster: &mut Cluster,
    partitions: &[TopicPartition],
    timestamp: i64,
) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    let topics: BTreeSet<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
    for topic in topics {
        let leaders = cluster.leaders(topic).await?;
        for (t, p) in partitions.iter().filter(|(t, _)| t == topic) {
            let leader = match leaders.get(p) {
                Some(l) if *l >= 0 => *l,
                Some(_) => {
                    return Err(AdminError::kafka(
                        format!("find the leader of {t}-{p}"),
                        E::LeaderNotAvailable.code(),
                        None,
                    ))
                }
                None => {
                    return Err(AdminError::kafka(
                        format!("find partition {t}-{p}"),
                        E::UnknownTopicOrPartition.code(),
                        None,
                    ))
                }
            };
            by_leader
                .entry(leader)
                .or_default()
                .entry(t.clone())
                .or_default()
                .push(*p);
        }
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let request = list_offsets_request(&topics, timestamp);
        let (_, answer) = cluster.broker(leader).await?.send(&request).await?;
        for t in &answer.topics {
            for p in &t.partitions {
                let name = t.name.0.to_string();
                check(
                    || format!("list the offsets of {name}-{}", p.partition_index),
                    p.error_code,
                    None,
                )?;
                out.insert((name, p.partition_index), (p.offset >= 0).then_some(p.offset));
            }
        }
    }
    Ok(out)
}

/// The ListOffsets request for `topics` (topic → partitions) at
/// `timestamp`, as a consumer (replica -1, read uncommitted).
pub fn list_offsets_request(topics: &BTreeMap<String, Vec<i32>>, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

/// DescribeGroups of one group at its coordinator: (state, protocol type,
/// protocol, members).
pub async fn describe_one(
    cluster: &mut Cluster,
    group: &str,
) -> Result<(String, String, String, Vec<GroupMember>)> {
    let request =
        DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let (_, answer) = cluster.coordinator(group).await?.send(&request).await?;
    let g = answer
        .groups
        .iter()
        .find(|g| &*g.group_id.0 == group)
        .ok_or_else(|| {
            AdminError::kafka(
                format!("describe group '{group}'"),
                E::GroupIdNotFound.code(),
                Some("no answer for the group"),
            )
        })?;
    check(
        || format!("describe group '{group}'"),
        g.error_code,
        g.error_message.as_deref(),
    )?;
    let consumer = &*g.protocol_type == "consumer";
    let members = g
        .members
        .iter()
        .map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.as_ref().map(ToString::to_string),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: if consumer {
                decode_assignment(&m.member_assignment).unwrap_or_default()
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok((
        g.group_state.to_string(),
        g.protocol_type.to_string(),
        g.protocol_data.to_string(),
        members,
    ))
}

async fn describe(cluster: &mut Cluster, groups: &[String]) -> Result<Report> {
    let mut out = Vec::new();
    for group in groups {
        let (state, protocol_type, protocol, members) = describe_one(cluster, group).await?;
        let committed = fetch_committed(cluster, group, None).await?;
        if state == "Dead" && committed.is_empty() {
            return Err(AdminError::kafka(
                format!("describe group '{group}'"),
                E::GroupIdNotFound.code(),
                Some("the group does not exist"),
            ));
        }
        let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
        for m in &members {
            for p in &m.assignment {
                owner.insert((p.topic.clone(), p.partition), m.member_id.clone());
            }
        }
        let partitions: Vec<TopicPartition> = committed
            .keys()
            .chain(owner.keys())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let ends = if partitions.is_empty() {
            BTreeMap::new()
        } else {
            list_offsets(cluster, &partitions, LATEST).await?
        };
        let offsets = partitions
            .into_iter()
            .map(|tp| {
                let current = committed.get(&tp).copied();
                let end = ends.get(&tp).copied().flatten();
                PartitionOffsets {
                    lag: current.zip(end).map(|(c, e)| (e - c).max(0)),
                    member_id: owner.get(&tp).cloned(),
                    topic: tp.0,
                    partition: tp.1,
                    current_offset: current,
                    log_end_offset: end,
                }
            })
            .collect();
        let coordinator = cluster.coordinator_id(group).await?;
        out.push(GroupDescription {
            group: group.clone(),
            state,
            protocol_type,
            protocol,
            coordinator,
            members,
            offsets,
        });
    }
    let text = describe_text(&out);
    Report::new(&serde_json::json!({ "groups": out }), text)
}

/// The human form of `groups describe`.
pub fn describe_text(groups: &[GroupDescription]) -> String {
    let mut out = String::new();
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "Group: {}  State: {}  Protocol: {}  Members: {}\n",
            g.group,
            g.state,
            if g.protocol.is_empty() { "-" } else { &g.protocol },
            g.members.len()
        ));
        if g.members.is_empty() {
            out.push_str(&format!("Consumer group '{}' has no active members.\n", g.group));
        }
        let member = |id: &Option<String>| g.members.iter().find(|m| Some(&m.member_id) == id.as_ref());
        let rows: Vec<Vec<String>> = g
            .offsets
            .iter()
            .map(|o| {
                let m = member(&o.member_id);
                vec![
                    g.group.clone(),
                    o.topic.clone(),
                    o.partition.to_string(),
                    or_dash(o.current_offset),
                    or_dash(o.log_end_offset),
                    or_dash(o.lag),
                    or_dash(o.member_id.as_ref()),
                    or_dash(m.map(|m| &m.host)),
                    or_dash(m.map(|m| &m.client_id)),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ],
            &rows,
        ));
    }
    out
}

/// The outcome of one group of `groups delete --json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct DeleteOutcome {
    /// Group id.
    pub group: String,
    /// Kafka's error name, `null` when deleted.
    pub error: Option<String>,
}

async fn delete(cluster: &mut Cluster, groups: &[String]) -> Result<Report> {
    let mut outcomes = Vec::new();
    for group in groups {
        let request = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_string(group.clone()))]);
        let (_, answer) = cluster.coordinator(group).await?.send(&request).await?;
        let code = answer
            .results
            .iter()
            .find(|r| &*r.group_id.0 == group.as_str())
            .map_or(-1, |r| r.error_code);
        outcomes.push(DeleteOutcome {
            group: group.clone(),
            error: (code != 0).then(|| code_name(code)),
        });
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let result = match &o.error {
                None => "deleted".to_string(),
                Some(e) => format!(
                    "{e} — {}",
                    super::error::code_of(e).map_or("see the broker's log", hint)
                ),
            };
            vec![o.group.clone(), result]
        })
        .collect();
    let text = table(&["GROUP", "RESULT"], &rows);
    Ok(Report::new(&serde_json::json!({ "groups": outcomes }), text)?.with_failures(failed, groups.len()))
}

#[cfg(test)]
#[path = "groups_tests.rs"]
mod tests;
