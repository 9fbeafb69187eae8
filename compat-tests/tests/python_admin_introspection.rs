//! Cluster, topic and disk introspection through two Python admin clients against a real
//! `distlog`: confluent-kafka's `AdminClient` (`describe_cluster`, `describe_topics`, including a
//! topic that does not exist) and kafka-python's `KafkaAdminClient` (`describe_log_dirs` with the
//! exact sizes of the produced batches, `describe_topic_partitions` paged with a limit of 1,
//! `list_partition_reassignments`, `describe_metadata_quorum`).
//!
//! The clients run `compat-tests/python/admin_introspection.py` with the interpreter of the
//! virtualenv that `scripts/install-deps.sh` (through `scripts/install-python-clients.sh`) creates
//! at `target/python-clients`, or `$DISTLOG_PYTHON`. A missing interpreter fails this test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use distlog_compat_tests::command::{python_clients as python, run_with_deadline};
use distlog_compat_tests::raw::{self, Conn};
use distlog_compat_tests::{kafka, start_broker, OrPanic};
use kafka_protocol::messages::{ApiKey, ProduceResponse};
use serde_json::{json, Value};

/// The script's own deadline; the process is killed 30 s after it.
const RUN_TIMEOUT_S: u64 = 60;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/admin_introspection.py")
}

/// Produce one batch of one record with `len` value bytes to `topic`/`partition`; returns the
/// batch's size (what the partition stores).
fn produce_batch(conn: &mut Conn, topic: &str, partition: i32, len: usize) -> i64 {
    let batch = raw::one_record_batch(
        (-1, -1, -1),
        distlog_compat_tests::now_ms(),
        Bytes::from(vec![b'v'; len]),
    )
    .or_panic("batch");
    let resp: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &raw::produce_request(topic, partition, batch.clone()),
        )
        .or_panic("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0, "produce");
    batch.len() as i64
}

#[test]
fn python_admin_clients_describe_the_cluster_topics_log_dirs_and_quorum() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "described", 3).or_panic("create topic");
    let mut conn = Conn::open(broker.kafka_addr(), "python-introspection-test").or_panic("connect");
    let p0 = produce_batch(&mut conn, "described", 0, 10) + produce_batch(&mut conn, "described", 0, 2000);
    let p2 = produce_batch(&mut conn, "described", 2, 500);

    let mut cmd = Command::new(python());
    cmd.arg(script())
        .args(["--bootstrap", &bootstrap])
        .args(["--topic", "described", "--missing-topic", "never-created"])
        .args(["--timeout-s", &RUN_TIMEOUT_S.to_string()])
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_with_deadline(cmd, None, Duration::from_secs(RUN_TIMEOUT_S + 30))
        .unwrap_or_else(|e| panic!("{e:#}\n---- broker log (tail) ----\n{}", broker.log_tail(60)));
    let stdout = out.stdout_text();
    assert!(
        out.status.success(),
        "admin_introspection.py failed ({}).\n---- stderr ----\n{}\n---- stdout ----\n{}\n\
         ---- broker log (tail) ----\n{}",
        out.status,
        out.stderr,
        stdout,
        broker.log_tail(60)
    );
    let doc: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON document ({e}): {stdout}\n{}", out.stderr));
    let port = broker.ports().kafka;

    // confluent-kafka: the cluster and the topic as Metadata / DescribeCluster give them.
    let c = &doc["confluent"];
    let cluster_id = c["cluster"]["cluster_id"].as_str().unwrap_or_default();
    assert!(!cluster_id.is_empty(), "{doc}");
    assert_eq!(c["cluster"]["controller"], json!(1));
    assert_eq!(c["cluster"]["nodes"], json!([[1, "127.0.0.1", port]]));
    assert_eq!(c["topic"]["name"], json!("described"));
    assert_eq!(c["topic"]["is_internal"], json!(false));
    assert_eq!(
        c["topic"]["partitions"],
        json!([[0, 1, [1], [1]], [1, 1, [1], [1]], [2, 1, [1], [1]]])
    );
    assert_eq!(c["missing_error"], json!("UNKNOWN_TOPIC_OR_PART"));

    // kafka-python: the log dir with the exact sizes; partition 1 has no segment yet, so no copy.
    let k = &doc["kafka_python"];
    let dirs = k["log_dirs"].as_array().expect("log_dirs");
    assert_eq!(dirs.len(), 1, "{doc}");
    assert_eq!(dirs[0]["broker"], json!(1));
    let dir = &dirs[0]["log_dirs"][0];
    assert_eq!(dirs[0]["log_dirs"].as_array().map(Vec::len), Some(1));
    assert_eq!(dir["error_code"], json!(0));
    let bookie = std::fs::canonicalize(broker.data_dir())
        .expect("data dir")
        .join("bookie");
    assert_eq!(dir["log_dir"], json!(bookie.to_str().expect("utf-8")));
    let total = dir["total_bytes"].as_i64().expect("total_bytes (v4)");
    let usable = dir["usable_bytes"].as_i64().expect("usable_bytes (v4)");
    assert!(total >= usable && usable > 0, "total {total} usable {usable}");
    let mut sizes = BTreeMap::new();
    for t in dir["topics"].as_array().expect("topics") {
        for p in t["partitions"].as_array().expect("partitions") {
            assert_eq!(
                (&p["offset_lag"], &p["is_future_key"]),
                (&json!(0), &json!(false))
            );
            sizes.insert(
                (
                    t["name"].as_str().expect("name").to_string(),
                    p["partition_index"].as_i64().expect("index"),
                ),
                p["partition_size"].as_i64().expect("size"),
            );
        }
    }
    assert_eq!(
        sizes,
        [
            (("described".to_string(), 0), p0),
            (("described".to_string(), 2), p2)
        ]
        .into()
    );

    // DescribeTopicPartitions, one partition per page, walked with the cursor.
    assert_eq!(
        k["pages"],
        json!([
            {"topics": [["described", 0, [[0, 1, 1]]]], "next_cursor": ["described", 1]},
            {"topics": [["described", 0, [[1, 1, 1]]]], "next_cursor": ["described", 2]},
            {"topics": [["described", 0, [[2, 1, 1]]]], "next_cursor": null},
        ]),
        "{doc}"
    );
    assert_eq!(k["reassignments"], json!([]));

    // DescribeQuorum: this single node leads the metadata group.
    let q = &k["quorum"]["topics"][0];
    assert_eq!(q["topic_name"], json!("__cluster_metadata"));
    let p = &q["partitions"][0];
    assert_eq!(
        (&p["partition_index"], &p["leader_id"], &p["error"]),
        (&json!(0), &json!(1), &json!(null))
    );
    assert!(p["leader_epoch"].as_i64().expect("epoch") >= 1, "{p}");
    let hw = p["high_watermark"].as_i64().expect("high watermark");
    assert!(hw > 0, "{p}");
    let voters = p["current_voters"].as_array().expect("voters");
    assert_eq!(voters.len(), 1, "{p}");
    assert_eq!(voters[0]["replica_id"], json!(1));
    assert!(voters[0]["log_end_offset"].as_i64().expect("leo") >= hw, "{p}");
    assert_eq!(p["observers"], json!([]));
}
