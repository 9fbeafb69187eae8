//! Membership changes of the metadata group in one process over real TCP:
//! a node joins through seed addresses as a learner (also when the log it
//! needs was compacted into a snapshot), a learner is promoted to voter,
//! voters are removed and lost while a majority remains, a learner restarts
//! from its data directory, and the guard rails refuse unsafe changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlog_metadata::{
    Command, MetaState, MetadataConfig, MetadataError, MetadataStore, NodeId, RaftTuning,
};

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    format!("127.0.0.1:{port}")
}

/// Snapshot every few entries and keep no log below a snapshot, so a node
/// joining late must be sent a snapshot.
fn tuning() -> RaftTuning {
    RaftTuning {
        snapshot_logs_since_last: 5,
        max_in_snapshot_log_to_keep: 0,
        startup_timeout: Duration::from_secs(20),
    }
}

fn voter_config(dir: &Path, id: NodeId, voters: &BTreeMap<NodeId, String>) -> MetadataConfig {
    MetadataConfig {
        data_dir: dir.join(format!("node{id}")),
        node_id: id,
        raft_addr: voters[&id].clone(),
        advertised_raft_addr: None,
        voters: voters.clone(),
        seeds: Vec::new(),
    }
}

fn learner_config(dir: &Path, id: NodeId, addr: &str, seeds: Vec<String>) -> MetadataConfig {
    MetadataConfig {
        data_dir: dir.join(format!("node{id}")),
        node_id: id,
        raft_addr: addr.to_string(),
        advertised_raft_addr: None,
        voters: BTreeMap::new(),
        seeds,
    }
}

fn create(name: &str) -> Command {
    Command::CreateTopic {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions: 1,
        configs: BTreeMap::new(),
        created_ms: 0,
    }
}

async fn until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three voters, ids 1..=3, opened together (each waits for a quorum).
async fn three_voters(dir: &Path) -> (BTreeMap<NodeId, String>, Vec<Arc<MetadataStore>>) {
    let voters: BTreeMap<NodeId, String> = (1..=3).map(|id| (NodeId::new(id), free_addr())).collect();
    let opens = voters
        .keys()
        .map(|id| MetadataStore::open_tuned(voter_config(dir, *id, &voters), tuning()))
        .collect::<Vec<_>>();
    let nodes = futures::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| r.expect("voter opens"))
        .collect();
    (voters, nodes)
}

async fn write_topics(node: &MetadataStore, prefix: &str, count: usize) {
    for i in 0..count {
        node.write(create(&format!("{prefix}{i}")))
            .await
            .expect("topic created");
    }
}

fn applied(node: &MetadataStore) -> Option<u64> {
    node.raft_metrics().last_applied.map(|l| l.index)
}

