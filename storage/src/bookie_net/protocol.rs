//! The bookie wire protocol: frame format, encoding and strict decoding.
//!
//! Every message is one frame: a 4-byte big-endian length `L` followed by
//! `L` bytes of body (`MIN_BODY <= L <= max frame`). All integers are big
//! endian. Requests and responses travel in opposite directions, so the
//! body layout depends on the direction:
//!
//! ```text
//! request  body: op u8 | request id u64 | op fields | payload
//! response body: op u8 | status u8 | request id u64 | op fields or error | payloads
//! ```
//!
//! Request fields by op:
//!
//! | op | code | fields |
//! |----|------|--------|
//! | Add          | 1 | ledger u64, entry u64, first_seq u64, record_count u32, txid u64, lac opt-u64, len u32, then exactly `len` payload bytes |
//! | Read         | 2 | ledger u64, first u64, last u64, max_bytes u32 |
//! | EntryForSeq  | 3 | ledger u64, seq u64 |
//! | EntryForTxid | 4 | ledger u64, txid u64 |
//! | LastEntry    | 5 | ledger u64 |
//! | Fence        | 6 | ledger u64 |
//! | Delete       | 7 | ledger u64 |
//! | ReadLac      | 8 | ledger u64, known opt-u64, wait_ms u32 |
//!
//! (`opt-u64` = a flag byte, 0 or 1, then a u64 that is 0 when absent.)
//!
//! A successful response (status 0) carries: nothing for Add and Delete;
//! for Read `count u32`, then `count` index rows (entry u64, first_seq u64,
//! record_count u32, txid u64, len u32 — 32 bytes each), then the payloads
//! back to back (their lengths must add up to the rest of the frame); an
//! opt-row (flag byte, then a 32-byte row or nothing) for EntryForSeq,
//! EntryForTxid, LastEntry and Fence; an opt-u64 for ReadLac. A failed
//! response has a non-zero status naming the [`StorageError`] variant and
//! carries `a u64, b u64, c u64, text1, text2` (texts are u16 length +
//! UTF-8) holding that variant's fields.
//!
//! Decoding is strict: wrong op codes, unknown statuses, bad flags, lengths
//! that disagree with the frame, trailing bytes and oversized frames are
//! all errors (the connection is then closed). Nothing is allocated from a
//! length field before it was checked against the bytes actually received.
//! Payloads are never copied: encoding hands out the caller's `Bytes` as
//! separate chunks for vectored writes, decoding returns slices of the
//! received frame.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use distlog_metadata::LedgerId;

use crate::error::{Result, StorageError};
use crate::ledger::{AddRequest, Entry, IndexRow};

/// Default (and suggested) largest frame body, 16 MiB: room for the
/// largest entry a log writer makes (4 MiB) several times over.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Smallest valid body: a request header (op + id).
pub const MIN_BODY: usize = 9;

/// Bytes of an index row on the wire.
pub const ROW_LEN: usize = 32;

/// Bytes of a response header (op + status + id).
pub const RESPONSE_HEADER: usize = 10;

/// Longest text carried in an error response (longer ones are cut).
const MAX_TEXT: usize = 1024;

/// Operation codes (the first body byte of every frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// Add one entry (payload follows the fields).
    Add = 1,
    /// Read a range of entries.
    Read = 2,
    /// Entry holding a sequence id.
    EntryForSeq = 3,
    /// First entry with txid >= a value.
    EntryForTxid = 4,
    /// Last entry stored.
    LastEntry = 5,
    /// Fence a ledger.
    Fence = 6,
    /// Delete a ledger.
    Delete = 7,
    /// Long-poll read of the LAC.
    ReadLac = 8,
}

impl OpCode {
    /// Every op, in code order (for metric label tables).
    pub const ALL: [OpCode; 8] = [
        OpCode::Add,
        OpCode::Read,
        OpCode::EntryForSeq,
        OpCode::EntryForTxid,
        OpCode::LastEntry,
        OpCode::Fence,
        OpCode::Delete,
        OpCode::ReadLac,
    ];

    /// Decode an op byte.
    pub fn from_u8(code: u8) -> Option<OpCode> {
        OpCode::ALL.get(usize::from(code).wrapping_sub(1)).copied()
    }

