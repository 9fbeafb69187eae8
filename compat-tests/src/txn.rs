//! Kafka transactions through real clients: a transactional rdkafka producer that records its
//! delivery reports and classifies the errors librdkafka raises (fatal, abortable, retriable),
//! reading a partition to its end under either isolation level (read_committed stops at the last
//! stable offset and drops aborted records; read_uncommitted reads to the high watermark), the
//! last stable offset as ListOffsets with `isolation_level = 1` answers it, the transaction
//! coordinator as FindCoordinator with key type 1 names it, the history checker that turns
//! what transactional producers were told into named anomalies, and the consume-transform-produce
//! application (`distlog-txn-app`) as a child process with its exactly-once check.
//!
//! Transaction markers are control batches that take an offset in every partition a transaction
//! wrote to; no client ever returns them, so offsets read back skip one number per marker.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
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
use serde_json::Value;

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

/// What a transactional producer was told about one of its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// `commit_transaction` returned Ok: every record must be visible to read_committed.
    Committed,
    /// `abort_transaction` returned Ok: no record may be visible.
    Aborted,
    /// An error left the outcome open: all records or none may be visible, never some.
    Unknown,
}

/// One transaction of a history: its name, what its producer was told, and the values it wrote.
#[derive(Debug, Clone)]
pub struct TxnRecord {
    /// A name for reports, e.g. `p2-t7`.
    pub name: String,
    /// What the producer was told.
    pub outcome: TxnOutcome,
    /// Every value the transaction wrote (values are unique across the history).
    pub values: Vec<String>,
}

/// One violation of transactional guarantees found by [`find_anomalies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// A record of a committed transaction is not visible to read_committed.
    LostCommittedWrite {
        /// The transaction.
        txn: String,
        /// The missing values.
        missing: Vec<String>,
    },
    /// A record of an aborted transaction is visible to read_committed.
    AbortedRead {
        /// The transaction.
        txn: String,
        /// The visible values.
        visible: Vec<String>,
    },
    /// Some but not all of a transaction's records are visible.
    TornTransaction {
        /// The transaction.
        txn: String,
        /// What its producer was told.
        outcome: TxnOutcome,
        /// How many of its records are visible.
        visible: usize,
        /// How many it wrote.
        written: usize,
    },
    /// A value is visible more than once.
    Duplicate {
        /// The value.
        value: String,
        /// Where it is: (partition, offset) of each copy.
        at: Vec<(i32, i64)>,
    },
    /// A visible value no transaction of the history wrote.
    UnknownValue {
        /// The value.
        value: String,
        /// (partition, offset).
        at: (i32, i64),
    },
}

impl Anomaly {
    /// The anomaly's name, as reports use it.
    pub fn name(&self) -> &'static str {
        match self {
            Anomaly::LostCommittedWrite { .. } => "lost committed write",
            Anomaly::AbortedRead { .. } => "aborted read",
            Anomaly::TornTransaction { .. } => "torn transaction",
            Anomaly::Duplicate { .. } => "duplicate",
            Anomaly::UnknownValue { .. } => "unknown value",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostCommittedWrite { txn, missing } => {
                write!(
                    f,
                    "{}: {txn} committed, but {missing:?} are not visible",
                    self.name()
                )
            }
            Anomaly::AbortedRead { txn, visible } => {
                write!(f, "{}: {txn} aborted, but {visible:?} are visible", self.name())
            }
            Anomaly::TornTransaction {
                txn,
                outcome,
                visible,
                written,
            } => write!(
                f,
                "{}: {txn} ({outcome:?}) has {visible} of its {written} records visible",
                self.name()
            ),
            Anomaly::Duplicate { value, at } => {
                write!(
                    f,
                    "{}: {value} is visible {} times, at {at:?}",
                    self.name(),
                    at.len()
                )
            }
            Anomaly::UnknownValue { value, at } => {
                write!(
                    f,
                    "{}: {value} at {at:?} was written by no transaction",
                    self.name()
                )
            }
        }
    }
}

