use super::*;
use crate::consumer_group::CommittedOffset;
use crate::model::{ApplyError, Command, TopicMeta};
use crate::state_machine::apply;

fn state_with_topic() -> MetaState {
    let mut state = MetaState::default();
    let (res, _) = apply(
        &mut state,
        &Command::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::from_u128(7),
            partitions: 3,
            configs: Default::default(),
            created_ms: 0,
        },
    );
    assert!(res.is_ok());
    state
}

fn topic(state: &MetaState) -> TopicMeta {
    state.topics["t"].clone()
}

fn part(state: &MetaState, p: u32) -> TxnPartition {
    TxnPartition {
        stream: topic(state).stream(p),
        topic: "t".into(),
    }
}

fn run(state: &mut MetaState, op: TxnOp) -> (Result<CommandResponse, ApplyError>, Vec<MetaEvent>) {
    apply(state, &Command::Txn(op))
}

fn init(state: &mut MetaState, id: &str, fresh: i64) -> Result<CommandResponse, ApplyError> {
    run(
        state,
        TxnOp::Init {
            transactional_id: id.into(),
            fresh_producer_id: fresh,
            timeout_ms: 1000,
            expected: None,
            now_ms: 10,
        },
    )
    .0
}

fn add(
    state: &mut MetaState,
    epoch: i16,
    parts: Vec<TxnPartition>,
    groups: Vec<String>,
    now: u64,
) -> ApplyResultT {
    run(
        state,
        TxnOp::Add {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: epoch,
            partitions: parts,
            groups,
            now_ms: now,
        },
    )
    .0
}

type ApplyResultT = Result<CommandResponse, ApplyError>;

fn end(state: &mut MetaState, epoch: i16, commit: bool) -> (ApplyResultT, Vec<MetaEvent>) {
    run(
        state,
        TxnOp::End {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: epoch,
            commit,
            now_ms: 50,
        },
    )
}

fn marked(state: &mut MetaState, epoch: i16, streams: Vec<StreamId>) -> Vec<MetaEvent> {
    let (res, events) = run(
        state,
        TxnOp::MarkersWritten {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: epoch,
            streams,
            now_ms: 60,
        },
    );
    assert_eq!(res, Ok(CommandResponse::Ok));
    events
}

fn refusal(r: ApplyResultT) -> TxnRefusal {
    match r {
        Err(ApplyError::Txn(t)) => t,
        other => panic!("expected a transaction refusal, got {other:?}"),
    }
}

#[test]
fn init_creates_then_bumps_and_fences_older_epochs() {
    let mut state = state_with_topic();
    assert_eq!(
        init(&mut state, "tx", 5),
        Ok(CommandResponse::Producer {
            producer_id: 5,
            producer_epoch: 0
        })
    );
    assert_eq!(
        init(&mut state, "tx", 99),
        Ok(CommandResponse::Producer {
            producer_id: 5,
            producer_epoch: 1
        })
    );
    // The producer of epoch 0 is a zombie now.
    assert_eq!(
        {
            let p = part(&state, 0);
            refusal(add(&mut state, 0, vec![p], vec![], 20))
        },
        TxnRefusal::ProducerFenced { given: 0, current: 1 }
    );
    // KIP-360: a bump naming a stale epoch is fenced too.
    let (res, _) = run(
        &mut state,
        TxnOp::Init {
            transactional_id: "tx".into(),
            fresh_producer_id: 100,
            timeout_ms: 1000,
            expected: Some((5, 0)),
            now_ms: 11,
        },
    );
    assert_eq!(refusal(res), TxnRefusal::ProducerFenced { given: 0, current: 1 });
}

#[test]
fn an_exhausted_epoch_moves_to_the_fresh_producer_id() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    state.transactions.get_mut("tx").unwrap().producer_epoch = MAX_PRODUCER_EPOCH;
    assert_eq!(
        init(&mut state, "tx", 77),
        Ok(CommandResponse::Producer {
            producer_id: 77,
            producer_epoch: 0
        })
    );
}

