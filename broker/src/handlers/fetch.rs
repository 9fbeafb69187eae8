//! Fetch: a long poll over the requested partitions' streams.
//!
//! Reads are gathered for every partition; the response goes out as soon as
//! the records found reach `min_bytes`, any partition has an error, or
//! `max_wait_ms` has elapsed. Until then the handler sleeps on the
//! partitions' high-watermark watches and reads again when one moves.
//!
//! Sizes follow KIP-74: partitions are filled in request order within the
//! response's `max_bytes` and each partition's `partition_max_bytes`, in
//! whole record batches, except that the first batch of the first non-empty
//! partition is returned even when it is larger than both, so a consumer
//! always makes progress. The writer coalesces appends into entries of many
//! batches, so entries are cut at batch boundaries
//! ([`crate::records::take_batches`]), starting with the batch that holds
//! the fetch offset. Records are slices of the stored entry payloads, never
//! re-encoded or copied.
//!
//! Fetch sessions (KIP-227) are not kept: every fetch is a full fetch and
//! the response's `session_id` is 0, which tells a client asking for a new
//! session that none was created (as a Kafka broker with a full session
//! cache answers). An incremental fetch on a session therefore gets
//! FETCH_SESSION_ID_NOT_FOUND, upon which clients fall back to full fetches.

use std::time::Duration;

use bytes::Bytes;
use distlog_storage::log::StreamHandle;
use distlog_storage::StorageError;
use futures::future::{join_all, select_all};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use tokio::sync::watch;
use tokio::time::Instant;

use super::fetch_encode::FetchRecords;
use super::leader_epoch::{checked_epoch, confirm_owner, open_stream};
use crate::error::read_storage_error;
use crate::producer::with_partition;
use crate::records::take_batches_below;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (4, 12);

/// `isolation_level` of a read_committed fetch.
const READ_COMMITTED: i8 = 1;

/// First version whose partitions carry `current_leader_epoch` (KIP-320).
const LEADER_EPOCH_MIN_VERSION: i16 = 9;

/// Longest long poll honoured, whatever the client asks (guards against a
/// request parking a task for days).
const MAX_WAIT_CAP: Duration = Duration::from_secs(300);

/// Handle a fetch request (long poll up to max_wait_ms).
pub async fn handle(broker: &Broker, version: i16, req: FetchRequest) -> FetchReply {
    // Sessions (and the top-level error code) exist from v7.
    let session = if version >= 7 {
        check_session(req.session_id, req.session_epoch)
    } else {
        Ok(())
    };
    if let Err(e) = session {
        return FetchReply {
            response: FetchResponse::default()
                .with_error_code(e.code())
                .with_session_id(0),
            records: Vec::new(),
        };
    }
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = req.max_bytes.max(0) as usize;
    let read_committed = req.isolation_level == READ_COMMITTED;

    let mut names = Vec::with_capacity(req.topics.len());
    let mut slots = Vec::new();
    for (t, topic) in req.topics.into_iter().enumerate() {
        for p in topic.partitions {
            let target = broker
                .resolve(&topic.topic, p.partition)
                .map(|(_, stream)| stream);
            let leader_epoch = if version >= LEADER_EPOCH_MIN_VERSION {
                p.current_leader_epoch
            } else {
                -1
            };
            slots.push(async move {
                PartitionFetch {
                    topic: t,
                    partition: p.partition,
                    target: match target {
                        Ok(stream) => open_stream(broker, stream, leader_epoch).await,
                        Err(e) => Err(e),
                    },
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                    leader_epoch,
                    read_committed,
                }
            });
        }
        names.push(topic.topic);
    }
    // Each partition's stream is resolved once for the whole request, and
    // its leader epoch checked once: a mismatch is an immediate answer.
    let mut slots = join_all(slots).await;
    for s in &mut slots {
        fence_slot(broker, s);
    }

    // Subscribe before the first read so no high-watermark move between the
    // read and the wait is missed.
    let mut watches = if min_bytes > 0 && !wait.is_zero() {
        subscribe(&slots)
    } else {
        Vec::new()
    };
    loop {
        let mut outcomes = join_all(slots.iter().map(|s| read_slot(s, max_bytes))).await;
        recheck_past_end(broker, &slots, &mut outcomes).await;
        let assembled = assemble(&outcomes, max_bytes);
        if assembled.bytes >= min_bytes || assembled.errors || Instant::now() >= deadline {
            return respond(names, &slots, assembled.partitions, assembled.records);
        }
        if !wait_for_change(&mut watches, deadline).await {
            let mut outcomes = join_all(slots.iter().map(|s| read_slot(s, max_bytes))).await;
            recheck_past_end(broker, &slots, &mut outcomes).await;
            let assembled = assemble(&outcomes, max_bytes);
            return respond(names, &slots, assembled.partitions, assembled.records);
        }
    }
}

