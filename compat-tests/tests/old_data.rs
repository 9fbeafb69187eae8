//! The current binary serves a data directory written by an older one (the
//! fixture of `metadata/tests/fixtures`, written by commit 30b68f3): every
//! record is readable at its offset, the committed group offset is there,
//! and the streams take new records after the old ones.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{DistlogOptions, DistlogProcess};

#[test]
fn a_data_directory_written_by_30b68f3_is_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tarball =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata/tests/fixtures/data-30b68f3.tar.gz");
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .expect("run tar");
    assert!(status.success(), "unpack {}", tarball.display());
    let broker = DistlogProcess::start(DistlogOptions {
        data_dir: Some(tmp.path().join("data")),
        ..DistlogOptions::default()
    })
    .expect("the new binary starts on the old data");
    let bootstrap = broker.bootstrap();

    for (topic, partition, count) in [("fixture", 0, 350), ("fixture", 1, 350), ("fixture2", 0, 100)] {
        let records = kafka::consume_n(&bootstrap, topic, partition, 0, count, Duration::from_secs(30))
            .expect("consume");
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            (0..count as i64).collect::<Vec<_>>(),
            "{topic}/{partition}"
        );
        assert!(
            records
                .iter()
                .all(|r| r.payload.as_ref().map(Vec::len) == Some(100)),
            "{topic}/{partition}: every value is 100 bytes"
        );
    }

    let groups = broker.http_get("/admin/groups").expect("groups");
    let groups: serde_json::Value = serde_json::from_str(&groups.body).expect("json");
    let offsets = &groups["groups"][0]["offsets"][0];
    assert_eq!(groups["groups"][0]["group_id"], "fixture-group", "{groups}");
    assert_eq!(
        (
            &offsets["topic"],
            &offsets["partition"],
            &offsets["committed_offset"]
        ),
        (
            &serde_json::json!("fixture"),
            &serde_json::json!(1),
            &serde_json::json!(50)
        ),
        "{groups}"
    );

    let config = kafka::producer_config(&bootstrap, "all");
    let deliveries = kafka::produce_records(
        &config,
        "fixture",
        Some(0),
        &[TestRecord::value("after the upgrade")],
        Duration::from_secs(30),
    )
    .expect("produce");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].result.as_ref().ok(), Some(&350));
    let next = kafka::consume_n(&bootstrap, "fixture", 0, 350, 1, Duration::from_secs(30)).expect("consume");
    assert_eq!(next[0].payload.as_deref(), Some(&b"after the upgrade"[..]));
}
