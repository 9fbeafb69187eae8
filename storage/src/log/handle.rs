//! [`StreamHandle`]: one open stream, resolved once and then used for every
//! call of a request, instead of looking the stream up in the namespace
//! (under its mutex) for each call.

use std::sync::Arc;

use distlog_metadata::StreamId;
use tokio::sync::{oneshot, watch};

use super::api::{AppendRequest, AppendResult, AppendTicket, ReadResult, TxidLookup};
use super::context::{LogStream, NsCtx, WriterOp};
use super::epochs::EpochHistory;
use super::reader::LogReader;
use super::retention;
use super::stream_state::StreamState;
use crate::dlsn::Dlsn;
use crate::error::{Result, StorageError};

/// A handle to one incarnation of an open stream, from the namespace's
/// `open_stream`; cheap to clone.
///
/// It exists so that a request touching a partition several times (a
/// fetch checks the leader epoch, watches the high watermark, reads, asks
/// the bounds) resolves the stream once. It guarantees the answers a call
/// by id would give: every call first checks that the incarnation is still
/// the live one, and once it has ended — writer failed, stream closed
/// because it was deleted or assigned elsewhere, namespace shutting down —
/// fails with the error a lookup by id gives for a stream it cannot serve
/// (`ShuttingDown`, `NoSuchStream`, otherwise `NotOwner`, so the client
/// refreshes metadata). A handle never reopens its stream: the next handle
/// (or call by id) does.
#[derive(Clone)]
pub struct StreamHandle {
    ctx: Arc<NsCtx>,
    stream: Arc<LogStream>,
}

impl StreamHandle {
    /// A handle to `stream`, an incarnation opened by the namespace.
    pub(crate) fn new(ctx: Arc<NsCtx>, stream: Arc<LogStream>) -> Self {
        StreamHandle { ctx, stream }
    }

    /// The stream this handle is to.
    pub fn id(&self) -> StreamId {
        self.stream.shared.id
    }

    /// The stream's state (see [`super::stream_state`]) for the embedder's
    /// own queries; `None` when the namespace keeps none.
    pub fn state(&self) -> Result<Option<Arc<dyn StreamState>>> {
        Ok(self.live()?.shared.state.clone())
    }

    /// `Ok` while the incarnation is live; the ended error otherwise (see
    /// the type's docs).
    fn live(&self) -> Result<&LogStream> {
        if self.ctx.is_shutting_down() {
            return Err(StorageError::ShuttingDown);
        }
        if self.stream.shared.is_failed() {
            return Err(self.ctx.ended_error(self.id()));
        }
        Ok(&self.stream)
    }

    fn reader(&self) -> Result<LogReader<'_>> {
        Ok(LogReader::new(&self.ctx, self.live()?))
    }

    /// The owner epoch of this incarnation (Kafka leader epoch).
    pub fn owner_epoch(&self) -> Result<u64> {
        Ok(self.live()?.shared.epoch)
    }

    /// The stream's owner-epoch history (Kafka's leader-epoch cache) at
    /// this moment, with its bounds and current epoch.
    pub fn epochs(&self) -> Result<EpochHistory> {
        let s = self.live()?;
        let v = s.shared.view.read();
        Ok(EpochHistory::new(
            &v.segments,
            v.log_start_offset,
            v.high_watermark,
            s.shared.epoch,
        ))
    }

    /// (log start offset, high watermark) of the stream.
    pub fn bounds(&self) -> Result<(u64, u64)> {
        Ok(self.reader()?.bounds())
    }

    /// Move the stream's log start offset to `offset` (Kafka's
    /// DeleteRecords; `u64::MAX` means the high watermark): sealed segments
    /// wholly below it are dropped and their ledgers deleted (see
    /// [`super::retention`]); the rest of a segment it falls inside stays
    /// stored but is hidden from readers. An offset at or below the current
    /// start changes nothing. Returns the log start offset after the call
    /// (Kafka's low watermark); an offset above the high watermark is
    /// `OffsetOutOfRange`.
    pub async fn truncate(&self, offset: u64) -> Result<u64> {
        let s = self.live()?;
        let (start, hw) = self.reader()?.bounds();
        let offset = if offset == u64::MAX { hw } else { offset };
        if offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start,
                end: hw,
            });
        }
        if offset > start {
            retention::truncate(&self.ctx, &s.shared, offset, retention::Cause::DeleteRecords).await?;
        }
        Ok(self.reader()?.bounds().0)
    }

    /// A receiver of the stream's high watermark, for long polls. It also
    /// wakes (without a new value) when the incarnation ends, after which
    /// the handle's calls fail.
    pub fn watch_high_watermark(&self) -> Result<watch::Receiver<u64>> {
        Ok(self.live()?.shared.hw_tx.subscribe())
    }

    /// Read committed entries starting at the one holding `offset`, up to
    /// about `max_bytes` (the first entry is returned whole even if larger).
    /// `offset == high watermark` returns no entries; outside
    /// `[log_start_offset, high_watermark]` fails with OffsetOutOfRange.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        self.reader()?.read(offset, max_bytes).await
    }

    /// The first entry with txid `>= txid`, if any committed entry has one.
    pub async fn find_by_txid(&self, txid: u64) -> Result<Option<TxidLookup>> {
        self.reader()?.find_by_txid(txid).await
    }

    /// offset → (DLSN, txid).
    pub async fn locate(&self, offset: u64) -> Result<(Dlsn, u64)> {
        self.reader()?.locate(offset).await
    }

    /// Hand the records to the stream's writer and return once they are
    /// queued. Appends submitted one after another (each awaited) are
    /// stored in that order, even when their tickets are awaited
    /// concurrently — what a Kafka connection that pipelines produce
    /// requests relies on.
    pub async fn submit_append(&self, req: AppendRequest) -> Result<AppendTicket> {
        let s = self.live()?;
        let (reply, rx) = oneshot::channel();
        s.ops
            .send(WriterOp::Append { req, reply })
            .await
            .map_err(|_| StorageError::NotOwner(self.id()))?;
        Ok(AppendTicket::new(self.id(), rx))
    }

    /// Append records; resolves once the entry holding them is durable on
    /// the ack quorum (and therefore visible below the high watermark).
    pub async fn append(&self, req: AppendRequest) -> Result<AppendResult> {
        self.submit_append(req).await?.wait().await
    }
}
