//! Rough throughput figures for the bookie network service over loopback,
//! next to the same bookie reached in-process.
//!
//! Usage: `cargo run --release -p distlog-bench --example bookie_net_bench --
//! [writers=8] [entries_per_writer=2000] [depth=64] [dir]`
//!
//! One bookie in a temp dir is served on 127.0.0.1; `writers` tasks each
//! own a ledger and keep `depth` adds in flight through one shared
//! `RemoteBookie` (one connection), then the same through `LocalBookie`.
//! For entry sizes 1 KiB … 64 KiB it prints adds/s and MB/s of both. Pass
//! `dir` to measure a real disk (the default temp dir may be tmpfs).
//! Prints figures only; asserts nothing.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_metadata::NodeId;
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::bookie_net::{BookieServer, ClientConfig, RemoteBookie, ServerConfig};
use distlog_storage::ledger::{AddRequest, BookieClient, IndexRow};

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Run `writers` pipelined writers against `client`; returns the elapsed time.
async fn drive(
    client: Arc<dyn BookieClient>,
    first_ledger: u64,
    writers: u64,
    per_writer: u64,
    depth: usize,
    payload: Bytes,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
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
                        ledger_id: first_ledger + w,
                        row,
                        prev_entry_id: entry_id.checked_sub(1),
                        lac: entry_id.checked_sub(1),
                        recovery: false,
                        payload: vec![payload.clone()],
                    }));
                    if in_flight.len() >= depth {
                        if let Some(f) = in_flight.pop_front() {
                            f.await?;
                        }
                    }
                }
                for f in in_flight {
                    f.await?;
                }
                Ok::<_, distlog_storage::StorageError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let writers: u64 = arg(1, 8);
    let per_writer: u64 = arg(2, 2000);
    let depth: usize = arg(3, 64);
    let base = std::env::args()
        .nth(4)
        .map_or_else(std::env::temp_dir, PathBuf::from);
    println!(
        "writers={writers} entries/writer={per_writer} in-flight/writer={depth} dir={}",
        base.display()
    );
    println!(
        "{:>8} {:>14} {:>10} {:>12} {:>14} {:>10} {:>12}",
        "size", "remote adds/s", "MB/s", "adds/fsync", "local adds/s", "MB/s", "adds/fsync"
    );
    for size in [1usize << 10, 4 << 10, 16 << 10, 64 << 10] {
        let dir = tempfile::tempdir_in(&base)?;
        let bookie = Bookie::open(BookieConfig {
            dir: dir.path().to_path_buf(),
            bookie_id: NodeId::new(1),
        })?;
        let local: Arc<dyn BookieClient> = Arc::new(LocalBookie(bookie.clone()));
        let server = BookieServer::bind("127.0.0.1:0", local.clone(), ServerConfig::default()).await?;
        let remote: Arc<dyn BookieClient> = Arc::new(RemoteBookie::new(
            NodeId::new(1),
            server.local_addr(),
            ClientConfig::default(),
        ));
        let payload = Bytes::from(vec![0x5au8; size]);
        let total = (writers * per_writer) as f64;
        let mb = total * size as f64 / 1e6;
        let fsyncs = || bookie.stats().fsyncs as f64;
        let f0 = fsyncs();
        let r = drive(remote, 0, writers, per_writer, depth, payload.clone()).await?;
        let f1 = fsyncs();
        let l = drive(local, 1_000, writers, per_writer, depth, payload).await?;
        let f2 = fsyncs();
        println!(
            "{:>7}K {:>14.0} {:>10.1} {:>12.1} {:>14.0} {:>10.1} {:>12.1}",
            size >> 10,
            total / r.as_secs_f64(),
            mb / r.as_secs_f64(),
            total / (f1 - f0).max(1.0),
            total / l.as_secs_f64(),
            mb / l.as_secs_f64(),
            total / (f2 - f1).max(1.0)
        );
        server.shutdown().await;
        tokio::task::spawn_blocking(move || bookie.shutdown()).await?;
    }
    Ok(())
}
