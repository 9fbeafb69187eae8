//! Replica reports: for each segment of a stream, which entries each bookie
//! of its ensemble actually holds — the check behind "every acknowledged
//! entry is durable on at least `Qa` bookies", answered by asking the
//! bookies themselves (the `LedgerInfo` op), never from the writer's
//! bookkeeping.
//!
//! Copies are counted per committed entry over *its write set* (with
//! striping, `E > Qw`, each bookie holds only its stripe; see
//! [`crate::ledger::ensemble`]). A bookie's holdings follow from what it
//! reports by the stripe-prefix invariant: it holds the first `entries`
//! entries of its stripe, which end at its `last_entry_id`. Served as JSON
//! at `GET /admin/partitions/{topic}/{p}/replicas`; the fields are the
//! ones documented on [`SegmentReplicas`] and [`BookieReplica`].

use std::time::Duration;

use distlog_metadata::{LedgerId, NodeId, SegmentState, StreamId};
use serde::Serialize;

use super::context::{LogStream, NsCtx};
use super::segment::SegmentView;
use crate::error::{Result, StorageError};
use crate::ledger::handle::{self, Ensemble};
use crate::ledger::LedgerInfo;

/// How long one bookie may take to describe a ledger before it is reported
/// unreachable (a report never hangs on a dead bookie).
pub const REPLICA_INFO_WAIT: Duration = Duration::from_secs(3);

/// What one bookie of a segment's ensemble holds of its ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookieReplica {
    /// Bookie (node) id.
    pub bookie: NodeId,
    /// Whether the bookie answered.
    pub reachable: bool,
    /// Whether the bookie has the ledger at all.
    pub exists: bool,
    /// How many entries it holds (0 when unreachable): the first `entries`
    /// entries of its stripe, the ids `0..entries` when E = Qw.
    pub entries: u64,
    /// The highest entry id it holds.
    pub last_entry_id: Option<u64>,
    /// How many committed entries its stripe assigns to it (the committed
    /// entries whose write set contains it); `None` while the committed end
    /// is unknown.
    pub stripe_entries: Option<u64>,
    /// How many of those it lacks (all of them when unreachable); `None`
    /// while the committed end is unknown. 0 on every bookie means every
    /// committed entry is on its whole write set.
    pub missing_entries: Option<u64>,
    /// Record-file bytes of its copy.
    pub bytes: u64,
    /// Whether its copy is fenced.
    pub fenced: bool,
    /// The LAC it last learned from the writer.
    pub lac: Option<u64>,
    /// Why it did not answer (when unreachable).
    pub error: Option<String>,
}

impl BookieReplica {
    /// What `bookie` answered about a ledger (its info, or why it did not
    /// answer); the stripe counts are left unknown for the caller to fill.
    pub(crate) fn from_answer(bookie: NodeId, answer: std::result::Result<LedgerInfo, String>) -> Self {
        match answer {
            Ok(info) => BookieReplica {
                bookie,
                reachable: true,
                exists: info.exists,
                entries: info.entries,
                last_entry_id: info.last_entry_id,
                stripe_entries: None,
                missing_entries: None,
                bytes: info.bytes,
                fenced: info.fenced,
                lac: info.lac,
                error: None,
            },
            Err(error) => BookieReplica {
                bookie,
                reachable: false,
                exists: false,
                entries: 0,
                last_entry_id: None,
                stripe_entries: None,
                missing_entries: None,
                bytes: 0,
                fenced: false,
                lac: None,
                error: Some(error),
            },
        }
    }
}

/// One segment of a stream and the state of its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentReplicas {
    /// Log segment sequence number.
    pub lssn: u64,
    /// The segment's ledger.
    pub ledger_id: LedgerId,
    /// Bookie ids of its ensemble, in ensemble order.
    pub ensemble: Vec<NodeId>,
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
    /// Committed entries held by fewer than `ack_quorum` bookies of their
    /// write set: the durability promise is broken for them (0 in a healthy
    /// log; an unknown committed end counts nothing).
    pub under_replicated_entries: u64,
    /// Committed entries held by fewer than `write_quorum` bookies of their
    /// write set (durable, but short of the full copy count, e.g. after a
    /// bookie failed while the segment was written degraded).
    pub below_write_quorum_entries: u64,
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
        let infos = handle::ledger_infos(&ensemble, seg.ledger_id, REPLICA_INFO_WAIT).await;
        // Per bookie: the entry its stripe is held up to (None: nothing held,
        // or unreachable).
        let helds: Vec<Option<u64>> = infos
            .iter()
            .enumerate()
            .map(|(i, (_, answer))| {
                answer
                    .as_ref()
                    .ok()
                    .and_then(|info| held_upto(&ensemble, i, info))
            })
            .collect();
        let replicas: Vec<BookieReplica> = infos
            .into_iter()
            .enumerate()
            .map(|(index, (bookie, answer))| {
                let (stripe_entries, missing_entries) = match committed {
                    Some(last) => {
                        let stripe = ensemble.stripe_count(index, last.saturating_add(1));
                        let have = helds[index]
                            .map_or(0, |h| ensemble.stripe_count(index, h.min(last).saturating_add(1)));
                        (Some(stripe), Some(stripe - have))
                    }
                    None => (None, None),
                };
                BookieReplica {
                    stripe_entries,
                    missing_entries,
                    ..BookieReplica::from_answer(bookie, answer.map_err(|e| e.to_string()))
                }
            })
            .collect();
        let (under, below_qw) = short_entries(&ensemble, &helds, committed);
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
            below_write_quorum_entries: below_qw,
        });
    }
    Ok(out)
}

