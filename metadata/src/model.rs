//! The metadata data model: everything the cluster must agree on.
//!
//! These types are the state of the Raft state machine and the payload of
//! its commands. They speak DistributedLog (streams, segments, ledgers,
//! sequence ids, txids), never Kafka: the broker maps topics/partitions onto
//! streams, and nothing here knows a Kafka error code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::node_id::NodeId;

/// A ledger id, unique in the cluster, allocated by [`Command::AllocateLedgerId`].
pub type LedgerId = u64;

/// Identifies one log stream: a partition of a topic. Keyed by the topic's
/// id (not its name) so a topic deleted and re-created under the same name
/// never sees its predecessor's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    /// The owning topic's id.
    pub topic_id: Uuid,
    /// The partition index within the topic.
    pub partition: u32,
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic_id, self.partition)
    }
}

/// A registered broker and where clients and peers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Kafka broker id.
    pub id: NodeId,
    /// Host advertised to Kafka clients.
    pub kafka_host: String,
    /// Port advertised to Kafka clients.
    pub kafka_port: u16,
    /// Advertised address of each named Kafka listener (Kafka's
    /// `advertised.listeners`), so a client is told the addresses of the
    /// listener it connected through: containers use one network's names,
    /// the host another's. Empty for a node with a single unnamed listener
    /// (and for registrations written before listeners had names): it is
    /// reached at `kafka_host:kafka_port` through any listener.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listeners: BTreeMap<String, ListenerAddr>,
    /// Rack, when set (placement honours it).
    pub rack: Option<String>,
    /// Address of this node's bookie service, when it runs one.
    pub bookie_addr: Option<String>,
    /// Wall-clock millis at which the broker's lease expires.
    pub lease_expires_ms: u64,
}

impl BrokerInfo {
    /// Whether this node serves Kafka clients (runs the broker role). A
    /// storage-only node (meta and/or bookie roles) registers with an empty
    /// host and port 0 so its bookie can be found, but leads no partition
    /// and coordinates no group.
    pub fn is_broker(&self) -> bool {
        self.kafka_port != 0
    }

    /// Where a client that connected through listener `name` reaches this
    /// broker: that listener's advertised address, or `None` when the node
    /// has named listeners but not this one (Kafka then leaves the broker
    /// out of that listener's Metadata). A node without named listeners
    /// answers its one address for every name.
    pub fn kafka_addr(&self, name: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return Some((self.kafka_host.as_str(), self.kafka_port));
        }
        self.listeners.get(name).map(|a| (a.host.as_str(), a.port))
    }

    /// Whether the node's lease is still valid at wall-clock `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.lease_expires_ms > now_ms
    }
}

/// A Kafka listener's advertised address (host as clients dial it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerAddr {
    /// Host name or IP address clients dial.
    pub host: String,
    /// Port clients dial.
    pub port: u16,
}

/// A topic: a named set of streams with configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name (unique among live topics).
    pub name: String,
    /// Topic id (Kafka's topic UUID).
    pub id: Uuid,
    /// Number of partitions (streams `0..partitions`).
    pub partitions: u32,
    /// Topic-level config overrides (`segment.bytes`, `retention.ms`, …).
    pub configs: BTreeMap<String, String>,
    /// Wall-clock millis of creation.
    pub created_ms: u64,
}

impl TopicMeta {
    /// The stream id of one partition of this topic.
    pub fn stream(&self, partition: u32) -> StreamId {
        StreamId {
            topic_id: self.id,
            partition,
        }
    }
}

/// Lifecycle of a log segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentState {
    /// Being written; its end is known only to the owner (or to recovery).
    InProgress,
    /// Sealed: `last_offset`, `end_txid` and `last_entry_id` are final.
    Completed,
}

