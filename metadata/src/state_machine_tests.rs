use std::collections::BTreeMap;

use uuid::Uuid;

use super::apply;
use crate::model::*;
use crate::NodeId;
use truncate::three_segments;

fn topic_id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn create(name: &str, id: Uuid, partitions: u32) -> Command {
    Command::CreateTopic {
        name: name.into(),
        id,
        partitions,
        configs: BTreeMap::new(),
        created_ms: 7,
    }
}

fn sid(id: Uuid, partition: u32) -> StreamId {
    StreamId {
        topic_id: id,
        partition,
    }
}

fn segment(lssn: u64, ledger_id: u64, base_offset: u64) -> SegmentMeta {
    SegmentMeta {
        lssn,
        ledger_id,
        ensemble: vec![NodeId::new(1)],
        write_quorum: 1,
        ack_quorum: 1,
        base_offset,
        start_txid: base_offset,
        state: SegmentState::InProgress,
        last_offset: None,
        end_txid: base_offset,
        last_entry_id: None,
        size_bytes: 0,
        created_ms: 9,
        owner_epoch: 0,
    }
}

/// A released ledger of a segment built by [`segment`] (ensemble `[1]`).
fn released(ledger_id: u64, stream_owner: Option<NodeId>) -> ReleasedLedger {
    ReleasedLedger {
        ledger_id,
        ensemble: vec![NodeId::new(1)],
        stream_owner,
    }
}

fn add(stream: StreamId, epoch: u64, segment: SegmentMeta) -> Command {
    Command::AddSegment {
        stream,
        owner_epoch: epoch,
        segment,
    }
}

fn truncate(stream: StreamId, log_start_offset: u64) -> Command {
    Command::TruncateStream {
        stream,
        log_start_offset,
    }
}

fn complete(stream: StreamId, epoch: u64, lssn: u64, last_offset: Option<u64>) -> Command {
    Command::CompleteSegment {
        stream,
        owner_epoch: epoch,
        seal: SegmentSeal {
            lssn,
            last_offset,
            end_txid: 42,
            last_entry_id: last_offset.map(|o| o * 2),
            size_bytes: 100,
        },
    }
}

fn ok(state: &mut MetaState, cmd: Command) -> (CommandResponse, Vec<MetaEvent>) {
    let (res, events) = apply(state, &cmd);
    (res.expect("command should apply"), events)
}

fn refused(state: &mut MetaState, cmd: Command) -> ApplyError {
    let before = state.clone();
    let (res, events) = apply(state, &cmd);
    assert!(events.is_empty(), "a refusal publishes no event");
    assert_eq!(*state, before, "a refusal leaves the state untouched");
    res.expect_err("command should be refused")
}

/// A state with topic "t" (one partition), acquired at epoch 1 by broker 5.
fn owned_stream() -> (MetaState, StreamId) {
    let mut st = MetaState::default();
    let id = topic_id(1);
    ok(&mut st, create("t", id, 1));
    let s = sid(id, 0);
    ok(
        &mut st,
        Command::AcquireStream {
            stream: s,
            owner: NodeId::new(5),
            expected_epoch: None,
        },
    );
    (st, s)
}

#[test]
fn init_cluster_sets_id_only_once() {
    let mut st = MetaState::default();
    let (r, ev) = ok(
        &mut st,
        Command::InitCluster {
            cluster_id: "a".into(),
        },
    );
    assert_eq!((r, ev), (CommandResponse::Ok, vec![]));
    ok(
        &mut st,
        Command::InitCluster {
            cluster_id: "b".into(),
        },
    );
    assert_eq!(st.cluster_id, "a");
}