    /// Index into [`OpCode::ALL`].
    pub fn index(self) -> usize {
        self as usize - 1
    }

    /// Metric label / log name.
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Add => "add",
            OpCode::Read => "read",
            OpCode::EntryForSeq => "entry_for_seq",
            OpCode::EntryForTxid => "entry_for_txid",
            OpCode::LastEntry => "last_entry",
            OpCode::Fence => "fence",
            OpCode::Delete => "delete",
            OpCode::ReadLac => "read_lac",
        }
    }
}

/// A decoded request (the server's view; the client encodes from the same
/// type).
#[derive(Debug, Clone)]
pub enum Request {
    /// Add an entry; on the server its payload is one slice of the frame.
    Add(AddRequest),
    /// Read entries `first..=last`, up to `max_bytes` (at least one entry).
    Read {
        /// Ledger.
        ledger: LedgerId,
        /// First entry id.
        first: u64,
        /// Last entry id (inclusive).
        last: u64,
        /// Byte budget of the answer.
        max_bytes: u32,
    },
    /// The entry holding sequence id `seq`.
    EntryForSeq {
        /// Ledger.
        ledger: LedgerId,
        /// Sequence id.
        seq: u64,
    },
    /// The first entry with txid >= `txid`.
    EntryForTxid {
        /// Ledger.
        ledger: LedgerId,
        /// Transaction id.
        txid: u64,
    },
    /// The last entry stored.
    LastEntry {
        /// Ledger.
        ledger: LedgerId,
    },
    /// Fence the ledger.
    Fence {
        /// Ledger.
        ledger: LedgerId,
    },
    /// Delete the ledger.
    Delete {
        /// Ledger.
        ledger: LedgerId,
    },
    /// Long-poll for a LAC above `known`, at most `wait_ms`.
    ReadLac {
        /// Ledger.
        ledger: LedgerId,
        /// LAC the caller already knows.
        known: Option<u64>,
        /// Longest wait in milliseconds.
        wait_ms: u32,
    },
}

