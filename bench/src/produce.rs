//! The producer engine: full speed or paced, with a bounded in-flight window, recording the ack
//! latency of every message (from the `produce()` call that accepted it to its delivery report).
//!
//! The window matters: librdkafka counts every message that has not had its delivery report
//! against `queue.buffering.max.messages`/`queue.buffering.max.kbytes`, so those two bound what is
//! queued in the client *and* in flight to the broker. With an unbounded queue a full-speed
//! producer measures mostly its own queueing (hundreds of ms); with a window of a few MB the ack
//! latency is the broker's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};
use serde_json::{json, Value};

use super::stats::Latencies;
use distlog_compat_tests::kafka;

/// How to produce.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Topic (must exist with at least `partitions` partitions).
    pub topic: String,
    /// Messages go round-robin over partitions `0..partitions`.
    pub partitions: i32,
    /// Value size in bytes (no key).
    pub size: usize,
    /// `acks`: "0", "1" or "all".
    pub acks: String,
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `batch.size` in bytes.
    pub batch_bytes: usize,
    /// `batch.num.messages`.
    pub batch_messages: usize,
    /// In-flight window: `queue.buffering.max.kbytes`.
    pub window_kbytes: usize,
    /// In-flight window: `queue.buffering.max.messages`.
    pub window_messages: usize,
    /// Stop sending after this long (the measured time also includes the final flush).
    pub duration: Option<Duration>,
    /// Stop sending after this many value bytes.
    pub total_bytes: Option<u64>,
    /// Send at this fixed rate (messages per second) instead of as fast as the window allows.
    pub rate: Option<f64>,
    /// Write the send instant (ns since `origin`, u64 little-endian) into the first 8 bytes of
    /// each value, for end-to-end latency.
    pub stamp_values: bool,
    /// Give up (error) if sending and flushing take longer than this.
    pub timeout: Duration,
    /// `enable.idempotence` (librdkafka then also caps requests in flight per connection at 5
    /// unless `max_in_flight` says otherwise, and asks the broker for a producer id).
    pub idempotent: bool,
    /// `max.in.flight.requests.per.connection`; librdkafka's default (1,000,000, or 5 when
    /// idempotent) when `None`.
    pub max_in_flight: Option<u32>,
    /// Send at full speed for this long, and until the first delivery report, before the measured
    /// window starts (a producer's start-up — connecting, and for an idempotent producer getting
    /// its producer id — then stays out of the throughput). Only acknowledgements after the
    /// window starts count, and only messages sent after it start have their latency recorded.
    pub warmup: Option<Duration>,
}

impl ProduceOptions {
    /// The rdkafka producer configuration these options describe.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = kafka::producer_config(&self.bootstrap, &self.acks);
        config
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_bytes.to_string())
            .set("batch.num.messages", self.batch_messages.to_string())
            .set("queue.buffering.max.kbytes", self.window_kbytes.to_string())
            .set("queue.buffering.max.messages", self.window_messages.to_string())
            .set("compression.type", "none")
            .set("message.timeout.ms", "60000")
            .set("request.timeout.ms", "30000")
            .set("enable.idempotence", self.idempotent.to_string());
        if let Some(n) = self.max_in_flight {
            config.set("max.in.flight.requests.per.connection", n.to_string());
        }
        if let Some(debug) = std::env::var_os(RDKAFKA_DEBUG_ENV) {
            config.set("debug", debug.to_string_lossy()).set("log_level", "7");
        }
        config
    }

    /// The options as JSON fields, so every result line says how it was measured.
    pub fn describe(&self) -> Vec<(String, Value)> {
        vec![
            ("partitions".into(), json!(self.partitions)),
            ("msg_bytes".into(), json!(self.size)),
            ("acks".into(), json!(self.acks)),
            ("linger_ms".into(), json!(self.linger_ms)),
            ("batch_bytes".into(), json!(self.batch_bytes)),
            ("window_kbytes".into(), json!(self.window_kbytes)),
            ("window_messages".into(), json!(self.window_messages)),
            ("idempotent".into(), json!(self.idempotent)),
            ("max_in_flight".into(), json!(self.max_in_flight)),
            (
                "warmup_secs".into(),
                json!(self.warmup.map_or(0.0, |w| w.as_secs_f64())),
            ),
        ]
    }
}

