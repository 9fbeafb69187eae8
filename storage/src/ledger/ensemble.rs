//! Ensembles and striping: which bookies of a ledger hold which entries.
//!
//! A ledger is written to an ensemble of `E` bookies with write quorum `Qw`
//! and ack quorum `Qa` (`E >= Qw >= Qa >= 1`). As in BookKeeper, entries
//! are striped round robin: the *write set* of entry `e` is the `Qw`
//! bookies at ensemble indexes `e mod E, e+1 mod E, …, e+Qw-1 mod E`, and
//! the entry is confirmed once `Qa` of them made it durable. The bookie at
//! index `i` therefore holds the entries whose residue `e mod E` is one of
//! `i, i-1, …, i-Qw+1 (mod E)`: its *stripe*, `Qw` of every `E` entries.
//! With `E = Qw` every stripe is the whole ledger.
//!
//! # The stripe-prefix invariant
//!
//! Every bookie holds a *prefix of its stripe*: all entries of its stripe up
//! to its last entry, none missing. Each add names the previous entry of
//! the target bookie's stripe ([`Ensemble::prev_in_stripe`], carried as
//! `AddRequest::prev_entry_id`), and the bookie refuses an add whose
//! previous entry is not its own last entry. A bookie that missed an entry
//! of its stripe (it was down, or the add failed) thus refuses every later
//! add of that ledger (`OutOfOrder`, the writer's `BookieFault::Behind`);
//! recovery fills stripes in entry order so they stay prefixes.
//!
//! The invariant is what lets readers, recovery and the replica report
//! reason about a bookie from its last entry alone: bookie `i` holds entry
//! `e` exactly when `i` is in `e`'s write set and `e <= last(i)`.

use std::sync::Arc;

use distlog_metadata::NodeId;

use super::BookieClient;
use crate::error::{Result, StorageError};

/// The bookies of a ledger and its quorum sizes.
#[derive(Clone)]
pub struct Ensemble {
    /// Bookie clients, in ensemble order (as recorded in segment metadata).
    pub bookies: Vec<Arc<dyn BookieClient>>,
    /// Copies written of each entry.
    pub write_quorum: usize,
    /// Copies that must be durable before an entry is confirmed.
    pub ack_quorum: usize,
}

impl Ensemble {
    /// An ensemble, checked: `E >= Qw >= Qa >= 1`.
    pub fn new(bookies: Vec<Arc<dyn BookieClient>>, write_quorum: usize, ack_quorum: usize) -> Result<Self> {
        if bookies.is_empty()
            || write_quorum == 0
            || ack_quorum == 0
            || write_quorum > bookies.len()
            || ack_quorum > write_quorum
        {
            return Err(StorageError::NotEnoughBookies(format!(
                "ensemble of {} with write quorum {write_quorum} and ack quorum {ack_quorum} is not valid \
                 (need E >= Qw >= Qa >= 1)",
                bookies.len()
            )));
        }
        Ok(Ensemble {
            bookies,
            write_quorum,
            ack_quorum,
        })
    }

    /// Ensemble size `E`.
    pub fn size(&self) -> usize {
        self.bookies.len()
    }

    /// Whether entries are striped (`E > Qw`): no bookie holds them all.
    pub fn is_striped(&self) -> bool {
        self.bookies.len() > self.write_quorum
    }

