//! Stamping: writing the broker-assigned offsets and the leader epoch into
//! validated batches, in place. Both fields lie before the crc's coverage
//! (which starts at `attributes`), so the batches' crcs stay valid and no
//! byte of the records is touched.

use std::sync::Arc;

use bytes::BytesMut;
use distlog_storage::log::StampFn;

use super::batch::{
    BatchWalker, ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, LEADER_EPOCH_OFFSET,
    MAX_TIMESTAMP_OFFSET, TIMESTAMP_TYPE_BIT,
};
use super::BatchError;

/// Rewrite every batch in `buf`: batch *i* gets `baseOffset = base_seq +`
/// (offsets consumed by the batches before it) and `partitionLeaderEpoch =
/// owner_epoch`. Returns the number of offsets consumed (the next batch's
/// base would be `base_seq` plus it).
///
/// Framing is checked again (never out of bounds); on a framing error the
/// batches before it are stamped and the error is returned. Epochs beyond
/// `i32::MAX` saturate, offsets beyond `i64::MAX` saturate (neither happens
/// in a log that fits on disks).
pub fn stamp(buf: &mut [u8], base_seq: u64, owner_epoch: u64) -> Result<u64, BatchError> {
    let epoch = i32::try_from(owner_epoch).unwrap_or(i32::MAX).to_be_bytes();
    let mut consumed: u64 = 0;
    let mut pos = 0usize;
    // A fresh walker per batch: the immutable borrow ends before the write.
    while let Some(span) = BatchWalker::new(&buf[pos..]).next() {
        let span = span?;
        let offset = i64::try_from(base_seq.saturating_add(consumed)).unwrap_or(i64::MAX);
        let at = pos + BASE_OFFSET_OFFSET;
        buf[at..at + 8].copy_from_slice(&offset.to_be_bytes());
        let at = pos + LEADER_EPOCH_OFFSET;
        buf[at..at + 4].copy_from_slice(&epoch);
        consumed = consumed.saturating_add(span.header.offset_span());
        pos += span.len;
    }
    Ok(consumed)
}

/// Mark every batch in `buf` as LogAppendTime, appended at `now_ms`, as
/// Kafka's broker does for a `message.timestamp.type=LogAppendTime` topic:
/// `maxTimestamp = now_ms` and the timestamp-type attribute bit set, then
/// the crc recomputed (both fields lie inside its coverage). In place, no
/// other byte changes: readers take every record's timestamp from
/// `maxTimestamp` when the bit is set. A batch already carrying exactly
/// these values is left alone. Framing is checked again; on a framing
/// error the batches before it are stamped and the error is returned.
pub fn stamp_log_append_time(buf: &mut [u8], now_ms: i64) -> Result<(), BatchError> {
    let mut pos = 0usize;
    while let Some(span) = BatchWalker::new(&buf[pos..]).next() {
        let span = span?;
        let h = span.header;
        if !(h.log_append_time() && h.max_timestamp == now_ms) {
            let batch = &mut buf[pos..pos + span.len];
            let attributes = h.attributes | TIMESTAMP_TYPE_BIT;
            batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
            batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
            let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
            batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        }
        pos += span.len;
    }
    Ok(())
}

/// The [`StampFn`] the namespace calls before storing a payload: it stamps
/// the payload's (already validated) batches with [`stamp`]. A payload that
/// fails to frame cannot reach storage through the produce path, so a
/// failure here is logged, not propagated (the hook has no error channel).
pub fn stamp_fn() -> StampFn {
    Arc::new(|buf: &mut BytesMut, base_seq: u64, owner_epoch: u64| {
        if let Err(e) = stamp(&mut buf[..], base_seq, owner_epoch) {
            tracing::error!(error = %e, base_seq, "stamping a payload that does not frame as record batches");
        }
    })
}
