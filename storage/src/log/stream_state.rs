//! Stream state: per-stream state that the embedder derives from the
//! stream's own entries and that the writer consults, in stream order,
//! before it gives an append sequence ids.
//!
//! Storage knows nothing of what the state means (for the broker it is
//! Kafka's idempotent-producer state: producer ids, epochs, the last
//! batches' sequence numbers). What storage guarantees is *when* it is
//! consulted and *how it survives*:
//!
//! * **In step with the writer.** [`StreamState::admit`] is called by the
//!   stream's single writer for every append, in the order the appends get
//!   sequence ids, with the base sequence id the append would get. The
//!   state answers: write it, it is a duplicate of an append already in
//!   the stream (the writer answers it with the original's position, once
//!   that is committed, and writes nothing), or refuse it.
//! * **Snapshots in the stream itself.** The writer writes the state's
//!   snapshot as *control entries* (entries with no records, which take no
//!   sequence id and which readers never return): first in every segment,
//!   and again whenever [`snapshot_due`] says so. A snapshot is the state as
//!   of its position: every entry before it in the ledger was admitted
//!   before it was taken, and recovery keeps a prefix of the ledger, so a
//!   surviving snapshot never refers to a lost entry.
//! * **Rebuilt on open, with a bounded replay.** A new owner, after
//!   recovering the previous owner's in-progress segment, finds the last
//!   snapshot of the last segment that has entries, restores it and replays
//!   every data entry after it ([`StreamState::replay`]; see
//!   `state_rebuild`). The replay is bounded by [`snapshot_due`]'s
//!   interval. Only then does the writer start, so no append is admitted
//!   against a state that misses part of the stream.
//!
//! A stream's state object lives as long as one opening of the stream (one
//! writer); a writer that fails takes its state with it, and the next
//! opening rebuilds it from what is durable, which is exactly what a
//! failed-but-recovered entry needs: it is in the stream, so it is in the
//! rebuilt state.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;
use distlog_metadata::StreamId;

/// An embedder's error, carried opaquely through storage to the caller
/// that submitted the append (the broker maps it to a Kafka error code).
pub type StateError = Arc<dyn std::error::Error + Send + Sync>;

/// What the state says about one append (see [`StreamState::admit`]).
#[derive(Debug, Clone)]
pub enum Admission {
    /// Write it at the proposed base sequence id; the state has recorded it
    /// there.
    Write,
    /// Already in the stream: answer with `base_offset` once the stream is
    /// committed up to `next_offset` (the sequence id after the original),
    /// and write nothing.
    Duplicate {
        /// Sequence id of the original's first record.
        base_offset: u64,
        /// Sequence id after the original's last record.
        next_offset: u64,
    },
    /// Refuse it with the embedder's error; nothing is written.
    Refuse(StateError),
}

/// Per-stream state kept in step with the writer (see the module docs).
/// Methods take `&self`: the writer and readers of the state (an admin
/// call describing it) share it, and the implementation locks inside.
pub trait StreamState: Send + Sync + 'static {
    /// Decide on an append about to get sequence ids `base..base+count`.
    /// Called by the writer, in sequence-id order; an append admitted with
    /// [`Admission::Write`] is recorded at `base` before the call returns.
    fn admit(&self, payload: &[u8], base: u64, record_count: u32, now_ms: i64) -> Admission;

    /// Fold in a data entry of the stream, read back while the stream is
    /// opened (entries after the last snapshot, in order).
    fn replay(&self, payload: &[u8], first_seq: u64);

    /// Replace the whole state with a snapshot written by [`Self::snapshot`].
    /// An undecodable snapshot is an error: the stream does not open
    /// rather than admit appends against a wrong state.
    fn restore(&self, snapshot: &[u8]) -> Result<(), StateError>;

    /// The state as bytes (also when empty: a snapshot marks where a
    /// rebuild may start).
    fn snapshot(&self, now_ms: i64) -> Bytes;

    /// Periodic housekeeping (expiry), called from the writer's idle tick.
    fn tick(&self, now_ms: i64);

    /// The stream's log start offset moved to `log_start_offset`
    /// (retention, DeleteRecords): state about records wholly below it may
    /// be dropped. Called on the owner after the truncation is applied.
    fn truncated(&self, _log_start_offset: u64) {}

    /// The concrete type, for the embedder's own queries (describing it).
    fn as_any(&self) -> &dyn Any;
}

/// Data bytes after which the writer writes a new snapshot, at least.
pub const SNAPSHOT_INTERVAL_BYTES: u64 = 32 << 20;

/// Whether the writer should write a snapshot now: `since` data bytes were
/// written after the last one, which was `last_len` bytes long. At least
/// [`SNAPSHOT_INTERVAL_BYTES`] apart, and at least 32 times the snapshot's
/// own size apart, so snapshots never cost more than about 3% of the bytes
/// written, while the replay after the last one stays bounded.
pub fn snapshot_due(since: u64, last_len: u64) -> bool {
    since >= SNAPSHOT_INTERVAL_BYTES.max(last_len.saturating_mul(32))
}

/// Creates the state of each stream when the stream opens (one per opening).
pub type StreamStateFn = Arc<dyn Fn(StreamId) -> Arc<dyn StreamState> + Send + Sync>;
