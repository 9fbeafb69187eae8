//! The ordering fields of an add (entry id, previous entry of the
//! bookie's stripe) under hostile input: impossible values, bad presence
//! flags, truncation — refused as malformed, never a panic.

use std::io::ErrorKind;

use bytes::{BufMut, Bytes, BytesMut};

use super::{assert_malformed, row, MAX};
use crate::bookie_net::protocol::*;
use crate::error::StorageError;
use crate::ledger::AddRequest;

/// The body of an add with raw ordering fields (entry id, previous-entry
/// presence flag and value) and an empty payload.
fn raw_add(entry: u64, prev_flag: u8, prev: u64) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(OpCode::Add as u8);
    b.put_u64(1); // request id
    b.put_u64(9); // ledger
    b.put_u64(entry);
    b.put_u8(prev_flag);
    b.put_u64(prev);
    b.put_u64(100); // first seq
    b.put_u32(1); // record count
    b.put_u64(5); // txid
    b.put_u8(0); // no lac
    b.put_u64(0);
    b.put_u8(0); // not a recovery add
    b.put_u32(0); // payload length
    b.freeze()
}

#[test]
fn adds_with_impossible_ordering_fields_are_malformed() {
    // Well-formed: the first entry of a stripe, and one following entry 3.
    for (entry, flag, prev, want) in [(4u64, 0u8, 0u64, None), (4, 1, 3, Some(3)), (1, 1, 0, Some(0))] {
        match decode_request(raw_add(entry, flag, prev)) {
            Ok((1, Request::Add(add))) => {
                assert_eq!((add.row.entry_id, add.prev_entry_id), (entry, want));
            }
            other => panic!("entry {entry} after {want:?}: {other:?}"),
        }
    }
    // The previous entry must be below the entry; u64::MAX is reserved.
    assert_malformed(decode_request(raw_add(4, 1, 4)), "cannot follow");
    assert_malformed(decode_request(raw_add(4, 1, 9)), "cannot follow");
    assert_malformed(decode_request(raw_add(0, 1, 0)), "cannot follow");
    assert_malformed(decode_request(raw_add(u64::MAX, 1, 3)), "reserved");
    assert_malformed(decode_request(raw_add(u64::MAX, 0, 0)), "reserved");
    // Presence flag other than 0/1, or an absent value that is not 0.
    assert_malformed(decode_request(raw_add(4, 2, 3)), "bad presence flag");
    assert_malformed(decode_request(raw_add(4, 0, 3)), "absent value");
    // Cut anywhere inside the ordering fields: truncated, never a panic.
    let full = raw_add(4, 1, 3);
    for cut in 9..(9 + 8 + 8 + 9) {
        assert_malformed(decode_request(full.slice(..cut)), "truncated");
    }
    // The client refuses to encode such adds at all.
    for (entry, prev) in [(4u64, Some(4u64)), (0, Some(0)), (u64::MAX, None)] {
        let req = Request::Add(AddRequest {
            ledger_id: 1,
            row: row(entry, 0),
            prev_entry_id: prev,
            lac: None,
            recovery: false,
            payload: vec![],
        });
        let err = encode_request(1, &req, MAX).expect_err("refused");
        assert!(
            matches!(&err, StorageError::Io { source, .. } if source.kind() == ErrorKind::InvalidInput),
            "{entry} after {prev:?}: {err}"
        );
    }
}