/// A fetch past the end of the stream this node serves is answered
/// OFFSET_OUT_OF_RANGE (and the consumer resets its position) only once a
/// metadata read barrier confirms this node still owns the stream at the
/// epoch it serves; otherwise NOT_LEADER_OR_FOLLOWER (the consumer looks
/// the leader up again). A node cut off from the metadata quorum may still
/// serve a stream it lost: the new owner has written past its end, and a
/// consumer whose cached leader epoch regressed (librdkafka takes an older
/// epoch from a stale Metadata answer after a leaderless one) must not be
/// sent back to offset 0 (campaign seed 5037).
async fn recheck_past_end(broker: &Broker, slots: &[PartitionFetch], outcomes: &mut [PartitionRead]) {
    for (slot, outcome) in slots.iter().zip(outcomes.iter_mut()) {
        let PartitionRead::Error {
            error: ResponseError::OffsetOutOfRange,
            bounds: Some((_, end)),
        } = outcome
        else {
            continue;
        };
        let past_end = u64::try_from(slot.fetch_offset).is_ok_and(|o| o > *end);
        if !past_end {
            continue;
        }
        let Ok(stream) = slot.target.as_ref() else {
            continue;
        };
        if confirm_owner(broker, stream).await != Some(true) {
            tracing::info!(
                stream = %stream.id(),
                fetch_offset = slot.fetch_offset,
                end = *end,
                "fetch past the end of a stream this node may no longer own: NOT_LEADER_OR_FOLLOWER, not OFFSET_OUT_OF_RANGE"
            );
            *outcome = PartitionRead::Error {
                error: ResponseError::NotLeaderOrFollower,
                bounds: None,
            };
        }
    }
}

/// Accept only sessionless full fetches (epoch -1) and requests to open a
/// session (epoch 0), which get a full fetch without one. Anything else
/// names a session this broker never created.
pub fn check_session(session_id: i32, session_epoch: i32) -> Result<(), ResponseError> {
    let _ = session_id;
    match session_epoch {
        -1 | 0 => Ok(()),
        _ => Err(ResponseError::FetchSessionIdNotFound),
    }
}

/// One requested partition.
struct PartitionFetch {
    /// Index of its topic in the request.
    topic: usize,
    partition: i32,
    /// The stream, resolved once for the request, or the error to answer
    /// for this partition.
    target: Result<StreamHandle, ResponseError>,
    fetch_offset: i64,
    max_bytes: usize,
    leader_epoch: i32,
    /// `isolation_level` READ_COMMITTED: data only below the last stable
    /// offset, with the aborted transactions.
    read_committed: bool,
}

/// Check the partition's `current_leader_epoch` (v9+; -1 skips it); a
/// mismatch or a stream this node does not own becomes the slot's error.
fn fence_slot(broker: &Broker, slot: &mut PartitionFetch) {
    let Ok(stream) = &slot.target else { return };
    if slot.leader_epoch < 0 {
        return;
    }
    if let Err(e) = checked_epoch(broker, stream, slot.leader_epoch) {
        slot.target = Err(e);
    }
}

