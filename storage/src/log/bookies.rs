//! The bookies a namespace can reach: its own, in-process (when the node
//! runs the bookie role), and every other registered bookie over the
//! network.
//!
//! Segment metadata names its ensemble by bookie (node) id; this set turns
//! ids into clients. A node's own bookie is always reached in-process; any
//! other id is resolved through the metadata store (the address a node
//! registered with `--bookie-listen`) into a [`RemoteBookie`], created once
//! and reused. New segments are placed here too: on a node with a bookie,
//! the local bookie alone for E = 1; otherwise (E > 1, or a broker-only
//! node of the split topology, which has no bookie of its own) `E` live
//! registered bookies chosen by [`choose_ensemble`].

use std::collections::HashMap;
use std::sync::Arc;

use distlog_metadata::{LedgerId, MetadataStore, NodeId, SegmentState};
use parking_lot::RwLock;

use super::segment::SegmentView;
use crate::bookie_net::{BookieAddr, ClientConfig, RemoteBookie};
use crate::error::{Result, StorageError};
use crate::ledger::handle::Ensemble;
use crate::ledger::placement::{choose_ensemble, BookieCandidate};
use crate::ledger::BookieClient;

/// Bookie clients by id.
pub(crate) struct BookieSet {
    /// This node's bookie; `None` on a node without the bookie role.
    local: Option<Arc<dyn BookieClient>>,
    remote: RwLock<HashMap<NodeId, Arc<dyn BookieClient>>>,
    meta: Arc<MetadataStore>,
}

impl BookieSet {
    /// The set of `local` (if this node runs a bookie) plus whatever the
    /// metadata store registers.
    pub fn new(local: Option<Arc<dyn BookieClient>>, meta: Arc<MetadataStore>) -> Self {
        BookieSet {
            local,
            remote: RwLock::new(HashMap::new()),
            meta,
        }
    }

    /// This node's bookie, if it runs one.
    pub fn local(&self) -> Option<&Arc<dyn BookieClient>> {
        self.local.as_ref()
    }

    fn local_id(&self) -> Option<NodeId> {
        self.local.as_ref().map(|b| b.bookie_id())
    }

    /// The client of bookie `id`.
    pub async fn client(&self, id: NodeId) -> Result<Arc<dyn BookieClient>> {
        if let Some(local) = self.local.as_ref().filter(|l| l.bookie_id() == id) {
            return Ok(local.clone());
        }
        if let Some(c) = self.remote.read().get(&id) {
            return Ok(c.clone());
        }
        let addr = self
            .meta
            .read(|s| s.brokers.get(&id).and_then(|b| b.bookie_addr.clone()))
            .ok_or_else(|| {
                StorageError::NotEnoughBookies(format!(
                    "bookie {id} has no registered address; is that node running with --bookie-listen?"
                ))
            })?;
        // A name is resolved at each connect, not here: an unresolvable
        // bookie (its container is gone) must fail as that one bookie, not
        // fail every ensemble it belongs to.
        let client: Arc<dyn BookieClient> = Arc::new(RemoteBookie::new(
            id,
            BookieAddr::parse(&addr),
            ClientConfig::default(),
        ));
        Ok(self.remote.write().entry(id).or_insert(client).clone())
    }

    /// The ensemble a segment was written to.
    pub async fn ensemble(&self, seg: &SegmentView) -> Result<Ensemble> {
        self.ensemble_of(&seg.ensemble, seg.write_quorum, seg.ack_quorum)
            .await
    }

    /// Clients of bookies `ids`, in that order, as an ensemble with the
    /// given quorums.
    pub async fn ensemble_of(
        &self,
        ids: &[NodeId],
        write_quorum: usize,
        ack_quorum: usize,
    ) -> Result<Ensemble> {
        let mut bookies = Vec::with_capacity(ids.len());
        for id in ids {
            bookies.push(self.client(*id).await?);
        }
        Ensemble::new(bookies, write_quorum, ack_quorum)
    }

