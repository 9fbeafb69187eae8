//! Consumer groups through two independent pure-Python clients, kafka-python and aiokafka: each
//! subscribes with a `group_id`, is assigned the partitions by the group protocol (FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat), consumes, commits synchronously (OffsetCommit), reads its
//! commits back (OffsetFetch) and leaves (LeaveGroup); a later member of the same group resumes
//! exactly where the commits say.
//!
//! The clients run `compat-tests/python/group_consume.py` with the interpreter of the virtualenv
//! that `scripts/install-deps.sh` (through `scripts/install-python-clients.sh`) creates at
//! `target/python-clients`, or `$DISTLOG_PYTHON`. A missing interpreter fails these tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::command::{python_clients as python, run_with_deadline, CommandOutput};
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{DistlogOptions, DistlogProcess, OrPanic};
use serde_json::Value;

const PARTITIONS: i32 = 3;
/// The script's own deadline for one run; the process is killed 30 s after it.
const RUN_TIMEOUT_S: u64 = 90;

/// (partition, offset) → (key, value): where each record is and what it holds.
type Records = BTreeMap<(i32, i64), KeyValue>;

/// A record's key and value (`None` = null).
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A consumed record: partition, offset, key, value.
type Consumed = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/group_consume.py")
}

/// A broker whose group coordinator completes a first join at once instead of waiting for more
/// members (the setting is an environment variable so an older binary simply ignores it).
fn start_group_broker() -> DistlogProcess {
    DistlogProcess::start(DistlogOptions {
        env: vec![("DISTLOG_GROUP_INITIAL_REBALANCE_DELAY_MS".into(), "0".into())],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog")
}

/// Produces keyed records `ids` (key `key-<id>`, a patterned value of 20 to 219 bytes) with
/// librdkafka's key partitioner, acks=all, and returns where each one landed.
fn produce_keyed(bootstrap: &str, topic: &str, ids: std::ops::Range<usize>) -> Records {
    let records: Vec<TestRecord> = ids
        .clone()
        .map(|i| TestRecord {
            key: Some(format!("key-{i}").into_bytes()),
            payload: Some(kafka::patterned_payload(i, 20 + i % 200)),
            ..TestRecord::default()
        })
        .collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(bootstrap, "all"),
        topic,
        None,
        &records,
        Duration::from_secs(60),
    )
    .or_panic("produce");
    let mut placed = Records::new();
    for d in deliveries {
        let offset = d
            .result
            .unwrap_or_else(|e| panic!("message {} was not delivered: {e:?}", d.id));
        let r = &records[d.id];
        let previous = placed.insert((d.partition, offset), (r.key.clone(), r.payload.clone()));
        assert!(previous.is_none(), "two deliveries at {}/{offset}", d.partition);
    }
    let used: BTreeSet<i32> = placed.keys().map(|(p, _)| *p).collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "the keys should spread over every partition"
    );
    placed
}

/// The high watermark of every partition.
fn end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    (0..PARTITIONS)
        .map(|p| {
            let (_, high) = kafka::watermarks(bootstrap, topic, p).or_panic("watermarks");
            (p, high)
        })
        .collect()
}

/// How a run of the script ends.
enum End<'a> {
    /// After exactly this many records plus a quiet period.
    Expect(usize),
    /// When this file appears; the script keeps its assignment and count in `status`.
    StopFile { stop: &'a Path, status: &'a Path },
}

/// One finished run of the script: the JSON document it printed, parsed.
#[derive(Debug)]
struct GroupRun {
    client: String,
    /// In the order the client returned them.
    records: Vec<Consumed>,
    assignment: Vec<i32>,
    committed: BTreeMap<i32, Option<i64>>,
    positions: BTreeMap<i32, i64>,
    stderr: String,
}

fn group_consume_command(client: &str, bootstrap: &str, topic: &str, group: &str, end: &End<'_>) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(script())
        .args([
            "--client",
            client,
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
        ])
        .args(["--timeout-s", &RUN_TIMEOUT_S.to_string()])
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    match end {
        End::Expect(n) => {
            cmd.args(["--expect", &n.to_string(), "--quiet-s", "3"]);
        }
        End::StopFile { stop, status } => {
            cmd.arg("--stop-file").arg(stop).arg("--status-file").arg(status);
        }
    }
    if std::env::var("DISTLOG_PYTHON_DEBUG").as_deref() == Ok("1") {
        cmd.arg("--debug");
    }
    cmd
}