/// Checks `history` against what read_committed shows (`visible`: (partition, offset, value)),
/// returning every anomaly: lost committed writes, aborted reads, torn transactions (some but
/// not all records visible, whatever the producer was told), duplicates and unknown values.
pub fn find_anomalies(history: &[TxnRecord], visible: &[(i32, i64, String)]) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut seen: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (partition, offset, value) in visible {
        seen.entry(value.as_str())
            .or_default()
            .push((*partition, *offset));
    }
    let mut known: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for txn in history {
        let (shown, missing): (Vec<&String>, Vec<&String>) =
            txn.values.iter().partition(|v| seen.contains_key(v.as_str()));
        known.extend(txn.values.iter().map(String::as_str));
        match txn.outcome {
            TxnOutcome::Committed if !missing.is_empty() => anomalies.push(Anomaly::LostCommittedWrite {
                txn: txn.name.clone(),
                missing: missing.iter().map(|v| (*v).clone()).collect(),
            }),
            TxnOutcome::Aborted if !shown.is_empty() => anomalies.push(Anomaly::AbortedRead {
                txn: txn.name.clone(),
                visible: shown.iter().map(|v| (*v).clone()).collect(),
            }),
            _ => {}
        }
        if !shown.is_empty() && !missing.is_empty() {
            anomalies.push(Anomaly::TornTransaction {
                txn: txn.name.clone(),
                outcome: txn.outcome,
                visible: shown.len(),
                written: txn.values.len(),
            });
        }
    }
    for (value, at) in &seen {
        if at.len() > 1 {
            anomalies.push(Anomaly::Duplicate {
                value: (*value).to_string(),
                at: at.clone(),
            });
        }
        if !known.contains(value) {
            anomalies.push(Anomaly::UnknownValue {
                value: (*value).to_string(),
                at: at[0],
            });
        }
    }
    anomalies
}

/// The consume-transform-produce application (`distlog-txn-app`) in a child process: its stdout
/// (JSON lines) is collected, and it is killed and reaped when dropped.
pub struct TxnApp {
    child: Child,
    lines: Receiver<String>,
    /// Every JSON line it printed so far, in order.
    pub events: Vec<Value>,
}

impl fmt::Debug for TxnApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnApp").field("pid", &self.child.id()).finish()
    }
}

