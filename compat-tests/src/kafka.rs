//! rdkafka helpers: client configurations, topic administration, a producer that records every
//! delivery report, and an assign-based consumer.
//!
//! Consumers here are positioned with `assign()` and explicit offsets, never subscribe and never
//! commit (`group.id` is set only because librdkafka insists on one); subscribing, committing
//! group members are in [`crate::group`]. All timeouts are short so a broken broker fails a test
//! quickly.

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Settings shared by every client: IPv4 loopback and short socket/reconnect timeouts.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "50")
        .set("log_level", "4");
    config
}

/// A producer configuration with the given `acks` ("0", "1" or "all"), 5 ms linger, no
/// idempotence (so that every acks level is allowed; idempotent producers have their own
/// tests, `tests/idempotence.rs`) and a 30 s message timeout.
pub fn producer_config(bootstrap: &str, acks: &str) -> ClientConfig {
    let mut config = base_config(bootstrap);
    config
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("enable.idempotence", "false")
        .set("request.timeout.ms", "10000")
        .set("message.timeout.ms", "30000");
    config
}

/// A consumer configuration for assign-based reading: a placeholder `group.id`, no auto commit,
/// no offset store, no topic auto-creation, and a 100 ms fetch wait so polls return promptly.
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = base_config(bootstrap);
    config
        .set("group.id", "distlog-compat-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "100");
    config
}

/// Runs an admin future to completion on a throwaway current-thread runtime.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

fn admin(bootstrap: &str) -> anyhow::Result<(AdminClient<DefaultClientContext>, AdminOptions)> {
    let client: AdminClient<DefaultClientContext> =
        base_config(bootstrap).create().context("create AdminClient")?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    Ok((client, options))
}

/// Creates `name` with `partitions` partitions and replication factor 1 through CreateTopics.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    create_topic_with_config(bootstrap, name, partitions, &[])
}

/// Like [`create_topic`], with topic configs (e.g. `max.message.bytes`).
pub fn create_topic_with_config(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    config: &[(&str, &str)],
) -> anyhow::Result<()> {
    create_topic_replicated(bootstrap, name, partitions, 1, config)
}

/// Like [`create_topic_with_config`], with replication factor `rf` (on
/// distlog: `rf` copies on `rf` bookies, acknowledged by a majority).
pub fn create_topic_replicated(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    rf: i32,
    config: &[(&str, &str)],
) -> anyhow::Result<()> {
    let (client, options) = admin(bootstrap)?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for (k, v) in config {
        topic = topic.set(k, v);
    }
    let results = block_on(client.create_topics([&topic], &options))?
        .with_context(|| format!("CreateTopics {name}"))?;
    for result in results {
        if let Err((topic, code)) = result {
            bail!("CreateTopics {topic} failed: {code:?}");
        }
    }
    Ok(())
}

/// Deletes `name` through DeleteTopics.
pub fn delete_topic(bootstrap: &str, name: &str) -> anyhow::Result<()> {
    let (client, options) = admin(bootstrap)?;
    let results =
        block_on(client.delete_topics(&[name], &options))?.with_context(|| format!("DeleteTopics {name}"))?;
    for result in results {
        if let Err((topic, code)) = result {
            bail!("DeleteTopics {topic} failed: {code:?}");
        }
    }
    Ok(())
}

/// Fetches metadata (all topics when `topic` is `None`) with a client that never asks the broker
/// to auto-create topics, so looking does not change what is seen.
pub fn fetch_metadata(bootstrap: &str, topic: Option<&str>) -> anyhow::Result<Metadata> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().context("create consumer")?;
    consumer
        .fetch_metadata(topic, Duration::from_secs(10))
        .context("fetch metadata")
}

/// A record to produce, with everything a Kafka record can carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestRecord {
    /// The key (`None` = null key).
    pub key: Option<Vec<u8>>,
    /// The value (`None` = null value / tombstone).
    pub payload: Option<Vec<u8>>,
    /// Headers in order; a `None` value is a null header value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Explicit CreateTime timestamp in ms; `None` lets the producer stamp it.
    pub timestamp: Option<i64>,
}

impl TestRecord {
    /// A record with only a value.
    pub fn value(payload: impl Into<Vec<u8>>) -> TestRecord {
        TestRecord {
            payload: Some(payload.into()),
            ..TestRecord::default()
        }
    }
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// librdkafka's error code, when the error carries one.
    pub code: Option<RDKafkaErrorCode>,
    /// The error as text.
    pub message: String,
}