#[test]
fn create_topic_creates_empty_unowned_streams() {
    let mut st = MetaState::default();
    let id = topic_id(1);
    let (r, ev) = ok(&mut st, create("t", id, 3));
    assert_eq!(r, CommandResponse::Ok);
    assert_eq!(ev, vec![MetaEvent::TopicCreated { name: "t".into(), id }]);
    assert_eq!(st.topic("t").map(|t| (t.partitions, t.created_ms)), Some((3, 7)));
    assert_eq!(st.streams.len(), 3);
    for p in 0..3 {
        let s = st.stream(&sid(id, p)).expect("stream exists");
        assert_eq!(s.owner, None);
        assert_eq!(s.owner_epoch, 0);
        assert_eq!(s.next_lssn, 1);
        assert_eq!(s.log_start_offset, 0);
        assert!(s.segments.is_empty());
        assert_eq!(s.topic, "t");
    }
}

#[test]
fn create_topic_refusals() {
    let mut st = MetaState::default();
    ok(&mut st, create("t", topic_id(1), 1));
    assert_eq!(
        refused(&mut st, create("t", topic_id(2), 1)),
        ApplyError::TopicExists("t".into())
    );
    assert!(matches!(
        refused(&mut st, create("u", topic_id(1), 1)),
        ApplyError::Invalid(_)
    ));
    assert!(matches!(
        refused(&mut st, create("u", topic_id(3), 0)),
        ApplyError::Invalid(_)
    ));
    assert!(matches!(
        refused(&mut st, create("", topic_id(3), 1)),
        ApplyError::Invalid(_)
    ));
}

#[test]
fn delete_topic_releases_all_ledgers() {
    let mut st = MetaState::default();
    let id = topic_id(1);
    ok(&mut st, create("t", id, 2));
    for p in 0..2 {
        let s = sid(id, p);
        ok(
            &mut st,
            Command::AcquireStream {
                stream: s,
                owner: NodeId::new(1),
                expected_epoch: None,
            },
        );
        ok(
            &mut st,
            Command::AddSegment {
                stream: s,
                owner_epoch: 1,
                segment: segment(1, 10 + u64::from(p), 0),
            },
        );
    }
    let (r, ev) = ok(&mut st, Command::DeleteTopic { name: "t".into() });
    assert_eq!(r, CommandResponse::ReleasedLedgers(vec![10, 11]));
    assert_eq!(
        ev,
        vec![MetaEvent::TopicDeleted {
            name: "t".into(),
            id,
            ledgers: vec![
                released(10, Some(NodeId::new(1))),
                released(11, Some(NodeId::new(1)))
            ]
        }]
    );
    assert!(st.topics.is_empty());
    assert!(st.streams.is_empty());
    assert_eq!(
        refused(&mut st, Command::DeleteTopic { name: "t".into() }),
        ApplyError::UnknownTopic("t".into())
    );
}

#[test]
fn alter_topic_configs_replaces() {
    let mut st = MetaState::default();
    let mut cfg = BTreeMap::new();
    cfg.insert("retention.ms".to_string(), "5".to_string());
    ok(&mut st, create("t", topic_id(1), 1));
    let (_, ev) = ok(
        &mut st,
        Command::AlterTopicConfigs {
            name: "t".into(),
            configs: cfg.clone(),
        },
    );
    assert_eq!(ev, vec![MetaEvent::TopicConfigsChanged { name: "t".into() }]);
    assert_eq!(st.topic("t").map(|t| t.configs.clone()), Some(cfg.clone()));
    assert_eq!(
        refused(
            &mut st,
            Command::AlterTopicConfigs {
                name: "x".into(),
                configs: cfg
            }
        ),
        ApplyError::UnknownTopic("x".into())
    );
}

#[test]
fn ledger_ids_start_at_one_and_increase() {
    let mut st = MetaState::default();
    assert_eq!(
        ok(&mut st, Command::AllocateLedgerId).0,
        CommandResponse::LedgerId(1)
    );
    assert_eq!(
        ok(&mut st, Command::AllocateLedgerId).0,
        CommandResponse::LedgerId(2)
    );
    assert_eq!(st.next_ledger_id, 3);
    st.next_ledger_id = u64::MAX;
    assert!(matches!(
        refused(&mut st, Command::AllocateLedgerId),
        ApplyError::Invalid(_)
    ));
}

