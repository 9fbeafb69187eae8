//! A distlog node in the library: [`Node::start`] assembles the roles a
//! configuration asks for (metadata store, bookie, Kafka broker listeners)
//! plus the HTTP port, the lease and the ownership controller;
//! [`Node::shutdown`] stops them in order (controlled shutdown: drain
//! connections, release the lease, seal the open segments, close the
//! bookie and the metadata store). The `distlog` binary only parses its
//! configuration, starts a node and shuts it down on a signal; tests run
//! nodes in-process the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::{Command, MetadataConfig, MetadataError, MetadataStore};
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::bookie_net::{BookieServer, ServerConfig};
use distlog_storage::log::{Namespace, NamespaceConfig, Ownership};
use distlog_storage::StorageError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::group::GroupCoordinator;
use crate::handlers::KafkaDispatcher;
use crate::http::{self, Readiness};
use crate::server::listener;
use crate::{lease, metrics, ownership, Broker};

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a node could not start or did not stop cleanly. The messages say
/// what was being done; the sources say why.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not bind, or another broker-level failure.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path} (--data-dir)")]
    DataDir {
        /// The directory.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A step of starting the metadata store failed.
    #[error("{context}")]
    Metadata {
        /// What was being done.
        context: &'static str,
        /// The metadata store's error.
        #[source]
        source: MetadataError,
    },
    /// A step of starting the storage roles (bookie, namespace) failed.
    #[error("{context}")]
    Storage {
        /// What was being done.
        context: String,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// A startup task panicked or was cancelled.
    #[error("{context}: {source}")]
    Task {
        /// What was being done.
        context: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// Shutdown finished, but some role failed to close (logged).
    #[error("shutdown finished with errors (see above)")]
    UncleanShutdown,
}

/// A running node: its roles, their tasks and the addresses it serves.
pub struct Node {
    config: Arc<BrokerConfig>,
    meta: Arc<MetadataStore>,
    ns: Arc<Namespace>,
    bookie: Option<Arc<Bookie>>,
    bookie_server: Option<BookieServer>,
    broker: Arc<Broker>,
    ready: Readiness,
    shutdown_tx: watch::Sender<bool>,
    http_task: JoinHandle<std::io::Result<()>>,
    kafka_tasks: Vec<JoinHandle<()>>,
    lease_task: JoinHandle<()>,
    controller_task: Option<JoinHandle<()>>,
    /// Writes the transaction markers this node owes (`txn_markers`).
    marker_task: Option<JoinHandle<()>>,
    /// Aborts transactions that outlived their timeout (acts on the Raft leader).
    txn_timeout_task: JoinHandle<()>,
    trimmer_task: Option<JoinHandle<()>>,
    /// Truncates the streams this node owns as retention allows.
    retention_task: JoinHandle<()>,
    /// Collects ledgers no segment references on this node's bookie.
    orphan_task: Option<JoinHandle<()>>,
    kafka_addrs: Vec<SocketAddr>,
    http_addr: SocketAddr,
}

impl Node {
    /// Start a node with `config`'s roles and serve until
    /// [`shutdown`](Node::shutdown). Binds every listener first, so a port
    /// conflict fails fast and names its flag. Must run in a tokio runtime.
    pub async fn start(config: BrokerConfig) -> Result<Node, NodeError> {
        let trimmer_task = spawn_heap_trimmer();
        let config = Arc::new(config);
        metrics::init();

        let mut kafka = Vec::new();
        if config.roles.broker {
            let flag = if config.listeners.len() > 1 {
                "listeners"
            } else {
                "kafka-listen"
            };
            for l in &config.listeners {
                kafka.push((l.clone(), listener::bind(&l.bind, flag).await?));
            }
        }
        let http_listener = listener::bind(&config.http_listen, "http-listen").await?;
        let kafka_addrs = kafka
            .iter()
            .map(|(_, socket)| local_addr(socket))
            .collect::<Result<Vec<_>, _>>()?;
        let http_addr = local_addr(&http_listener)?;

        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .map_err(|source| NodeError::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            })?;

        let meta = open_metadata(&config).await?;
        let bookie = match config.roles.bookie {
            true => Some(open_bookie(&config, &meta).await?),
            false => None,
        };
        let bookie_server = match (&bookie, &config.bookie_listen) {
            (Some(bookie), Some(addr)) => Some(
                BookieServer::bind(
                    addr.as_str(),
                    Arc::new(LocalBookie(bookie.clone())),
                    ServerConfig::default(),
                )
                .await
                .map_err(|source| NodeError::Storage {
                    context: format!(
                        "cannot serve the bookie on {addr}; choose another address with --bookie-listen"
                    ),
                    source,
                })?,
            ),
            _ => None,
        };

        let ns_config = namespace_config(&config, meta.clone());
        // A node without the bookie role (a broker of the split topology)
        // places every ledger on the cluster's registered bookies.
        let ns = match &bookie {
            Some(bookie) => {
                Namespace::open(meta.clone(), Arc::new(LocalBookie(bookie.clone())), ns_config).await
            }
            None => Namespace::open_without_bookie(meta.clone(), ns_config).await,
        }
        .map_err(|source| NodeError::Storage {
            context: "cannot open the log namespace".into(),
            source,
        })?;

        lease::register(&meta, &config)
            .await
            .map_err(|source| NodeError::Metadata {
                context: "cannot register this node in the metadata store",
                source,
            })?;

        let groups = GroupCoordinator::start(meta.clone(), &config);
        let broker = Arc::new(Broker {
            meta: meta.clone(),
            ns: ns.clone(),
            config: config.clone(),
            groups,
            producer_ids: crate::producer::ids::ProducerIdBlocks::new(meta.clone()),
            failed_batches: Default::default(),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let ready = Readiness::default();

        let http_task = tokio::spawn(http::serve(
            http_listener,
            http::router(broker.clone(), ready.clone()),
            shutdown_rx.clone(),
        ));
        let kafka_tasks: Vec<_> = kafka
            .into_iter()
            .map(|(l, socket)| {
                tokio::spawn(listener::run(
                    socket,
                    Arc::new(KafkaDispatcher::new(broker.clone(), l)),
                    config.max_request_bytes,
                    shutdown_rx.clone(),
                    SHUTDOWN_GRACE,
                ))
            })
            .collect();
        let lease_task = tokio::spawn(lease::renew(meta.clone(), config.clone(), shutdown_rx.clone()));
        let controller_task = (config.is_cluster() && config.roles.meta).then(|| {
            tokio::spawn(ownership::run_controller(
                meta.clone(),
                shutdown_rx.clone(),
                (2 * config.broker_heartbeat_interval_ms).min(config.broker_session_timeout_ms),
            ))
        });
        let txn_timeout_task = tokio::spawn(crate::txn::timeouts::run(
            meta.clone(),
            Duration::from_millis(config.transaction_abort_timed_out_transaction_cleanup_interval_ms),
            config.transactional_id_expiration_ms,
            shutdown_rx.clone(),
        ));

        let marker_task = config
            .roles
            .broker
            .then(|| crate::txn_markers::spawn(broker.clone(), shutdown_rx.clone()));

        let check_interval = Duration::from_millis(config.log_retention_check_interval_ms);
        let retention_task = ns.start_retention(check_interval);
        let orphan_task = bookie
            .clone()
            .map(|b| spawn_orphan_collector(meta.clone(), b, check_interval));

        ready.set_ready();
        log_serving(&config);
        Ok(Node {
            config,
            meta,
            ns,
            bookie,
            bookie_server,
            broker,
            ready,
            shutdown_tx,
            http_task,
            kafka_tasks,
            lease_task,
            controller_task,
            marker_task,
            txn_timeout_task,
            trimmer_task,
            retention_task,
            orphan_task,
            kafka_addrs,
            http_addr,
        })
    }

    /// The addresses the Kafka listeners are bound to (one per listener,
    /// in configuration order; empty without the broker role).
    pub fn kafka_addrs(&self) -> &[SocketAddr] {
        &self.kafka_addrs
    }

    /// The address the HTTP port is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The node's metadata store (its local replica).
    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.meta
    }

    /// The node's log namespace (its streams).
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.ns
    }

    /// The broker state the Kafka handlers run against. Exists so a request
    /// can be dispatched without a socket (the fuzz harness builds a
    /// [`KafkaDispatcher`] over it); the same `Broker` the node's listeners
    /// serve, valid until [`shutdown`](Node::shutdown).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Controlled shutdown: stop being ready, drain the Kafka connections
    /// and the HTTP server (within a grace period), give up the lease (in a
    /// cluster, so the streams move at once), seal the open segments, then
    /// close the bookie and the metadata store. Every listener's port is
    /// free when this returns.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        info!("shutdown requested: draining connections");
        self.ready.set_not_ready();
        // Ignored error: every receiver may be gone already, which is the goal.
        let _ = self.shutdown_tx.send(true);

        for task in self.kafka_tasks {
            if let Err(e) = task.await {
                warn!(error = %e, "Kafka listener task failed");
            }
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, self.http_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server failed"),
            Ok(Err(e)) => warn!(error = %e, "HTTP task failed"),
            Err(_) => warn!("HTTP server did not stop within the grace period"),
        }
        self.lease_task.abort();
        if self.config.is_cluster() {
            // Hand this node's streams over now rather than after the session
            // timeout; a failure only delays the move until the lease lapses.
            if let Err(e) = lease::release(&self.meta, &self.config).await {
                warn!(error = %e, "could not release this node's lease; its streams move when it expires");
            }
        }
        if let Some(task) = self.controller_task {
            task.abort();
        }
        if let Some(task) = self.marker_task {
            task.abort();
        }
        self.txn_timeout_task.abort();
        if let Some(task) = self.trimmer_task {
            task.abort();
        }
        self.retention_task.abort();
        if let Some(task) = self.orphan_task {
            task.abort();
        }
        drop(self.broker);

        let mut clean = true;
        if let Err(e) = self.ns.shutdown().await {
            error!(error = %e, "closing log streams failed");
            clean = false;
        }
        if let Some(server) = self.bookie_server {
            server.shutdown().await;
        }
        if let Some(bookie) = self.bookie {
            if let Err(e) = tokio::task::spawn_blocking(move || bookie.shutdown()).await {
                error!(error = %e, "bookie shutdown failed");
                clean = false;
            }
        }
        if let Err(e) = self.meta.shutdown().await {
            error!(error = %e, "metadata store shutdown failed");
            clean = false;
        }
        if clean {
            info!("distlog stopped cleanly");
            Ok(())
        } else {
            Err(NodeError::UncleanShutdown)
        }
    }
}