/// Runs the script to completion (killed 30 s past its own deadline) and parses what it printed;
/// panics with its output when it failed.
fn run_group_consume(client: &str, bootstrap: &str, topic: &str, group: &str, end: &End<'_>) -> GroupRun {
    let cmd = group_consume_command(client, bootstrap, topic, group, end);
    let out = run_with_deadline(cmd, None, Duration::from_secs(RUN_TIMEOUT_S + 30)).or_panic(client);
    parse_run(client, out)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `$DISTLOG_PYTHON_LOG_DIR`: where to keep every client run's stderr and, for a failed test, the
/// broker's log (for diagnosis; with `DISTLOG_PYTHON_DEBUG=1` the client logs are at DEBUG level).
fn log_dir() -> Option<PathBuf> {
    std::env::var_os("DISTLOG_PYTHON_LOG_DIR").map(PathBuf::from)
}

/// Copies the broker's log into [`log_dir`] when the test fails (declared after the broker, so it
/// runs before the broker's data directory is removed).
struct KeepBrokerLog(PathBuf, String);

impl Drop for KeepBrokerLog {
    fn drop(&mut self) {
        if let (true, Some(dir)) = (thread::panicking(), log_dir()) {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&self.0, dir.join(format!("{}-broker.log", self.1)));
        }
    }
}

fn keep_broker_log(broker: &DistlogProcess, name: &str) -> KeepBrokerLog {
    KeepBrokerLog(broker.log_path().to_path_buf(), name.to_string())
}

/// Keeps a client run's stderr in [`log_dir`], if one is set.
fn save_stderr(client: &str, stderr: &str) {
    if let Some(dir) = log_dir() {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let _ = std::fs::create_dir_all(&dir);
        let name = format!("{client}-{}-{n}.stderr", std::process::id());
        let _ = std::fs::write(dir.join(name), stderr);
    }
}

/// The line group_consume.py logs right before it closes its consumer after a successful run.
const CLOSING_LINE: &str = "group_consume: closing the consumer";

/// The ERROR and CRITICAL lines of a client's log up to the line where it reports closing its
/// consumer (at most 20), and whether it reported that.
fn errors_before_closing(stderr: &str) -> (Vec<&str>, bool) {
    let mut errors = Vec::new();
    for line in stderr.lines() {
        if line.contains(CLOSING_LINE) {
            return (errors, true);
        }
        if (line.contains(" ERROR ") || line.contains(" CRITICAL ")) && errors.len() < 20 {
            errors.push(line);
        }
    }
    (errors, false)
}

#[test]
fn client_errors_are_judged_until_the_consumer_starts_closing() {
    let log = "t INFO kafka.coordinator: joined\n\
               t INFO group_consume: closing the consumer\n\
               t ERROR kafka.conn: Error receiving network data closing socket\n";
    assert_eq!(errors_before_closing(log), (vec![], true));
    let log = "t ERROR kafka.coordinator: OffsetCommit failed\n\
               t INFO group_consume: closing the consumer\n";
    assert_eq!(
        errors_before_closing(log),
        (vec!["t ERROR kafka.coordinator: OffsetCommit failed"], true)
    );
    let log = "t CRITICAL x: y\nt INFO kafka: never closed\n";
    assert_eq!(errors_before_closing(log), (vec!["t CRITICAL x: y"], false));
}

