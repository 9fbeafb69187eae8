//! `metadata_apply`: the metadata state machine (`distlog_metadata::state_machine::apply`).
//!
//! Input: bytes read with `arbitrary::Unstructured` as a sequence of commands, each built
//! against the current state so that many are accepted: a small universe of topics (4 names,
//! 5 ids), partitions, owners and transactional ids; epochs, LSSNs and offsets picked from the
//! current values, their neighbours or anything. Commands cover topics, partitions, ledger
//! and producer-id allocation, stream acquisition, segment add/complete/roll, truncation,
//! broker configs, consumer-group offsets and every transaction op.
//!
//! Checked after every command (what `apply` and the model promise):
//! - `apply` never panics; a refused command leaves the state exactly as it was;
//! - a stream's `owner_epoch` never decreases, nor its `log_start_offset`, nor `next_lssn`;
//! - a stream's segments have strictly increasing LSSNs below `next_lssn`, only the last may
//!   be InProgress, and their `owner_epoch`s never decrease and never exceed the stream's;
//! - offsets stay continuous (each segment starts where the previous one ends, none overlap)
//!   whenever every accepted segment command was itself continuous — `apply` does not check
//!   offsets, it trusts the writer (see README.md), so only that conditional form holds;
//! - ledger ids handed out strictly increase (never reused), producer-id blocks never overlap;
//! - every stream belongs to a topic that has that partition, and every partition has a stream;
//! - a transactional id's epoch never decreases while its producer id stays the same;
//! - the first command of each kind in an input survives its JSON round trip (the Raft log's
//!   form; once per kind keeps serde, which dominated the run time, from swamping the apply
//!   checks — each kind's fields still vary from input to input), and at the end the state
//!   survives a JSON round trip in the snapshot's form (streams as a list), and replaying the
//!   commands gives the same state and outcomes (determinism).

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use distlog_metadata::consumer_group::{ClaimedGroupOp, CommittedOffset, GroupOp, OffsetCommitEntry};
use distlog_metadata::state_machine::apply;
use distlog_metadata::transaction::{TxnOp, TxnPartition};
use distlog_metadata::{
    ApplyResult, BrokerInfo, Command, CommandResponse, MetaState, NodeId, SegmentMeta, SegmentSeal,
    SegmentState, StreamId,
};
use uuid::Uuid;

/// Most commands taken from one input. Each command costs a state clone
/// and a walk of every invariant, so an input's cost grows with the square
/// of its length; 64 commands reach every state the invariants care about
/// (several topics with rolled, sealed and truncated segments, transactions
/// through every phase) at several times the executions per second of 256.
const MAX_COMMANDS: usize = 64;

const TOPICS: [&str; 4] = ["a", "b", "c", "d"];
const TXN_IDS: [&str; 3] = ["tx1", "tx2", "tx3"];

fn topic_id(u: &mut Unstructured) -> Result<Uuid> {
    Ok(Uuid::from_u128(u.int_in_range(1..=5u128)?))
}

fn pick_u64(u: &mut Unstructured, near: u64) -> Result<u64> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 | 1 => near,
        2 => near.wrapping_add(1),
        3 => near.wrapping_sub(1),
        4 => u.int_in_range(0..=16)?,
        _ => u.arbitrary()?,
    })
}

fn opt_u64(u: &mut Unstructured, near: u64) -> Result<Option<u64>> {
    Ok(if u.ratio(1, 4)? {
        None
    } else {
        Some(pick_u64(u, near)?)
    })
}

/// A stream id: an existing stream most of the time, else anything in the universe.
fn stream(u: &mut Unstructured, state: &MetaState) -> Result<StreamId> {
    if !state.streams.is_empty() && u.ratio(7, 8)? {
        let i = u.choose_index(state.streams.len())?;
        if let Some(id) = state.streams.keys().nth(i) {
            return Ok(*id);
        }
    }
    Ok(StreamId {
        topic_id: topic_id(u)?,
        partition: u.int_in_range(0..=4)?,
    })
}

