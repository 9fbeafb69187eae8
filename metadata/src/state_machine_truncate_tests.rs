//! Stream truncation (`TruncateStream`): whole leading segments only, never past an
//! offset a segment holds, at any offset a seal can carry.

use super::*;

/// Stream with segments [0..=9] (ledger 11), [10..=19] (ledger 12), and an
/// in-progress segment from 20 (ledger 13).
pub(super) fn three_segments() -> (MetaState, StreamId) {
    let (mut st, s) = owned_stream();
    ok(&mut st, add(s, 1, segment(1, 11, 0)));
    ok(&mut st, complete(s, 1, 1, Some(9)));
    ok(&mut st, add(s, 1, segment(2, 12, 10)));
    ok(&mut st, complete(s, 1, 2, Some(19)));
    ok(&mut st, add(s, 1, segment(3, 13, 20)));
    (st, s)
}

#[test]
fn truncate_drops_whole_leading_segments() {
    let (mut st, s) = three_segments();
    let (r, ev) = ok(&mut st, truncate(s, 15));
    assert_eq!(r, CommandResponse::ReleasedLedgers(vec![11]));
    assert_eq!(
        ev,
        vec![MetaEvent::StreamTruncated {
            stream: s,
            log_start_offset: 15,
            ledgers: vec![released(11, Some(NodeId::new(5)))]
        }]
    );
    let m = st.stream(&s).expect("stream");
    assert_eq!(m.log_start_offset, 15);
    assert_eq!(m.segments.iter().map(|x| x.lssn).collect::<Vec<_>>(), vec![2, 3]);

    // Never backward; the in-progress segment is never dropped.
    let (r, ev) = ok(&mut st, truncate(s, 5));
    assert_eq!((r, ev), (CommandResponse::ReleasedLedgers(vec![]), vec![]));
    assert_eq!(st.stream(&s).map(|m| m.log_start_offset), Some(15));
    let (r, _) = ok(&mut st, truncate(s, 100));
    assert_eq!(r, CommandResponse::ReleasedLedgers(vec![12]));
    let m = st.stream(&s).expect("stream");
    assert_eq!((m.log_start_offset, m.segments.len()), (100, 1));
    assert_eq!(m.next_lssn, 4);
}

#[test]
fn truncate_after_a_seal_at_the_largest_offset_neither_panics_nor_drops_the_segment() {
    // Found by the metadata_apply fuzz target: `next_offset` overflowed (a
    // panic with overflow checks, a wrap to 0 without them, which let the
    // truncation drop a segment that ends far past the new log start).
    let (mut st, s) = three_segments();
    let seal = SegmentSeal {
        lssn: 3,
        last_offset: Some(u64::MAX),
        end_txid: 42,
        last_entry_id: Some(7),
        size_bytes: 100,
    };
    ok(
        &mut st,
        Command::CompleteSegment {
            stream: s,
            owner_epoch: 1,
            seal,
        },
    );
    let (r, _) = ok(&mut st, truncate(s, 30));
    assert_eq!(r, CommandResponse::ReleasedLedgers(vec![11, 12]));
    let m = st.stream(&s).expect("stream");
    assert_eq!(m.segments.iter().map(|x| x.lssn).collect::<Vec<_>>(), vec![3]);
    assert_eq!(m.segments[0].next_offset(), u64::MAX);
}

#[test]
fn truncate_at_segment_boundary() {
    let (mut st, s) = three_segments();
    let (r, _) = ok(&mut st, truncate(s, 10));
    assert_eq!(r, CommandResponse::ReleasedLedgers(vec![11]));
    let (r, _) = ok(&mut st, truncate(s, 19));
    assert_eq!(r, CommandResponse::ReleasedLedgers(vec![]));
    let unknown = sid(topic_id(99), 0);
    assert_eq!(
        refused(&mut st, truncate(unknown, 1)),
        ApplyError::UnknownStream(unknown)
    );
}