#[test]
fn commit_prepares_publishes_markers_and_completes_when_all_are_written() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    let (p0, p1) = (part(&state, 0), part(&state, 1));
    add(&mut state, 0, vec![p1.clone(), p0.clone()], vec![], 20).unwrap();
    add(&mut state, 0, vec![p0.clone()], vec![], 30).unwrap();
    let txn = &state.transactions["tx"];
    assert_eq!(txn.state, TxnState::Ongoing);
    assert_eq!(txn.partitions, vec![p0.clone(), p1.clone()]);
    assert_eq!(txn.start_ms, 20);

    let (res, events) = end(&mut state, 0, true);
    assert_eq!(res, Ok(CommandResponse::Ok));
    assert_eq!(
        events,
        vec![MetaEvent::TxnPrepared {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: 0,
            commit: true,
            streams: vec![p0.stream, p1.stream],
        }]
    );
    assert_eq!(state.transactions["tx"].state, TxnState::PrepareCommit);
    // While markers are written, the producer must wait.
    assert_eq!(
        refusal(add(&mut state, 0, vec![p0.clone()], vec![], 55)),
        TxnRefusal::ConcurrentTransactions
    );
    assert_eq!(
        refusal(end(&mut state, 0, true).0),
        TxnRefusal::ConcurrentTransactions
    );
    assert_eq!(
        refusal(end(&mut state, 0, false).0),
        TxnRefusal::InvalidTxnState(TxnState::PrepareCommit)
    );

    assert!(marked(&mut state, 0, vec![p0.stream]).is_empty());
    assert_eq!(state.transactions["tx"].pending_markers, vec![p1.clone()]);
    let events = marked(&mut state, 0, vec![p1.stream]);
    assert_eq!(
        events,
        vec![MetaEvent::TxnCompleted {
            transactional_id: "tx".into(),
            commit: true,
            prepare_ms: 50,
        }]
    );
    let txn = &state.transactions["tx"];
    assert_eq!(txn.state, TxnState::CompleteCommit);
    assert!(txn.partitions.is_empty());
    // A retried EndTxn is answered as applied; the other outcome is not.
    assert_eq!(end(&mut state, 0, true).0, Ok(CommandResponse::Ok));
    assert_eq!(
        refusal(end(&mut state, 0, false).0),
        TxnRefusal::InvalidTxnState(TxnState::CompleteCommit)
    );
    // The next transaction starts from the completed one.
    add(&mut state, 0, vec![p1.clone()], vec![], 70).unwrap();
    assert_eq!(state.transactions["tx"].partitions, vec![p1]);
}

#[test]
fn end_without_an_open_transaction_is_invalid() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    assert_eq!(
        refusal(end(&mut state, 0, true).0),
        TxnRefusal::InvalidTxnState(TxnState::Empty)
    );
    assert_eq!(
        refusal(end(&mut state, 3, true).0),
        TxnRefusal::ProducerFenced { given: 3, current: 0 }
    );
    let (res, _) = run(
        &mut state,
        TxnOp::End {
            transactional_id: "other".into(),
            producer_id: 5,
            producer_epoch: 0,
            commit: true,
            now_ms: 1,
        },
    );
    assert_eq!(refusal(res), TxnRefusal::InvalidProducerIdMapping);
}

fn offset_entry(partition: u32, offset: i64) -> OffsetCommitEntry {
    OffsetCommitEntry {
        topic: "t".into(),
        partition,
        committed: CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: 1,
        },
    }
}

fn commit_offsets(state: &mut MetaState, group: &str, offsets: Vec<OffsetCommitEntry>) -> ApplyResultT {
    run(
        state,
        TxnOp::CommitOffsets {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: 0,
            group: group.into(),
            offsets,
        },
    )
    .0
}

