//! Unit tests of the bookie protocol codec and framing, including hostile
//! input: random bytes, truncated frames, huge lengths, wrong op codes.

use std::collections::VecDeque;
use std::io::ErrorKind;

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{write_chunks, FrameReader};
use super::protocol::*;
use crate::error::StorageError;
use crate::ledger::{AddRequest, Entry, IndexRow, LedgerInfo};

const MAX: usize = DEFAULT_MAX_FRAME;

/// Hostile and impossible ordering fields of adds (striping).
#[path = "bookie_net_ordering_tests.rs"]
mod ordering;

fn row(entry_id: u64, len: u32) -> IndexRow {
    IndexRow {
        entry_id,
        first_seq: entry_id.wrapping_add(1000),
        record_count: 3,
        txid: entry_id.wrapping_add(77),
        len,
    }
}

/// The frame as contiguous bytes (what the socket sees).
fn wire(frame: &Frame) -> Bytes {
    let mut b = BytesMut::new();
    for c in &frame.chunks {
        b.put_slice(c);
    }
    assert_eq!(b.len(), frame.len, "frame.len counts every byte");
    let prefix = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    assert_eq!(prefix + LEN_PREFIX, frame.len, "length prefix matches the body");
    b.freeze()
}

fn body(frame: &Frame) -> Bytes {
    wire(frame).slice(LEN_PREFIX..)
}

fn all_requests() -> Vec<Request> {
    vec![
        Request::Add(AddRequest {
            ledger_id: 9,
            row: row(4, 11),
            prev_entry_id: Some(3),
            lac: Some(3),
            recovery: false,
            payload: vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")],
        }),
        Request::Add(AddRequest {
            ledger_id: 9,
            row: row(0, 0),
            prev_entry_id: None,
            lac: None,
            recovery: true,
            payload: vec![],
        }),
        // A striped add: entry 7 follows entry 5 of the bookie's stripe.
        Request::Add(AddRequest {
            ledger_id: 9,
            row: row(7, 1),
            prev_entry_id: Some(5),
            lac: Some(4),
            recovery: false,
            payload: vec![Bytes::from_static(b"x")],
        }),
        Request::Read {
            ledger: 1,
            first: 2,
            last: 3,
            max_bytes: 4,
        },
        Request::EntryForSeq { ledger: 5, seq: 6 },
        Request::EntryForTxid { ledger: 7, txid: 8 },
        Request::LastEntry { ledger: 9 },
        Request::Fence { ledger: 10 },
        Request::Delete { ledger: 11 },
        Request::ReadLac {
            ledger: 12,
            known: Some(13),
            wait_ms: 14,
        },
        Request::ReadLac {
            ledger: 12,
            known: None,
            wait_ms: 0,
        },
        Request::LedgerInfo { ledger: u64::MAX },
    ]
}

#[test]
fn every_request_round_trips() {
    for (i, req) in all_requests().into_iter().enumerate() {
        let frame = encode_request(i as u64 + 100, &req, MAX).expect("encodes");
        let (id, back) = decode_request(body(&frame)).expect("decodes");
        assert_eq!(id, i as u64 + 100);
        // Debug output covers every field (payload chunks compared below).
        match (&req, &back) {
            (Request::Add(a), Request::Add(b)) => {
                assert_eq!(
                    (a.ledger_id, a.row, a.lac, a.recovery),
                    (b.ledger_id, b.row, b.lac, b.recovery)
                );
                let joined: Vec<u8> = a.payload.iter().flat_map(|c| c.iter().copied()).collect();
                let got: Vec<u8> = b.payload.iter().flat_map(|c| c.iter().copied()).collect();
                assert_eq!(joined, got);
            }
            _ => assert_eq!(format!("{req:?}"), format!("{back:?}")),
        }
    }
}

