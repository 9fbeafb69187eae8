//! How a log stream is opened (ownership acquisition and ledger recovery),
//! with the settings the namespace's [`super::config::StreamConfigFn`] gives it. The state an open stream's writer
//! and readers share lives in [`super::context`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use distlog_metadata::{NodeId, SegmentSeal, SegmentState, StreamId, StreamMeta};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};
use tracing::{info, info_span, Instrument};

use super::config::{Ownership, StreamConfig};
use super::context::{LogStream, NsCtx, StreamShared, StreamView};
use super::segment::SegmentView;
use super::state_rebuild;
use super::tail_cache::TailCache;
use super::writer::LogWriter;
use crate::error::{Result, StorageError};
use crate::ledger::handle;

/// The stream's metadata, its effective config and its topic's name.
fn read_stream(ctx: &NsCtx, id: StreamId) -> Result<(StreamMeta, StreamConfig, String)> {
    ctx.meta.read(|s| {
        let st = s.stream(&id).cloned().ok_or(StorageError::NoSuchStream(id))?;
        let topic = s
            .topic_by_id(&id.topic_id)
            .ok_or(StorageError::NoSuchStream(id))?;
        Ok((st, (ctx.config.stream_config)(topic), topic.name.clone()))
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
        let me: NodeId = ctx.config.broker_id;
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
                // The last entry may be a control entry (no records): the
                // segment ends where its records end.
                let last_offset = tail
                    .map(|r| r.first_seq + u64::from(r.record_count))
                    .filter(|next| *next > last.base_offset)
                    .map(|next| next - 1);
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
        let state = ctx.config.stream_state.as_ref().map(|make| make(id));
        if let Some(state) = &state {
            state_rebuild::rebuild(ctx, state.as_ref(), &segments).await?;
        }
        let (hw_tx, _) = watch::channel(next_offset);
        let (config, config_rx) = watch::channel(cfg);
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
            failed_at: Mutex::new(None),
            state,
            open_segment: Mutex::new(None),
            config,
        });
        let (tx, rx) = mpsc::channel(1024);
        let writer = LogWriter::new(
            ctx.clone(),
            shared.clone(),
            config_rx,
            st.next_lssn,
            next_offset,
            txid,
        );
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
