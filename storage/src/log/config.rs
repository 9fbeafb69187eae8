//! Settings of the log layer, in DistributedLog terms: per stream
//! ([`StreamConfig`], given by a [`StreamConfigFn`] when the stream opens
//! and whenever its topic's settings change)
//! and per node ([`NamespaceConfig`], [`Ownership`], [`StampFn`]).
//!
//! Storage never parses configuration: whoever embeds the namespace (the
//! broker) owns the names, defaults and validation of its settings and
//! hands each stream a typed [`StreamConfig`]. Kept apart from the modules
//! that use them so that every log module reads its settings without
//! importing the namespace (the log modules form a DAG).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use distlog_metadata::{NodeId, TopicMeta};

use super::stream_state::StreamStateFn;

/// Per-stream settings: when the writer rolls a segment, how each new
/// segment is replicated, and how long data is kept.
///
/// A plain typed value: every field is already valid (the embedder checked
/// it), so storage uses it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Roll the in-progress segment once it holds this many bytes.
    pub max_segment_bytes: u64,
    /// Roll the in-progress segment once it is this old (and not empty).
    pub segment_rolling_interval: Duration,
    /// Largest entry the writer builds from batched appends.
    pub max_entry_bytes: usize,
    /// Bookies per new segment (the ensemble size, E).
    pub ensemble_size: u8,
    /// Copies written of each entry (the write quorum, Qw ≤ E).
    pub write_quorum: u8,
    /// Copies durable before an entry is acknowledged (the ack quorum,
    /// 1 ≤ Qa ≤ Qw).
    pub ack_quorum: u8,
    /// How long and how much data the stream keeps. Stored for the
    /// retention task; nothing truncates streams by it yet.
    pub retention: Retention,
}

/// Retention limits of a stream; `None` is unlimited (the default: data is
/// kept forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Segments whose records are all older than this may be deleted.
    pub period: Option<Duration>,
    /// Oldest segments may be deleted while the stream holds more bytes.
    pub max_bytes: Option<u64>,
}

impl Default for StreamConfig {
    /// 128 MiB or 7-day segments of 4 MiB entries, one copy on one bookie,
    /// kept forever (an embedder opts into retention).
    fn default() -> Self {
        StreamConfig {
            max_segment_bytes: 128 * 1024 * 1024,
            segment_rolling_interval: Duration::from_secs(7 * 24 * 3600),
            max_entry_bytes: 4 * 1024 * 1024,
            ensemble_size: 1,
            write_quorum: 1,
            ack_quorum: 1,
            retention: Retention::default(),
        }
    }
}

/// Gives the settings of a topic's streams. The namespace calls it each
/// time it opens a stream, and again for each open stream of a topic when
/// a `TopicConfigsChanged` or `BrokerConfigsChanged` metadata event
/// arrives (the writer takes the new settings for its next decision,
/// without reopening the stream). It may be called under a metadata read
/// (use `MetadataStore::read_nested` to read metadata in it); it must be
/// cheap and must not block.
pub type StreamConfigFn = Arc<dyn Fn(&TopicMeta) -> StreamConfig + Send + Sync>;

impl StreamConfig {
    /// A [`StreamConfigFn`] giving every stream these same settings, for
    /// embedders (and tests) without per-topic settings.
    pub fn for_every_stream(self) -> StreamConfigFn {
        Arc::new(move |_| self.clone())
    }
}

/// Writes the assigned sequence ids into a payload before it is stored.
/// Storage is format-agnostic; the broker supplies a function that rewrites
/// every Kafka batch's `baseOffset` (from `base_seq`, consecutively) and
/// `partitionLeaderEpoch` (the stream's owner epoch).
pub type StampFn = Arc<dyn Fn(&mut BytesMut, u64, u64) + Send + Sync>;

/// Node-wide settings of the namespace.
#[derive(Clone)]
pub struct NamespaceConfig {
    /// This broker's id (stream owner id).
    pub broker_id: NodeId,
    /// Payload stamping hook (see [`StampFn`]).
    pub stamp: StampFn,
    /// Bytes of recent entries each stream keeps in its tail cache.
    pub tail_cache_bytes: usize,
    /// The settings of each stream, asked for when the stream opens.
    pub stream_config: StreamConfigFn,
    /// A ledger read unanswered after this long is also sent to the next
    /// replica (`None`: only on error).
    pub speculative_read_delay: Option<std::time::Duration>,
    /// Who decides which streams this node writes.
    pub ownership: Ownership,
    /// The state each stream keeps in step with its writer (`None`: no
    /// state, no snapshots, nothing consulted per append).
    pub stream_state: Option<StreamStateFn>,
    /// How long a failed writer or a failed opening holds a stream back
    /// (see [`super::namespace::REOPEN_QUARANTINE`], the value nodes use).
    pub reopen_quarantine: std::time::Duration,
}

/// How a namespace comes to own (write) a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// A single node: opening a stream takes ownership (a new epoch).
    #[default]
    Acquire,
    /// A cluster: the controller assigns owners in metadata; this node opens
    /// exactly the streams assigned to it, at the assigned epoch, and closes
    /// a stream as soon as it is assigned elsewhere. Other streams answer
    /// `NotOwner`.
    Assigned,
}
