//! A side-by-side figure for storage engine v2 before it is wired: the same
//! add workload through today's per-ledger-file group committer and through
//! the journaled committer, on the same disk, in one run. It prints figures
//! and asserts only that every add was acknowledged, so it is `#[ignore]`d;
//! run it (release, on a real disk, with nothing else loading the machine):
//!
//! ```sh
//! cargo test --release -p distlog-storage --lib engine_bench -- --ignored --nocapture
//! ```
//!
//! Each ledger is written by its own thread with up to `WINDOW` adds in
//! flight (a partition's producer with pipelined acks=all batches); payloads
//! are `ENTRY_BYTES` (the Java client's default batch size). The journaled
//! run checkpoints every 250 ms, so its entry-log writes are counted too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_metadata::{LedgerId, NodeId};
use tokio::sync::oneshot;

use super::group_commit::Op;
use super::journal_commit::{checkpoint, start_on};
use super::recovery::Sizes;
use super::{Bookie, BookieConfig, LocalBookie};
use crate::error::Result;
use crate::ledger::{AddRequest, BookieClient, IndexRow};

const ENTRY_BYTES: usize = 16 << 10;
const WINDOW: usize = 4;
/// Bytes written per run: 256 MiB, or `DISTLOG_ENGINE_BENCH_MB` MiB.
fn total_bytes() -> usize {
    let mb = std::env::var("DISTLOG_ENGINE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok());
    mb.unwrap_or(256usize) << 20
}

fn request(ledger: LedgerId, entry: u64, payload: &Bytes) -> AddRequest {
    AddRequest {
        ledger_id: ledger,
        row: IndexRow {
            entry_id: entry,
            first_seq: entry * 16,
            record_count: 16,
            txid: entry,
            len: payload.len() as u32,
        },
        prev_entry_id: entry.checked_sub(1),
        lac: entry.checked_sub(1),
        payload: vec![payload.clone()],
        recovery: false,
    }
}

/// Drive `ledgers` writers over `submit` (which returns the wait for one
/// add's answer); returns the elapsed time and the per-add latencies.
fn drive<W>(
    ledgers: u64,
    submit: Arc<dyn Fn(AddRequest) -> W + Send + Sync>,
    wait: fn(W) -> Result<()>,
) -> (Duration, Vec<Duration>)
where
    W: Send + 'static,
{
    let per_ledger = (total_bytes() / ENTRY_BYTES) as u64 / ledgers;
    let payload = Bytes::from(vec![0x5a; ENTRY_BYTES]);
    let started = Instant::now();
    let threads: Vec<_> = (0..ledgers)
        .map(|l| {
            let (submit, payload) = (submit.clone(), payload.clone());
            std::thread::spawn(move || {
                let mut in_flight = std::collections::VecDeque::new();
                let mut latencies = Vec::with_capacity(per_ledger as usize);
                for e in 0..per_ledger {
                    if in_flight.len() == WINDOW {
                        let (sent, w): (Instant, W) = in_flight.pop_front().unwrap();
                        wait(w).unwrap();
                        latencies.push(sent.elapsed());
                    }
                    in_flight.push_back((Instant::now(), submit(request(l + 1, e, &payload))));
                }
                for (sent, w) in in_flight {
                    wait(w).unwrap();
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    (started.elapsed(), all)
}

fn report(engine: &str, ledgers: u64, elapsed: Duration, mut latencies: Vec<Duration>) -> f64 {
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let mbps = (latencies.len() * ENTRY_BYTES) as f64 / elapsed.as_secs_f64() / 1e6;
    println!(
        "{engine:<9} {ledgers:>4} ledgers: {mbps:>7.1} MB/s, ack p50 {:>6.2} ms, p99 {:>6.2} ms, max {:>7.2} ms ({} adds)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        latencies.len()
    );
    mbps
}

fn v1(ledgers: u64) -> f64 {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let bookie = LocalBookie(
        Bookie::open(BookieConfig {
            dir: dir.path().to_path_buf(),
            bookie_id: NodeId::new(1),
        })
        .unwrap(),
    );
    let submit = Arc::new(move |req| bookie.add_entry(req));
    let (elapsed, latencies) = drive(ledgers, submit, futures::executor::block_on);
    report("per-file", ledgers, elapsed, latencies)
}

fn v2(ledgers: u64) -> f64 {
    let root = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let sizes = Sizes {
        journal_file_bytes: 256 << 20,
        journal_files_kept: 4,
        entry_log_bytes: 1 << 30,
    };
    let (shared, tx, committer) = start_on(root.path(), sizes);
    // Ledger storage is written behind, as a bookie's checkpoint timer will.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpointer = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(250));
                checkpoint(&shared).unwrap();
            }
        })
    };
    let sender = std::sync::Mutex::new(tx.clone());
    let submit = Arc::new(move |req| {
        let (reply, answer) = oneshot::channel();
        sender.lock().unwrap().send(Op::Add(req, reply)).unwrap();
        answer
    });
    let (elapsed, latencies) = drive(ledgers, submit, |a: oneshot::Receiver<Result<()>>| {
        a.blocking_recv().unwrap()
    });
    let mbps = report("journaled", ledgers, elapsed, latencies);
    stop.store(true, std::sync::atomic::Ordering::Release);
    checkpointer.join().unwrap();
    tx.send(Op::Shutdown).unwrap();
    committer.join().unwrap().unwrap();
    mbps
}

#[test]
#[ignore = "a benchmark: prints figures; run with --release --ignored --nocapture"]
fn engine_bench() {
    println!(
        "{} MiB per run in {} KiB adds, {WINDOW} in flight per ledger, under {}",
        total_bytes() >> 20,
        ENTRY_BYTES >> 10,
        std::env::temp_dir().display()
    );
    for ledgers in [1u64, 16, 100] {
        let before = v1(ledgers);
        let after = v2(ledgers);
        println!(
            "          {ledgers:>4} ledgers: journaled / per-file = {:.2}",
            after / before
        );
    }
}
