//! The coordinator in a cluster, simulated on a single-node metadata store:
//! other brokers are registrations with chosen leases, and "their" group
//! state is written straight to the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use distlog_metadata::{
    BrokerInfo, Command, CommittedOffset, GroupMemberRecord, GroupMeta, GroupOp, GroupRecord, MetadataConfig,
    MetadataStore, NodeId, OffsetCommitEntry,
};
use kafka_protocol::error::ResponseError;

use super::member::JoinRequest;
use super::placement::coordinator_index;
use super::state::GroupState;
use super::GroupCoordinator;
use crate::config::BrokerConfig;

/// This broker's id.
const LOCAL: NodeId = NodeId::new(1);
/// A lease that outlives every test.
const LONG: u64 = 600_000;

async fn open_meta(dir: &std::path::Path) -> Arc<MetadataStore> {
    let meta = MetadataStore::open(MetadataConfig {
        data_dir: dir.join("meta"),
        node_id: LOCAL,
        raft_addr: "127.0.0.1:0".into(),
        advertised_raft_addr: None,
        voters: Default::default(),
        seeds: Vec::new(),
    })
    .await
    .expect("metadata opens");
    meta.write(Command::CreateTopic {
        name: "t".into(),
        id: uuid::Uuid::from_u128(1),
        partitions: 2,
        configs: BTreeMap::new(),
        created_ms: 0,
    })
    .await
    .expect("topic");
    meta
}

/// Register (or re-register) broker `id` with a lease ending `lease_ms`
/// from now (negative: already expired).
async fn register(meta: &MetadataStore, id: u64, lease_ms: i64) {
    let now = distlog_metadata::now_ms() as i64;
    meta.write(Command::RegisterBroker(BrokerInfo {
        id: NodeId::new(id),
        kafka_host: format!("broker-{id}.example"),
        kafka_port: 9000 + id as u16,
        listeners: Default::default(),
        rack: None,
        bookie_addr: None,
        lease_expires_ms: (now + lease_ms).max(0) as u64,
    }))
    .await
    .expect("register broker");
}

/// A group id starting with `prefix` that live brokers `live` (ascending)
/// place on `target`, and, when `then` is given, brokers `then.0` place on
/// `then.1`.
fn group_placed(prefix: &str, live: &[u32], target: u32, then: Option<(&[u32], u32)>) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|g| {
            let on = |ids: &[u32]| coordinator_index(g, ids.len()).map(|i| ids[i]);
            on(live) == Some(target) && then.is_none_or(|(ids, t)| on(ids) == Some(t))
        })
        .expect("some group id hashes there")
}

fn config(initial_rebalance_delay_ms: u64) -> BrokerConfig {
    BrokerConfig {
        node_id: LOCAL,
        group_initial_rebalance_delay_ms: initial_rebalance_delay_ms,
        ..BrokerConfig::default()
    }
}

/// A stable generation of two members, as another coordinator stored it.
fn stable_record(generation: i32, session_timeout_ms: i32) -> GroupRecord {
    let member = |n: u8| GroupMemberRecord {
        member_id: format!("m{n}-id"),
        group_instance_id: (n == 2).then(|| "static-2".to_string()),
        client_id: format!("client-{n}"),
        client_host: format!("/10.0.0.{n}"),
        session_timeout_ms,
        rebalance_timeout_ms: 30_000,
        metadata: vec![n, 0, 1],
        assignment: vec![n, 9, 9],
    };
    GroupRecord {
        protocol_type: "consumer".into(),
        generation,
        protocol: Some("range".into()),
        leader: Some("m1-id".into()),
        members: vec![member(1), member(2)],
        state_ms: 1_700_000_000_000,
    }
}

fn commit_op(group: &str, offset: i64) -> GroupOp {
    GroupOp::CommitOffsets {
        group: group.into(),
        generation: None,
        offsets: vec![OffsetCommitEntry {
            topic: "t".into(),
            partition: 1,
            committed: CommittedOffset {
                offset,
                leader_epoch: 3,
                metadata: "from the other coordinator".into(),
                commit_ms: 1_700_000_000_500,
            },
        }],
    }
}

fn stored(meta: &MetadataStore, group: &str) -> Option<GroupMeta> {
    meta.read(|s| s.groups.get(group).cloned())
}

fn join_request() -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

