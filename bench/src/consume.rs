//! Read scenarios: a catch-up read of a whole partition, a tail consumer keeping up with a
//! producer, and fan-out (many independent consumers of one partition).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::{bench_consumer_config, mb_per_s, watermarks};
use crate::probe::BrokerProbe;
use crate::produce::{self, ProduceOptions};

/// Where and how to read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// `fetch.message.max.bytes` in KiB (per partition per fetch).
    pub fetch_max_kbytes: usize,
    /// Give up (error) if a read takes longer than this.
    pub timeout: Duration,
}

/// What one read achieved.
#[derive(Debug, Clone, Copy)]
pub struct ReadOutcome {
    /// Messages read.
    pub msgs: u64,
    /// Value bytes read.
    pub bytes: u64,
    /// From `assign()` to the last message.
    pub elapsed: Duration,
}

/// Counters a reader publishes while it runs, and the number of messages at which it stops
/// (`u64::MAX` until known).
#[derive(Debug)]
pub struct ReadProgress {
    /// Messages read so far.
    pub msgs: AtomicU64,
    /// Value bytes read so far.
    pub bytes: AtomicU64,
    /// Stop after this many messages.
    pub target: AtomicU64,
}

impl ReadProgress {
    /// Progress of a reader that stops after `target` messages.
    pub fn new(target: u64) -> ReadProgress {
        ReadProgress {
            msgs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            target: AtomicU64::new(target),
        }
    }
}

/// Creates an assign-only consumer of `topic`/`partition` positioned at `start`.
pub fn assigned(
    opts: &ReadOptions,
    group: &str,
    topic: &str,
    partition: i32,
    start: i64,
) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = bench_consumer_config(&opts.bootstrap, group, opts.fetch_max_kbytes)
        .create()
        .context("create consumer")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&tpl).context("assign")?;
    Ok(consumer)
}

/// Polls `consumer` until `progress.target` messages were read, publishing progress as it goes.
/// The elapsed time runs from `started` to the last message.
pub fn read_until(
    consumer: &BaseConsumer,
    progress: &ReadProgress,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<ReadOutcome> {
    let (mut msgs, mut bytes) = (0u64, 0u64);
    let mut last = started;
    while msgs < progress.target.load(Ordering::Acquire) {
        if started.elapsed() > timeout {
            bail!(
                "read {msgs} messages within {timeout:?}, wanted {}",
                progress.target.load(Ordering::Acquire)
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                msgs += 1;
                bytes += msg.payload().map_or(0, <[u8]>::len) as u64;
                progress.msgs.store(msgs, Ordering::Release);
                progress.bytes.store(bytes, Ordering::Release);
                last = Instant::now();
            }
            Some(Err(e)) => return Err(e).context("consume"),
            None => {}
        }
    }
    Ok(ReadOutcome {
        msgs,
        bytes,
        elapsed: last.duration_since(started),
    })
}

/// Reads `count` messages of `topic`/`partition` from `start` with a fresh consumer.
pub fn read_range(
    opts: &ReadOptions,
    group: &str,
    topic: &str,
    partition: i32,
    start: i64,
    count: u64,
) -> anyhow::Result<ReadOutcome> {
    let started = Instant::now();
    let consumer = assigned(opts, group, topic, partition, start)?;
    read_until(&consumer, &ReadProgress::new(count), started, opts.timeout)
}

fn outcome_fields(prefix: &str, o: &ReadOutcome) -> Vec<(String, Value)> {
    let secs = o.elapsed.as_secs_f64();
    vec![
        (format!("{prefix}msgs"), json!(o.msgs)),
        (format!("{prefix}bytes"), json!(o.bytes)),
        (format!("{prefix}secs"), json!(secs)),
        (format!("{prefix}mb_per_s"), json!(mb_per_s(o.bytes, secs))),
        (
            format!("{prefix}msgs_per_s"),
            json!(o.msgs as f64 / secs.max(1e-9)),
        ),
    ]
}

/// Catch-up read: partition 0 of `topic` from its low to its high watermark, with a new consumer.
pub fn catch_up(
    opts: &ReadOptions,
    topic: &str,
    probe: &BrokerProbe,
) -> anyhow::Result<Vec<(String, Value)>> {
    let (low, high) = watermarks(&opts.bootstrap, topic, 0)?;
    if high <= low {
        bail!("{topic}/0 is empty (watermarks {low}..{high})");
    }
    let before = probe.sample();
    let outcome = read_range(opts, "bench-catch-up", topic, 0, low, u64::try_from(high - low)?)?;
    let after = probe.sample();
    let mut out = outcome_fields("", &outcome);
    out.extend(probe.delta(&before, &after, outcome.bytes));
    Ok(out)
}

/// Tail read: a consumer positioned at the high watermark while `produce` runs at full speed in
/// the same process. Reports the consumer's MB/s over the producer's run, the producer's MB/s,
/// and how long the consumer needed after the last ack to have everything.
pub fn tail(
    opts: &ReadOptions,
    produce: &ProduceOptions,
    probe: &BrokerProbe,
) -> anyhow::Result<Vec<(String, Value)>> {
    let (_, high) = watermarks(&opts.bootstrap, &produce.topic, 0)?;
    let progress = Arc::new(ReadProgress::new(u64::MAX));
    let ready = Arc::new(AtomicBool::new(false));
    let reader = {
        let (opts, topic, progress, ready) = (
            opts.clone(),
            produce.topic.clone(),
            progress.clone(),
            ready.clone(),
        );
        thread::spawn(move || -> anyhow::Result<ReadOutcome> {
            let consumer = assigned(&opts, "bench-tail", &topic, 0, high)?;
            // One empty poll gets the first fetch going before the producer starts.
            let first = consumer.poll(Duration::from_millis(200));
            ready.store(true, Ordering::Release);
            if let Some(Err(e)) = first {
                return Err(e).context("first poll");
            }
            read_until(&consumer, &progress, Instant::now(), opts.timeout)
        })
    };
    let wait_from = Instant::now();
    while !ready.load(Ordering::Acquire) && wait_from.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    let before = probe.sample();
    let produced = produce::run(produce, Instant::now());
    let consumed_bytes_at_end = progress.bytes.load(Ordering::Acquire);
    let produced_at = Instant::now();
    let produced = match produced {
        Ok(p) => p,
        Err(e) => {
            progress.target.store(0, Ordering::Release);
            let _ = reader.join();
            return Err(e);
        }
    };
    let after = probe.sample();
    progress.target.store(produced.acked, Ordering::Release);
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("tail reader panicked"))??;
    let drain = produced_at.elapsed();
    let secs = produced.elapsed.as_secs_f64();
    let mut out = vec![
        (
            "mb_per_s".to_string(),
            json!(mb_per_s(consumed_bytes_at_end, secs)),
        ),
        (
            "consumed_bytes_while_producing".to_string(),
            json!(consumed_bytes_at_end),
        ),
        ("consumed_msgs".to_string(), json!(read.msgs)),
        (
            "drain_ms_after_last_ack".to_string(),
            json!(drain.as_secs_f64() * 1000.0),
        ),
    ];
    let bytes = produced.acked_bytes;
    out.extend(
        produced
            .fields()
            .into_iter()
            .filter(|(k, _)| k == "mb_per_s" || k == "msgs" || k == "secs" || k.starts_with("ack_p"))
            .map(|(k, v)| (format!("producer_{k}"), v)),
    );
    out.extend(probe.delta(&before, &after, bytes));
    Ok(out)
}