impl Request {
    /// The op code of this request.
    pub fn op(&self) -> OpCode {
        match self {
            Request::Add(_) => OpCode::Add,
            Request::Read { .. } => OpCode::Read,
            Request::EntryForSeq { .. } => OpCode::EntryForSeq,
            Request::EntryForTxid { .. } => OpCode::EntryForTxid,
            Request::LastEntry { .. } => OpCode::LastEntry,
            Request::Fence { .. } => OpCode::Fence,
            Request::Delete { .. } => OpCode::Delete,
            Request::ReadLac { .. } => OpCode::ReadLac,
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The add is durable.
    Added,
    /// Entries read (payloads are slices of the received frame).
    Entries(Vec<Entry>),
    /// Answer of EntryForSeq, EntryForTxid, LastEntry and Fence.
    Row(Option<IndexRow>),
    /// The ledger is deleted.
    Deleted,
    /// Answer of ReadLac.
    Lac(Option<u64>),
}

/// A frame ready for a vectored write: the length prefix and fixed fields
/// in the first chunk, payloads as the caller's own `Bytes`.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Chunks in wire order.
    pub chunks: Vec<Bytes>,
    /// Total bytes including the length prefix.
    pub len: usize,
}

/// A protocol violation (undecodable or oversized frame), as a storage
/// error: an I/O error of kind `InvalidData`.
pub fn malformed(what: impl Into<String>) -> StorageError {
    StorageError::io(
        "bookie protocol",
        io::Error::new(io::ErrorKind::InvalidData, what.into()),
    )
}

fn finish(mut head: BytesMut, payload: impl IntoIterator<Item = Bytes>, max_frame: usize) -> Result<Frame> {
    let mut chunks = Vec::with_capacity(2);
    let mut body = head.len() - LEN_PREFIX;
    let mut rest = Vec::new();
    for chunk in payload {
        if !chunk.is_empty() {
            body += chunk.len();
            rest.push(chunk);
        }
    }
    if body > max_frame {
        return Err(malformed(format!(
            "frame of {body} bytes exceeds the maximum of {max_frame}"
        )));
    }
    let prefix = u32::try_from(body).map_err(|_| malformed("frame length overflows u32"))?;
    head[..LEN_PREFIX].copy_from_slice(&prefix.to_be_bytes());
    chunks.push(head.freeze());
    chunks.extend(rest);
    Ok(Frame {
        chunks,
        len: LEN_PREFIX + body,
    })
}

fn put_opt(b: &mut BytesMut, v: Option<u64>) {
    b.put_u8(u8::from(v.is_some()));
    b.put_u64(v.unwrap_or(0));
}

fn put_row(b: &mut BytesMut, r: &IndexRow) {
    b.put_u64(r.entry_id);
    b.put_u64(r.first_seq);
    b.put_u32(r.record_count);
    b.put_u64(r.txid);
    b.put_u32(r.len);
}

fn put_text(b: &mut BytesMut, s: &str) {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.put_u16(end as u16);
    b.put_slice(&s.as_bytes()[..end]);
}

/// Encode a request. An add's payload chunks are passed through untouched;
/// an add whose `row.len` disagrees with its payload, or any frame larger
/// than `max_frame`, is refused here (nothing is sent).
pub fn encode_request(id: u64, req: &Request, max_frame: usize) -> Result<Frame> {
    let mut b = BytesMut::with_capacity(LEN_PREFIX + MIN_BODY + 49);
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
            b.put_u64(add.ledger_id);
            b.put_u64(add.row.entry_id);
            b.put_u64(add.row.first_seq);
            b.put_u32(add.row.record_count);
            b.put_u64(add.row.txid);
            put_opt(&mut b, add.lac);
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
        Request::LastEntry { ledger } | Request::Fence { ledger } | Request::Delete { ledger } => {
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

/// Reads fixed fields off a frame body, failing (never panicking) when
/// bytes run out.
struct Cursor {
    buf: Bytes,
}

impl Cursor {
    fn need(&self, n: usize, what: &str) -> Result<()> {
        if self.buf.remaining() < n {
            return Err(malformed(format!(
                "truncated frame: {what} needs {n} bytes, {} left",
                self.buf.remaining()
            )));
        }
        Ok(())
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        self.need(2, what)?;
        Ok(self.buf.get_u16())
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        self.need(8, what)?;
        Ok(self.buf.get_u64())
    }
    fn opt(&mut self, what: &str) -> Result<Option<u64>> {
        let flag = self.u8(what)?;
        let v = self.u64(what)?;
        match flag {
            0 if v == 0 => Ok(None),
            0 => Err(malformed(format!("{what}: absent value must be 0"))),
            1 => Ok(Some(v)),
            f => Err(malformed(format!("{what}: bad presence flag {f}"))),
        }
    }
    fn row(&mut self) -> Result<IndexRow> {
        self.need(ROW_LEN, "index row")?;
        Ok(IndexRow {
            entry_id: self.buf.get_u64(),
            first_seq: self.buf.get_u64(),
            record_count: self.buf.get_u32(),
            txid: self.buf.get_u64(),
            len: self.buf.get_u32(),
        })
    }
    fn opt_row(&mut self) -> Result<Option<IndexRow>> {
        match self.u8("row flag")? {
            0 => Ok(None),
            1 => self.row().map(Some),
            f => Err(malformed(format!("bad row presence flag {f}"))),
        }
    }
    fn text(&mut self, what: &str) -> Result<String> {
        let n = usize::from(self.u16(what)?);
        self.need(n, what)?;
        let raw = self.buf.split_to(n);
        String::from_utf8(raw.to_vec()).map_err(|_| malformed(format!("{what}: not UTF-8")))
    }
    /// Take exactly `n` more bytes (a slice of the frame, no copy).
    fn take(&mut self, n: usize, what: &str) -> Result<Bytes> {
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }
    fn end(self, what: &str) -> Result<()> {
        if self.buf.has_remaining() {
            return Err(malformed(format!(
                "{what}: {} unexpected trailing bytes",
                self.buf.remaining()
            )));
        }
        Ok(())
    }
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
            let first_seq = c.u64("first seq")?;
            let record_count = c.u32("record count")?;
            let txid = c.u64("txid")?;
            let lac = c.opt("lac")?;
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
                lac,
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
    };
    c.end(op.name())?;
    Ok((id, req))
}

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
        StorageError::OutOfOrder {
            ledger,
            expected,
            got,
        } => (
            status::OUT_OF_ORDER,
            *ledger,
            *expected,
            *got,
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
                expected: b,
                got: d,
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
