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
//! # A bookie failing during writes: roll to a healthy ensemble
//!
//! Of BookKeeper's two answers to a bookie that fails while a ledger is
//! written — replace it inside the ledger (an ensemble change recorded in
//! the ledger's metadata) or close the ledger and carry on in a new one —
//! this writer takes the second, which is DistributedLog's natural unit:
//! a segment's ensemble never changes once recorded, so readers, recovery
//! and the replica report only ever deal with one ensemble per segment.
//!
//! * An add to a bookie of the write set that fails for any reason but
//!   fencing (connection refused or lost, timeout, disk error, or a bookie
//!   that came back missing earlier entries) does not fail the append as
//!   long as `Qa` bookies made the entry durable: it is acknowledged, in
//!   order, as usual. The ledger writer remembers the failed bookie (also
//!   when the failure arrives after the quorum acknowledged).
//! * Before the next entry (or on the idle tick), the writer rolls: it
//!   waits for every entry in flight to be confirmed, seals the segment
//!   (`RollSegment`, the same compare-and-set a size roll uses, with the
//!   last confirmed offset and entry id), and opens the next segment on an
//!   ensemble chosen among live bookies *excluding* the ones that failed
//!   (recently failed bookies stay excluded from later placements for
//!   [`SUSPECT_TTL`] while enough others exist).
//! * When fewer than E healthy bookies exist, there is nowhere to roll to:
//!   the writer keeps writing degraded on the current ensemble, every entry
//!   still acknowledged only once `Qa` bookies have it. It warns once per
//!   segment, counts the segment in `distlog_log_degraded_segments`, and
//!   retries the roll at most every [`ROLL_RETRY`].
//! * When `Qa` cannot be reached, the add fails with the retriable
//!   `NotEnoughBookies` (Kafka `NOT_ENOUGH_REPLICAS`) and nothing after it
//!   is acknowledged: the writer fails every waiting append and stops, and
//!   the stream is reopened with ledger recovery on next use (which itself
//!   fails with `NotEnoughBookies` until a fencing quorum is back). How fast
//!   the failure comes is bounded by the bookie client: at once for a
//!   refused or dropped connection, `connect_timeout` for an unreachable
//!   host, `request_timeout` for a bookie that accepted and went silent.
//!   As in BookKeeper, an entry whose append failed may still have reached
//!   some bookie and be recovered into the log (once; never acknowledged
//!   and lost).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use distlog_metadata::{LedgerId, NodeId, SegmentMeta, SegmentSeal, SegmentState};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::api::{AppendRequest, AppendResult};
use super::config::StreamConfig;
use super::context::{NsCtx, Reply, StreamShared, WriterOp};
use super::new_ensemble;
use super::segment::SegmentView;
use super::stream_state::{snapshot_due, Admission};
use super::tail_cache::CachedEntry;
use crate::dlsn::Dlsn;
use crate::error::{Result, StorageError};
use crate::ledger::handle::{BookieFault, LedgerWriter};
use crate::ledger::IndexRow;
use crate::metrics;

/// Entries in flight (issued, not yet confirmed) per stream.
pub const MAX_INFLIGHT: usize = 16;

/// A segment written degraded (a failed bookie and no healthy replacement)
/// retries rolling to a full healthy ensemble at most this often.
pub const ROLL_RETRY: Duration = Duration::from_millis(500);

/// A bookie that failed this writer is left out of new ensembles for this
/// long (when enough other bookies exist).
pub const SUSPECT_TTL: Duration = Duration::from_secs(60);

/// The segment currently being written.
struct OpenSegment {
    lssn: u64,
    ledger: LedgerWriter,
    created: Instant,
    bytes: u64,
    empty: bool,
    /// Written degraded: a bookie failed and no roll was possible yet.
    degraded: bool,
    /// No roll attempt before this instant (degraded segments).
    retry_roll_at: Option<Instant>,
}

impl OpenSegment {
    /// The segment leaves the writer (sealed, or left for recovery).
    fn retire(&self) {
        metrics::ACTIVE_SEGMENTS.dec();
        if self.degraded {
            metrics::DEGRADED_SEGMENTS.dec();
        }
    }
}

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
    cfg: StreamConfig,
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
    /// order of that sequence id; answered as the high watermark passes it.
    pending_duplicates: std::collections::VecDeque<(Reply, u64, u64)>,
    /// Data bytes written since the last state snapshot, and that
    /// snapshot's size (see [`snapshot_due`]).
    since_snapshot: (u64, u64),
}