/// Fan-out: reads partition 0 of `topic` (low to high watermark) once with one consumer, then
/// with `consumers` consumers at once (each its own client and `group.id`), and reports both
/// throughputs and their ratio.
pub fn fan_out(
    opts: &ReadOptions,
    topic: &str,
    consumers: usize,
    probe: &BrokerProbe,
) -> anyhow::Result<Vec<(String, Value)>> {
    let (low, high) = watermarks(&opts.bootstrap, topic, 0)?;
    if high <= low {
        bail!("{topic}/0 is empty (watermarks {low}..{high})");
    }
    let count = u64::try_from(high - low)?;
    let single = read_range(opts, "bench-fanout-single", topic, 0, low, count)?;

    let before = probe.sample();
    let barrier = Arc::new(Barrier::new(consumers + 1));
    let readers: Vec<_> = (0..consumers)
        .map(|i| {
            let (opts, topic, barrier) = (opts.clone(), topic.to_string(), barrier.clone());
            thread::spawn(move || -> anyhow::Result<ReadOutcome> {
                barrier.wait();
                read_range(&opts, &format!("bench-fanout-{i}"), &topic, 0, low, count)
            })
        })
        .collect();
    barrier.wait();
    let mut total_bytes = 0u64;
    let mut slowest = Duration::ZERO;
    let mut errors = Vec::new();
    for reader in readers {
        match reader.join() {
            Ok(Ok(o)) => {
                total_bytes += o.bytes;
                slowest = slowest.max(o.elapsed);
            }
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(_) => errors.push("reader panicked".to_string()),
        }
    }
    // Every reader starts at the barrier, so the slowest reader's time is the wall time.
    let wall = slowest;
    let after = probe.sample();
    if let Some(first) = errors.first() {
        bail!(
            "{} of {consumers} fan-out readers failed; first: {first}",
            errors.len()
        );
    }
    let single_mb_s = mb_per_s(single.bytes, single.elapsed.as_secs_f64());
    let aggregate_mb_s = mb_per_s(total_bytes, wall.as_secs_f64());
    let mut out = vec![
        ("consumers".to_string(), json!(consumers)),
        ("partition_bytes".to_string(), json!(single.bytes)),
        ("single_mb_per_s".to_string(), json!(single_mb_s)),
        ("aggregate_mb_per_s".to_string(), json!(aggregate_mb_s)),
        ("aggregate_secs".to_string(), json!(wall.as_secs_f64())),
        (
            "speedup".to_string(),
            json!(if single_mb_s > 0.0 {
                aggregate_mb_s / single_mb_s
            } else {
                0.0
            }),
        ),
    ];
    out.extend(probe.delta(&before, &after, total_bytes));
    Ok(out)
}
