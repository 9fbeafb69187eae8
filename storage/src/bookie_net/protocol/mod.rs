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
//! | Add          | 1 | ledger u64, entry u64, prev opt-u64, first_seq u64, record_count u32, txid u64, lac opt-u64, recovery u8 (0 or 1), len u32, then exactly `len` payload bytes |
//! | Read         | 2 | ledger u64, first u64, last u64, max_bytes u32 |
//! | EntryForSeq  | 3 | ledger u64, seq u64 |
//! | EntryForTxid | 4 | ledger u64, txid u64 |
//! | LastEntry    | 5 | ledger u64 |
//! | Fence        | 6 | ledger u64 |
//! | Delete       | 7 | ledger u64 |
//! | ReadLac      | 8 | ledger u64, known opt-u64, wait_ms u32 |
//! | LedgerInfo   | 9 | ledger u64 |
//!
//! (`opt-u64` = a flag byte, 0 or 1, then a u64 that is 0 when absent.)
//!
//! An add's `prev` is the entry of the ledger the bookie must hold last for
//! the add to be accepted — the previous entry of the bookie's stripe (see
//! [`crate::ledger::ensemble`]; `entry - 1` without striping), absent for
//! the first entry of its stripe. The bookie checks it against its own
//! last entry and answers `OutOfOrder` (status 5) on a mismatch: that is
//! how a bookie that missed entries it should hold is detected, with or
//! without striping. A frame with `entry = u64::MAX` (reserved) or
//! `prev >= entry` is malformed.
//!
//! A successful response (status 0) carries: nothing for Add and Delete;
//! for Read `count u32`, then `count` index rows (entry u64, first_seq u64,
//! record_count u32, txid u64, len u32 — 32 bytes each), then the payloads
//! back to back (their lengths must add up to the rest of the frame); an
//! opt-row (flag byte, then a 32-byte row or nothing) for EntryForSeq,
//! EntryForTxid, LastEntry and Fence; an opt-u64 for ReadLac; for
//! LedgerInfo `flags u8` (bit 0: the ledger exists, bit 1: it is fenced;
//! other bits must be 0), `entries u64`, `last entry opt-u64`, `bytes u64`,
//! `lac opt-u64` — consistent or refused: a last entry is present exactly
//! when `entries > 0`, and then `entries <= last + 1` (a striped bookie
//! holds fewer entries than ids up to its last one; without striping
//! exactly `last + 1`); a ledger that does not exist has no entries, no
//! bytes and is not fenced. A failed response has a non-zero status naming
//! the [`StorageError`] variant and carries `a u64, b u64, c u64, text1,
//! text2` (texts are u16 length + UTF-8) holding that variant's fields;
//! `OutOfOrder` carries the ledger, the bookie's last entry and the add's
//! `prev`, each entry as a u64 with `u64::MAX` for "none" (entry ids are
//! below `u64::MAX`).
//!
//! Decoding is strict: wrong op codes, unknown statuses, bad flags, lengths
//! that disagree with the frame, trailing bytes and oversized frames are
//! all errors (the connection is then closed). Nothing is allocated from a
//! length field before it was checked against the bytes actually received.
//! Payloads are never copied: encoding hands out the caller's `Bytes` as
//! separate chunks for vectored writes, decoding returns slices of the
//! received frame.

mod request;
mod response;
mod wire;

use std::io;

use bytes::Bytes;
use distlog_metadata::LedgerId;

use crate::error::StorageError;
use crate::ledger::{AddRequest, Entry, IndexRow, LedgerInfo};

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};

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
pub(crate) const MAX_TEXT: usize = 1024;

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
    /// What the bookie holds of a ledger (replica reports).
    LedgerInfo = 9,
}

impl OpCode {
    /// Every op, in code order (for metric label tables).
    pub const ALL: [OpCode; 9] = [
        OpCode::Add,
        OpCode::Read,
        OpCode::EntryForSeq,
        OpCode::EntryForTxid,
        OpCode::LastEntry,
        OpCode::Fence,
        OpCode::Delete,
        OpCode::ReadLac,
        OpCode::LedgerInfo,
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
            OpCode::LedgerInfo => "ledger_info",
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
    /// What the bookie holds of the ledger.
    LedgerInfo {
        /// Ledger.
        ledger: LedgerId,
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
            Request::LedgerInfo { .. } => OpCode::LedgerInfo,
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
    /// Answer of LedgerInfo.
    Info(LedgerInfo),
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