/// Metadata of one log segment (one ledger on the segment store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Log segment sequence number: dense per stream, starting at 1.
    pub lssn: u64,
    /// The ledger holding this segment's entries.
    pub ledger_id: LedgerId,
    /// Bookies (node ids) holding the ledger.
    pub ensemble: Vec<NodeId>,
    /// Write quorum: how many bookies receive each entry.
    pub write_quorum: u8,
    /// Ack quorum: how many must acknowledge an entry before it is confirmed.
    pub ack_quorum: u8,
    /// Sequence id (offset) of the segment's first record.
    pub base_offset: u64,
    /// txid of the stream when the segment was opened.
    pub start_txid: u64,
    /// InProgress or Completed.
    pub state: SegmentState,
    /// Sequence id of the last record, once completed; `None` when the
    /// segment holds no record.
    pub last_offset: Option<u64>,
    /// txid of the last entry, once completed (== `start_txid` when empty).
    pub end_txid: u64,
    /// Entry id of the last entry, once completed; `None` when empty.
    pub last_entry_id: Option<u64>,
    /// Total payload bytes, once completed (used by size-based retention).
    pub size_bytes: u64,
    /// Wall-clock millis when the segment was opened.
    pub created_ms: u64,
    /// Owner epoch of the writer that added the segment: the Kafka leader
    /// epoch of every record in it. The state machine sets it from the
    /// adding command's epoch. 0 (never a real epoch) in segments recorded
    /// before epochs were kept.
    #[serde(default)]
    pub owner_epoch: u64,
}

impl SegmentMeta {
    /// The sequence id following this segment's last record; for an
    /// in-progress segment this is only the base offset. Saturates at
    /// `u64::MAX`: a seal's `last_offset` is whatever the command carried, and
    /// `apply` must neither panic nor wrap to 0 on it (found by fuzzing).
    pub fn next_offset(&self) -> u64 {
        self.last_offset.map_or(self.base_offset, |o| o.saturating_add(1))
    }
}

/// One stream's metadata: owner, epoch and its segment list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The stream's id.
    pub id: StreamId,
    /// Name of the topic (denormalised for display).
    pub topic: String,
    /// The broker owning (writing) the stream, if any.
    pub owner: Option<NodeId>,
    /// Bumped on every ownership acquisition; the Kafka leader epoch.
    pub owner_epoch: u64,
    /// First sequence id still readable (moved by truncation).
    pub log_start_offset: u64,
    /// Segments in LSSN order. All but the last are Completed.
    pub segments: Vec<SegmentMeta>,
    /// LSSN the next segment must carry.
    pub next_lssn: u64,
}

/// The whole replicated state. Cloned cheaply enough for snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    /// Cluster id, set when the cluster is first initialised.
    pub cluster_id: String,
    /// Registered brokers.
    pub brokers: BTreeMap<NodeId, BrokerInfo>,
    /// Live topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// Streams by id.
    pub streams: BTreeMap<StreamId, StreamMeta>,
    /// Next ledger id to hand out (starts at 1).
    pub next_ledger_id: u64,
    /// Next producer id to hand out.
    pub next_producer_id: u64,
    /// Consumer groups: committed offsets and last generations, by group id.
    #[serde(default)]
    pub groups: BTreeMap<String, crate::consumer_group::GroupMeta>,
    /// Each group's latest coordinator claim ([`Command::ClaimGroup`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_claims: BTreeMap<String, crate::consumer_group::GroupClaim>,
    /// The last claim handed out (claims only ever grow, across groups, so
    /// a group deleted and created again never sees an old claim match).
    #[serde(default)]
    pub last_group_claim: u64,
    /// Dynamic broker configs (Kafka's KIP-226 dynamic broker configs, set
    /// by AlterConfigs on BROKER resources). Absent from snapshots written
    /// before they existed, and from any without one (so such snapshots
    /// stay readable by older binaries).
    #[serde(default, skip_serializing_if = "DynamicBrokerConfigs::is_empty")]
    pub broker_configs: DynamicBrokerConfigs,
    /// Transactions by transactional id (`crate::transaction`). Absent from
    /// snapshots without any, so those stay readable by older binaries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub transactions: BTreeMap<String, crate::transaction::TxnMeta>,
}

/// Dynamic broker config values: cluster-wide defaults and per-broker
/// values (a per-broker value wins over the cluster-wide one). Names and
/// values are opaque here: the broker owns and validates them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicBrokerConfigs {
    /// Cluster-wide defaults (Kafka's broker resource named "").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster: BTreeMap<String, String>,
    /// Per-broker values (Kafka's broker resource named by the broker id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brokers: BTreeMap<NodeId, BTreeMap<String, String>>,
}