fn parse_run(client: &str, out: CommandOutput) -> GroupRun {
    let stdout = out.stdout_text();
    save_stderr(client, &out.stderr);
    assert!(
        out.status.success(),
        "{client} group consumer failed ({}).\n---- stderr (tail) ----\n{}\n---- stdout (first 2000 bytes) ----\n{}",
        out.status,
        tail(&out.stderr, 150),
        stdout.chars().take(2000).collect::<String>()
    );
    let doc: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{client} printed no JSON document ({e}): {stdout}"));
    assert_eq!(doc["client"], client, "{doc}");
    let (errors, closing) = errors_before_closing(&out.stderr);
    assert!(
        closing,
        "{client} never reported closing its consumer ({CLOSING_LINE:?})\n---- stderr (tail) ----\n{}",
        tail(&out.stderr, 80)
    );
    // A client that recovered from an error response still logs it at ERROR: none is expected
    // while it consumes and commits. What a client logs once it started closing is its own
    // shutdown (kafka-python 3 races its socket teardown against its network thread and logs
    // "Error receiving network data closing socket" after a successful LeaveGroup); what the broker
    // answered is judged from the records, positions and committed offsets the client reported.
    assert!(
        errors.is_empty(),
        "{client} logged errors:\n{}\n---- stderr (tail) ----\n{}",
        errors.join("\n"),
        tail(&out.stderr, 80)
    );
    let bytes = |v: &Value| -> Option<Vec<u8>> {
        v.as_str().map(|h| {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect()
        })
    };
    let int = |v: &Value| v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"));
    let records = doc["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                i32::try_from(int(&r["partition"])).expect("partition"),
                int(&r["offset"]),
                bytes(&r["key"]),
                bytes(&r["value"]),
            )
        })
        .collect();
    let partition_map = |v: &Value| -> BTreeMap<i32, Value> {
        v.as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.parse().expect("partition number"), v.clone()))
            .collect()
    };
    GroupRun {
        client: format!("{client} {}", doc["version"].as_str().unwrap_or("?")),
        records,
        assignment: doc["assignment"]
            .as_array()
            .expect("assignment")
            .iter()
            .map(|p| i32::try_from(int(p)).expect("partition"))
            .collect(),
        committed: partition_map(&doc["committed"])
            .into_iter()
            .map(|(p, v)| (p, v.as_i64()))
            .collect(),
        positions: partition_map(&doc["positions"])
            .into_iter()
            .map(|(p, v)| (p, int(&v)))
            .collect(),
        stderr: out.stderr,
    }
}

/// Asserts `consumed` (in consumption order, possibly from several members) holds every record of
/// `expected` exactly once with its key and value, nothing else, and each partition in offset order
/// within each member.
fn assert_exactly_once(what: &str, members: &[&GroupRun], expected: &Records) {
    let mut seen = Records::new();
    let mut duplicates = Vec::new();
    for run in members {
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for (p, o, k, v) in &run.records {
            if let Some(prev) = last.insert(*p, *o) {
                assert!(
                    *o > prev,
                    "{what}: {} returned {p}/{o} after {p}/{prev}",
                    run.client
                );
            }
            if seen.insert((*p, *o), (k.clone(), v.clone())).is_some() {
                duplicates.push((*p, *o));
            }
        }
    }
    let total: usize = members.iter().map(|r| r.records.len()).sum();
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !seen.contains_key(k))
        .take(10)
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| !expected.contains_key(k))
        .take(10)
        .collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| seen.get(k).is_some_and(|s| s != *v))
        .map(|(k, _)| k)
        .take(10)
        .collect();
    assert!(
        duplicates.is_empty() && missing.is_empty() && extra.is_empty() && wrong.is_empty(),
        "{what}: consumed {total} records ({} distinct) for {} expected; duplicates {:?}, \
         missing {missing:?}, unexpected {extra:?}, wrong key/value {wrong:?}",
        seen.len(),
        expected.len(),
        &duplicates[..duplicates.len().min(10)]
    );
    assert_eq!(total, expected.len(), "{what}");
}

/// Asserts the group's committed offsets (as the run read them back) are `ends` for every
/// partition.
fn assert_committed(what: &str, run: &GroupRun, ends: &BTreeMap<i32, i64>) {
    let want: BTreeMap<i32, Option<i64>> = ends.iter().map(|(p, o)| (*p, Some(*o))).collect();
    assert_eq!(
        run.committed, want,
        "{what}: committed offsets read back by {}",
        run.client
    );
}