fn subscribe(slots: &[PartitionFetch]) -> Vec<watch::Receiver<u64>> {
    let streams = slots.iter().filter_map(|s| s.target.as_ref().ok());
    streams
        .filter_map(|s| s.watch_high_watermark().ok())
        .map(|mut rx| {
            rx.mark_unchanged();
            rx
        })
        .collect()
}

/// Sleep until a watched high watermark moves (`true`) or the deadline
/// passes (`false`). A watch whose sender is gone ends the wait (`false`)
/// rather than spinning.
async fn wait_for_change(watches: &mut [watch::Receiver<u64>], deadline: Instant) -> bool {
    if watches.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    let changed = select_all(watches.iter_mut().map(|rx| Box::pin(rx.changed())));
    tokio::select! {
        (res, _, _) = changed => res.is_ok() && Instant::now() < deadline,
        _ = tokio::time::sleep_until(deadline) => false,
    }
}

/// What one partition's read produced.
#[derive(Debug, Clone)]
pub enum PartitionRead {
    /// Committed entries (possibly none) and the stream's bounds.
    Data {
        /// Stored payloads, in order, from the entry holding the fetch offset.
        entries: Vec<Bytes>,
        /// The offset fetched from (batches ending before it are skipped).
        fetch_offset: i64,
        /// The partition's byte limit (`min(partition_max_bytes, max_bytes)`).
        limit: usize,
        /// The stream's high watermark at read time.
        high_watermark: u64,
        /// The stream's log start offset at read time.
        log_start_offset: u64,
        /// The last stable offset at read time (≤ the high watermark).
        last_stable_offset: u64,
        /// Whether the fetch is read_committed: records from the last
        /// stable offset on are left out.
        read_committed: bool,
        /// read_committed: the aborted transactions overlapping the
        /// offsets read, (producer id, first offset), oldest first.
        aborted: Vec<(i64, u64)>,
    },
    /// An error, with the stream's bounds when known.
    Error {
        /// The partition's error code.
        error: ResponseError,
        /// (log start offset, high watermark), filled for OFFSET_OUT_OF_RANGE.
        bounds: Option<(u64, u64)>,
    },
}

