//! The bookie's checkpoint: how far the journal is in ledger storage.
//!
//! A checkpoint names the journal position before which every record is
//! durable in ledger storage (entry logs synced), so replay starts there and
//! the journal files before it are retired. Fences and deletes are journal
//! records too, so the checkpoint carries what they established: the fenced
//! ledgers, and the deleted ledgers whose entries may still sit in entry
//! logs (a scan must not bring them back; a ledger leaves this set once no
//! entry log holds it).
//!
//! The file `<dir>/checkpoint` is replaced atomically: written to
//! `checkpoint.tmp`, synced, renamed over, and the directory synced. So it
//! is always a whole checkpoint, the old or the new one; a checkpoint that
//! fails its crc is damage, not a torn write, and opening refuses it with a
//! message rather than replaying from a guess.
//!
//! Layout, little endian: magic u32 ("DLC1"), crc32c u32 of everything
//! after it, journal file u64, journal offset u64, fenced count u64, the
//! fenced ledger ids (u64 each), deleted count u64, the deleted ids.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use distlog_metadata::LedgerId;

use crate::error::{Result, StorageError};

use super::journal::JournalPosition;
use super::ledger_file::fsync_dir;

/// Marks a checkpoint file ("DLC1").
const MAGIC: u32 = 0x444C_4331;

/// Most ledger ids a checkpoint may list (a larger count is damage).
const MAX_IDS: u64 = 1 << 26;

/// A bookie checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Journal records before this position are in ledger storage.
    pub journal: JournalPosition,
    /// Ledgers fenced by records before the position.
    pub fenced: BTreeSet<LedgerId>,
    /// Ledgers deleted by records before the position whose entries may
    /// still be in entry logs.
    pub deleted: BTreeSet<LedgerId>,
}

/// Path of the checkpoint in `dir`.
pub(crate) fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

impl Checkpoint {
    /// Encode the checkpoint file's bytes.
    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(32 + 8 * (self.fenced.len() + self.deleted.len()));
        body.extend_from_slice(&self.journal.file.to_le_bytes());
        body.extend_from_slice(&self.journal.offset.to_le_bytes());
        for set in [&self.fenced, &self.deleted] {
            body.extend_from_slice(&(set.len() as u64).to_le_bytes());
            for id in set {
                body.extend_from_slice(&id.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(8 + body.len());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decode a checkpoint file's bytes; `None` if they are not one.
    fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let mut r = Reader(bytes);
        if r.u32()? != MAGIC {
            return None;
        }
        let crc = r.u32()?;
        if crc32c::crc32c(r.0) != crc {
            return None;
        }
        let journal = JournalPosition {
            file: r.u64()?,
            offset: r.u64()?,
        };
        let mut sets = [BTreeSet::new(), BTreeSet::new()];
        for set in &mut sets {
            let n = r.u64()?;
            if n > MAX_IDS {
                return None;
            }
            for _ in 0..n {
                set.insert(r.u64()?);
            }
        }
        if !r.0.is_empty() {
            return None;
        }
        let [fenced, deleted] = sets;
        Some(Checkpoint {
            journal,
            fenced,
            deleted,
        })
    }

    /// Replace the checkpoint in `dir` durably and atomically.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join("checkpoint.tmp");
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&self.encode())?;
            f.sync_all()
        };
        write().map_err(|e| StorageError::io(&tmp, e))?;
        let path = checkpoint_path(dir);
        std::fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
        fsync_dir(dir)
    }

    /// The checkpoint in `dir`: `None` when there is none yet (a new
    /// bookie); an error when the file is not a checkpoint.
    pub fn load(dir: &Path) -> Result<Option<Checkpoint>> {
        let path = checkpoint_path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        Checkpoint::decode(&bytes).map(Some).ok_or_else(|| {
            StorageError::io(
                &path,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the bookie checkpoint is damaged (bad magic, crc or length); the journal cannot be \
                     replayed from it: restore the data directory from a replica or backup, or remove the \
                     bookie's data and let its ledgers be re-replicated",
                ),
            )
        })
    }
}

/// Reads little-endian integers off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            journal: JournalPosition {
                file: 12,
                offset: 4096 + 64,
            },
            fenced: [3, 9, 27].into_iter().collect(),
            deleted: [5].into_iter().collect(),
        }
    }

    #[test]
    fn a_checkpoint_round_trips_and_replaces_the_previous_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Checkpoint::load(dir.path()).expect("load"),
            None,
            "no checkpoint yet"
        );
        Checkpoint::default().store(dir.path()).expect("store");
        assert_eq!(
            Checkpoint::load(dir.path()).expect("load"),
            Some(Checkpoint::default())
        );
        sample().store(dir.path()).expect("store");
        assert_eq!(Checkpoint::load(dir.path()).expect("load"), Some(sample()));
        // A leftover temporary file (a crash before the rename) is ignored.
        std::fs::write(dir.path().join("checkpoint.tmp"), b"half").expect("write");
        assert_eq!(Checkpoint::load(dir.path()).expect("load"), Some(sample()));
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_and_hostile_bytes_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        sample().store(dir.path()).expect("store");
        let good = std::fs::read(checkpoint_path(dir.path())).expect("read");
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(checkpoint_path(dir.path()), &bad).expect("write");
            assert!(Checkpoint::load(dir.path()).is_err(), "byte {at} flipped");
        }
        for len in 0..good.len() {
            std::fs::write(checkpoint_path(dir.path()), &good[..len]).expect("write");
            assert!(Checkpoint::load(dir.path()).is_err(), "cut to {len} bytes");
        }
        // A huge count with a matching crc is refused without allocating it.
        let mut body = Vec::new();
        body.extend_from_slice(&[0u8; 16]);
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut huge = MAGIC.to_le_bytes().to_vec();
        huge.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        huge.extend_from_slice(&body);
        assert_eq!(Checkpoint::decode(&huge), None);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 96) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (state >> (i % 8 * 8)) as u8).collect();
            let _ = Checkpoint::decode(&bytes);
        }
    }
}
