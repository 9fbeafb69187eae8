//! `distlog-group-member`: one consumer-group member in its own process, for tests that need a
//! member which stops heartbeating (the test freezes this process with SIGSTOP; librdkafka
//! heartbeats from a background thread, so an in-process consumer cannot be made silent).
//!
//! It subscribes to `--topic` in `--group`, consumes `--messages` messages committing each one
//! synchronously, and prints one JSON line per step on stdout: `{"event":"assigned",...}` for
//! every assignment callback, `{"event":"consumed","partition":P,"offset":O}` once a message's
//! commit succeeded, then `{"event":"done"}`. After that it stops polling and waits for its
//! stdin to close (or for a signal), then closes the consumer and exits. Failures print
//! `{"event":"error","error":...}` and exit 1.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use clap::Parser;
use distlog_compat_tests::group::{group_consumer_config, GroupMember, RebalanceKind, CLOSE_DEADLINE};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::Message;
use serde_json::{json, Value};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "distlog-group-member",
    about = "A consumer-group member that can be frozen"
)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// Topic to subscribe to.
    #[arg(long)]
    topic: String,
    /// Consumer group.
    #[arg(long)]
    group: String,
    /// Messages to consume (and commit) before reporting "done".
    #[arg(long)]
    messages: usize,
    /// Give up if the messages have not arrived within this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// `client.id` of the member.
    #[arg(long, default_value = "child-member")]
    name: String,
}

fn emit(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = group_consumer_config(&cli.bootstrap, &cli.group);
    let member = GroupMember::subscribe(&config, &cli.name, &[&cli.topic])?;
    let started = Instant::now();
    let mut reported_events = 0;
    let mut consumed = 0;
    while consumed < cli.messages {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(cli.timeout_secs),
            "consumed {consumed} of {} messages within {} s",
            cli.messages,
            cli.timeout_secs
        );
        let polled = member.consumer().poll(Duration::from_millis(50));
        let events = member.events();
        for e in &events[reported_events..] {
            let kind = match e.kind {
                RebalanceKind::Assign => "assigned",
                RebalanceKind::Revoke => "revoked",
                RebalanceKind::Error => "rebalance-error",
            };
            let partitions: Vec<i32> = e.partitions.iter().map(|(_, p)| *p).collect();
            emit(json!({"event": kind, "partitions": partitions, "error": e.error}));
        }
        reported_events = events.len();
        match polled {
            Some(Ok(msg)) => {
                member.consumer().commit_message(&msg, CommitMode::Sync)?;
                consumed += 1;
                emit(json!({"event": "consumed", "partition": msg.partition(), "offset": msg.offset()}));
            }
            Some(Err(e)) => emit(json!({"event": "consumer-error", "error": e.to_string()})),
            None => {}
        }
    }
    emit(json!({"event": "done"}));
    // Stop polling: from here on only librdkafka's background threads run (and heartbeat) until
    // the test freezes or kills this process, or closes stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    member.close(CLOSE_DEADLINE)
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        emit(json!({"event": "error", "error": format!("{e:#}")}));
        std::process::exit(1);
    }
}
