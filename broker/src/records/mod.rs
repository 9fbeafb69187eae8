//! Kafka record batches (magic 2) as the broker sees them on the produce
//! path: validation (sizes, magic, CRC), counting, and stamping of the
//! broker-assigned offsets and leader epoch; on the read path, finding the
//! first record at or after a timestamp, and cutting stored entries at
//! batch boundaries for Fetch ([`batches`]). Record bytes are not re-encoded,
//! everything walks headers in place and reads only what it needs, except
//! where a topic's settings ask for it ([`policy`]): recompression into the
//! topic's `compression.type` ([`recompress`], [`codec`]) and LogAppendTime
//! stamping ([`stamp::stamp_log_append_time`], in place).
//!
//! Every function here takes hostile bytes: it never panics, never reads
//! out of bounds and never allocates in proportion to a length field it has
//! not checked against the bytes actually present.

pub mod batch;
pub mod batches;
pub mod codec;
pub mod control;
pub mod policy;
pub mod recompress;
pub mod stamp;
pub mod timestamp;
pub mod validate;
mod varint;

#[cfg(test)]
#[path = "records_tests.rs"]
pub(crate) mod tests;

use kafka_protocol::error::ResponseError;

pub use batch::{BatchHeader, BatchSpan, BatchWalker};
pub use batches::{take_batches, take_batches_below, TakenBatches};
pub use codec::Codec;
pub use policy::{RecordPolicy, TimestampType};
pub use stamp::{stamp, stamp_fn, stamp_log_append_time};
pub use timestamp::{find_offset_for_timestamp, max_timestamp_record, TimestampHit};
pub use validate::{validate, ValidatedPayload};

/// Why a buffer of record batches was refused (or could not be read).
/// Each variant maps to the error code a Kafka broker answers for it
/// ([`BatchError::kafka_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The payload holds no batch at all (null or empty records).
    #[error("the records hold no record batch")]
    NoBatch,
    /// A batch (or its header) extends past the end of the buffer.
    #[error("record batch truncated: needs {needed} bytes, {available} present")]
    Truncated {
        /// Bytes the batch (or header) needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// `batchLength` is negative or smaller than a v2 header.
    #[error("record batch length {0} is smaller than the v2 header")]
    BadLength(i32),
    /// The batch is not magic 2 (v0/v1 message sets are not accepted).
    #[error("record batch magic {0} is not supported; only magic 2 is accepted")]
    UnsupportedMagic(i8),
    /// The stored crc does not match the crc32c of attributes..end.
    #[error("record batch crc mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch {
        /// The crc in the header.
        expected: u32,
        /// The crc of the bytes.
        actual: u32,
    },
    /// The batch is larger than `message.max.bytes`.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The batch's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// `recordCount` is not positive or disagrees with `lastOffsetDelta + 1`.
    #[error("record batch claims {count} records but lastOffsetDelta is {last_offset_delta}")]
    RecordCount {
        /// `recordCount` as sent.
        count: i32,
        /// `lastOffsetDelta` as sent.
        last_offset_delta: i32,
    },
    /// A client sent a control batch (only the broker writes those).
    #[error("clients may not write control batches")]
    ControlBatch,
    /// A client batch must start at offset 0 (the broker assigns offsets).
    #[error("the baseOffset of a produced batch must be 0, got {0}")]
    NonZeroBaseOffset(i64),
    /// An idempotent batch (producerId ≥ 0) without a base sequence.
    #[error("batch has producer id {0} but no base sequence")]
    MissingSequence(i64),
    /// A transactional batch without a producer id.
    #[error("a transactional batch needs a producer id (it has {0})")]
    Transactional(i64),
    /// The compression codec id is not one Kafka defines.
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
    /// zstd in a produce request older than v7.
    #[error("zstd compression requires produce v7 or later")]
    ZstdNotAllowed,
    /// A produce partition carries more than one batch (Kafka allows one).
    #[error("produce requests may carry exactly one record batch per partition")]
    MultipleBatches,
    /// The records inside an (uncompressed) batch do not frame correctly.
    #[error("invalid records: {0}")]
    InvalidRecords(String),
    /// More records or bytes than one append can carry.
    #[error("payload too large to append: {0}")]
    PayloadTooLarge(String),
    /// A compressed batch failed to decompress.
    #[error("cannot decompress record batch: {0}")]
    Decompress(String),
    /// Recompressing a batch into the topic's codec failed (a codec
    /// library error, not the client's fault).
    #[error("cannot compress record batch: {0}")]
    Compress(String),
    /// Records whose timestamps the topic refuses: (index in the batch,
    /// reason) per record, as Kafka's `record_errors`.
    #[error("{} record(s) with an invalid timestamp: {}", .0.len(), .0.first().map_or("", |e| e.1.as_str()))]
    InvalidTimestamp(Vec<(i32, String)>),
}

impl BatchError {
    /// The Kafka error code a Kafka broker answers for this refusal.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            BatchError::Truncated { .. }
            | BatchError::BadLength(_)
            | BatchError::CrcMismatch { .. }
            | BatchError::UnknownCompression(_)
            | BatchError::Decompress(_) => ResponseError::CorruptMessage,
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::PayloadTooLarge(_) => ResponseError::RecordListTooLarge,
            BatchError::ZstdNotAllowed => ResponseError::UnsupportedCompressionType,
            BatchError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
            BatchError::Compress(_) => ResponseError::UnknownServerError,
            BatchError::NoBatch
            | BatchError::UnsupportedMagic(_)
            | BatchError::RecordCount { .. }
            | BatchError::ControlBatch
            | BatchError::NonZeroBaseOffset(_)
            | BatchError::MissingSequence(_)
            | BatchError::MultipleBatches
            | BatchError::InvalidRecords(_) => ResponseError::InvalidRecord,
            // Kafka's answer to a transactional write without a producer.
            BatchError::Transactional(_) => ResponseError::InvalidTxnState,
        }
    }
}
