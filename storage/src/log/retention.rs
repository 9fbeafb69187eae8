//! Retention: truncating a stream's oldest sealed segments once its
//! [`Retention`] limits allow, as DistributedLog truncates a log stream.
//!
//! The stream's owner runs the check (every namespace with a retention
//! interval, [`super::Namespace::start_retention`]) over the streams it has
//! open; truncation by request (Kafka's DeleteRecords) goes through
//! [`super::StreamHandle::truncate`]. Both follow one order, which is what
//! makes them crash-safe:
//!
//! 1. **metadata first**: `TruncateStream` moves the stream's log start
//!    offset and drops, in the same replicated step, the sealed segments
//!    that end at or below it. Only segments that left the metadata are ever
//!    freed, so nothing a segment still in metadata points at is deleted;
//! 2. **then the ledgers**: every node sees the `StreamTruncated` event; the
//!    owner deletes the dropped segments' ledgers on every bookie of their
//!    ensembles ([`super::release`]). A delete that did not happen (a crash
//!    in between, a bookie down) leaves an orphan ledger, which its bookie
//!    collects later ([`super::gc`]).
//!
//! Readers see the new log start offset as soon as the owner applies it to
//! its view: a read below it fails with `OffsetOutOfRange`.
//!
//! The limits are Kafka's: a sealed segment goes when its newest record
//! (its end txid, the running maximum of record timestamps) is older than
//! `period`, or while the stream's sealed segments without it still hold
//! at least `max_bytes`. Only a prefix of sealed segments is ever dropped,
//! and never the stream's last segment (the one being written), so
//! `max_bytes` keeps a partition within one segment of its limit.

use std::collections::HashSet;
use std::sync::Arc;

use distlog_metadata::{now_ms, SegmentMeta, SegmentState, StreamId};
use tracing::{debug, info, warn};

use super::config::Retention;
use super::context::{LogStream, NsCtx, StreamShared};
use crate::error::Result;
use crate::metrics;

/// Why a stream was truncated (the `cause` label of the truncation
/// metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The retention check.
    Retention,
    /// A client asked (Kafka's DeleteRecords).
    DeleteRecords,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::Retention => "retention",
            Cause::DeleteRecords => "delete_records",
        }
    }
}

/// The `(topic, partition)` labels of a stream's per-partition gauges.
pub(crate) type GaugeLabels = (String, String);

/// What one retention check decided for a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPlan {
    /// The stream's new log start offset (the offset after the last record
    /// of the last segment dropped).
    pub log_start_offset: u64,
    /// Sealed segments the truncation drops.
    pub segments: usize,
    /// Payload bytes of those segments.
    pub bytes: u64,
}

/// The truncation `retention` asks for over a stream's segments (in LSSN
/// order, as metadata holds them) at wall-clock `now_ms`, or `None` when
/// nothing is due. `writing_bytes` is what the segment being written holds
/// so far (metadata records a segment's size only at its seal): the stream's
/// size counts it, as Kafka counts its active segment. Pure, so the rules
/// are unit-tested.
pub fn plan(
    segments: &[SegmentMeta],
    writing_bytes: u64,
    log_start_offset: u64,
    retention: Retention,
    now_ms: u64,
) -> Option<RetentionPlan> {
    if retention.period.is_none() && retention.max_bytes.is_none() {
        return None;
    }
    let period_ms = retention
        .period
        .map(|p| u64::try_from(p.as_millis()).unwrap_or(u64::MAX));
    let mut remaining: u64 = segments.iter().map(|s| s.size_bytes).sum::<u64>() + writing_bytes;
    // Never the last segment: it is the one being written (or, once the
    // stream is closed, the one a new owner continues after).
    let candidates = segments.len().saturating_sub(1);
    let mut new_start = None;
    let (mut count, mut bytes) = (0usize, 0u64);
    for s in &segments[..candidates] {
        if s.state != SegmentState::Completed {
            break;
        }
        let expired = period_ms.is_some_and(|p| s.end_txid.saturating_add(p) < now_ms);
        // `remaining` includes this segment, so the subtraction is exact.
        let over_size = retention
            .max_bytes
            .is_some_and(|max| remaining - s.size_bytes >= max);
        // An empty sealed segment holds no record: it never stops the walk.
        if !(expired || over_size || s.last_offset.is_none()) {
            break;
        }
        remaining -= s.size_bytes;
        count += 1;
        bytes += s.size_bytes;
        new_start = Some(s.next_offset());
    }
    let new_start = new_start?.max(log_start_offset);
    // Empty segments alone (no record dropped) are left for the next real
    // truncation: there is nothing to free.
    if bytes == 0 && new_start == log_start_offset {
        return None;
    }
    Some(RetentionPlan {
        log_start_offset: new_start,
        segments: count,
        bytes,
    })
}