async fn read_slot(slot: &PartitionFetch, max_bytes: usize) -> PartitionRead {
    let stream = match slot.target.as_ref() {
        Ok(s) => s,
        Err(&error) => return PartitionRead::Error { error, bounds: None },
    };
    let limit = slot.max_bytes.min(max_bytes);
    let result = match u64::try_from(slot.fetch_offset) {
        Ok(offset) => stream.read(offset, limit).await,
        Err(_) => match stream.bounds() {
            Ok((start, end)) => Err(StorageError::OffsetOutOfRange {
                offset: 0,
                start,
                end,
            }),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(r) => {
            let hw = r.high_watermark;
            let read_end = r
                .entries
                .last()
                .map_or(hw, |e| e.first_seq + u64::from(e.record_count));
            let from = u64::try_from(slot.fetch_offset).unwrap_or(0);
            let (last_stable_offset, aborted) = with_partition(stream, |p| {
                let lso = p.last_stable_offset(hw);
                let aborted = if slot.read_committed {
                    p.aborted_between(from, lso.min(read_end))
                        .into_iter()
                        .map(|a| (a.producer_id, a.first_offset))
                        .collect()
                } else {
                    Vec::new()
                };
                (lso, aborted)
            })
            .unwrap_or((hw, Vec::new()));
            PartitionRead::Data {
                entries: r.entries.into_iter().map(|e| e.payload).collect(),
                fetch_offset: slot.fetch_offset,
                limit,
                high_watermark: hw,
                log_start_offset: r.log_start_offset,
                last_stable_offset,
                read_committed: slot.read_committed,
                aborted,
            }
        }
        Err(StorageError::OffsetOutOfRange { start, end, .. }) => PartitionRead::Error {
            error: ResponseError::OffsetOutOfRange,
            bounds: Some((start, end)),
        },
        Err(e) => PartitionRead::Error {
            error: read_storage_error(&e),
            bounds: None,
        },
    }
}

/// The partitions of a response under construction.
#[derive(Debug)]
pub struct Assembled {
    /// One entry per requested partition, in request order (without the
    /// partition index, which the caller fills in). `records` is left null:
    /// the stored bytes travel beside it, in `records` below.
    pub partitions: Vec<PartitionData>,
    /// Each partition's record chunks (runs of whole batches sliced from
    /// the stored entries), not copied.
    pub records: Vec<Vec<Bytes>>,
    /// Record bytes included in total.
    pub bytes: usize,
    /// Whether any partition carries an error.
    pub errors: bool,
}

/// Turn read outcomes into partition data under the KIP-74 size rules:
/// each partition gets whole record batches, from the one holding its fetch
/// offset, while they fit both its own limit (`partition_max_bytes`) and
/// what is left of `max_bytes`; the first batch of the first non-empty
/// partition is always included.
pub fn assemble(outcomes: &[PartitionRead], max_bytes: usize) -> Assembled {
    let mut partitions = Vec::with_capacity(outcomes.len());
    let mut records = Vec::with_capacity(outcomes.len());
    let mut remaining = max_bytes;
    let mut bytes = 0usize;
    let mut errors = false;
    for outcome in outcomes {
        let pd = match outcome {
            PartitionRead::Data {
                entries,
                fetch_offset,
                limit,
                high_watermark,
                log_start_offset,
                last_stable_offset,
                read_committed,
                aborted,
            } => {
                let limit = (*limit).min(remaining);
                let end = if *read_committed {
                    *last_stable_offset as i64
                } else {
                    i64::MAX
                };
                let taken = take_batches_below(entries, *fetch_offset, limit, bytes == 0, end);
                remaining = remaining.saturating_sub(taken.bytes);
                bytes += taken.bytes;
                records.push(taken.chunks);
                data(*high_watermark, *last_stable_offset, *log_start_offset, aborted)
            }
            PartitionRead::Error { error, bounds } => {
                errors = true;
                let (start, hw) = match bounds {
                    Some((s, h)) => (*s as i64, *h as i64),
                    None => (-1, -1),
                };
                records.push(Vec::new());
                PartitionData::default()
                    .with_error_code(error.code())
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(start)
                    .with_records(None)
            }
        };
        partitions.push(pd);
    }
    Assembled {
        partitions,
        records,
        bytes,
        errors,
    }
}

/// Partition data without error, with its watermarks and (read_committed)
/// the aborted transactions of the offsets read; no preferred replica.
fn data(
    high_watermark: u64,
    last_stable_offset: u64,
    log_start_offset: u64,
    aborted: &[(i64, u64)],
) -> PartitionData {
    let aborted = aborted
        .iter()
        .map(|&(producer_id, first_offset)| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(producer_id))
                .with_first_offset(first_offset as i64)
        })
        .collect();
    PartitionData::default()
        .with_high_watermark(high_watermark as i64)
        .with_last_stable_offset(last_stable_offset as i64)
        .with_log_start_offset(log_start_offset as i64)
        .with_aborted_transactions(Some(aborted))
        .with_preferred_read_replica((-1).into())
        .with_records(None)
}

fn respond(
    names: Vec<kafka_protocol::messages::TopicName>,
    slots: &[PartitionFetch],
    partitions: Vec<PartitionData>,
    records: Vec<Vec<Bytes>>,
) -> FetchReply {
    let mut topics: Vec<FetchableTopicResponse> = names
        .into_iter()
        .map(|n| FetchableTopicResponse::default().with_topic(n))
        .collect();
    let mut topic_records: FetchRecords = vec![Vec::new(); topics.len()];
    for ((slot, pd), recs) in slots.iter().zip(partitions).zip(records) {
        if let (Some(t), Some(r)) = (topics.get_mut(slot.topic), topic_records.get_mut(slot.topic)) {
            t.partitions.push(pd.with_partition_index(slot.partition));
            r.push(recs);
        }
    }
    FetchReply {
        response: FetchResponse::default().with_session_id(0).with_responses(topics),
        records: topic_records,
    }
}

