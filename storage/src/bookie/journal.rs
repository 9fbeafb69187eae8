//! The journal: one write-ahead log per bookie, BookKeeper's design.
//!
//! Every add, whatever its ledger, and every fence and delete is appended to
//! the current journal file; one `fdatasync` makes a whole group durable, so
//! a thousand partitions cost one fsync per group rather than a thousand.
//! Ledger storage is written behind the journal and flushed at checkpoints;
//! a checkpoint names the journal position up to which everything is in
//! ledger storage, and the journal files before it are retired.
//!
//! Files are `<dir>/<seq:020>.jnl`, each a sequence of records, every record
//! a fixed 64-byte header followed by the payload, little endian:
//!
//! | offset | field          | type |
//! |--------|----------------|------|
//! | 0      | magic          | u32  |
//! | 4      | crc32c         | u32  |
//! | 8      | kind           | u8   |
//! | 9      | zero           | 3 B  |
//! | 12     | payload len    | u32  |
//! | 16     | file seq       | u64  |
//! | 24     | ledger id      | u64  |
//! | 32     | entry id       | u64  |
//! | 40     | first seq      | u64  |
//! | 48     | txid           | u64  |
//! | 56     | record count   | u32  |
//! | 60     | zero           | u32  |
//!
//! The crc32c covers header bytes 8..64 and then the payload. Kinds: add,
//! fence, delete, and roll (the file is full, the journal goes on in the
//! next one). Files are preallocated and recycled (a retired file is renamed
//! to the next sequence number and overwritten), so a file holds, after its
//! last record, zeros or records of an earlier life; the file sequence
//! number inside every record tells them apart. Replay stops at the first
//! record that is short, has a bad magic, a bad crc or another file's
//! sequence number, and goes on to the next file only past a roll record.
//!
//! Durability argument: a group is acknowledged only after the fdatasync of
//! its file returned, and files are synced in journal order (a group in a
//! new file waits for the sync of the old one, roll record included). So
//! every acknowledged record lies before the first bad record of replay, and
//! replay keeps it; what replay drops was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use distlog_metadata::LedgerId;

use crate::error::{Result, StorageError};
use crate::ledger::IndexRow;

use super::ledger_file::fsync_dir;

/// Marks the start of every journal record ("DLJ1").
const MAGIC: u32 = 0x444C_4A31;

/// Size of the fixed journal record header in bytes.
pub(crate) const RECORD_HEADER_LEN: usize = 64;

/// The row stored in records that are not adds.
pub(crate) const NO_ROW: IndexRow = IndexRow {
    entry_id: 0,
    first_seq: 0,
    record_count: 0,
    txid: 0,
    len: 0,
};

/// Largest payload replay accepts: an add is one entry, bounded well below
/// this by the broker's batch limits; a larger length is garbage.
const MAX_PAYLOAD: u32 = 256 << 20;

/// What a journal record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// An entry of a ledger (header row plus payload).
    Add = 1,
    /// The ledger is fenced: no add but recovery adds from now on.
    Fence = 2,
    /// The ledger is deleted.
    Delete = 3,
    /// The file is full: the journal goes on in the next file.
    Roll = 4,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Add),
            2 => Some(RecordKind::Fence),
            3 => Some(RecordKind::Delete),
            4 => Some(RecordKind::Roll),
            _ => None,
        }
    }
}

/// A position in the journal: which file, and the byte offset in it.
/// Positions order as the journal was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct JournalPosition {
    /// The file's sequence number.
    pub file: u64,
    /// Bytes of that file before the position.
    pub offset: u64,
}

/// One record read back by replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replayed {
    /// An entry added to a ledger.
    Add {
        /// The ledger.
        ledger: LedgerId,
        /// The entry's index row (`len` is the payload length).
        row: IndexRow,
        /// The payload as added.
        payload: Bytes,
    },
    /// A ledger was fenced.
    Fence(LedgerId),
    /// A ledger was deleted.
    Delete(LedgerId),
}

