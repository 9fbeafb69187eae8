//! `record_batch`: the produce path's batch validation and stamping
//! (`distlog_broker::records`).
//!
//! Input: 12 bytes of parameters — base sequence id (u64 BE) and owner epoch (u32 BE) — then
//! the produce payload (one or more v2 record batches). Shorter inputs use zeros.
//!
//! Properties: `validate` never panics; when it accepts, `stamp` with the parameters rewrites
//! exactly `baseOffset` and `partitionLeaderEpoch` of each batch (every other byte unchanged,
//! each crc still matching), consumes exactly `record_count` offsets, and the stamped payload
//! with its base offsets put back to 0 validates to the same result; LogAppendTime stamping
//! keeps every crc valid and the payload valid. The read-path walkers (`take_batches`,
//! timestamp lookups) never panic on the raw input, valid or not.

use distlog_broker::records::batch::{
    BatchWalker, ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, LEADER_EPOCH_OFFSET,
};
use distlog_broker::records::{self, stamp, stamp_log_append_time, validate};

/// Largest batch accepted by the harness's validation (Kafka's default `message.max.bytes`).
const MAX_BATCH: usize = 1_048_588;

/// Run one input.
pub fn run(data: &[u8]) {
    let (params, payload) = data.split_at(data.len().min(12));
    let mut p = [0u8; 12];
    p[..params.len()].copy_from_slice(params);
    let base_seq = u64::from_be_bytes(p[0..8].try_into().expect("8 bytes"));
    let epoch = u64::from(u32::from_be_bytes(p[8..12].try_into().expect("4 bytes")));

    // Read-path functions take stored (or hostile) bytes: no panic whatever they are.
    let _ = records::find_offset_for_timestamp(payload, i64::from(p[11]) - 1);
    let _ = records::max_timestamp_record(payload);
    let _ = records::control::marker_of(payload);
    let bytes = bytes::Bytes::copy_from_slice(payload);
    let _ = records::take_batches_below(
        &[bytes],
        i64::from(p[7]),
        usize::from(p[10]) * 64,
        p[9] & 1 == 0,
        i64::from(p[6]) + 1,
    );

    // Stamping a payload that does not validate must not panic either.
    let mut raw = payload.to_vec();
    let _ = stamp(&mut raw, base_seq, epoch);

    let Ok(valid) = validate(payload, MAX_BATCH) else {
        return;
    };
    let mut stamped = payload.to_vec();
    let consumed = stamp(&mut stamped, base_seq, epoch).expect("a validated payload stamps");
    assert_eq!(
        consumed,
        u64::from(valid.record_count),
        "offsets consumed = records"
    );
    let want_epoch = i32::try_from(epoch).unwrap_or(i32::MAX);
    let mut next = base_seq;
    let mut spans = 0;
    for (span, orig) in BatchWalker::new(&stamped).zip(&valid.batches) {
        let span = span.expect("a stamped payload still frames");
        assert_eq!(
            (span.start, span.len),
            (orig.start, orig.len),
            "framing unchanged"
        );
        let h = span.header;
        assert_eq!(
            h.base_offset,
            i64::try_from(next).unwrap_or(i64::MAX),
            "base offset"
        );
        assert_eq!(h.partition_leader_epoch, want_epoch, "leader epoch");
        let batch = &stamped[span.start..span.start + span.len];
        assert_eq!(
            crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]),
            h.crc,
            "crc holds after stamping"
        );
        // Only baseOffset and partitionLeaderEpoch changed.
        let before = &payload[span.start..span.start + span.len];
        for (i, (a, b)) in before.iter().zip(batch).enumerate() {
            let stamped_field = (BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8).contains(&i)
                || (LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4).contains(&i);
            assert!(stamped_field || a == b, "byte {i} of a batch changed by stamping");
        }
        next = next.saturating_add(h.offset_span());
        spans += 1;
    }
    assert_eq!(
        spans,
        valid.batches.len(),
        "same number of batches after stamping"
    );
    // Put the base offsets back: the payload validates as before.
    let mut reset = stamped.clone();
    for b in &valid.batches {
        reset[b.start..b.start + 8].copy_from_slice(&0i64.to_be_bytes());
    }
    let again = validate(&reset, MAX_BATCH).expect("stamped payload with base 0 still valid");
    assert_eq!(again.record_count, valid.record_count);
    assert_eq!(again.max_timestamp, valid.max_timestamp);

    // LogAppendTime stamping recomputes crcs: still valid.
    let now = i64::from_be_bytes(p[0..8].try_into().expect("8 bytes")) >> 1;
    let mut lat = payload.to_vec();
    stamp_log_append_time(&mut lat, now).expect("a validated payload takes LogAppendTime");
    let after = validate(&lat, MAX_BATCH).expect("LogAppendTime keeps the payload valid");
    assert_eq!(after.record_count, valid.record_count);
    for b in &after.batches {
        assert!(b.header.log_append_time(), "timestamp type bit set");
        assert_eq!(b.header.max_timestamp, now, "max timestamp is the append time");
    }
}