/// Apply a truncation to the owner's view of the stream: move its log start
/// offset forward (never back) and drop the sealed segments that end at or
/// below it, exactly those the `TruncateStream` command drops in metadata.
/// Idempotent: the command's writer and the metadata event both call it.
pub(crate) fn apply_to_view(shared: &StreamShared, log_start_offset: u64) {
    {
        let mut v = shared.view.write();
        if log_start_offset <= v.log_start_offset {
            return;
        }
        v.log_start_offset = log_start_offset;
        let drop = v
            .segments
            .iter()
            .take_while(|s| s.completed && s.next_offset <= log_start_offset)
            .count();
        v.segments.drain(..drop);
    }
    // Outside the view's lock: the state has its own, which the writer takes.
    if let Some(state) = &shared.state {
        state.truncated(log_start_offset);
    }
}

/// Truncate an open stream at `log_start_offset`: metadata first (the
/// `TruncateStream` command drops the sealed segments wholly below it and
/// publishes the event on which their ledgers are deleted), then the
/// owner's view, so that readers below the new start get
/// `OffsetOutOfRange` from now on. Counts what the truncation dropped,
/// according to the segments metadata held just before it.
pub(crate) async fn truncate(
    ctx: &NsCtx,
    shared: &StreamShared,
    log_start_offset: u64,
    cause: Cause,
) -> Result<()> {
    let id = shared.id;
    let (segments, bytes) = ctx.meta.read(|s| {
        s.stream(&id).map_or((0, 0), |st| {
            st.segments
                .iter()
                .take_while(|g| g.state == SegmentState::Completed && g.next_offset() <= log_start_offset)
                .fold((0u64, 0u64), |(n, b), g| (n + 1, b + g.size_bytes))
        })
    });
    ctx.meta.truncate_stream(id, log_start_offset).await?;
    apply_to_view(shared, log_start_offset);
    metrics::LOG_TRUNCATED_SEGMENTS
        .with_label_values(&[cause.label()])
        .inc_by(segments);
    metrics::LOG_TRUNCATED_BYTES
        .with_label_values(&[cause.label()])
        .inc_by(bytes);
    Ok(())
}

