//! Requests: encoding on the client, strict decoding on the server.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::wire::{finish, put_opt, Cursor};
use super::{malformed, Frame, OpCode, Request, LEN_PREFIX, MIN_BODY};
use crate::error::{Result, StorageError};
use crate::ledger::{order_problem, AddRequest, IndexRow};

/// Encode a request. An add's payload chunks are passed through untouched;
/// an add whose `row.len` disagrees with its payload or whose entry ids
/// are impossible (see the module docs), or any frame larger than
/// `max_frame`, is refused here (nothing is sent).
pub fn encode_request(id: u64, req: &Request, max_frame: usize) -> Result<Frame> {
    let mut b = BytesMut::with_capacity(LEN_PREFIX + MIN_BODY + 58);
    b.put_u32(0);
    b.put_u8(req.op() as u8);
    b.put_u64(id);
    let mut payload = Vec::new();
    match req {
        Request::Add(add) => {
            let actual: u64 = add.payload.iter().map(|c| c.len() as u64).sum();
            if actual != u64::from(add.row.len) {
                return Err(StorageError::io(
                    "bookie protocol",
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "entry {}: row.len {} but payload has {actual} bytes",
                            add.row.entry_id, add.row.len
                        ),
                    ),
                ));
            }
            if let Some(problem) = order_problem(add.row.entry_id, add.prev_entry_id) {
                return Err(StorageError::io(
                    "bookie protocol",
                    io::Error::new(io::ErrorKind::InvalidInput, problem),
                ));
            }
            b.put_u64(add.ledger_id);
            b.put_u64(add.row.entry_id);
            put_opt(&mut b, add.prev_entry_id);
            b.put_u64(add.row.first_seq);
            b.put_u32(add.row.record_count);
            b.put_u64(add.row.txid);
            put_opt(&mut b, add.lac);
            b.put_u8(u8::from(add.recovery));
            b.put_u32(add.row.len);
            payload.extend(add.payload.iter().cloned());
        }
        Request::Read {
            ledger,
            first,
            last,
            max_bytes,
        } => {
            b.put_u64(*ledger);
            b.put_u64(*first);
            b.put_u64(*last);
            b.put_u32(*max_bytes);
        }
        Request::EntryForSeq { ledger, seq: key } | Request::EntryForTxid { ledger, txid: key } => {
            b.put_u64(*ledger);
            b.put_u64(*key);
        }
        Request::LastEntry { ledger }
        | Request::Fence { ledger }
        | Request::Delete { ledger }
        | Request::LedgerInfo { ledger } => {
            b.put_u64(*ledger);
        }
        Request::ReadLac {
            ledger,
            known,
            wait_ms,
        } => {
            b.put_u64(*ledger);
            put_opt(&mut b, *known);
            b.put_u32(*wait_ms);
        }
    }
    finish(b, payload, max_frame)
}

/// Decode a request body (the frame without its length prefix). An add's
/// payload is a slice of `body`.
pub fn decode_request(body: Bytes) -> Result<(u64, Request)> {
    let mut c = Cursor { buf: body };
    let code = c.u8("op")?;
    let op = OpCode::from_u8(code).ok_or_else(|| malformed(format!("unknown request op code {code}")))?;
    let id = c.u64("request id")?;
    let req = match op {
        OpCode::Add => {
            let ledger_id = c.u64("ledger")?;
            let entry_id = c.u64("entry id")?;
            let prev_entry_id = c.opt("previous entry id")?;
            if let Some(problem) = order_problem(entry_id, prev_entry_id) {
                return Err(malformed(format!("add: {problem}")));
            }
            let first_seq = c.u64("first seq")?;
            let record_count = c.u32("record count")?;
            let txid = c.u64("txid")?;
            let lac = c.opt("lac")?;
            let recovery = match c.u8("recovery flag")? {
                0 => false,
                1 => true,
                f => return Err(malformed(format!("add: bad recovery flag {f}"))),
            };
            let len = c.u32("payload length")?;
            if c.buf.remaining() != len as usize {
                return Err(malformed(format!(
                    "add: payload length {len} but {} bytes follow",
                    c.buf.remaining()
                )));
            }
            let payload = c.take(len as usize, "payload")?;
            Request::Add(AddRequest {
                ledger_id,
                row: IndexRow {
                    entry_id,
                    first_seq,
                    record_count,
                    txid,
                    len,
                },
                prev_entry_id,
                lac,
                recovery,
                payload: if payload.is_empty() {
                    Vec::new()
                } else {
                    vec![payload]
                },
            })
        }
        OpCode::Read => Request::Read {
            ledger: c.u64("ledger")?,
            first: c.u64("first")?,
            last: c.u64("last")?,
            max_bytes: c.u32("max bytes")?,
        },
        OpCode::EntryForSeq => Request::EntryForSeq {
            ledger: c.u64("ledger")?,
            seq: c.u64("seq")?,
        },
        OpCode::EntryForTxid => Request::EntryForTxid {
            ledger: c.u64("ledger")?,
            txid: c.u64("txid")?,
        },
        OpCode::LastEntry => Request::LastEntry {
            ledger: c.u64("ledger")?,
        },
        OpCode::Fence => Request::Fence {
            ledger: c.u64("ledger")?,
        },
        OpCode::Delete => Request::Delete {
            ledger: c.u64("ledger")?,
        },
        OpCode::ReadLac => Request::ReadLac {
            ledger: c.u64("ledger")?,
            known: c.opt("known lac")?,
            wait_ms: c.u32("wait")?,
        },
        OpCode::LedgerInfo => Request::LedgerInfo {
            ledger: c.u64("ledger")?,
        },
    };
    c.end(op.name())?;
    Ok((id, req))
}
