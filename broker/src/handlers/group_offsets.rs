//! Committed offsets: OffsetCommit, OffsetFetch (single- and multi-group)
//! and OffsetDelete.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::group::{FetchedOffset, OFFSET_METADATA_MAX_BYTES};
use crate::Broker;
use distlog_metadata::{CommittedOffset, OffsetCommitEntry};

/// OffsetCommit versions served (v6+: leader epoch; v7+: static members).
pub const COMMIT_VERSIONS: (i16, i16) = (2, 9);
/// OffsetFetch versions served (v7+: require_stable; v8+: many groups).
pub const FETCH_VERSIONS: (i16, i16) = (1, 9);
/// OffsetDelete versions served.
pub const DELETE_VERSIONS: (i16, i16) = (0, 0);

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

/// One requested partition of an offset commit (OffsetCommit or
/// TxnOffsetCommit), with the leader epoch already chosen by version.
pub struct CommitPartition<'a> {
    /// The partition index.
    pub partition: i32,
    /// The offset to commit.
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<&'a str>,
}

/// The partitions of an offset commit in request order, as (topic,
/// partition, refusal) rows, and the entries to store for those not
/// refused. A partition is refused for an unknown topic or partition, or
/// metadata over [`OFFSET_METADATA_MAX_BYTES`].
pub fn commit_rows<'a>(
    broker: &Broker,
    topics: impl IntoIterator<Item = (&'a TopicName, Vec<CommitPartition<'a>>)>,
) -> (CommitRows, Vec<OffsetCommitEntry>) {
    let commit_ms = distlog_metadata::now_ms();
    let mut rows = Vec::new();
    let mut entries = Vec::new();
    for (name, partitions) in topics {
        let count = broker.meta.read(|s| s.topic(name).map(|t| t.partitions));
        for p in partitions {
            let metadata = p.metadata.unwrap_or_default();
            let known = count.is_some_and(|n| p.partition >= 0 && (p.partition as u32) < n);
            let error = if !known {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > OFFSET_METADATA_MAX_BYTES {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                entries.push(OffsetCommitEntry {
                    topic: name.0.to_string(),
                    partition: p.partition as u32,
                    committed: CommittedOffset {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: metadata.to_string(),
                        commit_ms,
                    },
                });
                None
            };
            rows.push((name.clone(), p.partition, error));
        }
    }
    (rows, entries)
}

/// Per requested partition of an offset commit: its topic, index and
/// refusal (`None`: stored with the others).
pub type CommitRows = Vec<(TopicName, i32, Option<ResponseError>)>;

/// Handle an OffsetCommit: partitions of unknown topics and oversized
/// metadata are refused one by one; the rest are stored together and share
/// the outcome of the member/generation check and the durable write.
pub async fn commit(broker: &Broker, version: i16, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let instance = if version >= 7 {
        req.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    let (rows, entries) = commit_rows(
        broker,
        req.topics.iter().map(|t| {
            let parts = t.partitions.iter().map(|p| CommitPartition {
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_deref(),
            });
            (&t.name, parts.collect())
        }),
    );
    let outcome = broker
        .groups
        .commit(
            &req.group_id.0,
            &req.member_id,
            instance.as_deref(),
            req.generation_id_or_member_epoch,
            entries,
        )
        .await
        .err();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (name, partition, error) in rows {
        let error = error.or(outcome);
        let row = OffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code(error));
        match topics.last_mut() {
            Some(t) if t.name == name => t.partitions.push(row),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(vec![row]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's offsets as the coordinator answers them: the group-level
/// error, or the rows by topic.
type GroupOffsets = Result<Vec<(String, Vec<(i32, FetchedOffset)>)>, ResponseError>;

fn fetch_group(
    broker: &Broker,
    caught_up: Result<(), ResponseError>,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    stable: bool,
) -> GroupOffsets {
    caught_up?;
    if let Some(e) = broker.groups.check_group(group) {
        return Err(e);
    }
    Ok(broker.groups.fetch_offsets(group, topics.as_deref(), stable))
}

/// Whether this node's metadata replica has applied every commit made
/// before the request (a read barrier through the Raft leader), so that
/// OffsetFetch answers the latest committed offsets and not a lagging
/// replica's. A node cut off from the metadata quorum cannot pass it: it may
/// still believe it coordinates the group while another node accepts its
/// commits, and the chaos campaign (seed 2061) saw a member resume below an
/// acknowledged commit that way. It answers COORDINATOR_NOT_AVAILABLE then,
/// which clients retry after looking the coordinator up again.
async fn caught_up(broker: &Broker) -> Result<(), ResponseError> {
    match tokio::time::timeout(BARRIER_TIMEOUT, broker.meta.barrier()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "OffsetFetch: no metadata read barrier");
            Err(ResponseError::CoordinatorNotAvailable)
        }
        Err(_) => {
            tracing::debug!(
                ?BARRIER_TIMEOUT,
                "OffsetFetch: the metadata read barrier timed out"
            );
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// How long OffsetFetch waits for its read barrier (a leader cut off from
/// the other voters cannot commit it, and would otherwise wait for as long
/// as the partition lasts).
const BARRIER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Build the response topics of OffsetFetch from the coordinator's rows;
/// v0–7 and v8+ use distinct (same-shaped) generated types.
macro_rules! fetched_topics {
    ($rows:expr, $Topic:ty, $Partition:ty) => {
        $rows
            .into_iter()
            .map(|(name, parts)| {
                <$Topic>::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, f): (i32, FetchedOffset)| {
                                <$Partition>::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(f.offset)
                                    .with_committed_leader_epoch(f.leader_epoch)
                                    .with_metadata(Some(StrBytes::from_string(f.metadata)))
                                    .with_error_code(code(f.error))
                            })
                            .collect(),
                    )
            })
            .collect()
    };
}

/// Handle an OffsetFetch: v1–7 for one group, v8+ for many.
pub async fn fetch(broker: &Broker, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let stable = version >= 7 && req.require_stable;
    let caught_up = caught_up(broker).await;
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match fetch_group(broker, caught_up, &g.group_id.0, topics, stable) {
                    Err(e) => out.error_code = e.code(),
                    Ok(rows) => {
                        out.topics =
                            fetched_topics!(rows, OffsetFetchResponseTopics, OffsetFetchResponsePartitions);
                    }
                }
                out
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let requested = topics.clone();
    match fetch_group(broker, caught_up, &req.group_id.0, topics, stable) {
        Ok(rows) => OffsetFetchResponse::default().with_topics(fetched_topics!(
            rows,
            OffsetFetchResponseTopic,
            OffsetFetchResponsePartition
        )),
        Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
        Err(e) => {
            // v1 has no top-level error: every requested partition carries it.
            let rows: Vec<(String, Vec<(i32, FetchedOffset)>)> = requested
                .unwrap_or_default()
                .into_iter()
                .map(|(name, parts)| {
                    let rows = parts
                        .into_iter()
                        .map(|p| (p, FetchedOffset::none().with_error(e)))
                        .collect();
                    (name, rows)
                })
                .collect();
            OffsetFetchResponse::default().with_topics(fetched_topics!(
                rows,
                OffsetFetchResponseTopic,
                OffsetFetchResponsePartition
            ))
        }
    }
}

/// Handle an OffsetDelete.
pub async fn delete(broker: &Broker, _version: i16, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let GroupId(group) = &req.group_id;
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    match broker.groups.delete_offsets(group, &partitions).await {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(results) => {
            let mut results = results.into_iter();
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    let rows = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(results.next().flatten()))
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(rows)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
