//! Cluster settings: which roles a node runs, the metadata voters it forms
//! a Raft quorum with, and the replication a topic gets by default.
//!
//! One `distlog server` binary runs any combination of DistributedLog's
//! three roles: `meta` (a voter of the Raft metadata group), `bookie` (a
//! segment store serving ledgers to every writer) and `broker` (the Kafka
//! front end owning streams). A node started without `--meta-voters` and
//! `--meta-seeds` is a single-node cluster: all roles, streams owned by
//! whoever opens them, and 1/1/1 replication. With voters or seeds it is
//! part of a cluster: the controller (the Raft leader) assigns streams to
//! live brokers, and topics replicate 3/3/2 unless told otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use distlog_metadata::NodeId;

use crate::error::BrokerError;

/// The roles a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// A voter of the metadata quorum (otherwise a learner with a
    /// full local replica).
    pub meta: bool,
    /// Serves its segment store (bookie) to the cluster.
    pub bookie: bool,
    /// Serves Kafka clients and writes the streams assigned to it.
    pub broker: bool,
}

impl Default for Roles {
    /// Every role: the embedded single node, and the simplest cluster.
    fn default() -> Self {
        Roles {
            meta: true,
            bookie: true,
            broker: true,
        }
    }
}

impl FromStr for Roles {
    type Err = BrokerError;

    /// Parse `meta,bookie,broker` (any non-empty subset, any order; `all`
    /// for every role).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut r = Roles {
            meta: false,
            bookie: false,
            broker: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "meta" => r.meta = true,
                "bookie" => r.bookie = true,
                "broker" => r.broker = true,
                "all" => r = Roles::default(),
                other => {
                    return Err(BrokerError::Config(format!(
                        "--roles: unknown role '{other}' (expected a list of meta, bookie, broker, or all)"
                    )))
                }
            }
        }
        if !(r.meta || r.bookie || r.broker) {
            return Err(BrokerError::Config(
                "--roles: name at least one of meta, bookie, broker".into(),
            ));
        }
        Ok(r)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.meta, "meta"),
            (self.bookie, "bookie"),
            (self.broker, "broker"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
        f.write_str(&names.join(","))
    }
}

/// Parse `--meta-voters`: `ID=HOST:PORT` pairs separated by commas (the
/// Raft address of every voter, this node included when it runs `meta`).
pub fn parse_voters(s: &str) -> Result<BTreeMap<NodeId, String>, BrokerError> {
    let mut voters = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            BrokerError::Config(format!(
                "--meta-voters: expected ID=HOST:PORT[,ID=HOST:PORT...], got '{part}'"
            ))
        };
        let (id, addr) = part.split_once('=').ok_or_else(bad)?;
        let id: NodeId = id.trim().parse().map_err(|_| bad())?;
        crate::config::split_host_port(addr.trim(), "meta-voters")?;
        if voters.insert(id, addr.trim().to_string()).is_some() {
            return Err(BrokerError::Config(format!(
                "--meta-voters: node {id} is listed twice"
            )));
        }
    }
    Ok(voters)
}

/// Parse `--meta-seeds`: Raft addresses (`HOST:PORT`, comma separated) of
/// running members a new node asks to join through.
pub fn parse_seeds(s: &str) -> Result<Vec<String>, BrokerError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| crate::config::split_host_port(p, "meta-seeds").map(|_| p.to_string()))
        .collect()
}

/// A segment's replication: ensemble size E, write quorum Qw, ack quorum Qa.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Bookies per segment (`distlog.ensemble.size`).
    pub ensemble: u8,
    /// Copies of each entry (`distlog.write.quorum`).
    pub write: u8,
    /// Copies durable before an entry is acknowledged (`distlog.ack.quorum`).
    pub ack: u8,
}

impl Replication {
    /// The single-node default: one copy, on this node's bookie.
    pub const SINGLE: Replication = Replication {
        ensemble: 1,
        write: 1,
        ack: 1,
    };
    /// The cluster default: three copies, acknowledged at two.
    pub const CLUSTER: Replication = Replication {
        ensemble: 3,
        write: 3,
        ack: 2,
    };

    /// The replication a Kafka replication factor asks for: RF copies on RF
    /// bookies, acknowledged by a majority of them (so RF 3 is 3/3/2, the
    /// cluster default, and RF 1 is 1/1/1).
    pub fn for_replication_factor(rf: u8) -> Replication {
        Replication {
            ensemble: rf,
            write: rf,
            ack: rf / 2 + 1,
        }
    }
}

impl FromStr for Replication {
    type Err = BrokerError;

    /// Parse `E/QW/QA`, e.g. `3/3/2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            BrokerError::Config(format!(
                "--default-replication: expected ENSEMBLE/WRITE/ACK such as 3/3/2 with \
                 1 <= ack <= write <= ensemble (striped when write < ensemble), got '{s}'"
            ))
        };
        let parts: Vec<u8> = s
            .split('/')
            .map(|p| p.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let [ensemble, write, ack] = parts[..] else {
            return Err(bad());
        };
        if ack == 0 || ack > write || write > ensemble {
            return Err(bad());
        }
        Ok(Replication { ensemble, write, ack })
    }
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.ensemble, self.write, self.ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_any_subset() {
        assert_eq!("meta,bookie,broker".parse::<Roles>().unwrap(), Roles::default());
        assert_eq!("all".parse::<Roles>().unwrap(), Roles::default());
        let r: Roles = " broker ".parse().unwrap();
        assert_eq!((r.meta, r.bookie, r.broker), (false, false, true));
        assert_eq!("bookie,meta".parse::<Roles>().unwrap().to_string(), "meta,bookie");
        assert!("".parse::<Roles>().is_err());
        assert!("meta,zookeeper".parse::<Roles>().is_err());
    }

    #[test]
    fn voters_and_seeds_parse() {
        let v = parse_voters("1=127.0.0.1:9093, 2=127.0.0.2:9093,3=h:1").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[&NodeId::new(2)], "127.0.0.2:9093");
        assert!(parse_voters("").unwrap().is_empty());
        assert!(parse_voters("1=127.0.0.1:1,1=127.0.0.1:2").is_err());
        assert!(parse_voters("x=127.0.0.1:1").is_err());
        assert!(parse_voters("1=nohost").is_err());
        assert_eq!(parse_seeds("a:1,b:2").unwrap(), vec!["a:1", "b:2"]);
        assert!(parse_seeds("a").is_err());
    }

    #[test]
    fn replication_parses_and_follows_rf() {
        assert_eq!("3/3/2".parse::<Replication>().unwrap(), Replication::CLUSTER);
        let striped: Replication = "3/2/2".parse().expect("striping allowed");
        assert_eq!((striped.ensemble, striped.write, striped.ack), (3, 2, 2));
        assert!(
            "2/3/2".parse::<Replication>().is_err(),
            "write quorum above the ensemble"
        );
        assert!("3/3/0".parse::<Replication>().is_err());
        assert!("3/3".parse::<Replication>().is_err());
        assert_eq!(Replication::for_replication_factor(1), Replication::SINGLE);
        assert_eq!(Replication::for_replication_factor(3), Replication::CLUSTER);
        assert_eq!(Replication::for_replication_factor(5).ack, 3);
    }
}
