//! `kafka_request`: the Kafka request path of an in-process single-node broker: frame → header
//! (`server::connection::parse_header`) → admission (`handlers::admits`) → body decode and
//! dispatch (`handlers::KafkaDispatcher`, the real handlers) against a `Node` started once per
//! process on a scratch directory, with every role (metadata, bookie, broker).
//!
//! Input: one request frame WITHOUT its 4-byte size prefix (the prefix is only a length; the
//! framing code is unit-tested separately). Frames over [`MAX_FRAME`] are ignored.
//!
//! Properties: nothing panics (a panic inside a handler task is caught by tokio and would
//! close the connection; here it aborts the run); a request the connection would refuse is
//! refused without dispatch; an answer is a well-formed frame — its size prefix equals its
//! length, its response header decodes at the API's header version with the request's
//! correlation id, and its body decodes at the request's version as the API's response with
//! no bytes left over (ApiVersions may answer at version 0, KIP-511).
//!
//! To keep the broker's state bounded and every input fast: topic auto-creation is off (a
//! Metadata request does not create topics; CreateTopics still does), the initial rebalance
//! delay is 0, each answer is awaited for [`DISPATCH_TIMEOUT`] ([`PARKING_TIMEOUT`] for the APIs that wait by design; a long poll or parked join
//! past it is left running, unchecked, which is not a failure), and the node is replaced by a fresh one on a new directory every
//! [`RESET_EVERY`] inputs or when it holds more than [`MAX_STREAMS`] streams. Two topics exist
//! after every (re)start: `fuzz-a` (1 partition) and `fuzz-b` (3 partitions), the topics the
//! seed corpus was recorded against.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use distlog_broker::config::{BrokerConfig, Cli, CliCommand};
use distlog_broker::handlers::{admits, KafkaDispatcher};
use distlog_broker::node::Node;
use distlog_broker::server::connection::parse_header;
use distlog_broker::server::{Dispatcher, Outcome};
use kafka_protocol::messages::{self as m, ApiKey, ResponseHeader};
use kafka_protocol::protocol::Decodable;

/// Largest frame fed to the broker (libFuzzer's inputs are smaller by default anyway).
pub const MAX_FRAME: usize = 1 << 20;
/// Longest one request may take before it is abandoned.
pub const DISPATCH_TIMEOUT: Duration = Duration::from_millis(100);
/// As [`DISPATCH_TIMEOUT`], for the APIs that may wait by design (a Fetch's
/// `max_wait_ms`, a JoinGroup or SyncGroup parked until the group settles):
/// abandoning those early is the common case, and at 100 ms each they
/// were most of the target's time once the corpus held many of them.
pub const PARKING_TIMEOUT: Duration = Duration::from_millis(5);
/// Inputs served by one node before it is replaced.
pub const RESET_EVERY: u64 = 50_000;
/// Streams one node may accumulate (through CreateTopics/CreatePartitions) before it is replaced.
pub const MAX_STREAMS: usize = 2_000;

struct Harness {
    rt: tokio::runtime::Runtime,
    node: Option<Node>,
    dispatcher: Arc<KafkaDispatcher>,
    dir: PathBuf,
    served: u64,
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

fn config(dir: &std::path::Path) -> BrokerConfig {
    let data_dir = dir.display().to_string();
    let cli = Cli::try_parse_from([
        "distlog",
        "server",
        "--data-dir",
        &data_dir,
        "--kafka-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--raft-listen",
        "127.0.0.1:0",
    ])
    .expect("flags parse");
    let CliCommand::Server(args) = cli.command else {
        panic!("server was asked for");
    };
    let mut config = BrokerConfig::from_args(&args).expect("valid configuration");
    config.auto_create_topics = false;
    config.group_initial_rebalance_delay_ms = 0;
    config
}

fn start(rt: &tokio::runtime::Runtime) -> (Node, Arc<KafkaDispatcher>, PathBuf) {
    let dir = crate::scratch::dir("kafka");
    let config = config(&dir);
    let listener = config.listeners[0].clone();
    let node = rt
        .block_on(Node::start(config))
        .expect("start the in-process node");
    let dispatcher = Arc::new(KafkaDispatcher::new(node.broker().clone(), listener));
    rt.block_on(async {
        for (name, partitions) in [("fuzz-a", 1), ("fuzz-b", 3)] {
            node.broker()
                .create_topic(name, Some(partitions), BTreeMap::new(), false)
                .await
                .expect("create the fuzz topics");
        }
    });
    (node, dispatcher, dir)
}

fn stop(h: Harness) {
    let Harness { rt, node, dir, .. } = h;
    if let Some(node) = node {
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), node.shutdown()).await });
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    crate::scratch::remove(&dir);
}