/// One retention check over the streams this node has open: for each, the
/// topic's current [`Retention`] (asked of the embedder's `StreamConfigFn`
/// at every check, so a changed `retention.ms` applies at the next one),
/// the [`plan`] over the segments metadata holds, and the truncation. Also
/// refreshes the per-partition gauges; returns the labels it set, so the
/// caller can drop the series of streams no longer open here.
pub(crate) async fn check(ctx: &NsCtx, streams: &[Arc<LogStream>]) -> HashSet<GaugeLabels> {
    let _timer = metrics::RETENTION_CHECK_SECONDS.start_timer();
    let mut labelled = HashSet::new();
    for stream in streams {
        let shared = &stream.shared;
        if shared.is_failed() || ctx.is_shutting_down() {
            continue;
        }
        let id = shared.id;
        let Some((topic, segments, log_start)) = ctx.meta.read(|s| {
            let st = s.stream(&id)?;
            // Only the owner truncates: an incarnation that lost the stream
            // leaves it to the new owner.
            if st.owner != Some(ctx.config.broker_id) || st.owner_epoch != shared.epoch {
                return None;
            }
            Some((
                s.topic_by_id(&id.topic_id)?.clone(),
                st.segments.clone(),
                st.log_start_offset,
            ))
        }) else {
            continue;
        };
        let retention = (ctx.config.stream_config)(&topic).retention;
        // The writer's bytes of its segment, if that is still the last one
        // metadata holds (a segment just sealed is counted once).
        let writing = (*shared.open_segment.lock())
            .filter(|(lssn, _)| {
                segments
                    .last()
                    .is_some_and(|g| g.lssn == *lssn && g.state != SegmentState::Completed)
            })
            .map_or(0, |(_, bytes)| bytes);
        let mut start = log_start;
        let mut size: u64 = segments.iter().map(|g| g.size_bytes).sum::<u64>() + writing;
        if let Some(p) = plan(&segments, writing, log_start, retention, now_ms()) {
            match truncate(ctx, shared, p.log_start_offset, Cause::Retention).await {
                Ok(()) => {
                    info!(
                        stream = %id,
                        topic = %topic.name,
                        log_start_offset = p.log_start_offset,
                        segments = p.segments,
                        bytes = p.bytes,
                        "retention truncated the stream's oldest segments"
                    );
                    start = p.log_start_offset;
                    size -= p.bytes;
                }
                Err(e) => warn!(
                    stream = %id,
                    error = %e,
                    "retention could not truncate the stream; the next check retries"
                ),
            }
        }
        let labels = gauge_labels(&topic.name, id);
        metrics::LOG_START_OFFSET
            .with_label_values(&[labels.0.as_str(), labels.1.as_str()])
            .set(i64::try_from(start).unwrap_or(i64::MAX));
        metrics::LOG_SIZE_BYTES
            .with_label_values(&[labels.0.as_str(), labels.1.as_str()])
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        labelled.insert(labels);
    }
    debug!(streams = streams.len(), "retention check done");
    labelled
}

fn gauge_labels(topic: &str, id: StreamId) -> GaugeLabels {
    (topic.to_string(), id.partition.to_string())
}