fn segment(u: &mut Unstructured, state: &MetaState, sid: &StreamId) -> Result<SegmentMeta> {
    let s = state.streams.get(sid);
    let next_lssn = s.map_or(1, |s| s.next_lssn);
    let next_offset = s
        .and_then(|s| s.segments.last().map(SegmentMeta::next_offset))
        .or_else(|| s.map(|s| s.log_start_offset))
        .unwrap_or(0);
    let n = u.int_in_range(1..=3u64)?;
    Ok(SegmentMeta {
        lssn: pick_u64(u, next_lssn)?,
        ledger_id: pick_u64(u, state.next_ledger_id)?,
        ensemble: (1..=n).map(NodeId::new).collect(),
        write_quorum: u.int_in_range(1..=3)?,
        ack_quorum: u.int_in_range(1..=3)?,
        base_offset: pick_u64(u, next_offset)?,
        start_txid: u.int_in_range(0..=1000)?,
        state: if u.ratio(7, 8)? {
            SegmentState::InProgress
        } else {
            SegmentState::Completed
        },
        last_offset: None,
        end_txid: 0,
        last_entry_id: None,
        size_bytes: 0,
        created_ms: u.arbitrary()?,
        owner_epoch: u.arbitrary()?,
    })
}

fn seal(u: &mut Unstructured, state: &MetaState, sid: &StreamId) -> Result<SegmentSeal> {
    let last = state.streams.get(sid).and_then(|s| s.segments.last());
    let lssn = last.map_or(1, |l| l.lssn);
    let base = last.map_or(0, |l| l.base_offset);
    let count = u.int_in_range(0..=100u64)?;
    Ok(SegmentSeal {
        lssn: pick_u64(u, lssn)?,
        last_offset: if count == 0 {
            None
        } else {
            opt_u64(u, base.saturating_add(count - 1))?
        },
        end_txid: u.int_in_range(0..=2000)?,
        last_entry_id: opt_u64(u, count)?,
        size_bytes: u.int_in_range(0..=1 << 20)?,
    })
}

fn epoch(u: &mut Unstructured, state: &MetaState, sid: &StreamId) -> Result<u64> {
    pick_u64(u, state.streams.get(sid).map_or(0, |s| s.owner_epoch))
}

fn configs(u: &mut Unstructured) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=2)? {
        let k = ["retention.ms", "segment.bytes", "x"][u.choose_index(3)?];
        m.insert(k.to_string(), u.int_in_range(0..=9999u32)?.to_string());
    }
    Ok(m)
}

fn txn_partitions(u: &mut Unstructured, state: &MetaState) -> Result<Vec<TxnPartition>> {
    let mut v = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let sid = stream(u, state)?;
        let topic = state
            .streams
            .get(&sid)
            .map_or_else(|| TOPICS[0].to_string(), |s| s.topic.clone());
        v.push(TxnPartition { stream: sid, topic });
    }
    Ok(v)
}

fn offsets(u: &mut Unstructured) -> Result<Vec<OffsetCommitEntry>> {
    let mut v = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        v.push(OffsetCommitEntry {
            topic: TOPICS[u.choose_index(TOPICS.len())?].to_string(),
            partition: u.int_in_range(0..=4)?,
            committed: CommittedOffset {
                offset: u.arbitrary()?,
                leader_epoch: u.arbitrary()?,
                metadata: String::new(),
                commit_ms: u.arbitrary()?,
            },
        });
    }
    Ok(v)
}

