//! Replica reports: for each segment of a stream, which entries each bookie
//! of its ensemble actually holds — the check behind "every acknowledged
//! entry is durable on at least `Qa` bookies", answered by asking the
//! bookies themselves (the `LedgerInfo` op), never from the writer's
//! bookkeeping.

use std::time::Duration;

use distlog_metadata::{LedgerId, SegmentState, StreamId};
use serde::Serialize;

use super::segment::SegmentView;
use super::stream::{LogStream, NsCtx};
use crate::error::{Result, StorageError};
use crate::ledger::handle::{self, Ensemble};

/// How long one bookie may take to describe a ledger before it is reported
/// unreachable (a report never hangs on a dead bookie).
pub const REPLICA_INFO_WAIT: Duration = Duration::from_secs(3);

/// What one bookie of a segment's ensemble holds of its ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookieReplica {
    /// Bookie (node) id.
    pub bookie: u32,
    /// Whether the bookie answered.
    pub reachable: bool,
    /// Whether the bookie has the ledger at all.
    pub exists: bool,
    /// Entries it holds: entry ids `0..entries` (0 when unreachable).
    pub entries: u64,
    /// The last entry id it holds.
    pub last_entry_id: Option<u64>,
    /// Record-file bytes of its copy.
    pub bytes: u64,
    /// Whether its copy is fenced.
    pub fenced: bool,
    /// The LAC it last learned from the writer.
    pub lac: Option<u64>,
    /// Why it did not answer (when unreachable).
    pub error: Option<String>,
}

/// One segment of a stream and the state of its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentReplicas {
    /// Log segment sequence number.
    pub lssn: u64,
    /// The segment's ledger.
    pub ledger_id: LedgerId,
    /// Bookie ids of its ensemble, in ensemble order.
    pub ensemble: Vec<u32>,
    /// Write quorum.
    pub write_quorum: u8,
    /// Ack quorum.
    pub ack_quorum: u8,
    /// First sequence id (offset) of the segment.
    pub base_offset: u64,
    /// `in_progress` or `completed`.
    pub state: &'static str,
    /// Last offset of a completed segment.
    pub last_offset: Option<u64>,
    /// The last committed entry id: from metadata for a completed segment;
    /// for the segment this node is writing, the writer's LAC; otherwise
    /// unknown (`None`).
    pub committed_last_entry_id: Option<u64>,
    /// Per bookie of the ensemble, in ensemble order.
    pub replicas: Vec<BookieReplica>,
    /// Committed entries held by fewer than `ack_quorum` of their write
    /// set (0 in a healthy log; unknown committed end counts nothing).
    pub under_replicated_entries: u64,
}

/// The replica report of `stream`: every segment in metadata, oldest first,
/// with what each of its bookies holds (asked concurrently, at most
/// [`REPLICA_INFO_WAIT`] per bookie). `open` is the stream if this node
/// writes it (its in-progress segment's committed end is then known).
pub(crate) async fn report(
    ctx: &NsCtx,
    id: StreamId,
    open: Option<&LogStream>,
) -> Result<Vec<SegmentReplicas>> {
    let segments = ctx
        .meta
        .read(|s| s.stream(&id).map(|st| st.segments.clone()))
        .ok_or(StorageError::NoSuchStream(id))?;
    let live: Vec<SegmentView> = open.map_or_else(Vec::new, |s| s.shared.view.read().segments.clone());
    let mut out = Vec::with_capacity(segments.len());
    for seg in &segments {
        let completed = seg.state == SegmentState::Completed;
        let committed = if completed {
            seg.last_entry_id
        } else {
            live.iter()
                .find(|v| v.lssn == seg.lssn)
                .and_then(|v| v.last_entry_id)
        };
        let view = SegmentView::from_meta(seg);
        let ensemble = ctx.bookies.ensemble(&view).await?;
        let replicas: Vec<BookieReplica> = handle::ledger_infos(&ensemble, seg.ledger_id, REPLICA_INFO_WAIT)
            .await
            .into_iter()
            .map(|(bookie, answer)| match answer {
                Ok(info) => BookieReplica {
                    bookie,
                    reachable: true,
                    exists: info.exists,
                    entries: info.entries,
                    last_entry_id: info.last_entry_id,
                    bytes: info.bytes,
                    fenced: info.fenced,
                    lac: info.lac,
                    error: None,
                },
                Err(e) => BookieReplica {
                    bookie,
                    reachable: false,
                    exists: false,
                    entries: 0,
                    last_entry_id: None,
                    bytes: 0,
                    fenced: false,
                    lac: None,
                    error: Some(e.to_string()),
                },
            })
            .collect();
        let under = under_replicated(&ensemble, &replicas, committed);
        out.push(SegmentReplicas {
            lssn: seg.lssn,
            ledger_id: seg.ledger_id,
            ensemble: seg.ensemble.clone(),
            write_quorum: seg.write_quorum,
            ack_quorum: seg.ack_quorum,
            base_offset: seg.base_offset,
            state: if completed { "completed" } else { "in_progress" },
            last_offset: seg.last_offset,
            committed_last_entry_id: committed,
            replicas,
            under_replicated_entries: under,
        });
    }
    Ok(out)
}

/// Committed entries (`0..=committed`) held by fewer than `Qa` bookies of
/// their write set. A bookie holds a dense prefix `0..entries`, so entry
/// `e` is on bookie `i` exactly when `i` is in its write set and
/// `e < entries(i)`.
fn under_replicated(ensemble: &Ensemble, replicas: &[BookieReplica], committed: Option<u64>) -> u64 {
    let Some(last) = committed else { return 0 };
    // Only the tail can be short; count from the lowest prefix end upwards.
    let lowest = replicas.iter().map(|r| r.entries).min().unwrap_or(0);
    let mut under = 0;
    for e in lowest..=last {
        let copies = ensemble
            .write_set(e)
            .filter(|i| replicas.get(*i).is_some_and(|r| e < r.entries))
            .count();
        if copies < ensemble.ack_quorum {
            under += 1;
        }
    }
    under
}
