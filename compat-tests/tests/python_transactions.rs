//! Transactional producers of the Python clients against a real `distlog`: kafka-python's
//! `KafkaProducer(transactional_id=...)`, aiokafka's `AIOKafkaProducer(transactional_id=...)` and
//! confluent-kafka's `Producer({"transactional.id": ...})` each run three transactions of five
//! records on partition 0 (`compat-tests/python/txn_produce.py`): one committed, one aborted, one
//! committed after the abort; the first two also send an offset to a consumer group
//! (`send_offsets_to_transaction`: 5, then 10), of which only the committed one may count. Each
//! marker takes an offset, so the records sit at 0-4, 6-10 and 12-16 (markers at 5, 11 and 17).
//! An rdkafka read_committed consumer then sees exactly the two committed transactions, and so
//! does the client's own consumer (each client filters aborted records and skips markers with
//! its own code); read_uncommitted sees all fifteen records; the group's committed offset is 5.
//!
//! The scripts run with the interpreter of the virtualenv `scripts/install-python-clients.sh`
//! creates at `target/python-clients` (or `$DISTLOG_PYTHON`).

use std::collections::BTreeMap;
use std::time::Duration;

use distlog_compat_tests::command::run_python_json;
use distlog_compat_tests::group::{committed_for_group, wait_until};
use distlog_compat_tests::kafka;
use distlog_compat_tests::txn::{last_stable_offset, offsets_and_values, read_to_end, Isolation};
use distlog_compat_tests::{start_broker, OrPanic};
use serde_json::Value;

/// Records per transaction.
const COUNT: usize = 5;

/// (name, outcome, values, offsets) of each transaction the script reports.
fn transactions(doc: &Value) -> Vec<(String, String, Vec<String>, Vec<i64>)> {
    doc["transactions"]
        .as_array()
        .unwrap_or_else(|| panic!("no transactions in {doc}"))
        .iter()
        .map(|t| {
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .unwrap_or_else(|| panic!("not a list in {t}"))
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .unwrap_or_else(|| panic!("not a string in {t}"))
                            .to_string()
                    })
                    .collect()
            };
            let offsets = t["offsets"]
                .as_array()
                .unwrap_or_else(|| panic!("no offsets in {t}"))
                .iter()
                .map(|o| o.as_i64().unwrap_or_else(|| panic!("offset not a number in {t}")))
                .collect();
            (
                t["name"].as_str().unwrap_or_default().to_string(),
                t["outcome"].as_str().unwrap_or_default().to_string(),
                strings(&t["values"]),
                offsets,
            )
        })
        .collect()
}

fn expected(name: &str, first: i64) -> Vec<(i64, String)> {
    (0..COUNT)
        .map(|i| (first + i as i64, format!("{name}-{i}")))
        .collect()
}

fn commit_and_abort(client: &str) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = format!("py-txn-{client}");
    kafka::create_topic(&bootstrap, &topic, 1).or_panic("create topic");
    let txn_id = format!("py-txn-{client}-id");
    let group = format!("py-txn-{client}-group");
    let doc = run_python_json(
        "txn_produce.py",
        &[
            "--client",
            client,
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--transactional-id",
            &txn_id,
            "--count",
            &COUNT.to_string(),
            "--timeout-s",
            "60",
            "--group",
            &group,
            "--consume",
        ],
        Duration::from_secs(90),
        || broker.log_tail(60),
    );
    eprintln!(
        "{client} {}: three transactions in {} s",
        doc["version"].as_str().unwrap_or("?"),
        doc["elapsed_s"]
    );
    assert!(doc.get("error").is_none(), "{client} failed: {doc}");
    let reported = transactions(&doc);
    let plan = [
        ("committed", "committed", 0),
        ("aborted", "aborted", 6),
        ("after", "committed", 12),
    ];
    assert_eq!(reported.len(), plan.len(), "{doc}");
    for ((name, outcome, values, offsets), (want_name, want_outcome, first)) in reported.iter().zip(plan) {
        assert_eq!(
            (name.as_str(), outcome.as_str()),
            (want_name, want_outcome),
            "{doc}"
        );
        let (want_offsets, want_values): (Vec<i64>, Vec<String>) =
            expected(want_name, first).into_iter().unzip();
        assert_eq!(values, &want_values, "{client}: values of {name}");
        assert_eq!(
            offsets, &want_offsets,
            "{client}: acknowledged offsets of {name} (each marker takes an offset)"
        );
    }

    wait_until(
        Duration::from_secs(20),
        "the last commit marker is written",
        || Ok(last_stable_offset(broker.kafka_addr(), &topic, 0)? == 18),
    )
    .or_panic("LSO");
    assert_eq!(
        kafka::watermarks(&bootstrap, &topic, 0).or_panic("watermarks"),
        (0, 18)
    );

    let read = |isolation| {
        let mut records =
            read_to_end(&bootstrap, &topic, &[0], isolation, Duration::from_secs(30)).or_panic("read to end");
        offsets_and_values(&records.remove(&0).unwrap_or_default())
    };
    let mut committed = expected("committed", 0);
    committed.extend(expected("after", 12));
    assert_eq!(
        read(Isolation::ReadCommitted),
        committed,
        "{client}: read_committed sees exactly the committed transactions"
    );
    let mut all = expected("committed", 0);
    all.extend(expected("aborted", 6));
    all.extend(expected("after", 12));
    // The client's own consumer filters the same way.
    for (isolation, want, end) in [("read_committed", &committed, 18), ("read_uncommitted", &all, 18)] {
        let read = &doc["read"][isolation];
        let got: Vec<(i64, String)> = read["records"]
            .as_array()
            .unwrap_or_else(|| panic!("{client}: no {isolation} read in {doc}"))
            .iter()
            .map(|r| {
                (
                    r[0].as_i64().expect("an offset"),
                    r[1].as_str().expect("a value").to_string(),
                )
            })
            .collect();
        assert_eq!(&got, want, "{client}'s own {isolation} consumer");
        assert_eq!(read["end"], end, "{client}'s {isolation} end offset");
    }
    // The committed transaction's offset (5) counts, the aborted one's (10) does not.
    assert_eq!(
        committed_for_group(&bootstrap, &group, &topic, &[0]).or_panic("committed offsets"),
        BTreeMap::from([(0, Some(5))]),
        "{client}: the group's offset after send_offsets_to_transaction in a committed and an \
         aborted transaction"
    );
    assert_eq!(
        read(Isolation::ReadUncommitted),
        all,
        "{client}: read_uncommitted sees the aborted records too"
    );
}

#[test]
fn kafka_python_transactional_producer_commits_and_aborts() {
    commit_and_abort("kafka-python");
}

#[test]
fn aiokafka_transactional_producer_commits_and_aborts() {
    commit_and_abort("aiokafka");
}

#[test]
fn confluent_kafka_transactional_producer_commits_and_aborts() {
    commit_and_abort("confluent-kafka");
}