/// One member consumes everything, commits, and leaves; a second member of the same group gets
/// nothing new; after 300 more records a third gets exactly those.
fn group_consume_resumes_from_committed_offsets(client: &str) {
    python(); // fail first, and clearly, when the clients are not installed
    let broker = start_group_broker();
    let _keep = keep_broker_log(&broker, &format!("resume-{client}"));
    let bootstrap = broker.bootstrap();
    let topic = format!("py-group-{client}");
    let group = format!("py-group-{client}-g");
    kafka::create_topic(&bootstrap, &topic, PARTITIONS).or_panic("create topic");

    let first = produce_keyed(&bootstrap, &topic, 0..3000);
    let ends = end_offsets(&bootstrap, &topic);
    assert_eq!(ends.values().sum::<i64>(), 3000);

    let run = run_group_consume(client, &bootstrap, &topic, &group, &End::Expect(3000));
    assert_exactly_once("first run", &[&run], &first);
    assert_eq!(
        run.assignment,
        vec![0, 1, 2],
        "{}: a lone member owns every partition",
        run.client
    );
    assert_committed("first run", &run, &ends);
    assert_eq!(run.positions, ends, "first run: positions");

    // Nothing new: the committed offsets are the end of every partition.
    let idle = run_group_consume(client, &bootstrap, &topic, &group, &End::Expect(0));
    assert_exactly_once("run with nothing new", &[&idle], &Records::new());
    assert_eq!(idle.assignment, vec![0, 1, 2], "{}", idle.client);
    assert_eq!(idle.positions, ends, "run with nothing new: resumed positions");
    assert_committed("run with nothing new", &idle, &ends);

    let second = produce_keyed(&bootstrap, &topic, 3000..3300);
    let ends2 = end_offsets(&bootstrap, &topic);
    assert_eq!(ends2.values().sum::<i64>(), 3300);
    let resumed = run_group_consume(client, &bootstrap, &topic, &group, &End::Expect(300));
    assert_exactly_once("run after 300 more", &[&resumed], &second);
    assert_committed("run after 300 more", &resumed, &ends2);
    assert_eq!(resumed.positions, ends2, "run after 300 more: positions");
}

fn read_status(path: &Path) -> Option<(Vec<i32>, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let assignment = v["assignment"]
        .as_array()?
        .iter()
        .filter_map(|p| p.as_i64().and_then(|p| i32::try_from(p).ok()))
        .collect();
    Some((assignment, v["consumed"].as_u64()?))
}

type Member = thread::JoinHandle<anyhow::Result<CommandOutput>>;

/// Creates the members' stop file when dropped, so a failing test does not leave them running
/// until their own deadline.
struct StopFileOnDrop(PathBuf);

impl Drop for StopFileOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, b"");
    }
}

