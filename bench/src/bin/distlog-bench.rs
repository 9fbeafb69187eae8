//! `distlog-bench`: the load generator of the benchmark suite (`bench/run.sh`).
//!
//! One subcommand per scenario; each run prints exactly one JSON line on stdout with the
//! scenario's figures (and the options it ran with), or `{"error": ...}` and a non-zero exit.
//! Diagnostics go to stderr. With `--broker-pid` and `--http` the line also carries the broker's
//! own costs over the measured window: CPU seconds per MB, fsyncs per second, bytes per fsync,
//! disk reads and RSS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use distlog_bench::consume::{self, ReadOptions};
use distlog_bench::group::{self, CommitOptions, RebalanceOptions};
use distlog_bench::idempotence::{self, Order};
use distlog_bench::probe::BrokerProbe;
use distlog_bench::produce::{self, ProduceOptions};
use distlog_bench::rebuild::{self, RebuildOptions};
use distlog_bench::retention::{self, RetentionOptions};
use distlog_bench::steady_load::SteadyLoadOptions;
use distlog_bench::transactions::{self, TxnOptions};
use distlog_bench::{e2e, ensure_topic, ensure_topic_replicated, idle};
use serde_json::{json, Map, Value};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "distlog-bench",
    about = "Benchmark scenarios against a running distlog (or Kafka) broker"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options every scenario takes.
#[derive(Debug, Args)]
struct Common {
    /// Kafka bootstrap servers.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The broker's pid, for CPU time and RSS from /proc.
    #[arg(long, global = true)]
    broker_pid: Option<i32>,
    /// The broker's HTTP address, for fsyncs and bytes from /metrics.
    #[arg(long, global = true)]
    http: Option<SocketAddr>,
    /// Fail the run if it takes longer than this many seconds.
    #[arg(long, global = true, default_value_t = 300)]
    timeout_secs: u64,
    /// Scenario name written into the JSON line.
    #[arg(long, global = true)]
    label: Option<String>,
    /// Run number written into the JSON line.
    #[arg(long, global = true, default_value_t = 1)]
    run: u32,
    /// `fetch.message.max.bytes` of consumers, in KiB.
    #[arg(long, global = true, default_value_t = 4096)]
    fetch_max_kbytes: usize,
}

