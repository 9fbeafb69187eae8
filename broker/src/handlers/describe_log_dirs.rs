//! DescribeLogDirs (v1–4): this node's log dir, the partitions it holds
//! copies of with their sizes, and (v4) the disk's total and usable bytes,
//! as `kafka-log-dirs.sh` and admin clients' `describe_log_dirs` ask.
//!
//! A distlog node has one log dir: its bookie's segment store
//! (`DATA_DIR/bookie`); a node without the bookie role stores no partition
//! data and answers no log dir. Partition data lives in segments, each a
//! ledger replicated on the bookies of its ensemble, so "a replica of the
//! partition in this log dir" means: at least one segment of the stream has
//! an ensemble that includes this node. The size reported is the sum of the
//! payload bytes of those segments only (with striping, E > Qw, a bookie
//! holds a share of each such segment; the whole segment is counted):
//! `SegmentMeta::size_bytes` for sealed segments, and for the in-progress
//! segment what the writer has handed to its bookies when this node owns
//! the stream ([`distlog_storage::log::Namespace::open_segment_bytes`]);
//! elsewhere an in-progress segment counts 0 until it is sealed (metadata
//! records its size only then). Sizes are those of the stored Kafka
//! batches; stream-state snapshots (control entries) are not counted.
//!
//! There is no replica movement between log dirs, so `offset_lag` is 0 and
//! `is_future_key` false. As Kafka does, a request for specific topics
//! answers only those; unknown topics and partitions this node holds no
//! copy of are simply absent, and a topic with no such partition is left
//! out. There are no ACLs, so no CLUSTER_AUTHORIZATION_FAILED.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use distlog_metadata::{MetaState, NodeId, SegmentState, StreamId};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (1, 4);

/// Which partitions a request asks about: `None` = every partition; else
/// per topic the partitions named.
type Wanted = Option<BTreeMap<String, BTreeSet<i32>>>;

/// One partition's copy on this node, as metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSize {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The partition's stream.
    pub stream: StreamId,
    /// Payload bytes of this node's sealed segments of the stream.
    pub sealed_bytes: u64,
    /// LSSN of the stream's in-progress segment when its ensemble includes
    /// this node (its size is known only to the owner).
    pub in_progress: Option<u64>,
}

/// Handle a DescribeLogDirs request.
pub async fn handle(broker: &Broker, version: i16, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let resp = DescribeLogDirsResponse::default();
    if !broker.config.roles.bookie {
        return resp;
    }
    let wanted = wanted(req.topics);
    let node = broker.config.node_id;
    let replicas = broker.meta.read(|s| replica_sizes(s, node, &wanted));
    let topics = to_topics(replicas, |stream| broker.ns.open_segment_bytes(stream));
    let dir = broker.config.data_dir.join("bookie");
    let shown = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(shown.display().to_string()))
        .with_topics(topics);
    if version >= 4 {
        let (total, usable) = match disk_space(&dir) {
            Ok(space) => space,
            Err(e) => {
                debug!(dir = %dir.display(), error = %e, "statvfs failed; disk space unknown");
                (-1, -1)
            }
        };
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    resp.with_results(vec![result])
}

/// The partitions a request names (null = all; a topic's partitions are
/// merged when it is named twice).
fn wanted(topics: Option<Vec<DescribableLogDirTopic>>) -> Wanted {
    let topics = topics?;
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for t in topics {
        out.entry(t.topic.0.to_string()).or_default().extend(t.partitions);
    }
    Some(out)
}

