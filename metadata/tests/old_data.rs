//! A data directory written by an older `distlog` (the fixture, see
//! `tests/fixtures/README.md`) still loads: its snapshot and the Raft log
//! after it (segment rolls and seals of the pre-`SegmentSeal` commands)
//! deserialize and replay into the state the old binary served.

use std::path::Path;
use std::process::Command as Process;

use distlog_metadata::*;

/// The fixture's tarball, relative to this crate.
const FIXTURE: &str = "tests/fixtures/data-30b68f3.tar.gz";

/// Unpack the fixture into `dir` (giving `dir/data/{meta,bookie}`).
fn unpack(dir: &Path) {
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let status = Process::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed to unpack {}", tarball.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_written_by_30b68f3_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    unpack(dir.path());
    let store = MetadataStore::open(MetadataConfig {
        data_dir: dir.path().join("data/meta"),
        node_id: NodeId::new(1),
        raft_addr: "127.0.0.1:0".into(),
        advertised_raft_addr: None,
        voters: Default::default(),
        seeds: Vec::new(),
    })
    .await
    .expect("open the old metadata store");
    assert!(
        store.raft_metrics().snapshot.is_some(),
        "the fixture has a snapshot"
    );
    let state = store.read(|s| s.clone());
    assert!(!state.cluster_id.is_empty());
    assert!(state.brokers.contains_key(&NodeId::new(1)));

    // Per topic: partitions, and per partition the completed segments'
    // last offsets (rolls after the snapshot, seals at shutdown).
    let expected: [(&str, u32, &[u64]); 2] = [
        ("fixture", 2, &[99, 199, 249, 299, 349]),
        ("fixture2", 1, &[49, 99]),
    ];
    for (name, partitions, last_offsets) in expected {
        let topic = state.topic(name).unwrap_or_else(|| panic!("topic {name}"));
        assert_eq!(topic.partitions, partitions, "{name}");
        for p in 0..partitions {
            let stream = state.stream(&topic.stream(p)).expect("stream");
            assert_eq!(stream.owner, Some(NodeId::new(1)), "{name}/{p}");
            let lssns: Vec<u64> = stream.segments.iter().map(|s| s.lssn).collect();
            let expected_lssns: Vec<u64> = (1..=last_offsets.len() as u64).collect();
            assert_eq!(lssns, expected_lssns, "{name}/{p}");
            let sealed: Vec<Option<u64>> = stream.segments.iter().map(|s| s.last_offset).collect();
            let expected_sealed: Vec<Option<u64>> = last_offsets.iter().map(|o| Some(*o)).collect();
            assert_eq!(sealed, expected_sealed, "{name}/{p}");
            assert!(
                stream.segments.iter().all(|s| s.state == SegmentState::Completed
                    && s.last_entry_id.is_some()
                    && s.size_bytes > 0),
                "{name}/{p}: {:?}",
                stream.segments
            );
            assert_eq!(stream.next_lssn, last_offsets.len() as u64 + 1, "{name}/{p}");
        }
    }
    let group = state.groups.get("fixture-group").expect("group");
    assert_eq!(group.offsets["fixture"][&1].offset, 50);

    // The store keeps working on the old data: new ids follow the old ones.
    let before = state.next_ledger_id;
    assert_eq!(store.allocate_ledger().await.expect("allocate"), before);
    store.shutdown().await.expect("shutdown");
}