fn txn_op(u: &mut Unstructured, state: &MetaState) -> Result<TxnOp> {
    let tid = TXN_IDS[u.choose_index(TXN_IDS.len())?].to_string();
    let cur = state.transactions.get(&tid);
    let pid = match cur {
        Some(t) if u.ratio(3, 4)? => t.producer_id,
        _ => u.int_in_range(-1..=5)?,
    };
    let cur_epoch = cur.map_or(0, |t| t.producer_epoch);
    let pe: i16 = match u.int_in_range(0..=4u8)? {
        0 | 1 => cur_epoch,
        2 => cur_epoch.wrapping_add(1),
        3 => cur_epoch.wrapping_sub(1),
        _ => u.arbitrary()?,
    };
    let now_ms = u.int_in_range(0..=1_000_000)?;
    Ok(match u.int_in_range(0..=6u8)? {
        0 => TxnOp::Init {
            transactional_id: tid,
            fresh_producer_id: u.int_in_range(0..=10)?,
            timeout_ms: u.int_in_range(-1..=60_000)?,
            expected: if u.ratio(1, 2)? { None } else { Some((pid, pe)) },
            now_ms,
        },
        1 => TxnOp::Add {
            transactional_id: tid,
            producer_id: pid,
            producer_epoch: pe,
            partitions: txn_partitions(u, state)?,
            groups: if u.ratio(1, 2)? {
                vec!["g".into()]
            } else {
                Vec::new()
            },
            now_ms,
        },
        2 => TxnOp::End {
            transactional_id: tid,
            producer_id: pid,
            producer_epoch: pe,
            commit: u.arbitrary()?,
            now_ms,
        },
        3 => TxnOp::Timeout {
            transactional_id: tid,
            producer_id: pid,
            producer_epoch: pe,
            now_ms,
        },
        4 => {
            let streams = match cur {
                Some(t) if u.ratio(3, 4)? => t.pending_markers.iter().map(|p| p.stream).collect(),
                _ => txn_partitions(u, state)?.into_iter().map(|p| p.stream).collect(),
            };
            TxnOp::MarkersWritten {
                transactional_id: tid,
                producer_id: pid,
                producer_epoch: pe,
                streams,
                now_ms,
            }
        }
        5 => TxnOp::Expire {
            transactional_id: tid,
            producer_id: pid,
            producer_epoch: pe,
            expiration_ms: u.int_in_range(0..=100_000)?,
            now_ms,
        },
        _ => TxnOp::CommitOffsets {
            transactional_id: tid,
            producer_id: pid,
            producer_epoch: pe,
            group: "g".into(),
            offsets: offsets(u)?,
        },
    })
}

