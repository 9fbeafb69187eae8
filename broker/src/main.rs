//! The `distlog` binary: `distlog server` runs a node with the roles it is
//! given (`--roles`, default all: metadata store, bookie, Kafka broker) and
//! its HTTP port; `distlog version` prints the version.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use distlog_broker::config::{BrokerConfig, Cli, CliCommand, LogFormat};
use distlog_broker::group::GroupCoordinator;
use distlog_broker::handlers::KafkaDispatcher;
use distlog_broker::http::{self, Readiness};
use distlog_broker::server::listener;
use distlog_broker::{lease, metrics, ownership, Broker};
use distlog_metadata::{Command, MetadataConfig, MetadataStore};
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::bookie_net::{BookieServer, ServerConfig};
use distlog_storage::log::{Namespace, NamespaceConfig, Ownership, StampFn};
use tokio::sync::watch;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Return freed heap memory to the OS every few seconds. glibc keeps
/// freed request and read buffers (megabytes each under load) in its heap,
/// so without this RSS stays at the high-water mark of buffers (120+ MiB
/// after a produce/consume run) instead of live memory. Forcing large
/// buffers to mmap instead cost 35% of consume throughput (page faults and
/// zeroing on every read buffer); trimming off the hot path costs nothing.
fn spawn_heap_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim only releases free memory; it takes the
            // allocator's own locks and is safe to call from any thread.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        CliCommand::Version => {
            println!("distlog {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        CliCommand::Server(args) => BrokerConfig::from_args(&args)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                init_tracing(&config)?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("distlog")
                    .build()
                    .context("cannot start the tokio runtime")?;
                rt.block_on(serve(config))
            }),
    };
    if let Err(e) = result {
        eprintln!("distlog: {e:#}");
        std::process::exit(1);
    }
}

fn init_tracing(config: &BrokerConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).with_context(|| format!("invalid RUST_LOG '{v}'"))?
        }
        // openraft narrates every election at info and every retry to an
        // unreachable peer at warn/error (twice a second while a node is
        // down); keep it to real warnings unless the operator asks for it
        // through RUST_LOG. Our own logs report leadership changes.
        _ => EnvFilter::try_new(format!(
            "{},openraft=warn,openraft::replication=off,openraft::engine::handler::replication_handler=error",
            config.log_level
        ))
        .with_context(|| format!("invalid log level '{}'", config.log_level))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// The payload stamping hook of the produce path (record batches).
