//! Produce: validate each partition's record batch, apply the topic's
//! record policy (recompression into its `compression.type`, timestamp
//! bounds, LogAppendTime; `records::policy`), append it to the partition's
//! stream (the namespace stamps offsets and leader epoch), and answer with
//! the assigned base offset once the ack quorum has it.
//!
//! Appends of one connection are queued in request order; their
//! acknowledgements are awaited concurrently. acks=1
//! and acks=-1 both wait for the ack quorum (docs/architecture.md, "The produce path"); acks=0 performs the
//! appends and sends no response.

use bytes::{Bytes, BytesMut};
use distlog_storage::log::AppendRequest;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use distlog_metadata::StreamId;

use crate::error::storage_error;
use crate::producer::failed::FailedBatches;
use crate::producer::state::BatchIdentity;
use crate::producer::ProducerStateError;
use crate::records::{self, BatchError, BatchSpan, RecordPolicy};
use crate::server::connection::Turn;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (3, 9);

/// First produce version allowed to carry zstd batches (KIP-110).
const ZSTD_MIN_VERSION: i16 = 7;

/// Handle a produce request. `None` when acks=0 (no response is sent).
///
/// Validation runs first and concurrently with other requests; then, in
/// the connection's order (`turn`: after every earlier produce queued its
/// appends and every other earlier request applied its effects), every
/// partition's records are queued to their streams, which lets later
/// produces queue theirs; only then are the acknowledgements awaited, and
/// the turn is held (later non-produce requests wait) until they are in.
pub async fn handle(
    broker: &Broker,
    version: i16,
    req: ProduceRequest,
    mut turn: Turn,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    if !acks_valid(acks) {
        // Kafka refuses every partition and still answers.
        let responses = req
            .topic_data
            .into_iter()
            .map(|t| {
                let parts = t
                    .partition_data
                    .iter()
                    .map(|p| failed(p.index, ResponseError::InvalidRequiredAcks, None, version))
                    .collect();
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_partition_responses(parts)
            })
            .collect();
        return Some(ProduceResponse::default().with_responses(responses));
    }

    let max_batch = crate::broker_config::message_max_bytes(&broker.config, &broker.meta);
    let transactional_id = req.transactional_id.as_ref().map(|t| t.to_string());
    let topics = detach(req);
    let mut names: Vec<TopicName> = Vec::with_capacity(topics.len());
    let mut prepared = Vec::new();
    let now = wall_clock_ms();
    for (t, (name, parts)) in topics.into_iter().enumerate() {
        for (index, records) in parts {
            let p = prepare_partition(broker, version, &name, index, records, max_batch, now);
            prepared.push((t, index, p));
        }
        names.push(name);
    }
    verify_transactional(broker, version, transactional_id.as_deref(), &mut prepared).await;

    // Queue the appends in the connection's request order. LogAppendTime
    // batches are stamped here, in that order, with the time of queueing.
    turn.wait().await;
    let append_time = wall_clock_ms();
    let mut pending = Vec::with_capacity(prepared.len());
    for (t, index, p) in prepared {
        let queued = match p {
            Ok(mut p) => {
                let log_append_time = p.log_append_time.then_some(append_time);
                if let Some(now) = log_append_time {
                    stamp_append_time(&mut p.append, now);
                }
                let origin = Origin {
                    stream: p.stream,
                    batch: BatchIdentity::of(&p.append.payload),
                };
                Ok((
                    broker.ns.submit_append(p.stream, p.append).await,
                    log_append_time,
                    origin,
                ))
            }
            Err(resp) => Err(resp),
        };
        pending.push((t, index, queued));
    }
    turn.queued();

    let results = join_all(pending.into_iter().map(|(t, index, queued)| async move {
        let resp = match queued {
            Err(resp) => *resp,
            Ok((Err(e), _, origin)) => append_failed(broker, &origin, index, e, version),
            Ok((Ok(ticket), log_append_time, origin)) => match ticket.wait().await {
                Ok(r) => {
                    if let Some(b) = &origin.batch {
                        broker.failed_batches.written(origin.stream, b.producer_id);
                    }
                    PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(r.base_offset as i64)
                        .with_log_append_time_ms(log_append_time.unwrap_or(-1))
                        .with_log_start_offset(r.log_start_offset as i64)
                }
                Err(e) => append_failed(broker, &origin, index, e, version),
            },
        };
        (t, resp)
    }))
    .await;
    if acks == 0 {
        return None;
    }
    Some(assemble(names, results))
}

