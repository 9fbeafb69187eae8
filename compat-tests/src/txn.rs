//! Kafka transactions through real clients: a transactional rdkafka producer that records its
//! delivery reports and classifies the errors librdkafka raises (fatal, abortable, retriable),
//! reading a partition to its end under either isolation level (read_committed stops at the last
//! stable offset and drops aborted records; read_uncommitted reads to the high watermark), the
//! last stable offset as ListOffsets with `isolation_level = 1` answers it, the transaction
//! coordinator as FindCoordinator with key type 1 names it. The history checker that turns what
//! transactional producers were told into named anomalies is in [`crate::txn_checker`]; the
//! consume-transform-produce application (`distlog-txn-app`) as a child process, with its
//! exactly-once check, is in [`crate::txn_app`].
//!
//! Transaction markers are control batches that take an offset in every partition a transaction
//! wrote to; no client ever returns them, so offsets read back skip one number per marker.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, ListOffsetsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::{self, ConsumedRecord, Delivery, RecordingProducer, TestRecord};
use crate::raw::{self, Conn};

/// How long one transactional call (init, commit, abort, send offsets) may block by default.
pub const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A transactional producer configuration: idempotence on (which transactions require), acks=all,
/// 5 requests in flight, `transactional.id` = `transactional_id`, and both
/// `transaction.timeout.ms` and `message.timeout.ms` set to `transaction_timeout_ms` (librdkafka
/// refuses a message timeout longer than the transaction timeout, and a socket timeout longer
/// than it, so that is capped at the transaction timeout as well).
pub fn transactional_config(
    bootstrap: &str,
    transactional_id: &str,
    transaction_timeout_ms: u64,
) -> ClientConfig {
    let mut config = kafka::producer_config(bootstrap, "all");
    config
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "5")
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", transaction_timeout_ms.to_string())
        .set("message.timeout.ms", transaction_timeout_ms.to_string())
        .set(
            "socket.timeout.ms",
            transaction_timeout_ms.min(10_000).to_string(),
        );
    config
}

/// How librdkafka reported a failed transactional call: the error code and its classification.
/// Fatal: the producer instance is unusable (fenced, for one). Abortable: the transaction must be
/// aborted, then the producer can go on. Retriable: the same call may be made again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnFailure {
    /// librdkafka's error code, when the error carries one.
    pub code: Option<RDKafkaErrorCode>,
    /// `rd_kafka_error_is_fatal`.
    pub fatal: bool,
    /// `rd_kafka_error_txn_requires_abort`.
    pub abortable: bool,
    /// `rd_kafka_error_is_retriable`.
    pub retriable: bool,
    /// The error as text.
    pub message: String,
}

impl TxnFailure {
    /// Classifies `e`. Transactional calls return [`KafkaError::Transaction`], which carries the
    /// classification; the flush before a commit timing out is retriable (the commit may be
    /// called again); any other error is neither fatal nor abortable nor retriable as far as the
    /// producer has said.
    pub fn from_error(e: &KafkaError) -> TxnFailure {
        match e {
            KafkaError::Transaction(rd) => TxnFailure {
                code: Some(rd.code()),
                fatal: rd.is_fatal(),
                abortable: rd.txn_requires_abort(),
                retriable: rd.is_retriable(),
                message: e.to_string(),
            },
            // rdkafka's commit_transaction flushes first and returns a flush that timed out as
            // is; librdkafka's own commit reports the same situation as a retriable timeout.
            KafkaError::Flush(code) => TxnFailure {
                code: Some(*code),
                fatal: false,
                abortable: false,
                retriable: true,
                message: e.to_string(),
            },
            other => TxnFailure {
                code: other.rdkafka_error_code(),
                fatal: false,
                abortable: false,
                retriable: false,
                message: other.to_string(),
            },
        }
    }

    /// Whether the code says the producer was fenced by a newer one with its transactional id
    /// (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, or librdkafka's own `_FENCED`).
    pub fn is_fenced(&self) -> bool {
        matches!(
            self.code,
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
            )
        )
    }
}

impl fmt::Display for TxnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (code {:?}, fatal {}, abortable {}, retriable {})",
            self.message, self.code, self.fatal, self.abortable, self.retriable
        )
    }
}

impl std::error::Error for TxnFailure {}

/// Runs a transactional call and classifies its error.
fn txn_call(result: Result<(), KafkaError>) -> Result<(), TxnFailure> {
    result.map_err(|e| TxnFailure::from_error(&e))
}

/// A transactional producer (`transactional.id` set) whose delivery reports are recorded; each
/// message gets the next id, counted from 0 over the producer's life.
pub struct TxnProducer {
    producer: RecordingProducer,
    next_id: usize,
}