/// One delivery report: which message (`id`, the index given at send) and where it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The caller's message id.
    pub id: usize,
    /// The partition reported.
    pub partition: i32,
    /// The assigned offset (-1 for acks=0, where the broker reports none), or why it failed.
    pub result: Result<i64, DeliveryError>,
}

/// A producer context that records every delivery report; the delivery opaque is the message id.
#[derive(Debug, Default)]
pub struct RecordingContext {
    deliveries: Mutex<Vec<Delivery>>,
    /// When set, librdkafka's log lines are kept here too (with `debug`
    /// set in the configuration, e.g. `eos`, they tell why the idempotent
    /// producer drained, bumped its epoch or reset its producer id).
    client_log: Option<Mutex<Vec<String>>>,
}

impl ClientContext for RecordingContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if let Some(log) = &self.client_log {
            let line = format!("{level:?} {fac} {log_message}");
            log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
}

impl ProducerContext for RecordingContext {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Self::DeliveryOpaque) {
        let delivery = match result {
            Ok(msg) => Delivery {
                id: *id,
                partition: msg.partition(),
                result: Ok(msg.offset()),
            },
            Err((err, msg)) => Delivery {
                id: *id,
                partition: msg.partition(),
                result: Err(DeliveryError {
                    code: err.rdkafka_error_code(),
                    message: err.to_string(),
                }),
            },
        };
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivery);
    }
}

impl RecordingContext {
    /// A context that also keeps librdkafka's log lines ([`take_log`](Self::take_log)).
    pub fn with_client_log() -> RecordingContext {
        RecordingContext {
            client_log: Some(Mutex::new(Vec::new())),
            ..RecordingContext::default()
        }
    }

    /// Removes and returns the kept librdkafka log lines.
    pub fn take_log(&self) -> Vec<String> {
        self.client_log.as_ref().map_or_else(Vec::new, |l| {
            std::mem::take(&mut *l.lock().unwrap_or_else(|e| e.into_inner()))
        })
    }

    /// Removes and returns the reports received so far, in arrival order.
    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.deliveries.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A producer whose delivery reports are kept in its [`RecordingContext`].
pub type RecordingProducer = BaseProducer<RecordingContext>;

/// Creates a [`RecordingProducer`] from `config`.
pub fn recording_producer(config: &ClientConfig) -> anyhow::Result<RecordingProducer> {
    config
        .create_with_context(RecordingContext::default())
        .context("create producer")
}

/// Enqueues `record` as message `id`, polling to make room while the local queue is full
/// (for at most 30 s).
pub fn send_record(
    producer: &RecordingProducer,
    topic: &str,
    partition: Option<i32>,
    id: usize,
    record: &TestRecord,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut base = BaseRecord::<[u8], [u8], Box<usize>>::with_opaque_to(topic, Box::new(id));
        if let Some(p) = partition {
            base = base.partition(p);
        }
        if let Some(k) = &record.key {
            base = base.key(k.as_slice());
        }
        if let Some(v) = &record.payload {
            base = base.payload(v.as_slice());
        }
        if let Some(ts) = record.timestamp {
            base = base.timestamp(ts);
        }
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: value.as_deref(),
                });
            }
            base = base.headers(headers);
        }
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                if started.elapsed() < Duration::from_secs(30) =>
            {
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e).with_context(|| format!("enqueue message {id}")),
        }
    }
}

/// Produces `records` (ids = indexes) with a fresh producer, flushes within `timeout`, and
/// returns exactly one delivery report per record, sorted by id.
pub fn produce_records(
    config: &ClientConfig,
    topic: &str,
    partition: Option<i32>,
    records: &[TestRecord],
    timeout: Duration,
) -> anyhow::Result<Vec<Delivery>> {
    let producer = recording_producer(config)?;
    for (id, record) in records.iter().enumerate() {
        send_record(&producer, topic, partition, id, record)?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(timeout).context("flush producer")?;
    let mut deliveries = producer.context().take();
    deliveries.sort_by_key(|d| d.id);
    ensure!(
        deliveries.len() == records.len(),
        "{} delivery reports for {} messages",
        deliveries.len(),
        records.len()
    );
    Ok(deliveries)
}

/// A consumed record, detached from the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Partition read from.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub payload: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The timestamp and its type.
    pub timestamp: Timestamp,
}

impl ConsumedRecord {
    /// Copies everything out of a borrowed message.
    pub fn from_message(msg: &BorrowedMessage<'_>) -> ConsumedRecord {
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        ConsumedRecord {
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: msg.timestamp(),
        }
    }
}