/// Drop the per-partition gauge series of `labels` (streams no longer
/// open on this node).
pub(crate) fn forget_gauges<'a>(labels: impl IntoIterator<Item = &'a GaugeLabels>) {
    for (topic, partition) in labels {
        let _ = metrics::LOG_START_OFFSET.remove_label_values(&[topic, partition]);
        let _ = metrics::LOG_SIZE_BYTES.remove_label_values(&[topic, partition]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use distlog_metadata::NodeId;

    use super::*;

    /// A sealed segment of `records` records from `base`, `bytes` long,
    /// whose newest record has timestamp `end_txid`.
    fn sealed(lssn: u64, base: u64, records: u64, bytes: u64, end_txid: u64) -> SegmentMeta {
        SegmentMeta {
            lssn,
            ledger_id: lssn,
            ensemble: vec![NodeId::new(1)],
            write_quorum: 1,
            ack_quorum: 1,
            base_offset: base,
            start_txid: 0,
            state: SegmentState::Completed,
            last_offset: (records > 0).then(|| base + records - 1),
            end_txid,
            last_entry_id: (records > 0).then_some(0),
            size_bytes: bytes,
            created_ms: 0,
            owner_epoch: 1,
        }
    }

    fn open(lssn: u64, base: u64) -> SegmentMeta {
        SegmentMeta {
            state: SegmentState::InProgress,
            last_offset: None,
            last_entry_id: None,
            size_bytes: 0,
            ..sealed(lssn, base, 0, 0, 0)
        }
    }

    fn by_time(ms: u64) -> Retention {
        Retention {
            period: Some(Duration::from_millis(ms)),
            max_bytes: None,
        }
    }

    fn by_size(bytes: u64) -> Retention {
        Retention {
            period: None,
            max_bytes: Some(bytes),
        }
    }

    #[test]
    fn unlimited_retention_never_truncates() {
        let segs = vec![sealed(1, 0, 10, 100, 5), open(2, 10)];
        assert_eq!(plan(&segs, 0, 0, Retention::default(), u64::MAX), None);
    }

    #[test]
    fn time_drops_the_expired_prefix_only() {
        // Newest records at 1000, 3000 (expired at now=10_000 with 5 s) and 8000 (kept).
        let segs = vec![
            sealed(1, 0, 10, 100, 1000),
            sealed(2, 10, 10, 100, 3000),
            sealed(3, 20, 10, 100, 8000),
            sealed(4, 30, 10, 100, 1000), // old but after a kept one: stays
            open(5, 40),
        ];
        let p = plan(&segs, 0, 0, by_time(5000), 10_000).unwrap();
        assert_eq!(
            p,
            RetentionPlan {
                log_start_offset: 20,
                segments: 2,
                bytes: 200
            }
        );
        // Exactly at the limit is not older than it.
        assert_eq!(plan(&segs, 0, 0, by_time(9000), 10_000), None);
    }

    #[test]
    fn the_segment_being_written_is_never_dropped() {
        let segs = vec![sealed(1, 0, 10, 100, 1), sealed(2, 10, 10, 100, 1)];
        // Both expired, but the last one is the stream's current segment.
        let p = plan(&segs, 0, 0, by_time(1), 1_000_000).unwrap();
        assert_eq!(p.log_start_offset, 10);
        assert_eq!(p.segments, 1);
        let segs = vec![sealed(1, 0, 10, 100, 1), open(2, 10)];
        assert_eq!(plan(&segs, 0, 0, by_time(1), 1_000_000).unwrap().segments, 1);
    }

    #[test]
    fn size_keeps_the_stream_within_one_segment_of_the_limit() {
        let segs = vec![
            sealed(1, 0, 10, 100, 1),
            sealed(2, 10, 10, 100, 1),
            sealed(3, 20, 10, 100, 1),
            sealed(4, 30, 10, 100, 1),
            open(5, 40),
        ];
        // 400 bytes, limit 250: dropping 1 leaves 300 >= 250, dropping 2
        // leaves 200 < 250 so segment 2 stays (Kafka's rule).
        let p = plan(&segs, 0, 0, by_size(250), 0).unwrap();
        assert_eq!((p.log_start_offset, p.segments, p.bytes), (10, 1, 100));
        // Limit 200: two go (300 >= 200, 200 >= 200), the third would leave 100.
        let p = plan(&segs, 0, 0, by_size(200), 0).unwrap();
        assert_eq!((p.log_start_offset, p.segments, p.bytes), (20, 2, 200));
        assert_eq!(plan(&segs, 0, 0, by_size(400), 0), None);
        assert_eq!(plan(&segs, 0, 0, by_size(1000), 0), None);
        // The segment being written counts: 150 bytes in it make 550, so with a
        // limit of 400 one sealed segment goes (450 >= 400); a second would leave 350.
        let p = plan(&segs, 150, 0, by_size(400), 0).unwrap();
        assert_eq!((p.log_start_offset, p.segments), (10, 1));
    }

    #[test]
    fn empty_segments_go_with_their_neighbours_but_alone_do_nothing() {
        let segs = vec![
            sealed(1, 0, 0, 0, 0),
            sealed(2, 0, 10, 100, 1),
            sealed(3, 10, 0, 0, 0),
            sealed(4, 10, 10, 100, 99_999),
            open(5, 20),
        ];
        let p = plan(&segs, 0, 0, by_time(10), 1000).unwrap();
        // 1 (empty), 2 (expired), 3 (empty) go; 4 is fresh.
        assert_eq!((p.log_start_offset, p.segments, p.bytes), (10, 3, 100));
        let only_empty = vec![sealed(1, 0, 0, 0, 0), open(2, 0)];
        assert_eq!(plan(&only_empty, 0, 0, by_time(10), 1000), None);
    }

    #[test]
    fn log_start_moved_by_delete_records_is_kept() {
        // DeleteRecords moved the start to 15, inside segment 2.
        let segs = vec![
            sealed(2, 10, 10, 100, 1),
            sealed(3, 20, 10, 100, 99_999),
            open(4, 30),
        ];
        let p = plan(&segs, 0, 15, by_time(10), 1000).unwrap();
        assert_eq!(p.log_start_offset, 20);
        // Nothing expired: the start stays where DeleteRecords put it.
        assert_eq!(plan(&segs, 0, 15, by_time(10), 5), None);
    }
}