#[test]
fn producer_id_blocks() {
    let mut st = MetaState::default();
    assert_eq!(
        ok(&mut st, Command::AllocateProducerIds { count: 10 }).0,
        CommandResponse::ProducerId(0)
    );
    assert_eq!(
        ok(&mut st, Command::AllocateProducerIds { count: 5 }).0,
        CommandResponse::ProducerId(10)
    );
    assert_eq!(st.next_producer_id, 15);
    assert!(matches!(
        refused(&mut st, Command::AllocateProducerIds { count: 0 }),
        ApplyError::Invalid(_)
    ));
    st.next_producer_id = u64::MAX - 1;
    assert!(matches!(
        refused(&mut st, Command::AllocateProducerIds { count: 2 }),
        ApplyError::Invalid(_)
    ));
}

#[test]
fn register_broker_upserts() {
    let mut st = MetaState::default();
    let mut info = BrokerInfo {
        id: NodeId::new(3),
        kafka_host: "h".into(),
        kafka_port: 9092,
        listeners: Default::default(),
        rack: None,
        bookie_addr: None,
        lease_expires_ms: 1,
    };
    let (_, ev) = ok(&mut st, Command::RegisterBroker(info.clone()));
    assert_eq!(ev, vec![MetaEvent::BrokerRegistered { id: NodeId::new(3) }]);
    info.lease_expires_ms = 2;
    ok(&mut st, Command::RegisterBroker(info.clone()));
    assert_eq!(st.brokers.len(), 1);
    assert_eq!(st.brokers.get(&NodeId::new(3)), Some(&info));
}

#[test]
fn acquire_stream_bumps_epoch_and_checks_expected() {
    let (mut st, s) = owned_stream();
    let (r, ev) = ok(
        &mut st,
        Command::AcquireStream {
            stream: s,
            owner: NodeId::new(6),
            expected_epoch: Some(1),
        },
    );
    assert_eq!(r, CommandResponse::Epoch(2));
    assert_eq!(
        ev,
        vec![MetaEvent::StreamOwnerChanged {
            stream: s,
            owner: NodeId::new(6),
            epoch: 2
        }]
    );
    assert_eq!(
        st.stream(&s).map(|m| (m.owner, m.owner_epoch)),
        Some((Some(NodeId::new(6)), 2))
    );
    assert_eq!(
        refused(
            &mut st,
            Command::AcquireStream {
                stream: s,
                owner: NodeId::new(7),
                expected_epoch: Some(1)
            }
        ),
        ApplyError::EpochMismatch {
            stream: s,
            given: 1,
            current: 2
        }
    );
    let unknown = sid(topic_id(99), 0);
    assert_eq!(
        refused(
            &mut st,
            Command::AcquireStream {
                stream: unknown,
                owner: NodeId::new(7),
                expected_epoch: None
            }
        ),
        ApplyError::UnknownStream(unknown)
    );
}

#[test]
fn add_segment_appends_and_advances_lssn() {
    let (mut st, s) = owned_stream();
    let (r, ev) = ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: segment(1, 11, 0),
        },
    );
    assert_eq!(r, CommandResponse::Ok);
    assert_eq!(ev, vec![MetaEvent::SegmentAdded { stream: s, lssn: 1 }]);
    let m = st.stream(&s).expect("stream");
    assert_eq!(m.next_lssn, 2);
    // The segment carries the adding command's epoch, whatever the caller
    // put in the field.
    let mut stored = segment(1, 11, 0);
    stored.owner_epoch = 1;
    assert_eq!(m.segments, vec![stored]);
}

