//! Answers: encoding on the server (read answers cut to the frame size,
//! errors carried as their `StorageError` variant), strict decoding on the
//! client.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::wire::{finish, put_opt, put_row, put_text, Cursor};
use super::{malformed, Frame, OpCode, Response, LEN_PREFIX, MAX_TEXT, RESPONSE_HEADER, ROW_LEN};
use crate::error::{Result, StorageError};
use crate::ledger::{Entry, LedgerInfo};

/// Error statuses on the wire, one per [`StorageError`] variant a bookie
/// can report (the rest travel as `OTHER` with their message).
mod status {
    pub const OK: u8 = 0;
    pub const IO: u8 = 1;
    pub const FENCED: u8 = 2;
    pub const NO_SUCH_LEDGER: u8 = 3;
    pub const NO_SUCH_ENTRY: u8 = 4;
    pub const OUT_OF_ORDER: u8 = 5;
    pub const CORRUPT: u8 = 6;
    pub const SHUTTING_DOWN: u8 = 7;
    pub const NOT_ENOUGH_BOOKIES: u8 = 8;
    pub const INVALID_APPEND: u8 = 9;
    pub const OTHER: u8 = 10;
}

/// Encode a response to request `id` of type `op`. Read answers are cut
/// to the entries that fit in `max_frame` (at least one; a single entry
/// too large for a frame becomes an error answer).
pub fn encode_response(id: u64, op: OpCode, result: &Result<Response>, max_frame: usize) -> Frame {
    match result {
        Ok(resp) => match encode_ok(id, op, resp, max_frame) {
            Ok(frame) => frame,
            Err(e) => encode_error(id, op, &e),
        },
        Err(e) => encode_error(id, op, e),
    }
}

fn head(id: u64, op: OpCode, status: u8, extra: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(LEN_PREFIX + RESPONSE_HEADER + extra);
    b.put_u32(0);
    b.put_u8(op as u8);
    b.put_u8(status);
    b.put_u64(id);
    b
}

fn encode_ok(id: u64, op: OpCode, resp: &Response, max_frame: usize) -> Result<Frame> {
    let shape_matches = matches!(
        (op, resp),
        (OpCode::Add, Response::Added)
            | (OpCode::Read, Response::Entries(_))
            | (
                OpCode::EntryForSeq | OpCode::EntryForTxid | OpCode::LastEntry | OpCode::Fence,
                Response::Row(_)
            )
            | (OpCode::Delete, Response::Deleted)
            | (OpCode::ReadLac, Response::Lac(_))
            | (OpCode::LedgerInfo, Response::Info(_))
    );
    if !shape_matches {
        return Err(malformed(format!(
            "{} cannot be answered with {resp:?}",
            op.name()
        )));
    }
    match resp {
        Response::Added | Response::Deleted => finish(head(id, op, status::OK, 0), [], max_frame),
        Response::Row(row) => {
            let mut b = head(id, op, status::OK, 1 + ROW_LEN);
            match row {
                Some(r) => {
                    b.put_u8(1);
                    put_row(&mut b, r);
                }
                None => b.put_u8(0),
            }
            finish(b, [], max_frame)
        }
        Response::Lac(lac) => {
            let mut b = head(id, op, status::OK, 9);
            put_opt(&mut b, *lac);
            finish(b, [], max_frame)
        }
        Response::Info(info) => {
            check_info(info)?;
            let mut b = head(id, op, status::OK, INFO_LEN);
            b.put_u8(u8::from(info.exists) | (u8::from(info.fenced) << 1));
            b.put_u64(info.entries);
            put_opt(&mut b, info.last_entry_id);
            b.put_u64(info.bytes);
            put_opt(&mut b, info.lac);
            finish(b, [], max_frame)
        }
        Response::Entries(entries) => {
            // Keep the longest prefix that fits (at least one entry).
            let mut size = RESPONSE_HEADER + 4;
            let mut n = 0;
            for e in entries {
                let next = size + ROW_LEN + e.payload.len();
                if next > max_frame {
                    break;
                }
                size = next;
                n += 1;
            }
            if n == 0 && !entries.is_empty() {
                return Err(malformed(format!(
                    "entry {} of {} bytes does not fit in a {max_frame}-byte frame",
                    entries[0].row.entry_id,
                    entries[0].payload.len()
                )));
            }
            let kept = &entries[..n];
            let mut b = head(id, op, status::OK, 4 + ROW_LEN * n);
            b.put_u32(n as u32);
            for e in kept {
                put_row(&mut b, &e.row);
            }
            finish(b, kept.iter().map(|e| e.payload.clone()), max_frame)
        }
    }
}