/// Encode the header of one record of file `seq`. For anything but an add
/// `row` is ignored (stored as zeros) and `payload` must be empty.
pub(crate) fn encode_record_header(
    kind: RecordKind,
    seq: u64,
    ledger: LedgerId,
    row: &IndexRow,
    payload: &[Bytes],
) -> [u8; RECORD_HEADER_LEN] {
    let row = match kind {
        RecordKind::Add => *row,
        RecordKind::Fence | RecordKind::Delete | RecordKind::Roll => NO_ROW,
    };
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[8] = kind as u8;
    h[12..16].copy_from_slice(&row.len.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&ledger.to_le_bytes());
    h[32..40].copy_from_slice(&row.entry_id.to_le_bytes());
    h[40..48].copy_from_slice(&row.first_seq.to_le_bytes());
    h[48..56].copy_from_slice(&row.txid.to_le_bytes());
    h[56..60].copy_from_slice(&row.record_count.to_le_bytes());
    let crc = payload.iter().fold(crc32c::crc32c(&h[8..]), |crc, chunk| {
        crc32c::crc32c_append(crc, chunk)
    });
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

fn u32_at(raw: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&raw[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(raw: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A decoded header whose crc is not yet checked against the payload.
struct RawRecord {
    kind: RecordKind,
    crc: u32,
    ledger: LedgerId,
    row: IndexRow,
}

/// Decode a header of file `seq`; `None` if it cannot be a record of that
/// file (bad magic, unknown kind, nonzero padding, another file's sequence
/// number, an impossible length).
fn decode_record_header(raw: &[u8; RECORD_HEADER_LEN], seq: u64) -> Option<RawRecord> {
    if u32_at(raw, 0) != MAGIC || raw[9..12] != [0; 3] || u32_at(raw, 60) != 0 {
        return None;
    }
    if u64_at(raw, 16) != seq {
        return None;
    }
    let kind = RecordKind::from_u8(raw[8])?;
    let row = IndexRow {
        len: u32_at(raw, 12),
        entry_id: u64_at(raw, 32),
        first_seq: u64_at(raw, 40),
        txid: u64_at(raw, 48),
        record_count: u32_at(raw, 56),
    };
    if row.len > MAX_PAYLOAD || (kind != RecordKind::Add && row != NO_ROW) {
        return None;
    }
    Some(RawRecord {
        kind,
        crc: u32_at(raw, 4),
        ledger: u64_at(raw, 24),
        row,
    })
}

/// Path of journal file `seq` in `dir`.
pub(crate) fn journal_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.jnl"))
}

/// The sequence numbers of the journal files in `dir`, ascending.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<u64>> {
    list_numbered(dir, ".jnl")
}

/// The numbers `n` of the files `<n:020><ext>` in `dir`, ascending (journal
/// files and entry logs are named so).
pub(crate) fn list_numbered(dir: &Path, ext: &str) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(ext)) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(id) = stem.parse() {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Reserve `len` bytes of `file` on disk, so later writes into it do not
/// allocate (and its fdatasyncs flush data only). A file system that cannot
/// preallocate gets a plain length instead: writes still work, each sync
/// then also records the allocation.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let Ok(len_off) = libc::off_t::try_from(len) else {
        return Err(io::Error::other("journal file size overflows off_t"));
    };
    // SAFETY: fallocate on a valid, owned file descriptor; no memory is shared.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(len),
        _ => Err(e),
    }
}

/// One journal file being written.
#[derive(Debug)]
pub(crate) struct JournalFile {
    /// Its sequence number (also stored in every record it holds).
    pub seq: u64,
    /// Its path (for error messages).
    pub path: PathBuf,
    /// The open file: the journal writer writes, the force-write stage syncs.
    pub file: File,
}

impl JournalFile {
    /// fdatasync the file: every record written to it so far is durable.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| StorageError::io(&self.path, e))
    }
}

/// One record of a group to append: an add (row and payload chunks), or a
/// fence or delete of `ledger` (row [`NO_ROW`], no payload).
pub(crate) struct GroupRecord<'a> {
    /// What the record says.
    pub kind: RecordKind,
    /// Its ledger.
    pub ledger: LedgerId,
    /// Its row (an add's; [`NO_ROW`] otherwise).
    pub row: IndexRow,
    /// Its payload chunks (empty but for an add).
    pub payload: &'a [Bytes],
}

