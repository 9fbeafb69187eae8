use super::*;

fn batch(pid: i64, epoch: i16, first_seq: i32, count: u32) -> BatchIdentity {
    BatchIdentity {
        producer_id: pid,
        epoch,
        first_seq,
        last_seq: seq_add(first_seq, count - 1),
        record_count: count,
        max_timestamp: 1_000,
    }
}

#[test]
fn a_new_producer_starts_at_sequence_zero_and_continues_in_order() {
    let mut st = ProducerStates::default();
    assert_eq!(st.admit(&batch(7, 0, 0, 10), 100, 1), Check::Write);
    assert_eq!(st.admit(&batch(7, 0, 10, 5), 110, 2), Check::Write);
    assert_eq!(st.admit(&batch(7, 0, 15, 1), 115, 3), Check::Write);
    assert_eq!(st.len(), 1);
    let (_, e) = st.iter().next().expect("one producer");
    assert_eq!(e.epoch, 0);
    assert_eq!(e.batches.len(), 3);
    assert_eq!(
        e.last().map(|m| (m.first_seq, m.last_seq, m.first_offset)),
        Some((15, 15, 115))
    );
    assert_eq!(e.last_seen_ms, 3);
}

#[test]
fn a_retry_of_any_of_the_last_five_batches_is_a_duplicate_with_its_original_offset() {
    let mut st = ProducerStates::default();
    for i in 0..7u32 {
        let seq = (i * 2) as i32;
        assert_eq!(
            st.admit(&batch(1, 0, seq, 2), 1000 + u64::from(i) * 2, 0),
            Check::Write
        );
    }
    // Batches 2..=6 are remembered (seq 4..13), 0 and 1 are not.
    for i in 2..7u32 {
        assert_eq!(
            st.admit(&batch(1, 0, (i * 2) as i32, 2), 9_999, 0),
            Check::Duplicate {
                first_offset: 1000 + u64::from(i) * 2,
                record_count: 2
            }
        );
    }
    assert!(matches!(
        st.admit(&batch(1, 0, 0, 2), 9_999, 0),
        Check::Refuse(ProducerStateError::OutOfOrderSequence {
            expected: 14,
            received: 0,
            ..
        })
    ));
    // A duplicate changes nothing: the next in sequence still fits.
    assert_eq!(st.admit(&batch(1, 0, 14, 2), 1014, 0), Check::Write);
}

#[test]
fn a_same_start_with_another_length_is_not_a_duplicate() {
    let mut st = ProducerStates::default();
    st.admit(&batch(1, 0, 0, 5), 0, 0);
    assert!(matches!(
        st.check(&batch(1, 0, 0, 3)),
        Check::Refuse(ProducerStateError::OutOfOrderSequence {
            expected: 5,
            received: 0,
            ..
        })
    ));
}

#[test]
fn a_gap_is_out_of_order() {
    let mut st = ProducerStates::default();
    st.admit(&batch(1, 0, 0, 5), 0, 0);
    assert_eq!(
        st.admit(&batch(1, 0, 6, 1), 5, 0),
        Check::Refuse(ProducerStateError::OutOfOrderSequence {
            producer_id: 1,
            expected: 5,
            received: 6
        })
    );
}

#[test]
fn an_old_epoch_is_refused_and_a_new_epoch_starts_at_zero() {
    let mut st = ProducerStates::default();
    st.admit(&batch(1, 3, 0, 5), 0, 0);
    assert_eq!(
        st.admit(&batch(1, 2, 5, 1), 5, 0),
        Check::Refuse(ProducerStateError::InvalidProducerEpoch {
            producer_id: 1,
            epoch: 2,
            current: 3
        })
    );
    // KIP-360 bump: the next epoch restarts the sequence at 0.
    assert!(matches!(
        st.admit(&batch(1, 4, 5, 1), 5, 0),
        Check::Refuse(ProducerStateError::OutOfOrderSequence {
            expected: 0,
            received: 5,
            ..
        })
    ));
    assert_eq!(st.admit(&batch(1, 4, 0, 2), 5, 0), Check::Write);
    // The old epoch's batches are forgotten; the old epoch is now refused.
    assert!(matches!(
        st.admit(&batch(1, 3, 0, 5), 9, 0),
        Check::Refuse(ProducerStateError::InvalidProducerEpoch { .. })
    ));
    let (_, e) = st.iter().next().expect("one producer");
    assert_eq!((e.epoch, e.batches.len()), (4, 1));
}

#[test]
fn an_unknown_producer_with_a_non_zero_sequence_is_unknown() {
    let mut st = ProducerStates::default();
    assert_eq!(
        st.admit(&batch(9, 0, 42, 1), 0, 0),
        Check::Refuse(ProducerStateError::UnknownProducerId {
            producer_id: 9,
            sequence: 42
        })
    );
    assert!(st.is_empty());
}

#[test]
fn sequences_wrap_after_i32_max() {
    assert_eq!(seq_add(i32::MAX, 1), 0);
    assert_eq!(seq_add(i32::MAX - 1, 3), 1);
    let mut st = ProducerStates::default();
    st.record(&batch(1, 0, i32::MAX - 4, 5), 0, 0);
    assert_eq!(st.check(&batch(1, 0, 0, 3)), Check::Write);
    let wrapping = batch(1, 0, i32::MAX - 1, 4);
    assert_eq!(wrapping.last_seq, 1);
}

#[test]
fn idle_producers_expire() {
    let mut st = ProducerStates::default();
    st.admit(&batch(1, 0, 0, 1), 0, 1_000);
    st.admit(&batch(2, 0, 0, 1), 1, 5_000);
    assert_eq!(st.expire(10_999, 10_000, |_| false), 0);
    assert_eq!(st.expire(11_000, 10_000, |_| false), 1);
    assert_eq!(st.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![2]);
    // An expired producer is unknown again.
    assert!(matches!(
        st.check(&batch(1, 0, 1, 1)),
        Check::Refuse(ProducerStateError::UnknownProducerId { .. })
    ));
}