/// The bound address of `socket`.
fn local_addr(socket: &TcpListener) -> Result<SocketAddr, NodeError> {
    socket
        .local_addr()
        .map_err(|e| NodeError::Broker(BrokerError::io("cannot read a listener's address", e)))
}

/// Open the metadata store under `DATA_DIR/meta` and give the cluster its
/// id on first boot.
async fn open_metadata(config: &BrokerConfig) -> Result<Arc<MetadataStore>, NodeError> {
    let meta = MetadataStore::open(MetadataConfig {
        data_dir: config.data_dir.join("meta"),
        node_id: config.node_id,
        raft_addr: config.raft_listen.clone(),
        advertised_raft_addr: config.advertised_raft.clone(),
        voters: config.meta_voters.clone(),
        // A node without the meta role joins as a learner through the
        // seeds, or through the voters when no seed is given.
        seeds: if config.meta_seeds.is_empty() {
            config.meta_voters.values().cloned().collect()
        } else {
            config.meta_seeds.clone()
        },
    })
    .await
    .map_err(|source| NodeError::Metadata {
        context: "cannot open the metadata store",
        source,
    })?;
    if meta.read(|s| s.cluster_id.is_empty()) {
        meta.write(Command::InitCluster {
            cluster_id: new_cluster_id(),
        })
        .await
        .map_err(|source| NodeError::Metadata {
            context: "cannot initialise the cluster id",
            source,
        })?;
    }
    Ok(meta)
}