impl fmt::Debug for TxnProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnProducer")
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl TxnProducer {
    /// Creates the producer from `config` (see [`transactional_config`]); nothing is sent until
    /// [`init`](Self::init).
    pub fn create(config: &ClientConfig) -> anyhow::Result<TxnProducer> {
        Ok(TxnProducer {
            producer: kafka::recording_producer(config)?,
            next_id: 0,
        })
    }

    /// `init_transactions`: fences older producers with the same transactional id (aborting a
    /// transaction they left open) and takes a producer id and epoch.
    pub fn init(&self, timeout: Duration) -> Result<(), TxnFailure> {
        txn_call(self.producer.init_transactions(timeout))
    }

    /// `begin_transaction` (local to the client).
    pub fn begin(&self) -> Result<(), TxnFailure> {
        txn_call(self.producer.begin_transaction())
    }

    /// Enqueues a record with `key` and `value` to `partition` of `topic` inside the open
    /// transaction; returns the message id its delivery report will carry.
    pub fn send(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> anyhow::Result<usize> {
        let id = self.next_id;
        let record = TestRecord {
            key: key.map(<[u8]>::to_vec),
            payload: Some(value.to_vec()),
            ..TestRecord::default()
        };
        kafka::send_record(&self.producer, topic, Some(partition), id, &record)?;
        self.next_id += 1;
        self.producer.poll(Duration::ZERO);
        Ok(id)
    }

    /// Waits until every enqueued record has its delivery report (within `timeout`).
    pub fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        self.producer
            .flush(timeout)
            .context("flush the transactional producer")
    }

    /// `send_offsets_to_transaction`: the group's offsets commit with the transaction.
    pub fn send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), TxnFailure> {
        txn_call(self.producer.send_offsets_to_transaction(offsets, group, timeout))
    }

    /// `commit_transaction` (flushes first); returns once the coordinator has durably decided
    /// to commit (the markers may still be on their way).
    pub fn commit(&self, timeout: Duration) -> Result<(), TxnFailure> {
        txn_call(self.producer.commit_transaction(timeout))
    }

    /// `abort_transaction`. librdkafka purges the transaction's outstanding messages and waits
    /// until their delivery reports are served, which a `BaseProducer` only does when polled, so
    /// a thread polls the producer while the abort runs.
    pub fn abort(&self, timeout: Duration) -> Result<(), TxnFailure> {
        let aborted = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                while !aborted.load(Ordering::Acquire) {
                    self.producer.poll(Duration::from_millis(10));
                }
            });
            let result = self.producer.abort_transaction(timeout);
            aborted.store(true, Ordering::Release);
            txn_call(result)
        })
    }

    /// Removes and returns the delivery reports received so far, sorted by message id.
    pub fn take_deliveries(&self) -> Vec<Delivery> {
        self.producer.poll(Duration::ZERO);
        let mut out = self.producer.context().take();
        out.sort_by_key(|d| d.id);
        out
    }

    /// The underlying rdkafka producer.
    pub fn inner(&self) -> &RecordingProducer {
        &self.producer
    }
}

/// The two isolation levels of a Kafka consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Data below the last stable offset only, without the records of aborted transactions.
    ReadCommitted,
    /// Everything up to the high watermark, aborted records included (markers never show).
    ReadUncommitted,
}

impl Isolation {
    /// The `isolation.level` setting.
    pub fn config_value(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }

    /// The protocol's `isolation_level` (Fetch, ListOffsets): 1 for read_committed, 0 otherwise.
    pub fn protocol_level(self) -> i8 {
        match self {
            Isolation::ReadCommitted => 1,
            Isolation::ReadUncommitted => 0,
        }
    }
}

/// An assign-based consumer configuration ([`kafka::consumer_config`]) with `isolation.level`
/// set explicitly (librdkafka's default is read_committed).
pub fn isolated_consumer_config(bootstrap: &str, isolation: Isolation) -> ClientConfig {
    let mut config = kafka::consumer_config(bootstrap);
    config.set("isolation.level", isolation.config_value());
    config
}

/// The end a consumer at `isolation` reads to, per partition: ListOffsets (latest) through
/// librdkafka, which sends the consumer's isolation level, so read_committed answers the last
/// stable offset and read_uncommitted the high watermark.
pub fn end_offsets(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    isolation: Isolation,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = isolated_consumer_config(bootstrap, isolation)
        .create()
        .context("create consumer")?;
    let mut out = BTreeMap::new();
    for p in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .with_context(|| format!("ListOffsets {topic}/{p} ({})", isolation.config_value()))?;
        out.insert(*p, high);
    }
    Ok(out)
}

