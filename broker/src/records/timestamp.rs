//! Timestamp lookups inside a stored entry (concatenated, stamped batches):
//! the refinement step of ListOffsets by timestamp after storage has found
//! the entry by txid.
//!
//! Batches whose `maxTimestamp` is below the target are skipped from their
//! header alone; only a candidate batch is decompressed (bounded, by
//! [`super::codec`]) and its records walked. The records are not
//! materialised: the walk reads only timestamp and offset deltas, so the
//! work and memory are bounded by the batch's decompressed size, never by
//! a `recordCount` field.

use super::batch::{BatchSpan, BatchWalker};
use super::codec::{Codec, MAX_DECOMPRESSED};
use super::validate::walk_records;
use super::BatchError;

/// A record found by a timestamp lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampHit {
    /// The record's offset (stamped baseOffset + offsetDelta).
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: i64,
}

/// The first record in `payload` whose timestamp is `>= target`, or `None`
/// when no record in the payload qualifies. Errors only when a batch that
/// had to be opened does not frame or decompress.
pub fn find_offset_for_timestamp(payload: &[u8], target: i64) -> Result<Option<TimestampHit>, BatchError> {
    for span in BatchWalker::new(payload) {
        let span = span?;
        if span.header.max_timestamp < target {
            continue;
        }
        let mut hit = None;
        for_each_record(payload, &span, |h| {
            if hit.is_none() && h.timestamp >= target {
                hit = Some(h);
            }
        })?;
        if hit.is_some() {
            return Ok(hit);
        }
    }
    Ok(None)
}

/// The record with the largest timestamp in `payload` (the first of them on
/// a tie), or `None` for a payload without records. Uses the batch headers'
/// `maxTimestamp` to pick the batch, then opens only that batch.
pub fn max_timestamp_record(payload: &[u8]) -> Result<Option<TimestampHit>, BatchError> {
    let mut best: Option<BatchSpan> = None;
    for span in BatchWalker::new(payload) {
        let span = span?;
        if best.is_none_or(|b| span.header.max_timestamp > b.header.max_timestamp) {
            best = Some(span);
        }
    }
    let Some(span) = best else {
        return Ok(None);
    };
    let mut hit: Option<TimestampHit> = None;
    for_each_record(payload, &span, |h| {
        if hit.is_none_or(|b| h.timestamp > b.timestamp) {
            hit = Some(h);
        }
    })?;
    Ok(hit)
}

/// Visit every record of one batch with its absolute offset and timestamp.
fn for_each_record(
    payload: &[u8],
    span: &BatchSpan,
    mut visit: impl FnMut(TimestampHit),
) -> Result<(), BatchError> {
    let h = span.header;
    let area = &payload[span.records_range()];
    let decompressed = decompress(h.compression(), area)?;
    let records = decompressed.as_deref().unwrap_or(area);
    walk_records(records, h.record_count, |r| {
        let timestamp = if h.log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp.saturating_add(r.timestamp_delta)
        };
        visit(TimestampHit {
            offset: h.base_offset.saturating_add(i64::from(r.offset_delta)),
            timestamp,
        });
    })
}

/// The decompressed records section of a batch with codec `codec`
/// (`None` for an uncompressed batch: its records are `area` itself),
/// bounded by [`MAX_DECOMPRESSED`] whatever the bytes claim.
fn decompress(codec: i16, area: &[u8]) -> Result<Option<Vec<u8>>, BatchError> {
    match Codec::from_id(codec)? {
        Codec::None => Ok(None),
        c => c.decompress(area, MAX_DECOMPRESSED).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_length_bombs_are_refused_before_allocation() {
        // Raw snappy claiming 2^28 bytes from 6 bytes of input.
        let raw = [0x80, 0x80, 0x80, 0x80, 0x01, 0x00];
        assert!(matches!(decompress(2, &raw), Err(BatchError::Decompress(_))));
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        xerial.extend_from_slice(&6u32.to_be_bytes());
        xerial.extend_from_slice(&raw);
        assert!(matches!(decompress(2, &xerial), Err(BatchError::Decompress(_))));
        assert_eq!(decompress(0, &raw), Ok(None));
        assert_eq!(decompress(7, &raw), Err(BatchError::UnknownCompression(7)));
    }
}
