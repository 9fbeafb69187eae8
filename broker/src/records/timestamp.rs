//! Timestamp lookups inside a stored entry (concatenated, stamped batches):
//! the refinement step of ListOffsets by timestamp after storage has found
//! the entry by txid.
//!
//! Batches whose `maxTimestamp` is below the target are skipped from their
//! header alone; only a candidate batch is decompressed (with the codecs of
//! the `kafka-protocol` crate) and its records walked. The records are not
//! materialised: the walk reads only timestamp and offset deltas, so the
//! work and memory are bounded by the batch's decompressed size, never by
//! a `recordCount` field.

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{BatchSpan, BatchWalker};
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
/// (`None` for an uncompressed batch: its records are `area` itself).
fn decompress(codec: i16, area: &[u8]) -> Result<Option<Bytes>, BatchError> {
    let mut input = area;
    let out = |out: &mut Bytes| Ok(out.clone());
    let result = match codec {
        0 => return Ok(None),
        1 => Gzip::decompress(&mut input, out),
        2 => {
            check_snappy_lengths(area)?;
            Snappy::decompress(&mut input, out)
        }
        3 => Lz4::decompress(&mut input, out),
        4 => Zstd::decompress(&mut input, out),
        other => return Err(BatchError::UnknownCompression(other)),
    };
    result
        .map(Some)
        .map_err(|e| BatchError::Decompress(format!("{e:#}")))
}

/// Snappy never expands input by more than about 21x (a 3-byte copy tag
/// yields at most 64 bytes); with a margin, anything claiming more is bogus.
const SNAPPY_MAX_RATIO: usize = 32;

/// Snappy decoders allocate the declared uncompressed length up front, so
/// a few hostile bytes could demand gigabytes. Refuse declared lengths that
/// no real snappy stream of this size can produce. Handles both the raw
/// format and the xerial framing Kafka clients use.
fn check_snappy_lengths(area: &[u8]) -> Result<(), BatchError> {
    // The full header, as kafka-protocol's decoder matches it.
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    const XERIAL_HEADER: usize = XERIAL_MAGIC.len();
    let bomb = || BatchError::Decompress("snappy length exceeds what the input can hold".to_string());
    let declared = |block: &[u8]| -> Option<u64> {
        let mut value: u64 = 0;
        for (i, b) in block.iter().take(5).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    let fits =
        |declared: u64, input: usize| declared <= (input as u64).saturating_mul(SNAPPY_MAX_RATIO as u64);
    if area.len() >= XERIAL_HEADER && area.starts_with(XERIAL_MAGIC) {
        let mut pos = XERIAL_HEADER;
        while pos < area.len() {
            let Some(size) = area.get(pos..pos + 4) else {
                return Ok(()); // the decoder reports the truncation
            };
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
            pos += 4;
            let end = pos.saturating_add(size).min(area.len());
            let block = &area[pos..end];
            if declared(block).is_some_and(|d| !fits(d, block.len())) {
                return Err(bomb());
            }
            pos = end;
        }
        Ok(())
    } else if declared(area).is_some_and(|d| !fits(d, area.len())) {
        Err(bomb())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_length_bombs_are_refused_before_allocation() {
        // Raw snappy claiming 2^28 bytes from 6 bytes of input.
        let raw = [0x80, 0x80, 0x80, 0x80, 0x01, 0x00];
        assert!(matches!(
            check_snappy_lengths(&raw),
            Err(BatchError::Decompress(_))
        ));
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        xerial.extend_from_slice(&6u32.to_be_bytes());
        xerial.extend_from_slice(&raw);
        assert!(matches!(
            check_snappy_lengths(&xerial),
            Err(BatchError::Decompress(_))
        ));
        assert!(matches!(decompress(2, &xerial), Err(BatchError::Decompress(_))));
        // Plausible lengths pass the guard.
        assert_eq!(check_snappy_lengths(&[0x0a, 0x24, 0x61]), Ok(()));
    }
}
