//! The stream state's share of the writer (see
//! [`crate::log::stream_state`]): snapshots written as control entries, and
//! duplicates answered with their original's position once it is committed.

use futures::stream::FuturesOrdered;
use futures::FutureExt;

use super::{Inflight, InflightFuture, LogWriter};
use crate::ledger::IndexRow;
use crate::log::api::AppendResult;
use crate::log::context::Reply;
use crate::metrics;

impl LogWriter {
    /// Write the stream state's snapshot as control entries (no records,
    /// no sequence ids), each at most `max_entry_bytes`: first in a new
    /// segment (called right after it opened, before any append is
    /// admitted into it) and whenever [`snapshot_due`]. The snapshot is the
    /// state after every append issued before it. Not counted in the
    /// segment's size, so a large state never makes every segment "full".
    pub(super) fn write_snapshot(&mut self, inflight: &mut FuturesOrdered<InflightFuture>) {
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

    /// Answer a duplicate with its original's position: now if the
    /// original is committed, else once the high watermark passes it (its
    /// entry is in flight; if that entry fails, the writer fails and so
    /// does this answer, and the client's retry meets the rebuilt state).
    pub(super) fn answer_duplicate(&mut self, reply: Reply, base_offset: u64, next_offset: u64) {
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

    /// The stream is committed up to `next`: answer every waiting duplicate
    /// whose original ends there or before. They wait in arrival order,
    /// which need not be the order of their originals (a retry of an older
    /// batch may come after one of a newer batch), so the whole queue is
    /// looked at; it holds at most the retries of batches still in flight.
    pub(super) fn answer_committed_duplicates(&mut self, next: u64, log_start: u64) {
        if self.pending_duplicates.is_empty() {
            return;
        }
        let mut waiting = std::collections::VecDeque::with_capacity(self.pending_duplicates.len());
        for (reply, base_offset, need) in self.pending_duplicates.drain(..) {
            if need <= next {
                let _ = reply.send(Ok(AppendResult {
                    base_offset,
                    dlsn: None,
                    log_start_offset: log_start,
                }));
            } else {
                waiting.push_back((reply, base_offset, need));
            }
        }
        self.pending_duplicates = waiting;
    }
}