#[test]
fn segments_record_the_epoch_of_the_writer_that_added_them() {
    let (mut st, s) = owned_stream();
    let mut seg = segment(1, 11, 0);
    seg.owner_epoch = 99;
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: seg,
        },
    );
    // A new owner (epoch 2) seals the old segment and rolls to a new one.
    ok(
        &mut st,
        Command::AcquireStream {
            stream: s,
            owner: NodeId::new(8),
            expected_epoch: Some(1),
        },
    );
    ok(&mut st, complete(s, 2, 1, Some(9)));
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 2,
            segment: segment(2, 12, 10),
        },
    );
    ok(
        &mut st,
        Command::RollSegment {
            stream: s,
            owner_epoch: 2,
            seal: SegmentSeal {
                lssn: 2,
                last_offset: Some(19),
                end_txid: 19,
                last_entry_id: Some(0),
                size_bytes: 10,
            },
            next: segment(3, 13, 20),
        },
    );
    let m = st.stream(&s).expect("stream");
    let epochs: Vec<(u64, u64)> = m.segments.iter().map(|x| (x.lssn, x.owner_epoch)).collect();
    assert_eq!(epochs, vec![(1, 1), (2, 2), (3, 2)]);
}

#[test]
fn segments_without_a_recorded_epoch_still_load() {
    let (mut st, s) = owned_stream();
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: segment(1, 11, 0),
        },
    );
    let meta = st.stream(&s).expect("stream");
    // A snapshot (or Raft log entry) from before epochs were recorded: the
    // segment's field, its last one, is absent.
    let text = serde_json::to_string(meta).expect("encode");
    let old = text.replace(",\"owner_epoch\":1}", "}");
    assert_ne!(old, text, "the segment's epoch field was removed");
    let back: StreamMeta = serde_json::from_str(&old).expect("old stream metadata loads");
    assert_eq!(back.segments[0].owner_epoch, 0);
}

#[test]
fn add_segment_refusals() {
    let (mut st, s) = owned_stream();
    assert_eq!(
        refused(
            &mut st,
            Command::AddSegment {
                stream: s,
                owner_epoch: 0,
                segment: segment(1, 11, 0)
            }
        ),
        ApplyError::EpochMismatch {
            stream: s,
            given: 0,
            current: 1
        }
    );
    assert!(matches!(
        refused(
            &mut st,
            Command::AddSegment {
                stream: s,
                owner_epoch: 1,
                segment: segment(2, 11, 0)
            }
        ),
        ApplyError::SegmentConflict { .. }
    ));
    let mut completed = segment(1, 11, 0);
    completed.state = SegmentState::Completed;
    assert!(matches!(
        refused(
            &mut st,
            Command::AddSegment {
                stream: s,
                owner_epoch: 1,
                segment: completed
            }
        ),
        ApplyError::Invalid(_)
    ));
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: segment(1, 11, 0),
        },
    );
    // The previous segment is still in progress.
    assert!(matches!(
        refused(
            &mut st,
            Command::AddSegment {
                stream: s,
                owner_epoch: 1,
                segment: segment(2, 12, 0)
            }
        ),
        ApplyError::SegmentConflict { .. }
    ));
    let unknown = sid(topic_id(99), 0);
    assert_eq!(
        refused(
            &mut st,
            Command::AddSegment {
                stream: unknown,
                owner_epoch: 1,
                segment: segment(1, 1, 0)
            }
        ),
        ApplyError::UnknownStream(unknown)
    );
}

#[test]
fn complete_segment_seals_and_allows_next() {
    let (mut st, s) = owned_stream();
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: segment(1, 11, 0),
        },
    );
    let (r, ev) = ok(&mut st, complete(s, 1, 1, Some(9)));
    assert_eq!(r, CommandResponse::Ok);
    assert_eq!(ev, vec![MetaEvent::SegmentCompleted { stream: s, lssn: 1 }]);
    let seg = &st.stream(&s).expect("stream").segments[0];
    assert_eq!(seg.state, SegmentState::Completed);
    assert_eq!(seg.last_offset, Some(9));
    assert_eq!(seg.end_txid, 42);
    assert_eq!(seg.last_entry_id, Some(18));
    assert_eq!(seg.size_bytes, 100);
    assert_eq!(seg.next_offset(), 10);
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: segment(2, 12, 10),
        },
    );
    assert_eq!(
        st.stream(&s).map(|m| (m.segments.len(), m.next_lssn)),
        Some((2, 3))
    );
}

