//! `LogWriter`: the single writer of a stream, run as one task per open
//! stream.
//!
//! Its transmit buffer batches the appends that queue up while earlier
//! entries are being made durable into one entry (one add, one share of a
//! group commit); entries are pipelined (up to [`MAX_INFLIGHT`] in flight)
//! and confirmed strictly in order, which advances the LAC and with it the
//! high watermark. It assigns sequence ids and txids, rolls segments by
//! size and age, and seals its segment on close.
//!
//! Its parts: [`segments`] opens, rolls and seals segments (and holds the
//! policy for a bookie failing during writes); [`state`] is the stream
//! state's share of the writer (snapshots, duplicates); this file takes
//! appends, issues entries and commits them in order.

mod segments;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use distlog_metadata::{LedgerId, NodeId};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use super::api::{AppendRequest, AppendResult};
use super::config::StreamConfig;
use super::context::{NsCtx, Reply, StreamShared, WriterOp};
use super::stream_state::{snapshot_due, Admission};
use super::tail_cache::CachedEntry;
use crate::dlsn::Dlsn;
use crate::error::{Result, StorageError};
use crate::ledger::IndexRow;
use crate::metrics;
use segments::OpenSegment;

/// Entries in flight (issued, not yet confirmed) per stream.
pub const MAX_INFLIGHT: usize = 16;

/// A segment written degraded (a failed bookie and no healthy replacement)
/// retries rolling to a full healthy ensemble at most this often.
pub const ROLL_RETRY: Duration = Duration::from_millis(500);

/// A bookie that failed this writer is left out of new ensembles for this
/// long (when enough other bookies exist).
pub const SUSPECT_TTL: Duration = Duration::from_secs(60);

/// One append inside an entry: its payload, first sequence id, record
/// count, and the stream txid after it.
struct Chunk {
    payload: Bytes,
    base: u64,
    count: u32,
    txid: u64,
}

/// An issued entry waiting for its ack quorum.
struct Inflight {
    lssn: u64,
    row: IndexRow,
    chunks: Vec<Chunk>,
    replies: Vec<(Reply, u64)>,
}

type InflightFuture = BoxFuture<'static, (Result<()>, Inflight)>;

/// The stream's writer (see module docs).
pub(crate) struct LogWriter {
    ctx: Arc<NsCtx>,
    shared: Arc<StreamShared>,
    /// The settings in force, refreshed from `cfg_rx` before each decision.
    cfg: StreamConfig,
    /// New settings handed over while the stream is open
    /// ([`StreamShared::set_config`]).
    cfg_rx: watch::Receiver<StreamConfig>,
    next_lssn: u64,
    /// Next sequence id to assign.
    next_offset: u64,
    /// txid of the last issued entry.
    txid: u64,
    seg: Option<OpenSegment>,
    /// When an entry was last confirmed (tail cache idle eviction).
    last_commit: Instant,
    /// The next segment's ledger id, allocated in the background while the
    /// current segment fills, so a roll costs one metadata round trip.
    next_ledger: Option<tokio::task::JoinHandle<Result<LedgerId>>>,
    /// Bookies that failed an add of this writer, and when they last did:
    /// new ensembles avoid them for [`SUSPECT_TTL`].
    suspects: std::collections::HashMap<NodeId, Instant>,
    /// Duplicates (see [`Admission::Duplicate`]) whose original is not
    /// committed yet: (reply, original base, sequence id after it), in
    /// arrival order; each is answered once the high watermark reaches its
    /// sequence id (see `answer_committed_duplicates`).
    pending_duplicates: std::collections::VecDeque<(Reply, u64, u64)>,
    /// Data bytes written since the last state snapshot, and that
    /// snapshot's size (see [`snapshot_due`]).
    since_snapshot: (u64, u64),
}

/// A stream with no new entry for this long drops its tail cache: its
/// tailing readers have caught up, and a node with many once-busy streams
/// must not keep megabytes per stream forever.
const TAIL_CACHE_IDLE: Duration = Duration::from_secs(10);

impl LogWriter {
    /// A writer continuing the stream at `next_offset` / `txid`, with the
    /// settings `cfg` gives (now and whenever they change).
    pub fn new(
        ctx: Arc<NsCtx>,
        shared: Arc<StreamShared>,
        mut cfg_rx: watch::Receiver<StreamConfig>,
        next_lssn: u64,
        next_offset: u64,
        txid: u64,
    ) -> Self {
        let cfg = cfg_rx.borrow_and_update().clone();
        LogWriter {
            ctx,
            shared,
            cfg,
            cfg_rx,
            next_lssn,
            next_offset,
            txid,
            seg: None,
            last_commit: Instant::now(),
            next_ledger: None,
            suspects: Default::default(),
            pending_duplicates: Default::default(),
            since_snapshot: (0, 0),
        }
    }

