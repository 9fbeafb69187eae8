//! OffsetFetch answers from an up-to-date metadata replica or not at all.
//!
//! The chaos campaign (seed 2061) saw a group member resume below an
//! acknowledged commit: a node cut off from the other voters still believed
//! it coordinated the group, loaded it from its lagging replica and answered
//! OffsetFetch from there. OffsetFetch now passes a read barrier through the
//! Raft leader first; a node that cannot answers COORDINATOR_NOT_AVAILABLE,
//! which clients retry after looking the coordinator up again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use distlog_compat_tests::cluster::LocalCluster;
use distlog_compat_tests::group::wait_until;
use distlog_compat_tests::raw::Conn;
use distlog_compat_tests::{kafka, OrPanic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const NONE: i16 = 0;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// The Kafka address of node `k` (1-based).
fn addr(c: &LocalCluster, k: usize) -> SocketAddr {
    c.bootstrap()
        .split(',')
        .nth(k - 1)
        .expect("a bootstrap address per node")
        .parse()
        .expect("host:port")
}

/// The node that coordinates `group`, as node 1 says.
fn coordinator(c: &LocalCluster, group: &str) -> usize {
    let mut node = None;
    wait_until(Duration::from_secs(30), "FindCoordinator(group)", || {
        let mut conn = Conn::open(addr(c, 1), "cluster-offsets")?;
        let req = FindCoordinatorRequest::default()
            .with_key(s(group))
            .with_key_type(0);
        let resp: FindCoordinatorResponse = conn.call(ApiKey::FindCoordinator, 3, &req)?;
        if resp.error_code != NONE {
            return Ok(false);
        }
        let found = format!("{}:{}", resp.host, resp.port);
        node = c.bootstrap().split(',').position(|a| a == found).map(|i| i + 1);
        Ok(node.is_some())
    })
    .or_panic("find the group coordinator");
    node.expect("found")
}

/// OffsetFetch v5 of `topic`/0 for `group`: (top-level error, committed offset).
fn fetch(conn: &mut Conn, group: &str, topic: &str) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 5, &req).or_panic("OffsetFetch v5");
    let offset = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    (resp.error_code, offset)
}

#[test]
fn offset_fetch_on_a_node_cut_off_from_the_metadata_quorum_is_refused_not_served_stale() {
    let c = LocalCluster::up(3, "").expect("3-node cluster up");
    let (topic, group) = ("stale-offsets", "stale-offsets-group");
    kafka::create_topic(c.bootstrap(), topic, 1).or_panic("create the topic");
    let k = coordinator(&c, group);
    let mut conn = Conn::open(addr(&c, k), "cluster-offsets").or_panic("connect to the coordinator");

    // A standalone commit (generation -1, no member), as admin tools make.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(42)])]);
    let resp: OffsetCommitResponse = conn
        .call(ApiKey::OffsetCommit, 5, &commit)
        .or_panic("OffsetCommit v5");
    assert_eq!(resp.topics[0].partitions[0].error_code, NONE, "{resp:?}");
    assert_eq!(fetch(&mut conn, group, topic), (NONE, 42));

    // The other two nodes gone: this node's replica can no longer prove it is current.
    for other in (1..=3).filter(|&n| n != k) {
        c.kill9(other).or_panic("kill another node");
    }
    let started = Instant::now();
    let (error, offset) = fetch(&mut conn, group, topic);
    assert_eq!(
        (error, offset),
        (COORDINATOR_NOT_AVAILABLE, -1),
        "OffsetFetch answered from a replica cut off from the metadata quorum"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the refusal took {:?}",
        started.elapsed()
    );
}
