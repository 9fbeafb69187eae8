//! The v2 record batch header: its layout and a bounds-checked walk over a
//! buffer of concatenated batches.
//!
//! Layout (big endian), offsets from the start of the batch:
//! ```text
//!  0 baseOffset i64        8 batchLength i32      12 partitionLeaderEpoch i32
//! 16 magic i8             17 crc u32             21 attributes i16
//! 23 lastOffsetDelta i32  27 baseTimestamp i64   35 maxTimestamp i64
//! 43 producerId i64       51 producerEpoch i16   53 baseSequence i32
//! 57 recordCount i32      61 records…
//! ```
//! `batchLength` counts the bytes after itself, so a batch occupies
//! `12 + batchLength` bytes. The crc (Castagnoli) covers `attributes` to the
//! end of the batch; `baseOffset` and `partitionLeaderEpoch` lie outside it,
//! which is what lets the broker stamp them without recomputing the crc.

use super::BatchError;

/// Offset of `baseOffset`.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Offset of `batchLength`.
pub const LENGTH_OFFSET: usize = 8;
/// Bytes before the part counted by `batchLength` (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Offset of `partitionLeaderEpoch`.
pub const LEADER_EPOCH_OFFSET: usize = 12;
/// Offset of the magic byte.
pub const MAGIC_OFFSET: usize = 16;
/// Offset of the crc.
pub const CRC_OFFSET: usize = 17;
/// Offset of `attributes`, where the crc's coverage starts.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Offset of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Offset of `baseTimestamp`.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Offset of `maxTimestamp`.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Offset of `producerId`.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Offset of `producerEpoch`.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Offset of `baseSequence`.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Offset of `recordCount`.
pub const RECORD_COUNT_OFFSET: usize = 57;
/// Size of the v2 batch header; the records follow.
pub const HEADER_SIZE: usize = 61;
/// The record batch format this broker stores.
pub const MAGIC_V2: i8 = 2;

/// Attribute bits: compression codec.
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit: timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
/// Attribute bit: transactional batch.
pub const TRANSACTIONAL_BIT: i16 = 1 << 4;
/// Attribute bit: control batch (transaction markers).
pub const CONTROL_BIT: i16 = 1 << 5;

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded header fields of one v2 batch. Produced only by
/// [`BatchHeader::parse`], which guarantees the whole header is in bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset of the batch (0 from producers; stamped by the broker).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch (stamped by the broker).
    pub partition_leader_epoch: i32,
    /// Format version; 2 for every batch this broker accepts.
    pub magic: i8,
    /// crc32c of attributes..end, as sent.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (CreateTime base).
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id (-1 when none).
    pub producer_id: i64,
    /// Idempotent producer epoch.
    pub producer_epoch: i16,
    /// Idempotent base sequence.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Decode the header at the start of `b`. Fails with
    /// [`BatchError::Truncated`] when `b` is shorter than a header; checks
    /// nothing else (see the validator for that).
    pub fn parse(b: &[u8]) -> Result<BatchHeader, BatchError> {
        if b.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: b.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: i64_at(b, BASE_OFFSET_OFFSET),
            batch_length: i32_at(b, LENGTH_OFFSET),
            partition_leader_epoch: i32_at(b, LEADER_EPOCH_OFFSET),
            magic: b[MAGIC_OFFSET] as i8,
            crc: i32_at(b, CRC_OFFSET) as u32,
            attributes: i16_at(b, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(b, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: i64_at(b, BASE_TIMESTAMP_OFFSET),
            max_timestamp: i64_at(b, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(b, PRODUCER_ID_OFFSET),
            producer_epoch: i16_at(b, PRODUCER_EPOCH_OFFSET),
            base_sequence: i32_at(b, BASE_SEQUENCE_OFFSET),
            record_count: i32_at(b, RECORD_COUNT_OFFSET),
        })
    }

    /// The compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    /// Whether record timestamps are LogAppendTime (all equal to
    /// `max_timestamp`) rather than CreateTime.
    pub fn log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// Whether this is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Offsets this batch consumes: `lastOffsetDelta + 1`, the quantity the
    /// stamp uses to advance from one batch to the next. Clamped to ≥ 1 so a
    /// walk always makes progress even over unvalidated bytes.
    pub fn offset_span(&self) -> u64 {
        (i64::from(self.last_offset_delta) + 1).max(1) as u64
    }
}

/// One batch found by [`BatchWalker`]: where it lies and its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// Byte offset of the batch within the walked buffer.
    pub start: usize,
    /// Total size of the batch in bytes (`12 + batchLength`).
    pub len: usize,
    /// The batch header.
    pub header: BatchHeader,
}

impl BatchSpan {
    /// The byte range of the whole batch within the walked buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }

    /// The byte range of the batch's records section.
    pub fn records_range(&self) -> std::ops::Range<usize> {
        self.start + HEADER_SIZE..self.start + self.len
    }
}

/// Walks concatenated batches, checking only framing: every batch is magic
/// 2, its length is at least a header and it lies within the buffer. Yields an
/// error (once, then stops) at the first batch that is not framed; never
/// reads out of bounds, never panics.
pub struct BatchWalker<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchWalker<'a> {
    /// Walk `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchWalker {
            buf,
            pos: 0,
            failed: false,
        }
    }
}

impl Iterator for BatchWalker<'_> {
    type Item = Result<BatchSpan, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let res = frame(rest).map(|(len, header)| BatchSpan {
            start: self.pos,
            len,
            header,
        });
        match &res {
            Ok(span) => self.pos += span.len,
            Err(_) => self.failed = true,
        }
        Some(res)
    }
}

/// Frame the batch at the start of `rest`: (total length, header).
fn frame(rest: &[u8]) -> Result<(usize, BatchHeader), BatchError> {
    if rest.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: LOG_OVERHEAD,
            available: rest.len(),
        });
    }
    // Legacy (v0/v1) message sets keep the magic byte at the same offset;
    // Kafka refuses them for their magic before judging their length.
    if let Some(&magic) = rest.get(MAGIC_OFFSET) {
        if magic as i8 != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic as i8));
        }
    }
    let batch_length = i32_at(rest, LENGTH_OFFSET);
    let min = (HEADER_SIZE - LOG_OVERHEAD) as i32;
    if batch_length < min {
        return Err(BatchError::BadLength(batch_length));
    }
    // batch_length ≥ 49 > 0, so the cast is exact; the sum cannot overflow
    // usize on 32- or 64-bit targets because batch_length < 2^31.
    let total = LOG_OVERHEAD + batch_length as usize;
    if rest.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: rest.len(),
        });
    }
    let header = BatchHeader::parse(&rest[..total])?;
    Ok((total, header))
}
