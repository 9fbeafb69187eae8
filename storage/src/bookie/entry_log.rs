//! Ledger storage behind the journal: entry logs, BookKeeper's interleaved
//! layout.
//!
//! Entries of every ledger are appended to one entry log file at a time,
//! `<dir>/<id:020>.elog`, in the journal's record format (a 64-byte header
//! naming ledger, row and file, then the payload; see [`super::journal`]),
//! grouped by ledger within each flush so a ledger's entries of one flush
//! are contiguous. A file is rolled once it passes its size limit. Entry
//! logs are written by checkpoints, not on the acknowledgement path: an
//! entry is durable in the journal first, and its entry log record only
//! needs to be durable before the journal files holding it are retired,
//! which [`EntryLogWriter::sync`] guarantees for everything appended.
//!
//! Every record names its ledger and row, so the index (ledger, entry) →
//! [`Location`] is rebuilt by [`scan`]ning the files at start; a scan cuts a
//! torn tail (only the newest file can have one: a file is synced before
//! the next is written to) the way journal replay stops at one. Reads by
//! location ([`read_entry`]) check the header and crc of what they read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use distlog_metadata::LedgerId;

use crate::error::{Result, StorageError};
use crate::ledger::IndexRow;

use super::journal::{
    encode_record_header, gather, list_numbered, read_records, verify_add, write_all_at, RecordKind,
    RECORD_HEADER_LEN,
};
use super::ledger_file::fsync_dir;

/// Where an entry's record sits in ledger storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Location {
    /// The entry log's id.
    pub log: u64,
    /// Offset of the record's header in it.
    pub offset: u64,
}

/// Path of entry log `id` in `dir`.
pub(crate) fn log_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.elog"))
}

/// The ids of the entry logs in `dir`, ascending.
pub(crate) fn list_logs(dir: &Path) -> Result<Vec<u64>> {
    list_numbered(dir, ".elog")
}

/// One entry log, open for positional reads (and, while current, writes).
#[derive(Debug)]
pub(crate) struct EntryLogFile {
    /// Its id (also stored in every record it holds).
    pub id: u64,
    /// Its path (for error messages).
    pub path: PathBuf,
    /// The open file.
    pub file: File,
}

/// An entry to append: its ledger, row, and payload chunks.
pub(crate) struct PendingEntry<'a> {
    /// The ledger.
    pub ledger: LedgerId,
    /// The entry's row (`len` is the payload's length).
    pub row: IndexRow,
    /// The payload, in chunks.
    pub payload: &'a [Bytes],
}

/// Appends entries to the current entry log, rolling to a new one past the
/// size limit. Owned by the checkpoint (the only writer of ledger storage).
pub(crate) struct EntryLogWriter {
    dir: PathBuf,
    max_bytes: u64,
    current: Arc<EntryLogFile>,
    offset: u64,
    /// Files rolled away from since the last sync (synced by the next).
    unsynced: Vec<Arc<EntryLogFile>>,
}

impl EntryLogWriter {
    /// Go on writing entry log `id` in `dir` at `offset` (the end a
    /// [`scan`] found; 0 creates it). Files pass `max_bytes` by at most one
    /// flush's entries of one ledger before they roll.
    pub fn open(dir: &Path, id: u64, offset: u64, max_bytes: u64) -> Result<EntryLogWriter> {
        Ok(EntryLogWriter {
            dir: dir.to_path_buf(),
            max_bytes,
            current: Arc::new(open_log(dir, id)?),
            offset,
            unsynced: Vec::new(),
        })
    }

    /// The file being written (readers of entries appended to it share it).
    pub fn current(&self) -> &Arc<EntryLogFile> {
        &self.current
    }