    /// Bookie ids in ensemble order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.bookies.iter().map(|b| b.bookie_id()).collect()
    }

    /// Indexes (into `bookies`) of the write set of entry `entry_id`, its
    /// first (preferred) member first.
    pub fn write_set(&self, entry_id: u64) -> impl Iterator<Item = usize> + '_ {
        let e = self.bookies.len();
        let start = (entry_id % e as u64) as usize;
        (0..self.write_quorum).map(move |i| (start + i) % e)
    }

    /// Whether the bookie at ensemble index `index` is in the write set of
    /// `entry_id` (the entry belongs to its stripe).
    pub fn in_write_set(&self, index: usize, entry_id: u64) -> bool {
        let e = self.bookies.len() as u64;
        let residue = entry_id % e;
        // Distance from the write set's first member to `index`, going up.
        ((index as u64 % e) + e - residue) % e < self.write_quorum as u64
    }

    /// The previous entry of the stripe of bookie `index` before `entry_id`:
    /// the largest entry id below `entry_id` whose write set contains the
    /// bookie, `None` when there is none. For `E = Qw` this is
    /// `entry_id - 1`.
    pub fn prev_in_stripe(&self, index: usize, entry_id: u64) -> Option<u64> {
        // Any E consecutive entries hold Qw >= 1 of the stripe, so at most
        // E steps back.
        (1..=self.bookies.len() as u64)
            .take_while(|back| *back <= entry_id)
            .map(|back| entry_id - back)
            .find(|e| self.in_write_set(index, *e))
    }

    /// How many of the entries `0..n` belong to the stripe of bookie `index`.
    pub fn stripe_count(&self, index: usize, n: u64) -> u64 {
        let e = self.bookies.len() as u64;
        let partial = (0..n % e).filter(|r| self.in_write_set(index, *r)).count() as u64;
        (n / e) * self.write_quorum as u64 + partial
    }

    /// The `k`-th (0-based) entry of the stripe of bookie `index`.
    pub fn nth_in_stripe(&self, index: usize, k: u64) -> u64 {
        let e = self.bookies.len() as u64;
        let qw = self.write_quorum as u64;
        // The residues of the stripe in ascending order; each block of E
        // entries holds one entry per residue.
        let mut residues = (0..e).filter(|r| self.in_write_set(index, *r));
        let nth = usize::try_from(k % qw).unwrap_or(0);
        let residue = residues.nth(nth).unwrap_or(0);
        (k / qw).saturating_mul(e).saturating_add(residue)
    }

    /// Whether, in every write set, at least `min` members satisfy
    /// `member` (a predicate on ensemble indexes). With `min = Qw - Qa + 1`
    /// this is the condition under which no entry can be confirmed (or
    /// have been confirmed) without one of the chosen bookies: fewer than
    /// `Qa` members of each write set are left out.
    pub fn covers_every_write_set(&self, min: usize, member: impl Fn(usize) -> bool) -> bool {
        (0..self.bookies.len() as u64)
            .all(|first| self.write_set(first).filter(|i| member(*i)).count() >= min)
    }

    /// `Qw - Qa + 1`: the members of every write set that must be fenced
    /// (or have answered) so that no entry reaches, or reached, its ack
    /// quorum without them.
    pub fn coverage_quorum(&self) -> usize {
        self.write_quorum - self.ack_quorum + 1
    }
}

/// Ensembles of bookies that are never called, for tests of the striping
/// arithmetic and of what is computed from it.
#[cfg(test)]
pub(crate) mod shape {
    use async_trait::async_trait;
    use distlog_metadata::LedgerId;

    use super::*;
    use crate::ledger::{AddFuture, AddRequest, Entry, IndexRow, LedgerInfo};

    /// A bookie that fails every call: only its place in the ensemble counts.
    struct Shape(NodeId);

    #[async_trait]
    impl BookieClient for Shape {
        fn bookie_id(&self) -> NodeId {
            self.0
        }
        fn add_entry(&self, _req: AddRequest) -> AddFuture {
            Box::pin(async { Err(StorageError::ShuttingDown) })
        }
        async fn read_entries(&self, _l: LedgerId, _f: u64, _t: u64, _m: usize) -> Result<Vec<Entry>> {
            Err(StorageError::ShuttingDown)
        }
        async fn entry_for_seq(&self, _l: LedgerId, _s: u64) -> Result<Option<IndexRow>> {
            Err(StorageError::ShuttingDown)
        }
        async fn entry_for_txid(&self, _l: LedgerId, _t: u64) -> Result<Option<IndexRow>> {
            Err(StorageError::ShuttingDown)
        }
        async fn last_entry(&self, _l: LedgerId) -> Result<Option<IndexRow>> {
            Err(StorageError::ShuttingDown)
        }
        async fn fence(&self, _l: LedgerId) -> Result<Option<IndexRow>> {
            Err(StorageError::ShuttingDown)
        }
        async fn delete(&self, _l: LedgerId) -> Result<()> {
            Err(StorageError::ShuttingDown)
        }
        async fn read_lac(
            &self,
            _l: LedgerId,
            _k: Option<u64>,
            _w: std::time::Duration,
        ) -> Result<Option<u64>> {
            Err(StorageError::ShuttingDown)
        }
        async fn ledger_info(&self, _l: LedgerId) -> Result<LedgerInfo> {
            Err(StorageError::ShuttingDown)
        }
    }

