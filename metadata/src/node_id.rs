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
    fn loads_ids_written_as_u64() {
        // The Raft node id was a u64: votes and log ids carry it as a number.
        let raft: BTreeMap<u64, u64> = BTreeMap::from([(3, 3)]);
        let json = serde_json::to_string(&raft).unwrap();
        let back: BTreeMap<NodeId, NodeId> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, BTreeMap::from([(NodeId::new(3), NodeId::new(3))]));
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