#[test]
fn transactional_offsets_are_pending_until_commit_and_dropped_on_abort() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    // Not added to the transaction: refused.
    assert_eq!(
        refusal(commit_offsets(&mut state, "g", vec![offset_entry(0, 7)])),
        TxnRefusal::InvalidTxnState(TxnState::Empty)
    );
    add(&mut state, 0, vec![], vec!["g".into()], 20).unwrap();
    commit_offsets(&mut state, "g", vec![offset_entry(0, 7)]).unwrap();
    commit_offsets(&mut state, "g", vec![offset_entry(0, 9), offset_entry(1, 3)]).unwrap();
    let g = &state.groups["g"];
    assert!(g.offset("t", 0).is_none());
    assert!(has_pending(&g.pending_txn_offsets, "t", 0));
    // Only groups: no marker to write, so the commit completes at once.
    let (res, events) = end(&mut state, 0, true);
    assert_eq!(res, Ok(CommandResponse::Ok));
    assert_eq!(events.len(), 2);
    assert_eq!(state.transactions["tx"].state, TxnState::CompleteCommit);
    let g = &state.groups["g"];
    assert_eq!(g.offset("t", 0).map(|c| c.offset), Some(9));
    assert_eq!(g.offset("t", 1).map(|c| c.offset), Some(3));
    assert!(g.pending_txn_offsets.is_empty());

    add(&mut state, 0, vec![], vec!["g".into()], 80).unwrap();
    commit_offsets(&mut state, "g", vec![offset_entry(0, 100)]).unwrap();
    end(&mut state, 0, false).0.unwrap();
    let g = &state.groups["g"];
    assert_eq!(g.offset("t", 0).map(|c| c.offset), Some(9));
    assert!(g.pending_txn_offsets.is_empty());
}

#[test]
fn a_timed_out_transaction_is_aborted_with_a_bumped_epoch() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    let p0 = part(&state, 0);
    add(&mut state, 0, vec![p0.clone()], vec![], 100).unwrap();
    let timeout = |state: &mut MetaState, now: u64| {
        run(
            state,
            TxnOp::Timeout {
                transactional_id: "tx".into(),
                producer_id: 5,
                producer_epoch: 0,
                now_ms: now,
            },
        )
    };
    // Not yet timed out (timeout 1000 ms from 100): nothing happens.
    let (res, events) = timeout(&mut state, 1100);
    assert_eq!(res, Ok(CommandResponse::Ok));
    assert!(events.is_empty());
    assert_eq!(state.transactions["tx"].state, TxnState::Ongoing);
    let (_, events) = timeout(&mut state, 1101);
    assert_eq!(
        events,
        vec![MetaEvent::TxnPrepared {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: 1,
            commit: false,
            streams: vec![p0.stream],
        }]
    );
    assert_eq!(
        refusal(end(&mut state, 0, true).0),
        TxnRefusal::ProducerFenced { given: 0, current: 1 }
    );
    // A second timeout of the same observation is ignored.
    let (_, events) = timeout(&mut state, 5000);
    assert!(events.is_empty());
    marked(&mut state, 1, vec![p0.stream]);
    assert_eq!(state.transactions["tx"].state, TxnState::CompleteAbort);
}

#[test]
fn init_during_an_open_transaction_aborts_it_and_asks_for_a_retry() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    let p2 = part(&state, 2);
    add(&mut state, 0, vec![p2], vec![], 20).unwrap();
    assert_eq!(init(&mut state, "tx", 6), Ok(CommandResponse::TxnAborting));
    let txn = &state.transactions["tx"];
    assert_eq!((txn.state, txn.producer_epoch), (TxnState::PrepareAbort, 1));
    assert_eq!(
        refusal(init(&mut state, "tx", 6)),
        TxnRefusal::ConcurrentTransactions
    );
    let stream = part(&state, 2).stream;
    marked(&mut state, 1, vec![stream]);
    assert_eq!(
        init(&mut state, "tx", 6),
        Ok(CommandResponse::Producer {
            producer_id: 5,
            producer_epoch: 2
        })
    );
}

