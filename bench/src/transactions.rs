//! Transactions, scenario 11 (issue 14): the produce throughput of transactional producers
//! compared with idempotent ones, and how soon a committed message reaches a `read_committed`
//! consumer.
//!
//! **Throughput.** For 1 and for N (default 8) concurrent producers, one run measures a
//! transactional leg (every producer its own `transactional.id`; `init_transactions` once, then
//! transactions of `txn_messages` messages: `begin_transaction`, the sends, `commit_transaction`)
//! and an idempotent leg (`enable.idempotence=true`, the same messages, no transactions) back to
//! back against the same broker, each on a fresh topic of `partitions` partitions, alternating
//! which leg goes first over the runs (scenario 8's method: the machine's drift and the order stay
//! out of the ratio). Producer `i` writes only partition `i % partitions` (one partition per
//! producer, as a stream processor's task does; a transaction then adds one partition and writes
//! one commit marker). Both legs use the same client settings, warm up before the measured window
//! (the transactional producer with `init_transactions` and a one-message transaction, the
//! idempotent one with one acknowledged message: its producer id), and stop sending after
//! `duration` (or `messages_per_producer`); the transactional leg counts only messages of
//! committed transactions, the idempotent leg those acknowledged once it has flushed. The window
//! ends when the last producer's last commit (or flush) returns.
//!
//! The in-flight window (`window_kbytes`, `window_messages`) is the leg's, split evenly over its
//! producers (8 producers: 512 KiB each of 4 MiB), so every leg has the same bytes in flight.
//! Giving each of 8 idempotent producers the whole window makes the comparison about the client:
//! with more ready batches than the 5 requests in flight librdkafka allows an idempotent
//! producer per partition, its broker thread wakes up at once again and again (the batch is due,
//! the cap lets nothing out), and 8 such threads took both cores of the test machine (load
//! generator 1.7–1.8 cores, broker 0.06, 40 MB/s instead of ~180–290 MB/s).
//!
//! **Commit visibility.** One transactional producer commits `latency_txns` transactions of
//! `latency_txn_messages` messages on a one-partition topic, one every `latency_interval` (or
//! back to back if a commit takes longer), with its send instant and the transaction's index in
//! every value; an assign-mode consumer with `isolation.level=read_committed`, positioned at the
//! end, records `receive − send` of every message (which includes the wait for the commit: a
//! message becomes visible only once its transaction's marker is written) and, per transaction,
//! the time from `commit_transaction`'s return to the first of its messages read (negative when
//! the consumer saw it first; counted apart and recorded as 0).
//!
//! The producers are rdkafka `ThreadedProducer`s flushed with librdkafka's own `rd_kafka_flush`
//! before `commit_transaction`: rdkafka's `BaseProducer::flush` (which its `commit_transaction`
//! calls first) polls in 100 ms slices that always run to their end, which would add ~100 ms of
//! the Rust wrapper to every commit. librdkafka's flush also sends what `linger.ms` holds at once,
//! as a C or Java client's commit does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde_json::{json, Value};

use distlog_compat_tests::kafka;

use crate::ensure_topic_replicated;
use crate::idempotence::DELETE_SETTLE;
use crate::probe::BrokerProbe;
use crate::stats::Latencies;

/// Which leg of a run goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Transactional first on odd run numbers, idempotent first on even ones.
    Alternate,
    /// The transactional producers first.
    TxnFirst,
    /// The idempotent producers first.
    IdemFirst,
}

impl Order {
    /// Whether the transactional leg goes first in run number `run`.
    pub fn txn_first(self, run: u32) -> bool {
        match self {
            Order::Alternate => run % 2 == 1,
            Order::TxnFirst => true,
            Order::IdemFirst => false,
        }
    }
}