impl DynamicBrokerConfigs {
    /// Whether no dynamic broker config is set at all.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.brokers.values().all(BTreeMap::is_empty)
    }

    /// The values set for `broker` (`None`: the cluster-wide defaults).
    pub fn of(&self, broker: Option<NodeId>) -> Option<&BTreeMap<String, String>> {
        match broker {
            None => Some(&self.cluster),
            Some(id) => self.brokers.get(&id),
        }
    }
}

impl MetaState {
    /// The topic with this name, if it exists.
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    /// The topic with this id, if it exists.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.topics.values().find(|t| &t.id == id)
    }

    /// The stream with this id, if it exists.
    pub fn stream(&self, id: &StreamId) -> Option<&StreamMeta> {
        self.streams.get(id)
    }

    /// Nodes serving a bookie to the cluster (registered with a bookie
    /// address) whose lease is valid at `now_ms`: where new ledgers may go.
    pub fn live_bookies(&self, now_ms: u64) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers
            .values()
            .filter(move |b| b.bookie_addr.is_some() && b.is_live(now_ms))
    }

    /// Brokers (nodes serving Kafka) whose lease is valid at `now_ms`, in id
    /// order: the partition leaders and group coordinators to choose from.
    pub fn live_brokers(&self, now_ms: u64) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers
            .values()
            .filter(move |b| b.is_broker() && b.is_live(now_ms))
    }
}

/// A state change. Commands are the Raft log's payload; the state machine
/// applies them deterministically. Where two writers could race (segment
/// adds and closes, ownership) a command carries the epoch it expects
/// (compare-and-set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set the cluster id if unset (first boot).
    InitCluster { cluster_id: String },
    /// Register or refresh a broker (also renews its lease).
    RegisterBroker(BrokerInfo),
    /// Create a topic and its `partitions` streams (empty, unowned).
    /// Fails with `TopicExists` if the name is taken.
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: u32,
        configs: BTreeMap<String, String>,
        created_ms: u64,
    },
    /// Delete a topic and its streams. The response lists the ledgers the
    /// segment store must now delete.
    DeleteTopic { name: String },
    /// Replace a topic's config overrides.
    AlterTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Hand out a fresh ledger id.
    AllocateLedgerId,
    /// Hand out a block of `count` producer ids; the response is the first.
    AllocateProducerIds { count: u64 },
    /// Make `owner` the stream's owner and bump its epoch. The response is
    /// the new epoch. `expected_epoch`, when set, must match the current one.
    AcquireStream {
        stream: StreamId,
        owner: NodeId,
        expected_epoch: Option<u64>,
    },
    /// Append a new InProgress segment. Requires the caller's epoch to be
    /// current, `segment.lssn == next_lssn`, and the previous segment to be
    /// Completed. The stored segment's `owner_epoch` is `owner_epoch`.
    AddSegment {
        stream: StreamId,
        owner_epoch: u64,
        segment: SegmentMeta,
    },
    /// Seal an InProgress segment (writer roll/close, or ledger recovery by
    /// a new owner). Requires the epoch to be current and the segment to be
    /// InProgress.
    CompleteSegment {
        stream: StreamId,
        owner_epoch: u64,
        /// Which segment and its final fields. Flattened: the serialized
        /// command keeps the field names it had before [`SegmentSeal`]
        /// existed, so Raft logs and snapshots of older versions still load.
        #[serde(flatten)]
        seal: SegmentSeal,
    },
    /// A writer's segment roll in one replicated step: seal InProgress
    /// segment `lssn` (as `CompleteSegment`) and append `next` (as
    /// `AddSegment`). Either both apply or neither does, so a roll costs one
    /// Raft round trip instead of two.
    RollSegment {
        stream: StreamId,
        owner_epoch: u64,
        /// The segment to seal (flattened, as in `CompleteSegment`).
        #[serde(flatten)]
        seal: SegmentSeal,
        next: SegmentMeta,
    },
    /// Move the log start offset forward and drop whole segments that end
    /// before it. The response lists the ledgers to delete.
    TruncateStream { stream: StreamId, log_start_offset: u64 },
    /// Consumer-group changes (offset commits, generation records,
    /// deletions), applied in order; never refused.
    Groups(Vec<crate::consumer_group::GroupOp>),
    /// Make `node` the coordinator of `group` under a new claim: a number
    /// above every claim before, of any group. The response is the claim
    /// ([`CommandResponse::GroupClaim`]). A broker claims a group before it
    /// loads it, so the load reads every change of earlier coordinators,
    /// and their later changes are fenced ([`Command::ClaimedGroups`]).
    ClaimGroup { group: String, node: NodeId },
    /// Consumer-group changes of coordinators, each applied only while the
    /// claim it carries is its group's latest (and, for a member's offset
    /// commit, no later generation is stored). The others are skipped and
    /// listed in the response ([`CommandResponse::GroupsFenced`]), so a
    /// deposed coordinator's late batch changes nothing and its clients
    /// learn it.
    ClaimedGroups(Vec<crate::consumer_group::ClaimedGroupOp>),
    /// Raise a topic's partition count to `partitions` (Kafka's
    /// CreatePartitions), adding the new streams empty and unowned, as
    /// `CreateTopic` does for its streams. `id` must be the topic's id, so a
    /// request that raced a delete and re-create of the same name is
    /// refused (`UnknownTopic`); a count that is not an increase is refused
    /// (`Invalid`).
    CreatePartitions { name: String, id: Uuid, partitions: u32 },
    /// Replace the dynamic broker configs of one broker (`Some(id)`) or the
    /// cluster-wide defaults (`None`); an empty map removes them all. Never
    /// refused: the broker validated the names and values.
    AlterBrokerConfigs {
        broker: Option<NodeId>,
        configs: BTreeMap<String, String>,
    },
    /// A transaction-state change (`crate::transaction`): a compare-and-set
    /// on the transactional id's producer id, epoch and state; refused with
    /// `ApplyError::Txn`.
    Txn(crate::transaction::TxnOp),
}