/// Every wanted partition with a segment whose ensemble includes `node`,
/// with the bytes of those segments that metadata knows (see the module
/// doc), in topic and partition order.
pub fn replica_sizes(s: &MetaState, node: NodeId, wanted: &Wanted) -> Vec<ReplicaSize> {
    let mut out = Vec::new();
    for t in s.topics.values() {
        let only = match wanted {
            None => None,
            Some(w) => match w.get(&t.name) {
                Some(parts) => Some(parts),
                None => continue,
            },
        };
        for p in 0..t.partitions {
            let partition = p as i32;
            if only.is_some_and(|parts| !parts.contains(&partition)) {
                continue;
            }
            let id = t.stream(p);
            let Some(stream) = s.stream(&id) else { continue };
            let mine = stream.segments.iter().filter(|seg| seg.ensemble.contains(&node));
            let mut held = false;
            let mut sealed_bytes = 0u64;
            let mut in_progress = None;
            for seg in mine {
                held = true;
                match seg.state {
                    SegmentState::Completed => sealed_bytes += seg.size_bytes,
                    SegmentState::InProgress => in_progress = Some(seg.lssn),
                }
            }
            if held {
                out.push(ReplicaSize {
                    topic: t.name.clone(),
                    partition,
                    stream: id,
                    sealed_bytes,
                    in_progress,
                });
            }
        }
    }
    out
}