/// Creates a consumer from `config` assigned to `topic`/`partition` at `offset`.
pub fn assigned_consumer(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    offset: Offset,
) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = config.create().context("create consumer")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset)
        .context("build assignment")?;
    consumer.assign(&tpl).context("assign")?;
    Ok(consumer)
}

/// Polls `consumer` until `n` records arrived or `timeout` passed (an error reporting how many
/// did arrive). Consumer errors are returned immediately.
pub fn poll_n(consumer: &BaseConsumer, n: usize, timeout: Duration) -> anyhow::Result<Vec<ConsumedRecord>> {
    poll_until(consumer, n, timeout, false)
}

/// Whether a consumer error only reports a broker connection failing: librdkafka reconnects
/// (or moves to another broker) by itself, so in a cluster where a node just died these are
/// expected and not fatal, as for any Kafka application.
pub fn is_transport_error(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
        )
    )
}

/// [`poll_n`] for a cluster with nodes down or restarting: connection failures
/// ([`is_transport_error`]) are tolerated (the last one is named if `timeout` passes);
/// any other consumer error is returned immediately.
pub fn poll_n_across_failures(
    consumer: &BaseConsumer,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<ConsumedRecord>> {
    poll_until(consumer, n, timeout, true)
}

/// The loop of [`poll_n`] and [`poll_n_across_failures`].
fn poll_until(
    consumer: &BaseConsumer,
    n: usize,
    timeout: Duration,
    tolerate_transport_errors: bool,
) -> anyhow::Result<Vec<ConsumedRecord>> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(n);
    let mut last_transport_error = None;
    while out.len() < n {
        let remaining = timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            bail!(
                "received {} of {n} records within {timeout:?} (last offset {:?}, last connection \
                 error {:?})",
                out.len(),
                out.last().map(|r: &ConsumedRecord| r.offset),
                last_transport_error
            );
        }
        match consumer.poll(remaining.min(Duration::from_millis(200))) {
            Some(Ok(msg)) => out.push(ConsumedRecord::from_message(&msg)),
            Some(Err(e)) if tolerate_transport_errors && is_transport_error(&e) => {
                last_transport_error = Some(e.to_string());
            }
            Some(Err(e)) => return Err(e).context(format!("consumer error after {} records", out.len())),
            None => {}
        }
    }
    Ok(out)
}

/// [`consume_n`] for a cluster with nodes down or restarting (see [`poll_n_across_failures`]).
pub fn consume_n_across_failures(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from_offset: i64,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<ConsumedRecord>> {
    let consumer = assigned_consumer(
        &consumer_config(bootstrap),
        topic,
        partition,
        Offset::Offset(from_offset),
    )?;
    poll_n_across_failures(&consumer, n, timeout)
}

/// Reads exactly `n` records of `topic`/`partition` starting at `from_offset` with a fresh
/// assign-based consumer, failing if they do not all arrive within `timeout`.
pub fn consume_n(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from_offset: i64,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<ConsumedRecord>> {
    consume_n_with(
        &consumer_config(bootstrap),
        topic,
        partition,
        from_offset,
        n,
        timeout,
    )
}

/// [`consume_n`] with a caller-supplied consumer configuration.
pub fn consume_n_with(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    from_offset: i64,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<ConsumedRecord>> {
    let consumer = assigned_consumer(config, topic, partition, Offset::Offset(from_offset))?;
    poll_n(&consumer, n, timeout)
}

/// Asserts nothing more arrives on `consumer` for `quiet` (used to prove "exactly n").
pub fn expect_no_more(consumer: &BaseConsumer, quiet: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => bail!("unexpected extra record at offset {}", msg.offset()),
            Some(Err(e)) => return Err(e).context("consumer error"),
            None => thread::yield_now(),
        }
    }
    Ok(())
}

/// Low and high watermarks of a partition.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().context("create consumer")?;
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .context("fetch watermarks")
}

/// A deterministic payload of `len` bytes for message `i` (so corruption shows as a mismatch).
pub fn patterned_payload(i: usize, len: usize) -> Vec<u8> {
    let prefix = format!("msg-{i:08}-");
    let mut out = Vec::with_capacity(len);
    out.extend(prefix.bytes().take(len));
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(b'a' + (x % 26) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterned_payloads_are_deterministic_and_distinct() {
        assert_eq!(patterned_payload(3, 40), patterned_payload(3, 40));
        assert_ne!(patterned_payload(3, 40), patterned_payload(4, 40));
        assert_eq!(patterned_payload(1, 5).len(), 5);
        assert!(patterned_payload(7, 100).starts_with(b"msg-00000007-"));
    }
}
