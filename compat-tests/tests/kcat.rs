//! kcat (Debian's, on librdkafka 2.0.2) as a second, independent client: metadata listing and a
//! produce/consume round trip through the command-line tool.
//!
//! kcat must be installed (`scripts/install-deps.sh` does it, and CI runs that). A missing kcat
//! fails these tests, unless `DISTLOG_SKIP_KCAT=1` is set.

use std::process::Command;
use std::time::Duration;

use distlog_compat_tests::command::{run_with_deadline, CommandOutput};
use distlog_compat_tests::{kafka, start_broker, OrPanic};

const DEADLINE: Duration = Duration::from_secs(60);

/// Returns false (skip) only when kcat is absent and DISTLOG_SKIP_KCAT=1; panics if it is absent
/// otherwise.
fn kcat_available() -> bool {
    let mut version = Command::new("kcat");
    version.arg("-V");
    let found = run_with_deadline(version, None, Duration::from_secs(10)).is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var("DISTLOG_SKIP_KCAT").as_deref() == Ok("1") {
        eprintln!("kcat not installed; skipped because DISTLOG_SKIP_KCAT=1");
        return false;
    }
    panic!("kcat is not installed: run scripts/install-deps.sh (or set DISTLOG_SKIP_KCAT=1 to skip)");
}

fn kcat(args: &[&str], stdin: Option<Vec<u8>>) -> CommandOutput {
    let mut cmd = Command::new("kcat");
    cmd.args(args);
    let out = run_with_deadline(cmd, stdin, DEADLINE).or_panic("kcat");
    assert!(
        out.status.success(),
        "kcat {args:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    out
}

#[test]
fn kcat_lists_the_broker_and_topics() {
    if !kcat_available() {
        return;
    }
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "kcat-listed", 2).or_panic("create topic");

    let out = kcat(&["-L", "-J", "-b", &bootstrap, "-m", "10"], None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kcat -L -J output is not JSON ({e}): {}", out.stdout_text()));
    let brokers = json["brokers"].as_array().expect("brokers array");
    assert_eq!(brokers.len(), 1, "{json}");
    assert_eq!(brokers[0]["name"], format!("127.0.0.1:{}", broker.ports().kafka));
    let broker_id = brokers[0]["id"].clone();
    let topics = json["topics"].as_array().expect("topics array");
    let topic = topics
        .iter()
        .find(|t| t["topic"] == "kcat-listed")
        .unwrap_or_else(|| panic!("{json}"));
    let partitions = topic["partitions"].as_array().expect("partitions array");
    assert_eq!(partitions.len(), 2, "{topic}");
    for p in partitions {
        assert_eq!(p["leader"], broker_id, "{p}");
    }

    // The plain-text listing names the broker too.
    let text = kcat(&["-L", "-b", &bootstrap, "-t", "kcat-listed", "-m", "10"], None).stdout_text();
    assert!(
        text.contains(&format!("at 127.0.0.1:{}", broker.ports().kafka)),
        "{text}"
    );
    assert!(text.contains("topic \"kcat-listed\" with 2 partitions"), "{text}");
}

fn kcat_round_trip(topic: &str, codec: Option<&str>) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let lines: Vec<String> = (0..500)
        .map(|i| format!("kcat line {i} {}", "z".repeat(i % 40)))
        .collect();
    let input = lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes();

    let mut produce = vec!["-P", "-b", &bootstrap, "-t", topic, "-p", "0", "-X", "acks=all"];
    if let Some(codec) = codec {
        produce.extend(["-z", codec]);
    }
    kcat(&produce, Some(input));

    let out = kcat(
        &[
            "-C",
            "-b",
            &bootstrap,
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o:%s\\n",
        ],
        None,
    );
    let expected: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{i}:{l}"))
        .collect();
    let text = out.stdout_text();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "kcat consumed {} of {} lines",
        got.len(),
        expected.len()
    );
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "line {i}");
    }
}

#[test]
fn kcat_produce_then_consume_round_trips_exactly() {
    if !kcat_available() {
        return;
    }
    kcat_round_trip("kcat-plain", None);
}

#[test]
fn kcat_round_trips_zstd_compressed_batches() {
    if !kcat_available() {
        return;
    }
    kcat_round_trip("kcat-zstd", Some("zstd"));
}
