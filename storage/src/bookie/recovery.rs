//! Start-up of a journaled bookie (storage engine v2): the checkpoint, the
//! entry logs and the journal brought back to one consistent state.
//!
//! Steps, each safe to interrupt (a crash at any point recovers the same
//! way next time):
//! 1. Load the checkpoint. None and no journal file: a new bookie. None but
//!    journal files: refused (the position they start from is unknown, and
//!    guessing could drop or resurrect fences and deletes).
//! 2. Open ledger storage, rebuilding the index of every ledger the
//!    checkpoint does not list as deleted.
//! 3. Replay the journal from the checkpoint's position: adds go to ledger
//!    storage (it skips entries it already holds: flushed after the
//!    checkpoint, before the crash), fences and deletes to their sets.
//! 4. Flush ledger storage: every replayed entry is in synced entry logs.
//! 5. Store a checkpoint naming the start of a new journal file (after every
//!    existing one) and the fenced and deleted sets. Until this write
//!    completes, the previous checkpoint and journal still describe
//!    everything.
//! 6. Only then open the new journal file, recycling the old ones: a
//!    recycled file is renamed and overwritten, and its old records, which
//!    name another file, are never replayed again.
//!
//! Writing starts in a fresh file because replay crosses to the next file
//! only past a roll record, and the file replay stopped in has none: records
//! appended after a torn tail would be unreachable.

use std::collections::BTreeSet;
use std::path::Path;

use distlog_metadata::LedgerId;

use crate::error::{Result, StorageError};

use super::checkpoint::Checkpoint;
use super::journal::{self, JournalPosition, JournalWriter, Replayed};
use super::ledger_storage::LedgerStorage;

/// Sizes a journaled bookie is opened with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Bytes each journal file is preallocated to.
    pub journal_file_bytes: u64,
    /// Journal files kept for recycling once retired.
    pub journal_files_kept: usize,
    /// Size past which an entry log rolls.
    pub entry_log_bytes: u64,
}

/// A journaled bookie's state after start-up.
pub(crate) struct Recovered {
    /// Entry logs, index and write cache.
    pub storage: LedgerStorage,
    /// Fenced ledgers.
    pub fenced: BTreeSet<LedgerId>,
    /// Deleted ledgers whose records may still be in entry logs.
    pub deleted: BTreeSet<LedgerId>,
    /// The journal, positioned at the start of a fresh file that the stored
    /// checkpoint names.
    pub journal: JournalWriter,
    /// What start-up did, for its log line and tests.
    pub report: Report,
}

/// What start-up found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// There was no checkpoint: a new bookie.
    pub new: bool,
    /// Entries indexed from the entry logs.
    pub indexed: u64,
    /// Journal records replayed from the checkpoint on.
    pub replayed: u64,
    /// Replayed adds that ledger storage did not hold yet.
    pub added: u64,
    /// Bytes cut from a torn entry log tail.
    pub cut: u64,
    /// Where journal replay stopped.
    pub replay_end: JournalPosition,
}

