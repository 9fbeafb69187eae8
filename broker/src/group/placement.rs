//! Which broker coordinates a group: a stable hash of the group id over the
//! Kafka brokers with a live lease, computed from the local metadata
//! replica. Every broker computes the same answer from the same state, so
//! FindCoordinator agrees across the cluster (up to replication lag and
//! clock skew between brokers near a lease's expiry).

use distlog_metadata::{MetaState, NodeId};

/// The live brokers at one instant, in id order: the input of placement.
/// Reading them once and placing many groups against them keeps the
/// coordinator's periodic ownership check cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBrokers {
    /// Ids of the Kafka brokers with a live lease, ascending.
    ids: Vec<NodeId>,
    /// The broker asking, which coordinates everything when none is live
    /// (a single node before its first registration, or a node whose own
    /// lease lapsed while it is cut off from every other broker).
    local: NodeId,
}

impl LiveBrokers {
    /// The brokers live at wall-clock `now_ms` in `state`, as seen by
    /// broker `local`.
    pub fn read(state: &MetaState, now_ms: u64, local: NodeId) -> LiveBrokers {
        LiveBrokers {
            ids: state.live_brokers(now_ms).map(|b| b.id).collect(),
            local,
        }
    }

    /// A view of the given live broker ids (any order, duplicates allowed).
    pub fn from_ids(mut ids: Vec<NodeId>, local: NodeId) -> LiveBrokers {
        ids.sort_unstable();
        ids.dedup();
        LiveBrokers { ids, local }
    }

    /// The same view without the brokers in `gone` (the set of a moment
    /// when their leases had lapsed).
    pub fn without(&self, gone: &[NodeId]) -> LiveBrokers {
        LiveBrokers {
            ids: self.ids.iter().copied().filter(|b| !gone.contains(b)).collect(),
            local: self.local,
        }
    }

    /// The ids of the live brokers, ascending.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The broker coordinating `group`.
    pub fn coordinator(&self, group: &str) -> NodeId {
        match coordinator_index(group, self.ids.len()) {
            Some(i) => self.ids[i],
            None => self.local,
        }
    }

    /// Whether the local broker coordinates `group`.
    pub fn is_local(&self, group: &str) -> bool {
        self.coordinator(group) == self.local
    }
}

/// The position of `group`'s coordinator among `live` brokers sorted by
/// id, `None` when there are none.
pub fn coordinator_index(group: &str, live: usize) -> Option<usize> {
    (live > 0).then(|| crc32c::crc32c(group.as_bytes()) as usize % live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_hashes_over_live_ids_and_falls_back_to_the_local_broker() {
        let none = LiveBrokers {
            ids: vec![],
            local: NodeId::new(7),
        };
        assert_eq!(none.coordinator("g"), NodeId::new(7));
        assert!(none.is_local("g"));
        let three = LiveBrokers {
            ids: [1, 2, 3].map(NodeId::new).to_vec(),
            local: NodeId::new(2),
        };
        let expected = three.ids[crc32c::crc32c(b"g") as usize % 3];
        assert_eq!(three.coordinator("g"), expected);
        let two = three.without(&[expected]);
        assert_ne!(two.coordinator("g"), expected);
        assert_eq!(
            two.ids(),
            three
                .ids()
                .iter()
                .copied()
                .filter(|b| *b != expected)
                .collect::<Vec<_>>()
        );
    }
}
