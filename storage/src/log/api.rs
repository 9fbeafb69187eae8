//! The public value types of the log API: what callers hand to a stream
//! (appends) and what they get back (append results, read entries, txid
//! lookups). They live apart from the namespace so that the writer and
//! reader, which produce them, need not import the namespace that drives
//! them (the log modules form a DAG).

use bytes::{Bytes, BytesMut};
use distlog_metadata::StreamId;
use tokio::sync::oneshot;

use crate::dlsn::Dlsn;
use crate::error::{Result, StorageError};

/// Records to append to one stream (for Kafka: one or more v2 batches).
pub struct AppendRequest {
    /// The payload; the stamp hook rewrites sequence fields in place.
    pub payload: BytesMut,
    /// Number of records in the payload (sequence ids consumed).
    pub record_count: u32,
    /// Largest record timestamp in the payload (ms); feeds the txid.
    pub max_timestamp: i64,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Sequence id (offset) of the first appended record.
    pub base_offset: u64,
    /// Address of the first record; `None` for a duplicate answered from
    /// the stream's state (the original's position, found without a read).
    pub dlsn: Option<Dlsn>,
    /// The stream's log start offset at the time of the append.
    pub log_start_offset: u64,
}

/// One entry returned by a read.
#[derive(Debug, Clone)]
pub struct ReadEntry {
    /// Sequence id of the entry's first record.
    pub first_seq: u64,
    /// Number of records in the entry.
    pub record_count: u32,
    /// The entry's txid.
    pub txid: u64,
    /// The stored payload, byte-for-byte.
    pub payload: Bytes,
}

/// Result of a read: whole entries starting with the one that holds the
/// requested offset, plus the stream's bounds at read time.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Entries, in order; empty when the offset equals the high watermark.
    pub entries: Vec<ReadEntry>,
    /// Offset after the last committed record (Kafka high watermark).
    pub high_watermark: u64,
    /// First readable offset.
    pub log_start_offset: u64,
}

/// Result of a txid (timestamp) lookup.
#[derive(Debug, Clone)]
pub struct TxidLookup {
    /// The first entry whose txid is `>=` the requested one; the first
    /// record with timestamp `>=` T lies inside it.
    pub entry: ReadEntry,
    /// The entry's DLSN (slot 0).
    pub dlsn: Dlsn,
}

/// A queued append; [`AppendTicket::wait`] resolves once it is durable.
pub struct AppendTicket {
    stream: StreamId,
    rx: oneshot::Receiver<Result<AppendResult>>,
}

impl AppendTicket {
    /// The ticket of an append queued to `stream`'s writer, which answers
    /// on `rx`; a writer that drops the reply (it stopped) reads as
    /// `NotOwner`, so the client refreshes metadata.
    pub(crate) fn new(stream: StreamId, rx: oneshot::Receiver<Result<AppendResult>>) -> Self {
        AppendTicket { stream, rx }
    }

    /// Wait until the append is durable on the ack quorum (or failed).
    pub async fn wait(self) -> Result<AppendResult> {
        self.rx.await.map_err(|_| StorageError::NotOwner(self.stream))?
    }
}