/// Run one input.
pub fn run(data: &[u8]) {
    if data.len() > MAX_FRAME {
        return;
    }
    HARNESS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let worn = slot.as_ref().is_some_and(|h| {
            h.served >= RESET_EVERY
                || h.node
                    .as_ref()
                    .is_some_and(|n| n.metadata().read(|s| s.streams.len()) > MAX_STREAMS)
        });
        if worn {
            if let Some(old) = slot.take() {
                stop(old);
            }
        }
        let h = slot.get_or_insert_with(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let (node, dispatcher, dir) = start(&rt);
            Harness {
                rt,
                node: Some(node),
                dispatcher,
                dir,
                served: 0,
            }
        });
        h.served += 1;
        one_frame(&h.rt, &h.dispatcher, data);
    });
}

fn one_frame(rt: &tokio::runtime::Runtime, dispatcher: &Arc<KafkaDispatcher>, data: &[u8]) {
    let Ok(req) = parse_header(Bytes::copy_from_slice(data)) else {
        return;
    };
    let api_key = req.api_key;
    let version = req.header.request_api_version;
    let correlation_id = req.header.correlation_id;
    if !admits(api_key, version) || !dispatcher.accepts(api_key, version) {
        return;
    }
    // Spawned as the connection spawns it: a request that outlives the timeout keeps running
    // (it is never cancelled midway, which no connection does either) and finishes during
    // later inputs.
    let task = rt.spawn(dispatcher.clone().dispatch(req));
    let limit = match api_key {
        ApiKey::Fetch | ApiKey::JoinGroup | ApiKey::SyncGroup => PARKING_TIMEOUT,
        _ => DISPATCH_TIMEOUT,
    };
    let outcome = rt.block_on(async move { tokio::time::timeout(limit, task).await });
    let frame = match outcome {
        Err(_) | Ok(Ok(Outcome::NoResponse | Outcome::Close(_))) => return,
        // A panicking handler has already aborted the run (libFuzzer's panic hook).
        Ok(Err(e)) => panic!("{api_key:?} v{version}: request task failed: {e}"),
        Ok(Ok(Outcome::Respond(frame))) => frame,
        Ok(Ok(Outcome::RespondChunks(chunks))) => {
            let mut all = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in &chunks {
                all.extend_from_slice(c);
            }
            Bytes::from(all)
        }
    };
    check_response(api_key, version, correlation_id, frame);
}

fn check_response(api_key: ApiKey, version: i16, correlation_id: i32, frame: Bytes) {
    assert!(
        frame.len() >= 8,
        "{api_key:?} v{version}: response shorter than size + correlation id"
    );
    let size = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
    assert_eq!(
        size as usize,
        frame.len() - 4,
        "{api_key:?} v{version}: size prefix"
    );
    let mut buf = frame.slice(4..);
    let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{api_key:?} v{version}: response header does not decode: {e}"));
    assert_eq!(
        header.correlation_id, correlation_id,
        "{api_key:?} v{version}: correlation id"
    );
    // ApiVersions answers an unsupported version at version 0 (KIP-511).
    let body_version = match api_key {
        ApiKey::ApiVersions
            if distlog_broker::handlers::supported_versions(api_key)
                .is_none_or(|(lo, hi)| !(lo..=hi).contains(&version)) =>
        {
            0
        }
        _ => version,
    };
    let mut body = buf.clone();
    if let Err(e) = decode_response_body(api_key, &mut body, body_version) {
        panic!("{api_key:?} v{version}: response body does not decode at v{body_version}: {e}");
    }
    assert!(
        body.is_empty(),
        "{api_key:?} v{version}: {} bytes after the response body",
        body.len()
    );
}