/// A fetch response whose record bytes travel beside it, uncopied, for
/// [`super::fetch_encode::encode`].
#[derive(Debug)]
pub struct FetchReply {
    /// The response, every partition's `records` null.
    pub response: FetchResponse,
    /// The stored record chunks, `[topic][partition]`.
    pub records: FetchRecords,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored entry of consecutive one-record v2 batches from offset
    /// `base`, of these sizes (each at least a header), bodies filled with 7s.
    fn entry(base: i64, sizes: &[usize]) -> Bytes {
        use crate::records::batch::{HEADER_SIZE, LENGTH_OFFSET, MAGIC_OFFSET};
        let mut out = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            assert!(n >= HEADER_SIZE);
            let mut b = vec![7u8; n];
            b[..8].copy_from_slice(&(base + i as i64).to_be_bytes());
            b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&(n as i32 - 12).to_be_bytes());
            b[MAGIC_OFFSET] = 2;
            b[23..27].copy_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
            out.extend(b);
        }
        Bytes::from(out)
    }

    /// A partition read from offset 0 of entries holding batches of these
    /// sizes (offsets consecutive across entries).
    fn data_outcome(entries: &[&[usize]]) -> PartitionRead {
        limited(entries, usize::MAX)
    }

    fn limited(entries: &[&[usize]], limit: usize) -> PartitionRead {
        let mut base = 0;
        let entries = entries
            .iter()
            .map(|sizes| {
                let e = entry(base, sizes);
                base += sizes.len() as i64;
                e
            })
            .collect();
        PartitionRead::Data {
            entries,
            fetch_offset: 0,
            limit,
            high_watermark: 100,
            log_start_offset: 3,
            last_stable_offset: 100,
            read_committed: false,
            aborted: Vec::new(),
        }
    }

    fn records_len(a: &Assembled, i: usize) -> usize {
        assert!(
            a.partitions[i].records.is_none(),
            "records travel beside the response"
        );
        a.records[i].iter().map(Bytes::len).sum()
    }

    #[test]
    fn responses_encode_at_every_supported_version() {
        use kafka_protocol::protocol::Encodable;
        let slot = |partition| PartitionFetch {
            topic: 0,
            partition,
            target: Err(ResponseError::UnknownTopicOrPartition),
            fetch_offset: 0,
            max_bytes: 0,
            leader_epoch: -1,
            read_committed: false,
        };
        for version in VERSIONS.0..=VERSIONS.1 {
            let names = vec![kafka_protocol::messages::TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("t"),
            )];
            let outs = vec![
                data_outcome(&[&[61, 70]]),
                PartitionRead::Error {
                    error: ResponseError::OffsetOutOfRange,
                    bounds: Some((0, 5)),
                },
            ];
            let a = assemble(&outs, 100);
            let reply = respond(names, &[slot(0), slot(1)], a.partitions, a.records);
            let chunks = super::super::fetch_encode::encode(version, 1, &reply.response, &reply.records)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            let buf = chunks.concat();
            assert!(buf.windows(7).any(|w| w == [7u8; 7]), "records carried as stored");
        }
        let err = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        for version in 7..=VERSIONS.1 {
            err.encode(&mut bytes::BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[tokio::test]
    async fn long_poll_wakes_on_high_watermark_move_or_deadline() {
        let (tx, rx) = watch::channel(5u64);
        let (_tx2, rx2) = watch::channel(9u64);
        let mut watches = vec![rx2, rx];
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        let notify = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(6).expect("receiver alive");
            tx
        });
        assert!(
            wait_for_change(&mut watches, deadline).await,
            "a move wakes the poll"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
        let tx = notify.await.expect("notifier");

        // No move: the deadline ends the wait.
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(!wait_for_change(&mut watches, deadline).await);
        assert!(Instant::now() >= deadline);

        // A closed watch ends the wait at once instead of spinning.
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        assert!(!wait_for_change(&mut watches, deadline).await);
        assert!(started.elapsed() < Duration::from_secs(4));

        // Nothing to watch: sleep until the deadline.
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(!wait_for_change(&mut [], deadline).await);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn sessions_full_fetch_only() {
        assert_eq!(check_session(0, -1), Ok(()));
        assert_eq!(check_session(0, 0), Ok(()));
        assert_eq!(check_session(17, 0), Ok(()));
        assert_eq!(check_session(17, 3), Err(ResponseError::FetchSessionIdNotFound));
        assert_eq!(check_session(0, -7), Err(ResponseError::FetchSessionIdNotFound));
    }

    #[test]
    fn first_batch_of_first_nonempty_partition_is_always_returned() {
        let outs = vec![
            data_outcome(&[]),
            data_outcome(&[&[500, 100], &[100]]),
            data_outcome(&[&[70]]),
        ];
        let a = assemble(&outs, 100);
        assert_eq!(records_len(&a, 0), 0);
        assert_eq!(
            records_len(&a, 1),
            500,
            "oversized first batch returned alone, cut from its entry"
        );
        assert_eq!(records_len(&a, 2), 0, "budget exhausted for later partitions");
        assert_eq!(a.bytes, 500);
        assert!(!a.errors);
    }

    #[test]
    fn later_partitions_fill_the_remaining_budget_with_whole_batches() {
        let outs = vec![
            data_outcome(&[&[400, 400, 400]]),
            data_outcome(&[&[120, 100]]),
            data_outcome(&[&[80]]),
        ];
        let a = assemble(&outs, 1000);
        assert_eq!(records_len(&a, 0), 800, "entry cut after its second batch");
        assert_eq!(records_len(&a, 1), 120);
        assert_eq!(records_len(&a, 2), 80);
        assert_eq!(a.bytes, 1000);
        assert_eq!(a.partitions[0].high_watermark, 100);
        assert_eq!(a.partitions[0].last_stable_offset, 100);
        assert_eq!(a.partitions[0].log_start_offset, 3);
        assert_eq!(a.partitions[0].aborted_transactions, Some(vec![]));
    }

    #[test]
    fn partition_max_bytes_limits_each_partition() {
        let outs = vec![
            limited(&[&[300, 300]], 500),
            limited(&[&[200], &[200]], 300),
            limited(&[&[600]], 500),
        ];
        let a = assemble(&outs, 10_000);
        assert_eq!(records_len(&a, 0), 300, "entry cut at the partition limit");
        assert_eq!(records_len(&a, 1), 200);
        assert_eq!(
            records_len(&a, 2),
            0,
            "only the response's first batch may exceed limits"
        );
        // The very first batch is returned even above its partition limit.
        let a = assemble(&[limited(&[&[600, 100]], 500)], 10_000);
        assert_eq!(records_len(&a, 0), 600);
    }

    #[test]
    fn read_committed_stops_at_the_last_stable_offset_and_carries_the_aborted_transactions() {
        let e = entry(10, &[100, 150, 200]);
        let read = |read_committed| PartitionRead::Data {
            entries: vec![e.clone(), entry(13, &[90])],
            fetch_offset: 10,
            limit: usize::MAX,
            high_watermark: 14,
            log_start_offset: 0,
            last_stable_offset: 12,
            read_committed,
            aborted: if read_committed { vec![(5, 11)] } else { Vec::new() },
        };
        let a = assemble(&[read(true)], 10_000);
        assert_eq!(a.records[0], vec![e.slice(..250)]);
        let p = &a.partitions[0];
        assert_eq!((p.high_watermark, p.last_stable_offset), (14, 12));
        let aborted = p.aborted_transactions.as_ref().expect("a list");
        assert_eq!(aborted.len(), 1);
        assert_eq!((aborted[0].producer_id.0, aborted[0].first_offset), (5, 11));
        // read_uncommitted reads to the high watermark; the LSO is still told.
        let a = assemble(&[read(false)], 10_000);
        assert_eq!(a.bytes, 540);
        assert_eq!(a.partitions[0].last_stable_offset, 12);
        assert_eq!(a.partitions[0].aborted_transactions, Some(vec![]));
    }

    #[test]
    fn records_are_zero_copy_slices_from_the_batch_holding_the_fetch_offset() {
        let e = entry(10, &[100, 150, 200]);
        let read = |fetch_offset, limit| PartitionRead::Data {
            entries: vec![e.clone(), entry(13, &[90])],
            fetch_offset,
            limit,
            high_watermark: 14,
            log_start_offset: 0,
            last_stable_offset: 14,
            read_committed: false,
            aborted: Vec::new(),
        };
        // Offset 11 lies in the entry's second batch: the first is skipped.
        let a = assemble(&[read(11, usize::MAX)], 10_000);
        assert_eq!(a.records[0].len(), 2);
        assert_eq!(a.records[0][0], e.slice(100..));
        assert_eq!(a.records[0][0].as_ptr(), e[100..].as_ptr(), "a slice, not a copy");
        assert_eq!(a.records[0][0][..8], 11i64.to_be_bytes());
        assert_eq!(a.bytes, 440);
        // Within the response limit: cut after the batch that fits.
        let a = assemble(&[read(11, usize::MAX)], 400);
        assert_eq!(a.records[0], vec![e.slice(100..450)]);
        assert_eq!(a.bytes, 350);
        // The fetch offset's batch alone exceeds the limit: it alone.
        let a = assemble(&[read(12, 50)], 10_000);
        assert_eq!(a.records[0], vec![e.slice(250..)]);
        // At the high watermark nothing is left.
        let a = assemble(&[read(14, usize::MAX)], 10_000);
        assert_eq!(records_len(&a, 0), 0);
    }

    #[test]
    fn errors_are_flagged_with_bounds_when_known() {
        let outs = vec![
            PartitionRead::Error {
                error: ResponseError::OffsetOutOfRange,
                bounds: Some((2, 9)),
            },
            PartitionRead::Error {
                error: ResponseError::UnknownTopicOrPartition,
                bounds: None,
            },
        ];
        let a = assemble(&outs, 100);
        assert!(a.errors);
        let p = &a.partitions[0];
        assert_eq!(
            (
                p.error_code,
                p.high_watermark,
                p.last_stable_offset,
                p.log_start_offset
            ),
            (1, 9, 9, 2)
        );
        let p = &a.partitions[1];
        assert_eq!((p.error_code, p.high_watermark, p.log_start_offset), (3, -1, -1));
        assert_eq!(records_len(&a, 1), 0);
    }

    #[test]
    fn respond_groups_by_topic_and_sets_sessionless() {
        let names = vec![kafka_protocol::messages::TopicName(
            kafka_protocol::protocol::StrBytes::from_static_str("t"),
        )];
        let slots = vec![
            PartitionFetch {
                topic: 0,
                partition: 4,
                target: Err(ResponseError::UnknownTopicOrPartition),
                fetch_offset: 0,
                max_bytes: 0,
                leader_epoch: -1,
                read_committed: false,
            },
            PartitionFetch {
                topic: 0,
                partition: 2,
                target: Err(ResponseError::UnknownTopicOrPartition),
                fetch_offset: 0,
                max_bytes: 0,
                leader_epoch: -1,
                read_committed: false,
            },
        ];
        let a = assemble(&[data_outcome(&[&[61]]), data_outcome(&[&[62]])], 10);
        let r = respond(names, &slots, a.partitions, a.records).response;
        assert_eq!(r.session_id, 0);
        assert_eq!(r.error_code, 0);
        let idx: Vec<i32> = r.responses[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(idx, vec![4, 2]);
    }
}
