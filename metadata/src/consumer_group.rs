//! The durable part of consumer groups: committed offsets and each group's
//! last completed generation.
//!
//! Kafka keeps this in the `__consumer_offsets` topic; distlog keeps it in
//! the Raft-replicated metadata state, so it survives a broker restart and,
//! once clusters exist, a coordinator failover. The live protocol state
//! (members awaiting a join, heartbeat deadlines) stays in the coordinator's
//! memory; only what a new coordinator needs to carry on is stored here:
//! the generation, its protocol, leader and members with their assignments
//! (so a static member can rejoin without a rebalance), and the offsets.
//!
//! Offsets are keyed by topic *name*, as Kafka's are, and are removed when
//! the topic is deleted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::MetaState;

/// One committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// The client's free-form metadata string.
    pub metadata: String,
    /// Wall-clock millis of the commit (drives `offsets.retention.minutes`).
    pub commit_ms: u64,
}

/// One member of a completed generation, as a new coordinator needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberRecord {
    /// The coordinator-assigned member id.
    pub member_id: String,
    /// The static instance id (KIP-345), if the member is static.
    pub group_instance_id: Option<String>,
    /// The client id of the member's connection.
    pub client_id: String,
    /// The client's host (peer address) as seen by the coordinator.
    pub client_host: String,
    /// Session timeout the member joined with.
    pub session_timeout_ms: i32,
    /// Rebalance timeout the member joined with.
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the selected protocol (for consumers, its
    /// subscription), opaque to the broker.
    #[serde(with = "hex_bytes")]
    pub metadata: Vec<u8>,
    /// The assignment the leader gave the member, opaque to the broker.
    #[serde(with = "hex_bytes")]
    pub assignment: Vec<u8>,
}

/// A group's last completed generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The protocol type (`consumer` for Kafka consumers); empty for a group
    /// that only ever received standalone offset commits.
    pub protocol_type: String,
    /// The generation id (0 before the first rebalance).
    pub generation: i32,
    /// The protocol (assignor) selected for the generation.
    pub protocol: Option<String>,
    /// The member id of the generation's leader.
    pub leader: Option<String>,
    /// The generation's members; empty for an Empty group.
    pub members: Vec<GroupMemberRecord>,
    /// Wall-clock millis when the group entered its current state (for an
    /// Empty group, the start of its offsets' retention clock).
    pub state_ms: u64,
}

/// Everything stored for one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMeta {
    /// The last completed generation.
    pub record: GroupRecord,
    /// Committed offsets: topic name → partition → offset.
    pub offsets: BTreeMap<String, BTreeMap<u32, CommittedOffset>>,
    /// Offsets committed by open transactions (TxnOffsetCommit), by
    /// producer id: they become `offsets` when the transaction commits and
    /// are dropped when it aborts (`crate::transaction`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_txn_offsets: BTreeMap<i64, crate::transaction::PendingOffsets>,
}

impl GroupMeta {
    /// The committed offset of one partition, if any.
    pub fn offset(&self, topic: &str, partition: u32) -> Option<&CommittedOffset> {
        self.offsets.get(topic).and_then(|p| p.get(&partition))
    }
}

/// One offset to commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommitEntry {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The offset and its metadata.
    pub committed: CommittedOffset,
}

/// A change to group state. Many of them travel in one
/// [`crate::Command::Groups`], so a busy coordinator batches commits from
/// many consumers into one Raft round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupOp {
    /// Store offsets. Offsets of topics that no longer exist are dropped
    /// (the topic was deleted after the coordinator checked it).
    CommitOffsets {
        group: String,
        offsets: Vec<OffsetCommitEntry>,
        /// The generation of the member that committed; `None` for a
        /// standalone commit (and in entries written before this field).
        /// Applied only while the stored generation is not newer: a batch
        /// that a deposed coordinator sends late (paused, cut off, its
        /// Raft write stuck) must not overwrite the offsets members of a
        /// later generation committed since (campaign seeds 3102, 4078).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<i32>,
    },
    /// Replace the group's generation record (after a rebalance completes or
    /// the group becomes empty).
    StoreGroup { group: String, record: GroupRecord },
    /// Remove the group and all its offsets.
    DeleteGroup { group: String },
    /// Remove some of the group's offsets (OffsetDelete, retention). A group
    /// left with no offsets and no members is removed.
    DeleteOffsets {
        group: String,
        partitions: Vec<(String, u32)>,
    },
}

/// A group's latest coordinator claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupClaim {
    /// The claim number (see [`crate::Command::ClaimGroup`]).
    pub claim: u64,
    /// The broker that made it.
    pub node: crate::node_id::NodeId,
}