/// "No entry" in an error's entry fields (entry ids are below it: adds of
/// entry `u64::MAX` are refused).
const NO_ENTRY: u64 = u64::MAX;

/// Bytes of a LedgerInfo answer's fields.
const INFO_LEN: usize = 1 + 8 + 9 + 8 + 9;

/// A LedgerInfo answer must describe a possible ledger: a last entry
/// (below the reserved `u64::MAX`) exactly when it holds entries, no more
/// entries than ids up to the last (distinct ids; a striped bookie holds
/// fewer), and nothing held or fenced by a ledger that does not exist.
fn check_info(info: &LedgerInfo) -> Result<()> {
    let possible = match info.last_entry_id {
        None => info.entries == 0,
        Some(last) => last != NO_ENTRY && info.entries >= 1 && info.entries - 1 <= last,
    };
    if !possible {
        return Err(malformed(format!(
            "ledger info: {} entries but last entry {:?}",
            info.entries, info.last_entry_id
        )));
    }
    if !info.exists && (info.entries != 0 || info.bytes != 0 || info.fenced) {
        return Err(malformed(
            "ledger info: a missing ledger cannot hold entries, bytes or a fence",
        ));
    }
    Ok(())
}

fn encode_error(id: u64, op: OpCode, e: &StorageError) -> Frame {
    let (code, a, b, c, t1, t2): (u8, u64, u64, u64, String, String) = match e {
        StorageError::Io { path, source } => (status::IO, 0, 0, 0, path.clone(), source.to_string()),
        StorageError::Fenced(l) => (status::FENCED, *l, 0, 0, String::new(), String::new()),
        StorageError::NoSuchLedger(l) => (status::NO_SUCH_LEDGER, *l, 0, 0, String::new(), String::new()),
        StorageError::NoSuchEntry { ledger, entry } => (
            status::NO_SUCH_ENTRY,
            *ledger,
            *entry,
            0,
            String::new(),
            String::new(),
        ),
        StorageError::OutOfOrder { ledger, last, prev } => (
            status::OUT_OF_ORDER,
            *ledger,
            last.unwrap_or(NO_ENTRY),
            prev.unwrap_or(NO_ENTRY),
            String::new(),
            String::new(),
        ),
        StorageError::Corrupt { ledger, entry } => {
            (status::CORRUPT, *ledger, *entry, 0, String::new(), String::new())
        }
        StorageError::ShuttingDown => (status::SHUTTING_DOWN, 0, 0, 0, String::new(), String::new()),
        StorageError::NotEnoughBookies(m) => (status::NOT_ENOUGH_BOOKIES, 0, 0, 0, m.clone(), String::new()),
        StorageError::InvalidAppend(m) => (status::INVALID_APPEND, 0, 0, 0, m.clone(), String::new()),
        other => (status::OTHER, 0, 0, 0, other.to_string(), String::new()),
    };
    let mut buf = head(
        id,
        op,
        code,
        24 + 4 + t1.len().min(MAX_TEXT) + t2.len().min(MAX_TEXT),
    );
    buf.put_u64(a);
    buf.put_u64(b);
    buf.put_u64(c);
    put_text(&mut buf, &t1);
    put_text(&mut buf, &t2);
    let body = buf.len() - LEN_PREFIX;
    // Bounded by 2 * MAX_TEXT + fixed fields, far below any max frame.
    buf[..LEN_PREFIX].copy_from_slice(&(body as u32).to_be_bytes());
    Frame {
        len: buf.len(),
        chunks: vec![buf.freeze()],
    }
}