/// One partition of a produce after validation: its append, or its answer.
type Prepared = Result<PreparedAppend, Box<PartitionProduceResponse>>;

/// KIP-890 verification of every transactional batch before it is queued
/// (`crate::producer::verify`): a partition not in the producer's open
/// transaction is answered with the refusal instead of being appended.
async fn verify_transactional(
    broker: &Broker,
    version: i16,
    transactional_id: Option<&str>,
    prepared: &mut [(usize, i32, Prepared)],
) {
    let checks = prepared.iter().enumerate().filter_map(|(i, (_, index, p))| {
        let p = p.as_ref().ok()?;
        let h = crate::records::BatchHeader::parse(&p.append.payload).ok()?;
        if h.attributes & crate::records::batch::TRANSACTIONAL_BIT == 0 {
            return None;
        }
        let stream = p.stream;
        let index = *index;
        Some(async move {
            let verdict = crate::producer::verify::verify_partition(
                broker,
                transactional_id,
                stream,
                h.producer_id,
                h.producer_epoch,
            )
            .await;
            (i, index, verdict)
        })
    });
    for (i, index, verdict) in join_all(checks).await {
        if let Err(e) = verdict {
            tracing::debug!(partition = index, error = ?e, "transactional produce refused by verification");
            prepared[i].2 = Err(Box::new(failed(index, e, None, version)));
        }
    }
}

/// Whether the test-only fault (`DISTLOG_TEST_DROP_PRODUCE_RESPONSES`,
/// off by default) drops this answer: a produce that appended something
/// then loses its connection instead of its answer, with the configured
/// probability, as a network fault between the write and the answer would.
pub fn test_fault_drops(broker: &Broker, resp: &ProduceResponse) -> bool {
    let p = broker.config.test_drop_produce_responses;
    if p <= 0.0 {
        return false;
    }
    let appended = resp
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .any(|r| r.error_code == 0);
    appended && rand::random::<f64>() < p
}

/// A partition index and its records, detached from the request.
type PartitionRecords = (i32, Option<Bytes>);

/// Take the partitions' record bytes out of a decoded request and let go
/// of everything else that points into the request frame (topic names are
/// copied: they are a few bytes). A single-partition request's records are
/// then the frame's only owner, so turning them into the mutable payload
/// the writer stamps costs no copy; with several partitions sharing one
/// frame, each partition's batch is copied once.
fn detach(req: ProduceRequest) -> Vec<(TopicName, Vec<PartitionRecords>)> {
    req.topic_data
        .into_iter()
        .map(|t| {
            let name = TopicName(StrBytes::from_string(t.name.as_str().to_owned()));
            let parts = t
                .partition_data
                .into_iter()
                .map(|p| (p.index, p.records))
                .collect();
            (name, parts)
        })
        .collect()
}

/// Whether `acks` is one Kafka accepts (0, 1 or -1 = all).
pub fn acks_valid(acks: i16) -> bool {
    (-1..=1).contains(&acks)
}

/// The wall-clock time in milliseconds (Kafka's `time.milliseconds()`).
fn wall_clock_ms() -> i64 {
    i64::try_from(distlog_metadata::now_ms()).unwrap_or(i64::MAX)
}

/// One partition's append, ready to queue.
struct PreparedAppend {
    stream: StreamId,
    append: AppendRequest,
    /// The topic is LogAppendTime: stamp the batch when it is queued.
    log_append_time: bool,
}

/// Set a LogAppendTime batch's max timestamp and type bit (in place, crc
/// recomputed), and make the append's txid follow that time.
fn stamp_append_time(append: &mut AppendRequest, now: i64) {
    if let Err(e) = records::stamp_log_append_time(&mut append.payload[..], now) {
        // The payload was validated: it frames. Nothing to do but say so.
        tracing::error!(error = %e, "stamping LogAppendTime on a payload that does not frame");
    }
    append.max_timestamp = now;
}