/// The entry up to which bookie `index` holds its stripe (`None`: it holds
/// nothing). By the stripe-prefix invariant a bookie holding `entries`
/// entries holds the first `entries` of its stripe, ending at its last
/// entry; should the two disagree (they never do for a bookie enforcing the
/// invariant), the lower end is taken, so copies are never over-counted.
fn held_upto(ensemble: &Ensemble, index: usize, info: &LedgerInfo) -> Option<u64> {
    let by_count = info
        .entries
        .checked_sub(1)
        .map(|k| ensemble.nth_in_stripe(index, k));
    by_count.zip(info.last_entry_id).map(|(a, b)| a.min(b))
}

/// Committed entries (`0..=committed`) held by fewer than `Qa`, and by
/// fewer than `Qw`, bookies of their write set, given the last entry each
/// bookie holds its stripe up to (`None`: nothing, or unreachable). Below
/// the lowest entry some bookie lacks of its stripe every entry is on its
/// whole write set, so counting starts there.
fn short_entries(ensemble: &Ensemble, held: &[Option<u64>], committed: Option<u64>) -> (u64, u64) {
    let Some(last) = committed else { return (0, 0) };
    let holds = |i: usize, e: u64| held.get(i).copied().flatten().is_some_and(|h| e <= h);
    let lowest = (0..ensemble.size())
        .map(|i| match held.get(i).copied().flatten() {
            None => 0,
            Some(h) => ensemble.nth_in_stripe(i, ensemble.stripe_count(i, h.saturating_add(1))),
        })
        .min()
        .unwrap_or(0);
    let (mut under, mut below) = (0, 0);
    for e in lowest..=last {
        let copies = ensemble.write_set(e).filter(|i| holds(*i, e)).count();
        if copies < ensemble.ack_quorum {
            under += 1;
        }
        if copies < ensemble.write_quorum {
            below += 1;
        }
    }
    (under, below)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::ensemble::shape::shape;

    fn info(entries: u64, last: Option<u64>) -> LedgerInfo {
        LedgerInfo {
            exists: true,
            entries,
            last_entry_id: last,
            ..LedgerInfo::default()
        }
    }

    #[test]
    fn copies_are_counted_over_each_entry_s_write_set() {
        // 3/2/2 over entries 0..=8: bookie 0 holds 0,2,3,5,6,8; bookie 1 holds
        // 0,1,3,4,6,7; bookie 2 holds 1,2,4,5,7,8 — six each.
        let en = shape(3, 2, 2);
        let full = [info(6, Some(8)), info(6, Some(7)), info(6, Some(8))];
        let helds: Vec<Option<u64>> = full
            .iter()
            .enumerate()
            .map(|(i, f)| held_upto(&en, i, f))
            .collect();
        assert_eq!(helds, vec![Some(8), Some(7), Some(8)]);
        assert_eq!(short_entries(&en, &helds, Some(8)), (0, 0));
        // Bookie 2 stopped after entry 4 (holds 1, 2, 4): entries 5, 7, 8 have one copy.
        let helds = vec![Some(8), Some(7), held_upto(&en, 2, &info(3, Some(4)))];
        assert_eq!(helds[2], Some(4));
        assert_eq!(short_entries(&en, &helds, Some(8)), (3, 3));
        // Unreachable bookie 1: every entry of its stripe (0,1,3,4,6,7) is short.
        let helds = vec![Some(8), None, Some(8)];
        assert_eq!(short_entries(&en, &helds, Some(8)), (6, 6));
        // Unknown committed end: nothing counted.
        assert_eq!(short_entries(&en, &helds, None), (0, 0));
        // 5/3/2: one copy missing is below Qw but not under Qa.
        let en = shape(5, 3, 2);
        let helds = vec![Some(9), Some(9), Some(9), Some(9), None];
        let stripe_of_4 = (0..=9u64).filter(|e| en.in_write_set(4, *e)).count() as u64;
        assert_eq!(short_entries(&en, &helds, Some(9)), (0, stripe_of_4));
        // A count and a last entry that disagree: the lower end counts.
        assert_eq!(held_upto(&shape(3, 2, 2), 0, &info(2, Some(8))), Some(2));
        assert_eq!(held_upto(&shape(3, 2, 2), 0, &info(0, None)), None);
    }
}
