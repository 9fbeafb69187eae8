//! A steady, paced acks=all producer that runs in the background of a scenario and keeps the send
//! instant of every acknowledged message, so that its ack latency can be cut afterwards into
//! windows of the scenario's own timeline (scenario 10: during a truncation, and after it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde_json::{json, Value};

use crate::produce::nanos_since;
use crate::stats::Latencies;
use distlog_compat_tests::kafka;

/// What the load sends.
#[derive(Debug, Clone)]
pub struct SteadyLoadOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Topic (must exist with at least `partitions` partitions).
    pub topic: String,
    /// Messages go round-robin over partitions `0..partitions`.
    pub partitions: i32,
    /// Value bytes per message.
    pub size: usize,
    /// Messages per second.
    pub rate: f64,
    /// `linger.ms`.
    pub linger_ms: u64,
}

impl SteadyLoadOptions {
    /// The options as JSON fields (prefix `load_`).
    pub fn describe(&self) -> Vec<(String, Value)> {
        vec![
            ("load_partitions".into(), json!(self.partitions)),
            ("load_msg_bytes".into(), json!(self.size)),
            ("load_rate_msgs_per_s".into(), json!(self.rate)),
            (
                "load_rate_mb_per_s".into(),
                json!(self.rate * self.size as f64 / 1e6),
            ),
            ("load_linger_ms".into(), json!(self.linger_ms)),
            ("load_acks".into(), json!("all")),
        ]
    }
}

/// One acknowledged message: when it was sent (ns since the load's origin) and its ack latency.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    /// Send instant, ns since the origin given to [`SteadyLoad::start`].
    pub sent_ns: u64,
    /// From `produce()` to the delivery report, ns.
    pub latency_ns: u64,
}

/// Everything the load saw, once stopped.
#[derive(Debug, Default)]
pub struct LoadRecord {
    /// Every acknowledged message, in delivery order.
    pub acks: Vec<Ack>,
    /// Messages sent.
    pub sent: u64,
    /// Messages whose delivery failed.
    pub failures: u64,
    /// The first failure's error.
    pub first_failure: Option<String>,
}

impl LoadRecord {
    /// The first delivery report's send instant (ns since the origin), if any message was acked.
    pub fn first_ack_ns(&self) -> Option<u64> {
        self.acks.iter().map(|a| a.sent_ns + a.latency_ns).min()
    }

    /// Ack latency percentiles (`<prefix>_p50_ms`, …) of the messages sent in `[from_ns, to_ns)`,
    /// with the window's length and achieved rate.
    pub fn window(&self, prefix: &str, from_ns: u64, to_ns: u64) -> Vec<(String, Value)> {
        let mut lat = Latencies::with_capacity(1024);
        for a in self
            .acks
            .iter()
            .filter(|a| a.sent_ns >= from_ns && a.sent_ns < to_ns)
        {
            lat.record_ns(a.latency_ns);
        }
        let secs = to_ns.saturating_sub(from_ns) as f64 / 1e9;
        let mut out = vec![(format!("{prefix}_window_secs"), json!(secs))];
        out.push((
            format!("{prefix}_msgs_per_s"),
            json!(if secs > 0.0 { lat.len() as f64 / secs } else { 0.0 }),
        ));
        out.extend(lat.summary(prefix));
        out
    }
}

struct LoadContext {
    origin: Instant,
    record: Mutex<LoadRecord>,
}

impl ClientContext for LoadContext {}

impl ProducerContext for LoadContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now_ns = nanos_since(self.origin);
        let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) => {
                let sent_ns = sent_ns as u64;
                r.acks.push(Ack {
                    sent_ns,
                    latency_ns: now_ns.saturating_sub(sent_ns),
                });
            }
            Err((e, _)) => {
                r.failures += 1;
                r.first_failure.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// A running load (a thread with its own producer). Stopped by [`SteadyLoad::stop`]; a load
/// dropped without it is told to stop and its thread is left to finish on its own.
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<anyhow::Result<LoadRecord>>>,
}