/// Resolve and validate one partition's records and apply the topic's
/// record policy (read from the topic's current configs): the stream and
/// the append to queue, or the partition's error response.
fn prepare_partition(
    broker: &Broker,
    version: i16,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    max_batch: usize,
    now: i64,
) -> Result<PreparedAppend, Box<PartitionProduceResponse>> {
    let (stream, max_batch, policy) = match broker.resolve(topic, index) {
        Ok((meta, stream)) => (
            stream,
            topic_max_message_bytes(&meta.configs).unwrap_or(max_batch),
            RecordPolicy::from_configs(&meta.configs),
        ),
        Err(e) => return Err(Box::new(failed(index, e, None, version))),
    };
    let refused = |e: BatchError| {
        tracing::debug!(topic, partition = index, error = %e, "produce refused");
        crate::metrics::PRODUCE_REFUSED
            .with_label_values(&[refusal_label(&e)])
            .inc();
        Box::new(refused_partition(index, e, version))
    };
    let checked = check_records(version, records, max_batch).map_err(refused)?;
    let applied = policy
        .apply(checked.payload, &checked.batch, max_batch, now)
        .map_err(refused)?;
    if applied.recompressed {
        tracing::trace!(
            topic,
            partition = index,
            from = checked.batch.header.compression(),
            to = ?policy.codec,
            bytes_in = checked.batch.len,
            bytes_out = applied.payload.len(),
            "batch recompressed into the topic's compression.type"
        );
        crate::metrics::RECOMPRESSED_BATCHES.inc();
        crate::metrics::RECOMPRESSED_BYTES.inc_by(applied.payload.len() as u64);
    }
    Ok(PreparedAppend {
        stream,
        append: AppendRequest {
            payload: applied.payload,
            record_count: checked.record_count,
            max_timestamp: checked.max_timestamp,
        },
        log_append_time: applied.log_append_time,
    })
}

/// The `distlog_produce_refused_batches_total` label of a refusal.
fn refusal_label(e: &BatchError) -> &'static str {
    match e {
        BatchError::InvalidTimestamp(_) => "invalid_timestamp",
        BatchError::TooLarge { .. } | BatchError::PayloadTooLarge(_) => "too_large",
        BatchError::Decompress(_)
        | BatchError::CrcMismatch { .. }
        | BatchError::Truncated { .. }
        | BatchError::BadLength(_)
        | BatchError::UnknownCompression(_) => "corrupt",
        _ => "invalid",
    }
}

