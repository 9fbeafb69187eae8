//! The force-write stage: the thread that makes journal groups durable.
//!
//! BookKeeper's journal splits group commit in two: the journal thread
//! writes group N+1 while the force-write thread fsyncs group N. Here the
//! group committer writes a group into the journal and hands a
//! [`ForceWrite`] (the file, the position after the group, and whatever
//! answers the group's adds) to this stage, then goes on with the next
//! group at once.
//!
//! The stage takes every request queued when it wakes and syncs each file
//! they touch once: one fdatasync covers every group written to the file
//! before it started, so under load many groups share one sync, and a
//! slow sync lets the next groups pile up behind it rather than wait one
//! by one.
//!
//! Guarantees, relied on by replay (see [`super::journal`]):
//! * groups become durable, and are reported, in the order they were
//!   submitted (journal order);
//! * a file is synced again before the first group of a later file is
//!   reported, so the roll record written at its end (after its last
//!   group) is durable before any record of the next file is acknowledged;
//! * once a sync fails the stage is broken for good: that group and every
//!   later one are reported failed. Linux may drop the dirty pages of a
//!   failed fdatasync, so retrying it could report lost records durable.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Result, StorageError};

use super::journal::{JournalFile, JournalPosition};

/// A file of the journal, as the force-write stage sees it.
pub(crate) trait JournalSync: Send + Sync + 'static {
    /// The file's sequence number in the journal.
    fn seq(&self) -> u64;
    /// fdatasync it: everything written to it before the call is durable.
    fn sync(&self) -> Result<()>;
}

impl JournalSync for JournalFile {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn sync(&self) -> Result<()> {
        JournalFile::sync(self)
    }
}

/// One journal group, written and waiting to be made durable.
pub(crate) struct ForceWrite<F, T> {
    /// The file the group was written to.
    pub file: Arc<F>,
    /// The journal position just after the group.
    pub end: JournalPosition,
    /// What answers the group's operations once it is durable (or failed).
    pub done: T,
}

/// What the stage reports for a run of groups of one file.
pub(crate) struct Durable<T> {
    /// Up to where the journal is durable (the last group's end), or why
    /// the groups failed.
    pub outcome: Result<JournalPosition>,
    /// The groups' answers, in submission order.
    pub done: Vec<T>,
    /// Time spent in fdatasync for these groups (zero when they failed
    /// because the stage was already broken).
    pub synced_in: Duration,
}

/// The force-write stage: a thread that syncs journal files and reports
/// the groups it made durable, in order, to `on_durable`.
pub(crate) struct ForceWriter<F: JournalSync, T: Send + 'static> {
    tx: Option<mpsc::Sender<ForceWrite<F, T>>>,
    thread: Option<JoinHandle<()>>,
}

impl<F: JournalSync, T: Send + 'static> ForceWriter<F, T> {
    /// Start the stage's thread, named `name`. `on_durable` runs on it, for
    /// each run of consecutive groups of one file, in journal order.
    pub fn start(
        name: String,
        mut on_durable: impl FnMut(Durable<T>) + Send + 'static,
    ) -> std::io::Result<ForceWriter<F, T>> {
        let (tx, rx) = mpsc::channel::<ForceWrite<F, T>>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut stage = Stage::<F> {
                last: None,
                broken: None,
            };
            while let Ok(first) = rx.recv() {
                let batch: Vec<_> = std::iter::once(first).chain(rx.try_iter()).collect();
                stage.force(batch, &mut on_durable);
            }
        })?;
        Ok(ForceWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hand a written group over. Groups must be submitted in journal
    /// order. Gives the request back if the stage has stopped.
    pub fn submit(&self, request: ForceWrite<F, T>) -> std::result::Result<(), ForceWrite<F, T>> {
        match &self.tx {
            Some(tx) => tx.send(request).map_err(|e| e.0),
            None => Err(request),
        }
    }

    /// Stop after the groups already submitted are durable and reported.
    /// Blocks until then; also run on drop.
    pub fn shutdown(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("journal force-write thread panicked");
            }
        }
    }
}

impl<F: JournalSync, T: Send + 'static> Drop for ForceWriter<F, T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The stage's state between batches.
struct Stage<F> {
    /// The file of the last group reported: synced again when the journal
    /// has moved on, to cover the roll record written after that group.
    last: Option<Arc<F>>,
    /// The first sync failure; every later group fails with it.
    broken: Option<String>,
}