/// One command built against `state`.
pub fn command(u: &mut Unstructured, state: &MetaState) -> Result<Command> {
    Ok(match u.int_in_range(0..=17u8)? {
        0 => Command::InitCluster {
            cluster_id: u.arbitrary()?,
        },
        1 => Command::RegisterBroker(BrokerInfo {
            id: NodeId::new(u.int_in_range(1..=3)?),
            kafka_host: "h".into(),
            kafka_port: u.arbitrary()?,
            listeners: BTreeMap::new(),
            rack: None,
            bookie_addr: if u.arbitrary()? { Some("b:1".into()) } else { None },
            lease_expires_ms: u.arbitrary()?,
        }),
        2 => Command::CreateTopic {
            name: TOPICS[u.choose_index(TOPICS.len())?].to_string(),
            id: topic_id(u)?,
            partitions: u.int_in_range(0..=3)?,
            configs: configs(u)?,
            created_ms: u.arbitrary()?,
        },
        3 => Command::DeleteTopic {
            name: TOPICS[u.choose_index(TOPICS.len())?].to_string(),
        },
        4 => Command::AlterTopicConfigs {
            name: TOPICS[u.choose_index(TOPICS.len())?].to_string(),
            configs: configs(u)?,
        },
        5 | 6 => Command::AllocateLedgerId,
        7 => Command::AllocateProducerIds {
            count: pick_u64(u, 1000)?,
        },
        8 | 9 => {
            let sid = stream(u, state)?;
            Command::AcquireStream {
                stream: sid,
                owner: NodeId::new(u.int_in_range(1..=3)?),
                expected_epoch: if u.ratio(1, 3)? {
                    None
                } else {
                    Some(epoch(u, state, &sid)?)
                },
            }
        }
        10 | 11 => {
            let sid = stream(u, state)?;
            Command::AddSegment {
                stream: sid,
                owner_epoch: epoch(u, state, &sid)?,
                segment: segment(u, state, &sid)?,
            }
        }
        12 => {
            let sid = stream(u, state)?;
            Command::CompleteSegment {
                stream: sid,
                owner_epoch: epoch(u, state, &sid)?,
                seal: seal(u, state, &sid)?,
            }
        }
        13 => {
            let sid = stream(u, state)?;
            let seal = seal(u, state, &sid)?;
            let mut next = segment(u, state, &sid)?;
            if u.ratio(3, 4)? {
                // What a writer sends: the next segment after the sealed one.
                next.lssn = state.streams.get(&sid).map_or(1, |s| s.next_lssn);
                if let Some(last) = seal.last_offset {
                    next.base_offset = last.wrapping_add(1);
                }
            }
            Command::RollSegment {
                stream: sid,
                owner_epoch: epoch(u, state, &sid)?,
                seal,
                next,
            }
        }
        14 => {
            let sid = stream(u, state)?;
            let end = state
                .streams
                .get(&sid)
                .and_then(|s| s.segments.last().map(SegmentMeta::next_offset))
                .unwrap_or(0);
            Command::TruncateStream {
                stream: sid,
                log_start_offset: pick_u64(u, end / 2)?,
            }
        }
        15 => {
            let name = TOPICS[u.choose_index(TOPICS.len())?].to_string();
            let id = match state.topics.get(&name) {
                Some(t) if u.ratio(3, 4)? => t.id,
                _ => topic_id(u)?,
            };
            Command::CreatePartitions {
                name,
                id,
                partitions: u.int_in_range(0..=5)?,
            }
        }
        16 => {
            let mut ops = Vec::new();
            for _ in 0..u.int_in_range(0..=2)? {
                ops.push(match u.int_in_range(0..=2u8)? {
                    0 => GroupOp::CommitOffsets {
                        group: "g".into(),
                        generation: None,
                        offsets: offsets(u)?,
                    },
                    1 => GroupOp::DeleteGroup { group: "g".into() },
                    _ => GroupOp::DeleteOffsets {
                        group: "g".into(),
                        partitions: vec![(TOPICS[u.choose_index(TOPICS.len())?].to_string(), 0)],
                    },
                });
            }
            if u.ratio(1, 5)? {
                Command::ClaimGroup {
                    group: "g".into(),
                    node: NodeId::new(u.int_in_range(1..=3)?),
                }
            } else if u.ratio(1, 3)? {
                let latest = state.group_claims.get("g").map_or(0, |c| c.claim);
                Command::ClaimedGroups(
                    ops.into_iter()
                        .map(|op| {
                            let claim = match u.int_in_range(0..=2u8)? {
                                0 => None,
                                1 => Some(latest),
                                _ => Some(pick_u64(u, latest)?),
                            };
                            Ok(ClaimedGroupOp { op, claim })
                        })
                        .collect::<Result<_>>()?,
                )
            } else if u.ratio(1, 4)? {
                Command::AlterBrokerConfigs {
                    broker: if u.arbitrary()? {
                        None
                    } else {
                        Some(NodeId::new(1))
                    },
                    configs: configs(u)?,
                }
            } else {
                Command::Groups(ops)
            }
        }
        _ => Command::Txn(txn_op(u, state)?),
    })
}

