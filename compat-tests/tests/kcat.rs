//! kcat (Debian's, on librdkafka 2.0.2) as a second, independent client: metadata listing and a
//! produce/consume round trip through the command-line tool.
//!
//! kcat must be installed (`scripts/install-deps.sh` does it, and CI runs that). A missing kcat
//! fails these tests, unless `DISTLOG_SKIP_KCAT=1` is set.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use distlog_compat_tests::command::{kcat_available, kcat_command, run_with_deadline, CommandOutput};
use distlog_compat_tests::group::wait_until;
use distlog_compat_tests::{kafka, start_broker, DistlogOptions, DistlogProcess, OrPanic};

const DEADLINE: Duration = Duration::from_secs(60);

fn kcat(args: &[&str], stdin: Option<Vec<u8>>) -> CommandOutput {
    let mut cmd = kcat_command();
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

fn kcat_round_trip(topic: &str, codec: Option<&str>, idempotent: bool) {
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
    if idempotent {
        produce.extend(["-X", "enable.idempotence=true"]);
    }
    kcat(&produce, Some(input));
    if idempotent {
        // librdkafka 2.0.2 really produced with a producer id: the partition's state holds it,
        // with every sequence up to the last line's.
        let resp = broker
            .http_get(&format!("/admin/streams/{topic}/0/producers"))
            .or_panic("GET producers");
        assert_eq!(resp.status, 200, "{}", resp.body);
        let body: serde_json::Value = serde_json::from_str(&resp.body).expect("producers JSON");
        let producers = body["producers"].as_array().expect("producers array");
        assert_eq!(producers.len(), 1, "{body}");
        let last = producers[0]["batches"]
            .as_array()
            .and_then(|b| b.last())
            .and_then(|b| b["last_sequence"].as_i64());
        assert_eq!(last, Some(lines.len() as i64 - 1), "{body}");
    }

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
    kcat_round_trip("kcat-plain", None, false);
}

#[test]
fn kcat_idempotent_producer_round_trips_exactly() {
    if !kcat_available() {
        return;
    }
    kcat_round_trip("kcat-idempotent", None, true);
}

#[test]
fn kcat_round_trips_zstd_compressed_batches() {
    if !kcat_available() {
        return;
    }
    kcat_round_trip("kcat-zstd", Some("zstd"), false);
}

/// A `kcat -G` balanced consumer running in the background, with librdkafka's group and protocol
/// debug log (stderr) in a file. Killed on drop if it is still running.
struct KcatGroupConsumer {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl KcatGroupConsumer {
    fn spawn(args: &[&str]) -> KcatGroupConsumer {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("kcat.log");
        let child = kcat_command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("kcat log file"))
            .spawn()
            .expect("spawn kcat");
        KcatGroupConsumer {
            child,
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child, which is not reaped before drop.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// The exit status if kcat exits within `deadline`.
    fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for kcat") {
                return Some(status);
            }
            if started.elapsed() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for KcatGroupConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A group as the broker's admin API shows it.
#[derive(Debug)]
struct AdminGroup {
    state: String,
    generation: i64,
    members: usize,
    /// Every member's assigned partitions, sorted.
    assigned: Vec<(String, i64)>,
}

/// The group as the broker's admin API shows it; `None` while the group does not exist.
fn admin_group(broker: &DistlogProcess, group: &str) -> anyhow::Result<Option<AdminGroup>> {
    let resp = broker.http_get(&format!("/admin/groups/{group}"))?;
    if resp.status == 404 {
        return Ok(None);
    }
    anyhow::ensure!(
        resp.status == 200,
        "GET /admin/groups/{group}: {} {}",
        resp.status,
        resp.body
    );
    let json: serde_json::Value = serde_json::from_str(&resp.body)?;
    let members = json["members"].as_array().cloned().unwrap_or_default();
    let mut assigned = Vec::new();
    for m in &members {
        for a in m["assignment"].as_array().cloned().unwrap_or_default() {
            let topic = a["topic"].as_str().unwrap_or_default().to_string();
            for p in a["partitions"].as_array().cloned().unwrap_or_default() {
                assigned.push((topic.clone(), p.as_i64().unwrap_or(-1)));
            }
        }
    }
    assigned.sort();
    Ok(Some(AdminGroup {
        state: json["state"].as_str().unwrap_or_default().to_string(),
        generation: json["generation"].as_i64().unwrap_or(-1),
        members: members.len(),
        assigned,
    }))
}

fn partitions(topics: &[&str]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = topics
        .iter()
        .flat_map(|t| [(t.to_string(), 0), (t.to_string(), 1)])
        .collect();
    out.sort();
    out
}

/// How long a consumer's close may take: LeaveGroup is one round trip, and Kafka answers it at
/// once; the reported stall was at least 9 s.
const CLOSE_BOUND: Duration = Duration::from_secs(4);

/// What one run of the scenario came to.
enum Attempt {
    /// kcat was signalled and its close judged.
    Judged,
    /// kcat exited by itself before the close could be judged: librdkafka reported the deleted
    /// topic as a consumer error ("Subscribed topic not available"), on which kcat exits at once
    /// (exit 1, no close). Whether it does depends on which of librdkafka's metadata requests
    /// sees the deletion first, so the scenario is run again.
    KcatQuit,
}

/// The error to bail out of a wait with when kcat exited by itself.
fn kcat_still_running(kcat: &mut KcatGroupConsumer) -> anyhow::Result<()> {
    match kcat.child.try_wait()? {
        Some(status) => anyhow::bail!("kcat exited ({status})"),
        None => Ok(()),
    }
}

/// The reported sequence once, on topics and a group named after `tag`: a cooperative-sticky
/// kcat consumer of two topics, one topic deleted, then SIGINT (`close()`), either once the
/// rebalance the deletion causes has completed or as soon as librdkafka logs that it noticed the
/// deletion (its subscription shrank; the rejoin is starting), racing that rebalance.
///
/// kcat subscribes by pattern: with a literal two-topic subscription librdkafka always reports
/// the deleted topic as a consumer error, on which kcat exits at once.
///
/// What is judged is the broker's part of the close: librdkafka's `close()` must return (its
/// LeaveGroup answered) within [`CLOSE_BOUND`] of the signal, and the group must be Empty without
/// members by then. kcat's own exit is not bounded: librdkafka before 2.1.0 (Debian's kcat is on
/// 2.0.2) never finishes `rd_kafka_destroy()` after partitions were lost to a topic deletion (a
/// reference-count leak, fixed in librdkafka 2.1.0; the log ends in "terminating: broker still
/// has N refcnt(s)"), whatever the broker does; a kcat on a fixed librdkafka must exit cleanly.
fn close_after_topic_deletion(broker: &DistlogProcess, tag: &str, signal_after_rebalance: bool) -> Attempt {
    let bootstrap = broker.bootstrap();
    let kept = format!("{tag}-kept");
    let deleted = format!("{tag}-deleted");
    for topic in [&kept, &deleted] {
        kafka::create_topic(&bootstrap, topic, 2).or_panic("create topic");
    }
    let group = format!("{tag}-group");
    let pattern = format!("^{tag}-.*");
    let mut kcat = KcatGroupConsumer::spawn(&[
        "-b",
        &bootstrap,
        "-G",
        &group,
        &pattern,
        "-X",
        "partition.assignment.strategy=cooperative-sticky",
        "-X",
        "topic.metadata.refresh.interval.ms=500",
        "-o",
        "beginning",
        "-E",
        "-d",
        "cgrp,protocol",
    ]);
    let quit = |kcat: &KcatGroupConsumer, e: anyhow::Error| -> Attempt {
        let log = kcat.log_text();
        if e.to_string().contains("kcat exited") && log.contains("Subscribed topic not available") {
            eprintln!("{tag}: kcat exited on librdkafka's consumer error for the deleted topic; again");
            return Attempt::KcatQuit;
        }
        panic!("{e:#}\nkcat log:\n{log}");
    };

    let both = partitions(&[&deleted, &kept]);
    let mut generation = -1;
    wait_until(Duration::from_secs(30), "kcat owns both topics", || {
        Ok(match admin_group(broker, &group)? {
            Some(g) if g.state == "Stable" && g.members == 1 && g.assigned == both => {
                generation = g.generation;
                true
            }
            _ => false,
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}\nkcat log:\n{}", kcat.log_text()));
    // Consuming all four (kcat reports each partition's end): a topic deleted before librdkafka
    // fetched from it comes back as a consumer error.
    wait_until(Duration::from_secs(15), "kcat fetched every partition", || {
        let log = kcat.log_text();
        Ok(both
            .iter()
            .all(|(t, p)| log.contains(&format!("Reached end of topic {t} [{p}]"))))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nkcat log:\n{}", kcat.log_text()));

    kafka::delete_topic(&bootstrap, &deleted).or_panic("delete topic");
    let noticed = wait_until(Duration::from_secs(15), "kcat noticed the deletion", || {
        kcat_still_running(&mut kcat)?;
        Ok(kcat
            .log_text()
            .contains("effective subscription list changed from 2 to 1"))
    });
    if let Err(e) = noticed {
        return quit(&kcat, e);
    }
    if signal_after_rebalance {
        let only_kept = partitions(&[&kept]);
        let rebalanced = wait_until(
            Duration::from_secs(15),
            "kcat rebalanced onto the kept topic",
            || {
                kcat_still_running(&mut kcat)?;
                Ok(matches!(
                    admin_group(broker, &group)?,
                    Some(g) if g.state == "Stable" && g.members == 1 && g.generation > generation && g.assigned == only_kept
                ))
            },
        );
        if let Err(e) = rebalanced {
            return quit(&kcat, e);
        }
    }

    let signalled = Instant::now();
    if let Err(e) = kcat_still_running(&mut kcat) {
        return quit(&kcat, e);
    }
    kcat.signal(libc::SIGINT);
    let closed = wait_until(CLOSE_BOUND, "kcat's close() returned", || {
        let log = kcat.log_text();
        if !log.contains("Consumer closed") {
            kcat_still_running(&mut kcat)?;
        }
        Ok(log.contains("Consumer closed"))
    });
    let took = signalled.elapsed();
    if let Err(e) = closed {
        return quit(&kcat, e.context(format!("after {took:?}")));
    }
    let log = kcat.log_text();
    assert!(
        log.contains("Received LeaveGroupResponse"),
        "close without a LeaveGroup answer:\n{log}"
    );
    let left = CLOSE_BOUND
        .saturating_sub(signalled.elapsed())
        .max(Duration::from_millis(200));
    wait_until(left, "the group is Empty", || {
        Ok(matches!(admin_group(broker, &group)?, Some(g) if g.state == "Empty" && g.members == 0))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", admin_group(broker, &group)));

    match kcat.wait_exit(Duration::from_secs(3)) {
        Some(status) => assert!(
            status.success(),
            "kcat exited with {status}:\n{}",
            kcat.log_text()
        ),
        None => {
            let log = kcat.log_text();
            assert!(
                log.contains("refcnt(s)"),
                "kcat neither exited nor is stuck in librdkafka's destroy:\n{log}"
            );
            eprintln!(
                "{tag}: kcat closed in {took:?} but hangs in rd_kafka_destroy (librdkafka < 2.1.0); killed"
            );
        }
    }
    Attempt::Judged
}

/// Runs the scenario until kcat stays up long enough for its close to be judged (at most
/// `ATTEMPTS` times: never judging it fails the test).
fn kcat_cooperative_close_after_topic_deletion(tag: &str, signal_after_rebalance: bool) {
    const ATTEMPTS: usize = 5;
    let broker = DistlogProcess::start(DistlogOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".to_string(), "0".to_string()],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog");
    for attempt in 0..ATTEMPTS {
        let tag = format!("{tag}{attempt}");
        if let Attempt::Judged = close_after_topic_deletion(&broker, &tag, signal_after_rebalance) {
            return;
        }
    }
    panic!("kcat exited on its own before its close in all {ATTEMPTS} attempts");
}

#[test]
fn kcat_cooperative_consumer_closes_promptly_after_one_of_its_topics_is_deleted() {
    if !kcat_available() {
        return;
    }
    kcat_cooperative_close_after_topic_deletion("kcoop-settled", true);
}

#[test]
fn kcat_cooperative_consumer_closes_promptly_while_the_topic_deletion_rebalances_it() {
    if !kcat_available() {
        return;
    }
    kcat_cooperative_close_after_topic_deletion("kcoop-racing", false);
}