/// What a produce run achieved.
#[derive(Debug)]
pub struct ProduceOutcome {
    /// Messages acknowledged.
    pub acked: u64,
    /// Value bytes acknowledged.
    pub acked_bytes: u64,
    /// Value bytes acknowledged, the warm-up's included.
    pub all_acked_bytes: u64,
    /// From the first send (or the end of the warm-up) to the last delivery report.
    pub elapsed: Duration,
    /// Ack latency of every acknowledged message (sent after the warm-up, with one).
    pub latencies: Latencies,
    /// From the first send to the first delivery report (the producer's start-up).
    pub first_ack: Option<Duration>,
}

impl ProduceOutcome {
    /// Throughput and latency as JSON fields (`msgs_per_s`, `mb_per_s`, `ack_p50_ms`, …).
    pub fn fields(self) -> Vec<(String, Value)> {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut out = vec![
            ("msgs".to_string(), json!(self.acked)),
            ("bytes".to_string(), json!(self.acked_bytes)),
            ("secs".to_string(), json!(secs)),
            ("msgs_per_s".to_string(), json!(self.acked as f64 / secs)),
            (
                "mb_per_s".to_string(),
                json!(crate::mb_per_s(self.acked_bytes, secs)),
            ),
        ];
        out.extend(self.latencies.summary("ack"));
        if let Some(f) = self.first_ack {
            out.push(("first_ack_ms".to_string(), json!(f.as_secs_f64() * 1e3)));
        }
        out
    }
}

/// Collects delivery reports: the opaque of each message is its send instant in ns since
/// `origin` (a `usize`, so no allocation per message).
struct DeliveryContext {
    origin: Instant,
    latencies: Mutex<Latencies>,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    all_acked_bytes: AtomicU64,
    last_ack_ns: AtomicU64,
    first_ack_ns: AtomicU64,
    /// Start of the measured window (ns since `origin`): 0 without a warm-up, `u64::MAX` until
    /// the warm-up ends.
    measure_from_ns: AtomicU64,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {
    /// librdkafka's warnings and errors (and its debug lines, with `DISTLOG_BENCH_RDKAFKA_DEBUG`)
    /// go to stderr, stamped with the time since `origin`.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let debug = matches!(
            level,
            RDKafkaLogLevel::Debug | RDKafkaLogLevel::Info | RDKafkaLogLevel::Notice
        );
        if !debug || std::env::var_os(RDKAFKA_DEBUG_ENV).is_some() {
            let at = self.origin.elapsed().as_secs_f64();
            eprintln!("distlog-bench: librdkafka {at:.3}s {level:?} {fac}: {log_message}");
        }
    }
}

