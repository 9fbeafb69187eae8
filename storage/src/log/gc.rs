//! Ledger garbage collection: ledgers on a node's own bookie that no
//! segment in the metadata store references any more.
//!
//! Topic deletion and truncation delete their ledgers on every bookie of
//! the segment's ensemble through metadata watches ([`super::release`]); a
//! bookie that was down or unreachable then, or a crash between the
//! metadata change and the delete, leaves its copy behind. Each bookie
//! node collects its own at startup, before its bookie is served to other
//! nodes and before any writer runs. That is safe: a ledger becomes
//! referenced (AddSegment) before its first entry is written, so an
//! unreferenced ledger file can only be garbage. A node without the bookie
//! role has nothing to collect.

use std::collections::HashSet;
use std::sync::Arc;

use distlog_metadata::{LedgerId, MetadataStore};
use tracing::info;

use crate::bookie::{Bookie, LocalBookie};
use crate::error::Result;
use crate::ledger::BookieClient;
use crate::metrics;

/// Delete the ledgers of a running `bookie` that no segment references:
/// the copies a truncation or topic deletion left behind when the node
/// that was deleting them crashed, or this bookie missed the delete. Run
/// periodically (with the retention check), so they do not wait for this
/// bookie's next start.
///
/// Safe while writers run: the bookie's ledgers are listed *before* a
/// metadata [`MetadataStore::barrier`], and the references read after it.
/// A ledger on the bookie was referenced (AddSegment committed) before its
/// first entry was written, so before it was listed, so before the barrier;
/// after the barrier the local replica has applied that reference. What is
/// unreferenced then was released (or never used) and is garbage. When the
/// barrier fails (no metadata leader, a lagging replica) nothing is deleted.
/// Returns the ledgers deleted.
pub async fn collect_orphan_ledgers_live(
    meta: &MetadataStore,
    bookie: &Arc<Bookie>,
) -> Result<Vec<LedgerId>> {
    let listed = bookie.ledgers();
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    meta.barrier().await?;
    delete_unreferenced(meta, bookie, listed).await
}

/// Delete every ledger of `bookie` that no segment references. Must run
/// before writers start and before the bookie is served to other nodes.
/// Returns the ledgers deleted.
pub async fn collect_orphan_ledgers(meta: &MetadataStore, bookie: &Arc<Bookie>) -> Result<Vec<LedgerId>> {
    delete_unreferenced(meta, bookie, bookie.ledgers()).await
}

/// Delete the ledgers of `listed` that no segment in the local metadata
/// replica references.
async fn delete_unreferenced(
    meta: &MetadataStore,
    bookie: &Arc<Bookie>,
    listed: Vec<LedgerId>,
) -> Result<Vec<LedgerId>> {
    let referenced: HashSet<LedgerId> = meta.read(|s| {
        s.streams
            .values()
            .flat_map(|st| st.segments.iter().map(|g| g.ledger_id))
            .collect()
    });
    let orphans: Vec<LedgerId> = listed.into_iter().filter(|l| !referenced.contains(l)).collect();
    let client = LocalBookie(bookie.clone());
    for l in &orphans {
        client.delete(*l).await?;
        metrics::LEDGER_DELETES.with_label_values(&["orphan", "ok"]).inc();
    }
    if !orphans.is_empty() {
        info!(ledgers = ?orphans, "deleted orphan ledgers no segment references");
    }
    Ok(orphans)
}
