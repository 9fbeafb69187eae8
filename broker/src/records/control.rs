//! Transaction markers: the control batches that end a transaction in each
//! of its partitions, in Kafka's byte format so clients parse them as they
//! parse a Kafka broker's.
//!
//! A marker is a v2 batch with the transactional and control attribute
//! bits, the transaction's producer id and epoch, base sequence -1 and one
//! record whose key is `version:i16=0 type:i16` (0 abort, 1 commit) and
//! whose value is `version:i16=0 coordinatorEpoch:i32`. It takes one offset
//! like any record (so offsets seen by clients match Kafka's); consumers
//! never return it to the application.

use bytes::{BufMut, BytesMut};

use super::batch::{
    BatchHeader, ATTRIBUTES_OFFSET, CONTROL_BIT, CRC_OFFSET, HEADER_SIZE, LENGTH_OFFSET, LOG_OVERHEAD,
    MAGIC_V2, TRANSACTIONAL_BIT,
};
use super::varint::read_varint;

/// Control record type of an abort marker.
const ABORT: i16 = 0;
/// Control record type of a commit marker.
const COMMIT: i16 = 1;

/// The marker batch ending producer `producer_id`'s transaction at
/// `producer_epoch`: a commit or an abort, stamped `timestamp_ms`. Its base
/// offset and leader epoch are 0: the log writer stamps them like any batch.
pub fn end_txn_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> BytesMut {
    // The one record: attributes, timestamp delta, offset delta, key, value,
    // no headers (every varint here is a single byte).
    let mut record = BytesMut::with_capacity(16);
    record.put_i8(0); // attributes
    record.put_u8(0); // timestamp delta 0
    record.put_u8(0); // offset delta 0
    record.put_u8(4 << 1); // key length 4 (zig-zag)
    record.put_i16(0); // key version
    record.put_i16(if commit { COMMIT } else { ABORT });
    record.put_u8(6 << 1); // value length 6
    record.put_i16(0); // value version
    record.put_i32(coordinator_epoch);
    record.put_u8(0); // header count 0

    let mut batch = BytesMut::with_capacity(HEADER_SIZE + 1 + record.len());
    batch.put_i64(0); // base offset
    batch.put_i32(0); // batch length, below
    batch.put_i32(0); // partition leader epoch
    batch.put_i8(MAGIC_V2);
    batch.put_u32(0); // crc, below
    batch.put_i16(TRANSACTIONAL_BIT | CONTROL_BIT);
    batch.put_i32(0); // last offset delta
    batch.put_i64(timestamp_ms);
    batch.put_i64(timestamp_ms);
    batch.put_i64(producer_id);
    batch.put_i16(producer_epoch);
    batch.put_i32(-1); // base sequence
    batch.put_i32(1); // record count
    batch.put_u8((record.len() as u8) << 1); // record length (zig-zag)
    batch.put_slice(&record);
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// What an end-transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The producer whose transaction it ends.
    pub producer_id: i64,
    /// The epoch it was written at.
    pub producer_epoch: i16,
    /// Commit (`true`) or abort.
    pub commit: bool,
}

/// The marker held by the control batch starting `batch`, or `None` when
/// it is not a control batch or its record is not an end-transaction
/// marker (Kafka's other control types are not transaction ends). Bounds
/// checked: hostile bytes are `None`, never a panic.
pub fn marker_of(batch: &[u8]) -> Option<Marker> {
    let h = BatchHeader::parse(batch).ok()?;
    if !h.is_control() {
        return None;
    }
    let mut pos = HEADER_SIZE;
    let _record_len = read_varint(batch, &mut pos)?;
    pos += 1; // attributes
    read_varint(batch, &mut pos)?; // timestamp delta (varlong, small)
    read_varint(batch, &mut pos)?; // offset delta
    let key_len = read_varint(batch, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = batch.get(pos..pos + 4)?;
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let commit = match kind {
        COMMIT => true,
        ABORT => false,
        _ => return None,
    };
    Some(Marker {
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        commit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::BatchWalker;

    #[test]
    fn markers_round_trip_and_are_valid_control_batches() {
        for commit in [true, false] {
            let m = end_txn_marker(42, 7, commit, 3, 1_700_000_000_000);
            let h = BatchHeader::parse(&m).expect("header");
            assert!(h.is_control());
            assert_eq!(h.attributes & TRANSACTIONAL_BIT, TRANSACTIONAL_BIT);
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 7, -1));
            assert_eq!(h.last_offset_delta, 0);
            assert_eq!(
                crc32c::crc32c(&m[ATTRIBUTES_OFFSET..]),
                u32::from_be_bytes(m[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap())
            );
            let spans: Vec<_> = BatchWalker::new(&m).collect();
            assert_eq!(spans.len(), 1);
            assert_eq!(
                marker_of(&m),
                Some(Marker {
                    producer_id: 42,
                    producer_epoch: 7,
                    commit
                })
            );
        }
    }

    #[test]
    fn hostile_control_batches_are_not_markers_and_never_panic() {
        let good = end_txn_marker(1, 0, true, 0, 0);
        for cut in 0..good.len() {
            let _ = marker_of(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut bad = good.to_vec();
            bad[i] ^= 0xff;
            let _ = marker_of(&bad);
        }
        // A data batch is no marker.
        let mut data = good.to_vec();
        data[ATTRIBUTES_OFFSET + 1] &= !(CONTROL_BIT as u8);
        assert_eq!(marker_of(&data), None);
    }
}