/// Whether a segment command, applied to `before`, keeps the stream's offsets continuous by
/// itself (the writer's promise, which `apply` does not check).
fn continuous_input(before: &MetaState, cmd: &Command) -> bool {
    let next_offset = |sid: &StreamId| {
        before.streams.get(sid).map(|s| {
            s.segments
                .last()
                .map_or(s.log_start_offset, SegmentMeta::next_offset)
        })
    };
    let seal_ok = |sid: &StreamId, seal: &SegmentSeal| {
        let base = before
            .streams
            .get(sid)
            .and_then(|s| s.segments.iter().find(|g| g.lssn == seal.lssn))
            .map_or(0, |g| g.base_offset);
        seal.last_offset.is_none_or(|l| l >= base)
    };
    match cmd {
        Command::AddSegment { stream, segment, .. } => next_offset(stream) == Some(segment.base_offset),
        Command::CompleteSegment { stream, seal, .. } => seal_ok(stream, seal),
        Command::RollSegment {
            stream, seal, next, ..
        } => {
            let base = before
                .streams
                .get(stream)
                .and_then(|s| s.segments.last())
                .map_or(0, |g| g.base_offset);
            seal_ok(stream, seal)
                && next.base_offset == seal.last_offset.map_or(base, |l| l.saturating_add(1))
        }
        _ => true,
    }
}

/// What the checker remembers across commands.
#[derive(Default)]
struct History {
    last_ledger: Option<u64>,
    producer_blocks: Vec<(u64, u64)>,
    /// Streams whose every accepted segment command was continuous.
    discontinuous: std::collections::BTreeSet<StreamId>,
}

fn check(before: &MetaState, after: &MetaState, cmd: &Command, result: &ApplyResult, h: &mut History) {
    if result.is_err() {
        assert_eq!(
            before, after,
            "a refused command changed the state: {cmd:?} -> {result:?}"
        );
        return;
    }
    match (cmd, result) {
        (Command::AllocateLedgerId, Ok(CommandResponse::LedgerId(id))) => {
            assert!(
                h.last_ledger.is_none_or(|l| *id > l),
                "ledger id {id} reused or going back"
            );
            h.last_ledger = Some(*id);
        }
        (Command::AllocateProducerIds { count }, Ok(CommandResponse::ProducerId(first))) => {
            let end = first.checked_add(*count).expect("an accepted block fits");
            for (a, b) in &h.producer_blocks {
                assert!(end <= *a || *first >= *b, "producer id blocks overlap");
            }
            h.producer_blocks.push((*first, end));
        }
        (Command::ClaimGroup { group, node }, Ok(CommandResponse::GroupClaim(claim))) => {
            assert!(*claim > before.last_group_claim, "group claim {claim} not above every earlier one");
            assert_eq!(after.group_claims.get(group).map(|c| (c.claim, c.node)), Some((*claim, *node)));
        }
        (Command::ClaimedGroups(ops), Ok(CommandResponse::GroupsFenced(fenced))) => {
            // Exactly the ops whose claim is not their group's latest at their turn, or members'
            // commits of an older generation, are reported; claims do not change.
            assert_eq!(before.group_claims, after.group_claims, "claimed changes moved a claim");
            for &i in fenced {
                let op = &ops[i as usize];
                let latest = before.group_claims.get(op.op.group()).map(|c| c.claim);
                let generation_stale = matches!(op.op, GroupOp::CommitOffsets { generation: Some(_), .. });
                assert!(
                    op.claim.is_some_and(|c| Some(c) != latest) || generation_stale,
                    "op {i} reported fenced under its group's latest claim: {op:?}"
                );
            }
            for (i, op) in ops.iter().enumerate() {
                let latest = before.group_claims.get(op.op.group()).map(|c| c.claim);
                if op.claim.is_some_and(|c| Some(c) != latest) {
                    assert!(fenced.contains(&(i as u32)), "op {i} of a superseded claim applied: {op:?}");
                }
            }
        }
        (
            Command::AllocateLedgerId
            | Command::AllocateProducerIds { .. }
            | Command::ClaimGroup { .. }
            | Command::ClaimedGroups(_),
            r,
        ) => {
            panic!("unexpected answer {r:?} to {cmd:?}")
        }
        _ => {}
    }
    if let Command::AddSegment { stream, .. }
    | Command::CompleteSegment { stream, .. }
    | Command::RollSegment { stream, .. } = cmd
    {
        if !continuous_input(before, cmd) {
            h.discontinuous.insert(*stream);
        }
    }
    for (sid, s) in &after.streams {
        if let Some(b) = before.streams.get(sid) {
            assert!(
                s.owner_epoch >= b.owner_epoch,
                "stream {sid}: owner epoch went back"
            );
            assert!(
                s.log_start_offset >= b.log_start_offset,
                "stream {sid}: log start went back"
            );
            assert!(s.next_lssn >= b.next_lssn, "stream {sid}: next lssn went back");
        }
        assert_eq!(s.id, *sid);
        let t = after.topics.get(&s.topic).expect("a stream's topic exists");
        assert!(
            t.id == sid.topic_id && sid.partition < t.partitions,
            "stream {sid} outside its topic"
        );
        for (i, seg) in s.segments.iter().enumerate() {
            assert!(
                seg.lssn < s.next_lssn,
                "stream {sid}: lssn {} not below next",
                seg.lssn
            );
            assert!(
                seg.owner_epoch <= s.owner_epoch,
                "stream {sid}: segment epoch above the stream's"
            );
            if i + 1 < s.segments.len() {
                assert_eq!(
                    seg.state,
                    SegmentState::Completed,
                    "stream {sid}: in-progress segment not last"
                );
            }
            if let Some(prev) = i.checked_sub(1).map(|p| &s.segments[p]) {
                assert!(seg.lssn > prev.lssn, "stream {sid}: lssns not increasing");
                assert!(
                    seg.owner_epoch >= prev.owner_epoch,
                    "stream {sid}: segment epochs go back"
                );
                if !h.discontinuous.contains(sid) {
                    assert_eq!(
                        seg.base_offset,
                        prev.next_offset(),
                        "stream {sid}: offsets not continuous after continuous commands"
                    );
                }
            }
        }
    }
    for t in after.topics.values() {
        for p in 0..t.partitions {
            assert!(
                after.streams.contains_key(&t.stream(p)),
                "topic {} lacks partition {p}",
                t.name
            );
        }
    }
    for (tid, t) in &after.transactions {
        if let Some(b) = before.transactions.get(tid) {
            if b.producer_id == t.producer_id {
                assert!(
                    t.producer_epoch >= b.producer_epoch,
                    "transactional id {tid}: epoch {} went back to {} ({cmd:?})",
                    b.producer_epoch,
                    t.producer_epoch
                );
            }
        }
    }
}