/// Decode a response body (without its length prefix): the op it answers,
/// the request id, and the outcome. Entry payloads are slices of `body`.
/// The outer `Err` is a protocol violation; the inner one is the error the
/// bookie reported.
pub fn decode_response(body: Bytes) -> Result<(OpCode, u64, Result<Response>)> {
    let mut c = Cursor { buf: body };
    let code = c.u8("op")?;
    let op = OpCode::from_u8(code).ok_or_else(|| malformed(format!("unknown response op code {code}")))?;
    let st = c.u8("status")?;
    let id = c.u64("request id")?;
    if st != status::OK {
        let a = c.u64("error field")?;
        let b = c.u64("error field")?;
        let d = c.u64("error field")?;
        let t1 = c.text("error text")?;
        let t2 = c.text("error text")?;
        c.end("error")?;
        let err = match st {
            status::IO => StorageError::io(t1, io::Error::other(t2)),
            status::FENCED => StorageError::Fenced(a),
            status::NO_SUCH_LEDGER => StorageError::NoSuchLedger(a),
            status::NO_SUCH_ENTRY => StorageError::NoSuchEntry { ledger: a, entry: b },
            status::OUT_OF_ORDER => StorageError::OutOfOrder {
                ledger: a,
                last: (b != NO_ENTRY).then_some(b),
                prev: (d != NO_ENTRY).then_some(d),
            },
            status::CORRUPT => StorageError::Corrupt { ledger: a, entry: b },
            status::SHUTTING_DOWN => StorageError::ShuttingDown,
            status::NOT_ENOUGH_BOOKIES => StorageError::NotEnoughBookies(t1),
            status::INVALID_APPEND => StorageError::InvalidAppend(t1),
            status::OTHER => StorageError::io("remote bookie", io::Error::other(t1)),
            s => return Err(malformed(format!("unknown response status {s}"))),
        };
        return Ok((op, id, Err(err)));
    }
    let resp = match op {
        OpCode::Add => Response::Added,
        OpCode::Delete => Response::Deleted,
        OpCode::EntryForSeq | OpCode::EntryForTxid | OpCode::LastEntry | OpCode::Fence => {
            Response::Row(c.opt_row()?)
        }
        OpCode::ReadLac => Response::Lac(c.opt("lac")?),
        OpCode::LedgerInfo => {
            let flags = c.u8("ledger info flags")?;
            if flags & !0b11 != 0 {
                return Err(malformed(format!("ledger info: unknown flags {flags:#04x}")));
            }
            let info = LedgerInfo {
                exists: flags & 1 != 0,
                fenced: flags & 2 != 0,
                entries: c.u64("entry count")?,
                last_entry_id: c.opt("last entry")?,
                bytes: c.u64("bytes")?,
                lac: c.opt("lac")?,
            };
            check_info(&info)?;
            Response::Info(info)
        }
        OpCode::Read => {
            let count = c.u32("entry count")? as usize;
            // Checked against the bytes present before anything is sized by it.
            let rows_len = count
                .checked_mul(ROW_LEN)
                .ok_or_else(|| malformed("entry count overflows"))?;
            c.need(rows_len, "index rows")?;
            let mut rows = Vec::with_capacity(count);
            let mut total: u64 = 0;
            for _ in 0..count {
                let row = c.row()?;
                total += u64::from(row.len);
                rows.push(row);
            }
            if total != c.buf.remaining() as u64 {
                return Err(malformed(format!(
                    "read: rows announce {total} payload bytes but {} follow",
                    c.buf.remaining()
                )));
            }
            let mut entries = Vec::with_capacity(count);
            for row in rows {
                let payload = c.take(row.len as usize, "payload")?;
                entries.push(Entry { row, payload });
            }
            Response::Entries(entries)
        }
    };
    c.end(op.name())?;
    Ok((op, id, Ok(resp)))
}
