//! Topic and broker configs through the Python admin clients against a real `distlog`:
//! confluent-kafka's `AdminClient` (librdkafka) and kafka-python's `KafkaAdminClient` each create
//! a topic with `delete.retention.ms=900`, change `retention.ms` with IncrementalAlterConfigs
//! (and with `validate_only`, which changes nothing), replace the set with the legacy
//! AlterConfigs, see each value with its source in DescribeConfigs, get Kafka's error for an
//! unknown key, `cleanup.policy=compact` and a read-only broker key, and set and remove a
//! dynamic broker config (`log.retention.ms`) on broker 1, whose DescribeConfigs reports a
//! truthful `read_only` (kafka-python relies on it to refuse read-only keys itself).
//!
//! The clients run `compat-tests/python/admin_configs.py` with the interpreter of the virtualenv
//! that `scripts/install-python-clients.sh` creates at `target/python-clients`, or
//! `$DISTLOG_PYTHON`. A missing interpreter fails these tests.

use std::time::Duration;

use distlog_compat_tests::command::run_python_json;
use distlog_compat_tests::{start_broker, DistlogProcess};
use serde_json::{json, Value};

/// The process is killed after this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the script for `client` and returns what it observed; panics with its output and the
/// broker's log when it failed.
fn run(broker: &DistlogProcess, client: &str, topic: &str) -> Value {
    let bootstrap = broker.bootstrap();
    let args = [
        "--client",
        client,
        "--bootstrap",
        &bootstrap,
        "--topic",
        topic,
        "--broker-id",
        "1",
    ];
    let doc = run_python_json("admin_configs.py", &args, RUN_TIMEOUT, || broker.log_tail(60));
    assert_eq!(doc["client"], client);
    doc["observed"].clone()
}

/// What both clients must observe, with each client's names for errors and sources.
fn check(o: &Value, retention: &str, src: impl Fn(&str) -> Value, err: impl Fn(&str) -> Value) {
    let ok = json!("OK");
    for step in [
        "created",
        "incremental",
        "validate_only",
        "alter",
        "broker_set",
        "broker_delete",
    ] {
        assert_eq!(o[step], ok, "{step}: {o}");
    }
    let topic = src("DYNAMIC_TOPIC_CONFIG");
    let static_ = src("STATIC_BROKER_CONFIG");
    assert_eq!(
        o["after_incremental"]["retention.ms"],
        json!([retention, topic]),
        "{o}"
    );
    assert_eq!(
        o["after_incremental"]["delete.retention.ms"],
        json!(["900", topic]),
        "{o}"
    );
    assert_eq!(
        o["after_incremental"]["segment.ms"],
        json!(["604800000", static_]),
        "{o}"
    );
    // validate_only changed nothing.
    assert_eq!(
        o["after_validate_only"]["retention.ms"],
        json!([retention, topic]),
        "{o}"
    );
    assert_eq!(o["after_alter"]["segment.ms"], json!(["60000", topic]), "{o}");
    assert_eq!(o["unknown_key"], err("INVALID_CONFIG"), "{o}");
    assert_eq!(o["compact"], err("INVALID_CONFIG"), "{o}");
    assert_eq!(o["read_only_broker_key"], err("INVALID_REQUEST"), "{o}");
    assert_eq!(
        o["broker_read_only"],
        json!({
            "advertised.listeners": true,
            "broker.id": true,
            "log.retention.ms": false,
            "log.segment.bytes": false,
        }),
        "{o}"
    );
    assert_eq!(
        o["broker_after_set"]["log.retention.ms"],
        json!(["1234567", src("DYNAMIC_BROKER_CONFIG")]),
        "{o}"
    );
    assert_eq!(
        o["broker_after_delete"]["log.retention.ms"],
        json!(["604800000", static_]),
        "{o}"
    );
}

#[test]
fn confluent_kafka_admin_client_alters_and_describes_configs() {
    let broker = start_broker();
    let o = run(&broker, "confluent-kafka", "py-ck-configs");
    check(&o, "3600000", |s| json!(s), |e| json!(e));
    assert_eq!(o["unknown_topic"], "UNKNOWN_TOPIC_OR_PART", "{o}");
    // The legacy AlterConfigs replaced the whole set: the other overrides are gone.
    assert_eq!(
        o["after_alter"]["retention.ms"],
        json!(["604800000", "STATIC_BROKER_CONFIG"]),
        "{o}"
    );
    assert_eq!(
        o["after_alter"]["delete.retention.ms"],
        json!(["86400000", "DEFAULT_CONFIG"]),
        "{o}"
    );
}

#[test]
fn kafka_python_admin_client_alters_and_describes_configs() {
    let broker = start_broker();
    let o = run(&broker, "kafka-python", "py-kp-configs");
    let err = |e: &str| match e {
        "INVALID_CONFIG" => json!("[Error 40] InvalidConfigurationError"),
        "INVALID_REQUEST" => json!("[Error 42] InvalidRequestError"),
        other => json!(other),
    };
    check(&o, "7200000", |s| json!(s), err);
    // kafka-python's legacy path re-sends the other modified values itself, so they survive.
    assert_eq!(
        o["after_alter"]["retention.ms"],
        json!(["7200000", "DYNAMIC_TOPIC_CONFIG"]),
        "{o}"
    );
    // It refuses a key the broker describes as read-only before sending anything.
    assert_eq!(
        o["read_only_client_check"], "ValueError: Unrecognized configs: {'advertised.listeners'}",
        "{o}"
    );
}