/// Appends groups of records to the journal, rolling to a new file when the
/// current one is full. Owned by the thread that writes (the group
/// committer); syncing is the force-write stage's job (via the shared
/// [`JournalFile`]), so writing the next group overlaps the sync of this one.
///
/// Rolling writes a roll record at the end of the full file: replay goes on
/// to the next file only past one. The force-write stage syncs files in
/// journal order, so a group of the new file is acknowledged only once the
/// old file, roll record included, is durable; and a file whose end was
/// lost in a crash (no roll record) ends replay, whatever the next file
/// holds (none of it was acknowledged).
pub(crate) struct JournalWriter {
    dir: PathBuf,
    file_bytes: u64,
    current: Arc<JournalFile>,
    /// The current file's size on disk (preallocated).
    len: u64,
    offset: u64,
    /// Retired files that are renamed and overwritten instead of
    /// allocating new ones (oldest first).
    recyclable: Vec<u64>,
}

impl JournalWriter {
    /// Start writing a new journal file `seq` in `dir`, recycling one of
    /// `recyclable` (retired files of this directory) if any.
    /// `file_bytes` is the size each file is preallocated to; a group larger
    /// than that gets a file of its own size.
    pub fn start(dir: &Path, seq: u64, file_bytes: u64, mut recyclable: Vec<u64>) -> Result<JournalWriter> {
        recyclable.sort_unstable();
        let (current, len) = open_file(dir, &mut recyclable, seq, file_bytes)?;
        Ok(JournalWriter {
            dir: dir.to_path_buf(),
            file_bytes,
            current: Arc::new(current),
            len,
            offset: 0,
            recyclable,
        })
    }

    /// Where the next record goes.
    pub fn position(&self) -> JournalPosition {
        JournalPosition {
            file: self.current.seq,
            offset: self.offset,
        }
    }

    /// The file being written.
    pub fn current(&self) -> &Arc<JournalFile> {
        &self.current
    }

    /// Make room for a group of `bytes` (headers included) and return the
    /// sequence number its records must carry. Rolls to a new file when the
    /// current one has not enough left (writing the roll record into it).
    /// Call before encoding the group's headers.
    pub fn prepare(&mut self, bytes: u64) -> Result<u64> {
        let needed = bytes + RECORD_HEADER_LEN as u64; // room for the roll record after it
        if self.offset + needed <= self.len {
            return Ok(self.current.seq);
        }
        if self.offset > 0 {
            let roll = encode_record_header(RecordKind::Roll, self.current.seq, 0, &NO_ROW, &[]);
            self.write(&mut [IoSlice::new(&roll)])?;
            let next = self.current.seq + 1;
            let (file, len) = open_file(&self.dir, &mut self.recyclable, next, needed.max(self.file_bytes))?;
            self.current = Arc::new(file);
            self.len = len;
            self.offset = 0;
            tracing::debug!(file = next, "journal rolled to a new file");
        }
        if needed > self.len {
            // A group larger than a whole file: this (still empty) file grows for it.
            preallocate(&self.current.file, needed).map_err(|e| StorageError::io(&self.current.path, e))?;
            self.current
                .file
                .sync_all()
                .map_err(|e| StorageError::io(&self.current.path, e))?;
            self.len = needed;
        }
        Ok(self.current.seq)
    }