/// The log namespace's configuration from the node's.
fn namespace_config(config: &BrokerConfig, meta: Arc<MetadataStore>) -> NamespaceConfig {
    NamespaceConfig {
        broker_id: config.node_id,
        stamp: crate::records::stamp_fn(),
        tail_cache_bytes: config.tail_cache_bytes,
        stream_config: crate::topic_config::stream_config_fn(config, meta),
        speculative_read_delay: (config.speculative_read_ms > 0)
            .then(|| Duration::from_millis(config.speculative_read_ms)),
        ownership: if config.is_cluster() {
            Ownership::Assigned
        } else {
            Ownership::Acquire
        },
        stream_state: Some(crate::producer::stream_state_fn(
            config.producer_id_expiration_ms as i64,
        )),
        reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
    }
}

/// Open this node's bookie (the bookie role) under `DATA_DIR/bookie` and
/// collect its orphan ledgers (those no segment references: a topic deleted
/// or a stream truncated while this bookie was down) before it is served to
/// any writer.
async fn open_bookie(config: &BrokerConfig, meta: &MetadataStore) -> Result<Arc<Bookie>, NodeError> {
    let bookie_config = BookieConfig {
        dir: config.data_dir.join("bookie"),
        bookie_id: config.node_id,
    };
    let bookie = tokio::task::spawn_blocking(move || Bookie::open(bookie_config))
        .await
        .map_err(|source| NodeError::Task {
            context: "bookie open task failed",
            source,
        })?
        .map_err(|source| NodeError::Storage {
            context: "cannot open the bookie".into(),
            source,
        })?;
    distlog_storage::log::gc::collect_orphan_ledgers(meta, &bookie)
        .await
        .map_err(|source| NodeError::Storage {
            context: "cannot garbage-collect orphan ledgers".into(),
            source,
        })?;
    Ok(bookie)
}