impl<F: JournalSync> Stage<F> {
    /// Make a batch of groups durable and report them, one run of
    /// consecutive groups of a file at a time.
    fn force<T>(&mut self, batch: Vec<ForceWrite<F, T>>, on_durable: &mut impl FnMut(Durable<T>)) {
        let mut batch = batch.into_iter().peekable();
        while let Some(first) = batch.next() {
            let file = first.file;
            let mut end = first.end;
            let mut done = vec![first.done];
            while let Some(next) = batch.next_if(|g| g.file.seq() == file.seq()) {
                end = end.max(next.end);
                done.push(next.done);
            }
            let started = Instant::now();
            let outcome = self.sync_run(&file).map(|()| end);
            on_durable(Durable {
                outcome,
                done,
                synced_in: started.elapsed(),
            });
        }
    }

    /// Sync `file` (after the previous file, if the journal rolled since).
    fn sync_run(&mut self, file: &Arc<F>) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(broken_error(why));
        }
        let rolled = self
            .last
            .as_ref()
            .filter(|last| last.seq() != file.seq())
            .cloned();
        let synced = match rolled {
            Some(previous) => previous.sync().and_then(|()| file.sync()),
            None => file.sync(),
        };
        match synced {
            Ok(()) => {
                self.last = Some(file.clone());
                Ok(())
            }
            Err(e) => {
                tracing::error!(journal_file = file.seq(), error = %e, "journal fsync failed; the bookie takes no more writes");
                let why = e.to_string();
                self.broken = Some(why);
                Err(e)
            }
        }
    }
}

