//! Ensemble placement: which bookies hold a new ledger.
//!
//! A new segment's ledger goes to the `E` least-loaded live bookies, spread
//! over as many racks as possible (BookKeeper's rack-aware policy): no rack
//! gets a second bookie of the ensemble while a rack without one has a
//! candidate. Bookies without a rack impose no constraint. Ties are broken
//! by a rotation seed (the ledger id), so equal loads do not always land on
//! the same bookies.

use std::collections::HashSet;

use distlog_metadata::NodeId;

use crate::error::{Result, StorageError};

/// A live bookie that may receive a new ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookieCandidate {
    /// Bookie (node) id.
    pub id: NodeId,
    /// Rack, when the operator set one.
    pub rack: Option<String>,
    /// How many open or recent ledgers it already holds (the balance key).
    pub load: u64,
}

/// Choose `size` distinct bookies for a new ledger, in ensemble order.
///
/// Fails with [`StorageError::NotEnoughBookies`] when fewer than `size`
/// candidates exist: a ledger is never created under-replicated.
pub fn choose_ensemble(candidates: &[BookieCandidate], size: usize, seed: u64) -> Result<Vec<NodeId>> {
    let mut unique: Vec<&BookieCandidate> = Vec::with_capacity(candidates.len());
    let mut seen = HashSet::new();
    for c in candidates {
        if seen.insert(c.id) {
            unique.push(c);
        }
    }
    if size == 0 || unique.len() < size {
        return Err(StorageError::NotEnoughBookies(format!(
            "an ensemble of {size} needs {size} live bookies, {} are available; start more bookies or \
             lower distlog.ensemble.size",
            unique.len()
        )));
    }
    let n = unique.len() as u64;
    // Least loaded first; among equals, ids rotated by the seed.
    unique.sort_by_key(|c| (c.load, (u64::from(c.id) + n - seed % n) % n.max(1), c.id));
    let mut chosen: Vec<NodeId> = Vec::with_capacity(size);
    let mut racks_used: HashSet<&str> = HashSet::new();
    // First pass: at most one bookie per rack.
    for c in &unique {
        if chosen.len() == size {
            break;
        }
        match c.rack.as_deref() {
            Some(rack) if racks_used.contains(rack) => continue,
            Some(rack) => {
                racks_used.insert(rack);
            }
            None => {}
        }
        chosen.push(c.id);
    }
    // Second pass: fewer racks than the ensemble size; fill by load.
    for c in &unique {
        if chosen.len() == size {
            break;
        }
        if !chosen.contains(&c.id) {
            chosen.push(c.id);
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: u64, rack: Option<&str>, load: u64) -> BookieCandidate {
        BookieCandidate {
            id: NodeId::new(id),
            rack: rack.map(str::to_string),
            load,
        }
    }

    /// The ids of an ensemble as numbers.
    fn numbers(e: Vec<NodeId>) -> Vec<u64> {
        e.into_iter().map(NodeId::get).collect()
    }

    #[test]
    fn least_loaded_bookies_are_chosen() {
        let c = [b(1, None, 5), b(2, None, 1), b(3, None, 3), b(4, None, 0)];
        let mut e = numbers(choose_ensemble(&c, 3, 0).unwrap());
        e.sort();
        assert_eq!(e, vec![2, 3, 4]);
    }

    #[test]
    fn racks_are_spread_before_any_is_reused() {
        // Rack a has the two least-loaded bookies, but an ensemble of 3 over racks a, b, c takes
        // one from each.
        let c = [
            b(1, Some("a"), 0),
            b(2, Some("a"), 0),
            b(3, Some("b"), 4),
            b(4, Some("c"), 9),
        ];
        let mut e = numbers(choose_ensemble(&c, 3, 0).unwrap());
        e.sort();
        assert_eq!(e.len(), 3);
        assert!(e.contains(&3) && e.contains(&4), "{e:?}");
        // Only two racks for three slots: the third comes from a used rack.
        let c = [b(1, Some("a"), 0), b(2, Some("a"), 1), b(3, Some("b"), 0)];
        let mut e = numbers(choose_ensemble(&c, 3, 0).unwrap());
        e.sort();
        assert_eq!(e, vec![1, 2, 3]);
    }

    #[test]
    fn equal_loads_rotate_with_the_seed_and_spread_evenly() {
        let c: Vec<BookieCandidate> = (1..=5).map(|id| b(id, None, 0)).collect();
        let mut counts = [0u32; 6];
        for seed in 0..100 {
            let e = numbers(choose_ensemble(&c, 3, seed).unwrap());
            let distinct: HashSet<u64> = e.iter().copied().collect();
            assert_eq!(distinct.len(), 3, "distinct bookies: {e:?}");
            for id in e {
                counts[id as usize] += 1;
            }
        }
        // 300 placements over 5 bookies: exactly 60 each.
        assert_eq!(&counts[1..], &[60, 60, 60, 60, 60]);
    }

    #[test]
    fn too_few_bookies_is_an_error_not_a_smaller_ensemble() {
        let c = [b(1, None, 0), b(1, None, 0), b(2, None, 0)];
        match choose_ensemble(&c, 3, 0) {
            Err(StorageError::NotEnoughBookies(msg)) => assert!(msg.contains("2 are available"), "{msg}"),
            other => panic!("expected NotEnoughBookies, got {other:?}"),
        }
        assert!(choose_ensemble(&c, 0, 0).is_err());
    }
}