/// A coordinator's group change with the claim it holds the group under
/// (`None`: not fenced by claim, e.g. the offsets retention sweep).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedGroupOp {
    /// The change.
    pub op: GroupOp,
    /// The coordinator's claim of the op's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<u64>,
}

impl GroupOp {
    /// The group the op changes.
    pub fn group(&self) -> &str {
        match self {
            GroupOp::CommitOffsets { group, .. }
            | GroupOp::StoreGroup { group, .. }
            | GroupOp::DeleteGroup { group }
            | GroupOp::DeleteOffsets { group, .. } => group,
        }
    }
}

/// Record a new claim of `group` by `node`; returns it.
pub(crate) fn claim_group(state: &mut MetaState, group: &str, node: crate::node_id::NodeId) -> u64 {
    state.last_group_claim += 1;
    let claim = state.last_group_claim;
    state
        .group_claims
        .insert(group.to_string(), GroupClaim { claim, node });
    claim
}

/// Apply claimed ops in order, skipping those whose claim is not their
/// group's latest and members' commits of a generation older than the
/// stored one; returns the positions of the skipped ops.
pub(crate) fn apply_claimed_group_ops(state: &mut MetaState, ops: &[ClaimedGroupOp]) -> Vec<u32> {
    let mut fenced = Vec::new();
    for (i, claimed) in ops.iter().enumerate() {
        let group = claimed.op.group();
        let current = state.group_claims.get(group).map(|c| c.claim);
        let deposed = claimed.claim.is_some_and(|c| current != Some(c));
        if deposed || stale_generation(state, &claimed.op) {
            fenced.push(u32::try_from(i).unwrap_or(u32::MAX));
            continue;
        }
        apply_group_ops(state, std::slice::from_ref(&claimed.op));
    }
    fenced
}

/// A member's offset commit of a generation older than the stored one.
fn stale_generation(state: &MetaState, op: &GroupOp) -> bool {
    match op {
        GroupOp::CommitOffsets {
            group,
            generation: Some(g),
            ..
        } => state.groups.get(group).is_some_and(|m| m.record.generation > *g),
        _ => false,
    }
}

/// Apply group ops in order. They cannot be refused: the coordinator has
/// validated them against its live state, and what could have changed
/// since (a topic deleted) is handled deterministically here.
pub(crate) fn apply_group_ops(state: &mut MetaState, ops: &[GroupOp]) {
    for op in ops {
        match op {
            GroupOp::CommitOffsets { group, offsets, .. } => {
                if stale_generation(state, op) {
                    continue;
                }
                let topics = &state.topics;
                let meta = state.groups.entry(group.clone()).or_default();
                for entry in offsets {
                    if !topics.contains_key(&entry.topic) {
                        continue;
                    }
                    meta.offsets
                        .entry(entry.topic.clone())
                        .or_default()
                        .insert(entry.partition, entry.committed.clone());
                }
            }
            GroupOp::StoreGroup { group, record } => {
                state.groups.entry(group.clone()).or_default().record = record.clone();
            }
            GroupOp::DeleteGroup { group } => {
                state.groups.remove(group);
            }
            GroupOp::DeleteOffsets { group, partitions } => {
                let Some(meta) = state.groups.get_mut(group) else {
                    continue;
                };
                for (topic, partition) in partitions {
                    if let Some(parts) = meta.offsets.get_mut(topic) {
                        parts.remove(partition);
                        if parts.is_empty() {
                            meta.offsets.remove(topic);
                        }
                    }
                }
                if meta.offsets.is_empty()
                    && meta.record.members.is_empty()
                    && meta.pending_txn_offsets.is_empty()
                {
                    state.groups.remove(group);
                }
            }
        }
    }
}

/// Remove a deleted topic's offsets from every group.
pub(crate) fn forget_topic(state: &mut MetaState, topic: &str) {
    for meta in state.groups.values_mut() {
        meta.offsets.remove(topic);
        for pending in meta.pending_txn_offsets.values_mut() {
            pending.retain(|e| e.topic != topic);
        }
    }
}