/// Run one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut state = MetaState::default();
    let mut h = History::default();
    let mut log = Vec::new();
    let mut round_tripped = Vec::new();
    while log.len() < MAX_COMMANDS && !u.is_empty() {
        let Ok(cmd) = command(&mut u, &state) else {
            break;
        };
        let kind = std::mem::discriminant(&cmd);
        if !round_tripped.contains(&kind) {
            round_tripped.push(kind);
            let json = serde_json::to_vec(&cmd).expect("a command serializes");
            let back: Command = serde_json::from_slice(&json).expect("a serialized command deserializes");
            assert_eq!(back, cmd, "command JSON round trip");
        }
        let before = state.clone();
        let (result, _events) = apply(&mut state, &cmd);
        check(&before, &state, &cmd, &result, &mut h);
        log.push((cmd, result));
    }
    // The snapshot's JSON form (`store::state`): the streams map is keyed by a struct, which
    // JSON cannot key by, so it travels as a list of `StreamMeta`s (each carries its id).
    let mut rest = state.clone();
    let streams: Vec<_> = std::mem::take(&mut rest.streams).into_values().collect();
    let json = serde_json::to_vec(&(&rest, &streams)).expect("the state serializes");
    let (mut back, streams): (MetaState, Vec<distlog_metadata::StreamMeta>) =
        serde_json::from_slice(&json).expect("a snapshot deserializes");
    back.streams = streams.into_iter().map(|s| (s.id, s)).collect();
    assert_eq!(back, state, "snapshot JSON round trip");
    let mut replay = MetaState::default();
    for (cmd, result) in &log {
        let (again, _) = apply(&mut replay, cmd);
        assert_eq!(&again, result, "replay gives the same outcome");
    }
    assert_eq!(replay, state, "replay gives the same state");
}
