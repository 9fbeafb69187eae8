//! DeleteRecords and ListOffsets through the Python admin clients against a real `distlog`:
//! confluent-kafka's AdminClient (`delete_records`, `list_offsets` earliest / latest /
//! max-timestamp, and a delete up to the high watermark) and kafka-python's KafkaAdminClient
//! (`delete_records`, then `beginning_offsets`, `end_offsets` and `offsets_for_times`).
//! `compat-tests/python/admin_records.py` checks every answer and exits non-zero on the first
//! mismatch; the test then checks the watermarks itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use distlog_compat_tests::command::{python_clients as python, run_with_deadline};
use distlog_compat_tests::{kafka, start_broker, DistlogProcess, OrPanic};
use serde_json::Value;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/admin_records.py")
}

fn run(broker: &DistlogProcess, client: &str, topic: &str) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(script())
        .args([
            "--client",
            client,
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            topic,
        ])
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_with_deadline(cmd, None, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{client}: {e:#}\n---- broker log ----\n{}", broker.log_tail(60)));
    assert!(
        out.status.success(),
        "{client} admin_records.py failed ({}):\n{}\n---- broker log ----\n{}",
        out.status,
        out.stderr,
        broker.log_tail(60)
    );
    serde_json::from_str(out.stdout_text().trim()).expect("the script prints one JSON document")
}

#[test]
fn confluent_kafka_delete_records_and_list_offsets() {
    let broker = start_broker();
    let v = run(&broker, "confluent", "py-trim-confluent");
    assert_eq!(v["low_watermark"], 10);
    assert_eq!(v["max_timestamp_offset"], 17);
    assert_eq!(
        kafka::watermarks(&broker.bootstrap(), "py-trim-confluent", 0).or_panic("watermarks"),
        (30, 30)
    );
}

#[test]
fn kafka_python_delete_records_and_offsets() {
    let broker = start_broker();
    let v = run(&broker, "kafka-python", "py-trim-kafka-python");
    assert_eq!(v["low_watermark"], 10);
    assert_eq!(
        kafka::watermarks(&broker.bootstrap(), "py-trim-kafka-python", 0).or_panic("watermarks"),
        (10, 30)
    );
}