fn stamp_fn() -> StampFn {
    distlog_broker::records::stamp_fn()
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

async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    spawn_heap_trimmer();
    let config = Arc::new(config);
    metrics::init();

    // Bind first, so a port conflict fails fast and names its flag.
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

    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .with_context(|| {
            format!(
                "cannot create data directory {} (--data-dir)",
                config.data_dir.display()
            )
        })?;

    let meta = MetadataStore::open(MetadataConfig {
        data_dir: config.data_dir.join("meta"),
        node_id: config.node_id as u64,
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
    .context("cannot open the metadata store")?;
    if meta.read(|s| s.cluster_id.is_empty()) {
        meta.write(Command::InitCluster {
            cluster_id: new_cluster_id(),
        })
        .await
        .context("cannot initialise the cluster id")?;
    }

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
            .with_context(|| {
                format!("cannot serve the bookie on {addr}; choose another address with --bookie-listen")
            })?,
        ),
        _ => None,
    };

    let ns_config = NamespaceConfig {
        broker_id: config.node_id,
        stamp: stamp_fn(),
        tail_cache_bytes: config.tail_cache_bytes,
        stream_config: distlog_broker::topic_config::stream_config_fn(&config),
        speculative_read_delay: (config.speculative_read_ms > 0)
            .then(|| Duration::from_millis(config.speculative_read_ms)),
        ownership: if config.is_cluster() {
            Ownership::Assigned
        } else {
            Ownership::Acquire
        },
    };
    // A node without the bookie role (a broker of the split topology)
    // places every ledger on the cluster's registered bookies.
    let ns = match &bookie {
        Some(bookie) => Namespace::open(meta.clone(), Arc::new(LocalBookie(bookie.clone())), ns_config).await,
        None => Namespace::open_without_bookie(meta.clone(), ns_config).await,
    }
    .context("cannot open the log namespace")?;

    lease::register(&meta, &config)
        .await
        .context("cannot register this node in the metadata store")?;

    let groups = GroupCoordinator::start(meta.clone(), &config);
    let broker = Arc::new(Broker {
        meta: meta.clone(),
        ns: ns.clone(),
        config: config.clone(),
        groups,
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
    let controller_task = (config.is_cluster() && config.roles.meta)
        .then(|| tokio::spawn(ownership::run_controller(meta.clone(), shutdown_rx.clone())));

    ready.set_ready();
    let listeners: Vec<String> = config
        .listeners
        .iter()
        .map(|l| format!("{} (advertised {})", l.bind_url(), l.advertised_url()))
        .collect();
    info!(
        listeners = %listeners.join(", "),
        node_id = config.node_id,
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

    wait_for_signal().await?;
    info!("shutdown requested: draining connections");
    ready.set_not_ready();
    // Ignored error: every receiver may be gone already, which is the goal.
    let _ = shutdown_tx.send(true);
    tokio::spawn(async {
        if wait_for_signal().await.is_ok() {
            eprintln!("distlog: second signal, exiting immediately");
            std::process::exit(130);
        }
    });

    for task in kafka_tasks {
        if let Err(e) = task.await {
            warn!(error = %e, "Kafka listener task failed");
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, http_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server failed"),
        Ok(Err(e)) => warn!(error = %e, "HTTP task failed"),
        Err(_) => warn!("HTTP server did not stop within the grace period"),
    }
    lease_task.abort();
    if config.is_cluster() {
        // Hand this node's streams over now rather than after the session
        // timeout; a failure only delays the move until the lease lapses.
        if let Err(e) = lease::release(&meta, &config).await {
            warn!(error = %e, "could not release this node's lease; its streams move when it expires");
        }
    }
    if let Some(task) = controller_task {
        task.abort();
    }
    drop(broker);

    let mut clean = true;
    if let Err(e) = ns.shutdown().await {
        error!(error = %e, "closing log streams failed");
        clean = false;
    }
    if let Some(server) = bookie_server {
        server.shutdown().await;
    }
    if let Some(bookie) = bookie {
        if let Err(e) = tokio::task::spawn_blocking(move || bookie.shutdown()).await {
            error!(error = %e, "bookie shutdown failed");
            clean = false;
        }
    }
    if let Err(e) = meta.shutdown().await {
        error!(error = %e, "metadata store shutdown failed");
        clean = false;
    }
    if clean {
        info!("distlog stopped cleanly");
        Ok(())
    } else {
        anyhow::bail!("shutdown finished with errors (see above)")
    }
}

/// Open this node's bookie (the bookie role) under `DATA_DIR/bookie` and
/// collect its orphan ledgers (those no segment references: a topic deleted
/// or a stream truncated while this bookie was down) before it is served to
/// any writer.
async fn open_bookie(config: &BrokerConfig, meta: &MetadataStore) -> anyhow::Result<Arc<Bookie>> {
    let bookie_config = BookieConfig {
        dir: config.data_dir.join("bookie"),
        bookie_id: config.node_id,
    };
    let bookie = tokio::task::spawn_blocking(move || Bookie::open(bookie_config))
        .await
        .context("bookie open task failed")?
        .context("cannot open the bookie")?;
    distlog_storage::log::gc::collect_orphan_ledgers(meta, &bookie)
        .await
        .context("cannot garbage-collect orphan ledgers")?;
    Ok(bookie)
}

/// Resolve on SIGINT or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
    Ok(())
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