/// Bring a journaled bookie's directories to one consistent state and
/// position its journal (see the module docs). Blocking.
pub(crate) fn recover(journal_dir: &Path, storage_dir: &Path, sizes: Sizes) -> Result<Recovered> {
    for dir in [journal_dir, storage_dir] {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    }
    let files = journal::list_files(journal_dir)?;
    let logs = super::entry_log::list_logs(storage_dir)?;
    let (checkpoint, new) = match Checkpoint::load(storage_dir)? {
        Some(c) => (c, false),
        None if files.is_empty() && logs.is_empty() => (Checkpoint::default(), true),
        None => {
            return Err(StorageError::io(
                storage_dir,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} journal files and {} entry logs but no checkpoint: the journal directory \
                         belongs to another bookie's data directory, or the checkpoint was removed; point \
                         --journal-dir and --data-dir at the same bookie's directories",
                        files.len(),
                        logs.len()
                    ),
                ),
            ))
        }
    };
    let (storage, opened) = LedgerStorage::open(storage_dir, &checkpoint.deleted, sizes.entry_log_bytes)?;
    let mut report = Report {
        new,
        indexed: opened.entries,
        cut: opened.cut,
        ..Report::default()
    };
    let mut fenced = checkpoint.fenced.clone();
    let mut deleted = checkpoint.deleted.clone();
    let replayed = if new {
        None
    } else {
        Some(journal::replay(
            journal_dir,
            checkpoint.journal,
            |record| match record {
                Replayed::Add { ledger, row, payload } => {
                    if !deleted.contains(&ledger) && storage.add(ledger, row, vec![payload]) {
                        report.added += 1;
                    }
                }
                Replayed::Fence(ledger) => {
                    fenced.insert(ledger);
                }
                Replayed::Delete(ledger) => {
                    fenced.remove(&ledger);
                    deleted.insert(ledger);
                    storage.delete(ledger);
                }
            },
        )?)
    };
    if let Some(outcome) = &replayed {
        report.replayed = outcome.records;
        report.replay_end = outcome.end;
    }
    storage.flush()?;
    let next = files
        .last()
        .map_or(1, |last| last + 1)
        .max(checkpoint.journal.file + 1);
    let position = JournalPosition {
        file: next,
        offset: 0,
    };
    Checkpoint {
        journal: position,
        fenced: fenced.clone(),
        deleted: deleted.clone(),
    }
    .store(storage_dir)?;
    // Every old file is recyclable now; start takes the oldest for the new
    // file, retire removes what passes the number kept.
    let mut journal = JournalWriter::start(journal_dir, next, sizes.journal_file_bytes, files)?;
    journal.retire(std::iter::empty(), sizes.journal_files_kept)?;
    tracing::info!(
        journal_dir = %journal_dir.display(),
        data_dir = %storage_dir.display(),
        new,
        indexed = report.indexed,
        replayed = report.replayed,
        added = report.added,
        cut_bytes = report.cut,
        fenced = fenced.len(),
        "journaled bookie recovered"
    );
    Ok(Recovered {
        storage,
        fenced,
        deleted,
        journal,
        report,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::bookie::journal::{GroupRecord, RecordKind, NO_ROW};
    use crate::ledger::IndexRow;

    const SIZES: Sizes = Sizes {
        journal_file_bytes: 4096,
        journal_files_kept: 2,
        entry_log_bytes: 1 << 20,
    };

    fn row(entry_id: u64, len: u32) -> IndexRow {
        IndexRow {
            entry_id,
            first_seq: entry_id * 2,
            record_count: 2,
            txid: entry_id,
            len,
        }
    }

    fn bytes(ledger: LedgerId, entry: u64) -> Bytes {
        Bytes::from(vec![(ledger * 16 + entry) as u8; 200])
    }

    /// Append one group: adds of `entries` to each of `ledgers`, then `tail`.
    fn group(
        j: &mut JournalWriter,
        ledgers: &[LedgerId],
        entries: std::ops::Range<u64>,
        tail: &[(RecordKind, LedgerId)],
    ) {
        let payloads: Vec<(LedgerId, u64, [Bytes; 1])> = ledgers
            .iter()
            .flat_map(|&l| entries.clone().map(move |e| (l, e, [bytes(l, e)])))
            .collect();
        let mut records: Vec<GroupRecord<'_>> = payloads
            .iter()
            .map(|(l, e, p)| GroupRecord {
                kind: RecordKind::Add,
                ledger: *l,
                row: row(*e, 200),
                payload: p,
            })
            .collect();
        records.extend(tail.iter().map(|&(kind, ledger)| GroupRecord {
            kind,
            ledger,
            row: NO_ROW,
            payload: &[],
        }));
        j.append_group(&records).unwrap();
    }

    fn entry_ids(storage: &LedgerStorage, ledger: LedgerId) -> Vec<u64> {
        let got = storage.read(ledger, 0, u64::MAX, usize::MAX).unwrap();
        for e in &got {
            assert_eq!(e.payload, bytes(ledger, e.row.entry_id));
        }
        got.iter().map(|e| e.row.entry_id).collect()
    }

    #[test]
    fn a_new_bookie_then_a_crash_then_recovery_keeps_every_journaled_record() {
        let root = tempfile::tempdir().unwrap();
        let (jd, sd) = (root.path().join("journal"), root.path().join("data"));
        let first = recover(&jd, &sd, SIZES).unwrap();
        assert!(first.report.new);
        assert_eq!(
            Checkpoint::load(&sd).unwrap().unwrap().journal,
            JournalPosition { file: 1, offset: 0 }
        );
        let mut j = first.journal;
        // Enough groups to roll the 4 KiB journal files several times.
        for g in 0..6u64 {
            let tail: &[(RecordKind, LedgerId)] = match g {
                2 => &[(RecordKind::Fence, 2)],
                4 => &[(RecordKind::Delete, 3)],
                _ => &[],
            };
            group(&mut j, &[1, 2, 3], g * 2..g * 2 + 2, tail);
        }
        let files_before = journal::list_files(&jd).unwrap();
        assert!(files_before.len() >= 3, "{files_before:?}");
        j.current().sync().unwrap();
        drop(j); // a crash: nothing was checkpointed or flushed

        let second = recover(&jd, &sd, SIZES).unwrap();
        assert!(!second.report.new);
        assert_eq!(second.report.replayed, 6 * 6 + 2);
        assert_eq!(
            second.report.added,
            6 * 4 + 10,
            "ledger 3's adds after its delete are none"
        );
        assert_eq!(entry_ids(&second.storage, 1), (0..12).collect::<Vec<_>>());
        assert_eq!(entry_ids(&second.storage, 2), (0..12).collect::<Vec<_>>());
        assert!(entry_ids(&second.storage, 3).is_empty());
        assert_eq!(second.fenced, BTreeSet::from([2]));
        assert_eq!(second.deleted, BTreeSet::from([3]));
        let checkpoint = Checkpoint::load(&sd).unwrap().unwrap();
        assert_eq!(checkpoint.journal, second.journal.position());
        assert!(checkpoint.journal.file > *files_before.last().unwrap());
        assert_eq!(
            (checkpoint.fenced.clone(), checkpoint.deleted.clone()),
            (second.fenced.clone(), second.deleted.clone())
        );
        // Old files were recycled (one renamed to the new file) or removed.
        assert!(journal::list_files(&jd).unwrap().len() <= SIZES.journal_files_kept + 1);

        // More writes in the new file, another crash: both generations survive.
        let mut j = second.journal;
        group(&mut j, &[1], 12..14, &[(RecordKind::Fence, 1)]);
        j.current().sync().unwrap();
        drop(j);
        drop(second.storage);
        let third = recover(&jd, &sd, SIZES).unwrap();
        assert_eq!(third.report.replayed, 3);
        assert_eq!(
            third.report.indexed, 24,
            "the first recovery flushed ledgers 1 and 2"
        );
        assert_eq!(entry_ids(&third.storage, 1), (0..14).collect::<Vec<_>>());
        assert_eq!(third.fenced, BTreeSet::from([1, 2]));
    }

    #[test]
    fn a_recovery_interrupted_before_its_checkpoint_is_done_again() {
        let root = tempfile::tempdir().unwrap();
        let (jd, sd) = (root.path().join("journal"), root.path().join("data"));
        let mut j = recover(&jd, &sd, SIZES).unwrap().journal;
        group(&mut j, &[5], 0..3, &[(RecordKind::Fence, 5)]);
        j.current().sync().unwrap();
        drop(j);
        // A recovery that flushed the entry logs and crashed before its
        // checkpoint: the entries are in ledger storage, the checkpoint is old.
        {
            let cp = Checkpoint::load(&sd).unwrap().unwrap();
            let (storage, _) = LedgerStorage::open(&sd, &cp.deleted, SIZES.entry_log_bytes).unwrap();
            journal::replay(&jd, cp.journal, |r| {
                if let Replayed::Add { ledger, row, payload } = r {
                    storage.add(ledger, row, vec![payload]);
                }
            })
            .unwrap();
            assert_eq!(storage.flush().unwrap(), 3);
        }
        let again = recover(&jd, &sd, SIZES).unwrap();
        assert_eq!(again.report.indexed, 3);
        assert_eq!(again.report.replayed, 4);
        assert_eq!(
            again.report.added, 0,
            "every replayed add was already in ledger storage"
        );
        assert_eq!(entry_ids(&again.storage, 5), vec![0, 1, 2]);
        assert_eq!(
            again.fenced,
            BTreeSet::from([5]),
            "the fence came back from the journal"
        );
    }

    #[test]
    fn journal_files_without_a_checkpoint_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let (jd, sd) = (root.path().join("journal"), root.path().join("data"));
        drop(recover(&jd, &sd, SIZES).unwrap());
        std::fs::remove_file(crate::bookie::checkpoint::checkpoint_path(&sd)).unwrap();
        let refused = recover(&jd, &sd, SIZES).err().expect("refused");
        assert!(refused.to_string().contains("no checkpoint"), "{refused}");
    }
}
