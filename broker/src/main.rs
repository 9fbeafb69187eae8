//! The `distlog` binary: `distlog server` runs a node with the roles it is
//! given (`--roles`, default all: metadata store, bookie, Kafka broker) and
//! its HTTP port until SIGTERM/SIGINT; `distlog version` prints the version;
//! `distlog admin …` administers a cluster (see `distlog_broker::admin_cli`).

use anyhow::Context;
use clap::Parser;
use distlog_broker::config::{BrokerConfig, Cli, CliCommand};
use distlog_broker::logging::init_tracing;
use distlog_broker::node::Node;
use tracing::{error, info};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        CliCommand::Version => {
            println!("distlog {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        CliCommand::Admin(args) => {
            if let Err(e) = distlog_broker::admin_cli::run(args) {
                eprintln!("distlog admin: {e}");
                std::process::exit(1);
            }
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

/// Run a node until the first signal, then shut it down in order; a second
/// signal exits at once.
async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    let metadata = node.metadata().clone();
    tokio::select! {
        r = wait_for_signal() => r?,
        e = metadata.failed() => {
            // Nothing can be released or sealed through a dead metadata
            // store: exit now; leases lapse and the other nodes take over.
            error!(error = %e, "the metadata store stopped; exiting");
            eprintln!(
                "distlog: the metadata store stopped ({e}); exiting. Fix the cause (free disk space \
                 if the disk is full) and start the node again: it recovers from its data directory"
            );
            std::process::exit(1);
        }
    }
    tokio::spawn(async {
        if wait_for_signal().await.is_ok() {
            eprintln!("distlog: second signal, exiting immediately");
            std::process::exit(130);
        }
    });
    Ok(node.shutdown().await?)
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
