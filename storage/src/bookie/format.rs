//! The on-disk record format of a ledger file.
//!
//! A ledger file is a plain sequence of records, each a fixed 40-byte header
//! followed by the payload, all little endian:
//!
//! | offset | field          | type |
//! |--------|----------------|------|
//! | 0      | magic          | u32  |
//! | 4      | crc32c         | u32  |
//! | 8      | payload len    | u32  |
//! | 12     | entry id       | u64  |
//! | 20     | first seq      | u64  |
//! | 28     | record count   | u32  |
//! | 32     | txid           | u64  |
//!
//! The crc32c covers everything after the crc field: header bytes 8..40 and
//! then the payload, so a torn header, a torn payload and a flipped bit are
//! all caught by one check.

use bytes::Bytes;

use crate::ledger::IndexRow;

/// Marks the start of every record ("DLE1").
pub(crate) const MAGIC: u32 = 0x444C_4531;

/// Size of the fixed record header in bytes.
pub(crate) const HEADER_LEN: usize = 40;

/// A record header as stored (crc not yet verified against the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The stored crc32c of header bytes 8..40 plus the payload.
    pub crc: u32,
    /// The entry's index row (its `len` is the payload length).
    pub row: IndexRow,
}

/// Encode the header of an entry whose payload is `payload` (chunks in
/// order). The crc is computed over the chunks without concatenating them.
pub(crate) fn encode_header(row: &IndexRow, payload: &[Bytes]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[8..12].copy_from_slice(&row.len.to_le_bytes());
    h[12..20].copy_from_slice(&row.entry_id.to_le_bytes());
    h[20..28].copy_from_slice(&row.first_seq.to_le_bytes());
    h[28..32].copy_from_slice(&row.record_count.to_le_bytes());
    h[32..40].copy_from_slice(&row.txid.to_le_bytes());
    let crc = payload
        .iter()
        .fold(crc_seed(&h), |crc, chunk| crc32c::crc32c_append(crc, chunk));
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The crc of a header's covered bytes (8..40); continue it over the payload
/// with `crc32c::crc32c_append` and compare with [`Header::crc`].
pub(crate) fn crc_seed(raw: &[u8; HEADER_LEN]) -> u32 {
    crc32c::crc32c(&raw[8..])
}

fn u32_at(raw: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&raw[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(raw: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decode a header; `None` if the magic is wrong (not a record boundary).
pub(crate) fn decode_header(raw: &[u8; HEADER_LEN]) -> Option<Header> {
    if u32_at(raw, 0) != MAGIC {
        return None;
    }
    Some(Header {
        crc: u32_at(raw, 4),
        row: IndexRow {
            len: u32_at(raw, 8),
            entry_id: u64_at(raw, 12),
            first_seq: u64_at(raw, 20),
            record_count: u32_at(raw, 28),
            txid: u64_at(raw, 32),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(len: u32) -> IndexRow {
        IndexRow {
            entry_id: 7,
            first_seq: 1234,
            record_count: 3,
            txid: 99,
            len,
        }
    }

    #[test]
    fn header_round_trips_and_crc_spans_chunks() {
        let chunks = vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
        let raw = encode_header(&row(11), &chunks);
        let h = decode_header(&raw).expect("valid magic");
        assert_eq!(h.row, row(11));
        let crc = crc32c::crc32c_append(crc_seed(&raw), b"hello world");
        assert_eq!(h.crc, crc);
    }

    #[test]
    fn bad_magic_is_rejected() {
        let mut raw = encode_header(&row(0), &[]);
        raw[0] ^= 0xff;
        assert_eq!(decode_header(&raw), None);
    }
}