    /// Write a prepared group's slices (headers and payload chunks, in
    /// order) at the current position; returns the position after them.
    /// Nothing is copied. On an error the journal is unusable: the caller
    /// fails the group and every later add (a partial record may be on disk,
    /// and replay stops there).
    pub fn write(&mut self, slices: &mut [IoSlice<'_>]) -> Result<JournalPosition> {
        let total: u64 = slices.iter().map(|s| s.len() as u64).sum();
        write_all_at(&self.current.file, self.offset, slices)
            .map_err(|e| StorageError::io(&self.current.path, e))?;
        self.offset += total;
        Ok(self.position())
    }

    /// Append one group of records (prepare, encode, one vectored write):
    /// what the group committer does for each group. Returns the position
    /// after the group; errors as [`JournalWriter::write`].
    pub fn append_group(&mut self, records: &[GroupRecord<'_>]) -> Result<JournalPosition> {
        let bytes: u64 = records
            .iter()
            .map(|r| RECORD_HEADER_LEN as u64 + r.payload.iter().map(|c| c.len() as u64).sum::<u64>())
            .sum();
        let seq = self.prepare(bytes)?;
        let headers: Vec<[u8; RECORD_HEADER_LEN]> = records
            .iter()
            .map(|r| encode_record_header(r.kind, seq, r.ledger, &r.row, r.payload))
            .collect();
        let mut slices = gather(&headers, records.iter().map(|r| r.payload));
        self.write(&mut slices)
    }

    /// Hand retired journal files (wholly before a checkpoint) over for
    /// recycling; at most `keep` are kept, older ones are deleted.
    pub fn retire(&mut self, seqs: impl IntoIterator<Item = u64>, keep: usize) -> Result<()> {
        let current = self.current.seq;
        self.recyclable.extend(seqs.into_iter().filter(|&s| s != current));
        self.recyclable.sort_unstable();
        self.recyclable.dedup();
        while self.recyclable.len() > keep {
            let seq = self.recyclable.remove(0);
            let path = journal_path(&self.dir, seq);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
        Ok(())
    }
}

/// Open journal file `seq` in `dir` with at least `size` bytes on disk,
/// durably named: the oldest of `recyclable` renamed, or a new file
/// preallocated. Returns the file and its size.
fn open_file(dir: &Path, recyclable: &mut Vec<u64>, seq: u64, size: u64) -> Result<(JournalFile, u64)> {
    let path = journal_path(dir, seq);
    let io_err = |e| StorageError::io(&path, e);
    let file = if recyclable.is_empty() {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err)?
    } else {
        let old = recyclable.remove(0);
        std::fs::rename(journal_path(dir, old), &path).map_err(io_err)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err)?
    };
    let mut len = file.metadata().map_err(io_err)?.len();
    if len < size {
        preallocate(&file, size).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        len = size;
    }
    fsync_dir(dir)?;
    Ok((JournalFile { seq, path, file }, len))
}

/// What replay found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayOutcome {
    /// Records replayed (roll records not counted).
    pub records: u64,
    /// Where replay stopped: after the last good record.
    pub end: JournalPosition,
    /// Every journal file in the directory, ascending: all of them are
    /// retired once the replayed records are in ledger storage.
    pub files: Vec<u64>,
}

/// Replay every record from `from` on, in journal order, calling `visit`
/// for each. Files before `from.file` are skipped (their records are in
/// ledger storage). Replay goes from one file to the next only past a roll
/// record, and stops at the first record that is not a good record of its
/// file: nothing after it was acknowledged (see [`JournalWriter`]).
pub(crate) fn replay(
    dir: &Path,
    from: JournalPosition,
    mut visit: impl FnMut(Replayed),
) -> Result<ReplayOutcome> {
    let files = list_files(dir)?;
    let mut outcome = ReplayOutcome {
        end: from,
        files: files.clone(),
        ..ReplayOutcome::default()
    };
    let mut expected = from.file;
    for seq in files.into_iter().filter(|&s| s >= from.file) {
        if seq != expected {
            break; // the next file of the journal is missing (or never existed)
        }
        let start = if seq == from.file { from.offset } else { 0 };
        let (end, rolled) = replay_file(dir, seq, start, &mut |r| {
            outcome.records += 1;
            visit(r);
        })?;
        outcome.end = JournalPosition {
            file: seq,
            offset: end,
        };
        if !rolled {
            break;
        }
        expected = seq + 1;
    }
    Ok(outcome)
}