    /// Append `entries`, those of one ledger together, and return where
    /// each went. Not durable until [`EntryLogWriter::sync`]. On an error
    /// nothing appended by this call may be used (the caller keeps serving
    /// the entries from the journal's side and retries at the next
    /// checkpoint).
    pub fn append(&mut self, entries: &[PendingEntry<'_>]) -> Result<Vec<Location>> {
        let mut locations = Vec::with_capacity(entries.len());
        let mut i = 0;
        while i < entries.len() {
            if self.offset >= self.max_bytes {
                self.roll()?;
            }
            // One ledger's run of entries in one vectored write.
            let ledger = entries[i].ledger;
            let run_end = entries[i..]
                .iter()
                .position(|e| e.ledger != ledger)
                .map_or(entries.len(), |n| i + n);
            let run = &entries[i..run_end];
            let headers: Vec<[u8; RECORD_HEADER_LEN]> = run
                .iter()
                .map(|e| encode_record_header(RecordKind::Add, self.current.id, e.ledger, &e.row, e.payload))
                .collect();
            let mut at = self.offset;
            for e in run {
                locations.push(Location {
                    log: self.current.id,
                    offset: at,
                });
                at += RECORD_HEADER_LEN as u64 + u64::from(e.row.len);
            }
            let mut slices = gather(&headers, run.iter().map(|e| e.payload));
            write_all_at(&self.current.file, self.offset, &mut slices)
                .map_err(|e| StorageError::io(&self.current.path, e))?;
            self.offset = at;
            i = run_end;
        }
        Ok(locations)
    }

    /// Make everything appended so far durable: the files rolled away from
    /// since the last sync, then the current one.
    pub fn sync(&mut self) -> Result<()> {
        for file in self.unsynced.iter().chain(std::iter::once(&self.current)) {
            file.file
                .sync_data()
                .map_err(|e| StorageError::io(&file.path, e))?;
        }
        self.unsynced.clear();
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        let next = Arc::new(open_log(&self.dir, self.current.id + 1)?);
        let old = std::mem::replace(&mut self.current, next);
        self.unsynced.push(old);
        self.offset = 0;
        tracing::debug!(entry_log = self.current.id, "entry log rolled to a new file");
        Ok(())
    }
}

/// Open (creating if missing, durably named) entry log `id` in `dir`.
pub(crate) fn open_log(dir: &Path, id: u64) -> Result<EntryLogFile> {
    let path = log_path(dir, id);
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StorageError::io(&path, e))?;
    if !existed {
        fsync_dir(dir)?;
    }
    Ok(EntryLogFile { id, path, file })
}

/// What a scan of one entry log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Where its last good record ends (the file is cut there).
    pub end: u64,
    /// Bytes cut from the tail (a torn or corrupt record and what follows).
    pub cut: u64,
}

/// Scan entry log `id`: call `visit` with every good record's ledger, row
/// and location, in file order, and cut the file after the last one (a
/// torn tail is never served, and the writer goes on from there).
pub(crate) fn scan(
    dir: &Path,
    id: u64,
    visit: &mut dyn FnMut(LedgerId, IndexRow, Location),
) -> Result<Scanned> {
    let path = log_path(dir, id);
    let end = read_records(&path, id, 0, &mut |rec, offset| {
        if rec.kind != RecordKind::Add {
            return false;
        }
        visit(rec.ledger, rec.row, Location { log: id, offset });
        true
    })?;
    let io_err = |e| StorageError::io(&path, e);
    let file = OpenOptions::new().write(true).open(&path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len > end {
        tracing::warn!(path = %path.display(), cut_bytes = len - end, "cutting torn or corrupt tail of entry log");
        file.set_len(end).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    }
    Ok(Scanned {
        end,
        cut: len.saturating_sub(end),
    })
}

/// Read the entry of `ledger` with `row` at `at` in `log`, checking that
/// the record there is that entry and that its crc holds. Blocking.
pub(crate) fn read_entry(
    log: &EntryLogFile,
    at: Location,
    ledger: LedgerId,
    row: &IndexRow,
) -> Result<Bytes> {
    let corrupt = || StorageError::Corrupt {
        ledger,
        entry: row.entry_id,
    };
    if at.log != log.id {
        return Err(corrupt());
    }
    let len = RECORD_HEADER_LEN + row.len as usize;
    let mut buf = vec![0u8; len];
    log.file
        .read_exact_at(&mut buf, at.offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => corrupt(),
            _ => StorageError::io(&log.path, e),
        })?;
    let buf = Bytes::from(buf);
    let raw: &[u8; RECORD_HEADER_LEN] = buf[..RECORD_HEADER_LEN].try_into().map_err(|_| corrupt())?;
    if !verify_add(raw, log.id, ledger, row, &buf[RECORD_HEADER_LEN..]) {
        return Err(corrupt());
    }
    Ok(buf.slice(RECORD_HEADER_LEN..))
}

#[cfg(test)]
#[path = "entry_log_tests.rs"]
mod tests;