/// Wait until every node has applied the same log index and holds the
/// same state, and return that state. Both are read again until they agree
/// (a node may apply the next entry between the two reads); after 15 s the
/// states are compared as they are, so a real divergence fails with a diff.
async fn same_state(nodes: &[&Arc<MetadataStore>]) -> MetaState {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let first = applied(nodes[0]);
        let state = nodes[0].read(|s| s.clone());
        let converged = first.is_some()
            && nodes.iter().all(|n| applied(n) == first)
            && nodes[1..].iter().all(|n| n.read(|s| s.clone()) == state)
            && applied(nodes[0]) == first;
        if converged {
            return state;
        }
        if std::time::Instant::now() >= deadline {
            for node in &nodes[1..] {
                assert_eq!(node.read(|s| s.clone()), state, "replicas hold identical state");
            }
            panic!(
                "replicas did not apply the same log within 15 s: {:?}",
                nodes.iter().map(|n| applied(n)).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn shutdown_all(nodes: &[&Arc<MetadataStore>]) {
    for node in nodes {
        node.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_through_seeds_as_a_learner_from_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (voters, nodes) = three_voters(dir.path()).await;
    write_topics(&nodes[0], "before", 30).await;
    let leader = nodes.iter().find(|n| n.is_leader()).expect("a leader").clone();
    until(
        "the leader purged log behind a snapshot",
        Duration::from_secs(10),
        || {
            let m = leader.raft_metrics();
            m.snapshot.is_some() && m.purged.is_some()
        },
    )
    .await;
    let purged = leader.raft_metrics().purged.expect("purged").index;

    // Seeds in turn: nothing listens at the first; the others are members
    // (possibly followers, which redirect to the leader).
    let addr4 = free_addr();
    let seeds = vec![
        free_addr(),
        voters[&NodeId::new(2)].clone(),
        voters[&NodeId::new(3)].clone(),
    ];
    let learner = MetadataStore::open_tuned(
        learner_config(dir.path(), NodeId::new(4), &addr4, seeds),
        tuning(),
    )
    .await
    .expect("the learner joins through its seeds");
    let members = learner.members();
    assert_eq!(members.voters, voters);
    assert_eq!(
        members.learners,
        BTreeMap::from([(NodeId::new(4), addr4.clone())])
    );
    assert!(!learner.is_leader());
    let installed = learner
        .raft_metrics()
        .snapshot
        .expect("the learner holds a snapshot");
    assert!(
        installed.index >= purged,
        "the learner was sent a snapshot covering the purged log ({installed:?} < {purged})"
    );

    let all: Vec<&Arc<MetadataStore>> = nodes.iter().chain(std::iter::once(&learner)).collect();
    let state = same_state(&all).await;
    assert_eq!(state.topics.len(), 30);
    assert!(!state.cluster_id.is_empty());

    // Writes through the learner are forwarded to the leader and reach all.
    learner
        .write(create("via-learner"))
        .await
        .expect("write through the learner");
    write_topics(&nodes[1], "after", 12).await;
    let state = same_state(&all).await;
    assert_eq!(state.topics.len(), 43);
    assert!(state.topics.contains_key("via-learner"));
    assert_eq!(
        learner.members().learners.keys().copied().collect::<Vec<_>>(),
        vec![NodeId::new(4)]
    );

    shutdown_all(&all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_learner_keeps_the_group_alive_after_voters_leave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (voters, nodes) = three_voters(dir.path()).await;
    write_topics(&nodes[0], "t", 8).await;
    let addr4 = free_addr();
    let n4 = MetadataStore::open_tuned(
        learner_config(
            dir.path(),
            NodeId::new(4),
            &addr4,
            vec![voters[&NodeId::new(3)].clone()],
        ),
        tuning(),
    )
    .await
    .expect("node 4 joins");

    // Promote through the learner itself (sent to the leader).
    let members = n4
        .add_voter(NodeId::new(4), &addr4)
        .await
        .expect("node 4 promoted");
    let mut four = voters.clone();
    four.insert(NodeId::new(4), addr4.clone());
    assert_eq!(members.voters, four);
    assert!(members.learners.is_empty(), "{members:?}");
    // Promoting again changes nothing.
    assert_eq!(
        n4.add_voter(NodeId::new(4), &addr4)
            .await
            .expect("idempotent")
            .voters,
        four
    );

    // Remove node 1 (the initialiser, usually the leader) through node 4.
    let members = n4.remove_node(NodeId::new(1)).await.expect("node 1 removed");
    let mut remaining = four.clone();
    remaining.remove(&NodeId::new(1));
    assert_eq!(members.voters, remaining);
    assert!(members.learners.is_empty(), "{members:?}");
    nodes[0].shutdown().await.expect("node 1 stops");

    // Lose node 2 as well: 3 and 4 are a majority of {2, 3, 4}.
    nodes[1].shutdown().await.expect("node 2 stops");
    let alive = [&nodes[2], &n4];
    until("a leader among nodes 3 and 4", Duration::from_secs(15), || {
        alive.iter().any(|n| n.is_leader())
    })
    .await;
    nodes[2]
        .write(create("from3"))
        .await
        .expect("write through node 3");
    n4.write(create("from4")).await.expect("write through node 4");
    let state = same_state(&alive).await;
    assert_eq!(state.topics.len(), 10);
    assert!(state.topics.contains_key("from3") && state.topics.contains_key("from4"));
    for node in alive {
        assert_eq!(node.members().voters, remaining);
    }
    shutdown_all(&alive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_restarts_from_its_data_dir_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (voters, nodes) = three_voters(dir.path()).await;
    write_topics(&nodes[0], "early", 6).await;
    let addr4 = free_addr();
    let config = learner_config(
        dir.path(),
        NodeId::new(4),
        &addr4,
        vec![voters[&NodeId::new(1)].clone()],
    );
    let learner = MetadataStore::open_tuned(config.clone(), tuning())
        .await
        .expect("the learner joins");
    learner.shutdown().await.expect("the learner stops");

    // The group moves on (and compacts) while the learner is down.
    write_topics(&nodes[1], "late", 20).await;

    // Already a member: it comes back without asking its seeds, which
    // here point at nothing.
    let restarted = MetadataStore::open_tuned(
        MetadataConfig {
            seeds: vec![free_addr()],
            ..config
        },
        tuning(),
    )
    .await
    .expect("the learner restarts");
    let all: Vec<&Arc<MetadataStore>> = nodes.iter().chain(std::iter::once(&restarted)).collect();
    let state = same_state(&all).await;
    assert_eq!(state.topics.len(), 26);
    assert_eq!(
        restarted.members().learners,
        BTreeMap::from([(NodeId::new(4), addr4)])
    );

    // Removing the learner leaves the voters as they were.
    let members = nodes[2]
        .remove_node(NodeId::new(4))
        .await
        .expect("learner removed");
    assert_eq!(members.voters, voters);
    assert!(members.learners.is_empty(), "{members:?}");
    shutdown_all(&all).await;
}

fn raft_message(r: Result<impl std::fmt::Debug, MetadataError>) -> String {
    match r {
        Err(MetadataError::Raft(msg)) => msg,
        other => panic!("expected a raft error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_membership_changes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let store = MetadataStore::open_tuned(
        learner_config(dir.path(), NodeId::new(1), &addr, Vec::new()),
        tuning(),
    )
    .await
    .expect("single voter opens");
    let before = store.members();
    assert_eq!(before.voters, BTreeMap::from([(NodeId::new(1), addr.clone())]));
    assert!(before.learners.is_empty());

    let msg = raft_message(store.remove_node(NodeId::new(1)).await);
    assert!(msg.contains("node 1 is the last metadata voter"), "{msg}");
    let msg = raft_message(store.remove_node(NodeId::new(9)).await);
    assert!(msg.contains("node 9 is not a metadata member"), "{msg}");
    let msg = raft_message(store.add_voter(NodeId::new(1), "127.0.0.1:1").await);
    assert!(
        msg.contains(&format!(
            "node 1 is already a metadata member at {addr}, not 127.0.0.1:1"
        )),
        "{msg}"
    );
    assert_eq!(store.members(), before, "nothing changed");
    store.write(create("still-works")).await.expect("still writable");
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_fails_within_the_timeout_when_no_seed_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeds = vec![free_addr(), free_addr()];
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let result = MetadataStore::open_tuned(
        learner_config(dir.path(), NodeId::new(5), &free_addr(), seeds.clone()),
        RaftTuning {
            startup_timeout: timeout,
            ..tuning()
        },
    )
    .await;
    let elapsed = started.elapsed();
    let msg = raft_message(result.map(|_| ()));
    assert!(elapsed >= timeout, "it retried until the timeout ({elapsed:?})");
    assert!(
        elapsed < timeout + Duration::from_secs(3),
        "it gave up promptly ({elapsed:?})"
    );
    assert!(
        msg.contains(&format!(
            "node 5 could not join the metadata group through the seeds {seeds:?} within 2s"
        )),
        "{msg}"
    );
    assert!(msg.contains("is unreachable"), "the last error is named: {msg}");
    assert!(msg.contains("check that the seeds are running"), "{msg}");
}
