//! The namespace: this node's set of log streams, the broker's entry point.
//!
//! Streams open lazily on first use, and eagerly in the background at
//! startup and when a topic is created or grows partitions, so that ownership epochs are
//! settled before clients arrive. A stream whose writer failed is reopened
//! (with ledger recovery) on next use.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::{MetaEvent, MetadataStore, NodeId, StreamId};
use parking_lot::Mutex;
use tokio::sync::{broadcast, oneshot, watch, OnceCell};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::api::{AppendRequest, AppendResult, AppendTicket, ReadResult, TxidLookup};
use super::bookies::BookieSet;
use super::config::{NamespaceConfig, Ownership};
use super::context::{LogStream, NsCtx, WriterOp};
use super::handle::StreamHandle;
use super::release::{self, Reason};
use super::retention;
use super::stream;
use crate::dlsn::Dlsn;
use crate::error::{Result, StorageError};
use crate::ledger::BookieClient;

/// A stream's place in the namespace: filled once the stream is open (the
/// cell is shared so that concurrent first uses open the stream once).
type StreamCell = Arc<OnceCell<Arc<LogStream>>>;

/// This node's log streams: the broker's entry point to the DL core.
pub struct Namespace {
    ctx: Arc<NsCtx>,
    streams: Mutex<HashMap<StreamId, StreamCell>>,
    /// Streams whose writer or opening failed lately, with when and why
    /// (see [`REOPEN_QUARANTINE`]).
    failures: Mutex<HashMap<StreamId, Failure>>,
    /// `failures.len()`, read without the lock: every append asks whether
    /// its stream is held back, and almost always none is.
    failure_count: AtomicUsize,
}

/// A recent failure of a stream, held for [`REOPEN_QUARANTINE`].
struct Failure {
    at: std::time::Instant,
    error: StorageError,
    /// A failed writer holds back every use; a failed opening only appends
    /// (reads and offset lookups retry at once: they leave no hole).
    writer: bool,
}

impl Failure {
    /// Whether this failure still holds back a use of the stream.
    fn holds(&self, append: bool, quarantine: Duration) -> bool {
        (self.writer || append) && self.at.elapsed() < quarantine
    }
}

/// How long a stream whose writer failed stays failed before the next use
/// may open it again, and how long after a failed *opening* appends are
/// still refused. (Reads are not held after a failed opening: they retry
/// at once, so a stream recovering after a restart serves as soon as its
/// bookies answer. An append that waited on the failed opening, or came
/// just after it, is refused even if another use opened the stream since.)
///
/// A client pipelines appends: when the first fails, the next ones are
/// already on their way. Reopening at once lets them be written, so the
/// log gets a hole where the failed one was: an idempotent producer's next
/// batch is then out of sequence (librdkafka answers that by bumping its
/// epoch and renumbering every unacknowledged message, on every partition,
/// possibly-written ones included: the campaign found duplicates that way),
/// and a plain producer's records land out of order. Failing the
/// stragglers as well (retriably, unwritten) keeps the client's retries in
/// order: it resends the failed append first.
pub const REOPEN_QUARANTINE: Duration = Duration::from_millis(250);

/// How many times one ownership event rechecks a stream whose assignment
/// moved while it was being opened; a later event handles later moves.
const MAX_REASSIGNMENT_ROUNDS: usize = 3;

impl Namespace {
    /// Open the namespace of a node that runs a bookie: `bookie` is this
    /// node's own, reached in-process (E = 1 ledgers go there); every other
    /// registered bookie is reached over the network. Streams this node
    /// owned (or that nobody owns) are opened in the background; others
    /// open on first use. Topic deletions and truncations close their
    /// streams and delete their ledgers (see [`super::release`]).
    pub async fn open(
        meta: Arc<MetadataStore>,
        bookie: Arc<dyn BookieClient>,
        config: NamespaceConfig,
    ) -> Result<Arc<Namespace>> {
        Self::open_with(meta, Some(bookie), config).await
    }