/// Allocate a fresh ledger id from the metadata store.
async fn allocate_ledger(meta: &distlog_metadata::MetadataStore) -> Result<LedgerId> {
    Ok(meta.allocate_ledger().await?)
}

/// A stream with no new entry for this long drops its tail cache: its
/// tailing readers have caught up, and a node with many once-busy streams
/// must not keep megabytes per stream forever.
const TAIL_CACHE_IDLE: Duration = Duration::from_secs(10);

impl LogWriter {
    /// A writer continuing the stream at `next_offset` / `txid`.
    pub fn new(
        ctx: Arc<NsCtx>,
        shared: Arc<StreamShared>,
        cfg: StreamConfig,
        next_lssn: u64,
        next_offset: u64,
        txid: u64,
    ) -> Self {
        LogWriter {
            ctx,
            shared,
            cfg,
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
            warn!(error = %e, "could not seal the segment on close; the next owner recovers it");
        }
        self.shared.mark_failed();
        if let Some(done) = close {
            let _ = done.send(());
        }
    }

    /// Whether the open segment should be rolled now because a bookie of
    /// its ensemble failed (see module docs): some bookie failed an add, no
    /// retry delay is pending, and a full ensemble without the failed
    /// bookies can be placed. When none can, the segment goes on degraded
    /// (warned once, counted) and the roll is retried after [`ROLL_RETRY`].
    fn failure_roll_due(&mut self) -> bool {
        let Some(seg) = self.seg.as_mut() else {
            return false;
        };
        let faults = seg.ledger.faults();
        if faults.is_empty() {
            return false;
        }
        let now = Instant::now();
        if seg.retry_roll_at.is_some_and(|t| now < t) {
            return false;
        }
        for (id, fault) in &faults {
            match fault {
                BookieFault::Unreachable => {
                    self.suspects.insert(*id, now);
                }
                // It answers again (it came back and only misses this
                // ledger's earlier entries): fit for the next ensemble.
                BookieFault::Behind => {
                    self.suspects.remove(id);
                }
            }
        }
        self.suspects
            .retain(|_, at| now.duration_since(*at) < SUSPECT_TTL);
        let avoid: Vec<NodeId> = self.suspects.keys().copied().collect();
        match self
            .ctx
            .bookies
            .place(self.cfg.ensemble_size as usize, seg.ledger.ledger_id(), &avoid)
        {
            Ok(_) => true,
            Err(e) => {
                seg.retry_roll_at = Some(now + ROLL_RETRY);
                if !seg.degraded {
                    seg.degraded = true;
                    metrics::DEGRADED_SEGMENTS.inc();
                    warn!(
                        lssn = seg.lssn,
                        ensemble = ?seg.ledger.ensemble_ids(),
                        failed = ?faults,
                        error = %e,
                        retry = ?ROLL_RETRY,
                        "a bookie of the segment's ensemble failed and no healthy ensemble is available: \
                         writing degraded on the remaining bookies (still acknowledged at the ack quorum)"
                    );
                }
                false
            }
        }
    }

    /// Make sure a segment is open for the next entry: roll a full one, or
    /// one with a failed bookie (after confirming everything in flight),
    /// open a new one if needed.
    async fn prepare_segment(
        &mut self,
        inflight: &mut FuturesOrdered<InflightFuture>,
    ) -> std::result::Result<(), (StorageError, Vec<Inflight>)> {
        let full = self
            .seg
            .as_ref()
            .is_some_and(|s| s.bytes >= self.cfg.max_segment_bytes);
        let failed = self.failure_roll_due();
        if full || failed {
            while let Some((res, inf)) = inflight.next().await {
                if let Err(e) = res {
                    return Err((e, vec![inf]));
                }
                self.commit(inf);
            }
            let old = self.seg.take();
            let ensemble = old.as_ref().map(|s| s.ledger.ensemble_ids());
            self.open_segment(old).await.map_err(|e| (e, Vec::new()))?;
            self.write_snapshot(inflight);
            if failed {
                metrics::ENSEMBLE_ROLLS.inc();
                info!(
                    old_ensemble = ?ensemble,
                    new_ensemble = ?self.seg.as_ref().map(|s| s.ledger.ensemble_ids()),
                    "segment rolled to a healthy ensemble after a bookie failed"
                );
            }
        }
        if self.seg.is_none() {
            self.open_segment(None).await.map_err(|e| (e, Vec::new()))?;
            self.write_snapshot(inflight);
        }
        Ok(())
    }

