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
//! * **Snapshots in the stream itself.** When the writer opens a segment it
//!   writes the state's snapshot as the segment's first entries, *control
//!   entries*: entries with no records, which take no sequence id and which
//!   readers never return. The snapshot is the state as of the segment's
//!   base offset (a roll waits for every earlier entry to be confirmed).
//!   A state with nothing in it writes no snapshot.
//! * **Rebuilt on open, with a bounded replay.** A new owner, after
//!   recovering the previous owner's in-progress segment, reads the last
//!   segment that has entries: it restores the snapshot found there and
//!   replays every data entry after it ([`StreamState::replay`]). The
//!   replay is bounded by the segment size. Only then does the writer start,
//!   so no append is admitted against a state that misses part of the
//!   stream.
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

    /// The state as bytes, or `None` when there is nothing to keep.
    fn snapshot(&self, now_ms: i64) -> Option<Bytes>;

    /// Periodic housekeeping (expiry), called from the writer's idle tick.
    fn tick(&self, now_ms: i64);

    /// The concrete type, for the embedder's own queries (describing it).
    fn as_any(&self) -> &dyn Any;
}

/// Creates the state of each stream when the stream opens (one per opening).
pub type StreamStateFn = Arc<dyn Fn(StreamId) -> Arc<dyn StreamState> + Send + Sync>;
