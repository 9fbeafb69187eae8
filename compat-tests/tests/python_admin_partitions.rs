//! CreatePartitions from confluent-kafka's AdminClient (librdkafka under Python) while a
//! kafka-python group consumer reads the topic: `validate_only` changes nothing, the topic grows,
//! a decrease and an unknown topic are refused with Kafka's errors, and the group consumer picks
//! up the new partition (kafka-python rejoins when the partition count changes).
//!
//! The script is `compat-tests/python/admin_partitions.py`, run with the interpreter of the
//! virtualenv at `target/python-clients` (`scripts/install-python-clients.sh`) or
//! `$DISTLOG_PYTHON`, under a deadline.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use distlog_compat_tests::command::{python_clients as python, run_with_deadline};
use distlog_compat_tests::{DistlogOptions, DistlogProcess, OrPanic};
use serde_json::{json, Value};

/// The script's own deadline; the process is killed 30 s after it.
const RUN_TIMEOUT_S: u64 = 60;

#[test]
fn confluent_admin_grows_a_topic_and_a_kafka_python_group_picks_up_the_new_partition() {
    // The group completes a first join at once instead of waiting for more members.
    let broker = DistlogProcess::start(DistlogOptions {
        env: vec![("DISTLOG_GROUP_INITIAL_REBALANCE_DELAY_MS".into(), "0".into())],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog");
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/admin_partitions.py"))
        .args([
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "py-grow",
            "--group",
            "py-grow-group",
            "--timeout-s",
            &RUN_TIMEOUT_S.to_string(),
        ]);
    let out = run_with_deadline(cmd, None, Duration::from_secs(RUN_TIMEOUT_S + 30)).or_panic("run script");
    assert!(
        out.status.success(),
        "admin_partitions.py failed ({}):\n{}\nstdout: {}\nbroker log:\n{}",
        out.status,
        out.stderr,
        out.stdout_text(),
        broker.log_tail(40)
    );
    let v: Value = serde_json::from_str(out.stdout_text().trim()).or_panic_json(&out.stdout_text());
    assert_eq!(v["partitions_after_validate_only"], 1, "{v}");
    assert_eq!(v["partitions_after"], 3, "{v}");
    assert_eq!(
        v["errors"],
        json!({"decrease": "INVALID_PARTITIONS", "unknown": "UNKNOWN_TOPIC_OR_PART"}),
        "{v}"
    );
    assert_eq!(v["assignment"], json!([0, 1, 2]), "{v}");
    let mut records: Vec<(i64, i64, String)> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().expect("partition"),
                r["offset"].as_i64().expect("offset"),
                r["value"].as_str().expect("value").to_string(),
            )
        })
        .collect();
    records.sort();
    records.dedup();
    assert_eq!(
        records,
        vec![
            (0, 0, "old-0".to_string()),
            (0, 1, "old-1".to_string()),
            (2, 0, "new-0".to_string()),
            (2, 1, "new-1".to_string()),
            (2, 2, "new-2".to_string()),
        ]
    );
}

/// Parse errors name the text that did not parse.
trait OrPanicJson<T> {
    fn or_panic_json(self, text: &str) -> T;
}

impl<T> OrPanicJson<T> for Result<T, serde_json::Error> {
    fn or_panic_json(self, text: &str) -> T {
        self.unwrap_or_else(|e| panic!("the script's output is not one JSON document ({e}): {text}"))
    }
}
