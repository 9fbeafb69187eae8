//! DeleteRecords and ListOffsets through the Python admin clients against a real `distlog`:
//! confluent-kafka's AdminClient (`delete_records`, `list_offsets` earliest / latest /
//! max-timestamp, and a delete up to the high watermark) and kafka-python's KafkaAdminClient
//! (`delete_records`, then `beginning_offsets`, `end_offsets` and `offsets_for_times`).
//! `compat-tests/python/admin_records.py` checks every answer and exits non-zero on the first
//! mismatch; the test then checks the watermarks itself.

use std::time::Duration;

use distlog_compat_tests::command::run_python_json;
use distlog_compat_tests::{kafka, start_broker, DistlogProcess, OrPanic};
use serde_json::Value;

fn run(broker: &DistlogProcess, client: &str, topic: &str) -> Value {
    let bootstrap = broker.bootstrap();
    let args = ["--client", client, "--bootstrap", &bootstrap, "--topic", topic];
    run_python_json("admin_records.py", &args, Duration::from_secs(120), || {
        broker.log_tail(60)
    })
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