/// The answer of a partition whose records were refused: the error code,
/// its message (v8+) and, for timestamps, Kafka's per-record errors.
fn refused_partition(index: i32, e: BatchError, version: i16) -> PartitionProduceResponse {
    match e {
        BatchError::InvalidTimestamp(errors) => {
            let resp = failed(
                index,
                ResponseError::InvalidTimestamp,
                Some(records::policy::INVALID_TIMESTAMP_MESSAGE.to_string()),
                version,
            );
            let record_errors = errors
                .into_iter()
                .map(|(batch_index, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(batch_index)
                        .with_batch_index_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
            // record_errors exist from v8, like error_message.
            if version >= 8 {
                resp.with_record_errors(record_errors)
            } else {
                resp
            }
        }
        e => failed(index, e.kafka_error(), Some(e.to_string()), version),
    }
}

/// Where a queued append came from: its stream and, for an idempotent
/// batch, the batch's producer identity.
struct Origin {
    stream: StreamId,
    batch: Option<BatchIdentity>,
}

/// The response of a partition whose append failed in storage (see
/// [`failure_answer`]).
fn append_failed(
    broker: &Broker,
    origin: &Origin,
    index: i32,
    e: distlog_storage::StorageError,
    version: i16,
) -> PartitionProduceResponse {
    let (code, message) = failure_answer(&broker.failed_batches, origin, &e, std::time::Instant::now());
    failed(index, code, Some(message), version)
}

/// The error code and message answered for a failed append. An idempotent
/// batch's retriable failure is remembered, and a batch refused as out of
/// order only because the batch before it failed that way gets that
/// failure's error instead (`crate::producer::failed`).
fn failure_answer(
    failed_batches: &FailedBatches,
    origin: &Origin,
    e: &distlog_storage::StorageError,
    now: std::time::Instant,
) -> (ResponseError, String) {
    let code = storage_error(e);
    if let Some(b) = &origin.batch {
        if let Some(ProducerStateError::OutOfOrderSequence { expected, .. }) = refusal_of(e) {
            if let Some(earlier) = failed_batches.explain_gap(origin.stream, b, *expected, now) {
                tracing::info!(
                    stream = %origin.stream,
                    producer_id = b.producer_id,
                    epoch = b.epoch,
                    first_seq = b.first_seq,
                    expected,
                    error = ?earlier,
                    "batch behind a failed one answered with that failure's error, not OUT_OF_ORDER_SEQUENCE_NUMBER"
                );
                crate::metrics::PRODUCE_GAPS_EXPLAINED.inc();
                let message = format!(
                    "sequence {} follows sequence {expected}, whose batch failed with {earlier:?}: \
                     send that batch again first",
                    b.first_seq
                );
                return (earlier, message);
            }
        } else {
            failed_batches.failed(origin.stream, b, code, now);
        }
    }
    tracing::warn!(stream = %origin.stream, error = %e, "append failed");
    (code, e.to_string())
}

/// The producer-state rule that refused an append, if that is why it failed.
fn refusal_of(e: &distlog_storage::StorageError) -> Option<&ProducerStateError> {
    match e {
        distlog_storage::StorageError::Refused(r) => r.downcast_ref::<ProducerStateError>(),
        _ => None,
    }
}

/// The topic's `max.message.bytes` override, when it sets a valid one.
pub fn topic_max_message_bytes(configs: &std::collections::BTreeMap<String, String>) -> Option<usize> {
    crate::topic_config::max_message_bytes_override(configs)
}

/// A validated partition payload, ready to append.
#[derive(Debug)]
pub struct CheckedRecords {
    /// The batch bytes, owned mutably for stamping (no copy when the
    /// request's buffer was not shared).
    pub payload: BytesMut,
    /// Records in the payload.
    pub record_count: u32,
    /// Largest record timestamp (CreateTime).
    pub max_timestamp: i64,
    /// The payload's one batch: where it lies and its header.
    pub batch: BatchSpan,
}

/// Apply Kafka's produce checks to one partition's records: present, one
/// v2 batch, zstd only from v7, then the batch checks of
/// [`records::validate`]. Converts the bytes to `BytesMut` without copying
/// when this request holds the only reference to them.
pub fn check_records(
    version: i16,
    records: Option<Bytes>,
    max_batch: usize,
) -> Result<CheckedRecords, BatchError> {
    let bytes = records.ok_or(BatchError::NoBatch)?;
    let v = records::validate(&bytes, max_batch)?;
    if v.batches.len() > 1 {
        return Err(BatchError::MultipleBatches);
    }
    if version < ZSTD_MIN_VERSION && v.batches.iter().any(|b| b.header.compression() == 4) {
        return Err(BatchError::ZstdNotAllowed);
    }
    let batch = *v.batches.first().ok_or(BatchError::NoBatch)?;
    Ok(CheckedRecords {
        payload: BytesMut::from(bytes),
        record_count: v.record_count,
        max_timestamp: v.max_timestamp,
        batch,
    })
}

/// A partition response carrying an error (offsets -1, as Kafka sends).
fn failed(
    index: i32,
    error: ResponseError,
    message: Option<String>,
    version: i16,
) -> PartitionProduceResponse {
    let resp = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    // error_message exists from v8 (older versions drop it when encoding).
    match message {
        Some(m) if version >= 8 => resp.with_error_message(Some(StrBytes::from_string(m))),
        _ => resp,
    }
}

/// Group per-partition answers under their topics, in request order.
fn assemble(names: Vec<TopicName>, results: Vec<(usize, PartitionProduceResponse)>) -> ProduceResponse {
    let mut topics: Vec<TopicProduceResponse> = names
        .into_iter()
        .map(|n| TopicProduceResponse::default().with_name(n))
        .collect();
    for (t, resp) in results {
        if let Some(topic) = topics.get_mut(t) {
            topic.partition_responses.push(resp);
        }
    }
    ProduceResponse::default().with_responses(topics)
}

#[cfg(test)]
#[path = "produce_tests.rs"]
mod tests;