#[test]
fn deleting_a_topic_releases_transactions_waiting_for_its_markers() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    let p0 = part(&state, 0);
    add(&mut state, 0, vec![p0], vec![], 20).unwrap();
    end(&mut state, 0, true).0.unwrap();
    let (res, events) = apply(&mut state, &Command::DeleteTopic { name: "t".into() });
    assert!(res.is_ok());
    assert!(events
        .iter()
        .any(|e| matches!(e, MetaEvent::TxnCompleted { commit: true, .. })));
    assert_eq!(state.transactions["tx"].state, TxnState::CompleteCommit);
}

#[test]
fn stale_marker_reports_change_nothing_and_state_round_trips_through_json() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    let p0 = part(&state, 0);
    add(&mut state, 0, vec![p0.clone()], vec![], 20).unwrap();
    // Reported while the transaction is still open: ignored.
    assert!(marked(&mut state, 0, vec![p0.stream]).is_empty());
    assert_eq!(state.transactions["tx"].partitions, vec![p0]);
    let json = serde_json::to_string(&state.transactions).unwrap();
    let back: BTreeMap<String, TxnMeta> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state.transactions);
}

#[test]
fn idle_transactional_ids_expire_unless_a_transaction_is_open_or_they_moved_on() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    let expire = |state: &mut MetaState, epoch: i16, now: u64| {
        run(
            state,
            TxnOp::Expire {
                transactional_id: "tx".into(),
                producer_id: 5,
                producer_epoch: epoch,
                expiration_ms: 1000,
                now_ms: now,
            },
        )
        .0
    };
    // Last used at 10: not idle long enough at 1009.
    expire(&mut state, 0, 1009).unwrap();
    assert!(state.transactions.contains_key("tx"));
    // An open transaction never expires.
    let p0 = part(&state, 0);
    add(&mut state, 0, vec![p0], vec![], 20).unwrap();
    expire(&mut state, 0, 1_000_000).unwrap();
    assert!(state.transactions.contains_key("tx"));
    end(&mut state, 0, false).0.unwrap();
    let stream = part(&state, 0).stream;
    marked(&mut state, 0, vec![stream]);
    // A stale observation (another epoch) is ignored; the right one forgets.
    expire(&mut state, 3, 1_000_000).unwrap();
    assert!(state.transactions.contains_key("tx"));
    expire(&mut state, 0, 1_000_000).unwrap();
    assert!(!state.transactions.contains_key("tx"));
    // The id starts afresh.
    assert_eq!(
        init(&mut state, "tx", 9),
        Ok(CommandResponse::Producer {
            producer_id: 9,
            producer_epoch: 0
        })
    );
}

#[test]
fn a_timeout_at_the_top_epoch_aborts_without_moving_the_epoch_back() {
    let mut state = state_with_topic();
    init(&mut state, "tx", 5).unwrap();
    state.transactions.get_mut("tx").unwrap().producer_epoch = MAX_PRODUCER_EPOCH;
    let p0 = part(&state, 0);
    add(&mut state, MAX_PRODUCER_EPOCH, vec![p0.clone()], vec![], 100).unwrap();
    let (res, events) = run(
        &mut state,
        TxnOp::Timeout {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: MAX_PRODUCER_EPOCH,
            now_ms: 5_000,
        },
    );
    assert_eq!(res, Ok(CommandResponse::Ok));
    assert_eq!(
        events,
        vec![MetaEvent::TxnPrepared {
            transactional_id: "tx".into(),
            producer_id: 5,
            producer_epoch: MAX_PRODUCER_EPOCH,
            commit: false,
            streams: vec![p0.stream],
        }]
    );
    marked(&mut state, MAX_PRODUCER_EPOCH, vec![p0.stream]);
    // The next initialisation moves the id to a fresh producer id.
    assert_eq!(
        init(&mut state, "tx", 77),
        Ok(CommandResponse::Producer {
            producer_id: 77,
            producer_epoch: 0
        })
    );
}
