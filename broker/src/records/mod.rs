//! Kafka record batches (magic 2) as the broker sees them on the produce
//! path: validation (sizes, magic, CRC), counting, and stamping of the
//! broker-assigned offsets and leader epoch. Record bytes are never
//! re-encoded.
//!
//! CONTRACT (implemented by the produce/fetch work).
pub fn stamp_fn() -> distlog_storage::log::StampFn {
    unimplemented!()
}