/// The final fields of a sealed segment, shared by the two sealing
/// commands ([`Command::CompleteSegment`], [`Command::RollSegment`]).
/// Serialized flattened into the command, under the field names the
/// commands always had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSeal {
    /// The LSSN of the InProgress segment to seal.
    pub lssn: u64,
    /// Sequence id of its last record; `None` when it holds no record.
    pub last_offset: Option<u64>,
    /// txid of its last entry (its `start_txid` when empty).
    pub end_txid: u64,
    /// Entry id of its last entry; `None` when it holds no entry.
    pub last_entry_id: Option<u64>,
    /// Total payload bytes.
    pub size_bytes: u64,
}

/// Why the state machine refused a command. Refusals are deterministic and
/// part of the replicated outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("stream {0} does not exist")]
    UnknownStream(StreamId),
    #[error("stream {stream}: epoch {given} is stale, current is {current}")]
    EpochMismatch {
        stream: StreamId,
        given: u64,
        current: u64,
    },
    #[error("stream {stream}: segment conflict: {reason}")]
    SegmentConflict { stream: StreamId, reason: String },
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("transaction: {0}")]
    Txn(crate::transaction::TxnRefusal),
}

/// The successful result of applying a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Applied; nothing to return.
    Ok,
    /// A fresh ledger id.
    LedgerId(LedgerId),
    /// The first producer id of the allocated block.
    ProducerId(u64),
    /// The stream's new owner epoch.
    Epoch(u64),
    /// Ledgers released by the command, for the segment store to delete.
    ReleasedLedgers(Vec<LedgerId>),
    /// A transactional producer's id and epoch (`TxnOp::Init`).
    Producer { producer_id: i64, producer_epoch: i16 },
    /// `TxnOp::Init` found a transaction open and began aborting it; the
    /// caller retries once it completes.
    TxnAborting,
    /// The claim a [`Command::ClaimGroup`] made.
    GroupClaim(u64),
    /// The positions of the [`Command::ClaimedGroups`] ops that were
    /// skipped (fenced); empty when all were applied.
    GroupsFenced(Vec<u32>),
}

/// The replicated outcome of a command: applied or refused.
pub type ApplyResult = Result<CommandResponse, ApplyError>;