/// Replay one file from `start`; returns the offset after its last good
/// add, fence or delete, and whether a roll record follows it (the journal
/// goes on in the next file).
fn replay_file(dir: &Path, seq: u64, start: u64, visit: &mut dyn FnMut(Replayed)) -> Result<(u64, bool)> {
    let mut rolled = false;
    let end = read_records(&journal_path(dir, seq), seq, start, &mut |rec, _| {
        let replayed = match rec.kind {
            RecordKind::Add => Replayed::Add {
                ledger: rec.ledger,
                row: rec.row,
                payload: rec.payload,
            },
            RecordKind::Fence => Replayed::Fence(rec.ledger),
            RecordKind::Delete => Replayed::Delete(rec.ledger),
            RecordKind::Roll => {
                rolled = true;
                return false;
            }
        };
        visit(replayed);
        true
    })?;
    Ok((end, rolled))
}

/// One good record read back from a file of records.
pub(crate) struct Record {
    /// What it says.
    pub kind: RecordKind,
    /// Its ledger (0 for a roll).
    pub ledger: LedgerId,
    /// Its row (zeros but for an add).
    pub row: IndexRow,
    /// Its payload, crc-checked.
    pub payload: Bytes,
}

/// Read the records of the file at `path` (records of file `seq`) from
/// `start`, calling `visit` with each good one and its offset until it
/// returns false or a record is short, has a bad magic, a bad crc or
/// another file's sequence number. Returns the offset after the last
/// record visited. Shared by journal replay and the entry log scan (both
/// use this record format).
pub(crate) fn read_records(
    path: &Path,
    seq: u64,
    start: u64,
    visit: &mut dyn FnMut(Record, u64) -> bool,
) -> Result<u64> {
    let io_err = |e| StorageError::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if start > len {
        return Ok(start);
    }
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut pos = start;
    loop {
        if len - pos < RECORD_HEADER_LEN as u64 {
            return Ok(pos);
        }
        let mut raw = [0u8; RECORD_HEADER_LEN];
        reader.read_exact(&mut raw).map_err(io_err)?;
        let Some(rec) = decode_record_header(&raw, seq) else {
            return Ok(pos);
        };
        let payload_len = u64::from(rec.row.len);
        if payload_len > len - pos - RECORD_HEADER_LEN as u64 {
            return Ok(pos);
        }
        let mut payload = vec![0u8; rec.row.len as usize];
        reader.read_exact(&mut payload).map_err(io_err)?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&raw[8..]), &payload);
        if crc != rec.crc {
            return Ok(pos);
        }
        let record = Record {
            kind: rec.kind,
            ledger: rec.ledger,
            row: rec.row,
            payload: Bytes::from(payload),
        };
        if !visit(record, pos) {
            return Ok(pos);
        }
        pos += RECORD_HEADER_LEN as u64 + payload_len;
    }
}

/// Check a record read back at a known place: its header must be that of
/// an add of `ledger`/`row` in file `seq`, and its crc must cover
/// `payload`. For reads of ledger storage by location.
pub(crate) fn verify_add(
    raw: &[u8; RECORD_HEADER_LEN],
    seq: u64,
    ledger: LedgerId,
    row: &IndexRow,
    payload: &[u8],
) -> bool {
    decode_record_header(raw, seq).is_some_and(|rec| {
        rec.kind == RecordKind::Add
            && rec.ledger == ledger
            && rec.row == *row
            && crc32c::crc32c_append(crc32c::crc32c(&raw[8..]), payload) == rec.crc
    })
}

/// The slices of a run of records: each header, then its payload's
/// non-empty chunks (nothing copied). Shared by the journal and entry logs.
pub(crate) fn gather<'a>(
    headers: &'a [[u8; RECORD_HEADER_LEN]],
    payloads: impl Iterator<Item = &'a [Bytes]>,
) -> Vec<IoSlice<'a>> {
    let mut slices = Vec::with_capacity(headers.len() * 2);
    for (header, payload) in headers.iter().zip(payloads) {
        slices.push(IoSlice::new(header));
        slices.extend(payload.iter().filter(|c| !c.is_empty()).map(|c| IoSlice::new(c)));
    }
    slices
}

/// Write `slices` at `offset` of `file`, continuing partial writes; nothing
/// is copied.
pub(crate) fn write_all_at(file: &File, offset: u64, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    let mut slices = slices;
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
