//! The fault scenario of `docker/test.sh`, run from the host against a
//! Docker Compose cluster (docker/docker-compose.yml) with real clients:
//!
//! 1. create a replicated topic (RF 3: E/Qw/Qa 3/3/2);
//! 2. produce `--messages` messages with acks=all (no client retries, so an
//!    acknowledged message was written exactly once);
//! 3. while producing, `docker kill` the container owning the partition and
//!    measure the client-visible outage (kill → first acknowledgement of a
//!    message sent after it);
//! 4. `docker network disconnect` another node for `--partition-secs`, then
//!    reconnect it (with its service alias, so the others find it again);
//! 5. `docker start` the killed node;
//! 6. consume everything and check every acknowledged message is in the log
//!    exactly once, at the offset its acknowledgement named, in send order.
//!
//! Compose commands run as `docker-compose -f FILE` with the caller's
//! `COMPOSE_PROJECT_NAME`. Every docker command has a deadline.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use distlog_compat_tests::chaos::{self, ContinuousProducer};
use distlog_compat_tests::kafka;

#[derive(Parser, Debug)]
#[command(about = "Fault scenario against a Docker Compose distlog cluster")]
struct Args {
    /// The compose file the cluster was started from.
    #[arg(long)]
    compose_file: String,
    /// Kafka bootstrap list of the host listeners.
    #[arg(long, default_value = "localhost:19092,localhost:19093,localhost:19094")]
    bootstrap: String,
    /// Topic to create and write.
    #[arg(long, default_value = "compose-check")]
    topic: String,
    /// Messages to produce.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Pause between sends, in microseconds.
    #[arg(long, default_value_t = 1000)]
    interval_us: u64,
    /// How long the second node stays disconnected from the network.
    #[arg(long, default_value_t = 20)]
    partition_secs: u64,
    /// No faults: produce `--messages` acks=all messages to a new RF 3
    /// topic and read them back exactly (a smoke check of a topology).
    #[arg(long)]
    smoke: bool,
}

/// The `--smoke` check: every message acknowledged at consecutive offsets
/// and read back with the same contents, in order.
fn smoke(a: &Args) -> anyhow::Result<()> {
    let records: Vec<kafka::TestRecord> = (0..a.messages)
        .map(|i| kafka::TestRecord::value(format!("s{i}")))
        .collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&a.bootstrap, "all"),
        &a.topic,
        Some(0),
        &records,
        Duration::from_secs(120),
    )?;
    for (i, d) in deliveries.iter().enumerate() {
        match &d.result {
            Ok(offset) => ensure!(*offset == i as i64, "s{i} acknowledged at offset {offset}"),
            Err(e) => bail!("s{i} not acknowledged: {e:?}"),
        }
    }
    let back = kafka::consume_n(&a.bootstrap, &a.topic, 0, 0, a.messages, Duration::from_secs(120))?;
    for (i, r) in back.iter().enumerate() {
        let want = format!("s{i}");
        ensure!(
            r.offset == i as i64 && r.payload.as_deref() == Some(want.as_bytes()),
            "offset {} holds {:?}, expected {want} at {i}",
            r.offset,
            r.payload.as_deref().map(String::from_utf8_lossy)
        );
    }
    println!(
        "smoke: {} messages acknowledged at offsets 0..{} and read back exactly",
        a.messages, a.messages
    );
    Ok(())
}

/// Run a command with a deadline; its stdout, or an error with its stderr.
fn run(deadline: Duration, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("timeout")
        .arg(deadline.as_secs().to_string())
        .arg(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program} {args:?}"))?;
    ensure!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    run(Duration::from_secs(60), "docker", args)
}

/// The container id of compose service `nodeK`.
fn container(file: &str, node: i32) -> anyhow::Result<String> {
    let id = run(
        Duration::from_secs(60),
        "docker-compose",
        &["-f", file, "ps", "-q", &format!("node{node}")],
    )?;
    ensure!(!id.is_empty(), "no container for service node{node}");
    Ok(id)
}

