//! The shared context of the log layer: what every stream of a namespace
//! shares ([`NsCtx`]), what one open stream's writer task and its readers
//! share ([`StreamShared`], [`LogStream`]), and the writer's mailbox
//! ([`WriterOp`]). The namespace, the stream opener, the writer, the
//! reader, the replica report and ledger release all build on it, and it
//! imports none of them (the log modules form a DAG).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use distlog_metadata::{MetadataStore, StreamId};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

use super::api::{AppendRequest, AppendResult};
use super::bookies::BookieSet;
use super::config::{NamespaceConfig, StreamConfig};
use super::segment::SegmentView;
use super::stream_state::StreamState;
use super::tail_cache::TailCache;
use crate::error::{Result, StorageError};

/// Context shared by every stream of a namespace.
pub(crate) struct NsCtx {
    pub meta: Arc<MetadataStore>,
    pub bookies: BookieSet,
    pub config: NamespaceConfig,
    /// Set once the namespace shuts down: every later call, by id or
    /// through a stream handle, fails with `ShuttingDown`.
    pub shutting_down: AtomicBool,
}

impl NsCtx {
    /// Whether the namespace is shutting down (see `shutting_down`).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// The error a call on stream `id` gets once the incarnation it was
    /// resolved to has ended (writer failed, or stream closed because it
    /// was deleted, assigned elsewhere or the node shuts down): the error a
    /// fresh lookup of `id` gives when it cannot be served — `ShuttingDown`,
    /// `NoSuchStream` for a deleted stream — and otherwise `NotOwner`, so
    /// that the client refreshes metadata and comes back to the current
    /// incarnation (whose epoch may differ from the one it was checked
    /// against).
    pub fn ended_error(&self, id: StreamId) -> StorageError {
        if self.is_shutting_down() {
            return StorageError::ShuttingDown;
        }
        let exists = self
            .meta
            .read(|s| s.stream(&id).is_some() && s.topic_by_id(&id.topic_id).is_some());
        if exists {
            StorageError::NotOwner(id)
        } else {
            StorageError::NoSuchStream(id)
        }
    }
}

/// What readers see of a stream: its segments (committed prefix), bounds.
#[derive(Debug, Clone)]
pub(crate) struct StreamView {
    pub segments: Vec<SegmentView>,
    pub log_start_offset: u64,
    pub high_watermark: u64,
}

/// State shared between a stream's writer task and its readers.
pub(crate) struct StreamShared {
    pub id: StreamId,
    pub epoch: u64,
    pub view: RwLock<StreamView>,
    pub hw_tx: watch::Sender<u64>,
    pub cache: Mutex<TailCache>,
    /// Set when the writer died (fenced, disk error) or the stream was
    /// closed: the namespace reopens the stream on next use, and handles
    /// to this incarnation answer [`NsCtx::ended_error`].
    pub failed: AtomicBool,
    /// When `failed` was set (see [`super::namespace`]'s reopen quarantine).
    pub failed_at: Mutex<Option<std::time::Instant>>,
    /// The embedder's state of this opening of the stream, rebuilt before
    /// the writer started (see [`super::stream_state`]).
    pub state: Option<Arc<dyn StreamState>>,
    /// (LSSN, payload bytes written so far) of the segment the writer is
    /// writing: the size of an in-progress segment, which metadata records
    /// only once it is sealed. Keyed by LSSN so that a reader combining it
    /// with metadata counts a just-sealed segment once.
    pub open_segment: Mutex<Option<(u64, u64)>>,
    /// The stream's current settings: the writer takes a new value before
    /// its next decision (roll by size or age, the next segment's
    /// ensemble and quorums), so a changed topic config applies without
    /// reopening the stream.
    pub config: watch::Sender<StreamConfig>,
}

impl StreamShared {
    /// Whether this incarnation has ended (see `failed`).
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// End this incarnation (writer failed or stream closing) and wake
    /// every high-watermark watcher, so that a long poll holding a handle
    /// (which keeps the watch's sender alive) looks again and gets the
    /// ended error instead of sleeping until its deadline.
    pub fn mark_failed(&self) {
        self.failed_at.lock().get_or_insert_with(std::time::Instant::now);
        self.failed.store(true, Ordering::Release);
        self.hw_tx.send_modify(|_| {});
    }
}

impl StreamShared {
    /// Hand the writer new settings; false when they are the current ones.
    pub fn set_config(&self, cfg: StreamConfig) -> bool {
        self.config.send_if_modified(|cur| {
            let changed = *cur != cfg;
            if changed {
                *cur = cfg;
            }
            changed
        })
    }
}

/// An open stream: shared state plus the channel to its writer task.
pub(crate) struct LogStream {
    pub shared: Arc<StreamShared>,
    pub ops: mpsc::Sender<WriterOp>,
}

/// Where a writer answers one append.
pub(crate) type Reply = oneshot::Sender<Result<AppendResult>>;

/// A request to a stream's writer task.
pub(crate) enum WriterOp {
    /// Append records; the reply carries where they landed.
    Append { req: AppendRequest, reply: Reply },
    /// Finish in-flight entries, seal the segment, stop.
    Close { done: oneshot::Sender<()> },
}