/// Group the replicas by topic, adding the in-progress segment's bytes
/// where `open_segment` (the owner's writer view: LSSN, bytes) knows them
/// for that very segment.
pub fn to_topics(
    replicas: Vec<ReplicaSize>,
    open_segment: impl Fn(StreamId) -> Option<(u64, u64)>,
) -> Vec<DescribeLogDirsTopic> {
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for r in replicas {
        let open = match (r.in_progress, open_segment(r.stream)) {
            (Some(lssn), Some((open_lssn, bytes))) if lssn == open_lssn => bytes,
            _ => 0,
        };
        let size = r.sealed_bytes.saturating_add(open).min(i64::MAX as u64) as i64;
        let partition = DescribeLogDirsPartition::default()
            .with_partition_index(r.partition)
            .with_partition_size(size)
            .with_offset_lag(0)
            .with_is_future_key(false);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == r.topic => t.partitions.push(partition),
            _ => topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(r.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    topics
}

/// (total, usable) bytes of the file system holding `dir`, as Kafka
/// reports them (capped at `i64::MAX`).
fn disk_space(dir: &Path) -> std::io::Result<(i64, i64)> {
    let (total, usable) = distlog_metadata::store::disk::disk_space(dir)?;
    let cap = |v: u64| v.min(i64::MAX as u64) as i64;
    Ok((cap(total), cap(usable)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use distlog_metadata::{SegmentMeta, StreamMeta, TopicMeta};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use uuid::Uuid;

    use super::*;

    fn segment(lssn: u64, ensemble: &[u64], state: SegmentState, size: u64) -> SegmentMeta {
        SegmentMeta {
            lssn,
            ledger_id: lssn,
            ensemble: ensemble.iter().map(|n| NodeId::new(*n)).collect(),
            write_quorum: ensemble.len() as u8,
            ack_quorum: 1,
            base_offset: 0,
            start_txid: 0,
            state,
            last_offset: None,
            end_txid: 0,
            last_entry_id: None,
            size_bytes: size,
            created_ms: 1,
            owner_epoch: 1,
        }
    }

    /// Topic "t" with 3 partitions: p0 on [1,2] sealed 100 + [2,3] sealed 50
    /// + [1,3] in progress; p1 on [2,3] only; p2 without a stream.
    fn state() -> (MetaState, TopicMeta) {
        let t = TopicMeta {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            configs: BTreeMap::new(),
            created_ms: 1,
        };
        let mut s = MetaState::default();
        let stream = |p: u32, segments: Vec<SegmentMeta>| StreamMeta {
            id: t.stream(p),
            topic: "t".into(),
            owner: Some(NodeId::new(1)),
            owner_epoch: 1,
            log_start_offset: 0,
            segments,
            next_lssn: 9,
        };
        s.streams.insert(
            t.stream(0),
            stream(
                0,
                vec![
                    segment(1, &[1, 2], SegmentState::Completed, 100),
                    segment(2, &[2, 3], SegmentState::Completed, 50),
                    segment(3, &[1, 3], SegmentState::InProgress, 0),
                ],
            ),
        );
        s.streams.insert(
            t.stream(1),
            stream(1, vec![segment(1, &[2, 3], SegmentState::Completed, 7)]),
        );
        s.topics.insert("t".into(), t.clone());
        (s, t)
    }

    fn sizes(topics: &[DescribeLogDirsTopic]) -> Vec<(String, i32, i64)> {
        topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size))
            })
            .collect()
    }

    #[test]
    fn each_node_reports_the_segments_its_bookie_holds() {
        let (s, t) = state();
        let none = |_| None;
        let n1 = replica_sizes(&s, NodeId::new(1), &None);
        assert_eq!(n1.len(), 1);
        assert_eq!(n1[0].in_progress, Some(3));
        assert_eq!(sizes(&to_topics(n1.clone(), none)), vec![("t".into(), 0, 100)]);
        // The owner's writer knows the in-progress segment's bytes.
        let open = |id| (id == t.stream(0)).then_some((3, 25));
        assert_eq!(sizes(&to_topics(n1, open)), vec![("t".into(), 0, 125)]);
        // A writer view of another segment (just rolled) is not counted.
        let stale = |_| Some((2, 999));
        let n1 = replica_sizes(&s, NodeId::new(1), &None);
        assert_eq!(sizes(&to_topics(n1, stale)), vec![("t".into(), 0, 100)]);
        let n2 = replica_sizes(&s, NodeId::new(2), &None);
        assert_eq!(
            sizes(&to_topics(n2, none)),
            vec![("t".into(), 0, 150), ("t".into(), 1, 7)]
        );
        let n3 = replica_sizes(&s, NodeId::new(3), &None);
        assert_eq!(n3[0].in_progress, Some(3));
        assert_eq!(
            sizes(&to_topics(n3, none)),
            vec![("t".into(), 0, 50), ("t".into(), 1, 7)]
        );
        assert!(replica_sizes(&s, NodeId::new(4), &None).is_empty());
    }

    #[test]
    fn a_request_for_topics_answers_only_those() {
        let (s, _) = state();
        let req = |topics: Vec<(&str, Vec<i32>)>| {
            wanted(Some(
                topics
                    .into_iter()
                    .map(|(n, p)| {
                        DescribableLogDirTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(n.into())))
                            .with_partitions(p)
                    })
                    .collect(),
            ))
        };
        let got = |w: &Wanted| sizes(&to_topics(replica_sizes(&s, NodeId::new(2), w), |_| None));
        assert_eq!(got(&req(vec![("t", vec![1])])), vec![("t".into(), 1, 7)]);
        assert_eq!(
            got(&req(vec![("t", vec![1]), ("t", vec![0, 2, 9])])),
            vec![("t".into(), 0, 150), ("t".into(), 1, 7)]
        );
        assert!(got(&req(vec![("unknown", vec![0])])).is_empty());
        assert!(got(&req(vec![])).is_empty());
        assert!(got(&req(vec![("t", vec![])])).is_empty());
        assert_eq!(got(&None).len(), 2);
    }

    #[test]
    fn disk_space_of_a_real_directory() {
        let (total, usable) = disk_space(Path::new(".")).expect("statvfs");
        assert!(total > 0 && usable > 0 && total >= usable, "{total} {usable}");
        assert!(disk_space(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn response_encodes_at_every_version() {
        let (s, _) = state();
        let topics = to_topics(replica_sizes(&s, NodeId::new(2), &None), |_| None);
        let result = DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_static_str("/d/bookie"))
            .with_topics(topics);
        for v in VERSIONS.0..=VERSIONS.1 {
            let r = if v >= 4 {
                result.clone().with_total_bytes(10).with_usable_bytes(5)
            } else {
                result.clone()
            };
            let resp = DescribeLogDirsResponse::default().with_results(vec![r]);
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = DescribeLogDirsResponse::decode(&mut buf.freeze(), v).expect("decodes");
            assert_eq!(sizes(&back.results[0].topics).len(), 2, "v{v}");
        }
    }
}
