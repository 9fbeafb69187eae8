//! The namespace: this node's set of log streams, the broker's entry point.
//!
//! CONTRACT: the broker builds against these signatures.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use distlog_metadata::{BrokerId, MetadataStore, StreamId};
use tokio::sync::watch;

use crate::dlsn::Dlsn;
use crate::error::Result;
use crate::ledger::BookieClient;

/// Writes the assigned sequence ids into a payload before it is stored.
/// Storage is format-agnostic; the broker supplies a function that rewrites
/// every Kafka batch's `baseOffset` (from `base_seq`, consecutively) and
/// `partitionLeaderEpoch` (the stream's owner epoch).
pub type StampFn = Arc<dyn Fn(&mut BytesMut, u64, u64) + Send + Sync>;

/// Node-wide settings of the namespace.
#[derive(Clone)]
pub struct NamespaceConfig {
    /// This broker's id (stream owner id).
    pub broker_id: BrokerId,
    /// Payload stamping hook (see [`StampFn`]).
    pub stamp: StampFn,
    /// Bytes of recent entries each stream keeps in its tail cache.
    pub tail_cache_bytes: usize,
    /// Defaults for streams whose topic sets no override.
    pub defaults: StreamConfig,
}

/// Per-stream settings (from topic configs, with node defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Roll the segment once it holds this many bytes (`segment.bytes`).
    pub segment_bytes: u64,
    /// Roll the segment once it is this old (`segment.ms`).
    pub segment_ms: u64,
    /// Largest entry the writer builds from batched appends.
    pub max_entry_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            segment_bytes: 128 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            max_entry_bytes: 4 * 1024 * 1024,
        }
    }
}

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
    /// Address of the first record.
    pub dlsn: Dlsn,
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

/// This node's log streams.
pub struct Namespace {
    _private: (),
}

impl Namespace {
    /// Open the namespace over a metadata store and the bookies reachable
    /// through `bookie`. Streams open lazily on first use (ownership is
    /// acquired and an in-progress segment of a previous owner is recovered
    /// then).
    pub async fn open(
        meta: Arc<MetadataStore>,
        bookie: Arc<dyn BookieClient>,
        config: NamespaceConfig,
    ) -> Result<Arc<Namespace>> {
        let _ = (meta, bookie, config);
        unimplemented!("namespace contract")
    }

    /// Append records; resolves once the entry holding them is durable on
    /// the ack quorum (and therefore visible below the high watermark).
    pub async fn append(&self, stream: StreamId, req: AppendRequest) -> Result<AppendResult> {
        let _ = (stream, req);
        unimplemented!("namespace contract")
    }

    /// Read committed entries starting at the one holding `offset`, up to
    /// about `max_bytes` (the first entry is returned whole even if larger).
    /// `offset == high watermark` returns no entries; outside
    /// `[log_start_offset, high_watermark]` fails with OffsetOutOfRange.
    pub async fn read(&self, stream: StreamId, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let _ = (stream, offset, max_bytes);
        unimplemented!("namespace contract")
    }

    /// A receiver of the stream's high watermark, for long polls.
    pub async fn watch_high_watermark(&self, stream: StreamId) -> Result<watch::Receiver<u64>> {
        let _ = stream;
        unimplemented!("namespace contract")
    }

    /// (log start offset, high watermark) of the stream.
    pub async fn bounds(&self, stream: StreamId) -> Result<(u64, u64)> {
        let _ = stream;
        unimplemented!("namespace contract")
    }

    /// The first entry with txid `>= txid`, if any committed entry has one.
    pub async fn find_by_txid(&self, stream: StreamId, txid: u64) -> Result<Option<TxidLookup>> {
        let _ = (stream, txid);
        unimplemented!("namespace contract")
    }

    /// offset → (DLSN, txid) for the admin API.
    pub async fn locate(&self, stream: StreamId, offset: u64) -> Result<(Dlsn, u64)> {
        let _ = (stream, offset);
        unimplemented!("namespace contract")
    }

    /// The owner epoch of a stream this node writes (Kafka leader epoch);
    /// opens the stream if needed.
    pub async fn owner_epoch(&self, stream: StreamId) -> Result<u64> {
        let _ = stream;
        unimplemented!("namespace contract")
    }

    /// Number of streams currently open on this node.
    pub fn open_streams(&self) -> usize {
        unimplemented!("namespace contract")
    }

    /// Flush every writer and close its segment (clean shutdown).
    pub async fn shutdown(&self) -> Result<()> {
        unimplemented!("namespace contract")
    }
}
