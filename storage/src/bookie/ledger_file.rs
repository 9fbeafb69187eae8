//! One ledger on disk: `<dir>/ledgers/<id:020>.log` (the records, see
//! [`super::format`]) plus an optional `<id:020>.fenced` marker, and its
//! in-memory state (index of durable entries, fenced/broken flags).
//!
//! Only the group-commit thread writes; readers use positional reads on the same
//! file handle and only ever look at entries the index holds, which are
//! durable by construction.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use distlog_metadata::LedgerId;
use parking_lot::RwLock;

use crate::error::{Result, StorageError};
use crate::ledger::{Entry, IndexRow};
use crate::metrics;

use super::format::{crc_seed, decode_header, HEADER_LEN};
use super::index::{LedgerIndex, ReadPlan};

/// Path of a ledger's record file.
pub(crate) fn log_path(ledgers_dir: &Path, id: LedgerId) -> PathBuf {
    ledgers_dir.join(format!("{id:020}.log"))
}

/// Path of a ledger's fence marker.
pub(crate) fn fence_path(ledgers_dir: &Path, id: LedgerId) -> PathBuf {
    ledgers_dir.join(format!("{id:020}.fenced"))
}

/// Parse `<id:020>.<ext>` back into the id.
pub(crate) fn parse_name(name: &str, ext: &str) -> Option<LedgerId> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// fsync a directory so entries created/removed in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

