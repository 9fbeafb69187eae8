//! Rough throughput figures for the bookie's journal (group commit).
//!
//! Usage: `cargo run --release -p distlog-bench --example bookie_bench --
//! [writers=8] [entries_per_writer=2000] [depth=32] [dir]`
//!
//! Each writer owns one ledger and keeps `depth` adds in flight. For entry
//! sizes 1 KiB … 64 KiB it prints adds/s, MB/s and the fsyncs issued. Pass
//! `dir` to measure a real disk (the default temp dir may be tmpfs).
//! Prints figures only; asserts nothing.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use distlog_metadata::NodeId;
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::ledger::{AddRequest, BookieClient, IndexRow};

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let writers: u64 = arg(1, 8);
    let per_writer: u64 = arg(2, 2000);
    let depth: usize = arg(3, 32);
    let base = std::env::args()
        .nth(4)
        .map_or_else(std::env::temp_dir, PathBuf::from);
    println!(
        "writers={writers} entries/writer={per_writer} in-flight/writer={depth} dir={}",
        base.display()
    );
    println!(
        "{:>8} {:>12} {:>10} {:>8} {:>12}",
        "size", "adds/s", "MB/s", "fsyncs", "adds/fsync"
    );
    for size in [1usize << 10, 4 << 10, 16 << 10, 64 << 10] {
        let dir = tempfile::tempdir_in(&base)?;
        let bookie = Bookie::open(BookieConfig {
            dir: dir.path().to_path_buf(),
            bookie_id: NodeId::new(1),
        })?;
        let client = LocalBookie(bookie.clone());
        let payload = Bytes::from(vec![0x5au8; size]);
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|ledger| {
                let client = client.clone();
                let payload = payload.clone();
                tokio::spawn(async move {
                    let mut in_flight = VecDeque::new();
                    for entry_id in 0..per_writer {
                        let row = IndexRow {
                            entry_id,
                            first_seq: entry_id,
                            record_count: 1,
                            txid: entry_id,
                            len: payload.len() as u32,
                        };
                        in_flight.push_back(client.add_entry(AddRequest {
                            ledger_id: ledger,
                            row,
                            prev_entry_id: entry_id.checked_sub(1),
                            lac: entry_id.checked_sub(1),
                            recovery: false,
                            payload: vec![payload.clone()],
                        }));
                        if in_flight.len() >= depth {
                            if let Some(add) = in_flight.pop_front() {
                                add.await?;
                            }
                        }
                    }
                    for add in in_flight {
                        add.await?;
                    }
                    Ok::<_, distlog_storage::StorageError>(())
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        let secs = started.elapsed().as_secs_f64();
        let stats = bookie.stats();
        println!(
            "{:>7}K {:>12.0} {:>10.1} {:>8} {:>12.1}",
            size >> 10,
            stats.entries_added as f64 / secs,
            stats.bytes_written as f64 / secs / 1e6,
            stats.fsyncs,
            stats.entries_added as f64 / stats.fsyncs.max(1) as f64
        );
        bookie.shutdown();
    }
    Ok(())
}