    /// Choose the bookies of a new ledger: on a node with a bookie, that
    /// bookie alone when `size` is 1; otherwise `size` live registered
    /// bookies, least loaded (in-progress segments they hold) and spread
    /// over racks — a node without a bookie of its own (a broker-only
    /// node) places even E = 1 ledgers this way, never on itself. Bookies
    /// in `exclude` (those that just failed the writer) are never chosen;
    /// fails with `NotEnoughBookies` when too few remain.
    pub fn place(&self, size: usize, ledger: LedgerId, exclude: &[NodeId]) -> Result<Vec<NodeId>> {
        match self.local_id() {
            Some(local) if size <= 1 && exclude.contains(&local) => {
                return Err(StorageError::NotEnoughBookies(format!(
                    "an ensemble of 1 is this node's bookie {local}, which failed"
                )));
            }
            Some(local) if size <= 1 => return Ok(vec![local]),
            _ => {}
        }
        let (live, _) = self.candidates(exclude);
        choose_ensemble(&live, size.max(1), ledger).map_err(|e| self.explain(e))
    }

    /// Say, on a node without a bookie, where its ledgers must come from.
    fn explain(&self, e: StorageError) -> StorageError {
        match (e, &self.local) {
            (StorageError::NotEnoughBookies(msg), None) => StorageError::NotEnoughBookies(format!(
                "{msg}; this node runs no bookie (its --roles lack bookie), so its ledgers go only to \
                 live nodes started with --roles including bookie and --bookie-listen HOST:PORT"
            )),
            (e, _) => e,
        }
    }

    /// Choose the bookies of a new ledger when fewer than `size` are live
    /// but at least `ack_quorum` are: every live one (placed as [`place`]
    /// places them), topped up with registered bookies whose lease lapsed,
    /// the most recently live first. Entries are then acknowledged by the
    /// live ones alone (the ack quorum still holds every entry) and the
    /// writer rolls to a healthy ensemble as soon as enough bookies are
    /// back. This keeps a 3/3/2 stream writable with one of three bookies
    /// down, as a segment whose bookie failed mid-write already is. Fails
    /// when fewer than `ack_quorum` bookies are live.
    ///
    /// [`place`]: Self::place
    pub fn place_degraded(&self, size: usize, ack_quorum: usize, ledger: LedgerId) -> Result<Vec<NodeId>> {
        let (live, mut lapsed) = self.candidates(&[]);
        if live.len() < ack_quorum.max(1) || live.len() + lapsed.len() < size {
            return Err(self.explain(StorageError::NotEnoughBookies(format!(
                "an ensemble of {size} needs at least {ack_quorum} live bookies (the ack quorum) and \
                 {size} registered; {} are live and {} registered; start more bookies or lower \
                 distlog.ensemble.size",
                live.len(),
                live.len() + lapsed.len()
            ))));
        }
        let mut ids = choose_ensemble(&live, live.len().min(size), ledger)?;
        lapsed.sort_by_key(|(_, lease)| std::cmp::Reverse(*lease));
        ids.extend(lapsed.iter().map(|(c, _)| c.id).take(size - ids.len()));
        Ok(ids)
    }

    /// Ids of every bookie this set can name: this node's, if any, and
    /// every node registered with a bookie address (live or not), in id
    /// order.
    pub fn registered(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.meta.read(|s| {
            s.brokers
                .values()
                .filter(|b| b.bookie_addr.is_some())
                .map(|b| b.id)
                .collect()
        });
        ids.extend(self.local_id());
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Registered bookies not in `exclude`, with their load (in-progress
    /// segments they hold): the live ones (this node's own bookie always
    /// counts), and the lapsed ones with their lease expiry. A node
    /// without a bookie is never a candidate.
    fn candidates(&self, exclude: &[NodeId]) -> (Vec<BookieCandidate>, Vec<(BookieCandidate, u64)>) {
        let now = distlog_metadata::now_ms();
        let local_id = self.local_id();
        self.meta.read(|s| {
            let mut load: HashMap<NodeId, u64> = HashMap::new();
            for st in s.streams.values() {
                for seg in st.segments.iter().filter(|g| g.state == SegmentState::InProgress) {
                    for b in &seg.ensemble {
                        *load.entry(*b).or_default() += 1;
                    }
                }
            }
            let (mut live, mut lapsed) = (Vec::new(), Vec::new());
            for b in s.brokers.values() {
                let is_local = Some(b.id) == local_id;
                if exclude.contains(&b.id) || (!is_local && b.bookie_addr.is_none()) {
                    continue;
                }
                let c = BookieCandidate {
                    id: b.id,
                    rack: b.rack.clone(),
                    load: load.get(&b.id).copied().unwrap_or(0),
                };
                if is_local || b.is_live(now) {
                    live.push(c);
                } else {
                    lapsed.push((c, b.lease_expires_ms));
                }
            }
            (live, lapsed)
        })
    }
}

#[cfg(test)]
#[path = "bookies_tests.rs"]
mod tests;
