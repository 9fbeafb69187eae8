//! Validation of a produce payload, in the order a Kafka broker applies its
//! checks (framing and magic, base offset, size, crc, header consistency,
//! then the records of uncompressed batches).

use super::batch::{BatchSpan, BatchWalker, ATTRIBUTES_OFFSET, TRANSACTIONAL_BIT};
use super::varint::{read_varint, read_varlong};
use super::BatchError;

/// Highest compression codec id Kafka defines (zstd).
const MAX_CODEC: i16 = 4;

/// What the produce path needs to know about a validated payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedPayload {
    /// Records in all batches (sequence ids the append consumes).
    pub record_count: u32,
    /// Largest `maxTimestamp` among the batches (CreateTime); feeds the txid.
    pub max_timestamp: i64,
    /// Every batch, in order, with its byte range and header.
    pub batches: Vec<BatchSpan>,
}

/// Validate a produce payload of one or more concatenated v2 batches.
///
/// Guarantees on success: every batch is framed within `payload`, is magic
/// 2, has baseOffset 0, is at most `max_batch_bytes` long, has a matching
/// crc32c, a known codec, `recordCount == lastOffsetDelta + 1 ≥ 1`, is not
/// a control batch, and (when uncompressed) its records frame exactly. The
/// total record count fits a `u32`. Never panics on any input.
pub fn validate(payload: &[u8], max_batch_bytes: usize) -> Result<ValidatedPayload, BatchError> {
    let mut batches = Vec::new();
    let mut record_count: u64 = 0;
    let mut max_timestamp = i64::MIN;
    for span in BatchWalker::new(payload) {
        let span = span?;
        check_batch(payload, &span, max_batch_bytes)?;
        record_count += span.header.record_count as u64;
        max_timestamp = max_timestamp.max(span.header.max_timestamp);
        batches.push(span);
    }
    if batches.is_empty() {
        return Err(BatchError::NoBatch);
    }
    let record_count = u32::try_from(record_count)
        .map_err(|_| BatchError::PayloadTooLarge(format!("{record_count} records in one append")))?;
    Ok(ValidatedPayload {
        record_count,
        max_timestamp,
        batches,
    })
}

fn check_batch(payload: &[u8], span: &BatchSpan, max_batch_bytes: usize) -> Result<(), BatchError> {
    let h = &span.header;
    if h.base_offset != 0 {
        return Err(BatchError::NonZeroBaseOffset(h.base_offset));
    }
    if span.len > max_batch_bytes {
        return Err(BatchError::TooLarge {
            size: span.len,
            max: max_batch_bytes,
        });
    }
    let covered = &payload[span.start + ATTRIBUTES_OFFSET..span.start + span.len];
    let actual = crc32c::crc32c(covered);
    if actual != h.crc {
        return Err(BatchError::CrcMismatch {
            expected: h.crc,
            actual,
        });
    }
    if h.compression() > MAX_CODEC {
        return Err(BatchError::UnknownCompression(h.compression()));
    }
    if h.record_count < 1 || i64::from(h.record_count) != i64::from(h.last_offset_delta) + 1 {
        return Err(BatchError::RecordCount {
            count: h.record_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    if h.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(BatchError::MissingSequence(h.producer_id));
    }
    if h.attributes & TRANSACTIONAL_BIT != 0 && h.producer_id < 0 {
        return Err(BatchError::Transactional(h.producer_id));
    }
    if h.compression() == 0 {
        walk_records(&payload[span.records_range()], h.record_count, |_| {})?;
    }
    Ok(())
}

/// The fields of one record the broker looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Index of the record within its batch.
    pub index: i32,
    /// Timestamp relative to the batch's baseTimestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's baseOffset.
    pub offset_delta: i32,
}

/// Walk exactly `count` records in `area` (a batch's decompressed records
/// section), checking each record's structure (lengths of key, value and
/// headers within the record's declared length, offsetDelta equal to its
/// index) and that the records fill `area` exactly. Calls `visit` for each
/// record. Work is bounded by `area.len()`: a huge `count` fails as soon as
/// the bytes run out.
pub fn walk_records(area: &[u8], count: i32, mut visit: impl FnMut(RecordInfo)) -> Result<(), BatchError> {
    let bad = |what: &str, index: i32| BatchError::InvalidRecords(format!("record {index}: {what}"));
    let mut pos = 0usize;
    for index in 0..count.max(0) {
        let len = read_varint(area, &mut pos).ok_or_else(|| bad("truncated length", index))?;
        let len = usize::try_from(len).map_err(|_| bad("negative length", index))?;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= area.len())
            .ok_or_else(|| bad("length past the end of the batch", index))?;
        let rec = &area[..end];
        // attributes (int8, unused in v2)
        if pos >= end {
            return Err(bad("missing attributes", index));
        }
        pos += 1;
        let timestamp_delta = read_varlong(rec, &mut pos).ok_or_else(|| bad("bad timestampDelta", index))?;
        let offset_delta = read_varint(rec, &mut pos).ok_or_else(|| bad("bad offsetDelta", index))?;
        if offset_delta != index {
            return Err(bad("offsetDelta out of sequence", index));
        }
        skip_bytes(rec, &mut pos, true).ok_or_else(|| bad("bad key", index))?;
        skip_bytes(rec, &mut pos, true).ok_or_else(|| bad("bad value", index))?;
        let headers = read_varint(rec, &mut pos).ok_or_else(|| bad("bad header count", index))?;
        if headers < 0 {
            return Err(bad("negative header count", index));
        }
        for _ in 0..headers {
            skip_bytes(rec, &mut pos, false).ok_or_else(|| bad("bad header key", index))?;
            skip_bytes(rec, &mut pos, true).ok_or_else(|| bad("bad header value", index))?;
        }
        if pos != end {
            return Err(bad("length disagrees with contents", index));
        }
        visit(RecordInfo {
            index,
            timestamp_delta,
            offset_delta,
        });
    }
    if pos != area.len() {
        return Err(BatchError::InvalidRecords(format!(
            "{} bytes left after {count} records",
            area.len() - pos
        )));
    }
    Ok(())
}

/// Skip a varint-length-prefixed byte string (-1 = null when `nullable`).
fn skip_bytes(rec: &[u8], pos: &mut usize, nullable: bool) -> Option<()> {
    let len = read_varint(rec, pos)?;
    if len == -1 && nullable {
        return Some(());
    }
    let len = usize::try_from(len).ok()?;
    let end = pos.checked_add(len).filter(|&e| e <= rec.len())?;
    *pos = end;
    Some(())
}