/// What scenario 11 runs.
#[derive(Debug, Clone)]
pub struct TxnOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Prefix of the topics: `<topic>-txn-<n>p`, `<topic>-idem-<n>p`, `<topic>-lat`.
    pub topic: String,
    /// Partitions of the throughput topics (producer `i` writes partition `i % partitions`).
    pub partitions: i32,
    /// Replication factor of the topics.
    pub replication_factor: i32,
    /// Value size of the throughput legs, bytes.
    pub size: usize,
    /// Producer counts, one pair of legs each (e.g. 1 and 8).
    pub producers: Vec<usize>,
    /// Messages per transaction in the throughput legs.
    pub txn_messages: usize,
    /// Each producer stops sending after this long.
    pub duration: Duration,
    /// Each producer also stops after this many messages (whole transactions: rounded up).
    pub messages_per_producer: Option<u64>,
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `batch.size`, bytes.
    pub batch_bytes: usize,
    /// In-flight window of a leg, `queue.buffering.max.kbytes`, split over its producers.
    pub window_kbytes: usize,
    /// In-flight window of a leg, `queue.buffering.max.messages`, split over its producers.
    pub window_messages: usize,
    /// `transaction.timeout.ms` of the transactional producers.
    pub transaction_timeout_ms: u64,
    /// Transactions of the commit-visibility measurement.
    pub latency_txns: usize,
    /// Messages per transaction of the commit-visibility measurement.
    pub latency_txn_messages: usize,
    /// One transaction starts every this long (later when a commit takes longer).
    pub latency_interval: Duration,
    /// Value size of the commit-visibility messages (at least 16 bytes: send stamp, index).
    pub latency_size: usize,
    /// Which leg goes first.
    pub order: Order,
    /// Run number (with `Order::Alternate`, odd: transactional first).
    pub run: u32,
    /// Delete each throughput topic once measured (and give the broker [`DELETE_SETTLE`]).
    pub delete_after: bool,
    /// `fetch.message.max.bytes` of the consumer, KiB.
    pub fetch_max_kbytes: usize,
    /// Give up (error) when a step takes longer than this.
    pub timeout: Duration,
}

impl TxnOptions {
    /// The options as JSON fields.
    fn describe(&self) -> Vec<(String, Value)> {
        vec![
            ("partitions".into(), json!(self.partitions)),
            ("replication_factor".into(), json!(self.replication_factor)),
            ("msg_bytes".into(), json!(self.size)),
            ("producers".into(), json!(self.producers)),
            ("txn_messages".into(), json!(self.txn_messages)),
            ("duration_secs".into(), json!(self.duration.as_secs_f64())),
            ("messages_per_producer".into(), json!(self.messages_per_producer)),
            ("acks".into(), json!("all")),
            ("linger_ms".into(), json!(self.linger_ms)),
            ("batch_bytes".into(), json!(self.batch_bytes)),
            ("window_kbytes".into(), json!(self.window_kbytes)),
            ("window_split_over_producers".into(), json!(true)),
            ("window_messages".into(), json!(self.window_messages)),
            (
                "transaction_timeout_ms".into(),
                json!(self.transaction_timeout_ms),
            ),
            (
                "partitioning".into(),
                json!("producer i -> partition i % partitions"),
            ),
            ("lat_txns".into(), json!(self.latency_txns)),
            ("lat_txn_messages".into(), json!(self.latency_txn_messages)),
            (
                "lat_interval_ms".into(),
                json!(self.latency_interval.as_secs_f64() * 1e3),
            ),
            ("lat_msg_bytes".into(), json!(self.latency_size)),
        ]
    }