    /// Open the namespace of a node without a bookie of its own (a broker
    /// of the split topology, whose storage tier runs elsewhere): every
    /// ledger, E = 1 included, is placed on live registered bookies and
    /// every bookie is reached over the network. Otherwise as
    /// [`Namespace::open`].
    pub async fn open_without_bookie(
        meta: Arc<MetadataStore>,
        config: NamespaceConfig,
    ) -> Result<Arc<Namespace>> {
        Self::open_with(meta, None, config).await
    }

    async fn open_with(
        meta: Arc<MetadataStore>,
        bookie: Option<Arc<dyn BookieClient>>,
        config: NamespaceConfig,
    ) -> Result<Arc<Namespace>> {
        let events = meta.subscribe();
        let ns = Arc::new(Namespace {
            ctx: Arc::new(NsCtx {
                bookies: BookieSet::new(bookie, meta.clone()),
                meta,
                config,
                shutting_down: AtomicBool::new(false),
            }),
            streams: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            failure_count: AtomicUsize::new(0),
        });
        tokio::spawn(Self::follow_events(Arc::downgrade(&ns), events));
        let me = ns.ctx.config.broker_id;
        let assigned = ns.ctx.config.ownership == Ownership::Assigned;
        let mine: Vec<StreamId> = ns.ctx.meta.read(|s| {
            s.streams
                .values()
                .filter(|st| st.owner == Some(me) || (!assigned && st.owner.is_none()))
                .map(|st| st.id)
                .collect()
        });
        let weak = Arc::downgrade(&ns);
        tokio::spawn(async move {
            let n = mine.len();
            for id in mine {
                let Some(ns) = weak.upgrade() else { return };
                if let Err(e) = ns.stream(id).await {
                    warn!(stream = %id, error = %e, "could not open stream at startup; will retry on first use");
                }
            }
            info!(streams = n, "startup stream recovery done");
        });
        Ok(ns)
    }

