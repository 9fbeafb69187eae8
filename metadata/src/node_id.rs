//! [`NodeId`]: the one id of a distlog node.
//!
//! A node is one process: its Kafka broker id, its metadata Raft node id and
//! the id of its bookie are the same number, so they are one type. Plain
//! integers appear only at the edges (the Kafka wire's `i32`, the
//! `--node-id` flag and config file, metric labels, file names).

use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The id of a node: its Kafka broker id, its metadata Raft node id and its
/// bookie id.
///
/// Serialized transparently as the bare number (so Raft logs, votes and
/// snapshots written when the id was a plain integer still load, and maps
/// keyed by it keep their JSON object keys). `Display` and `Debug` both
/// print the bare number.
///
/// The number is a `u64`, as openraft's node id was (its storage test suite
/// builds ids `From<u64>`); the old `u32` broker and bookie ids widen
/// losslessly. The broker refuses a `--node-id` beyond Kafka's `int32`
/// range, so every registered id also converts to the Kafka wire form.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(u64);

impl NodeId {
    /// The node id `id`.
    pub const fn new(id: u64) -> NodeId {
        NodeId(id)
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for NodeId {
    fn from(id: u64) -> NodeId {
        NodeId(id)
    }
}

impl From<u32> for NodeId {
    fn from(id: u32) -> NodeId {
        NodeId(u64::from(id))
    }
}

impl From<NodeId> for u64 {
    fn from(id: NodeId) -> u64 {
        id.0
    }
}

impl TryFrom<i32> for NodeId {
    type Error = std::num::TryFromIntError;

    /// A Kafka broker id from the wire; negative ids (Kafka's "none") are refused.
    fn try_from(id: i32) -> Result<NodeId, Self::Error> {
        u64::try_from(id).map(NodeId)
    }
}

impl TryFrom<NodeId> for i32 {
    type Error = std::num::TryFromIntError;

    /// The Kafka wire form of a node id (an `i32`); ids above `i32::MAX` do not fit.
    fn try_from(id: NodeId) -> Result<i32, Self::Error> {
        i32::try_from(id.0)
    }
}

impl FromStr for NodeId {
    type Err = ParseIntError;

    /// Parses the bare number (`--node-id 3`, a `3=host:port` voter entry).
    fn from_str(s: &str) -> Result<NodeId, ParseIntError> {
        s.parse().map(NodeId)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::NodeId;

    #[test]
    fn serializes_as_the_bare_number() {
        assert_eq!(serde_json::to_string(&NodeId::new(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<NodeId>("7").unwrap(), NodeId::new(7));
        assert_eq!(
            serde_json::to_string(&Some(vec![NodeId::new(1), NodeId::new(2)])).unwrap(),
            "[1,2]"
        );
    }

    #[test]
    fn map_keys_serialize_as_before() {
        let old: BTreeMap<u32, &str> = BTreeMap::from([(1, "a"), (20, "b")]);
        let new: BTreeMap<NodeId, &str> = BTreeMap::from([(NodeId::new(1), "a"), (NodeId::new(20), "b")]);
        let old_json = serde_json::to_string(&old).unwrap();
        assert_eq!(old_json, r#"{"1":"a","20":"b"}"#);
        assert_eq!(serde_json::to_string(&new).unwrap(), old_json);
        let back: BTreeMap<NodeId, String> = serde_json::from_str(&old_json).unwrap();
        assert_eq!(
            back.keys().copied().collect::<Vec<_>>(),
            [NodeId::new(1), NodeId::new(20)]
        );
    }

    #[test]
    fn loads_and_rewrites_u32_broker_and_bookie_ids() {
        // Broker ids (map keys, owners) and bookie ids (ensembles) were u32.
        let old: BTreeMap<u32, (Option<u32>, Vec<u32>)> = BTreeMap::from([(3, (Some(3), vec![1, 2, 3]))]);
        let json = serde_json::to_string(&old).unwrap();
        let back: BTreeMap<NodeId, (Option<NodeId>, Vec<NodeId>)> = serde_json::from_str(&json).unwrap();
        let three = NodeId::new(3);
        assert_eq!(
            back[&three],
            (Some(three), vec![NodeId::new(1), NodeId::new(2), three])
        );
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn raft_state_serializes_as_with_u64_node_ids() {
        // What the sled store persists (vote, log ids, membership) and the
        // Raft RPCs carry: byte for byte what the `u64` node id produced.
        use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, Vote};
        let vote_old = serde_json::to_string(&Vote::<u64>::new(3, 2)).unwrap();
        let vote_new = serde_json::to_string(&Vote::new(3, NodeId::new(2))).unwrap();
        assert_eq!(vote_new, vote_old);
        let back: Vote<NodeId> = serde_json::from_str(&vote_old).unwrap();
        assert_eq!(back, Vote::new(3, NodeId::new(2)));

        let log_old = LogId::new(CommittedLeaderId::<u64>::new(4, 1), 17);
        let log_new = LogId::new(CommittedLeaderId::new(4, NodeId::new(1)), 17);
        assert_eq!(
            serde_json::to_string(&log_new).unwrap(),
            serde_json::to_string(&log_old).unwrap()
        );

        let node = |a: &str| BasicNode::new(a);
        let old = Membership::<u64, BasicNode>::new(
            vec![[1, 2].into()],
            BTreeMap::from([(1, node("a:1")), (2, node("b:1")), (3, node("c:1"))]),
        );
        let new = Membership::<NodeId, BasicNode>::new(
            vec![[NodeId::new(1), NodeId::new(2)].into()],
            BTreeMap::from([
                (NodeId::new(1), node("a:1")),
                (NodeId::new(2), node("b:1")),
                (NodeId::new(3), node("c:1")),
            ]),
        );
        let old_json = serde_json::to_string(&old).unwrap();
        assert_eq!(serde_json::to_string(&new).unwrap(), old_json);
        let back: Membership<NodeId, BasicNode> = serde_json::from_str(&old_json).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn parses_and_prints_the_number() {
        assert_eq!("42".parse::<NodeId>().unwrap(), NodeId::new(42));
        assert!("-1".parse::<NodeId>().is_err());
        assert_eq!(NodeId::new(42).to_string(), "42");
        assert_eq!(format!("{:?}", NodeId::new(42)), "42");
        assert_eq!(i32::try_from(NodeId::new(42)).unwrap(), 42);
        assert!(NodeId::try_from(-1).is_err());
    }
}