/// Producer options shared by the scenarios that produce.
#[derive(Debug, Clone, Args)]
struct ProduceArgs {
    /// Topic (created if missing).
    #[arg(long)]
    topic: String,
    /// Partitions (topic creation, and round-robin target).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Replication factor of the topic when created (3 on distlog: 3/3/2).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    batch_bytes: usize,
    /// batch.num.messages.
    #[arg(long, default_value_t = 10_000)]
    batch_messages: usize,
    /// In-flight window: queue.buffering.max.kbytes.
    #[arg(long, default_value_t = 4096)]
    window_kbytes: usize,
    /// In-flight window: queue.buffering.max.messages.
    #[arg(long, default_value_t = 100_000)]
    window_messages: usize,
    /// Send for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Instead of a duration, send this many MiB of values.
    #[arg(long)]
    total_mib: Option<u64>,
    /// Send at this fixed rate (messages/s) instead of as fast as the window allows.
    #[arg(long)]
    rate: Option<f64>,
    /// An idempotent producer (enable.idempotence=true).
    #[arg(long)]
    idempotent: bool,
    /// max.in.flight.requests.per.connection (librdkafka's default when unset: 1,000,000, or 5
    /// when idempotent).
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// Produce at full speed for this many seconds (and until the first acknowledgement) before
    /// the measured window starts; 0: measure from the first send.
    #[arg(long, default_value_t = 0.0)]
    warmup_secs: f64,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Produce (scenarios 1–3, and filling partitions for the read scenarios).
    Produce(ProduceArgs),
    /// Read partition 0 of a topic from its beginning to its end (scenario 4, catch-up).
    CatchUp {
        /// Topic to read.
        #[arg(long)]
        topic: String,
    },
    /// A consumer at the tail while a producer runs at full speed (scenario 4, tail).
    Tail(ProduceArgs),
    /// End-to-end latency at a fixed rate (scenario 5); --rate defaults to 20,000 msgs/s.
    E2e(ProduceArgs),
    /// Fill partition 0 of a topic, then read it with one and with --consumers consumers (scenario 6).
    FanOut {
        #[command(flatten)]
        fill: ProduceArgs,
        /// Concurrent consumers.
        #[arg(long, default_value_t = 8)]
        consumers: usize,
    },
    /// Create a topic with many partitions, write one message to each, report the idle broker's RSS.
    IdleRss {
        /// Topic to create.
        #[arg(long)]
        topic: String,
        /// Partitions.
        #[arg(long, default_value_t = 1000)]
        partitions: i32,
        /// Seconds to wait for the broker to open every stream (after creating, and after touching).
        #[arg(long, default_value_t = 10)]
        settle_secs: u64,
        /// Size of the one message written to every partition before the final measurement.
        #[arg(long, default_value_t = 1024)]
        touch_bytes: usize,
    },
    /// Consumer group: one member consumes --messages messages of a one-partition topic and
    /// commits each synchronously; commits/s and commit latency.
    GroupCommit {
        /// Topic (created with one partition if missing, filled up to --messages).
        #[arg(long, default_value = "bench-group-commit")]
        topic: String,
        /// Messages to consume and commit.
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Value size of the messages produced to fill the topic.
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
    /// Consumer group: time for a third member's join to be rebalanced into a two-member group,
    /// and for a member's leave to be rebalanced out.
    GroupRebalance {
        /// Topic (created if missing; needs no data).
        #[arg(long, default_value = "bench-group-rebalance")]
        topic: String,
        /// Partitions of the topic (at least 3).
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// The members' session.timeout.ms.
        #[arg(long, default_value_t = 10_000)]
        session_timeout_ms: u64,
        /// The members' heartbeat.interval.ms (how soon members learn of a rebalance).
        #[arg(long, default_value_t = 500)]
        heartbeat_interval_ms: u64,
    },
    /// Idempotent vs plain producer, back to back on fresh topics `<topic>-idem` and
    /// `<topic>-plain`, everything else identical (scenario 8); the overhead in percent.
    IdemOverhead {
        #[command(flatten)]
        produce: ProduceArgs,
        /// Which producer goes first: alternate (idempotent first on odd --run numbers),
        /// idem-first or plain-first.
        #[arg(long, value_enum, default_value = "alternate")]
        order: Order,
        /// Keep the two topics (by default each is deleted once measured: a leg writes gigabytes).
        #[arg(long)]
        keep_topics: bool,
    },
    /// Producer-state rebuild on restart (scenario 9): starts its own broker (ignores
    /// --bootstrap, --broker-pid and --http), writes batches of many idempotent producers, restarts
    /// the broker on the same data dir, times the first produce and the state rebuild.
    StateRebuild {
        /// Distinct idempotent producers (ids from InitProducerId).
        #[arg(long, default_value_t = 10_000)]
        producers: usize,
        /// Batches per producer, written in rounds.
        #[arg(long, default_value_t = 3)]
        batches: u32,
        /// Records per batch.
        #[arg(long, default_value_t = 1)]
        records_per_batch: u32,
        /// Value bytes per record.
        #[arg(long, default_value_t = 100)]
        value_bytes: usize,
        /// The topic's segment.bytes (default: the broker's, 128 MiB; small values make the last
        /// segment start with a snapshot of every producer).
        #[arg(long)]
        segment_bytes: Option<u64>,
        /// Raw connections the producers are spread over.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Requests in flight per connection.
        #[arg(long, default_value_t = 32)]
        pipeline: usize,
        /// The broker's data dir (default: a fresh temporary one); its log goes next to it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Retention (scenario 10): starts its own broker (ignores --bootstrap, --broker-pid and
    /// --http), fills a topic with records older than its retention.ms, restarts the broker with a
    /// short retention check interval and a steady acks=all load on a second topic, and times
    /// how long retention takes to free the fill; the load's ack latency during the truncation
    /// and in as long a window after it.
    Retention {
        /// GiB of record batches to fill (spread evenly over --partitions).
        #[arg(long, default_value_t = 10.0)]
        fill_gib: f64,
        /// Partitions of the filled topic.
        #[arg(long, default_value_t = 100)]
        partitions: i32,
        /// The filled topic's segment.bytes.
        #[arg(long, default_value_t = 16 * 1024 * 1024)]
        segment_bytes: u64,
        /// The filled topic's retention.ms.
        #[arg(long, default_value_t = 3_600_000)]
        retention_ms: u64,
        /// Age of the filled records' timestamps, ms (must exceed --retention-ms).
        #[arg(long, default_value_t = 7_200_000)]
        age_ms: u64,
        /// Value bytes per filled record.
        #[arg(long, default_value_t = 1024)]
        value_bytes: usize,
        /// Records per fill batch (one batch per Produce request).
        #[arg(long, default_value_t = 512)]
        records_per_batch: u32,
        /// Raw connections the fill is spread over.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Fill requests in flight per connection.
        #[arg(long, default_value_t = 4)]
        pipeline: usize,
        /// --log-retention-check-interval-ms of the restarted broker (its first check comes one
        /// interval after it starts).
        #[arg(long, default_value_t = 5000)]
        check_interval_ms: u64,
        /// Partitions of the load topic.
        #[arg(long, default_value_t = 8)]
        load_partitions: i32,
        /// Load rate, messages/s (1 KiB values: 20,000/s is 20 MB/s).
        #[arg(long, default_value_t = 20_000.0)]
        load_rate: f64,
        /// Value bytes per load message.
        #[arg(long, default_value_t = 1024)]
        load_size: usize,
        /// linger.ms of the load producer.
        #[arg(long, default_value_t = 5)]
        load_linger_ms: u64,
        /// Poll the disk and /metrics this often, ms.
        #[arg(long, default_value_t = 50)]
        poll_ms: u64,
        /// The broker's data dir (must be empty or absent); its log goes next to it. Removed at
        /// the end unless --keep-data.
        #[arg(long, default_value = "bench/tmp/retention/data")]
        data_dir: PathBuf,
        /// Keep the data dir.
        #[arg(long)]
        keep_data: bool,
    },
    /// Transactions (scenario 11): transactional vs idempotent producers back to back (alternating
    /// order) with 1 and --producers producers on fresh topics `<topic>-txn-<n>p` and
    /// `<topic>-idem-<n>p` (producer i writes partition i % --partitions); then the latency of
    /// committed messages to a read_committed consumer on `<topic>-lat`.
    Transactions {
        /// Prefix of the topics.
        #[arg(long, default_value = "bench-txn")]
        topic: String,
        /// Partitions of the throughput topics.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
        /// Replication factor of the topics when created.
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Value size of the throughput legs, bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Producer counts, comma-separated; one transactional and one idempotent leg each.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        producers: Vec<usize>,
        /// Messages per transaction in the throughput legs.
        #[arg(long, default_value_t = 100)]
        txn_messages: usize,
        /// Each producer of a throughput leg sends for this many seconds.
        #[arg(long, default_value_t = 5.0)]
        duration_secs: f64,
        /// Each producer also stops after this many messages (whole transactions).
        #[arg(long)]
        messages_per_producer: Option<u64>,
        /// linger.ms.
        #[arg(long, default_value_t = 5)]
        linger_ms: u64,
        /// batch.size in bytes.
        #[arg(long, default_value_t = 1_000_000)]
        batch_bytes: usize,
        /// In-flight window of a leg, queue.buffering.max.kbytes, split evenly over its producers.
        #[arg(long, default_value_t = 4096)]
        window_kbytes: usize,
        /// In-flight window of a leg, queue.buffering.max.messages, split evenly over its producers.
        #[arg(long, default_value_t = 100_000)]
        window_messages: usize,
        /// transaction.timeout.ms of the transactional producers.
        #[arg(long, default_value_t = 60_000)]
        transaction_timeout_ms: u64,
        /// Transactions of the commit-visibility measurement.
        #[arg(long, default_value_t = 200)]
        latency_txns: usize,
        /// Messages per transaction of the commit-visibility measurement.
        #[arg(long, default_value_t = 10)]
        latency_txn_messages: usize,
        /// One commit-visibility transaction starts every this many ms (later if a commit is slower).
        #[arg(long, default_value_t = 20)]
        latency_interval_ms: u64,
        /// Value size of the commit-visibility messages, bytes (at least 16).
        #[arg(long, default_value_t = 1024)]
        latency_size: usize,
        /// Which leg goes first: alternate (transactional first on odd --run numbers), txn-first
        /// or idem-first.
        #[arg(long, value_enum, default_value = "alternate")]
        order: transactions::Order,
        /// Keep the throughput topics (by default each is deleted once measured).
        #[arg(long)]
        keep_topics: bool,
    },
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Produce(_) => "produce",
            Scenario::CatchUp { .. } => "catch-up",
            Scenario::Tail(_) => "tail",
            Scenario::E2e(_) => "e2e",
            Scenario::FanOut { .. } => "fan-out",
            Scenario::IdleRss { .. } => "idle-rss",
            Scenario::GroupCommit { .. } => "group-commit",
            Scenario::GroupRebalance { .. } => "group-rebalance",
            Scenario::IdemOverhead { .. } => "idem-overhead",
            Scenario::StateRebuild { .. } => "state-rebuild",
            Scenario::Retention { .. } => "retention",
            Scenario::Transactions { .. } => "transactions",
        }
    }
}