    /// React to metadata changes (the log layer's watches).
    async fn follow_events(ns: std::sync::Weak<Namespace>, mut events: broadcast::Receiver<MetaEvent>) {
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "metadata events lagged");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(ns) = ns.upgrade() else { return };
            if ns.ctx.is_shutting_down() {
                return;
            }
            match ev {
                MetaEvent::StreamOwnerChanged { stream, owner, .. }
                    if ns.ctx.config.ownership == Ownership::Assigned =>
                {
                    let ns2 = ns.clone();
                    tokio::spawn(async move { ns2.ownership_changed(stream, owner).await });
                }
                MetaEvent::TopicCreated { .. } if ns.ctx.config.ownership == Ownership::Assigned => {
                    // The controller assigns the new streams; their owner
                    // opens them on the StreamOwnerChanged event.
                }
                MetaEvent::PartitionsCreated { .. } if ns.ctx.config.ownership == Ownership::Assigned => {
                    // As for a new topic: the controller assigns the new
                    // streams and their owner opens them.
                }
                MetaEvent::TopicCreated { .. } | MetaEvent::PartitionsCreated { .. } => {
                    let (id, parts) = match ev {
                        MetaEvent::PartitionsCreated { id, from, to, .. } => (id, from..to),
                        MetaEvent::TopicCreated { name, id } => (
                            id,
                            0..ns.ctx.meta.read(|s| s.topic(&name).map_or(0, |t| t.partitions)),
                        ),
                        _ => continue,
                    };
                    let ns2 = ns.clone();
                    tokio::spawn(async move {
                        for p in parts {
                            let sid = StreamId {
                                topic_id: id,
                                partition: p,
                            };
                            if let Err(e) = ns2.stream(sid).await {
                                debug!(stream = %sid, error = %e, "eager open of new stream failed");
                            }
                        }
                    });
                }
                MetaEvent::TopicDeleted { name, id, ledgers } => {
                    let ns2 = ns.clone();
                    tokio::spawn(async move {
                        ns2.drop_topic(id).await;
                        let copies = release::delete_released(&ns2.ctx, &ledgers, Reason::TopicDeleted).await;
                        info!(topic = %name, ledgers = ledgers.len(), copies_deleted_here = copies, "deleted topic's streams and ledgers");
                    });
                }
                MetaEvent::TopicConfigsChanged { name } => {
                    if let Some(id) = ns.ctx.meta.read(|s| s.topic(&name).map(|t| t.id)) {
                        let ns2 = ns.clone();
                        tokio::spawn(async move { ns2.reconfigure(Some(id)).await });
                    }
                }
                MetaEvent::BrokerConfigsChanged { .. } => {
                    let ns2 = ns.clone();
                    tokio::spawn(async move { ns2.reconfigure(None).await });
                }
                MetaEvent::StreamTruncated {
                    stream,
                    ledgers,
                    log_start_offset,
                } => {
                    // Whoever truncated (this node's retention or
                    // DeleteRecords, or an earlier owner's), an incarnation
                    // open here stops serving below the new start.
                    if let Some(open) = ns.streams.lock().get(&stream).and_then(|c| c.get().cloned()) {
                        retention::apply_to_view(&open.shared, log_start_offset);
                    }
                    if ledgers.is_empty() {
                        continue;
                    }
                    let ns2 = ns.clone();
                    tokio::spawn(async move {
                        let copies = release::delete_released(&ns2.ctx, &ledgers, Reason::Truncated).await;
                        debug!(%stream, ledgers = ledgers.len(), copies_deleted_here = copies, "deleted truncated segments' ledgers");
                    });
                }
                _ => {}
            }
        }
    }

    /// A stream was assigned (Assigned mode): open it when it is now ours,
    /// replacing an incarnation of an older epoch; close it when it went
    /// elsewhere (its writer can no longer seal or add: the epoch moved and
    /// the new owner fences its ledger).
    ///
    /// The assignment is read from metadata now, not taken from the event:
    /// these tasks run concurrently and a later assignment may already have
    /// applied. An opening under way is waited for and checked like an open
    /// incarnation, since it may have read the assignment before this one
    /// (the campaign's seed 2108: an incarnation opened at the previous
    /// epoch was kept, and readers of the new epoch were refused by it).
    async fn ownership_changed(&self, stream: StreamId, _event_owner: NodeId) {
        let me = self.ctx.config.broker_id;
        for _ in 0..MAX_REASSIGNMENT_ROUNDS {
            let cell = self.streams.lock().get(&stream).cloned();
            let current = match cell {
                Some(cell) => match cell.get() {
                    Some(s) => Some(s.clone()),
                    // Waits for an opening under way; fails at once otherwise.
                    None => cell
                        .get_or_try_init(|| async { Err(StorageError::NotOwner(stream)) })
                        .await
                        .ok()
                        .cloned(),
                },
                None => None,
            };
            let (owner, epoch) = self.assignment(stream);
            if let Some(s) = current {
                if owner != Some(me) || s.shared.epoch != epoch {
                    self.forget(stream, &s);
                    close_stream(&s).await;
                    info!(%stream, new_owner = ?owner.map(|o| o.get()), epoch, closed_epoch = s.shared.epoch,
                        "stream closed: assigned elsewhere or to a newer epoch");
                }
            }
            if owner != Some(me) {
                return;
            }
            match self.stream(stream).await {
                Ok(s) => {
                    // Opened at the epoch assigned now: done. Otherwise the
                    // assignment moved during the opening: check again.
                    if self.assignment(stream) == (Some(me), s.shared.epoch) {
                        return;
                    }
                }
                Err(e) => {
                    warn!(%stream, error = %e, "could not open a stream assigned to this node; will retry on first use");
                    return;
                }
            }
        }
        debug!(%stream, "the assignment kept moving while the stream opened; a later event checks it again");
    }

    /// The stream's owner and owner epoch in the local metadata replica.
    fn assignment(&self, stream: StreamId) -> (Option<NodeId>, u64) {
        self.ctx.meta.read(|s| {
            s.stream(&stream)
                .map_or((None, 0), |st| (st.owner, st.owner_epoch))
        })
    }

    /// Remove `s` from the map if it is still the stream's incarnation there
    /// (a newer one opened meanwhile stays).
    fn forget(&self, stream: StreamId, s: &Arc<LogStream>) {
        let mut map = self.streams.lock();
        if map
            .get(&stream)
            .and_then(|cell| cell.get())
            .is_some_and(|cur| Arc::ptr_eq(cur, s))
        {
            map.remove(&stream);
        }
    }

    /// Hand each open stream of topic `topic` (of every topic for `None`)
    /// its settings as the `StreamConfigFn` now gives them, after a topic
    /// config or node-wide default changed: the writer uses them from its
    /// next decision, without reopening the stream. A stream still opening
    /// may have read its settings before the change: it is waited for.
    async fn reconfigure(&self, topic: Option<uuid::Uuid>) {
        let cells: Vec<(StreamId, StreamCell)> = self
            .streams
            .lock()
            .iter()
            .filter(|(id, _)| topic.is_none_or(|t| id.topic_id == t))
            .map(|(id, cell)| (*id, cell.clone()))
            .collect();
        let mut changed = 0usize;
        for (id, cell) in cells {
            let stream = match cell.get() {
                Some(s) => s.clone(),
                // Waits for an opening under way; fails at once otherwise.
                None => match cell
                    .get_or_try_init(|| async { Err(StorageError::NotOwner(id)) })
                    .await
                {
                    Ok(s) => s.clone(),
                    Err(_) => continue,
                },
            };
            let cfg = self.ctx.meta.read(|s| {
                s.topic_by_id(&id.topic_id)
                    .map(|t| (self.ctx.config.stream_config)(t))
            });
            if let Some(cfg) = cfg {
                if stream.shared.set_config(cfg) {
                    changed += 1;
                    crate::metrics::STREAM_RECONFIGURED.inc();
                }
            }
        }
        debug!(topic = ?topic, streams_changed = changed, "stream settings recomputed");
    }

    /// Close (without sealing in metadata; the topic is gone) every open
    /// stream of a deleted topic.
    async fn drop_topic(&self, topic_id: uuid::Uuid) {
        let cells: Vec<StreamCell> = {
            let mut map = self.streams.lock();
            let ids: Vec<StreamId> = map.keys().filter(|k| k.topic_id == topic_id).copied().collect();
            ids.iter().filter_map(|k| map.remove(k)).collect()
        };
        for cell in cells {
            if let Some(s) = cell.get() {
                close_stream(s).await;
            }
        }
    }

    /// The failure that keeps `id` from being used now (opened, or
    /// appended to when `append`), if it is within [`REOPEN_QUARANTINE`].
    fn quarantined(&self, id: StreamId, append: bool) -> Option<StorageError> {
        if self.failure_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let quarantine = self.ctx.config.reopen_quarantine;
        let mut failures = self.failures.lock();
        let f = failures.get(&id)?;
        if f.at.elapsed() >= quarantine {
            // Past its quarantine for every use: forget it.
            failures.remove(&id);
            self.failure_count.store(failures.len(), Ordering::Release);
            return None;
        }
        f.holds(append, quarantine).then(|| f.error.duplicate())
    }

    /// Remember that `id`'s writer (`writer`) or opening failed at `at`
    /// (forgetting failures that are past their quarantine, so the map
    /// stays small). A held writer failure is not replaced by an opening's.
    fn note_failure(&self, id: StreamId, at: std::time::Instant, error: StorageError, writer: bool) {
        let mut failures = self.failures.lock();
        let quarantine = self.ctx.config.reopen_quarantine;
        failures.retain(|_, f| f.at.elapsed() < quarantine);
        if !writer && failures.get(&id).is_some_and(|f| f.writer) {
            return;
        }
        failures.insert(id, Failure { at, error, writer });
        self.failure_count.store(failures.len(), Ordering::Release);
    }

    /// Open `id`, unless its writer failed within [`REOPEN_QUARANTINE`]. A
    /// failed opening is remembered: appends stay refused for the
    /// quarantine, so the ones queued behind the failed one cannot be
    /// written ahead of its retry.
    async fn open_unless_quarantined(&self, id: StreamId) -> Result<Arc<LogStream>> {
        if let Some(e) = self.quarantined(id, false) {
            return Err(e);
        }
        match stream::open(&self.ctx, id).await {
            Ok(s) => Ok(s),
            Err(e) => {
                self.note_failure(id, std::time::Instant::now(), e.duplicate(), false);
                Err(e)
            }
        }
    }

    /// The open stream, opening (or reopening after a writer failure, once
    /// [`REOPEN_QUARANTINE`] has passed) it.
    async fn stream(&self, id: StreamId) -> Result<Arc<LogStream>> {
        if self.ctx.is_shutting_down() {
            return Err(StorageError::ShuttingDown);
        }
        for _ in 0..2 {
            let cell = self.streams.lock().entry(id).or_default().clone();
            let s = match cell.get_or_try_init(|| self.open_unless_quarantined(id)).await {
                Ok(s) => s.clone(),
                Err(e) => {
                    // Do not keep an empty cell for a stream that failed to
                    // open (e.g. a deleted topic): the map would only grow.
                    let mut map = self.streams.lock();
                    if map
                        .get(&id)
                        .is_some_and(|cur| Arc::ptr_eq(cur, &cell) && cur.get().is_none())
                    {
                        map.remove(&id);
                    }
                    return Err(e);
                }
            };
            if !s.shared.is_failed() {
                return Ok(s);
            }
            if let Some(at) = *s.shared.failed_at.lock() {
                let noted = self
                    .failures
                    .lock()
                    .get(&id)
                    .is_some_and(|f| f.writer && f.at >= at);
                if at.elapsed() < self.ctx.config.reopen_quarantine && !noted {
                    self.note_failure(id, at, StorageError::NotOwner(id), true);
                }
            }
            let mut map = self.streams.lock();
            if map.get(&id).is_some_and(|cur| Arc::ptr_eq(cur, &cell)) {
                map.remove(&id);
            }
        }
        Err(StorageError::NotOwner(id))
    }

    /// A handle to the open stream (opening it, or reopening it after a
    /// writer failure, as needed), for a caller that uses the stream more
    /// than once — a request resolves each partition once instead of
    /// looking it up for every call. See [`StreamHandle`] for what a handle
    /// answers once its incarnation ends.
    pub async fn open_stream(&self, stream: StreamId) -> Result<StreamHandle> {
        Ok(StreamHandle::new(self.ctx.clone(), self.stream(stream).await?))
    }

    /// Append records; resolves once the entry holding them is durable on
    /// the ack quorum (and therefore visible below the high watermark).
    pub async fn append(&self, stream: StreamId, req: AppendRequest) -> Result<AppendResult> {
        self.submit_append(stream, req).await?.wait().await
    }

    /// First half of [`Namespace::append`]: hand the records to the
    /// stream's writer and return once they are queued (see
    /// [`StreamHandle::submit_append`] for the ordering guarantee).
    ///
    /// Within [`REOPEN_QUARANTINE`] of a failed opening the append is
    /// refused with that failure, also when the stream has been opened
    /// since (by a read, or by an append that waited on the same opening):
    /// a client pipelines appends, and the ones behind the failed one must
    /// not be written before its retry.
    pub async fn submit_append(&self, stream: StreamId, req: AppendRequest) -> Result<AppendTicket> {
        if let Some(e) = self.quarantined(stream, true) {
            return Err(e);
        }
        let handle = self.open_stream(stream).await?;
        if let Some(e) = self.quarantined(stream, true) {
            return Err(e);
        }
        handle.submit_append(req).await
    }

    /// Read committed entries of the stream (see [`StreamHandle::read`]).
    pub async fn read(&self, stream: StreamId, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        self.open_stream(stream).await?.read(offset, max_bytes).await
    }

    /// A receiver of the stream's high watermark, for long polls.
    pub async fn watch_high_watermark(&self, stream: StreamId) -> Result<watch::Receiver<u64>> {
        self.open_stream(stream).await?.watch_high_watermark()
    }

    /// (log start offset, high watermark) of the stream.
    pub async fn bounds(&self, stream: StreamId) -> Result<(u64, u64)> {
        self.open_stream(stream).await?.bounds()
    }

    /// The first entry with txid `>= txid`, if any committed entry has one.
    pub async fn find_by_txid(&self, stream: StreamId, txid: u64) -> Result<Option<TxidLookup>> {
        self.open_stream(stream).await?.find_by_txid(txid).await
    }

    /// offset → (DLSN, txid) for the admin API.
    pub async fn locate(&self, stream: StreamId, offset: u64) -> Result<(Dlsn, u64)> {
        self.open_stream(stream).await?.locate(offset).await
    }

    /// For each segment of the stream, what each bookie of its ensemble
    /// holds (see [`super::replicas`]). Reads metadata and asks the bookies;
    /// does not open the stream or take ownership.
    pub async fn replica_report(&self, stream: StreamId) -> Result<Vec<super::replicas::SegmentReplicas>> {
        let open = self
            .streams
            .lock()
            .get(&stream)
            .and_then(|cell| cell.get().cloned());
        super::replicas::report(&self.ctx, stream, open.as_deref()).await
    }

    /// What every registered bookie holds of `ledger` (see
    /// [`super::release::whereabouts`]): where a ledger lives, and the
    /// check that a released ledger is gone from every bookie.
    pub async fn ledger_whereabouts(
        &self,
        ledger: distlog_metadata::LedgerId,
    ) -> Vec<super::replicas::BookieReplica> {
        release::whereabouts(&self.ctx, ledger).await
    }

    /// Start the retention task (see [`super::retention`]): every
    /// `interval` (Kafka's `log.retention.check.interval.ms`; the first check
    /// after one interval) it truncates the streams this node owns as their
    /// topics' retention limits allow, and refreshes the per-partition log
    /// start and size gauges. The task ends when the namespace shuts down or
    /// is dropped.
    pub fn start_retention(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut labelled = HashSet::new();
            loop {
                tick.tick().await;
                let Some(ns) = weak.upgrade() else { break };
                if ns.ctx.is_shutting_down() {
                    break;
                }
                let now = ns.enforce_retention().await;
                retention::forget_gauges(labelled.difference(&now));
                labelled = now;
            }
            retention::forget_gauges(&labelled);
        })
    }

    /// One retention check over the streams open here (what the retention
    /// task runs each interval; tests call it directly). Returns the
    /// `(topic, partition)` labels of the streams it looked at.
    pub async fn enforce_retention(&self) -> HashSet<(String, String)> {
        let open: Vec<Arc<LogStream>> = self
            .streams
            .lock()
            .values()
            .filter_map(|c| c.get().cloned())
            .collect();
        retention::check(&self.ctx, &open).await
    }

    /// (LSSN, payload bytes written so far) of the segment this node is
    /// writing for `stream`, if it has the stream open (it is the owner):
    /// the size of an in-progress segment, which metadata records only at
    /// the seal. Does not open the stream. The bytes are those handed to
    /// the bookies (acknowledged or still in flight), the measure a sealed
    /// segment's `SegmentMeta::size_bytes` uses.
    pub fn open_segment_bytes(&self, stream: StreamId) -> Option<(u64, u64)> {
        let open = self
            .streams
            .lock()
            .get(&stream)
            .and_then(|cell| cell.get().cloned())?;
        if open.shared.is_failed() {
            return None;
        }
        let bytes = *open.shared.open_segment.lock();
        bytes
    }

    /// Number of streams currently open on this node.
    pub fn open_streams(&self) -> usize {
        self.streams.lock().values().filter(|s| s.get().is_some()).count()
    }

    /// Flush every writer and close its segment (clean shutdown). Later
    /// calls fail with `ShuttingDown`.
    pub async fn shutdown(&self) -> Result<()> {
        self.ctx.shutting_down.store(true, Ordering::Release);
        let cells: Vec<StreamCell> = self.streams.lock().drain().map(|(_, v)| v).collect();
        let closes = cells.iter().filter_map(|s| s.get()).map(|s| close_stream(s));
        futures::future::join_all(closes).await;
        info!(streams = cells.len(), "namespace closed");
        Ok(())
    }
}

/// Ask a stream's writer to finish in-flight entries and seal its segment.
/// The incarnation ends at once (handles to it answer the ended error; its
/// long polls wake); appends already queued are still written.
async fn close_stream(s: &LogStream) {
    s.shared.mark_failed();
    let (done, rx) = oneshot::channel();
    if s.ops.send(WriterOp::Close { done }).await.is_ok() {
        let _ = rx.await;
    }
}
