//! Journaled committer tests on real directories: pipelined adds, fences,
//! order checks, deletes, checkpoints retiring journal files, and crashes
//! (the committer stopped with no checkpoint) recovered by start-up.

use std::thread::JoinHandle;

use bytes::Bytes;

use super::*;
use crate::bookie::journal::list_files;
use crate::bookie::recovery::Sizes;

const SIZES: Sizes = Sizes {
    journal_file_bytes: 8192,
    journal_files_kept: 2,
    entry_log_bytes: 1 << 20,
};

/// A journaled bookie's committer on `root`, as start-up would run it.
struct Harness {
    shared: Arc<Journaled>,
    tx: mpsc::Sender<Op>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Harness {
    fn open(root: &Path) -> Harness {
        let (shared, tx, thread) = start_on(root, SIZES);
        Harness {
            shared,
            tx,
            thread: Some(thread),
        }
    }

    /// Send an add; the receiver gets its answer.
    fn add(
        &self,
        ledger: LedgerId,
        entry: u64,
        prev: Option<u64>,
        recovery: bool,
    ) -> oneshot::Receiver<Result<()>> {
        let (reply, answer) = oneshot::channel();
        let req = AddRequest {
            ledger_id: ledger,
            row: row(entry),
            prev_entry_id: prev,
            lac: entry.checked_sub(1),
            payload: payload(ledger, entry),
            recovery,
        };
        self.tx.send(Op::Add(req, reply)).unwrap();
        answer
    }

    fn fence(&self, ledger: LedgerId) -> Result<Option<IndexRow>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Op::Fence(ledger, reply)).unwrap();
        answer.blocking_recv().unwrap()
    }

    fn delete(&self, ledger: LedgerId) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Op::Delete(ledger, reply)).unwrap();
        answer.blocking_recv().unwrap()
    }

    /// Entry ids held for `ledger`, each checked against its payload.
    fn entries(&self, ledger: LedgerId) -> Vec<u64> {
        let got = self.shared.storage.read(ledger, 0, u64::MAX, usize::MAX).unwrap();
        for e in &got {
            assert_eq!(e.row, row(e.row.entry_id));
            assert_eq!(e.payload, payload(ledger, e.row.entry_id).concat());
        }
        got.iter().map(|e| e.row.entry_id).collect()
    }

    /// Stop the committer (queued work finishes) without a checkpoint: to
    /// the directories, the same as a crash after the last sync.
    fn stop(mut self) {
        self.tx.send(Op::Shutdown).unwrap();
        self.thread.take().unwrap().join().unwrap().unwrap();
    }
}

fn row(entry_id: u64) -> IndexRow {
    IndexRow {
        entry_id,
        first_seq: entry_id * 3,
        record_count: 3,
        txid: entry_id,
        len: 300,
    }
}

/// 300 bytes naming ledger and entry, in three chunks.
fn payload(ledger: LedgerId, entry: u64) -> Vec<Bytes> {
    (0..3u8)
        .map(|c| Bytes::from(vec![(ledger as u8).wrapping_mul(7) ^ (entry as u8) ^ c; 100]))
        .collect()
}

fn ok(answer: oneshot::Receiver<Result<()>>) {
    answer.blocking_recv().unwrap().unwrap();
}

#[test]
fn pipelined_adds_are_acknowledged_once_durable_and_survive_a_crash() {
    let root = tempfile::tempdir().unwrap();
    let h = Harness::open(root.path());
    // Sent in waves without waiting: later adds follow entries still in
    // flight, and each wave's group fits a journal file (so files roll).
    for wave in 0..12u64 {
        let answers: Vec<_> = (wave * 5..wave * 5 + 5)
            .flat_map(|e| (1..=3).map(move |l| (l, e)))
            .map(|(l, e)| h.add(l, e, e.checked_sub(1), false))
            .collect();
        answers.into_iter().for_each(ok);
    }
    for l in 1..=3 {
        assert_eq!(h.entries(l), (0..60).collect::<Vec<_>>());
        assert_eq!(h.shared.lac.get(l), Some(58));
    }
    assert!(
        list_files(&root.path().join("journal")).unwrap().len() > 2,
        "the journal rolled"
    );
    h.stop();

    let h = Harness::open(root.path());
    for l in 1..=3 {
        assert_eq!(
            h.entries(l),
            (0..60).collect::<Vec<_>>(),
            "ledger {l} after the crash"
        );
    }
    // The next add follows the recovered last entry.
    ok(h.add(1, 60, Some(59), false));
    h.stop();
}

