//! `distlog-loadgen`: a librdkafka-based load generator for distlog (or any Kafka broker).
//!
//! Produce mode (default) sends `--messages` values of `--size` bytes round-robin over
//! `--partitions` partitions and reports throughput and the distribution of ack latency (send to
//! delivery report). `--consume` reads the same number of messages back from the beginning of
//! every partition and reports throughput. Exits non-zero if any message fails.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use distlog_compat_tests::kafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "distlog-loadgen", about = "librdkafka load generator for distlog")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic to produce to / consume from (created with --partitions if missing).
    #[arg(long, default_value = "loadgen")]
    topic: String,
    /// Number of messages to produce (or to consume with --consume).
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Producer acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Number of partitions (topic creation, and round-robin target).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Producer compression.type (none, gzip, snappy, lz4, zstd).
    #[arg(long, default_value = "none")]
    compression: String,
    /// Consume instead of produce.
    #[arg(long)]
    consume: bool,
    /// Give up if the run takes longer than this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// Records ack latency (µs) and failures from delivery reports; the opaque is the send instant.
#[derive(Default)]
struct LatencyContext {
    latencies_us: Mutex<Vec<u64>>,
    failures: Mutex<Vec<String>>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                let us = u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.latencies_us
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(us);
            }
            Err((e, _)) => self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(e.to_string()),
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn report(kind: &str, messages: usize, bytes: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!("{kind}: {messages} messages, {bytes} bytes in {secs:.3} s");
    println!(
        "{kind} throughput: {:.0} msgs/s, {:.2} MB/s",
        messages as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

fn ensure_topic(args: &Args) -> anyhow::Result<()> {
    match kafka::create_topic(&args.bootstrap, &args.topic, args.partitions) {
        Ok(()) => Ok(()),
        Err(e) if format!("{e:#}").contains("TopicAlreadyExists") => Ok(()),
        Err(e) => Err(e),
    }
}

fn produce(args: &Args) -> anyhow::Result<()> {
    ensure_topic(args)?;
    let mut config: ClientConfig = kafka::producer_config(&args.bootstrap, &args.acks);
    config
        .set("linger.ms", args.linger_ms.to_string())
        .set("compression.type", &args.compression)
        .set("message.timeout.ms", "60000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576");
    let producer: BaseProducer<LatencyContext> = config
        .create_with_context(LatencyContext::default())
        .context("create producer")?;
    let value = kafka::patterned_payload(0, args.size);
    let deadline = Duration::from_secs(args.timeout_secs);
    let started = Instant::now();
    for i in 0..args.messages {
        let partition = i32::try_from(i % usize::try_from(args.partitions.max(1)).context("partitions")?)?;
        loop {
            let record = BaseRecord::with_opaque_to(&args.topic, Box::new(Instant::now()))
                .partition(partition)
                .payload(value.as_slice())
                .key(&[] as &[u8]);
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if started.elapsed() > deadline {
                        bail!("timed out after {deadline:?} with the local queue full");
                    }
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e).context("enqueue"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    let remaining = deadline.saturating_sub(started.elapsed());
    producer
        .flush(remaining)
        .context("flush (not all messages acknowledged in time)")?;
    let elapsed = started.elapsed();

    let ctx = producer.context();
    let failures = std::mem::take(&mut *ctx.failures.lock().unwrap_or_else(|e| e.into_inner()));
    let mut latencies = std::mem::take(&mut *ctx.latencies_us.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_unstable();
    report("produce", latencies.len(), latencies.len() * args.size, elapsed);
    println!(
        "ack latency (acks={}, send to delivery report, incl. time queued in the client): \
         p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
        args.acks,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 99.9),
        percentile(&latencies, 100.0)
    );
    if !failures.is_empty() {
        bail!("{} messages failed; first: {}", failures.len(), failures[0]);
    }
    Ok(())
}

fn consume(args: &Args) -> anyhow::Result<()> {
    let mut config = kafka::consumer_config(&args.bootstrap);
    config
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", "262144");
    let consumer: BaseConsumer = config.create().context("create consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions {
        tpl.add_partition_offset(&args.topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assign")?;
    let deadline = Duration::from_secs(args.timeout_secs);
    let started = Instant::now();
    let (mut count, mut bytes) = (0usize, 0usize);
    let mut first_at = None;
    while count < args.messages {
        if started.elapsed() > deadline {
            bail!(
                "consumed {count} of {} messages within {deadline:?}",
                args.messages
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                first_at.get_or_insert_with(Instant::now);
                count += 1;
                bytes += msg.payload().map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => return Err(e).context("consume"),
            None => {}
        }
    }
    // Measured from the first message, so connection setup is not counted.
    let elapsed = first_at.map(|t| t.elapsed()).unwrap_or_default();
    report("consume", count, bytes, elapsed);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if args.consume {
        consume(&args)
    } else {
        produce(&args)
    }
}