    /// The producer configuration of both legs, for one of `producers` producers (each gets its
    /// share of the in-flight window); `transactional_id` makes it transactional.
    pub(crate) fn producer_config(&self, producers: usize, transactional_id: Option<&str>) -> ClientConfig {
        let n = producers.max(1);
        let mut config = kafka::producer_config(&self.bootstrap, "all");
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_bytes.to_string())
            .set("batch.num.messages", "10000")
            .set(
                "queue.buffering.max.kbytes",
                (self.window_kbytes / n).max(1).to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                (self.window_messages / n).max(1).to_string(),
            )
            .set("compression.type", "none")
            .set("request.timeout.ms", "30000")
            // librdkafka refuses a transactional producer whose message timeout exceeds its
            // transaction timeout.
            .set(
                "message.timeout.ms",
                self.transaction_timeout_ms.min(60_000).to_string(),
            );
        if let Some(id) = transactional_id {
            config
                .set("transactional.id", id)
                .set("transaction.timeout.ms", self.transaction_timeout_ms.to_string());
        }
        config
    }
}

/// Counts delivery reports; librdkafka's warnings and errors go to stderr.
#[derive(Default)]
pub(crate) struct Acks {
    acked: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for Acks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        ) {
            eprintln!("distlog-bench: librdkafka {level:?} {fac}: {log_message}");
        }
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl Acks {
    /// An error if any delivery failed.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        let failed = self.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .first_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            bail!("{failed} messages failed; first: {first}");
        }
        Ok(())
    }
}

pub(crate) type TxnProducer = ThreadedProducer<Acks>;

/// Enqueues one message for `partition`, waiting while the in-flight window is full (the
/// producer's polling thread serves the delivery reports that free it).
pub(crate) fn send(
    producer: &TxnProducer,
    topic: &str,
    partition: i32,
    value: &[u8],
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let record: BaseRecord<'_, (), [u8], ()> = BaseRecord::to(topic).partition(partition).payload(value);
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                if Instant::now() > deadline {
                    bail!("in-flight window still full at the deadline");
                }
                thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(e).context("enqueue"),
        }
    }
}

/// librdkafka's `rd_kafka_flush`: sends what `linger.ms` holds at once and returns as soon as
/// every message has had its delivery report (served by the producer's polling thread).
fn flush(producer: &TxnProducer, timeout: Duration) -> anyhow::Result<()> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the handle is owned by `producer`, alive for the call; rd_kafka_flush may be called
    // from any thread, and in event mode it only waits (the polling thread serves the reports).
    let err = unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), ms) };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        bail!("flush: {:?}", RDKafkaErrorCode::from(err));
    }
    Ok(())
}

/// Flushes, then commits the open transaction (aborting it when the commit fails).
pub(crate) fn commit(producer: &TxnProducer, timeout: Duration) -> anyhow::Result<()> {
    flush(producer, timeout)?;
    if let Err(e) = producer.commit_transaction(timeout) {
        let _ = producer.abort_transaction(timeout);
        return Err(e).context("commit_transaction");
    }
    Ok(())
}

/// What one producer of a throughput leg did in the measured window.
struct ProducerRun {
    msgs: u64,
    txns: u64,
    end: Instant,
    commits: Latencies,
    warmup: Duration,
}