#[test]
fn add_payload_chunks_are_sent_as_is_and_decoded_without_copy() {
    let payload = Bytes::from(vec![0xabu8; 4096]);
    let req = Request::Add(AddRequest {
        ledger_id: 1,
        row: row(0, 4096),
        prev_entry_id: None,
        lac: None,
        recovery: false,
        payload: vec![payload.clone()],
    });
    let frame = encode_request(1, &req, MAX).expect("encodes");
    assert_eq!(frame.chunks.len(), 2, "header chunk + the payload itself");
    assert_eq!(
        frame.chunks[1].as_ptr(),
        payload.as_ptr(),
        "payload not copied on encode"
    );

    let body = body(&frame);
    let (_, back) = decode_request(body.clone()).expect("decodes");
    let Request::Add(add) = back else {
        panic!("not an add")
    };
    assert_eq!(add.payload.len(), 1);
    let start = body.as_ptr() as usize;
    let p = add.payload[0].as_ptr() as usize;
    assert_eq!(
        p,
        start + body.len() - 4096,
        "payload is a slice of the received frame"
    );
}

#[test]
fn add_with_wrong_row_len_is_refused_before_sending() {
    let req = Request::Add(AddRequest {
        ledger_id: 1,
        row: row(0, 5),
        prev_entry_id: None,
        lac: None,
        recovery: false,
        payload: vec![Bytes::from_static(b"abc")],
    });
    let err = encode_request(1, &req, MAX).expect_err("len mismatch");
    assert!(
        matches!(&err, StorageError::Io { source, .. } if source.kind() == ErrorKind::InvalidInput),
        "{err}"
    );
}

#[test]
fn oversized_request_is_refused() {
    let req = Request::Add(AddRequest {
        ledger_id: 1,
        row: row(0, 100),
        prev_entry_id: None,
        lac: None,
        recovery: false,
        payload: vec![Bytes::from(vec![0u8; 100])],
    });
    let err = encode_request(1, &req, 64).expect_err("too big for a 64-byte frame");
    assert!(err.to_string().contains("exceeds the maximum of 64"), "{err}");
}

fn entries(n: u64, len: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            row: row(i, len as u32),
            payload: Bytes::from(vec![i as u8; len]),
        })
        .collect()
}

#[test]
fn every_response_round_trips() {
    let cases = vec![
        (OpCode::Add, Response::Added),
        (OpCode::Delete, Response::Deleted),
        (OpCode::Read, Response::Entries(entries(3, 17))),
        (OpCode::Read, Response::Entries(vec![])),
        (OpCode::Read, Response::Entries(entries(2, 0))),
        (OpCode::EntryForSeq, Response::Row(Some(row(5, 6)))),
        (OpCode::EntryForTxid, Response::Row(None)),
        (OpCode::LastEntry, Response::Row(Some(row(1, 2)))),
        (OpCode::Fence, Response::Row(None)),
        (OpCode::ReadLac, Response::Lac(Some(41))),
        (OpCode::ReadLac, Response::Lac(None)),
        (OpCode::LedgerInfo, Response::Info(info(true, 7, false))),
        (OpCode::LedgerInfo, Response::Info(info(true, 0, true))),
        (OpCode::LedgerInfo, Response::Info(LedgerInfo::default())),
    ];
    for (i, (op, resp)) in cases.into_iter().enumerate() {
        let frame = encode_response(i as u64, op, &Ok(resp.clone()), MAX);
        let (got_op, id, result) = decode_response(body(&frame)).expect("decodes");
        assert_eq!((got_op, id), (op, i as u64));
        assert_eq!(result.expect("ok answer"), resp);
    }
}

#[test]
fn read_payloads_are_slices_of_the_answer_frame() {
    let frame = encode_response(1, OpCode::Read, &Ok(Response::Entries(entries(2, 100))), MAX);
    assert_eq!(
        frame.chunks.len(),
        3,
        "header+rows, then each payload as its own chunk"
    );
    let body = body(&frame);
    let (_, _, r) = decode_response(body.clone()).expect("decodes");
    let Ok(Response::Entries(got)) = r else {
        panic!("entries")
    };
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
    for e in &got {
        assert!(range.contains(&(e.payload.as_ptr() as usize)));
    }
    assert_eq!(got[1].payload, Bytes::from(vec![1u8; 100]));
}