impl TxnApp {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_distlog-txn-app")`) with `args`; its
    /// stderr is inherited.
    pub fn spawn(binary: &Path, args: &[String]) -> anyhow::Result<TxnApp> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(TxnApp {
            child,
            lines: rx,
            events: Vec::new(),
        })
    }

    /// Reads the app's lines until `accept` takes one (returned), within `deadline`; an
    /// `"error"` event, the app's exit or the deadline is an error naming `what`.
    pub fn wait_for(
        &mut self,
        what: &str,
        deadline: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                bail!(
                    "the app did not report {what} within {deadline:?}; last events: {:?}",
                    self.recent()
                );
            }
            match self.lines.recv_timeout(remaining.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let value: Value =
                        serde_json::from_str(&line).with_context(|| format!("the app printed {line:?}"))?;
                    self.events.push(value.clone());
                    if value["event"] == "error" {
                        bail!("the app failed: {value}");
                    }
                    if accept(&value) {
                        return Ok(value);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                    "the app exited ({:?}) before reporting {what}; last events: {:?}",
                    self.child.try_wait(),
                    self.recent()
                ),
            }
        }
    }

    fn recent(&self) -> &[Value] {
        &self.events[self.events.len().saturating_sub(10)..]
    }

    /// The highest `total` of its `committed` events: records it committed since it started.
    pub fn committed_total(&self) -> u64 {
        self.events
            .iter()
            .filter(|v| v["event"] == "committed")
            .filter_map(|v| v["total"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Kills the app with SIGKILL and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("SIGKILL the app")?;
        self.child.wait().context("reap the app")?;
        Ok(())
    }

    /// Waits for the app to exit by itself within `deadline` and returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("wait for the app")? {
                return Ok(status);
            }
            if started.elapsed() >= deadline {
                bail!("the app did not exit within {deadline:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TxnApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command line of `distlog-txn-app` for these topics, group and transactional id.
pub fn txn_app_args(
    bootstrap: &str,
    (input, output, group, transactional_id): (&str, &str, &str, &str),
    batch_size: usize,
    pause_before_commit_ms: u64,
    timeout_secs: u64,
) -> Vec<String> {
    [
        "--bootstrap",
        bootstrap,
        "--input",
        input,
        "--output",
        output,
        "--group",
        group,
        "--transactional-id",
        transactional_id,
        "--batch-size",
        &batch_size.to_string(),
        "--pause-before-commit-ms",
        &pause_before_commit_ms.to_string(),
        "--timeout-secs",
        &timeout_secs.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

/// Writes `m` unique input values `in-{i:05}` to `input` (value i to partition i % `partitions`,
/// keyed `k{partition}`) with an acks=all producer; returns each partition's values in order.
pub fn fill_input(
    bootstrap: &str,
    input: &str,
    partitions: i32,
    m: usize,
) -> anyhow::Result<BTreeMap<i32, Vec<String>>> {
    let mut per_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..m {
        let p = i32::try_from(i).context("input size")? % partitions;
        per_partition.entry(p).or_default().push(format!("in-{i:05}"));
    }
    for (p, vals) in &per_partition {
        let records: Vec<TestRecord> = vals
            .iter()
            .map(|v| TestRecord {
                key: Some(format!("k{p}").into_bytes()),
                payload: Some(v.clone().into_bytes()),
                ..TestRecord::default()
            })
            .collect();
        let deliveries = kafka::produce_records(
            &kafka::producer_config(bootstrap, "all"),
            input,
            Some(*p),
            &records,
            Duration::from_secs(60),
        )?;
        if let Some(failed) = deliveries.iter().find(|d| d.result.is_err()) {
            bail!("input record not written: {failed:?}");
        }
    }
    Ok(per_partition)
}

/// The exactly-once check of a consume-transform-produce run: read read_committed, the output
/// holds `out-<v>` for every input value v exactly once, in input order per partition (the app
/// keeps partitions), and the group's committed offsets are the input's end offsets. Returns how
/// many records read_uncommitted sees in the output (more than the input when aborted
/// transactions left records behind).
pub fn verify_exactly_once_output(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    per_partition: &BTreeMap<i32, Vec<String>>,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let partitions: Vec<i32> = per_partition.keys().copied().collect();
    let out = read_to_end(bootstrap, output, &partitions, Isolation::ReadCommitted, timeout)
        .context("read the output read_committed")?;
    let mut seen: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    for (p, records) in &out {
        for r in records {
            let v = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned();
            seen.entry(v).or_default().push((*p, r.offset));
        }
    }
    let duplicates: Vec<(&String, &Vec<(i32, i64)>)> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    if !duplicates.is_empty() {
        bail!(
            "{} output values appear more than once (value, (partition, offset)...): {:?}",
            duplicates.len(),
            &duplicates[..duplicates.len().min(10)]
        );
    }
    for (p, inputs) in per_partition {
        let expected: Vec<String> = inputs.iter().map(|v| format!("out-{v}")).collect();
        let got = values(out.get(p).map_or(&[][..], Vec::as_slice));
        let missing: Vec<&String> = expected
            .iter()
            .filter(|v| !seen.contains_key(v.as_str()))
            .collect();
        if !missing.is_empty() {
            bail!(
                "output partition {p} lacks {} of its {} inputs (lost), first: {:?}",
                missing.len(),
                expected.len(),
                &missing[..missing.len().min(10)]
            );
        }
        if got != expected {
            let first = got.iter().zip(&expected).position(|(a, b)| a != b);
            bail!(
                "output partition {p} is not its input in order: {} values for {}, first difference at {first:?}",
                got.len(),
                expected.len()
            );
        }
    }
    let committed = crate::group::committed_for_group(bootstrap, group, input, &partitions)?;
    let ends: BTreeMap<i32, Option<i64>> = per_partition
        .iter()
        .map(|(p, v)| (*p, i64::try_from(v.len()).ok()))
        .collect();
    if committed != ends {
        bail!("the group's committed offsets {committed:?} are not the input's end offsets {ends:?}");
    }
    let raw = read_to_end(
        bootstrap,
        output,
        &partitions,
        Isolation::ReadUncommitted,
        timeout,
    )
    .context("read the output read_uncommitted")?;
    Ok(raw.values().map(Vec::len).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(name: &str, outcome: TxnOutcome, values: &[&str]) -> TxnRecord {
        TxnRecord {
            name: name.to_string(),
            outcome,
            values: values.iter().map(|v| (*v).to_string()).collect(),
        }
    }

    fn at(values: &[&str]) -> Vec<(i32, i64, String)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (0, i as i64, (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let history = [
            txn("c", TxnOutcome::Committed, &["c1", "c2"]),
            txn("a", TxnOutcome::Aborted, &["a1"]),
            txn("u1", TxnOutcome::Unknown, &["u1"]),
            txn("u2", TxnOutcome::Unknown, &["u2", "u3"]),
        ];
        assert_eq!(find_anomalies(&history, &at(&["c1", "u2", "c2", "u3"])), vec![]);
    }

    #[test]
    fn names_every_anomaly() {
        let history = [
            txn("c", TxnOutcome::Committed, &["c1", "c2"]),
            txn("a", TxnOutcome::Aborted, &["a1", "a2"]),
            txn("u", TxnOutcome::Unknown, &["u1", "u2"]),
            txn("d", TxnOutcome::Committed, &["d1"]),
        ];
        let found = find_anomalies(&history, &at(&["c1", "a1", "a2", "u1", "d1", "d1", "zz"]));
        let names: Vec<&str> = found.iter().map(Anomaly::name).collect();
        assert_eq!(
            names,
            vec![
                "lost committed write",
                "torn transaction",
                "aborted read",
                "torn transaction",
                "duplicate",
                "unknown value"
            ],
            "{found:?}"
        );
        assert_eq!(
            found[0],
            Anomaly::LostCommittedWrite {
                txn: "c".into(),
                missing: vec!["c2".into()]
            }
        );
        assert_eq!(
            found[4],
            Anomaly::Duplicate {
                value: "d1".into(),
                at: vec![(0, 4), (0, 5)]
            }
        );
    }
}
