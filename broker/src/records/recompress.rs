//! Broker-side recompression for topics whose `compression.type` names a
//! codec: a batch that arrives in another codec is rewritten in the
//! topic's codec, as Kafka's broker does.
//!
//! Only the records section is decoded and re-encoded; its decompressed
//! bytes are kept exactly (record attributes, timestamp and offset deltas,
//! keys, values and headers, duplicate header keys included). The header
//! keeps every field (base offset and timestamp, max timestamp, producer
//! id, epoch and base sequence, leader epoch, record count, attribute bits
//! other than the codec); only the codec bits, `batchLength` and the crc
//! change.

use bytes::{BufMut, BytesMut};

use super::batch::{
    BatchSpan, ATTRIBUTES_OFFSET, COMPRESSION_MASK, CRC_OFFSET, HEADER_SIZE, LENGTH_OFFSET, LOG_OVERHEAD,
};
use super::codec::{Codec, MAX_DECOMPRESSED};
use super::validate::walk_records;
use super::BatchError;

/// The records section of the batch at `span` in `payload`, decompressed
/// (bounded by [`MAX_DECOMPRESSED`]) and checked to frame exactly
/// `recordCount` records.
pub fn decoded_records(payload: &[u8], span: &BatchSpan) -> Result<Vec<u8>, BatchError> {
    let codec = Codec::from_id(span.header.compression())?;
    let raw = codec.decompress(&payload[span.records_range()], MAX_DECOMPRESSED)?;
    walk_records(&raw, span.header.record_count, |_| {})?;
    Ok(raw)
}

/// Rebuild the (validated) batch at `span` in `payload` with its records
/// section compressed in `target`. `records` is the batch's decompressed
/// records section ([`decoded_records`]). The result is a single batch
/// with a valid crc.
pub fn rebuild(
    payload: &[u8],
    span: &BatchSpan,
    records: &[u8],
    target: Codec,
) -> Result<BytesMut, BatchError> {
    let packed = target.compress(records)?;
    let len = HEADER_SIZE + packed.len();
    let batch_length = i32::try_from(len - LOG_OVERHEAD)
        .map_err(|_| BatchError::PayloadTooLarge(format!("a {len}-byte batch after recompression")))?;
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(&payload[span.start..span.start + HEADER_SIZE]);
    out.put_slice(&packed);
    out[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (span.header.attributes & !COMPRESSION_MASK) | target.id();
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Recompress the single batch of `payload` into `target`: decode, then
/// [`rebuild`]. Returns the new batch and the decompressed records.
pub fn recompress(
    payload: &[u8],
    span: &BatchSpan,
    target: Codec,
) -> Result<(BytesMut, Vec<u8>), BatchError> {
    let records = decoded_records(payload, span)?;
    let batch = rebuild(payload, span, &records, target)?;
    Ok((batch, records))
}

#[cfg(test)]
#[path = "recompress_tests.rs"]
mod tests;
