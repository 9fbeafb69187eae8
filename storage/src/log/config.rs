//! Node-wide settings of the log layer: how the namespace is configured
//! and who decides stream ownership. Kept apart from the modules that use
//! them so that every log module can read its settings without importing
//! the namespace (the log modules form a DAG).

use std::sync::Arc;

use bytes::BytesMut;
use distlog_metadata::BrokerId;

use super::namespace::StreamConfig;

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
    /// A ledger read unanswered after this long is also sent to the next
    /// replica (`None`: only on error).
    pub speculative_read_delay: Option<std::time::Duration>,
    /// Who decides which streams this node writes.
    pub ownership: Ownership,
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
