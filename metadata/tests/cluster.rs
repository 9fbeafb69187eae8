//! A three-voter metadata group in one process over real TCP: it forms from
//! its voter list, any node's writes reach every replica (followers forward
//! to the leader), and it survives losing its leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distlog_metadata::{Command, MetadataConfig, MetadataStore, NodeId};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn config(dir: &std::path::Path, id: NodeId, voters: &BTreeMap<NodeId, String>) -> MetadataConfig {
    MetadataConfig {
        data_dir: dir.join(format!("node{id}")),
        node_id: id,
        raft_addr: voters[&id].clone(),
        advertised_raft_addr: None,
        voters: voters.clone(),
        seeds: Vec::new(),
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

async fn open_all(dir: &std::path::Path, voters: &BTreeMap<NodeId, String>) -> Vec<Arc<MetadataStore>> {
    // All three must start together: each waits for a leader, which needs a quorum.
    let opens = voters
        .keys()
        .map(|id| MetadataStore::open(config(dir, *id, voters)))
        .collect::<Vec<_>>();
    futures::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| r.expect("metadata node opens"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_replicate_forward_and_survive_leader_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let voters: BTreeMap<NodeId, String> = (1..=3)
        .map(|id| (NodeId::new(id), format!("127.0.0.1:{}", free_port())))
        .collect();
    let nodes = open_all(dir.path(), &voters).await;
    let cluster_ids: Vec<String> = nodes.iter().map(|n| n.read(|s| s.cluster_id.clone())).collect();
    assert!(!cluster_ids[0].is_empty());

    // A write through every node, leader or not, reaches every replica.
    for (i, node) in nodes.iter().enumerate() {
        node.write(create(&format!("t{i}")))
            .await
            .expect("write through any node");
    }
    for node in &nodes {
        until("all topics on every replica", Duration::from_secs(5), || {
            node.read(|s| (0..3).all(|i| s.topics.contains_key(&format!("t{i}"))))
        })
        .await;
        assert_eq!(
            node.read(|s| s.cluster_id.clone()),
            cluster_ids[0],
            "one cluster id"
        );
    }
    let leaders: Vec<usize> = (0..3).filter(|i| nodes[*i].is_leader()).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader");

    // Stop the leader: the other two elect a new one and keep accepting writes.
    let old = leaders[0];
    nodes[old].shutdown().await.expect("leader stops");
    let survivors: Vec<&Arc<MetadataStore>> = (0..3).filter(|i| *i != old).map(|i| &nodes[i]).collect();
    until("a new leader", Duration::from_secs(10), || {
        survivors.iter().any(|n| n.is_leader())
    })
    .await;
    for (i, node) in survivors.iter().enumerate() {
        node.write(create(&format!("after{i}")))
            .await
            .expect("write after leader loss");
    }
    for node in &survivors {
        until(
            "writes after failover on both survivors",
            Duration::from_secs(5),
            || node.read(|s| s.topics.contains_key("after0") && s.topics.contains_key("after1")),
        )
        .await;
    }

    // The old leader comes back with its data and catches up.
    let old_id = *voters.keys().nth(old).expect("id");
    let back = MetadataStore::open(config(dir.path(), old_id, &voters))
        .await
        .expect("old leader reopens");
    until("the returning node catches up", Duration::from_secs(10), || {
        back.read(|s| {
            s.topics.contains_key("after0") && s.topics.contains_key("after1") && s.topics.len() == 5
        })
    })
    .await;
    back.write(create("from-returned"))
        .await
        .expect("write through the returned node");
    for node in survivors.iter().copied().chain(std::iter::once(&back)) {
        until("the last write everywhere", Duration::from_secs(5), || {
            node.read(|s| s.topics.contains_key("from-returned"))
        })
        .await;
    }
    for node in survivors {
        node.shutdown().await.expect("shutdown");
    }
    back.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_raft_port_closes_that_connection_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let voters = BTreeMap::from([(NodeId::new(1), addr.clone())]);
    let store = MetadataStore::open(config(dir.path(), NodeId::new(1), &voters))
        .await
        .expect("open");
    let hostile: [&[u8]; 4] = [
        &[0xff, 0xff, 0xff, 0xff],                   // absurd length
        &[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'], // not JSON
        &[0, 0, 0, 2, b'{', b'}'],                   // JSON, not a request
        &[0, 0, 0, 9, 1, 2],                         // truncated, then EOF
    ];
    for bytes in hostile {
        let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        s.write_all(bytes).await.expect("send");
        s.shutdown().await.expect("half-close");
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed without an answer: {read:?} {buf:?}"
        );
    }
    store
        .write(create("still-works"))
        .await
        .expect("the node still serves");
    store.shutdown().await.expect("shutdown");
}