#[test]
fn complete_segment_refusals() {
    let (mut st, s) = owned_stream();
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: segment(1, 11, 0),
        },
    );
    assert_eq!(
        refused(&mut st, complete(s, 2, 1, Some(1))),
        ApplyError::EpochMismatch {
            stream: s,
            given: 2,
            current: 1
        }
    );
    assert!(matches!(
        refused(&mut st, complete(s, 1, 2, Some(1))),
        ApplyError::SegmentConflict { .. }
    ));
    ok(&mut st, complete(s, 1, 1, Some(1)));
    assert!(matches!(
        refused(&mut st, complete(s, 1, 1, Some(1))),
        ApplyError::SegmentConflict { .. }
    ));
    let unknown = sid(topic_id(99), 0);
    assert_eq!(
        refused(&mut st, complete(unknown, 1, 1, None)),
        ApplyError::UnknownStream(unknown)
    );
}

#[test]
fn replay_is_deterministic() {
    let (st1, _) = three_segments();
    let (st2, _) = three_segments();
    assert_eq!(st1, st2);
}

#[test]
fn roll_segment_seals_and_appends_in_one_step_or_not_at_all() {
    let (mut st, s) = owned_stream();
    ok(
        &mut st,
        Command::AddSegment {
            stream: s,
            owner_epoch: 1,
            segment: segment(1, 11, 0),
        },
    );
    let roll = |epoch: u64, lssn: u64, next: SegmentMeta| Command::RollSegment {
        stream: s,
        owner_epoch: epoch,
        seal: SegmentSeal {
            lssn,
            last_offset: Some(9),
            end_txid: 42,
            last_entry_id: Some(3),
            size_bytes: 100,
        },
        next,
    };
    // Refusals leave everything as it was (checked by `refused`).
    assert!(matches!(
        refused(&mut st, roll(2, 1, segment(2, 12, 10))),
        ApplyError::EpochMismatch { .. }
    ));
    assert!(matches!(
        refused(&mut st, roll(1, 7, segment(2, 12, 10))),
        ApplyError::SegmentConflict { .. }
    ));
    assert!(matches!(
        refused(&mut st, roll(1, 1, segment(5, 12, 10))),
        ApplyError::SegmentConflict { .. }
    ));
    let mut done = segment(2, 12, 10);
    done.state = SegmentState::Completed;
    assert!(matches!(
        refused(&mut st, roll(1, 1, done)),
        ApplyError::Invalid(_)
    ));

    let (r, ev) = ok(&mut st, roll(1, 1, segment(2, 12, 10)));
    assert_eq!(r, CommandResponse::Ok);
    assert_eq!(
        ev,
        vec![
            MetaEvent::SegmentCompleted { stream: s, lssn: 1 },
            MetaEvent::SegmentAdded { stream: s, lssn: 2 },
        ]
    );
    let m = st.stream(&s).expect("stream");
    assert_eq!(m.next_lssn, 3);
    assert_eq!(m.segments.len(), 2);
    assert_eq!(m.segments[0].state, SegmentState::Completed);
    assert_eq!(
        (m.segments[0].last_offset, m.segments[0].last_entry_id),
        (Some(9), Some(3))
    );
    assert_eq!((m.segments[1].lssn, m.segments[1].base_offset), (2, 10));
    assert_eq!(m.segments[1].state, SegmentState::InProgress);
    // The sealed segment cannot be rolled again.
    assert!(matches!(
        refused(&mut st, roll(1, 1, segment(3, 13, 10))),
        ApplyError::SegmentConflict { .. }
    ));
}

/// CreatePartitions and AlterBrokerConfigs.
#[path = "state_machine_admin_tests.rs"]
mod admin;

#[path = "state_machine_truncate_tests.rs"]
mod truncate;