impl SteadyLoad {
    /// Starts sending at `opts.rate` from now on; send instants are measured from `origin`.
    /// The producer connects (and reconnects) on its own: messages sent while the broker is not
    /// up yet are simply acknowledged late.
    pub fn start(opts: &SteadyLoadOptions, origin: Instant) -> anyhow::Result<SteadyLoad> {
        let mut config = kafka::producer_config(&opts.bootstrap, "all");
        config
            .set("linger.ms", opts.linger_ms.to_string())
            .set("compression.type", "none")
            .set("queue.buffering.max.kbytes", "65536")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "30000")
            .set("reconnect.backoff.ms", "10")
            .set("reconnect.backoff.max.ms", "100");
        let producer: BaseProducer<LoadContext> = config
            .create_with_context(LoadContext {
                origin,
                record: Mutex::new(LoadRecord {
                    acks: Vec::with_capacity(1 << 20),
                    ..LoadRecord::default()
                }),
            })
            .context("create the load producer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let opts = opts.clone();
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = thread::Builder::new()
            .name("steady-load".into())
            .spawn(move || send_loop(&producer, &opts, origin, &stop2, &sent2))
            .context("spawn the load thread")?;
        Ok(SteadyLoad {
            stop,
            sent,
            thread: Some(thread),
        })
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops sending, waits for every outstanding delivery report (at most 60 s) and returns
    /// what the load saw.
    pub fn stop(mut self) -> anyhow::Result<LoadRecord> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the load thread panicked"))),
            None => Ok(LoadRecord::default()),
        }
    }
}

impl Drop for SteadyLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn send_loop(
    producer: &BaseProducer<LoadContext>,
    opts: &SteadyLoadOptions,
    origin: Instant,
    stop: &AtomicBool,
    sent_count: &AtomicU64,
) -> anyhow::Result<LoadRecord> {
    let value = kafka::patterned_payload(0, opts.size);
    let partitions = u64::try_from(opts.partitions.max(1)).context("partitions")?;
    let started = Instant::now();
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let due = ((now - started).as_secs_f64() * opts.rate) as u64;
        if sent >= due {
            producer.poll(Duration::ZERO);
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        let partition = i32::try_from(sent % partitions).context("partition index")?;
        let sent_ns = u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX);
        let opaque = usize::try_from(sent_ns).context("ns fit usize")?;
        let record: BaseRecord<'_, (), [u8], usize> = BaseRecord::with_opaque_to(&opts.topic, opaque)
            .partition(partition)
            .payload(&value[..]);
        match producer.send(record) {
            Ok(()) => {
                sent += 1;
                sent_count.store(sent, Ordering::Relaxed);
                if sent.is_multiple_of(64) {
                    producer.poll(Duration::ZERO);
                }
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e).context("enqueue a load message"),
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flush the load producer (not every message acknowledged within 60 s)")?;
    let mut record = std::mem::take(
        &mut *producer
            .context()
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    record.sent = sent;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_the_messages_sent_in_them() {
        let ms = 1_000_000;
        let record = LoadRecord {
            acks: [(0, 5), (1000, 7), (1500, 900), (2000, 3)]
                .map(|(sent, lat)| Ack {
                    sent_ns: sent * ms,
                    latency_ns: lat * ms,
                })
                .to_vec(),
            sent: 4,
            ..LoadRecord::default()
        };
        assert_eq!(record.first_ack_ns(), Some(5 * ms));
        let w: serde_json::Map<String, Value> = record
            .window("during", 1000 * ms, 2000 * ms)
            .into_iter()
            .collect();
        assert_eq!(w["during_samples"], json!(2));
        assert_eq!(w["during_p50_ms"], json!(7.0));
        assert_eq!(w["during_max_ms"], json!(900.0));
        assert_eq!(w["during_window_secs"], json!(1.0));
        assert_eq!(w["during_msgs_per_s"], json!(2.0));
        let empty: serde_json::Map<String, Value> =
            record.window("after", 3000 * ms, 4000 * ms).into_iter().collect();
        assert_eq!(empty["after_samples"], json!(0));
    }
}
