//! The preferred owner of a stream: distlog's "preferred leader".
//!
//! Kafka's preferred leader of a partition is the first broker of its
//! replica list. distlog has no per-partition replica placement (copies
//! live on bookies; any broker can own any stream), so the preferred owner
//! is computed instead, deterministically, from the registered brokers:
//!
//! > the brokers ever registered (nodes serving Kafka; storage-only nodes
//! > never own streams), in ascending id order; a topic starts at index
//! > `topic_id mod n` and its partitions follow round-robin:
//! > `brokers[(topic_id + partition) mod n]`.
//!
//! This is Kafka's own default placement (a per-topic start, then
//! round-robin), so on a cluster whose brokers are all live the preferred
//! owners spread each topic's partitions evenly. It depends only on
//! replicated metadata, so every node computes the same answer. The
//! controller ([`crate::ownership`]) converges to it: an orphaned stream
//! goes to its preferred owner when that broker is live, a stream away
//! from its live preferred owner moves back (a bounded number per
//! rebalance round, like Kafka's `auto.leader.rebalance.enable`), and a
//! stream on its preferred owner is never moved for balance. ElectLeaders
//! (preferred) moves streams home at once.

use distlog_metadata::{MetaState, NodeId, StreamId};

/// The brokers that can be preferred owners: every registered node that
/// serves Kafka, live or not, in ascending id order. Dead brokers stay (a
/// restarted broker gets its streams back); brokers are never removed from
/// the metadata.
pub fn candidate_brokers(state: &MetaState) -> Vec<NodeId> {
    state
        .brokers
        .values()
        .filter(|b| b.is_broker())
        .map(|b| b.id)
        .collect()
}

/// The preferred owner of `stream` among `brokers` (ascending id order, as
/// [`candidate_brokers`] returns them); `None` when there is no broker.
pub fn preferred_owner(stream: StreamId, brokers: &[NodeId]) -> Option<NodeId> {
    let n = brokers.len() as u128;
    if n == 0 {
        return None;
    }
    let start = stream.topic_id.as_u128() % n;
    let index = (start + u128::from(stream.partition) % n) % n;
    brokers.get(index as usize).copied()
}

/// The preferred owner of `stream` in `state` (see the module doc).
pub fn preferred_in(state: &MetaState, stream: StreamId) -> Option<NodeId> {
    preferred_owner(stream, &candidate_brokers(state))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use distlog_metadata::BrokerInfo;

    use super::*;

    fn s(topic: u128, p: u32) -> StreamId {
        StreamId {
            topic_id: uuid::Uuid::from_u128(topic),
            partition: p,
        }
    }

    fn nodes(ids: &[u64]) -> Vec<NodeId> {
        ids.iter().copied().map(NodeId::new).collect()
    }

    #[test]
    fn round_robin_from_a_per_topic_start() {
        let b = nodes(&[1, 2, 3]);
        // Topic id 4: start index 4 mod 3 = 1 (broker 2).
        let owners: Vec<u64> = (0..6)
            .map(|p| preferred_owner(s(4, p), &b).expect("owner").get())
            .collect();
        assert_eq!(owners, vec![2, 3, 1, 2, 3, 1]);
        // Topic id 3: start index 0 (broker 1).
        assert_eq!(preferred_owner(s(3, 0), &b), Some(NodeId::new(1)));
        assert_eq!(preferred_owner(s(3, 2), &b), Some(NodeId::new(3)));
    }

    #[test]
    fn every_topic_is_spread_evenly() {
        let b = nodes(&[1, 5, 9, 12]);
        for topic in [0u128, 7, u128::MAX, 0x7f38_0c63_4262_4ee4_8630_4332_060f_d899] {
            let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
            for p in 0..10 {
                *counts
                    .entry(preferred_owner(s(topic, p), &b).expect("owner"))
                    .or_default() += 1;
            }
            assert_eq!(counts.len(), 4, "topic {topic}: {counts:?}");
            let (lo, hi) = (counts.values().min(), counts.values().max());
            assert_eq!((lo, hi), (Some(&2), Some(&3)), "topic {topic}: {counts:?}");
        }
    }

    #[test]
    fn single_broker_and_no_broker() {
        assert_eq!(preferred_owner(s(9, 7), &nodes(&[4])), Some(NodeId::new(4)));
        assert_eq!(preferred_owner(s(9, 7), &[]), None);
        // Huge partition numbers do not overflow.
        assert_eq!(
            preferred_owner(s(u128::MAX, u32::MAX), &nodes(&[1, 2])),
            Some(NodeId::new(1))
        );
    }

    #[test]
    fn candidates_are_registered_brokers_live_or_not_without_storage_only_nodes() {
        let info = |id: u64, port: u16, lease: u64| BrokerInfo {
            id: NodeId::new(id),
            kafka_host: "h".into(),
            kafka_port: port,
            listeners: Default::default(),
            rack: None,
            bookie_addr: None,
            lease_expires_ms: lease,
        };
        let mut st = MetaState::default();
        for b in [info(3, 9092, 0), info(1, 9092, u64::MAX), info(2, 0, u64::MAX)] {
            st.brokers.insert(b.id, b);
        }
        assert_eq!(candidate_brokers(&st), nodes(&[1, 3]));
        // Topic id 1, partition 0: index 1 of [1, 3].
        assert_eq!(preferred_in(&st, s(1, 0)), Some(NodeId::new(3)));
    }
}