/// Reads `partitions` of `topic` from offset 0 to the end ([`end_offsets`] taken first) with one
/// assign-based consumer at `isolation`, within `timeout`. The end is reached when the
/// consumer's position (which moves past markers and aborted records as well) is at the end
/// offset. Connection errors are tolerated (nodes may be restarting); any other consumer error
/// fails. Returns each partition's records in offset order.
pub fn read_to_end(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    isolation: Isolation,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<i32, Vec<ConsumedRecord>>> {
    let ends = end_offsets(bootstrap, topic, partitions, isolation)?;
    read_range(bootstrap, topic, &ends, isolation, timeout)
}

/// [`read_to_end`] with the end offsets given.
pub fn read_range(
    bootstrap: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    isolation: Isolation,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<i32, Vec<ConsumedRecord>>> {
    let consumer: BaseConsumer = isolated_consumer_config(bootstrap, isolation)
        .create()
        .context("create consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Offset(0))
            .context("build assignment")?;
    }
    consumer.assign(&tpl).context("assign")?;
    let mut out: BTreeMap<i32, Vec<ConsumedRecord>> = ends.keys().map(|p| (*p, Vec::new())).collect();
    let started = Instant::now();
    let mut last_transport_error = None;
    loop {
        let positions = positions(&consumer, topic)?;
        let behind: Vec<(i32, Option<i64>, i64)> = ends
            .iter()
            .filter(|(p, end)| positions.get(p).copied().flatten().unwrap_or(0) < **end)
            .map(|(p, end)| (*p, positions.get(p).copied().flatten(), *end))
            .collect();
        if behind.is_empty() {
            return Ok(out);
        }
        if started.elapsed() >= timeout {
            bail!(
                "{topic} ({}): not read to the end within {timeout:?}: (partition, position, end) \
                 {behind:?}; records read per partition {:?}; last connection error {last_transport_error:?}",
                isolation.config_value(),
                out.iter().map(|(p, r)| (*p, r.len())).collect::<Vec<_>>()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let record = ConsumedRecord::from_message(&msg);
                out.entry(record.partition).or_default().push(record);
            }
            Some(Err(e)) if kafka::is_transport_error(&e) => last_transport_error = Some(e.to_string()),
            Some(Err(e)) => return Err(e).context("consumer error"),
            None => {}
        }
    }
}

/// The consumer's position per partition of `topic` (`None` before it has one).
fn positions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<HashMap<i32, Option<i64>>> {
    let tpl = consumer.position().context("consumer position")?;
    Ok(tpl
        .elements_for_topic(topic)
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.partition(), offset)
        })
        .collect())
}

/// The values of `records` as text, in order.
pub fn values(records: &[ConsumedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// (offset, value) of each of `records`, in order.
pub fn offsets_and_values(records: &[ConsumedRecord]) -> Vec<(i64, String)> {
    records.iter().map(|r| r.offset).zip(values(records)).collect()
}

/// The last stable offset of `topic`/`partition` as the broker at `addr` (the partition's
/// owner) answers ListOffsets v5 for the latest offset with `isolation_level = 1`.
pub fn last_stable_offset(addr: SocketAddr, topic: &str, partition: i32) -> anyhow::Result<i64> {
    list_latest(addr, topic, partition, Isolation::ReadCommitted)
}

/// ListOffsets v5 for the latest offset of `topic`/`partition` at `isolation`, asked of the
/// broker at `addr`: the last stable offset (read_committed) or the high watermark.
pub fn list_latest(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    isolation: Isolation,
) -> anyhow::Result<i64> {
    let mut conn = Conn::open(addr, "distlog-compat-txn").context("connect")?;
    let request =
        raw::latest_offset_request(topic, partition).with_isolation_level(isolation.protocol_level());
    let response: ListOffsetsResponse = conn
        .call(ApiKey::ListOffsets, 5, &request)
        .context("ListOffsets v5")?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .with_context(|| format!("ListOffsets answered no partition: {response:?}"))?;
    if p.error_code != 0 {
        bail!(
            "ListOffsets {topic}/{partition} ({}) failed with error code {}",
            isolation.config_value(),
            p.error_code
        );
    }
    Ok(p.offset)
}

/// The transaction coordinator of `transactional_id` as the broker at `addr` names it through
/// FindCoordinator v3 with key type 1: (node id, host, port).
pub fn find_transaction_coordinator(
    addr: SocketAddr,
    transactional_id: &str,
) -> anyhow::Result<(i32, String, i32)> {
    let mut conn = Conn::open(addr, "distlog-compat-txn").context("connect")?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(transactional_id.to_string()))
        .with_key_type(1);
    let response: FindCoordinatorResponse = conn
        .call(ApiKey::FindCoordinator, 3, &request)
        .context("FindCoordinator v3")?;
    if response.error_code != 0 {
        bail!(
            "FindCoordinator(transaction, {transactional_id}) failed with error code {} ({:?})",
            response.error_code,
            response.error_message
        );
    }
    Ok((response.node_id.0, response.host.to_string(), response.port))
}