fn produce_options(common: &Common, a: &ProduceArgs, stamp: bool, rate: Option<f64>) -> ProduceOptions {
    ProduceOptions {
        bootstrap: common.bootstrap.clone(),
        topic: a.topic.clone(),
        partitions: a.partitions,
        size: a.size,
        acks: a.acks.clone(),
        linger_ms: a.linger_ms,
        batch_bytes: a.batch_bytes,
        batch_messages: a.batch_messages,
        window_kbytes: a.window_kbytes,
        window_messages: a.window_messages,
        duration: if a.total_mib.is_some() {
            None
        } else {
            Some(Duration::from_secs_f64(a.duration_secs.max(0.0)))
        },
        total_bytes: a.total_mib.map(|m| m * 1024 * 1024),
        rate,
        stamp_values: stamp,
        timeout: Duration::from_secs(common.timeout_secs),
        idempotent: a.idempotent,
        max_in_flight: a.max_in_flight,
        warmup: (a.warmup_secs > 0.0).then(|| Duration::from_secs_f64(a.warmup_secs)),
    }
}

fn run(cli: &Cli) -> anyhow::Result<Vec<(String, Value)>> {
    let common = &cli.common;
    let probe = BrokerProbe {
        pid: common.broker_pid,
        http: common.http,
    };
    let read = ReadOptions {
        bootstrap: common.bootstrap.clone(),
        fetch_max_kbytes: common.fetch_max_kbytes,
        timeout: Duration::from_secs(common.timeout_secs),
    };
    match &cli.scenario {
        Scenario::Produce(a) => {
            ensure_topic_replicated(&common.bootstrap, &a.topic, a.partitions, a.replication_factor)?;
            let opts = produce_options(common, a, false, a.rate);
            let before = probe.sample();
            let outcome = produce::run(&opts, Instant::now())?;
            let after = probe.sample();
            let bytes = outcome.acked_bytes;
            let mut out = opts.describe();
            out.extend(outcome.fields());
            out.extend(probe.delta(&before, &after, bytes));
            Ok(out)
        }
        Scenario::CatchUp { topic } => consume::catch_up(&read, topic, &probe),
        Scenario::Tail(a) => {
            ensure_topic(&common.bootstrap, &a.topic, 1)?;
            let opts = produce_options(
                common,
                &ProduceArgs {
                    partitions: 1,
                    ..a.clone()
                },
                false,
                a.rate,
            );
            let mut out = opts.describe();
            out.extend(consume::tail(&read, &opts, &probe)?);
            Ok(out)
        }
        Scenario::E2e(a) => {
            ensure_topic(&common.bootstrap, &a.topic, 1)?;
            let rate = a.rate.unwrap_or(20_000.0);
            let opts = produce_options(
                common,
                &ProduceArgs {
                    partitions: 1,
                    ..a.clone()
                },
                true,
                Some(rate),
            );
            let mut out = opts.describe();
            out.extend(e2e::run(&read, &opts, &probe)?);
            Ok(out)
        }
        Scenario::FanOut { fill, consumers } => {
            ensure_topic(&common.bootstrap, &fill.topic, 1)?;
            let opts = produce_options(
                common,
                &ProduceArgs {
                    partitions: 1,
                    ..fill.clone()
                },
                false,
                None,
            );
            produce::run(&opts, Instant::now())?;
            consume::fan_out(&read, &fill.topic, *consumers, &probe)
        }
        Scenario::IdleRss {
            topic,
            partitions,
            settle_secs,
            touch_bytes,
        } => idle::run(
            &common.bootstrap,
            topic,
            *partitions,
            *touch_bytes,
            Duration::from_secs(*settle_secs),
            &probe,
        ),
        Scenario::GroupCommit {
            topic,
            messages,
            size,
        } => group::commit(
            &CommitOptions {
                bootstrap: common.bootstrap.clone(),
                topic: topic.clone(),
                messages: *messages,
                size: *size,
                timeout: Duration::from_secs(common.timeout_secs),
            },
            &probe,
        ),
        Scenario::GroupRebalance {
            topic,
            partitions,
            session_timeout_ms,
            heartbeat_interval_ms,
        } => group::rebalance(&RebalanceOptions {
            bootstrap: common.bootstrap.clone(),
            topic: topic.clone(),
            partitions: *partitions,
            session_timeout_ms: *session_timeout_ms,
            heartbeat_interval_ms: *heartbeat_interval_ms,
            timeout: Duration::from_secs(common.timeout_secs),
        }),
        Scenario::IdemOverhead {
            produce: a,
            order,
            keep_topics,
        } => {
            let opts = produce_options(common, a, false, a.rate);
            idempotence::overhead(
                &opts,
                a.replication_factor,
                *order,
                common.run,
                !keep_topics,
                &probe,
            )
        }
        Scenario::StateRebuild {
            producers,
            batches,
            records_per_batch,
            value_bytes,
            segment_bytes,
            connections,
            pipeline,
            data_dir,
        } => rebuild::run(&RebuildOptions {
            producers: *producers,
            batches: *batches,
            records_per_batch: *records_per_batch,
            value_bytes: *value_bytes,
            segment_bytes: *segment_bytes,
            connections: *connections,
            pipeline: *pipeline,
            data_dir: data_dir.clone(),
            timeout: Duration::from_secs(common.timeout_secs),
        }),
        Scenario::Retention {
            fill_gib,
            partitions,
            segment_bytes,
            retention_ms,
            age_ms,
            value_bytes,
            records_per_batch,
            connections,
            pipeline,
            check_interval_ms,
            load_partitions,
            load_rate,
            load_size,
            load_linger_ms,
            poll_ms,
            data_dir,
            keep_data,
        } => retention::run(&RetentionOptions {
            fill_bytes: (fill_gib.max(0.0) * f64::from(1u32 << 30)) as u64,
            partitions: *partitions,
            segment_bytes: *segment_bytes,
            retention_ms: *retention_ms,
            age_ms: *age_ms,
            value_bytes: *value_bytes,
            records_per_batch: *records_per_batch,
            connections: *connections,
            pipeline: *pipeline,
            check_interval_ms: *check_interval_ms,
            load: SteadyLoadOptions {
                bootstrap: String::new(),
                topic: retention::LOAD_TOPIC.into(),
                partitions: *load_partitions,
                size: *load_size,
                rate: *load_rate,
                linger_ms: *load_linger_ms,
            },
            poll: Duration::from_millis((*poll_ms).max(1)),
            data_dir: data_dir.clone(),
            keep_data: *keep_data,
            timeout: Duration::from_secs(common.timeout_secs),
        }),
        Scenario::Transactions {
            topic,
            partitions,
            replication_factor,
            size,
            producers,
            txn_messages,
            duration_secs,
            messages_per_producer,
            linger_ms,
            batch_bytes,
            window_kbytes,
            window_messages,
            transaction_timeout_ms,
            latency_txns,
            latency_txn_messages,
            latency_interval_ms,
            latency_size,
            order,
            keep_topics,
        } => {
            let fields = transactions::run(
                &TxnOptions {
                    bootstrap: common.bootstrap.clone(),
                    topic: topic.clone(),
                    partitions: *partitions,
                    replication_factor: *replication_factor,
                    size: *size,
                    producers: producers.clone(),
                    txn_messages: *txn_messages,
                    duration: Duration::from_secs_f64(duration_secs.max(0.0)),
                    messages_per_producer: *messages_per_producer,
                    linger_ms: *linger_ms,
                    batch_bytes: *batch_bytes,
                    window_kbytes: *window_kbytes,
                    window_messages: *window_messages,
                    transaction_timeout_ms: *transaction_timeout_ms,
                    latency_txns: *latency_txns,
                    latency_txn_messages: *latency_txn_messages,
                    latency_interval: Duration::from_millis(*latency_interval_ms),
                    latency_size: *latency_size,
                    order: *order,
                    run: common.run,
                    delete_after: !keep_topics,
                    fetch_max_kbytes: common.fetch_max_kbytes,
                    timeout: Duration::from_secs(common.timeout_secs),
                },
                &probe,
            )?;
            // The human-readable line goes to stderr: stdout carries exactly one JSON line.
            eprintln!(
                "distlog-bench: transactions summary (run {}): {}",
                common.run,
                transactions::summary(&fields)
            );
            Ok(fields)
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let mut line = Map::new();
    let label = cli
        .common
        .label
        .clone()
        .unwrap_or_else(|| cli.scenario.name().to_string());
    line.insert("scenario".into(), json!(label));
    line.insert("run".into(), json!(cli.common.run));
    let result = run(&cli);
    let failed = result.is_err();
    match result {
        Ok(fields) => line.extend(fields),
        Err(e) => {
            eprintln!("distlog-bench {label}: {e:#}");
            line.insert("error".into(), json!(format!("{e:#}")));
        }
    }
    println!("{}", Value::Object(line));
    if failed {
        std::process::exit(1);
    }
}