/// The error of every group after a failed journal sync.
fn broken_error(why: &str) -> StorageError {
    StorageError::io(
        "journal",
        std::io::Error::other(format!(
            "an earlier journal fsync failed ({why}); restart the node to recover from the journal"
        )),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use parking_lot::Mutex;

    use super::*;

    /// A journal file that records its syncs in a shared log.
    struct FakeFile {
        seq: u64,
        syncs: Arc<Mutex<Vec<u64>>>,
        fail: AtomicBool,
        /// Held by the test to keep a sync waiting.
        gate: Arc<Mutex<()>>,
        /// Syncs started (before waiting on the gate).
        entered: AtomicUsize,
    }

    impl JournalSync for FakeFile {
        fn seq(&self) -> u64 {
            self.seq
        }
        fn sync(&self) -> Result<()> {
            self.entered.fetch_add(1, Ordering::SeqCst);
            drop(self.gate.lock());
            self.syncs.lock().push(self.seq);
            if self.fail.load(Ordering::SeqCst) {
                return Err(StorageError::io("fake", std::io::Error::other("EIO")));
            }
            Ok(())
        }
    }

    fn file(seq: u64, syncs: &Arc<Mutex<Vec<u64>>>, gate: &Arc<Mutex<()>>) -> Arc<FakeFile> {
        Arc::new(FakeFile {
            seq,
            syncs: syncs.clone(),
            fail: AtomicBool::new(false),
            gate: gate.clone(),
            entered: AtomicUsize::new(0),
        })
    }

    /// Hand group `done`, written to `file` up to `end`, to the stage.
    fn submit(writer: &ForceWriter<FakeFile, u32>, file: &Arc<FakeFile>, end: JournalPosition, done: u32) {
        let request = ForceWrite {
            file: file.clone(),
            end,
            done,
        };
        assert!(writer.submit(request).is_ok(), "the stage is running");
    }

    /// Wait (bounded) until `ready` holds.
    fn wait_until(what: &str, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn pos(file: u64, offset: u64) -> JournalPosition {
        JournalPosition { file, offset }
    }

    type Report = (std::result::Result<JournalPosition, String>, Vec<u32>);
    type Reports = Arc<Mutex<Vec<Report>>>;

    fn start() -> (ForceWriter<FakeFile, u32>, Reports) {
        let (writer, reports, _) = start_timed();
        (writer, reports)
    }

    /// Also collects each report's time in fdatasync.
    fn start_timed() -> (ForceWriter<FakeFile, u32>, Reports, Arc<Mutex<Vec<Duration>>>) {
        let reports: Reports = Arc::default();
        let times: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let (sink, timer) = (reports.clone(), times.clone());
        let writer = ForceWriter::start("test-force-write".into(), move |d: Durable<u32>| {
            timer.lock().push(d.synced_in);
            sink.lock().push((d.outcome.map_err(|e| e.to_string()), d.done));
        })
        .unwrap();
        (writer, reports, times)
    }

    #[test]
    fn groups_queued_behind_a_slow_sync_share_one_sync_and_are_reported_in_order() {
        let syncs = Arc::default();
        let gate = Arc::new(Mutex::new(()));
        let f1 = file(1, &syncs, &gate);
        let (mut writer, reports, times) = start_timed();
        // The first sync waits on the gate while four more groups queue up.
        let held = gate.lock();
        for (i, offset) in [(0u32, 100u64), (1, 200), (2, 300), (3, 400), (4, 500)] {
            submit(&writer, &f1, pos(1, offset), i);
            if i == 0 {
                wait_until("the first sync started", || {
                    f1.entered.load(Ordering::SeqCst) == 1
                });
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        writer.shutdown();
        assert!(times.lock()[0] >= Duration::from_millis(20), "{:?}", times.lock());
        let reports = reports.lock();
        let done: Vec<u32> = reports.iter().flat_map(|(_, d)| d.clone()).collect();
        assert_eq!(done, vec![0, 1, 2, 3, 4]);
        assert_eq!(reports.last().unwrap().0, Ok(pos(1, 500)));
        // Group 0 alone, then the four queued behind it with one sync.
        assert_eq!(
            reports.len(),
            2,
            "{:?}",
            reports.iter().map(|r| r.1.clone()).collect::<Vec<_>>()
        );
        assert_eq!(*syncs.lock(), vec![1, 1]);
    }

    #[test]
    fn after_a_roll_the_previous_file_is_synced_again_before_the_next_files_group_is_reported() {
        let syncs = Arc::default();
        let gate = Arc::new(Mutex::new(()));
        let (f1, f2) = (file(1, &syncs, &gate), file(2, &syncs, &gate));
        let (mut writer, reports) = start();
        submit(&writer, &f1, pos(1, 64), 0);
        // Group 0 is synced alone, as when the roll record comes later.
        wait_until("group 0 was reported", || reports.lock().len() == 1);
        submit(&writer, &f2, pos(2, 64), 1);
        writer.shutdown();
        assert_eq!(
            *syncs.lock(),
            vec![1, 1, 2],
            "file 1 again (its roll record), then file 2"
        );
        let reports = reports.lock();
        assert_eq!(reports[0], (Ok(pos(1, 64)), vec![0]));
        assert_eq!(reports[1], (Ok(pos(2, 64)), vec![1]));
    }

    #[test]
    fn a_failed_sync_fails_its_groups_and_every_later_one_without_syncing_again() {
        let syncs = Arc::default();
        let gate = Arc::new(Mutex::new(()));
        let f1 = file(1, &syncs, &gate);
        let (mut writer, reports) = start();
        submit(&writer, &f1, pos(1, 64), 0);
        wait_until("group 0 was reported", || reports.lock().len() == 1);
        f1.fail.store(true, Ordering::SeqCst);
        submit(&writer, &f1, pos(1, 128), 1);
        wait_until("group 1 was reported", || reports.lock().len() == 2);
        f1.fail.store(false, Ordering::SeqCst);
        submit(&writer, &f1, pos(1, 192), 2);
        writer.shutdown();
        let reports = reports.lock();
        assert_eq!(reports.len(), 3);
        assert_eq!(reports[0], (Ok(pos(1, 64)), vec![0]));
        assert!(
            reports[1].0.as_ref().is_err_and(|e| e.contains("EIO")),
            "{:?}",
            reports[1]
        );
        // The sync would succeed now, but the pages of the failed one may be gone.
        assert!(
            reports[2]
                .0
                .as_ref()
                .is_err_and(|e| e.contains("earlier journal fsync failed")),
            "{:?}",
            reports[2]
        );
        assert_eq!(*syncs.lock(), vec![1, 1], "no sync after the failure");
    }

    #[test]
    fn a_stopped_stage_gives_the_request_back() {
        let syncs = Arc::default();
        let gate = Arc::new(Mutex::new(()));
        let (mut writer, _reports) = start();
        writer.shutdown();
        let request = ForceWrite {
            file: file(1, &syncs, &gate),
            end: pos(1, 64),
            done: 7,
        };
        assert_eq!(writer.submit(request).err().map(|r| r.done), Some(7));
    }

    #[test]
    fn real_journal_files_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.jnl");
        let f = Arc::new(JournalFile {
            seq: 1,
            path: path.clone(),
            file: std::fs::File::create(&path).unwrap(),
        });
        let reports: Arc<Mutex<Vec<Result<JournalPosition>>>> = Arc::default();
        let sink = reports.clone();
        let mut writer = ForceWriter::start("test-real".into(), move |d: Durable<()>| {
            sink.lock().push(d.outcome);
        })
        .unwrap();
        assert!(writer
            .submit(ForceWrite {
                file: f,
                end: pos(1, 0),
                done: ()
            })
            .is_ok());
        writer.shutdown();
        assert!(matches!(reports.lock().as_slice(), [Ok(p)] if *p == pos(1, 0)));
    }
}