/// One producer of a throughput leg: warm up, wait for the others (`ready`, then `go`), send.
fn producer_thread(
    opts: &TxnOptions,
    config: &ClientConfig,
    transactional: bool,
    topic: &str,
    partition: i32,
    ready: &Barrier,
    go: &Barrier,
) -> anyhow::Result<ProducerRun> {
    let value = kafka::patterned_payload(partition as usize, opts.size);
    let setup = (|| -> anyhow::Result<(TxnProducer, Duration)> {
        let producer: TxnProducer = config
            .create_with_context(Acks::default())
            .context("create producer")?;
        let from = Instant::now();
        let deadline = from + opts.timeout;
        if transactional {
            producer
                .init_transactions(opts.timeout)
                .context("init_transactions")?;
            producer.begin_transaction().context("begin_transaction")?;
            send(&producer, topic, partition, &value, deadline)?;
            commit(&producer, opts.timeout)?;
        } else {
            send(&producer, topic, partition, &value, deadline)?;
            flush(&producer, opts.timeout)?;
        }
        producer.context().check()?;
        Ok((producer, from.elapsed()))
    })();
    ready.wait();
    go.wait();
    let (producer, warmup) = setup?;
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let acked_before = producer.context().acked.load(Ordering::Relaxed);
    let limit = opts.messages_per_producer.unwrap_or(u64::MAX);
    let txn_messages = opts.txn_messages.max(1) as u64;
    let mut msgs = 0u64;
    let mut txns = 0u64;
    let mut commits = Latencies::default();
    if transactional {
        while start.elapsed() < opts.duration && msgs < limit {
            producer.begin_transaction().context("begin_transaction")?;
            for _ in 0..txn_messages {
                send(&producer, topic, partition, &value, deadline)?;
            }
            let at = Instant::now();
            commit(&producer, deadline.saturating_duration_since(at))?;
            commits.record_ns(u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX));
            msgs += txn_messages;
            txns += 1;
        }
    } else {
        while msgs < limit && (!msgs.is_multiple_of(64) || start.elapsed() < opts.duration) {
            send(&producer, topic, partition, &value, deadline)?;
            msgs += 1;
        }
        flush(&producer, deadline.saturating_duration_since(Instant::now()))?;
    }
    let end = Instant::now();
    producer.context().check()?;
    let acked = producer.context().acked.load(Ordering::Relaxed) - acked_before;
    if acked != msgs {
        bail!("{msgs} messages sent in the window, {acked} acknowledged");
    }
    Ok(ProducerRun {
        msgs,
        txns,
        end,
        commits,
        warmup,
    })
}

/// One leg's throughput and every figure of it as JSON fields.
struct Leg {
    mb_per_s: f64,
    fields: Vec<(String, Value)>,
}

/// Runs one throughput leg: `producers` producers at once on a fresh `topic`.
fn throughput_leg(
    opts: &TxnOptions,
    transactional: bool,
    producers: usize,
    topic: &str,
    probe: &BrokerProbe,
) -> anyhow::Result<Leg> {
    ensure_topic_replicated(&opts.bootstrap, topic, opts.partitions, opts.replication_factor)?;
    let loadavg = loadavg_1m();
    let ready = Arc::new(Barrier::new(producers + 1));
    let go = Arc::new(Barrier::new(producers + 1));
    let threads: Vec<_> = (0..producers)
        .map(|i| {
            let (opts, topic, ready, go) = (opts.clone(), topic.to_string(), ready.clone(), go.clone());
            // Unique per run and leg, so a rerun against the same broker starts fresh ids.
            let id = format!("{topic}-{i}-{}", std::process::id());
            let config = opts.producer_config(producers, transactional.then_some(id.as_str()));
            let partition = i32::try_from(i).unwrap_or(0) % opts.partitions.max(1);
            thread::spawn(move || {
                producer_thread(&opts, &config, transactional, &topic, partition, &ready, &go)
            })
        })
        .collect();
    ready.wait();
    let txns_before = probe.metric("distlog_transactions_total");
    let before = probe.sample();
    go.wait();
    let start = Instant::now();
    let mut runs = Vec::with_capacity(producers);
    let mut first_error = None;
    for t in threads {
        match t.join() {
            Ok(Ok(r)) => runs.push(r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(anyhow::anyhow!("producer thread panicked"));
            }
        }
    }
    let after = probe.sample();
    let txns_after = probe.metric("distlog_transactions_total");
    if let Some(e) = first_error {
        return Err(e);
    }
    let end = runs.iter().map(|r| r.end).max().unwrap_or(start);
    let secs = end.duration_since(start).as_secs_f64().max(1e-9);
    let msgs: u64 = runs.iter().map(|r| r.msgs).sum();
    let txns: u64 = runs.iter().map(|r| r.txns).sum();
    let bytes = msgs * opts.size as u64;
    let mb_per_s = crate::mb_per_s(bytes, secs);
    let warmup_max = runs.iter().map(|r| r.warmup).max().unwrap_or_default();
    let mut commits = Latencies::default();
    for r in runs {
        commits.merge(r.commits);
    }
    let mut fields = vec![
        ("msgs".to_string(), json!(msgs)),
        ("bytes".to_string(), json!(bytes)),
        ("secs".to_string(), json!(secs)),
        ("msgs_per_s".to_string(), json!(msgs as f64 / secs)),
        ("mb_per_s".to_string(), json!(mb_per_s)),
        ("warmup_ms".to_string(), json!(warmup_max.as_secs_f64() * 1e3)),
    ];
    if transactional {
        fields.push(("txns".to_string(), json!(txns)));
        fields.push(("txns_per_s".to_string(), json!(txns as f64 / secs)));
        fields.extend(commits.summary("commit"));
    }
    fields.extend(probe.delta(&before, &after, bytes));
    if let (Some(a), Some(b)) = (txns_after, txns_before) {
        fields.push(("broker_txns_ended".to_string(), json!(a - b)));
    }
    fields.push(("topic".to_string(), json!(topic)));
    fields.push(("loadavg_1m".to_string(), json!(loadavg)));
    Ok(Leg { mb_per_s, fields })
}