/// Clone an I/O error (io::Error is not Clone) so one failure can be
/// reported to every add it affected.
pub(crate) fn clone_io(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// A ledger: its file and the in-memory state derived from it.
pub(crate) struct LedgerFile {
    /// The ledger id.
    pub id: LedgerId,
    /// The record file's path (for error messages and removal).
    pub path: PathBuf,
    /// The open record file (written by the group committer, pread by readers).
    pub file: File,
    /// Index of durable entries only.
    pub index: RwLock<LedgerIndex>,
    /// Durably fenced: every later add fails.
    pub fenced: AtomicBool,
    /// A write/fsync failed and could not be cleanly undone: adds fail.
    pub broken: AtomicBool,
    /// File length covered by durable entries (the group committer writes here).
    pub durable_len: AtomicU64,
}

/// What recovery found in one ledger file.
pub(crate) struct Recovered {
    /// The recovered ledger.
    pub ledger: LedgerFile,
    /// Bytes cut from the tail (torn, corrupt or garbage).
    pub cut: u64,
}

impl LedgerFile {
    /// Create a new, empty ledger file (truncating any stray file) and make
    /// its directory entry durable.
    pub fn create(ledgers_dir: &Path, id: LedgerId) -> Result<LedgerFile> {
        let path = log_path(ledgers_dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        file.sync_all().map_err(|e| StorageError::io(&path, e))?;
        fsync_dir(ledgers_dir)?;
        Ok(LedgerFile {
            id,
            path,
            file,
            index: RwLock::new(LedgerIndex::default()),
            fenced: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            durable_len: AtomicU64::new(0),
        })
    }

    /// Open an existing ledger file and rebuild its index by scanning every
    /// record and verifying its crc. The scan stops at the first short,
    /// malformed, crc-mismatched or out-of-order (entry id not above the
    /// previous one) record; the file is cut
    /// there (and fsync'd) so a torn tail is never served.
    pub fn recover(ledgers_dir: &Path, id: LedgerId) -> Result<Recovered> {
        let path = log_path(ledgers_dir, id);
        let io_err = |e| StorageError::io(&path, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut index = LedgerIndex::default();
        let mut pos: u64 = 0;
        {
            let mut reader = BufReader::with_capacity(1 << 20, &file);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                if file_len - pos < HEADER_LEN as u64 {
                    break;
                }
                let mut raw = [0u8; HEADER_LEN];
                reader.read_exact(&mut raw).map_err(io_err)?;
                let Some(header) = decode_header(&raw) else { break };
                let len = u64::from(header.row.len);
                // Entry ids only ever grow along the file (a bookie holds
                // its stripe in entry order); anything else is not a record
                // the group committer wrote.
                let in_order = index.last().is_none_or(|l| header.row.entry_id > l.entry_id);
                if !in_order || len > file_len - pos - HEADER_LEN as u64 {
                    break;
                }
                let mut crc = crc_seed(&raw);
                let mut left = len;
                while left > 0 {
                    let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
                    reader.read_exact(&mut chunk[..n]).map_err(io_err)?;
                    crc = crc32c::crc32c_append(crc, &chunk[..n]);
                    left -= n as u64;
                }
                if crc != header.crc {
                    break;
                }
                index.push(header.row, pos);
                pos += HEADER_LEN as u64 + len;
            }
        }
        let cut = file_len - pos;
        if cut > 0 {
            tracing::warn!(
                ledger = id,
                path = %path.display(),
                kept_entries = index.len(),
                cut_bytes = cut,
                "cutting torn or corrupt tail of ledger file"
            );
            file.set_len(pos).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        let fenced = fence_path(ledgers_dir, id).exists();
        Ok(Recovered {
            ledger: LedgerFile {
                id,
                path,
                file,
                index: RwLock::new(index),
                fenced: AtomicBool::new(fenced),
                broken: AtomicBool::new(false),
                durable_len: AtomicU64::new(pos),
            },
            cut,
        })
    }

    /// Durably fence: write and fsync the marker file, then fsync the
    /// directory, then set the in-memory flag. Idempotent.
    pub fn fence(&self, ledgers_dir: &Path) -> Result<()> {
        if self.fenced.load(Ordering::Acquire) {
            return Ok(());
        }
        let marker = fence_path(ledgers_dir, self.id);
        let write = || -> io::Result<()> {
            let mut f = File::create(&marker)?;
            f.write_all(b"fenced\n")?;
            f.sync_all()
        };
        write().map_err(|e| StorageError::io(&marker, e))?;
        fsync_dir(ledgers_dir)?;
        self.fenced.store(true, Ordering::Release);
        Ok(())
    }

    /// Remove the ledger's files (record file first, then the marker) and
    /// make the removal durable. Missing files are fine.
    pub fn remove(ledgers_dir: &Path, id: LedgerId) -> Result<()> {
        Self::unlink(ledgers_dir, id)?;
        fsync_dir(ledgers_dir)
    }

    /// Remove the ledger's files (record file first, then the marker)
    /// without syncing the directory: a caller removing many makes them
    /// durable with one [`fsync_dir`]. Missing files are fine.
    pub fn unlink(ledgers_dir: &Path, id: LedgerId) -> Result<()> {
        for path in [log_path(ledgers_dir, id), fence_path(ledgers_dir, id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// Write `slices` (headers and payload chunks, already in order) at the
    /// durable end of the file. Partial writes are continued; nothing is
    /// copied. On error the caller must [`LedgerFile::rollback`].
    pub fn append(&self, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        let mut file = &self.file;
        file.seek(SeekFrom::Start(self.durable_len.load(Ordering::Acquire)))?;
        let mut slices = slices;
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write entries",
                    ))
                }
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Cut the file back to its durable length after a failed group write,
    /// so no partially written entry can be served later. If even that
    /// fails the ledger is marked broken and refuses further adds.
    pub fn rollback(&self) {
        let len = self.durable_len.load(Ordering::Acquire);
        if let Err(e) = self.file.set_len(len).and_then(|()| self.file.sync_all()) {
            tracing::error!(ledger = self.id, path = %self.path.display(), error = %e,
                "cannot cut failed write from ledger file; ledger marked broken");
            self.broken.store(true, Ordering::Release);
        }
    }

    /// The error later adds get once the ledger is broken.
    pub fn broken_error(&self) -> StorageError {
        StorageError::io(
            &self.path,
            io::Error::other("ledger failed after an earlier write/fsync error; it accepts no more adds"),
        )
    }

    /// Read the planned entries with one positional read and verify each
    /// entry's header and crc. Blocking: run on a blocking thread.
    pub fn read_planned(&self, plan: &ReadPlan) -> Result<Vec<Entry>> {
        let span = usize::try_from(plan.span)
            .map_err(|_| StorageError::io(&self.path, io::Error::other("read span too large")))?;
        let buf = read_exact_at_uninit(&self.file, span, plan.start)
            .map_err(|e| StorageError::io(&self.path, e))?;
        metrics::BYTES_READ_DISK.inc_by(plan.rows.iter().map(|r| u64::from(r.len)).sum());
        let buf = Bytes::from(buf);
        let mut entries = Vec::with_capacity(plan.rows.len());
        let mut at = 0usize;
        for row in &plan.rows {
            let corrupt = || StorageError::Corrupt {
                ledger: self.id,
                entry: row.entry_id,
            };
            let raw: &[u8; HEADER_LEN] = buf
                .get(at..at + HEADER_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(corrupt)?;
            let header = decode_header(raw).ok_or_else(corrupt)?;
            if header.row != *row {
                return Err(corrupt());
            }
            let start = at + HEADER_LEN;
            let end = start + row.len as usize;
            let payload = buf.get(start..end).ok_or_else(corrupt)?;
            if crc32c::crc32c_append(crc_seed(raw), payload) != header.crc {
                return Err(corrupt());
            }
            entries.push(Entry {
                row: *row,
                payload: buf.slice(start..end),
            });
            at = end;
        }
        Ok(entries)
    }

    /// Record entries that are now durable, in order, starting at the
    /// current durable end; returns the new durable length.
    pub fn publish(&self, rows: impl IntoIterator<Item = IndexRow>) -> u64 {
        let mut index = self.index.write();
        let mut end = self.durable_len.load(Ordering::Acquire);
        for row in rows {
            index.push(row, end);
            end += HEADER_LEN as u64 + u64::from(row.len);
        }
        self.durable_len.store(end, Ordering::Release);
        end
    }
}

/// `read_exact_at` into a fresh buffer without zero-filling it first (the
/// memset showed up at ~12% of broker CPU on catch-up reads).
fn read_exact_at_uninit(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut filled = 0usize;
    while filled < len {
        let at = offset
            .checked_add(filled as u64)
            .and_then(|o| libc::off_t::try_from(o).ok())
            .ok_or_else(|| io::Error::other("read offset overflows off_t"))?;
        // SAFETY: the destination is the vector's spare capacity past the
        // `filled` bytes already written by earlier preads, and at most
        // `len - filled` bytes are written; `set_len` below only covers
        // bytes the kernel reported as written.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(filled).cast::<libc::c_void>(),
                len - filled,
                at,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "ledger file shorter than its index",
            ));
        }
        filled += n as usize;
        // SAFETY: bytes 0..filled were written by pread.
        unsafe { buf.set_len(filled) };
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/x");
        let p = log_path(dir, 42);
        let name = p.file_name().and_then(|n| n.to_str()).expect("utf8 name");
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(parse_name(name, "log"), Some(42));
        assert_eq!(parse_name("00000000000000000042.fenced", "fenced"), Some(42));
        assert_eq!(parse_name("42.log", "log"), None);
        assert_eq!(parse_name("0000000000000000004x.log", "log"), None);
        assert_eq!(parse_name("99999999999999999999.log", "log"), None);
    }
}
