//! One open log stream: the state its writer and readers share, and how a
//! stream is opened (ownership acquisition and ledger recovery).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use distlog_metadata::{BrokerId, MetadataStore, SegmentSeal, SegmentState, StreamId, StreamMeta};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};
use tracing::{info, info_span, Instrument};

use super::bookies::BookieSet;
use super::namespace::{NamespaceConfig, Ownership, StreamConfig};
use super::segment::SegmentView;
use super::tail_cache::TailCache;
use super::writer::{LogWriter, WriterOp};
use crate::error::{Result, StorageError};
use crate::ledger::handle;

/// Context shared by every stream of a namespace.
pub(crate) struct NsCtx {
    pub meta: Arc<MetadataStore>,
    pub bookies: BookieSet,
    pub config: NamespaceConfig,
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
    /// Set when the writer died (fenced, disk error): the namespace reopens
    /// the stream on next use.
    pub failed: AtomicBool,
}

impl StreamShared {
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// An open stream: shared state plus the channel to its writer task.
pub(crate) struct LogStream {
    pub shared: Arc<StreamShared>,
    pub ops: mpsc::Sender<WriterOp>,
}

/// Per-stream config from topic overrides over node defaults.
pub(crate) fn stream_config(
    defaults: &StreamConfig,
    topic_configs: &std::collections::BTreeMap<String, String>,
) -> StreamConfig {
    let mut c = defaults.clone();
    if let Some(v) = topic_configs.get("segment.bytes").and_then(|v| v.parse().ok()) {
        c.segment_bytes = v;
    }
    if let Some(v) = topic_configs.get("segment.ms").and_then(|v| v.parse().ok()) {
        c.segment_ms = v;
    }
    let quorum = |key: &str| {
        topic_configs
            .get(key)
            .and_then(|v| v.parse::<u8>().ok())
            .filter(|v| *v > 0)
    };
    if let Some(v) = quorum("distlog.ensemble.size") {
        c.ensemble_size = v;
    }
    if let Some(v) = quorum("distlog.write.quorum") {
        c.write_quorum = v;
    }
    if let Some(v) = quorum("distlog.ack.quorum") {
        c.ack_quorum = v;
    }
    c
}

/// The stream's metadata, its effective config and its topic's name.
fn read_stream(ctx: &NsCtx, id: StreamId) -> Result<(StreamMeta, StreamConfig, String)> {
    ctx.meta.read(|s| {
        let st = s.stream(&id).cloned().ok_or(StorageError::NoSuchStream(id))?;
        let topic = s
            .topic_by_id(&id.topic_id)
            .ok_or(StorageError::NoSuchStream(id))?;
        Ok((
            st,
            stream_config(&ctx.config.defaults, &topic.configs),
            topic.name.clone(),
        ))
    })
}

/// Open a stream for writing on this node: take ownership (new epoch),
/// recover a previous owner's in-progress segment (fence its ledger, find
/// the last durable entry, seal it with a compare-and-set on the epoch),
/// then start the writer task.
pub(crate) async fn open(ctx: &Arc<NsCtx>, id: StreamId) -> Result<Arc<LogStream>> {
    let span = info_span!("open_stream", stream = %id);
    async move {
        let (before, _, _) = read_stream(ctx, id)?;
        let me: BrokerId = ctx.config.broker_id;
        let epoch = match ctx.config.ownership {
            Ownership::Assigned if before.owner == Some(me) => before.owner_epoch,
            Ownership::Assigned => return Err(StorageError::NotOwner(id)),
            Ownership::Acquire => ctx.meta.acquire_stream(id, me, Some(before.owner_epoch)).await?,
        };
        let (mut st, cfg, topic) = read_stream(ctx, id)?;
        if let Some(last) = st.segments.last().cloned() {
            if last.state == SegmentState::InProgress {
                let view = SegmentView::from_meta(&last);
                let ensemble = ctx.bookies.ensemble(&view).await?;
                let tail = handle::recover(&ensemble, last.ledger_id).await?;
                let last_offset = tail.map(|r| r.first_seq + r.record_count as u64 - 1);
                let end_txid = tail.map_or(last.start_txid, |r| r.txid.max(last.start_txid));
                info!(
                    lssn = last.lssn,
                    ledger = last.ledger_id,
                    last_entry = ?tail.map(|r| r.entry_id),
                    ?last_offset,
                    "recovered in-progress segment of the previous owner"
                );
                let seal = SegmentSeal {
                    lssn: last.lssn,
                    last_offset,
                    end_txid,
                    last_entry_id: tail.map(|r| r.entry_id),
                    size_bytes: 0,
                };
                ctx.meta.seal_segment(id, epoch, seal).await?;
                st = read_stream(ctx, id)?.0;
            }
        }
        let segments: Vec<SegmentView> = st.segments.iter().map(SegmentView::from_meta).collect();
        let next_offset = segments
            .last()
            .map_or(st.log_start_offset, |s| s.next_offset)
            .max(st.log_start_offset);
        let txid = segments.last().map_or(0, |s| s.end_txid);
        let (hw_tx, _) = watch::channel(next_offset);
        let shared = Arc::new(StreamShared {
            id,
            epoch,
            view: RwLock::new(StreamView {
                segments,
                log_start_offset: st.log_start_offset,
                high_watermark: next_offset,
            }),
            hw_tx,
            cache: Mutex::new(TailCache::new(ctx.config.tail_cache_bytes)),
            failed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(1024);
        let writer = LogWriter::new(ctx.clone(), shared.clone(), cfg, st.next_lssn, next_offset, txid);
        tokio::spawn(
            writer
                .run(rx)
                .instrument(info_span!("log_writer", stream = %id, topic = %topic)),
        );
        info!(epoch, next_offset, "stream open");
        Ok(Arc::new(LogStream { shared, ops: tx }))
    }
    .instrument(span)
    .await
}