/// Wait until `done` holds (the ownership watcher runs in the background).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn a_group_moves_here_when_its_coordinators_lease_lapses_with_the_state_it_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    register(&meta, LOCAL.get(), LONG as i64).await;
    register(&meta, 2, LONG as i64).await;
    let group = group_placed("group", &[1, 2], 2, None);
    let record = stable_record(7, 10_000);
    meta.write(Command::Groups(vec![
        GroupOp::StoreGroup {
            group: group.clone(),
            record: record.clone(),
        },
        commit_op(&group, 42),
    ]))
    .await
    .expect("the other coordinator's state");
    let before = stored(&meta, &group).expect("stored");

    let c = GroupCoordinator::start(meta.clone(), &config(0));
    // Broker 2 coordinates the group: FindCoordinator points there, and
    // nothing here serves, holds or writes it.
    let found = c.coordinator_for(&group).expect("a coordinator");
    assert_eq!(
        (found.id, found.kafka_host.as_str(), found.kafka_port),
        (NodeId::new(2), "broker-2.example", 9002)
    );
    assert!(!c.is_coordinator(&group));
    assert!(
        c.slot(&group).is_none(),
        "no live slot for another broker's group"
    );
    let nc = Some(ResponseError::NotCoordinator);
    assert_eq!(
        c.check_group(&group),
        nc,
        "OffsetFetch and DescribeGroups check this"
    );
    assert_eq!(c.join(&group, join_request(), || {}).await.error, nc);
    assert_eq!(
        c.sync(|| {}, &group, "m1-id", None, 7, None, None, Vec::new())
            .await
            .error,
        nc
    );
    assert_eq!(c.heartbeat(&group, "m1-id", None, 7), nc);
    assert_eq!(
        c.leave(&group, &[("m1-id".into(), None)]),
        Err(ResponseError::NotCoordinator)
    );
    assert_eq!(
        c.commit(&group, "", None, -1, Vec::new()).await,
        Err(ResponseError::NotCoordinator)
    );
    assert_eq!(
        c.delete_offsets(&group, &[("t".into(), 1)]).await,
        Err(ResponseError::NotCoordinator)
    );
    assert_eq!(c.delete(&group).await, nc);
    assert!(
        c.list().iter().all(|g| g.group_id != group),
        "ListGroups: only local groups"
    );
    assert_eq!(
        c.store
            .submit(vec![commit_op(&group, 99)])
            .await
            .expect("answered"),
        Err(ResponseError::NotCoordinator),
        "the store refuses writes for a group coordinated elsewhere"
    );
    assert!(
        c.slot(&group).is_none(),
        "the refused requests left no slot behind"
    );
    assert_eq!(stored(&meta, &group).as_ref(), Some(&before), "nothing written");

    // Broker 2's lease lapses: the group moves here and is loaded from the store.
    register(&meta, 2, -1).await;
    eventually("the group is loaded", || c.slot(&group).is_some()).await;
    assert!(c.is_coordinator(&group));
    let found = c.coordinator_for(&group).expect("a coordinator");
    assert_eq!(found.id, LOCAL);
    {
        let slot = c.slot(&group).expect("slot");
        let g = slot.group.lock();
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(g.generation(), 7);
        assert_eq!(
            g.record(),
            record,
            "members, generation, protocol and leader exactly"
        );
        let summary = g.summary();
        assert_eq!(
            summary
                .members
                .iter()
                .map(|m| m.member_id.as_str())
                .collect::<Vec<_>>(),
            ["m1-id", "m2-id"]
        );
        assert_eq!(summary.members[1].instance_id.as_deref(), Some("static-2"));
        assert_eq!(summary.members[0].assignment, Bytes::from_static(&[1, 9, 9]));
    }
    let offsets = c.fetch_offsets(&group, None, false);
    assert_eq!(offsets.len(), 1);
    assert_eq!(offsets[0].0, "t");
    let (partition, fetched) = &offsets[0].1[0];
    assert_eq!(*partition, 1);
    assert_eq!(
        (fetched.offset, fetched.leader_epoch, fetched.metadata.as_str()),
        (42, 3, "from the other coordinator")
    );
    // The restored members carry on without a rebalance.
    assert_eq!(c.heartbeat(&group, "m1-id", None, 7), None);
    assert_eq!(c.heartbeat(&group, "m2-id", Some("static-2"), 7), None);
    assert!(c
        .list()
        .iter()
        .any(|g| g.group_id == group && g.state == GroupState::Stable));
    assert_eq!(
        stored(&meta, &group).as_ref(),
        Some(&before),
        "loading writes nothing"
    );
    // And this broker now writes the group's state.
    c.commit(&group, "m1-id", None, 7, vec![offset_entry(43)])
        .await
        .expect("commit as the new coordinator");
    assert_eq!(
        stored(&meta, &group).and_then(|g| g.offset("t", 1).map(|o| o.offset)),
        Some(43)
    );
    meta.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_coordinator_whose_claim_was_taken_over_is_refused_and_changes_nothing() {
    // Campaign seeds 5022, 5054: a broker cut off from the metadata quorum
    // kept coordinating from its stale replica, and the commits skipped at
    // apply were acknowledged. A claim by another broker fences this one.
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    register(&meta, LOCAL.get(), LONG as i64).await;
    let group = "claimed".to_string();
    meta.write(Command::Groups(vec![GroupOp::StoreGroup {
        group: group.clone(),
        record: stable_record(7, 10_000),
    }]))
    .await
    .expect("stored generation");
    let c = GroupCoordinator::start(meta.clone(), &config(0));
    eventually("the stored group is loaded", || c.slot(&group).is_some()).await;
    let claim = meta
        .read(|s| s.group_claims.get(&group).copied())
        .expect("loading claimed the group");
    assert_eq!(claim.node, LOCAL);
    c.commit(&group, "m1-id", None, 7, vec![offset_entry(10)])
        .await
        .expect("commit under this broker's claim");
    meta.write(Command::ClaimGroup {
        group: group.clone(),
        node: NodeId::new(2),
    })
    .await
    .expect("another broker claims the group");
    assert_eq!(
        c.commit(&group, "m1-id", None, 7, vec![offset_entry(5)]).await,
        Err(ResponseError::NotCoordinator),
        "the deposed coordinator's commit is refused"
    );
    assert_eq!(
        stored(&meta, &group).and_then(|g| g.offset("t", 1).map(|o| o.offset)),
        Some(10),
        "and changed nothing"
    );
    meta.shutdown().await.expect("shutdown");
}

