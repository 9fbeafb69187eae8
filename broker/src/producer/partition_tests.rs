//! The transactional rules of [`PartitionProducers`] as the log writer
//! meets them: admission in offset order, markers, verification guards,
//! the LSO and the aborted index, and their survival through a snapshot
//! and through replay.

use bytes::BytesMut;
use distlog_storage::log::{Admission, StreamState};

use super::PartitionProducers;
use crate::records::batch::{
    ATTRIBUTES_OFFSET, BASE_SEQUENCE_OFFSET, CRC_OFFSET, PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET,
    TRANSACTIONAL_BIT,
};
use crate::records::control::end_txn_marker;
use crate::records::tests::batch;

/// A batch of `n` records from producer `pid` at `epoch` starting at
/// sequence `seq`, transactional or not.
fn produced(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> BytesMut {
    let timestamps: Vec<i64> = (0..n as i64).map(|i| 1_000 + i).collect();
    let mut b = batch(kafka_protocol::records::Compression::None, &timestamps);
    b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&pid.to_be_bytes());
    b[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&epoch.to_be_bytes());
    b[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&seq.to_be_bytes());
    if transactional {
        let attrs = i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]]) | TRANSACTIONAL_BIT;
        b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    }
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

fn refused(a: &Admission) -> Option<String> {
    match a {
        Admission::Refuse(e) => Some(e.to_string()),
        _ => None,
    }
}

#[test]
fn a_transaction_opens_only_when_verified_and_a_marker_closes_it() {
    let p = PartitionProducers::new(60_000);
    // Not verified: INVALID_TXN_STATE, nothing remembered.
    let first = produced(7, 0, 0, 3, true);
    let a = p.admit(&first, 0, 3, 1);
    assert!(
        refused(&a).is_some_and(|e| e.contains("not part of an open transaction")),
        "{a:?}"
    );
    assert_eq!(p.open_txn_start(7), None);

    p.add_txn_guard(7, 0);
    assert!(matches!(p.admit(&first, 0, 3, 1), Admission::Write));
    assert_eq!(p.open_txn_start(7), Some(0));
    // Later batches of the open transaction need no guard.
    assert!(matches!(
        p.admit(&produced(7, 0, 3, 2, true), 3, 2, 1),
        Admission::Write
    ));
    // A non-transactional producer between them.
    assert!(matches!(
        p.admit(&produced(9, 0, 0, 1, false), 5, 1, 1),
        Admission::Write
    ));
    assert_eq!(p.last_stable_offset(6), 0);

    // The abort marker at 6: stable once the high watermark passes it.
    assert!(matches!(
        p.admit(&end_txn_marker(7, 0, false, 0, 5), 6, 1, 1),
        Admission::Write
    ));
    assert_eq!(p.last_stable_offset(6), 0);
    assert_eq!(p.last_stable_offset(7), 7);
    let aborted = p.aborted_between(0, 7);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (
            aborted[0].producer_id,
            aborted[0].first_offset,
            aborted[0].last_offset
        ),
        (7, 0, 6)
    );

    // The guard went with the marker: the next transaction needs its own.
    let next = produced(7, 0, 5, 1, true);
    assert!(refused(&p.admit(&next, 7, 1, 1)).is_some());
    p.add_txn_guard(7, 0);
    assert!(matches!(p.admit(&next, 7, 1, 1), Admission::Write));
    assert_eq!(p.last_stable_offset(8), 7);
}

#[test]
fn a_marker_racing_a_verified_batch_refuses_the_batch() {
    let p = PartitionProducers::new(60_000);
    p.add_txn_guard(3, 1);
    // The marker of the producer's previous transaction lands first.
    assert!(matches!(
        p.admit(&end_txn_marker(3, 1, true, 0, 5), 0, 1, 1),
        Admission::Write
    ));
    let late = produced(3, 1, 0, 1, true);
    assert!(refused(&p.admit(&late, 1, 1, 1)).is_some());
    assert_eq!(p.last_stable_offset(2), 2, "no hanging transaction");
}

#[test]
fn a_marker_of_a_bumped_epoch_fences_the_producer_and_an_older_one_is_refused() {
    let p = PartitionProducers::new(60_000);
    p.add_txn_guard(5, 0);
    assert!(matches!(
        p.admit(&produced(5, 0, 0, 2, true), 0, 2, 1),
        Admission::Write
    ));
    // The coordinator's timeout abort bumped the epoch to 1.
    assert!(matches!(
        p.admit(&end_txn_marker(5, 1, false, 0, 5), 2, 1, 1),
        Admission::Write
    ));
    let zombie = refused(&p.admit(&produced(5, 0, 2, 1, true), 3, 1, 1));
    assert!(zombie.is_some_and(|e| e.contains("older than the current epoch")));
    let stale = refused(&p.admit(&end_txn_marker(5, 0, true, 0, 5), 3, 1, 1));
    assert!(stale.is_some());
}

#[test]
fn open_transactions_and_the_aborted_index_survive_snapshot_and_replay() {
    let p = PartitionProducers::new(60_000);
    p.add_txn_guard(1, 0);
    p.admit(&produced(1, 0, 0, 2, true), 0, 2, 1);
    p.admit(&end_txn_marker(1, 0, false, 0, 5), 2, 1, 1);
    p.add_txn_guard(2, 0);
    p.admit(&produced(2, 0, 0, 1, true), 3, 1, 1);
    let snap = p.snapshot(10);

    let restored = PartitionProducers::new(60_000);
    restored.restore(&snap).expect("restores");
    assert_eq!(restored.open_txn_start(2), Some(3));
    assert_eq!(restored.aborted_between(0, 10).len(), 1);
    assert_eq!(restored.last_stable_offset(4), 3);

    // Replay of the same batches from empty gives the same answers.
    let replayed = PartitionProducers::new(60_000);
    let mut log = Vec::new();
    log.extend_from_slice(&produced(1, 0, 0, 2, true));
    log.extend_from_slice(&end_txn_marker(1, 0, false, 0, 5));
    log.extend_from_slice(&produced(2, 0, 0, 1, true));
    replayed.replay(&log, 0);
    assert_eq!(replayed.open_txn_start(2), Some(3));
    assert_eq!(replayed.aborted_between(0, 10), restored.aborted_between(0, 10));
    replayed.admit(&end_txn_marker(2, 0, true, 0, 6), 4, 1, 1);
    assert_eq!(replayed.last_stable_offset(5), 5);
    // Truncation past the aborted transaction forgets it.
    replayed.truncated(3);
    assert!(replayed.aborted_between(0, 10).is_empty());
}