/// A change notification, published after a command is applied (the
/// replacement for ZooKeeper watches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaEvent {
    TopicCreated {
        name: String,
        id: Uuid,
    },
    TopicDeleted {
        name: String,
        id: Uuid,
        /// The ledgers of every segment the topic's streams held.
        ledgers: Vec<ReleasedLedger>,
    },
    TopicConfigsChanged {
        name: String,
    },
    /// The dynamic broker configs of `broker` (`None`: the cluster-wide
    /// defaults) were replaced.
    BrokerConfigsChanged {
        broker: Option<NodeId>,
    },
    BrokerRegistered {
        id: NodeId,
    },
    StreamOwnerChanged {
        stream: StreamId,
        owner: NodeId,
        epoch: u64,
    },
    SegmentAdded {
        stream: StreamId,
        lssn: u64,
    },
    SegmentCompleted {
        stream: StreamId,
        lssn: u64,
    },
    StreamTruncated {
        stream: StreamId,
        log_start_offset: u64,
        /// The ledgers of the segments the truncation dropped.
        ledgers: Vec<ReleasedLedger>,
    },
    /// A topic grew from `from` to `to` partitions: streams `from..to`
    /// exist now, empty and unowned (the controller assigns them; without
    /// one, the namespace opens them).
    PartitionsCreated {
        name: String,
        id: Uuid,
        from: u32,
        to: u32,
    },
    /// A transaction was decided (`commit` or abort): the owners of
    /// `streams` write its marker, with this producer id and epoch, and
    /// report it (`TxnOp::MarkersWritten`).
    TxnPrepared {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        streams: Vec<StreamId>,
    },
    /// Every marker of a prepared transaction is written; `prepare_ms` is
    /// when it was prepared (wall clock).
    TxnCompleted {
        transactional_id: String,
        commit: bool,
        prepare_ms: u64,
    },
}

/// A ledger whose segment left the metadata (its topic was deleted or its
/// stream truncated), with what the segment store needs to free it: the
/// bookies of its ensemble hold its copies, and `stream_owner` (the
/// stream's owner when it was released) is the node expected to delete
/// them. Bookies that miss the delete collect the ledger as an orphan when
/// they next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedLedger {
    /// The ledger id.
    pub ledger_id: LedgerId,
    /// Bookie (node) ids holding its copies (the segment's ensemble).
    pub ensemble: Vec<NodeId>,
    /// The owner of the stream the segment belonged to, if any.
    pub stream_owner: Option<NodeId>,
}

impl ReleasedLedger {
    /// The released ledger of `segment`, a segment of a stream owned by `owner`.
    pub fn of(segment: &SegmentMeta, owner: Option<NodeId>) -> Self {
        ReleasedLedger {
            ledger_id: segment.ledger_id,
            ensemble: segment.ensemble.clone(),
            stream_owner: owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_commands_keep_their_serialized_form() {
        // The JSON the commands had before `SegmentSeal` (Raft logs and
        // snapshots of older versions hold it): it loads, and encodes back
        // byte for byte.
        let stream = r#"{"topic_id":"7f380c63-4262-4ee4-8630-4332060fd899","partition":1}"#;
        let fields = r#""lssn":5,"last_offset":349,"end_txid":77,"last_entry_id":null,"size_bytes":5511"#;
        let complete = format!(r#"{{"CompleteSegment":{{"stream":{stream},"owner_epoch":2,{fields}}}}}"#);
        let cmd: Command = serde_json::from_str(&complete).expect("old CompleteSegment loads");
        let seal = SegmentSeal {
            lssn: 5,
            last_offset: Some(349),
            end_txid: 77,
            last_entry_id: None,
            size_bytes: 5511,
        };
        assert!(matches!(&cmd, Command::CompleteSegment { owner_epoch: 2, seal: s, .. } if *s == seal));
        assert_eq!(serde_json::to_string(&cmd).expect("encode"), complete);

        let next = SegmentMeta {
            lssn: 6,
            ledger_id: 9,
            ensemble: vec![NodeId::new(1)],
            write_quorum: 1,
            ack_quorum: 1,
            base_offset: 350,
            start_txid: 350,
            state: SegmentState::InProgress,
            last_offset: None,
            end_txid: 350,
            last_entry_id: None,
            size_bytes: 0,
            created_ms: 9,
            owner_epoch: 0,
        };
        let next = serde_json::to_string(&next).expect("encode segment");
        let roll =
            format!(r#"{{"RollSegment":{{"stream":{stream},"owner_epoch":2,{fields},"next":{next}}}}}"#);
        let cmd: Command = serde_json::from_str(&roll).expect("old RollSegment loads");
        assert!(matches!(&cmd, Command::RollSegment { seal: s, next, .. } if *s == seal && next.lssn == 6));
        assert_eq!(serde_json::to_string(&cmd).expect("encode"), roll);
    }
}