    /// Write the stream state's snapshot as control entries (no records,
    /// no sequence ids), each at most `max_entry_bytes`: first in a new
    /// segment (called right after it opened, before any append is
    /// admitted into it) and whenever [`snapshot_due`]. The snapshot is the
    /// state after every append issued before it. Not counted in the
    /// segment's size, so a large state never makes every segment "full".
    fn write_snapshot(&mut self, inflight: &mut FuturesOrdered<InflightFuture>) {
        let Some(state) = &self.shared.state else {
            return;
        };
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        let snapshot = state.snapshot(distlog_metadata::now_ms() as i64);
        self.since_snapshot = (0, snapshot.len() as u64);
        let step = self.cfg.max_entry_bytes.max(1);
        let mut rest = snapshot;
        while !rest.is_empty() {
            let piece = rest.split_to(step.min(rest.len()));
            let len = piece.len() as u32;
            let (entry_id, fut) = seg.ledger.add(self.next_offset, 0, self.txid, vec![piece]);
            let inf = Inflight {
                lssn: seg.lssn,
                row: IndexRow {
                    entry_id,
                    first_seq: self.next_offset,
                    record_count: 0,
                    txid: self.txid,
                    len,
                },
                chunks: Vec::new(),
                replies: Vec::new(),
            };
            inflight.push_back(fut.map(move |r| (r, inf)).boxed());
        }
        metrics::STATE_SNAPSHOTS.inc();
    }

    /// Start a new segment: allocate a ledger, record the segment in
    /// metadata with a compare-and-set on our epoch.
    async fn open_segment(&mut self, sealing: Option<OpenSegment>) -> Result<()> {
        let result = self.open_segment_inner(sealing.as_ref()).await;
        if let Some(old) = sealing {
            // The full segment leaves the writer either way: sealed by the
            // roll, or (on failure) left InProgress for recovery.
            old.retire();
            if result.is_ok() {
                metrics::SEGMENT_ROLLS.inc();
                info!(lssn = old.lssn, bytes = old.bytes, "segment rolled");
            }
        }
        result
    }

    /// Start a new segment on a fresh ledger, recording it in metadata with
    /// a compare-and-set on our epoch; when `sealing` is the full segment
    /// (all its entries confirmed), seal it in the same command.
    async fn open_segment_inner(&mut self, sealing: Option<&OpenSegment>) -> Result<()> {
        let ledger_id = match self.next_ledger.take() {
            Some(pending) => match pending.await {
                Ok(Ok(id)) => id,
                _ => allocate_ledger(&self.ctx.meta).await?,
            },
            None => allocate_ledger(&self.ctx.meta).await?,
        };
        let (e, qw, qa) = (self.cfg.ensemble_size, self.cfg.write_quorum, self.cfg.ack_quorum);
        let (qw, qa) = (qw.min(e), qa.min(qw).min(e));
        let now = Instant::now();
        self.suspects
            .retain(|_, at| now.duration_since(*at) < SUSPECT_TTL);
        // Placed, and every member probed, before the segment is recorded,
        // so a bookie we cannot reach never becomes part of a stream's
        // metadata unless the ensemble can confirm every entry without it.
        let (ids, ensemble, degraded) = new_ensemble::choose(
            &self.ctx.bookies,
            (e as usize, qw as usize, qa as usize),
            ledger_id,
            &mut self.suspects,
        )
        .await?;
        if degraded {
            warn!(
                ledger = ledger_id,
                ensemble = ?ids,
                "opening a segment on a degraded ensemble: entries are acknowledged by the reachable \
                 ack quorum of each write set; the stream rolls to a healthy ensemble when enough bookies \
                 are back"
            );
        }
        let segment = SegmentMeta {
            lssn: self.next_lssn,
            ledger_id,
            ensemble: ids,
            write_quorum: qw,
            ack_quorum: qa,
            base_offset: self.next_offset,
            start_txid: self.txid,
            state: SegmentState::InProgress,
            last_offset: None,
            end_txid: self.txid,
            last_entry_id: None,
            size_bytes: 0,
            created_ms: distlog_metadata::now_ms(),
            owner_epoch: self.shared.epoch,
        };
        let view = SegmentView::from_meta(&segment);
        let (meta, stream, epoch) = (&self.ctx.meta, self.shared.id, self.shared.epoch);
        let written = match sealing {
            None => meta.add_segment(stream, epoch, segment).await,
            Some(old) => meta.roll_segment(stream, epoch, self.seal_of(old), segment).await,
        };
        written.map_err(|e| match e {
            distlog_metadata::MetadataError::Rejected(_) => StorageError::NotOwner(self.shared.id),
            other => StorageError::Metadata(other),
        })?;
        self.seg = Some(OpenSegment {
            lssn: self.next_lssn,
            ledger: LedgerWriter::new(ledger_id, ensemble),
            created: Instant::now(),
            bytes: 0,
            empty: true,
            degraded: false,
            retry_roll_at: None,
        });
        {
            let mut v = self.shared.view.write();
            if let Some(old) = sealing {
                if let Some(s) = v.segments.last_mut().filter(|s| s.lssn == old.lssn) {
                    s.completed = true;
                }
            }
            v.segments.push(view);
        }
        self.next_lssn += 1;
        metrics::ACTIVE_SEGMENTS.inc();
        let meta = self.ctx.meta.clone();
        self.next_ledger = Some(tokio::spawn(async move { allocate_ledger(&meta).await }));
        debug!(
            lssn = self.next_lssn - 1,
            ledger_id,
            base_offset = self.next_offset,
            "segment opened"
        );
        Ok(())
    }

