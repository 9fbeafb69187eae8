//! `LogReader`: reads of committed entries of an open stream, positioned by
//! offset (sequence id) or txid, served from the tail cache when fresh and
//! from the segment store otherwise.

use super::api::{ReadEntry, ReadResult, TxidLookup};
use super::context::{LogStream, NsCtx};
use super::segment::{segment_for_offset, segment_for_txid, SegmentView};
use super::tail_cache::CachedEntry;
use crate::dlsn::Dlsn;
use crate::error::{Result, StorageError};
use crate::ledger::handle;
use crate::ledger::Entry;
use crate::metrics;

fn from_cached(e: CachedEntry) -> ReadEntry {
    ReadEntry {
        first_seq: e.row.first_seq,
        record_count: e.row.record_count,
        txid: e.row.txid,
        payload: e.payload,
    }
}

fn from_entry(e: Entry) -> ReadEntry {
    ReadEntry {
        first_seq: e.row.first_seq,
        record_count: e.row.record_count,
        txid: e.row.txid,
        payload: e.payload,
    }
}

/// Reader over one open stream.
pub(crate) struct LogReader<'a> {
    ctx: &'a NsCtx,
    stream: &'a LogStream,
}

impl<'a> LogReader<'a> {
    pub fn new(ctx: &'a NsCtx, stream: &'a LogStream) -> Self {
        LogReader { ctx, stream }
    }

    /// (log start offset, high watermark).
    pub fn bounds(&self) -> (u64, u64) {
        let v = self.stream.shared.view.read();
        (v.log_start_offset, v.high_watermark)
    }

    /// The committed segment holding `offset`, after checking bounds.
    /// `Ok(None)` means `offset` is the high watermark (nothing to read yet).
    fn segment_at(&self, offset: u64) -> Result<(Option<SegmentView>, u64, u64)> {
        let v = self.stream.shared.view.read();
        let (start, hw) = (v.log_start_offset, v.high_watermark);
        if offset < start || offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start,
                end: hw,
            });
        }
        if offset == hw {
            return Ok((None, start, hw));
        }
        let idx = segment_for_offset(&v.segments, offset).ok_or(StorageError::OffsetOutOfRange {
            offset,
            start,
            end: hw,
        })?;
        Ok((Some(v.segments[idx].clone()), start, hw))
    }

    /// Entries from the one holding `offset`, up to about `max_bytes`.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let (seg, start, hw) = self.segment_at(offset)?;
        let Some(seg) = seg else {
            return Ok(ReadResult {
                entries: Vec::new(),
                high_watermark: hw,
                log_start_offset: start,
            });
        };
        if let Some(hit) = self.stream.shared.cache.lock().read(offset, max_bytes) {
            metrics::TAIL_CACHE_HITS.inc();
            return Ok(ReadResult {
                entries: hit.into_iter().map(from_cached).collect(),
                high_watermark: hw,
                log_start_offset: start,
            });
        }
        metrics::TAIL_CACHE_MISSES.inc();
        let ensemble = self.ctx.bookies.ensemble(&seg).await?;
        let last = seg.last_entry_id.ok_or(StorageError::NoSuchEntry {
            ledger: seg.ledger_id,
            entry: 0,
        })?;
        let row = handle::entry_for_seq(&ensemble, seg.ledger_id, offset)
            .await?
            .ok_or(StorageError::NoSuchEntry {
                ledger: seg.ledger_id,
                entry: 0,
            })?;
        let entries = handle::read_entries(
            &ensemble,
            seg.ledger_id,
            row.entry_id,
            last,
            max_bytes,
            self.ctx.config.speculative_read_delay,
        )
        .await?;
        Ok(ReadResult {
            // Control entries (state snapshots) hold no records: never returned.
            entries: entries
                .into_iter()
                .filter(|e| e.row.record_count > 0)
                .map(from_entry)
                .collect(),
            high_watermark: hw,
            log_start_offset: start,
        })
    }

    /// The first committed entry with txid `>= txid` (from the tail cache,
    /// the first *piece* of an entry whose running txid reaches it, which is
    /// narrower and still holds the first record with timestamp `>= txid`).
    pub async fn find_by_txid(&self, txid: u64) -> Result<Option<TxidLookup>> {
        if let Some(e) = self.stream.shared.cache.lock().find_txid(txid) {
            let dlsn = Dlsn::new(e.lssn, e.row.entry_id, e.row.first_seq - e.entry_first_seq);
            return Ok(Some(TxidLookup {
                entry: from_cached(e),
                dlsn,
            }));
        }
        let seg = {
            let v = self.stream.shared.view.read();
            match segment_for_txid(&v.segments, txid) {
                Some(i) => v.segments[i].clone(),
                None => return Ok(None),
            }
        };
        let Some(last) = seg.last_entry_id else {
            return Ok(None);
        };
        let ensemble = self.ctx.bookies.ensemble(&seg).await?;
        let Some(row) = handle::entry_for_txid(&ensemble, seg.ledger_id, txid, last).await? else {
            return Ok(None);
        };
        let mut entries = handle::read_entries(
            &ensemble,
            seg.ledger_id,
            row.entry_id,
            row.entry_id,
            0,
            self.ctx.config.speculative_read_delay,
        )
        .await?;
        if entries.is_empty() {
            return Ok(None);
        }
        let e = entries.swap_remove(0);
        Ok(Some(TxidLookup {
            dlsn: Dlsn::new(seg.lssn, e.row.entry_id, 0),
            entry: from_entry(e),
        }))
    }

    /// offset → (DLSN, txid).
    pub async fn locate(&self, offset: u64) -> Result<(Dlsn, u64)> {
        let (seg, start, hw) = self.segment_at(offset)?;
        let seg = seg.ok_or(StorageError::OffsetOutOfRange {
            offset,
            start,
            end: hw,
        })?;
        if let Some(hit) = self.stream.shared.cache.lock().locate(offset) {
            return Ok(hit);
        }
        let ensemble = self.ctx.bookies.ensemble(&seg).await?;
        let row = handle::entry_for_seq(&ensemble, seg.ledger_id, offset)
            .await?
            .ok_or(StorageError::OffsetOutOfRange {
                offset,
                start,
                end: hw,
            })?;
        Ok((
            Dlsn::new(seg.lssn, row.entry_id, offset - row.first_seq),
            row.txid,
        ))
    }
}