    /// `e` bookies (ids 1..=e), checked as an E/Qw/Qa ensemble.
    pub(crate) fn try_shape(e: usize, qw: usize, qa: usize) -> Result<Ensemble> {
        let bookies = (1..=e as u64)
            .map(|i| Arc::new(Shape(NodeId::new(i))) as Arc<dyn BookieClient>)
            .collect();
        Ensemble::new(bookies, qw, qa)
    }

    /// A valid E/Qw/Qa ensemble of `e` bookies (ids 1..=e).
    pub(crate) fn shape(e: usize, qw: usize, qa: usize) -> Ensemble {
        try_shape(e, qw, qa).expect("valid shape")
    }
}

#[cfg(test)]
mod tests {
    use super::shape::{shape, try_shape};

    #[test]
    fn invalid_shapes_are_refused() {
        for (e, qw, qa) in [(3, 4, 2), (3, 2, 3), (3, 0, 0), (3, 2, 0), (0, 1, 1)] {
            assert!(try_shape(e, qw, qa).is_err(), "{e}/{qw}/{qa}");
        }
    }

    #[test]
    fn write_sets_stripe_round_robin() {
        let en = shape(3, 2, 2);
        let sets: Vec<Vec<usize>> = (0..4).map(|e| en.write_set(e).collect()).collect();
        assert_eq!(sets, vec![vec![0, 1], vec![1, 2], vec![2, 0], vec![0, 1]]);
        // Bookie 0 holds entries 0, 2, 3, 5, 6, ...; bookie 2 holds 1, 2, 4, 5, ...
        let stripe = |i: usize| (0..9).filter(|e| en.in_write_set(i, *e)).collect::<Vec<u64>>();
        assert_eq!(stripe(0), vec![0, 2, 3, 5, 6, 8]);
        assert_eq!(stripe(1), vec![0, 1, 3, 4, 6, 7]);
        assert_eq!(stripe(2), vec![1, 2, 4, 5, 7, 8]);
    }

    /// Every helper agrees with the definition (membership in the write
    /// set) for a range of shapes, striped and not.
    #[test]
    fn stripe_arithmetic_matches_the_write_sets() {
        for (e, qw) in [(1, 1), (3, 3), (3, 2), (3, 1), (4, 2), (5, 3), (5, 2), (7, 4)] {
            let en = shape(e, qw, 1);
            assert_eq!(en.is_striped(), e > qw);
            for i in 0..e {
                let stripe: Vec<u64> = (0..60u64).filter(|x| en.write_set(*x).any(|m| m == i)).collect();
                for x in 0..60u64 {
                    assert_eq!(
                        en.in_write_set(i, x),
                        stripe.contains(&x),
                        "{e}/{qw} bookie {i} entry {x}"
                    );
                    let prev = stripe.iter().copied().filter(|s| *s < x).max();
                    assert_eq!(en.prev_in_stripe(i, x), prev, "{e}/{qw} bookie {i} prev of {x}");
                    let count = stripe.iter().filter(|s| **s < x).count() as u64;
                    assert_eq!(
                        en.stripe_count(i, x),
                        count,
                        "{e}/{qw} bookie {i} count below {x}"
                    );
                }
                for (k, s) in stripe.iter().enumerate() {
                    assert_eq!(en.nth_in_stripe(i, k as u64), *s, "{e}/{qw} bookie {i} #{k}");
                }
            }
            if e == qw {
                assert_eq!(en.prev_in_stripe(0, 10), Some(9));
                assert_eq!(en.prev_in_stripe(0, 0), None);
            }
        }
    }

    #[test]
    fn coverage_needs_enough_members_of_every_write_set() {
        // 3/2/2: one member of each write set; {0, 2} covers {0,1}, {1,2}, {2,0}.
        let en = shape(3, 2, 2);
        assert_eq!(en.coverage_quorum(), 1);
        assert!(en.covers_every_write_set(1, |i| i != 1));
        assert!(!en.covers_every_write_set(1, |i| i == 0));
        // 5/3/2: two members of each write set; one bookie down is fine, two adjacent are not.
        let en = shape(5, 3, 2);
        assert_eq!(en.coverage_quorum(), 2);
        assert!(en.covers_every_write_set(2, |i| i != 4));
        assert!(!en.covers_every_write_set(2, |i| i != 3 && i != 4));
        // 3/3/2 (no striping): E - Qa + 1 = 2 bookies.
        let en = shape(3, 3, 2);
        assert!(en.covers_every_write_set(en.coverage_quorum(), |i| i != 0));
        assert!(!en.covers_every_write_set(en.coverage_quorum(), |i| i == 0));
    }
}