/// Runs scenario 11: for each producer count, the transactional and the idempotent leg in the
/// order `opts.order` gives `opts.run` (figures prefixed `txn_<n>p_` and `idem_<n>p_`; `ratio_<n>p`
/// is transactional ÷ idempotent MB/s, the same as of msgs/s with equal messages), then the
/// commit-visibility measurement (`lat_`).
pub fn run(opts: &TxnOptions, probe: &BrokerProbe) -> anyhow::Result<Vec<(String, Value)>> {
    if opts.partitions < 1 || opts.producers.is_empty() || opts.producers.contains(&0) {
        bail!("need at least one partition and producer counts of at least 1");
    }
    let txn_first = opts.order.txn_first(opts.run);
    let mut out = opts.describe();
    out.push((
        "order".to_string(),
        json!(if txn_first { "txn-first" } else { "idem-first" }),
    ));
    for &n in &opts.producers {
        let legs: [bool; 2] = if txn_first { [true, false] } else { [false, true] };
        let (mut txn_mb, mut idem_mb) = (None, None);
        for transactional in legs {
            let name = format!("{}_{n}p", if transactional { "txn" } else { "idem" });
            let topic = format!("{}-{}", opts.topic, name.replace('_', "-"));
            eprintln!("distlog-bench: {name} leg on {topic}");
            let leg = throughput_leg(opts, transactional, n, &topic, probe)
                .with_context(|| format!("{name} leg"))?;
            if opts.delete_after {
                if let Err(e) = kafka::delete_topic(&opts.bootstrap, &topic) {
                    eprintln!("distlog-bench: delete {topic}: {e:#}");
                }
                thread::sleep(DELETE_SETTLE);
            }
            out.extend(leg.fields.into_iter().map(|(k, v)| (format!("{name}_{k}"), v)));
            if transactional {
                txn_mb = Some(leg.mb_per_s);
            } else {
                idem_mb = Some(leg.mb_per_s);
            }
        }
        if let (Some(t), Some(i)) = (txn_mb, idem_mb) {
            if i > 0.0 {
                out.push((format!("ratio_{n}p"), json!(t / i)));
            }
        }
    }
    eprintln!("distlog-bench: commit visibility on {}-lat", opts.topic);
    out.extend(crate::txn_visibility::commit_visibility(opts, probe).context("commit visibility")?);
    Ok(out)
}