#[test]
fn read_answers_are_cut_to_the_frame_size() {
    // Each entry costs 32 (row) + 100 bytes; header 14.
    let max = 14 + 2 * 132 + 50;
    let frame = encode_response(1, OpCode::Read, &Ok(Response::Entries(entries(5, 100))), max);
    let (_, _, r) = decode_response(body(&frame)).expect("decodes");
    assert_eq!(r.expect("ok"), Response::Entries(entries(2, 100)));
    // One entry that cannot fit becomes an error answer, not a bad frame.
    let frame = encode_response(2, OpCode::Read, &Ok(Response::Entries(entries(1, 1000))), max);
    let (_, _, r) = decode_response(body(&frame)).expect("decodes");
    let err = r.expect_err("too large");
    assert!(err.to_string().contains("does not fit"), "{err}");
}

#[test]
fn errors_round_trip_as_the_same_variant() {
    let cases = vec![
        StorageError::Fenced(3),
        StorageError::NoSuchLedger(4),
        StorageError::NoSuchEntry { ledger: 5, entry: 6 },
        StorageError::OutOfOrder {
            ledger: 7,
            last: Some(8),
            prev: Some(9),
        },
        StorageError::OutOfOrder {
            ledger: 7,
            last: None,
            prev: Some(0),
        },
        StorageError::OutOfOrder {
            ledger: 7,
            last: Some(u64::MAX - 1),
            prev: None,
        },
        StorageError::Corrupt {
            ledger: 10,
            entry: 11,
        },
        StorageError::ShuttingDown,
        StorageError::NotEnoughBookies("two down".into()),
        StorageError::InvalidAppend("empty".into()),
    ];
    for e in cases {
        let frame = encode_response(7, OpCode::Add, &Err(e.duplicate()), MAX);
        let (op, id, r) = decode_response(body(&frame)).expect("decodes");
        assert_eq!((op, id), (OpCode::Add, 7));
        let back = r.expect_err("error answer");
        assert_eq!(format!("{back:?}"), format!("{e:?}"));
    }
    let io = StorageError::io("/data/ledgers/1.log", std::io::Error::other("disk full"));
    let frame = encode_response(1, OpCode::Add, &Err(io), MAX);
    let (_, _, r) = decode_response(body(&frame)).expect("decodes");
    match r {
        Err(StorageError::Io { path, source }) => {
            assert_eq!(path, "/data/ledgers/1.log");
            assert_eq!(source.to_string(), "disk full");
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn long_error_texts_are_cut_on_a_char_boundary() {
    let msg = "é".repeat(2000);
    let frame = encode_response(1, OpCode::Add, &Err(StorageError::InvalidAppend(msg)), MAX);
    let (_, _, r) = decode_response(body(&frame)).expect("decodes");
    match r {
        Err(StorageError::InvalidAppend(m)) => assert_eq!(m, "é".repeat(512)),
        other => panic!("{other:?}"),
    }
}

fn assert_malformed<T: std::fmt::Debug>(r: crate::Result<T>, needle: &str) {
    match r {
        Err(StorageError::Io { source, .. }) if source.kind() == ErrorKind::InvalidData => {
            assert!(source.to_string().contains(needle), "{source} lacks {needle:?}");
        }
        other => panic!("expected a malformed-frame error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn wrong_op_codes_are_rejected() {
    for code in [0u8, 10, 200, 255] {
        let mut b = BytesMut::new();
        b.put_u8(code);
        b.put_u64(1);
        b.put_u64(2);
        assert_malformed(decode_request(b.clone().freeze()), "unknown request op code");
        let mut r = BytesMut::new();
        r.put_u8(code);
        r.put_u8(0);
        r.put_u64(1);
        assert_malformed(decode_response(r.freeze()), "unknown response op code");
    }
}

#[test]
fn every_truncation_of_every_message_is_rejected() {
    for req in all_requests() {
        let full = body(&encode_request(1, &req, MAX).expect("encodes"));
        for cut in 0..full.len() {
            assert!(
                decode_request(full.slice(..cut)).is_err(),
                "{req:?} cut at {cut} decoded"
            );
        }
    }
    let answers = [
        encode_response(1, OpCode::Read, &Ok(Response::Entries(entries(3, 5))), MAX),
        encode_response(1, OpCode::Fence, &Ok(Response::Row(Some(row(1, 1)))), MAX),
        encode_response(1, OpCode::ReadLac, &Ok(Response::Lac(Some(1))), MAX),
        encode_response(1, OpCode::Add, &Err(StorageError::Fenced(1)), MAX),
        encode_response(
            1,
            OpCode::LedgerInfo,
            &Ok(Response::Info(info(true, 3, true))),
            MAX,
        ),
    ];
    for frame in answers {
        let full = body(&frame);
        for cut in 0..full.len() {
            assert!(
                decode_response(full.slice(..cut)).is_err(),
                "answer cut at {cut} decoded"
            );
        }
    }
}

#[test]
fn trailing_bytes_bad_flags_and_length_lies_are_rejected() {
    let mut b =
        BytesMut::from(&body(&encode_request(1, &Request::Fence { ledger: 1 }, MAX).expect("enc"))[..]);
    b.put_u8(0);
    assert_malformed(decode_request(b.freeze()), "trailing");

    // ReadLac with presence flag 2.
    let mut b = BytesMut::new();
    b.put_u8(OpCode::ReadLac as u8);
    b.put_u64(1);
    b.put_u64(1);
    b.put_u8(2);
    b.put_u64(0);
    b.put_u32(0);
    assert_malformed(decode_request(b.freeze()), "presence flag");

    // Add announcing more payload than follows, and less.
    for announced in [u32::MAX, 3] {
        let mut b = BytesMut::new();
        b.put_u8(OpCode::Add as u8);
        b.put_u64(1);
        b.put_u64(0); // ledger
        b.put_u64(0); // entry
        b.put_u8(0); // no previous entry
        b.put_u64(0);
        b.put_u64(0); // first seq
        b.put_u32(0);
        b.put_u64(0);
        b.put_u8(0);
        b.put_u64(0);
        b.put_u8(0); // not a recovery add
        b.put_u32(announced);
        b.put_slice(b"0123456789");
        assert_malformed(decode_request(b.freeze()), "payload length");
    }

    // A read answer claiming u32::MAX entries: refused before allocating.
    let mut r = BytesMut::new();
    r.put_u8(OpCode::Read as u8);
    r.put_u8(0);
    r.put_u64(1);
    r.put_u32(u32::MAX);
    assert_malformed(decode_response(r.freeze()), "index rows");

    // Rows whose lengths disagree with the payload bytes present.
    let mut r = BytesMut::new();
    r.put_u8(OpCode::Read as u8);
    r.put_u8(0);
    r.put_u64(1);
    r.put_u32(1);
    r.put_u64(0);
    r.put_u64(0);
    r.put_u32(0);
    r.put_u64(0);
    r.put_u32(u32::MAX);
    r.put_slice(b"abc");
    assert_malformed(decode_response(r.freeze()), "payload bytes");

    // Unknown error status.
    let mut r = BytesMut::new();
    r.put_u8(OpCode::Add as u8);
    r.put_u8(99);
    r.put_u64(1);
    r.put_bytes(0, 28);
    assert_malformed(decode_response(r.freeze()), "unknown response status");
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for round in 0..20_000 {
        let len = (rng.next() % 96) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half the time start with a valid op code, to get past the first check.
        if round % 2 == 0 && !b.is_empty() {
            b[0] = 1 + (rng.next() % 8) as u8;
            if b.len() > 1 && round % 4 == 0 {
                b[1] = 0; // response status OK
            }
        }
        let b = Bytes::from(b);
        decoded += usize::from(decode_request(b.clone()).is_ok());
        decoded += usize::from(decode_response(b).is_ok());
    }
    // Some random inputs are valid messages (e.g. a LastEntry request); the
    // point is that none panicked.
    assert!(decoded < 20_000, "random bytes mostly fail to decode");
}

/// Mutate valid frames byte by byte: no mutation may panic.
#[test]
fn mutated_frames_never_panic() {
    let mut rng = Rng(42);
    let mut frames: Vec<Bytes> = all_requests()
        .iter()
        .map(|r| body(&encode_request(1, r, MAX).expect("enc")))
        .collect();
    frames.push(body(&encode_response(
        1,
        OpCode::Read,
        &Ok(Response::Entries(entries(4, 9))),
        MAX,
    )));
    for f in frames {
        for _ in 0..2000 {
            let mut m = f.to_vec();
            let at = (rng.next() as usize) % m.len();
            m[at] = rng.next() as u8;
            let m = Bytes::from(m);
            let _ = decode_request(m.clone());
            let _ = decode_response(m);
        }
    }
}

async fn frames_of(input: Vec<u8>, max: usize) -> (Vec<Bytes>, std::io::Result<()>) {
    let mut reader = FrameReader::new(&input[..], max);
    let mut out = Vec::new();
    loop {
        match reader.next_frame().await {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[tokio::test]
async fn frame_reader_splits_frames_and_checks_lengths() {
    let a = wire(&encode_request(1, &Request::Fence { ledger: 1 }, MAX).expect("enc"));
    let b = wire(&encode_request(2, &Request::Delete { ledger: 2 }, MAX).expect("enc"));
    let mut input = a.to_vec();
    input.extend_from_slice(&b);
    let (frames, end) = frames_of(input.clone(), MAX).await;
    end.expect("clean end");
    assert_eq!(frames, vec![a.slice(4..), b.slice(4..)]);

    // Ends inside a frame.
    let (frames, end) = frames_of(input[..input.len() - 1].to_vec(), MAX).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(end.expect_err("torn").kind(), ErrorKind::UnexpectedEof);

    // A huge announced length is refused from the 4 prefix bytes alone.
    let (frames, end) = frames_of(vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3], MAX).await;
    assert!(frames.is_empty());
    let e = end.expect_err("huge");
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(e.to_string().contains("4294967295"), "{e}");

    // Just over a small max, and below the minimum body.
    let (_, end) = frames_of([&65u32.to_be_bytes()[..], &[0u8; 65]].concat(), 64).await;
    assert_eq!(end.expect_err("over max").kind(), ErrorKind::InvalidData);
    let (_, end) = frames_of([&3u32.to_be_bytes()[..], &[1, 2, 3]].concat(), 64).await;
    assert_eq!(end.expect_err("too small").kind(), ErrorKind::InvalidData);
}

#[tokio::test]
async fn frames_survive_byte_by_byte_delivery_and_vectored_writes() {
    let (mut tx, rx) = tokio::io::duplex(1);
    let reqs = all_requests();
    let sent: Vec<Bytes> = reqs
        .iter()
        .map(|r| wire(&encode_request(5, r, MAX).expect("enc")))
        .collect();
    let mut chunks: VecDeque<Bytes> = reqs
        .iter()
        .flat_map(|r| encode_request(5, r, MAX).expect("enc").chunks)
        .collect();
    let writer = tokio::spawn(async move {
        write_chunks(&mut tx, &mut chunks).await.expect("write");
    });
    let mut reader = FrameReader::new(rx, MAX);
    for want in &sent {
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), reader.next_frame())
            .await
            .expect("frame before deadline")
            .expect("read")
            .expect("a frame");
        assert_eq!(got, want.slice(4..));
    }
    writer.await.expect("writer");
    assert!(reader.next_frame().await.expect("clean end").is_none());
}

#[test]
fn an_add_with_a_bad_recovery_flag_is_refused() {
    let req = Request::Add(AddRequest {
        ledger_id: 1,
        row: row(0, 0),
        prev_entry_id: None,
        lac: None,
        recovery: true,
        payload: vec![],
    });
    let frame = encode_request(5, &req, MAX).expect("encodes");
    let mut b = body(&frame).to_vec();
    // op(1) id(8) ledger(8) entry(8) prev(9) first_seq(8) count(4) txid(8) lac(9): the flag follows.
    let at = 1 + 8 + 8 + 8 + 9 + 8 + 4 + 8 + 9;
    assert_eq!(b[at], 1);
    b[at] = 2;
    assert!(decode_request(Bytes::from(b)).is_err(), "flag 2 is malformed");
}

/// A ledger info with `entries` dense entries.
fn info(exists: bool, entries: u64, fenced: bool) -> LedgerInfo {
    LedgerInfo {
        exists,
        entries,
        last_entry_id: entries.checked_sub(1),
        bytes: entries * 100,
        fenced,
        lac: entries.checked_sub(2),
    }
}

/// A LedgerInfo answer body with the given raw fields.
fn info_answer(flags: u8, entries: u64, last: Option<u64>, bytes: u64) -> Bytes {
    let mut r = BytesMut::new();
    r.put_u8(OpCode::LedgerInfo as u8);
    r.put_u8(0);
    r.put_u64(1);
    r.put_u8(flags);
    r.put_u64(entries);
    r.put_u8(u8::from(last.is_some()));
    r.put_u64(last.unwrap_or(0));
    r.put_u64(bytes);
    r.put_u8(0);
    r.put_u64(0);
    r.freeze()
}

#[test]
fn ledger_info_answers_must_describe_a_possible_ledger() {
    // The well-formed answer built by hand decodes to exactly these fields.
    let (op, id, r) = decode_response(info_answer(0b11, 2, Some(1), 64)).expect("decodes");
    assert_eq!((op, id), (OpCode::LedgerInfo, 1));
    assert_eq!(
        r.expect("ok"),
        Response::Info(LedgerInfo {
            exists: true,
            entries: 2,
            last_entry_id: Some(1),
            bytes: 64,
            fenced: true,
            lac: None,
        })
    );
    // Unknown flag bits.
    assert_malformed(decode_response(info_answer(0b100, 0, None, 0)), "unknown flags");
    assert_malformed(decode_response(info_answer(0xff, 1, Some(0), 0)), "unknown flags");
    // A striped bookie holds fewer entries than ids up to its last one.
    let (_, _, r) = decode_response(info_answer(1, 5, Some(7), 0)).expect("striped info decodes");
    assert!(matches!(
        r,
        Ok(Response::Info(LedgerInfo {
            entries: 5,
            last_entry_id: Some(7),
            ..
        }))
    ));
    // More entries than ids up to the last, entries without a last (or the
    // reverse), and the reserved entry id.
    assert_malformed(decode_response(info_answer(1, 5, Some(3), 0)), "last entry");
    assert_malformed(decode_response(info_answer(1, 5, None, 0)), "last entry");
    assert_malformed(decode_response(info_answer(1, 0, Some(0), 0)), "last entry");
    assert_malformed(
        decode_response(info_answer(1, u64::MAX, Some(u64::MAX), 0)),
        "last entry",
    );
    // A missing ledger holding entries, bytes or a fence.
    assert_malformed(decode_response(info_answer(0, 1, Some(0), 0)), "missing ledger");
    assert_malformed(decode_response(info_answer(0, 0, None, 9)), "missing ledger");
    assert_malformed(decode_response(info_answer(0b10, 0, None, 0)), "missing ledger");
    // Trailing bytes.
    let mut b = BytesMut::from(&info_answer(1, 0, None, 0)[..]);
    b.put_u8(0);
    assert_malformed(decode_response(b.freeze()), "trailing");
    // The server never sends an impossible info: it answers with an error instead.
    let bad = LedgerInfo {
        exists: false,
        entries: 3,
        last_entry_id: Some(2),
        ..LedgerInfo::default()
    };
    let frame = encode_response(4, OpCode::LedgerInfo, &Ok(Response::Info(bad)), MAX);
    let (_, _, r) = decode_response(body(&frame)).expect("an error answer decodes");
    let err = r.expect_err("refused on encode");
    assert!(err.to_string().contains("missing ledger"), "{err}");
    // An info answer to another op is refused on encode too.
    let frame = encode_response(5, OpCode::Fence, &Ok(Response::Info(info(true, 1, false))), MAX);
    let (_, _, r) = decode_response(body(&frame)).expect("an error answer decodes");
    assert!(r.is_err());
}
