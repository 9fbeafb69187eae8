//! A [`Node`] runs in-process: it starts on free ports in a temporary data
//! directory, answers `/health` and a Kafka ApiVersions request, shuts down
//! (sealing its open segments, releasing its ports), and starts again on the
//! same directory and ports with its metadata and records intact.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use clap::Parser;
use distlog_broker::config::{BrokerConfig, Cli, CliCommand};
use distlog_broker::node::Node;
use distlog_metadata::{Command, MetadataConfig, MetadataStore, NodeId, SegmentState, StreamId};
use distlog_storage::log::AppendRequest;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A free local port (bound, then released for the node to take).
fn free_addr() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    socket.local_addr().expect("local addr").to_string()
}

/// The three addresses a single node listens on.
struct Addrs {
    kafka: String,
    http: String,
    raft: String,
}

/// A single-node configuration parsed as the binary parses its flags.
fn config(dir: &Path, addrs: &Addrs) -> BrokerConfig {
    let data_dir = dir.display().to_string();
    let cli = Cli::try_parse_from([
        "distlog",
        "server",
        "--data-dir",
        &data_dir,
        "--kafka-listen",
        &addrs.kafka,
        "--http-listen",
        &addrs.http,
        "--raft-listen",
        &addrs.raft,
    ])
    .expect("flags parse");
    match cli.command {
        CliCommand::Server(args) => BrokerConfig::from_args(&args).expect("valid configuration"),
        CliCommand::Version | CliCommand::Admin(_) => unreachable!("server was asked for"),
    }
}

/// `GET /health` over a plain TCP connection: the status line.
async fn health(addr: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.expect("connect to HTTP");
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_string()
}

/// Send ApiVersions v0 and return (correlation id, error code, number of
/// APIs) of the answer.
async fn api_versions(addr: &str) -> (i32, i16, i32) {
    let mut conn = TcpStream::connect(addr).await.expect("connect to Kafka");
    let client_id = b"node-test";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    conn.write_all(&(body.len() as i32).to_be_bytes())
        .await
        .expect("send size");
    conn.write_all(&body).await.expect("send request");
    let size = conn.read_i32().await.expect("response size");
    let mut answer = vec![0u8; size as usize];
    conn.read_exact(&mut answer).await.expect("response");
    let correlation = i32::from_be_bytes(answer[0..4].try_into().expect("4 bytes"));
    let error = i16::from_be_bytes(answer[4..6].try_into().expect("2 bytes"));
    let apis = i32::from_be_bytes(answer[6..10].try_into().expect("4 bytes"));
    (correlation, error, apis)
}

/// A Kafka record batch (v2, uncompressed) of `n` records.
fn batch(n: usize) -> BytesMut {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1000 + i as i64,
            key: None,
            value: Some(bytes::Bytes::from(format!("value-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode records");
    buf
}

/// Check that `node` serves HTTP and Kafka on its addresses.
async fn check_serving(node: &Node, addrs: &Addrs) {
    assert_eq!(node.http_addr().to_string(), addrs.http);
    assert_eq!(
        node.kafka_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        vec![addrs.kafka.clone()]
    );
    let status = health(&addrs.http).await;
    assert!(status.contains(" 200 "), "{status}");
    let (correlation, error, apis) = api_versions(&addrs.kafka).await;
    assert_eq!((correlation, error), (7, 0));
    assert!(apis > 10, "only {apis} APIs advertised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_serves_stops_and_restarts_on_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addrs = Addrs {
        kafka: free_addr(),
        http: free_addr(),
        raft: free_addr(),
    };

    let node = Node::start(config(dir.path(), &addrs)).await.expect("start");
    check_serving(&node, &addrs).await;
    let cluster_id = node.metadata().read(|s| s.cluster_id.clone());
    assert!(!cluster_id.is_empty());
    node.metadata()
        .write(Command::CreateTopic {
            name: "kept".into(),
            id: uuid::Uuid::new_v4(),
            partitions: 2,
            configs: BTreeMap::new(),
            created_ms: 1,
        })
        .await
        .expect("create a topic");
    let stream: StreamId = node
        .metadata()
        .read(|s| s.topic("kept").map(|t| t.stream(0)))
        .expect("topic");
    let appended = node
        .namespace()
        .append(
            stream,
            AppendRequest {
                payload: batch(3),
                record_count: 3,
                max_timestamp: 1002,
            },
        )
        .await
        .expect("append");
    assert_eq!(appended.base_offset, 0);
    tokio::time::timeout(Duration::from_secs(30), node.shutdown())
        .await
        .expect("shutdown within 30 s")
        .expect("clean shutdown");

    // Controlled shutdown sealed the open segment: read the metadata the
    // node left behind before anything can recover it.
    let meta = MetadataStore::open(MetadataConfig {
        data_dir: dir.path().join("meta"),
        node_id: NodeId::new(1),
        raft_addr: "127.0.0.1:0".into(),
        advertised_raft_addr: None,
        voters: Default::default(),
        seeds: Vec::new(),
    })
    .await
    .expect("open the stopped node's metadata");
    let segments = meta
        .read(|s| s.stream(&stream).map(|m| m.segments.clone()))
        .expect("stream");
    assert_eq!(
        segments
            .iter()
            .map(|s| (s.state, s.last_offset))
            .collect::<Vec<_>>(),
        vec![(SegmentState::Completed, Some(2))]
    );
    meta.shutdown().await.expect("close the metadata");
    drop(meta);

    // The ports are free again: the same configuration starts on them.
    let node = Node::start(config(dir.path(), &addrs)).await.expect("restart");
    check_serving(&node, &addrs).await;
    let (id, partitions) = node
        .metadata()
        .read(|s| (s.cluster_id.clone(), s.topic("kept").map(|t| t.partitions)));
    assert_eq!(id, cluster_id, "the cluster id survives a restart");
    assert_eq!(partitions, Some(2), "the topic survives a restart");
    let read = node.namespace().read(stream, 0, 1 << 20).await.expect("read");
    assert_eq!(read.high_watermark, 3, "the records survive a restart");
    assert!(!read.entries.is_empty());
    tokio::time::timeout(Duration::from_secs(30), node.shutdown())
        .await
        .expect("shutdown within 30 s")
        .expect("clean shutdown");
}
