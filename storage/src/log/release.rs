//! Freeing ledgers whose segments left the metadata (a deleted topic, a
//! truncated stream), and finding where a ledger's copies are.
//!
//! A released ledger's copies live on the bookies of its segment's
//! ensemble, which in a cluster are mostly other nodes. The stream's owner
//! at release time deletes the ledger on every bookie of the ensemble over
//! the bookie protocol (in-process for its own bookie). When the stream had
//! no owner, or its owner is no longer live, each bookie of the ensemble
//! deletes its own copy as it learns of the release. A bookie that is down
//! or unreachable keeps its copy until it next starts, when the orphan
//! garbage collection ([`super::gc`]) removes every ledger no segment
//! references.

use std::time::Duration;

use distlog_metadata::{now_ms, LedgerId, NodeId, ReleasedLedger};
use futures::StreamExt;
use tracing::{info, warn};

use super::context::NsCtx;
use super::replicas::{BookieReplica, REPLICA_INFO_WAIT};
use crate::metrics;

/// How long one bookie may take to delete a ledger before the delete is
/// given up (the bookie then collects it as an orphan at its next start).
pub const DELETE_WAIT: Duration = Duration::from_secs(10);

/// Ledger deletes in flight at once.
const DELETE_CONCURRENCY: usize = 16;

/// Why ledgers are released (the `reason` label of the deletes metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Their topic was deleted.
    TopicDeleted,
    /// Their stream was truncated past them.
    Truncated,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::TopicDeleted => "topic_deleted",
            Reason::Truncated => "truncated",
        }
    }
}

/// The bookies this node deletes `ledger` from: every bookie of the
/// ensemble when this node owned the stream; its own bookie when that is
/// in the ensemble and the stream's owner is gone (none, or not live);
/// otherwise none (the owner does it).
pub(crate) fn delete_targets(ctx: &NsCtx, ledger: &ReleasedLedger) -> Vec<NodeId> {
    let me = ctx.config.broker_id;
    if ledger.stream_owner == Some(me) {
        return ledger.ensemble.clone();
    }
    let now = now_ms();
    let owner_live = ledger.stream_owner.is_some_and(|o| {
        ctx.meta
            .read(|s| s.brokers.get(&o).is_some_and(|b| b.is_live(now)))
    });
    match ctx.bookies.local().map(|b| b.bookie_id()) {
        Some(local) if !owner_live && ledger.ensemble.contains(&local) => vec![local],
        _ => Vec::new(),
    }
}

/// Delete the released ledgers this node is responsible for (see
/// [`delete_targets`]) on their bookies, concurrently, each bookie given at
/// most [`DELETE_WAIT`]. Failures are logged and counted, never returned:
/// the bookie collects what it missed when it next starts. Returns the
/// number of ledger copies deleted.
pub(crate) async fn delete_released(ctx: &NsCtx, ledgers: &[ReleasedLedger], reason: Reason) -> usize {
    let jobs: Vec<(LedgerId, NodeId)> = ledgers
        .iter()
        .flat_map(|l| delete_targets(ctx, l).into_iter().map(move |b| (l.ledger_id, b)))
        .collect();
    if jobs.is_empty() {
        return 0;
    }
    let results: Vec<bool> = futures::stream::iter(jobs)
        .map(|(ledger, bookie)| async move {
            let outcome = match ctx.bookies.client(bookie).await {
                Ok(client) => match tokio::time::timeout(DELETE_WAIT, client.delete(ledger)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {DELETE_WAIT:?}")),
                },
                Err(e) => Err(e.to_string()),
            };
            let ok = outcome.is_ok();
            metrics::LEDGER_DELETES
                .with_label_values(&[reason.label(), if ok { "ok" } else { "failed" }])
                .inc();
            if let Err(error) = outcome {
                warn!(
                    ledger,
                    bookie = bookie.get(),
                    %error,
                    "could not delete a released ledger on a bookie; that bookie deletes it as an \
                     orphan when it next starts"
                );
            }
            ok
        })
        .buffer_unordered(DELETE_CONCURRENCY)
        .collect()
        .await;
    let deleted = results.iter().filter(|ok| **ok).count();
    info!(
        reason = reason.label(),
        deleted,
        failed = results.len() - deleted,
        "deleted released ledgers on their bookies"
    );
    deleted
}

/// What every registered bookie (live or not) holds of `ledger`, in bookie
/// id order: the check that a deleted topic's ledgers are gone everywhere,
/// and where a ledger lives (without a segment, stripes are unknown).
/// Each bookie gets at most
/// [`REPLICA_INFO_WAIT`]; one that does not answer is reported
/// unreachable with its error.
pub(crate) async fn whereabouts(ctx: &NsCtx, ledger: LedgerId) -> Vec<BookieReplica> {
    let asks = ctx.bookies.registered().into_iter().map(|bookie| async move {
        let answer = match ctx.bookies.client(bookie).await {
            Ok(client) => match tokio::time::timeout(REPLICA_INFO_WAIT, client.ledger_info(ledger)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {REPLICA_INFO_WAIT:?}")),
            },
            Err(e) => Err(e.to_string()),
        };
        BookieReplica::from_answer(bookie, answer)
    });
    futures::future::join_all(asks).await
}