/// Decode a response body as the response type of `api_key` (every API in
/// `distlog_broker::handlers::SUPPORTED`).
fn decode_response_body(api_key: ApiKey, body: &mut Bytes, version: i16) -> anyhow::Result<()> {
    match api_key {
        ApiKey::Produce => m::ProduceResponse::decode(body, version).map(drop),
        ApiKey::Fetch => m::FetchResponse::decode(body, version).map(drop),
        ApiKey::ListOffsets => m::ListOffsetsResponse::decode(body, version).map(drop),
        ApiKey::Metadata => m::MetadataResponse::decode(body, version).map(drop),
        ApiKey::ApiVersions => m::ApiVersionsResponse::decode(body, version).map(drop),
        ApiKey::CreateTopics => m::CreateTopicsResponse::decode(body, version).map(drop),
        ApiKey::DeleteTopics => m::DeleteTopicsResponse::decode(body, version).map(drop),
        ApiKey::DescribeConfigs => m::DescribeConfigsResponse::decode(body, version).map(drop),
        ApiKey::OffsetCommit => m::OffsetCommitResponse::decode(body, version).map(drop),
        ApiKey::OffsetFetch => m::OffsetFetchResponse::decode(body, version).map(drop),
        ApiKey::FindCoordinator => m::FindCoordinatorResponse::decode(body, version).map(drop),
        ApiKey::JoinGroup => m::JoinGroupResponse::decode(body, version).map(drop),
        ApiKey::Heartbeat => m::HeartbeatResponse::decode(body, version).map(drop),
        ApiKey::LeaveGroup => m::LeaveGroupResponse::decode(body, version).map(drop),
        ApiKey::SyncGroup => m::SyncGroupResponse::decode(body, version).map(drop),
        ApiKey::DescribeGroups => m::DescribeGroupsResponse::decode(body, version).map(drop),
        ApiKey::ListGroups => m::ListGroupsResponse::decode(body, version).map(drop),
        ApiKey::DeleteGroups => m::DeleteGroupsResponse::decode(body, version).map(drop),
        ApiKey::OffsetDelete => m::OffsetDeleteResponse::decode(body, version).map(drop),
        ApiKey::OffsetForLeaderEpoch => m::OffsetForLeaderEpochResponse::decode(body, version).map(drop),
        ApiKey::InitProducerId => m::InitProducerIdResponse::decode(body, version).map(drop),
        ApiKey::DescribeProducers => m::DescribeProducersResponse::decode(body, version).map(drop),
        ApiKey::DescribeCluster => m::DescribeClusterResponse::decode(body, version).map(drop),
        ApiKey::DeleteRecords => m::DeleteRecordsResponse::decode(body, version).map(drop),
        ApiKey::DescribeLogDirs => m::DescribeLogDirsResponse::decode(body, version).map(drop),
        ApiKey::ListPartitionReassignments => {
            m::ListPartitionReassignmentsResponse::decode(body, version).map(drop)
        }
        ApiKey::DescribeTopicPartitions => {
            m::DescribeTopicPartitionsResponse::decode(body, version).map(drop)
        }
        ApiKey::DescribeQuorum => m::DescribeQuorumResponse::decode(body, version).map(drop),
        ApiKey::CreatePartitions => m::CreatePartitionsResponse::decode(body, version).map(drop),
        ApiKey::ElectLeaders => m::ElectLeadersResponse::decode(body, version).map(drop),
        ApiKey::AlterConfigs => m::AlterConfigsResponse::decode(body, version).map(drop),
        ApiKey::IncrementalAlterConfigs => {
            m::IncrementalAlterConfigsResponse::decode(body, version).map(drop)
        }
        ApiKey::AddPartitionsToTxn => m::AddPartitionsToTxnResponse::decode(body, version).map(drop),
        ApiKey::AddOffsetsToTxn => m::AddOffsetsToTxnResponse::decode(body, version).map(drop),
        ApiKey::EndTxn => m::EndTxnResponse::decode(body, version).map(drop),
        ApiKey::TxnOffsetCommit => m::TxnOffsetCommitResponse::decode(body, version).map(drop),
        ApiKey::ListTransactions => m::ListTransactionsResponse::decode(body, version).map(drop),
        ApiKey::DescribeTransactions => m::DescribeTransactionsResponse::decode(body, version).map(drop),
        other => anyhow::bail!("no response type known for {other:?}"),
    }
}
