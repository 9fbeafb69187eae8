//! The writer's segments: opening one (a ledger, an ensemble, a
//! compare-and-set in metadata), rolling by size, age or a failed bookie,
//! and sealing.
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

use std::time::Instant;

use distlog_metadata::{LedgerId, NodeId, SegmentMeta, SegmentSeal, SegmentState};
use futures::stream::{FuturesOrdered, StreamExt};
use tracing::{debug, info, warn};

use super::{Inflight, InflightFuture, LogWriter, ROLL_RETRY, SUSPECT_TTL};
use crate::error::{Result, StorageError};
use crate::ledger::handle::{BookieFault, LedgerWriter};
use crate::log::new_ensemble;
use crate::log::segment::SegmentView;
use crate::metrics;

/// The segment currently being written.
pub(super) struct OpenSegment {
    pub(super) lssn: u64,
    pub(super) ledger: LedgerWriter,
    pub(super) created: Instant,
    pub(super) bytes: u64,
    pub(super) empty: bool,
    /// Written degraded: a bookie failed and no roll was possible yet.
    pub(super) degraded: bool,
    /// No roll attempt before this instant (degraded segments).
    pub(super) retry_roll_at: Option<Instant>,
}

impl OpenSegment {
    /// The segment leaves the writer (sealed, or left for recovery).
    pub(super) fn retire(&self) {
        metrics::ACTIVE_SEGMENTS.dec();
        if self.degraded {
            metrics::DEGRADED_SEGMENTS.dec();
        }
    }
}

/// Allocate a fresh ledger id from the metadata store.
async fn allocate_ledger(meta: &distlog_metadata::MetadataStore) -> Result<LedgerId> {
    Ok(meta.allocate_ledger().await?)
}

impl LogWriter {
    /// Whether the open segment should be rolled now because a bookie of
    /// its ensemble failed (see module docs): some bookie failed an add, no
    /// retry delay is pending, and a full ensemble without the failed
    /// bookies can be placed. When none can, the segment goes on degraded
    /// (warned once, counted) and the roll is retried after [`ROLL_RETRY`].
    pub(super) fn failure_roll_due(&mut self) -> bool {
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
    pub(super) async fn prepare_segment(
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

    /// Start a new segment: allocate a ledger, record the segment in
    /// metadata with a compare-and-set on our epoch.
    pub(super) async fn open_segment(&mut self, sealing: Option<OpenSegment>) -> Result<()> {
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
        *self.shared.open_segment.lock() = Some((self.next_lssn, 0));
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
    pub(super) async fn complete_segment(&mut self) -> Result<()> {
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
}
