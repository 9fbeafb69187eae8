//! Shared set-up of the multi-bookie storage tests: a metadata store, and
//! bookies in their own directories served over TCP and registered in
//! metadata like `--bookie-listen` nodes.

#![allow(dead_code)] // each test binary uses a subset

use std::path::Path;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use distlog_metadata::{BrokerInfo, Command, MetadataConfig, MetadataStore, NodeId, TopicMeta};
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::bookie_net::{BookieServer, ServerConfig};
use distlog_storage::log::{AppendRequest, StampFn, StreamConfig, StreamConfigFn};

/// A single-voter metadata store under `dir/meta`.
pub async fn open_meta(dir: &Path) -> Arc<MetadataStore> {
    MetadataStore::open(MetadataConfig {
        data_dir: dir.join("meta"),
        node_id: NodeId::new(1),
        raft_addr: "127.0.0.1:0".into(),
        advertised_raft_addr: None,
        voters: Default::default(),
        seeds: Vec::new(),
    })
    .await
    .expect("metadata opens")
}

/// Bookie `id` under `dir/bookie<id>`.
pub async fn open_bookie(dir: &Path, id: u32) -> Arc<Bookie> {
    let cfg = BookieConfig {
        dir: dir.join(format!("bookie{id}")),
        bookie_id: NodeId::from(id),
    };
    tokio::task::spawn_blocking(move || Bookie::open(cfg))
        .await
        .expect("join")
        .expect("bookie opens")
}

/// Stop a test cluster in order: namespaces (their writers seal), then the
/// bookie servers, the bookies, and the metadata store.
pub async fn stop_all(
    namespaces: &[Arc<distlog_storage::log::Namespace>],
    servers: Vec<BookieServer>,
    bookies: Vec<Arc<Bookie>>,
    meta: &MetadataStore,
) {
    for ns in namespaces {
        ns.shutdown().await.ok();
    }
    for s in servers {
        s.shutdown().await;
    }
    for b in bookies {
        b.shutdown();
    }
    meta.shutdown().await.expect("metadata shutdown");
}

/// Serve `bookie` on a loopback port and register node `id` with that
/// bookie address and a lease that never expires.
pub async fn serve_registered(meta: &MetadataStore, bookie: &Arc<Bookie>, id: u32) -> BookieServer {
    let server = BookieServer::bind(
        "127.0.0.1:0",
        Arc::new(LocalBookie(bookie.clone())),
        ServerConfig::default(),
    )
    .await
    .expect("bookie serves");
    meta.write(Command::RegisterBroker(BrokerInfo {
        id: NodeId::from(id),
        kafka_host: "127.0.0.1".into(),
        kafka_port: 9092,
        listeners: Default::default(),
        rack: None,
        bookie_addr: Some(server.local_addr().to_string()),
        lease_expires_ms: u64::MAX,
    }))
    .await
    .expect("register");
    server
}

/// Topic config keys under which [`create_replicated_topic`] records a
/// topic's E/Qw/Qa; [`replicated_stream_configs`] reads them back (this
/// fixture stands in for the broker, which owns topic configs).
const SHAPE_KEYS: [&str; 3] = [
    "distlog.ensemble.size",
    "distlog.write.quorum",
    "distlog.ack.quorum",
];

/// Stream settings for the namespaces of these tests: defaults, with the
/// E/Qw/Qa that [`create_replicated_topic`] recorded for the topic.
pub fn replicated_stream_configs() -> StreamConfigFn {
    Arc::new(|topic: &TopicMeta| {
        let mut c = StreamConfig::default();
        let shape: Vec<Option<u8>> = SHAPE_KEYS
            .iter()
            .map(|k| topic.configs.get(*k).and_then(|v| v.parse().ok()))
            .collect();
        if let [Some(e), Some(w), Some(a)] = shape[..] {
            (c.ensemble_size, c.write_quorum, c.ack_quorum) = (e, w, a);
        }
        c
    })
}

/// Create a one-partition topic replicated `ensemble`/`write`/`ack`
/// (E/Qw/Qa) and return its stream.
pub async fn create_replicated_topic(
    meta: &MetadataStore,
    name: &str,
    (ensemble, write, ack): (u8, u8, u8),
) -> distlog_metadata::StreamId {
    let configs = SHAPE_KEYS
        .iter()
        .zip([ensemble, write, ack])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    meta.write(Command::CreateTopic {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions: 1,
        configs,
        created_ms: 0,
    })
    .await
    .expect("topic");
    meta.read(|s| s.topic(name).expect("topic").stream(0))
}

/// The writer's stamp for test records: the record's first 8 bytes become
/// its offset (the broker's real stamp rewrites a RecordBatch header).
pub fn stamp() -> StampFn {
    Arc::new(|buf: &mut BytesMut, base: u64, _epoch: u64| {
        buf[0..8].copy_from_slice(&base.to_be_bytes());
    })
}

/// One test record, `[stamped offset][tag]`, with `max_timestamp`.
pub fn record(tag: u64, max_timestamp: i64) -> AppendRequest {
    let mut b = BytesMut::with_capacity(16);
    b.put_u64(u64::MAX);
    b.put_u64(tag);
    AppendRequest {
        payload: b,
        record_count: 1,
        max_timestamp,
    }
}

/// A two-worker runtime for one "process incarnation" of a test (dropping
/// it without a shutdown simulates a crash).
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