/// A one-line human-readable summary of a [`run`]'s fields.
pub fn summary(fields: &[(String, Value)]) -> String {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| name == k)
            .and_then(|(_, v)| v.as_f64())
    };
    let f = |k: &str, digits: usize| get(k).map_or_else(|| "?".to_string(), |v| format!("{v:.digits$}"));
    let mut parts = Vec::new();
    let counts: Vec<u64> = fields
        .iter()
        .find(|(name, _)| name == "producers")
        .and_then(|(_, v)| v.as_array())
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    for n in counts {
        parts.push(format!(
            "{n}p: txn {} MB/s {} msgs/s, idem {} MB/s {} msgs/s, ratio {}",
            f(&format!("txn_{n}p_mb_per_s"), 1),
            f(&format!("txn_{n}p_msgs_per_s"), 0),
            f(&format!("idem_{n}p_mb_per_s"), 1),
            f(&format!("idem_{n}p_msgs_per_s"), 0),
            f(&format!("ratio_{n}p"), 2),
        ));
    }
    parts.push(format!(
        "read_committed e2e p50/p99/max {}/{}/{} ms, visible after commit returned p50/p99 {}/{} ms, commit p50/p99 {}/{} ms",
        f("lat_e2e_p50_ms", 2),
        f("lat_e2e_p99_ms", 2),
        f("lat_e2e_max_ms", 2),
        f("lat_visible_after_commit_p50_ms", 2),
        f("lat_visible_after_commit_p99_ms", 2),
        f("lat_commit_p50_ms", 2),
        f("lat_commit_p99_ms", 2),
    ));
    parts.join("; ")
}

/// The 1-minute load average, if /proc has it.
fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_puts_the_transactional_leg_first_on_odd_runs() {
        assert!(Order::Alternate.txn_first(1));
        assert!(!Order::Alternate.txn_first(2));
        assert!(Order::TxnFirst.txn_first(2));
        assert!(!Order::IdemFirst.txn_first(1));
    }

    #[test]
    fn each_producer_gets_its_share_of_the_window() {
        let opts = TxnOptions {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "t".into(),
            partitions: 8,
            replication_factor: 1,
            size: 1024,
            producers: vec![1, 8],
            txn_messages: 100,
            duration: Duration::from_secs(5),
            messages_per_producer: None,
            linger_ms: 5,
            batch_bytes: 1_000_000,
            window_kbytes: 4096,
            window_messages: 100_000,
            transaction_timeout_ms: 60_000,
            latency_txns: 200,
            latency_txn_messages: 10,
            latency_interval: Duration::from_millis(20),
            latency_size: 1024,
            order: Order::Alternate,
            run: 1,
            delete_after: true,
            fetch_max_kbytes: 4096,
            timeout: Duration::from_secs(60),
        };
        let eight = opts.producer_config(8, Some("id"));
        assert_eq!(eight.get("queue.buffering.max.kbytes"), Some("512"));
        assert_eq!(eight.get("queue.buffering.max.messages"), Some("12500"));
        assert_eq!(eight.get("transactional.id"), Some("id"));
        assert_eq!(eight.get("enable.idempotence"), Some("true"));
        let one = opts.producer_config(1, None);
        assert_eq!(one.get("queue.buffering.max.kbytes"), Some("4096"));
        assert_eq!(one.get("transactional.id"), None);
    }

    #[test]
    fn summary_names_every_producer_count_and_the_latency() {
        let fields = vec![
            ("producers".to_string(), json!([1, 8])),
            ("txn_1p_mb_per_s".to_string(), json!(19.17)),
            ("txn_1p_msgs_per_s".to_string(), json!(18720.8)),
            ("idem_1p_mb_per_s".to_string(), json!(271.5)),
            ("idem_1p_msgs_per_s".to_string(), json!(265175.4)),
            ("ratio_1p".to_string(), json!(0.0706)),
            ("lat_e2e_p50_ms".to_string(), json!(7.634)),
        ];
        let line = summary(&fields);
        assert!(
            line.starts_with(
                "1p: txn 19.2 MB/s 18721 msgs/s, idem 271.5 MB/s 265175 msgs/s, ratio 0.07; 8p: txn ? MB/s"
            ),
            "{line}"
        );
        assert!(
            line.contains("read_committed e2e p50/p99/max 7.63/?/? ms"),
            "{line}"
        );
    }
}