/// Opaque protocol bytes stored as a hex string (the state is JSON, where a
/// byte array would be a list of numbers four times the size).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(DIGITS[(b >> 4) as usize] as char);
            out.push(DIGITS[(b & 0xf) as usize] as char);
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("hex string of odd length"));
        }
        let nibble = |c: u8| -> Result<u8, D::Error> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(serde::de::Error::custom("invalid hex digit")),
            }
        };
        text.as_bytes()
            .chunks(2)
            .map(|pair| Ok((nibble(pair[0])? << 4) | nibble(pair[1])?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Command, TopicMeta};
    use crate::state_machine::apply;

    fn state_with_topic(name: &str) -> MetaState {
        let mut state = MetaState::default();
        state.topics.insert(
            name.into(),
            TopicMeta {
                name: name.into(),
                id: uuid::Uuid::from_u128(7),
                partitions: 2,
                configs: Default::default(),
                created_ms: 0,
            },
        );
        state
    }

    fn groups(state: &mut MetaState, ops: Vec<GroupOp>) {
        let (res, events) = apply(state, &Command::Groups(ops));
        assert_eq!(res, Ok(crate::model::CommandResponse::Ok));
        assert!(events.is_empty());
    }

    fn commit(group: &str, topic: &str, partition: u32, offset: i64) -> GroupOp {
        GroupOp::CommitOffsets {
            group: group.into(),
            generation: None,
            offsets: vec![OffsetCommitEntry {
                topic: topic.into(),
                partition,
                committed: CommittedOffset {
                    offset,
                    leader_epoch: 3,
                    metadata: "m".into(),
                    commit_ms: 10,
                },
            }],
        }
    }

    #[test]
    fn claimed_changes_apply_only_under_their_groups_latest_claim_and_the_rest_are_reported() {
        // Seeds 5022 and 5054: a broker cut off from the quorum coordinated
        // from its stale replica, and commits skipped at apply were
        // acknowledged. Claims fence the deposed coordinator; skipped changes
        // are reported so the client is told.
        let mut state = state_with_topic("t");
        let claimed = |op: GroupOp, claim: Option<u64>| ClaimedGroupOp { op, claim };
        let apply_claimed = |state: &mut MetaState, ops: Vec<ClaimedGroupOp>| {
            let (res, _) = apply(state, &Command::ClaimedGroups(ops));
            match res {
                Ok(crate::model::CommandResponse::GroupsFenced(fenced)) => fenced,
                other => panic!("unexpected answer {other:?}"),
            }
        };
        let claim = |state: &mut MetaState, node: u64| {
            let cmd = Command::ClaimGroup {
                group: "g".into(),
                node: crate::node_id::NodeId::new(node),
            };
            match apply(state, &cmd).0 {
                Ok(crate::model::CommandResponse::GroupClaim(c)) => c,
                other => panic!("unexpected answer {other:?}"),
            }
        };
        let offset = |state: &MetaState| {
            state
                .groups
                .get("g")
                .and_then(|g| g.offset("t", 0))
                .map(|o| o.offset)
        };
        let first = claim(&mut state, 1);
        assert_eq!(
            apply_claimed(&mut state, vec![claimed(commit("g", "t", 0, 5), Some(first))]),
            Vec::<u32>::new()
        );
        let second = claim(&mut state, 2);
        assert!(second > first);
        assert_eq!(
            state.group_claims.get("g").map(|c| (c.claim, c.node.get())),
            Some((second, 2))
        );
        // The first claimant's late change is fenced; the second's applies,
        // and so does a change not fenced by claim.
        let fenced = apply_claimed(
            &mut state,
            vec![
                claimed(commit("g", "t", 0, 3), Some(first)),
                claimed(commit("g", "t", 0, 8), Some(second)),
                claimed(commit("g", "t", 0, 9), None),
            ],
        );
        assert_eq!(fenced, vec![0]);
        assert_eq!(offset(&state), Some(9));
        // A member's commit of a generation older than the stored one is
        // skipped and reported, even under the latest claim.
        groups(
            &mut state,
            vec![GroupOp::StoreGroup {
                group: "g".into(),
                record: GroupRecord {
                    generation: 4,
                    ..GroupRecord::default()
                },
            }],
        );
        let mut old_generation = commit("g", "t", 0, 2);
        if let GroupOp::CommitOffsets { generation, .. } = &mut old_generation {
            *generation = Some(3);
        }
        assert_eq!(
            apply_claimed(&mut state, vec![claimed(old_generation, Some(second))]),
            vec![0]
        );
        assert_eq!(offset(&state), Some(9));
        // A group deleted and created again never matches an older claim.
        groups(&mut state, vec![GroupOp::DeleteGroup { group: "g".into() }]);
        let third = claim(&mut state, 1);
        assert!(third > second);
        assert_eq!(
            apply_claimed(&mut state, vec![claimed(commit("g", "t", 0, 1), Some(second))]),
            vec![0]
        );
        assert_eq!(offset(&state), None);
        // Claims survive a snapshot.
        let restored = crate::store::roundtrip_state_for_tests(&state);
        assert_eq!(restored.group_claims, state.group_claims);
        assert_eq!(restored.last_group_claim, third);
    }

    #[test]
    fn a_commit_of_an_older_generation_than_the_stored_one_is_not_applied() {
        // Seed 4078: a coordinator paused with a batch of commits of
        // generation 1 (offset 3310) in flight; the group moved, rebalanced
        // to generation 2 and committed 4558; the paused node's batch then
        // reached Raft. It must not take the offsets back.
        let mut state = state_with_topic("t");
        groups(&mut state, vec![commit("g", "t", 0, 1)]);
        let record = |generation| GroupRecord {
            protocol_type: "consumer".into(),
            generation,
            ..GroupRecord::default()
        };
        let at = |generation: Option<i32>, offset| {
            let mut op = commit("g", "t", 0, offset);
            if let GroupOp::CommitOffsets { generation: g, .. } = &mut op {
                *g = generation;
            }
            op
        };
        groups(
            &mut state,
            vec![GroupOp::StoreGroup {
                group: "g".into(),
                record: record(1),
            }],
        );
        groups(&mut state, vec![at(Some(1), 3310)]);
        groups(
            &mut state,
            vec![GroupOp::StoreGroup {
                group: "g".into(),
                record: record(2),
            }],
        );
        groups(&mut state, vec![at(Some(2), 4558)]);
        let offset = |s: &MetaState| s.groups["g"].offset("t", 0).map(|c| c.offset);
        assert_eq!(offset(&state), Some(4558));
        // The late batch of generation 1: dropped.
        groups(&mut state, vec![at(Some(1), 3310)]);
        assert_eq!(offset(&state), Some(4558));
        // A standalone commit (no generation) and one of the current or a
        // newer generation still apply.
        groups(&mut state, vec![at(None, 100)]);
        assert_eq!(offset(&state), Some(100));
        groups(&mut state, vec![at(Some(3), 5000)]);
        assert_eq!(offset(&state), Some(5000));
        // Old log entries without the field still decode (as standalone).
        let old = r#"{"CommitOffsets":{"group":"g","offsets":[]}}"#;
        let op: GroupOp = serde_json::from_str(old).expect("an entry written before the field decodes");
        assert!(matches!(op, GroupOp::CommitOffsets { generation: None, .. }));
    }

    #[test]
    fn commits_overwrite_and_skip_unknown_topics() {
        let mut state = state_with_topic("t");
        let ops = vec![
            commit("g", "t", 0, 5),
            commit("g", "t", 0, 9),
            commit("g", "gone", 0, 1),
        ];
        let (res, _) = apply(&mut state, &Command::Groups(ops));
        assert!(res.is_ok());
        let g = &state.groups["g"];
        assert_eq!(g.offset("t", 0).map(|c| c.offset), Some(9));
        assert_eq!(g.offset("t", 0).map(|c| c.leader_epoch), Some(3));
        assert!(g.offset("gone", 0).is_none());
        assert_eq!(g.offsets.len(), 1);
    }

    #[test]
    fn deleting_a_topic_drops_its_offsets() {
        let mut state = state_with_topic("t");
        groups(&mut state, vec![commit("g", "t", 1, 5)]);
        let (res, _) = apply(&mut state, &Command::DeleteTopic { name: "t".into() });
        assert!(res.is_ok());
        assert!(state.groups["g"].offsets.is_empty());
    }

    #[test]
    fn deleting_the_last_offset_of_an_empty_group_removes_it() {
        let mut state = state_with_topic("t");
        groups(&mut state, vec![commit("g", "t", 0, 5), commit("g", "t", 1, 6)]);
        groups(
            &mut state,
            vec![GroupOp::DeleteOffsets {
                group: "g".into(),
                partitions: vec![("t".into(), 0)],
            }],
        );
        assert_eq!(state.groups["g"].offset("t", 1).map(|c| c.offset), Some(6));
        groups(
            &mut state,
            vec![GroupOp::DeleteOffsets {
                group: "g".into(),
                partitions: vec![("t".into(), 1)],
            }],
        );
        assert!(!state.groups.contains_key("g"));
    }

    #[test]
    fn group_records_round_trip_through_json() {
        let mut state = state_with_topic("t");
        let record = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            members: vec![GroupMemberRecord {
                member_id: "m-1".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 6000,
                rebalance_timeout_ms: 30000,
                metadata: vec![0, 1, 0xfe, 0xff],
                assignment: vec![],
            }],
            state_ms: 99,
        };
        groups(
            &mut state,
            vec![GroupOp::StoreGroup {
                group: "g".into(),
                record: record.clone(),
            }],
        );
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains("\"0001feff\""));
        let back: MetaState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.groups["g"].record, record);
        groups(&mut state, vec![GroupOp::DeleteGroup { group: "g".into() }]);
        assert!(state.groups.is_empty());
    }
}
