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
//! delay is 0, each dispatch gets [`DISPATCH_TIMEOUT`] (long polls and parked joins are cut,
//! which is not a failure), and the node is replaced by a fresh one on a new directory every
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
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;

/// Largest frame fed to the broker (libFuzzer's inputs are smaller by default anyway).
pub const MAX_FRAME: usize = 1 << 20;
/// Longest one request may take before it is abandoned.
pub const DISPATCH_TIMEOUT: Duration = Duration::from_millis(100);
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
    let node = rt.block_on(Node::start(config)).expect("start the in-process node");
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
    let d = dispatcher.clone();
    let outcome = rt.block_on(async move { tokio::time::timeout(DISPATCH_TIMEOUT, d.dispatch(req)).await });
    let frame = match outcome {
        Err(_) | Ok(Outcome::NoResponse | Outcome::Close(_)) => return,
        Ok(Outcome::Respond(frame)) => frame,
        Ok(Outcome::RespondChunks(chunks)) => {
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
    assert!(frame.len() >= 8, "{api_key:?} v{version}: response shorter than size + correlation id");
    let size = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
    assert_eq!(size as usize, frame.len() - 4, "{api_key:?} v{version}: size prefix");
    let mut buf = frame.slice(4..);
    let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{api_key:?} v{version}: response header does not decode: {e}"));
    assert_eq!(header.correlation_id, correlation_id, "{api_key:?} v{version}: correlation id");
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
    if let Err(e) = ResponseKind::decode(api_key, &mut body, body_version) {
        panic!("{api_key:?} v{version}: response body does not decode at v{body_version}: {e}");
    }
    assert!(body.is_empty(), "{api_key:?} v{version}: {} bytes after the response body", body.len());
}