    /// The writer task's main loop.
    pub async fn run(mut self, mut rx: mpsc::Receiver<WriterOp>) {
        let mut inflight: FuturesOrdered<InflightFuture> = FuturesOrdered::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut close: Option<oneshot::Sender<()>> = None;
        let mut rx_open = true;
        loop {
            if (close.is_some() || !rx_open) && inflight.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some((res, inf)) = inflight.next(), if !inflight.is_empty() => {
                    if let Err(e) = res {
                        self.fail(e, vec![inf], inflight, rx, Vec::new()).await;
                        return;
                    }
                    self.commit(inf);
                }
                op = rx.recv(), if rx_open && close.is_none() && inflight.len() < MAX_INFLIGHT => {
                    let (first_req, first_reply) = match op {
                        None => { rx_open = false; continue; }
                        Some(WriterOp::Close { done }) => { close = Some(done); continue; }
                        Some(WriterOp::Append { req, reply }) => (req, reply),
                    };
                    self.refresh_config();
                    let mut bytes = first_req.payload.len();
                    let mut batch = vec![(first_req, first_reply)];
                    while bytes < self.cfg.max_entry_bytes {
                        match rx.try_recv() {
                            Ok(WriterOp::Append { req, reply }) => {
                                bytes += req.payload.len();
                                batch.push((req, reply));
                            }
                            Ok(WriterOp::Close { done }) => { close = Some(done); break; }
                            Err(_) => break,
                        }
                    }
                    if let Err((e, done)) = self.prepare_segment(&mut inflight).await {
                        self.fail(e, done, inflight, rx, batch).await;
                        return;
                    }
                    if snapshot_due(self.since_snapshot.0, self.since_snapshot.1) {
                        self.write_snapshot(&mut inflight);
                    }
                    self.write_entry(batch, &mut inflight);
                }
                _ = tick.tick() => {
                    self.refresh_config();
                    if let Some(state) = &self.shared.state {
                        state.tick(distlog_metadata::now_ms() as i64);
                    }
                    if self.last_commit.elapsed() >= TAIL_CACHE_IDLE {
                        self.shared.cache.lock().clear();
                    }
                    let due = self.seg.as_ref().is_some_and(|s| {
                        !s.empty && s.created.elapsed() >= self.cfg.segment_rolling_interval
                    });
                    // An idle segment with a failed bookie is sealed too; the
                    // next append opens a segment on a healthy ensemble.
                    let failed = inflight.is_empty() && !due && self.failure_roll_due();
                    if inflight.is_empty() && (due || failed) {
                        if let Err(e) = self.complete_segment().await {
                            self.fail(e, Vec::new(), inflight, rx, Vec::new()).await;
                            return;
                        }
                        if failed {
                            metrics::ENSEMBLE_ROLLS.inc();
                        }
                    }
                }
            }
        }
        if let Err(e) = self.complete_segment().await {
            // A deleted stream (its topic was deleted while open) has no
            // segment left to seal: the expected end, not a problem.
            if matches!(
                self.ctx.ended_error(self.shared.id),
                StorageError::NoSuchStream(_)
            ) {
                debug!(error = %e, "stream deleted while open: nothing to seal");
            } else {
                warn!(error = %e, "could not seal the segment on close; the next owner recovers it");
            }
        }
        self.shared.mark_failed();
        if let Some(done) = close {
            let _ = done.send(());
        }
    }

    /// Take the settings handed over since the last look, if any: the next
    /// roll decision and the next segment use them.
    fn refresh_config(&mut self) {
        if self.cfg_rx.has_changed().unwrap_or(false) {
            self.cfg = self.cfg_rx.borrow_and_update().clone();
            debug!(cfg = ?self.cfg, "stream settings changed");
        }
    }

    /// Assign sequence ids to the batched appends, stamp them, and issue
    /// them as one entry.
    fn write_entry(
        &mut self,
        batch: Vec<(AppendRequest, Reply)>,
        inflight: &mut FuturesOrdered<InflightFuture>,
    ) {
        if self.seg.is_none() {
            for (_, reply) in batch {
                let _ = reply.send(Err(StorageError::NotOwner(self.shared.id)));
            }
            return;
        }
        let first_seq = self.next_offset;
        let mut count: u64 = 0;
        let mut chunks = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (req, reply) in batch {
            if req.record_count == 0 {
                let _ = reply.send(Err(StorageError::InvalidAppend(
                    "an append must hold at least one record".into(),
                )));
                continue;
            }
            let base = first_seq + count;
            if let Some(state) = &self.shared.state {
                let now = distlog_metadata::now_ms() as i64;
                match state.admit(&req.payload, base, req.record_count, now) {
                    Admission::Write => {}
                    Admission::Duplicate {
                        base_offset,
                        next_offset,
                    } => {
                        self.answer_duplicate(reply, base_offset, next_offset);
                        continue;
                    }
                    Admission::Refuse(e) => {
                        let _ = reply.send(Err(StorageError::Refused(e)));
                        continue;
                    }
                }
            }
            let mut payload: BytesMut = req.payload;
            (self.ctx.config.stamp)(&mut payload, base, self.shared.epoch);
            self.txid = self.txid.max(req.max_timestamp.max(0) as u64);
            chunks.push(Chunk {
                payload: payload.freeze(),
                base,
                count: req.record_count,
                txid: self.txid,
            });
            replies.push((reply, base));
            count += req.record_count as u64;
        }
        if replies.is_empty() {
            return;
        }
        self.next_offset += count;
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        let payload: Vec<Bytes> = chunks.iter().map(|c| c.payload.clone()).collect();
        let len: usize = payload.iter().map(Bytes::len).sum();
        seg.bytes += len as u64;
        *self.shared.open_segment.lock() = Some((seg.lssn, seg.bytes));
        if self.shared.state.is_some() {
            self.since_snapshot.0 += len as u64;
        }
        seg.empty = false;
        let (entry_id, fut) = seg.ledger.add(first_seq, count as u32, self.txid, payload);
        let inf = Inflight {
            lssn: seg.lssn,
            row: IndexRow {
                entry_id,
                first_seq,
                record_count: count as u32,
                txid: self.txid,
                len: len as u32,
            },
            chunks,
            replies,
        };
        inflight.push_back(fut.map(move |r| (r, inf)).boxed());
    }

    /// An entry reached its ack quorum (and all before it did): advance the
    /// LAC, publish the new high watermark, cache the entry, answer.
    fn commit(&mut self, inf: Inflight) {
        self.last_commit = Instant::now();
        if let Some(seg) = self.seg.as_mut().filter(|s| s.lssn == inf.lssn) {
            seg.ledger.confirm(inf.row.entry_id);
        }
        let next = inf.row.first_seq + inf.row.record_count as u64;
        let log_start = {
            let mut v = self.shared.view.write();
            if let Some(s) = v.segments.last_mut().filter(|s| s.lssn == inf.lssn) {
                s.next_offset = next;
                s.last_entry_id = Some(inf.row.entry_id);
                s.end_txid = inf.row.txid;
            }
            v.high_watermark = next;
            v.log_start_offset
        };
        // Cache each append of the entry as its own piece (no copy to
        // rebuild the entry); pieces keep the entry's id for DLSNs.
        {
            let mut cache = self.shared.cache.lock();
            for c in inf.chunks {
                cache.push(CachedEntry {
                    lssn: inf.lssn,
                    entry_first_seq: inf.row.first_seq,
                    row: IndexRow {
                        entry_id: inf.row.entry_id,
                        first_seq: c.base,
                        record_count: c.count,
                        txid: c.txid,
                        len: c.payload.len() as u32,
                    },
                    payload: c.payload,
                });
            }
        }
        if inf.row.record_count == 0 {
            // A control entry (state snapshot): nothing new to read.
            return;
        }
        self.shared.hw_tx.send_replace(next);
        for (reply, base) in inf.replies {
            let _ = reply.send(Ok(AppendResult {
                base_offset: base,
                dlsn: Some(Dlsn::new(inf.lssn, inf.row.entry_id, base - inf.row.first_seq)),
                log_start_offset: log_start,
            }));
        }
        self.answer_committed_duplicates(next, log_start);
    }

    /// The writer cannot go on (fenced, disk error, metadata refused): fail
    /// every waiting append, mark the stream failed so the namespace
    /// reopens it (recovering the ledger) on next use, and stop. The open
    /// segment stays InProgress in metadata; recovery seals it.
    async fn fail(
        &mut self,
        e: StorageError,
        done: Vec<Inflight>,
        mut inflight: FuturesOrdered<InflightFuture>,
        mut rx: mpsc::Receiver<WriterOp>,
        batch: Vec<(AppendRequest, Reply)>,
    ) {
        let e = match e {
            StorageError::Fenced(_) => StorageError::NotOwner(self.shared.id),
            other => other,
        };
        warn!(error = %e, "log writer failed; the stream will be reopened and its ledger recovered on next use");
        self.shared.mark_failed();
        if let Some(seg) = self.seg.take() {
            seg.retire();
        }
        // An issued entry may have reached some bookie, and recovery keeps
        // it: its appends (and the duplicates waiting on them) are answered
        // "unconfirmed", never "not written" (a client that believed the
        // latter would resend, and the records would be in the log twice).
        let unconfirmed = || StorageError::Unconfirmed(Box::new(e.duplicate()));
        let fail_inf = |inf: Inflight| {
            for (reply, _) in inf.replies {
                let _ = reply.send(Err(unconfirmed()));
            }
        };
        done.into_iter().for_each(fail_inf);
        for (reply, _, _) in self.pending_duplicates.drain(..) {
            let _ = reply.send(Err(unconfirmed()));
        }
        for (_, reply) in batch {
            let _ = reply.send(Err(e.duplicate()));
        }
        // Entries issued after the failed one are not confirmed either: the
        // LAC cannot pass the failed entry. Wait for their outcomes so no
        // add is left running against the ledger, then fail them.
        while let Some((_, inf)) = inflight.next().await {
            fail_inf(inf);
        }
        rx.close();
        while let Some(op) = rx.recv().await {
            match op {
                WriterOp::Append { reply, .. } => {
                    let _ = reply.send(Err(e.duplicate()));
                }
                WriterOp::Close { done } => {
                    let _ = done.send(());
                }
            }
        }
    }
}