/// Environment variable: librdkafka `debug` contexts for the producer (e.g. `eos,msg`).
pub const RDKAFKA_DEBUG_ENV: &str = "DISTLOG_BENCH_RDKAFKA_DEBUG";

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now_ns = nanos_since(self.origin);
        match result {
            Ok(msg) => {
                self.first_ack_ns.fetch_min(now_ns, Ordering::Relaxed);
                let len = msg.payload().map_or(0, <[u8]>::len) as u64;
                self.all_acked_bytes.fetch_add(len, Ordering::Relaxed);
                let from = self.measure_from_ns.load(Ordering::Relaxed);
                if now_ns < from {
                    return; // acknowledged during the warm-up
                }
                if sent_ns as u64 >= from {
                    let latency = now_ns.saturating_sub(sent_ns as u64);
                    self.latencies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record_ns(latency);
                }
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.acked_bytes.fetch_add(len, Ordering::Relaxed);
                self.last_ack_ns.fetch_max(now_ns, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.first_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Nanoseconds since `origin`, saturating.
pub fn nanos_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Produces according to `opts`, timing from the first send to the last delivery report.
/// `origin` is the clock zero of stamped values (shared with an end-to-end consumer).
pub fn run(opts: &ProduceOptions, origin: Instant) -> anyhow::Result<ProduceOutcome> {
    if opts.partitions < 1 {
        bail!("partitions must be at least 1");
    }
    if opts.stamp_values && opts.size < 8 {
        bail!("stamped values need at least 8 bytes");
    }
    let context = DeliveryContext {
        origin,
        latencies: Mutex::new(Latencies::with_capacity(1 << 20)),
        acked: AtomicU64::new(0),
        acked_bytes: AtomicU64::new(0),
        all_acked_bytes: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
        first_ack_ns: AtomicU64::new(u64::MAX),
        // With a warm-up nothing counts until it ends and sets the start of the window.
        measure_from_ns: AtomicU64::new(if opts.warmup.is_some() { u64::MAX } else { 0 }),
        failures: AtomicU64::new(0),
        first_failure: Mutex::new(None),
    };
    let producer: BaseProducer<DeliveryContext> = opts
        .client_config()
        .create_with_context(context)
        .context("create producer")?;
    let mut value = kafka::patterned_payload(0, opts.size);
    let first_send = Instant::now();
    let first_send_ns = nanos_since(origin);
    let mut started = first_send;
    let mut started_ns = first_send_ns;
    let mut warming = opts.warmup.is_some();
    let mut sent: u64 = 0;
    let mut sent_bytes: u64 = 0;
    let size = opts.size as u64;
    loop {
        // One clock read per message (clock reads are a visible part of the client's CPU here).
        let now = Instant::now();
        let now_ns = u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX);
        if warming
            && opts.warmup.is_some_and(|w| now - first_send >= w)
            && producer.context().first_ack_ns.load(Ordering::Relaxed) != u64::MAX
        {
            warming = false;
            started = now;
            started_ns = now_ns;
            producer
                .context()
                .measure_from_ns
                .store(started_ns, Ordering::Relaxed);
            sent = 0;
            sent_bytes = 0;
        }
        if now - first_send > opts.timeout {
            bail!("timed out after {:?} while sending", opts.timeout);
        }
        let elapsed = now - started;
        if !warming
            && (opts.duration.is_some_and(|d| elapsed >= d)
                || opts.total_bytes.is_some_and(|t| sent_bytes >= t))
        {
            break;
        }
        if let Some(rate) = opts.rate {
            let due = (elapsed.as_secs_f64() * rate) as u64;
            if sent >= due {
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        let partition = i32::try_from(sent % u64::try_from(opts.partitions).context("partitions")?)
            .context("partition index")?;
        let sent_ns = now_ns;
        if opts.stamp_values {
            value[..8].copy_from_slice(&sent_ns.to_le_bytes());
        }
        let opaque = usize::try_from(sent_ns).context("ns fit usize")?;
        let record: BaseRecord<'_, (), [u8], usize> = BaseRecord::with_opaque_to(&opts.topic, opaque)
            .partition(partition)
            .payload(&value[..]);
        match producer.send(record) {
            Ok(()) => {
                sent += 1;
                sent_bytes += size;
                if sent.is_multiple_of(64) {
                    producer.poll(Duration::ZERO);
                }
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e).context("enqueue"),
        }
    }
    let remaining = opts.timeout.saturating_sub(first_send.elapsed());
    producer
        .flush(remaining)
        .context("flush (not every message acknowledged in time)")?;
    let ctx = producer.context();
    let failures = ctx.failures.load(Ordering::Relaxed);
    if failures > 0 {
        let first = ctx
            .first_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        bail!("{failures} of {sent} messages failed; first: {first}");
    }
    let last_ack_ns = ctx.last_ack_ns.load(Ordering::Relaxed);
    let latencies = std::mem::take(&mut *ctx.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(ProduceOutcome {
        acked: ctx.acked.load(Ordering::Relaxed),
        acked_bytes: ctx.acked_bytes.load(Ordering::Relaxed),
        all_acked_bytes: ctx.all_acked_bytes.load(Ordering::Relaxed),
        elapsed: Duration::from_nanos(last_ack_ns.saturating_sub(started_ns)),
        latencies,
        first_ack: match ctx.first_ack_ns.load(Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns.saturating_sub(first_send_ns))),
        },
    })
}