/// The leader (owner) of partition 0 as Metadata reports it, once there is one.
fn leader(bootstrap: &str, topic: &str, within: Duration) -> anyhow::Result<i32> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match kafka::fetch_metadata(bootstrap, Some(topic)) {
            Ok(md) => {
                let l = md
                    .topics()
                    .first()
                    .and_then(|t| t.partitions().iter().find(|p| p.id() == 0))
                    .map(|p| p.leader());
                match l {
                    Some(l) if l >= 0 => return Ok(l),
                    other => last = format!("leader {other:?}"),
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        thread::sleep(Duration::from_millis(200));
    }
    bail!("no leader for {topic}/0 within {within:?} (last: {last})")
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let file = a.compose_file.as_str();

    // The cluster is healthy, but the controller may take a moment to see
    // every bookie: retry creation for a while, as an operator would.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match kafka::create_topic_replicated(&a.bootstrap, &a.topic, 1, 3, &[]) {
            Ok(()) => break,
            Err(e) if format!("{e:#}").contains("TopicAlreadyExists") => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create topic: {e:#}; retrying");
                thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(e).context("create the replicated topic"),
        }
    }
    let owner = leader(&a.bootstrap, &a.topic, Duration::from_secs(30))?;
    println!(
        "topic {} created (RF 3); partition 0 owned by node {owner}",
        a.topic
    );
    if a.smoke {
        return smoke(&a);
    }

    let producer = ContinuousProducer::start_bounded(
        &a.bootstrap,
        &a.topic,
        Duration::from_micros(a.interval_us),
        a.messages,
        &[("message.timeout.ms", "60000"), ("request.timeout.ms", "10000")],
    )?;
    // Let a tenth of the messages go out before the first fault.
    while producer.snapshot().len() < a.messages / 10 {
        thread::sleep(Duration::from_millis(50));
    }

    let owner = leader(&a.bootstrap, &a.topic, Duration::from_secs(30))?;
    let killed = container(file, owner)?;
    docker(&["kill", &killed])?;
    // The outage counts from the moment the process is gone: `docker kill`
    // returns once the signal is sent, and messages acknowledged before the
    // process died are not after the fault.
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker(&["inspect", "-f", "{{.State.Running}}", &killed])? != "false" {
        ensure!(
            Instant::now() < deadline,
            "node{owner} still runs 30 s after docker kill"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let killed_at = Instant::now();
    println!(
        "docker kill node{owner} (the partition owner) after {} messages",
        producer.snapshot().len()
    );
    let outage = producer.wait_ack_of_message_sent_after(killed_at, Duration::from_secs(60))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_owner = loop {
        let l = leader(&a.bootstrap, &a.topic, Duration::from_secs(30))?;
        if l != owner {
            break l;
        }
        ensure!(
            Instant::now() < deadline,
            "Metadata still names the killed node{owner} as leader"
        );
        thread::sleep(Duration::from_millis(200));
    };
    println!(
        "client-visible outage after docker kill: {:.2} s (first acknowledgement of a message sent after the kill); new owner node{new_owner}",
        outage.as_secs_f64()
    );

    let cut = (1..=3)
        .find(|n| *n != owner && *n != new_owner)
        .context("a third node")?;
    let cut_id = container(file, cut)?;
    let network = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &cut_id,
    ])?;
    let network = network
        .split_whitespace()
        .next()
        .context("the node's network")?
        .to_string();
    docker(&["network", "disconnect", &network, &cut_id])?;
    println!("docker network disconnect node{cut} for {} s", a.partition_secs);
    thread::sleep(Duration::from_secs(a.partition_secs));
    let alias = format!("node{cut}");
    docker(&["network", "connect", "--alias", &alias, &network, &cut_id])?;
    println!("reconnected node{cut}");

    docker(&["start", &killed])?;
    println!("restarted node{owner}");

    let deadline = Instant::now() + Duration::from_secs(600);
    while !producer.finished() {
        ensure!(
            Instant::now() < deadline,
            "the producer did not finish within 600 s"
        );
        thread::sleep(Duration::from_millis(200));
    }
    let sent = producer.stop()?;
    let acked = chaos::acknowledged(&sent);
    let failed = sent.len() - acked.len();
    // In send order: a later message never sits at an earlier offset.
    for w in acked.windows(2) {
        ensure!(
            w[1].1 > w[0].1,
            "m{} was acknowledged at offset {} but the earlier m{} at {}",
            w[1].0,
            w[1].1,
            w[0].0,
            w[0].1
        );
    }
    let in_log = chaos::verify_zero_loss(&a.bootstrap, &a.topic, &acked)
        .context("every acknowledged message exactly once at its offset")?;
    println!(
        "sent {}, acknowledged {}, not acknowledged {failed}; the log holds {in_log} records: every \
         acknowledged message is there exactly once, in order",
        sent.len(),
        acked.len()
    );
    ensure!(
        acked.len() * 2 > sent.len(),
        "fewer than half of the messages were acknowledged ({} of {})",
        acked.len(),
        sent.len()
    );
    println!("OUTAGE_SECONDS={:.2}", outage.as_secs_f64());
    Ok(())
}