/// Every `interval` (the retention check interval), delete the ledgers of
/// this node's bookie that no segment references any more: copies that a
/// truncation or topic deletion could not delete (the deleting node
/// crashed, this bookie did not answer). Safe beside running writers (see
/// [`distlog_storage::log::gc::collect_orphan_ledgers_live`]).
fn spawn_orphan_collector(
    meta: Arc<MetadataStore>,
    bookie: Arc<Bookie>,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = distlog_storage::log::gc::collect_orphan_ledgers_live(&meta, &bookie).await {
                debug!(error = %e, "orphan ledger collection skipped; the next retention check retries");
            }
        }
    })
}

/// Log what the node serves, once it serves.
fn log_serving(config: &BrokerConfig) {
    let listeners: Vec<String> = config
        .listeners
        .iter()
        .map(|l| format!("{} (advertised {})", l.bind_url(), l.advertised_url()))
        .collect();
    info!(
        listeners = %listeners.join(", "),
        node_id = config.node_id.get(),
        roles = %config.roles,
        cluster = config.is_cluster(),
        kafka = %config.kafka_listen,
        advertised = %format!("{}:{}", config.advertised_kafka_host, config.advertised_kafka_port),
        http = %config.http_listen,
        data_dir = %config.data_dir.display(),
        "distlog {} serving: Kafka on {} (advertised {}:{}), HTTP on {}",
        env!("CARGO_PKG_VERSION"),
        config.kafka_listen,
        config.advertised_kafka_host,
        config.advertised_kafka_port,
        config.http_listen,
    );
}

/// Return freed heap memory to the OS every few seconds. glibc keeps
/// freed request and read buffers (megabytes each under load) in its heap,
/// so without this RSS stays at the high-water mark of buffers (120+ MiB
/// after a produce/consume run) instead of live memory. Forcing large
/// buffers to mmap instead cost 35% of consume throughput (page faults and
/// zeroing on every read buffer); trimming off the hot path costs nothing.
fn spawn_heap_trimmer() -> Option<JoinHandle<()>> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return Some(tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim only releases free memory; it takes the
            // allocator's own locks and is safe to call from any thread.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    }));
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// A Kafka-style cluster id: a random UUID in unpadded URL-safe base64.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{id}"
        );
        assert_ne!(id, new_cluster_id());
    }
}