#[test]
fn a_fence_answers_the_last_entry_refuses_the_writer_and_admits_recovery() {
    let root = tempfile::tempdir().unwrap();
    let h = Harness::open(root.path());
    let answers: Vec<_> = (0..5).map(|e| h.add(7, e, e.checked_sub(1), false)).collect();
    // The fence is queued behind the adds: its answer counts all of them.
    assert_eq!(h.fence(7).unwrap().map(|r| r.entry_id), Some(4));
    answers.into_iter().for_each(ok);
    let refused = h.add(7, 5, Some(4), false).blocking_recv().unwrap();
    assert!(matches!(refused, Err(StorageError::Fenced(7))), "{refused:?}");
    ok(h.add(7, 5, Some(4), true));
    ok(h.add(7, 3, Some(2), true)); // held already: acknowledged as is
    assert_eq!(h.entries(7), vec![0, 1, 2, 3, 4, 5]);
    h.stop();

    let h = Harness::open(root.path());
    let refused = h.add(7, 6, Some(5), false).blocking_recv().unwrap();
    assert!(
        matches!(refused, Err(StorageError::Fenced(7))),
        "the fence survived: {refused:?}"
    );
    assert_eq!(h.entries(7), vec![0, 1, 2, 3, 4, 5]);
    h.stop();
}

#[test]
fn an_add_that_does_not_follow_the_last_entry_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let h = Harness::open(root.path());
    ok(h.add(2, 0, None, false));
    let refused = h.add(2, 2, Some(1), false).blocking_recv().unwrap();
    assert!(
        matches!(
            refused,
            Err(StorageError::OutOfOrder {
                ledger: 2,
                last: Some(0),
                prev: Some(1)
            })
        ),
        "{refused:?}"
    );
    let first_again = h.add(2, 0, None, false).blocking_recv().unwrap();
    assert!(
        matches!(first_again, Err(StorageError::OutOfOrder { .. })),
        "{first_again:?}"
    );
    let unknown = h.add(3, 4, Some(3), false).blocking_recv().unwrap();
    assert!(
        matches!(unknown, Err(StorageError::OutOfOrder { last: None, .. })),
        "{unknown:?}"
    );
    ok(h.add(2, 1, Some(0), false));
    assert_eq!(h.entries(2), vec![0, 1]);
    h.stop();
}

#[test]
fn a_checkpoint_lets_journal_files_go_and_a_deleted_ledger_stays_deleted() {
    let root = tempfile::tempdir().unwrap();
    let jd = root.path().join("journal");
    let h = Harness::open(root.path());
    for e in 0..80 {
        ok(h.add(4, e, e.checked_sub(1), false));
        ok(h.add(5, e, e.checked_sub(1), false));
    }
    h.delete(5).unwrap();
    assert!(h.entries(5).is_empty());
    let before = list_files(&jd).unwrap().len();
    assert!(before > JOURNAL_FILES_KEPT + 1, "{before} journal files");
    let at = checkpoint(&h.shared).unwrap();
    assert_eq!(at, h.shared.durable());
    assert_eq!(
        h.shared.storage.cached_bytes(),
        0,
        "the checkpoint flushed ledger storage"
    );
    // Files are retired by the committer after its next group (which may
    // be answered, by the force-write stage, a moment before).
    ok(h.add(4, 80, Some(79), false));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after = list_files(&jd).unwrap().len();
        if after <= JOURNAL_FILES_KEPT + 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{after} journal files after the checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    h.stop();

    let h = Harness::open(root.path());
    assert_eq!(h.entries(4), (0..81).collect::<Vec<_>>());
    assert!(
        h.entries(5).is_empty(),
        "deleted before the checkpoint, and still"
    );
    h.stop();
}