fn offset_entry(offset: i64) -> OffsetCommitEntry {
    OffsetCommitEntry {
        topic: "t".into(),
        partition: 1,
        committed: CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: distlog_metadata::now_ms(),
        },
    }
}

#[tokio::test]
async fn a_group_moving_away_is_unloaded_fails_pending_joins_and_is_no_longer_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    register(&meta, LOCAL.get(), LONG as i64).await;
    // Two groups that are local while this broker is alone and move to
    // broker 2 when it joins: one gets a pending join, the other is a stored
    // generation whose members' sessions are about to expire.
    let joining = group_placed("joining", &[1], 1, Some((&[1, 2], 2)));
    let expiring = group_placed("expiring", &[1], 1, Some((&[1, 2], 2)));
    let record = stable_record(3, 300);
    meta.write(Command::Groups(vec![GroupOp::StoreGroup {
        group: expiring.clone(),
        record: record.clone(),
    }]))
    .await
    .expect("stored generation");

    // A long initial rebalance delay keeps the first join waiting.
    let c = GroupCoordinator::start(meta.clone(), &config(60_000));
    eventually("a local stored group is loaded at start-up", || {
        c.slot(&expiring).is_some()
    })
    .await;
    let pending = {
        let c = c.clone();
        let joining = joining.clone();
        tokio::spawn(async move { c.join(&joining, join_request(), || {}).await })
    };
    eventually("the join is waiting in a live slot", || {
        c.slot(&joining)
            .is_some_and(|s| s.group.lock().state() == GroupState::PreparingRebalance)
    })
    .await;
    assert!(!pending.is_finished());

    // Broker 2 joins the cluster: both groups move there.
    register(&meta, 2, LONG as i64).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the pending join is answered")
        .expect("join task");
    assert_eq!(answer.error, Some(ResponseError::NotCoordinator));
    assert!(c.slot(&joining).is_none(), "slot dropped");
    assert!(c.slot(&expiring).is_none(), "slot dropped");
    assert!(!c.is_coordinator(&joining) && !c.is_coordinator(&expiring));
    assert_eq!(
        c.heartbeat(&expiring, "m1-id", None, 3),
        Some(ResponseError::NotCoordinator)
    );
    // The members' sessions (300 ms) run out, but the unloaded group's timer
    // is gone: this broker writes nothing for it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(stored(&meta, &expiring).map(|g| g.record), Some(record));
    assert!(stored(&meta, &joining).is_none());
    assert!(
        c.list().is_empty(),
        "ListGroups lists no group coordinated elsewhere"
    );
    meta.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_group_held_through_another_brokers_lapse_is_reloaded_with_what_was_written_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    register(&meta, LOCAL.get(), LONG as i64).await;
    register(&meta, 2, LONG as i64).await;
    // Broker 3's lease is about to lapse; it will renew it late.
    register(&meta, 3, 150).await;
    // Local with brokers 1, 2 and 3; broker 2's while 3 is out.
    let group = group_placed("group", &[1, 2, 3], 1, Some((&[1, 2], 2)));
    meta.write(Command::Groups(vec![GroupOp::StoreGroup {
        group: group.clone(),
        record: stable_record(4, 10_000),
    }]))
    .await
    .expect("stored generation");
    let c = GroupCoordinator::start(meta.clone(), &config(0));
    eventually("the stored group is loaded at start-up", || {
        c.slot(&group).is_some_and(|s| s.group.lock().generation() == 4)
    })
    .await;

    // While broker 3 was out, broker 2 claimed the group, coordinated it
    // and stored a new generation; then broker 3 renews its lease.
    tokio::time::sleep(Duration::from_millis(250)).await;
    meta.write(Command::ClaimGroup {
        group: group.clone(),
        node: NodeId::new(2),
    })
    .await
    .expect("broker 2's claim");
    let newer = stable_record(5, 10_000);
    meta.write(Command::Groups(vec![
        GroupOp::StoreGroup {
            group: group.clone(),
            record: newer.clone(),
        },
        commit_op(&group, 7),
    ]))
    .await
    .expect("broker 2's writes");
    register(&meta, 3, LONG as i64).await;
    eventually("the group is reloaded with generation 5", || {
        c.slot(&group).is_some_and(|s| s.group.lock().generation() == 5)
    })
    .await;
    assert!(c.is_coordinator(&group));
    assert_eq!(c.slot(&group).map(|s| s.group.lock().record()), Some(newer));
    assert_eq!(
        c.heartbeat(&group, "m1-id", None, 4),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(c.heartbeat(&group, "m1-id", None, 5), None);
    meta.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn offsets_staged_by_an_open_transaction_are_unstable_until_it_commits() {
    use super::FetchedOffset;
    use distlog_metadata::TxnOp;

    let dir = tempfile::tempdir().expect("tempdir");
    let meta = open_meta(dir.path()).await;
    let c = GroupCoordinator::start(meta.clone(), &config(0));
    let txn = |op: TxnOp| {
        let meta = meta.clone();
        async move { meta.txn(op).await.expect("transaction op") }
    };
    txn(TxnOp::Init {
        transactional_id: "tx".into(),
        fresh_producer_id: 9,
        timeout_ms: 60_000,
        expected: None,
        now_ms: 1,
    })
    .await;
    txn(TxnOp::Add {
        transactional_id: "tx".into(),
        producer_id: 9,
        producer_epoch: 0,
        partitions: Vec::new(),
        groups: vec!["g".into()],
        now_ms: 2,
    })
    .await;
    // Anonymous transactional commits pass the group check; named
    // members of a group the coordinator does not know do not.
    assert_eq!(c.check_txn_commit("g", "", None, -1).await, None);
    assert_eq!(
        c.check_txn_commit("g", "someone", None, 3).await,
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        c.check_txn_commit("", "", None, -1).await,
        Some(ResponseError::InvalidGroupId)
    );
    let committed = CommittedOffset {
        offset: 17,
        leader_epoch: 3,
        metadata: "staged".into(),
        commit_ms: 1_700_000_000_500,
    };
    txn(TxnOp::CommitOffsets {
        transactional_id: "tx".into(),
        producer_id: 9,
        producer_epoch: 0,
        group: "g".into(),
        offsets: vec![OffsetCommitEntry {
            topic: "t".into(),
            partition: 1,
            committed,
        }],
    })
    .await;
    let wanted = vec![("t".to_string(), vec![0, 1])];
    let unstable = FetchedOffset::none().with_error(ResponseError::UnstableOffsetCommit);
    assert_eq!(
        c.fetch_offsets("g", Some(&wanted), true),
        vec![("t".to_string(), vec![(0, FetchedOffset::none()), (1, unstable)])]
    );
    // Without require_stable the staged offset is simply not there.
    assert_eq!(
        c.fetch_offsets("g", Some(&wanted), false),
        vec![(
            "t".to_string(),
            vec![(0, FetchedOffset::none()), (1, FetchedOffset::none())]
        )]
    );
    assert!(c.fetch_offsets("g", None, true).is_empty());

    txn(TxnOp::End {
        transactional_id: "tx".into(),
        producer_id: 9,
        producer_epoch: 0,
        commit: true,
        now_ms: 3,
    })
    .await;
    let committed = FetchedOffset {
        offset: 17,
        leader_epoch: 3,
        metadata: "staged".into(),
        error: None,
    };
    assert_eq!(
        c.fetch_offsets("g", Some(&wanted), true),
        vec![("t".to_string(), vec![(0, FetchedOffset::none()), (1, committed)])]
    );
    meta.shutdown().await.expect("shutdown");
}