/// Stops the members, waits for them, and panics with `why` and what each of them printed.
fn fail_members(stop: &Path, why: String, members: Vec<Member>) -> ! {
    std::fs::write(stop, b"").expect("write stop file");
    let outputs: Vec<String> = members
        .into_iter()
        .map(|m| match m.join() {
            Ok(Ok(out)) => {
                save_stderr("member", &out.stderr);
                format!(
                    "exit {}; stdout: {}\nstderr (tail):\n{}",
                    out.status,
                    out.stdout_text().chars().take(1000).collect::<String>(),
                    tail(&out.stderr, 80)
                )
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => "member thread panicked".to_string(),
        })
        .collect();
    panic!(
        "{why}\n---- member a ----\n{}\n---- member b ----\n{}",
        outputs[0], outputs[1]
    );
}

/// Two members of one group split the partitions between them; records produced once both are
/// assigned are consumed exactly once across the two, and the commits of both are in the group.
fn two_member_group_consumes_each_record_once(client: &str) {
    python(); // fail first, and clearly, when the clients are not installed
    let broker = start_group_broker();
    let _keep = keep_broker_log(&broker, &format!("pair-{client}"));
    let bootstrap = broker.bootstrap();
    let topic = format!("py-pair-{client}");
    let group = format!("py-pair-{client}-g");
    kafka::create_topic(&bootstrap, &topic, PARTITIONS).or_panic("create topic");

    let dir = tempfile::tempdir().expect("tempdir");
    let stop = dir.path().join("stop");
    // Whatever happens below, the members are told to stop when this test ends.
    let _stop_members = StopFileOnDrop(stop.clone());
    let statuses = [dir.path().join("member-a.json"), dir.path().join("member-b.json")];
    let members: Vec<Member> = statuses
        .iter()
        .map(|status| {
            let cmd = group_consume_command(
                client,
                &bootstrap,
                &topic,
                &group,
                &End::StopFile { stop: &stop, status },
            );
            thread::spawn(move || run_with_deadline(cmd, None, Duration::from_secs(RUN_TIMEOUT_S + 30)))
        })
        .collect();
    let finish = |members: Vec<Member>| -> Vec<GroupRun> {
        members
            .into_iter()
            .map(|m| parse_run(client, m.join().expect("member thread").or_panic(client)))
            .collect()
    };
    // Wait until the two members hold disjoint, non-empty shares of the three partitions.
    let started = Instant::now();
    loop {
        let s: Vec<_> = statuses.iter().map(|p| read_status(p)).collect();
        if let [Some((a, _)), Some((b, _))] = &s[..] {
            let union: BTreeSet<i32> = a.iter().chain(b).copied().collect();
            if !a.is_empty()
                && !b.is_empty()
                && a.len() + b.len() == PARTITIONS as usize
                && union.len() == PARTITIONS as usize
            {
                break;
            }
        }
        if members.iter().any(|m| m.is_finished()) {
            fail_members(
                &stop,
                format!("a member exited before both were assigned (status {s:?})"),
                members,
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            fail_members(
                &stop,
                format!("the two members were not both assigned within 60 s (status {s:?})"),
                members,
            );
        }
        thread::sleep(Duration::from_millis(100));
    }

    let expected = produce_keyed(&bootstrap, &topic, 0..3000);
    let ends = end_offsets(&bootstrap, &topic);

    // Wait until the members have 3,000 records between them, then a little longer so an extra
    // (duplicated) record would show, and stop both.
    let started = Instant::now();
    loop {
        let s: Vec<_> = statuses.iter().map(|p| read_status(p)).collect();
        let consumed: u64 = s.iter().flatten().map(|(_, n)| n).sum();
        if consumed >= 3000 {
            thread::sleep(Duration::from_secs(2));
            break;
        }
        if members.iter().any(|m| m.is_finished()) {
            fail_members(
                &stop,
                format!("a member exited after consuming {consumed} (status {s:?})"),
                members,
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            fail_members(
                &stop,
                format!("the members consumed {consumed} of 3000 within 60 s (status {s:?})"),
                members,
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&stop, b"").expect("write stop file");
    let runs = finish(members);

    assert_exactly_once("two members", &[&runs[0], &runs[1]], &expected);
    for run in &runs {
        assert!(
            !run.records.is_empty(),
            "{}: a member consumed nothing",
            run.client
        );
        let own: BTreeSet<i32> = run.assignment.iter().copied().collect();
        let read: BTreeSet<i32> = run.records.iter().map(|r| r.0).collect();
        assert!(
            read.is_subset(&own),
            "{}: read partitions {read:?} outside its assignment {own:?}\n{}",
            run.client,
            tail(&run.stderr, 40)
        );
    }

    // The commits of both members are the group's: a new lone member starts at the end.
    let after = run_group_consume(client, &bootstrap, &topic, &group, &End::Expect(0));
    assert_exactly_once("lone member after the pair", &[&after], &Records::new());
    assert_committed("lone member after the pair", &after, &ends);
    assert_eq!(after.positions, ends, "lone member after the pair: positions");
}

#[test]
fn kafka_python_group_consume_resumes_from_committed_offsets() {
    group_consume_resumes_from_committed_offsets("kafka-python");
}

#[test]
fn aiokafka_group_consume_resumes_from_committed_offsets() {
    group_consume_resumes_from_committed_offsets("aiokafka");
}

#[test]
fn kafka_python_two_member_group_consumes_each_record_once() {
    two_member_group_consumes_each_record_once("kafka-python");
}

#[test]
fn aiokafka_two_member_group_consumes_each_record_once() {
    two_member_group_consumes_each_record_once("aiokafka");
}