    /// (last offset, end txid) of a segment whose entries are all
    /// confirmed, from the readers' view.
    fn seal_values(&self, seg: &OpenSegment) -> (Option<u64>, u64) {
        let v = self.shared.view.read();
        let s = v.segments.last().filter(|s| s.lssn == seg.lssn);
        (
            s.filter(|s| !s.is_empty()).map(|s| s.next_offset - 1),
            s.map_or(self.txid, |s| s.end_txid),
        )
    }

    /// The seal of a segment whose entries are all confirmed.
    fn seal_of(&self, seg: &OpenSegment) -> SegmentSeal {
        let (last_offset, end_txid) = self.seal_values(seg);
        SegmentSeal {
            lssn: seg.lssn,
            last_offset,
            end_txid,
            last_entry_id: seg.ledger.lac(),
            size_bytes: seg.bytes,
        }
    }

    /// Seal the open segment (all its entries are confirmed by now).
    async fn complete_segment(&mut self) -> Result<()> {
        let Some(seg) = self.seg.take() else {
            return Ok(());
        };
        seg.retire();
        let seal = self.seal_of(&seg);
        self.ctx
            .meta
            .seal_segment(self.shared.id, self.shared.epoch, seal)
            .await
            .map_err(|e| match e {
                distlog_metadata::MetadataError::Rejected(_) => StorageError::NotOwner(self.shared.id),
                other => StorageError::Metadata(other),
            })?;
        if let Some(s) = self
            .shared
            .view
            .write()
            .segments
            .last_mut()
            .filter(|s| s.lssn == seg.lssn)
        {
            s.completed = true;
        }
        metrics::SEGMENT_ROLLS.inc();
        info!(
            lssn = seg.lssn,
            last_offset = ?seal.last_offset,
            bytes = seg.bytes,
            "segment completed"
        );
        Ok(())
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

    /// Answer a duplicate with its original's position: now if the
    /// original is committed, else once the high watermark passes it (its
    /// entry is in flight; if that entry fails, the writer fails and so
    /// does this answer, and the client's retry meets the rebuilt state).
    fn answer_duplicate(&mut self, reply: Reply, base_offset: u64, next_offset: u64) {
        let (hw, log_start) = {
            let v = self.shared.view.read();
            (v.high_watermark, v.log_start_offset)
        };
        if hw >= next_offset {
            let _ = reply.send(Ok(AppendResult {
                base_offset,
                dlsn: None,
                log_start_offset: log_start,
            }));
        } else {
            self.pending_duplicates
                .push_back((reply, base_offset, next_offset));
        }
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
        // Duplicates wait in the order of their originals' ends, which
        // commit in order.
        while self
            .pending_duplicates
            .front()
            .is_some_and(|(_, _, need)| *need <= next)
        {
            if let Some((reply, base_offset, _)) = self.pending_duplicates.pop_front() {
                let _ = reply.send(Ok(AppendResult {
                    base_offset,
                    dlsn: None,
                    log_start_offset: log_start,
                }));
            }
        }
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
        let fail_inf = |inf: Inflight| {
            for (reply, _) in inf.replies {
                let _ = reply.send(Err(e.duplicate()));
            }
        };
        done.into_iter().for_each(fail_inf);
        for (reply, _, _) in self.pending_duplicates.drain(..) {
            let _ = reply.send(Err(e.duplicate()));
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
