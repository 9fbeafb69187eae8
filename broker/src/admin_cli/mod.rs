//! `distlog admin`: an operator's CLI over the Kafka protocol (any broker,
//! `--bootstrap`) and the HTTP admin API (`--http`), in the same binary as
//! the server.
//!
//! - [`client`]: one connection, ApiVersions negotiation, typed requests;
//! - [`routing`]: bootstrap → Metadata → leader / coordinator / controller;
//! - [`output`]: tables or `--json`;
//! - one module per command group: [`topics`] (with [`topic_configs`]), [`groups`] (with
//!   [`reset`] for `reset-offsets`), [`records`], [`cluster`],
//!   [`log_dirs`], and over HTTP [`streams`] and [`ledgers`] ([`http`]).
//!
//! Errors are [`AdminError`]s whose messages end with what to do next.

pub mod client;
pub mod cluster;
pub mod error;
pub mod groups;
pub mod http;
pub mod ledgers;
pub mod log_dirs;
pub mod output;
pub mod records;
pub mod reset;
pub mod routing;
pub mod streams;
pub mod time;
pub mod topic_configs;
pub mod topics;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use error::AdminError;
use output::Report;
use routing::Cluster;

/// Flags of `distlog admin` (valid before or after the subcommand).
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Kafka bootstrap brokers, HOST:PORT[,HOST:PORT…]; the first that
    /// answers is used to find the others.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT[,HOST:PORT]"
    )]
    pub bootstrap: String,
    /// The HTTP admin API (for `streams` and `ledgers`).
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9644",
        value_name = "HOST:PORT"
    )]
    pub http: String,
    /// How long to wait for a connection or an answer (milliseconds).
    #[arg(long, global = true, default_value_t = 30_000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The command groups of `distlog admin`.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// List, describe, create, delete and reconfigure topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Consumer groups, like kafka-consumer-groups.sh.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Delete records below an offset (DeleteRecords).
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// The cluster: id, controller, brokers.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Each broker's log dirs with partition sizes.
    #[command(subcommand, name = "log-dirs")]
    LogDirs(log_dirs::LogDirsCommand),
    /// A record's position in its stream (HTTP admin API).
    #[command(subcommand)]
    Streams(streams::StreamsCommand),
    /// Where a ledger's copies are (HTTP admin API).
    #[command(subcommand)]
    Ledgers(ledgers::LedgersCommand),
}

/// Runs one admin command, printing its result to stdout. An error (or
/// a report with failed operations) is returned for `main` to print and
/// exit 1 on.
pub fn run(args: AdminArgs) -> Result<(), AdminError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AdminError::Output(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(execute(&args))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(report.render(args.json).as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| AdminError::Output(e.to_string()))?;
    if report.failed > 0 {
        return Err(AdminError::Partial {
            failed: report.failed,
            total: report.total,
        });
    }
    Ok(())
}

/// Runs the command and returns what it reports.
pub async fn execute(args: &AdminArgs) -> Result<Report, AdminError> {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    match &args.command {
        AdminCommand::Streams(cmd) => streams::run(cmd, &args.http, timeout).await,
        AdminCommand::Ledgers(cmd) => ledgers::run(cmd, &args.http, timeout).await,
        AdminCommand::Topics(cmd) => {
            topics::run(cmd, &mut Cluster::connect(&args.bootstrap, timeout).await?).await
        }
        AdminCommand::Groups(cmd) => {
            groups::run(cmd, &mut Cluster::connect(&args.bootstrap, timeout).await?).await
        }
        AdminCommand::Records(cmd) => {
            records::run(cmd, &mut Cluster::connect(&args.bootstrap, timeout).await?).await
        }
        AdminCommand::Cluster(cmd) => {
            cluster::run(cmd, &mut Cluster::connect(&args.bootstrap, timeout).await?).await
        }
        AdminCommand::LogDirs(cmd) => {
            log_dirs::run(cmd, &mut Cluster::connect(&args.bootstrap, timeout).await?).await
        }
    }
}

/// Parses `k=v` (for `--config` and `--set`).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE (e.g. retention.ms=86400000)")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `distlog admin …` as the binary parses it.
    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        admin: AdminArgs,
    }

    fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
        TestCli::try_parse_from(std::iter::once("admin").chain(args.iter().copied())).map(|c| c.admin)
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let a = parse(&["--bootstrap", "h:1", "topics", "list", "--json"]).expect("parses");
        assert_eq!(a.bootstrap, "h:1");
        assert!(a.json);
        assert_eq!(a.http, "127.0.0.1:9644");
        assert_eq!(a.timeout_ms, 30_000);
        let a = parse(&["topics", "list", "--bootstrap", "h:2", "--timeout-ms", "500"]).expect("parses");
        assert_eq!(a.bootstrap, "h:2");
        assert_eq!(a.timeout_ms, 500);
        let a = parse(&["cluster", "describe"]).expect("parses");
        assert_eq!(a.bootstrap, "127.0.0.1:9092");
        assert!(!a.json);
    }

    #[test]
    fn unknown_subcommands_are_refused() {
        assert!(parse(&["topics", "frobnicate"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn key_values_parse() {
        assert_eq!(
            parse_key_value("a.b=1=2"),
            Ok(("a.b".to_string(), "1=2".to_string()))
        );
        assert_eq!(parse_key_value("k="), Ok(("k".to_string(), String::new())));
        assert!(parse_key_value("=v").is_err());
        assert!(parse_key_value("novalue").is_err());
    }
}
