//! A full disk under a node (found by the reliability campaign): the
//! metadata store's next write fails, openraft stops its core for good, and
//! the node used to go on as a zombie serving frozen metadata. It must stop
//! instead, say why, and, once the disk has room, come back with every
//! acknowledged record.
//!
//! Needs root (the data directory is a small tmpfs that really fills);
//! without it the test says so and passes vacuously, as the campaign
//! (`scripts/chaos.sh`, root only) is where full disks are exercised too.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{DistlogOptions, DistlogProcess, OrPanic};

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn mount(mb: u64) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("distlog-full-disk-")
            .tempdir()
            .expect("temp dir");
        let mount = dir.path().join("data");
        std::fs::create_dir(&mount).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "distlog-full-disk"])
            .arg(&mount)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "mount a tmpfs on {}", mount.display());
        Tmpfs { _dir: dir, mount }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Write zeros until the file system refuses a byte.
fn fill(path: &Path) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open filler");
    let big = vec![0u8; 1 << 20];
    for chunk in [&big[..], &big[..4096], &big[..1]] {
        while f.write_all(chunk).is_ok() {}
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_full_disk_stops_the_node_with_advice_and_it_comes_back_with_every_acknowledged_record() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let disk = Tmpfs::mount(128);
    let mut broker = DistlogProcess::start(DistlogOptions {
        data_dir: Some(disk.mount.clone()),
        ..DistlogOptions::default()
    })
    .or_panic("start on the small disk");
    kafka::create_topic(&broker.bootstrap(), "kept", 1).or_panic("create topic");
    let records: Vec<TestRecord> = (0..200).map(|i| TestRecord::value(format!("v{i}"))).collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&broker.bootstrap(), "all"),
        "kept",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    let offsets: Vec<i64> = deliveries
        .iter()
        .map(|d| d.result.clone().expect("acknowledged"))
        .collect();
    assert_eq!(offsets, (0..200).collect::<Vec<i64>>());

    // No room left: the next metadata write (a topic creation) cannot be stored.
    let filler = disk.mount.join("filler");
    fill(&filler);
    let _ = kafka::create_topic(&broker.bootstrap(), "no-room", 1);
    let status = broker.wait_for_exit(Duration::from_secs(30)).unwrap_or_else(|e| {
        panic!(
            "the node must stop when its metadata store cannot write: {e:#}\n{}",
            broker.log_tail(30)
        )
    });
    assert_eq!(status.code(), Some(1), "exit status");
    let log = broker.log_tail(40);
    assert!(
        log.contains("the metadata store stopped") && log.contains("free disk space"),
        "the node says why it stopped and what to do:\n{log}"
    );

    // Started again on the full disk, it refuses before touching its
    // database (sled could damage it by running out of space while opening:
    // the campaign saw a node that never started again), and says why.
    broker
        .restart()
        .expect_err("a node must not start on a full disk");
    let log = broker.log_tail(10);
    assert!(
        log.contains("needs 32 MiB free to open safely") && log.contains("free disk space"),
        "the refusal says what to do:\n{log}"
    );

    // Room again: it starts on its data, every acknowledged record in place once.
    std::fs::remove_file(&filler).expect("remove filler");
    broker.restart().or_panic("restart after freeing space");
    let back = kafka::consume_n(&broker.bootstrap(), "kept", 0, 0, 200, Duration::from_secs(30))
        .or_panic("read back");
    let values: Vec<String> = back
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, (0..200).map(|i| format!("v{i}")).collect::<Vec<_>>());
    assert_eq!(
        kafka::watermarks(&broker.bootstrap(), "kept", 0).or_panic("watermarks"),
        (0, 200)
    );
}
