//! Rebuilding a stream's state when the stream opens (see
//! [`super::stream_state`]), after the previous owner's in-progress segment
//! was recovered and before the writer starts.
//!
//! The writer puts a snapshot of the state (control entries: no records,
//! no sequence ids) at the start of every segment and again whenever
//! [`super::stream_state::snapshot_due`] says so, so the last snapshot is never far from the end
//! of the stream. Rebuilding is two passes over the tail of the last
//! segment that has entries:
//!
//! 1. **Locate**: walk back from the last entry, in windows that double
//!    (8, 16, … entries), reading only what is needed to see which entries
//!    are control entries (payloads are dropped at once), until the start of
//!    the last run of control entries: the last snapshot. A segment with
//!    none (written before stream state existed) is replayed whole.
//! 2. **Replay**: read forward from there, restore the snapshot and fold in
//!    every data entry after it.
//!
//! Memory stays within one read's budget, and the work is bounded by
//! [`super::stream_state::snapshot_due`]'s interval, not by the segment size.

use std::time::Instant;

use tracing::{info, warn};

use super::context::NsCtx;
use super::segment::SegmentView;
use super::stream_state::StreamState;
use crate::error::{Result, StorageError};
use crate::ledger::ensemble::Ensemble;
use crate::ledger::handle;
use crate::metrics;

/// Bytes read per round trip while rebuilding.
const READ_BYTES: usize = 16 << 20;

/// Rebuild `state` from the stream's last segment with entries (see the
/// module docs).
pub(crate) async fn rebuild(ctx: &NsCtx, state: &dyn StreamState, segments: &[SegmentView]) -> Result<()> {
    let started = Instant::now();
    let Some((seg, last)) = segments
        .iter()
        .rev()
        .find_map(|s| s.last_entry_id.map(|last| (s, last)))
    else {
        return Ok(());
    };
    let ensemble = ctx.bookies.ensemble(seg).await?;
    let reader = Reader {
        ctx,
        ensemble: &ensemble,
        ledger: seg.ledger_id,
    };
    let start = reader.last_snapshot_start(last).await?;
    let (replayed, snapshot_bytes) = reader.replay(state, start, last).await?;
    let took = started.elapsed();
    metrics::STATE_REBUILD_SECONDS.observe(took.as_secs_f64());
    info!(
        lssn = seg.lssn,
        from_entry = start,
        last_entry = last,
        snapshot_bytes,
        replayed_entries = replayed,
        took_ms = took.as_millis() as u64,
        "stream state rebuilt"
    );
    Ok(())
}

/// Reads of one ledger for the rebuild.
struct Reader<'a> {
    ctx: &'a NsCtx,
    ensemble: &'a Ensemble,
    ledger: u64,
}

impl Reader<'_> {
    /// Read entries `first..=last` in order, each passed to `each`
    /// (several reads when they exceed one read's budget).
    async fn scan(
        &self,
        first: u64,
        last: u64,
        mut each: impl FnMut(crate::ledger::Entry) -> Result<()>,
    ) -> Result<()> {
        let mut next = first;
        while next <= last {
            let entries = handle::read_entries(
                self.ensemble,
                self.ledger,
                next,
                last,
                READ_BYTES,
                self.ctx.config.speculative_read_delay,
            )
            .await?;
            if entries.is_empty() {
                return Err(StorageError::NoSuchEntry {
                    ledger: self.ledger,
                    entry: next,
                });
            }
            for e in entries {
                next = e.row.entry_id + 1;
                each(e)?;
            }
        }
        Ok(())
    }

    /// The first entry of the last run of control entries at or before
    /// `last` (0 when there is none: replay the whole segment).
    async fn last_snapshot_start(&self, last: u64) -> Result<u64> {
        let mut window = 8u64;
        let mut hi = last;
        // Inside a run of control entries that reaches back past the window.
        let mut run_start: Option<u64> = None;
        loop {
            let lo = hi.saturating_sub(window - 1);
            let mut controls = Vec::new();
            self.scan(lo, hi, |e| {
                controls.push((e.row.entry_id, e.row.record_count == 0));
                Ok(())
            })
            .await?;
            // Walk this window backwards.
            for &(id, control) in controls.iter().rev() {
                match (control, run_start) {
                    (true, _) => run_start = Some(id),
                    (false, Some(start)) => return Ok(start),
                    (false, None) => {}
                }
            }
            if lo == 0 {
                return Ok(run_start.unwrap_or(0));
            }
            hi = lo - 1;
            window = (window * 2).min(1024);
        }
    }

    /// Read forward from `start`, restoring each snapshot (run of control
    /// entries) and replaying each data entry: (data entries replayed,
    /// snapshot bytes).
    async fn replay(&self, state: &dyn StreamState, start: u64, last: u64) -> Result<(u64, usize)> {
        let (mut replayed, mut snapshot_bytes) = (0u64, 0usize);
        // The control entries of the snapshot being collected: (first entry, bytes).
        let mut snapshot: Option<(u64, Vec<u8>)> = None;
        let ledger = self.ledger;
        let restore = |snapshot: Option<(u64, Vec<u8>)>| -> Result<()> {
            match snapshot {
                Some((entry, bytes)) => state.restore(&bytes).map_err(|e| {
                    warn!(ledger, entry, error = %e, "the stream state snapshot cannot be decoded");
                    StorageError::Corrupt { ledger, entry }
                }),
                None => Ok(()),
            }
        };
        self.scan(start, last, |e| {
            if e.row.record_count == 0 {
                snapshot_bytes += e.payload.len();
                snapshot
                    .get_or_insert_with(|| (e.row.entry_id, Vec::new()))
                    .1
                    .extend_from_slice(&e.payload);
            } else {
                restore(snapshot.take())?;
                state.replay(&e.payload, e.row.first_seq);
                replayed += 1;
            }
            Ok(())
        })
        .await?;
        restore(snapshot.take())?;
        Ok((replayed, snapshot_bytes))
    }
}
