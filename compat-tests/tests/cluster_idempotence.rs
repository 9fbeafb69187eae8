//! An idempotent rdkafka producer (`enable.idempotence=true`, acks=all, 5
//! requests in flight, retried for up to 120 s) writing continuously to a
//! replicated partition of the 3-node cluster (scripts/local-cluster.sh)
//! while the partition's owner is killed with `kill -9` mid-stream, with
//! batches in flight. The client retries those batches to the new owner,
//! whose producer state was rebuilt from the last snapshot plus replay of
//! the entries after it: a batch the old owner had already written must be
//! answered as a duplicate (with its original offset), never written again.
//!
//! Afterwards the whole partition is read back: every message was
//! acknowledged, each is in the log exactly once at its acknowledged
//! offset, offsets are dense, no value appears twice anywhere (what a
//! non-idempotent producer retrying in-flight batches to a new owner would
//! break), and the values are in send order without a gap.
//!
//! Two variants: the default segment size (the first failover rebuilds by
//! replaying the whole first segment), and a small `segment.bytes`, where
//! segments roll under load and every rebuild starts from the snapshot at
//! the start of the last segment. Each kills the owner
//! `DISTLOG_CHAOS_ITERATIONS` times (default 2); the tests run one at a
//! time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::chaos::{acknowledged, verify_zero_loss, ContinuousProducer, Sent};
use distlog_compat_tests::cluster::LocalCluster;
use distlog_compat_tests::kafka;
use rand::Rng;
use rdkafka::Offset;

/// One cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Session timeout (lease) of these clusters; failover takes about this
/// long plus a controller tick.
const SESSION_MS: u64 = 6000;

/// The small segment size of the snapshot variant: at the producer's rate
/// a segment rolls about every second, so even the first failover finds a
/// last segment that starts with a snapshot of a state that knows the
/// producer.
const SMALL_SEGMENT_BYTES: &str = "65536";

/// The idempotent producer: acks=all (kafka::producer_config), 5 in flight,
/// retried until 120 s have passed (far longer than a failover), and a
/// short linger so that several small batches are always in flight.
const IDEMPOTENT: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("max.in.flight.requests.per.connection", "5"),
    // The key ContinuousProducer sets to 0 (`retries` is its alias).
    ("message.send.max.retries", "2147483647"),
    ("message.timeout.ms", "120000"),
    ("linger.ms", "1"),
];

/// Pause between two messages of the continuous producer (about 3,000
/// messages a second here, some 60,000 per test), so that a few batches
/// are always in flight.
const SEND_INTERVAL: Duration = Duration::from_micros(200);

fn iterations() -> usize {
    std::env::var("DISTLOG_CHAOS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn cluster() -> LocalCluster {
    LocalCluster::up(
        3,
        &format!("--broker-session-timeout-ms {SESSION_MS} --broker-heartbeat-interval-ms 1500"),
    )
    .expect("3-node cluster up")
}

fn others(all: &[usize], not: usize) -> Vec<usize> {
    all.iter().copied().filter(|k| *k != not).collect()
}

/// The stream id (`{topic id}-0`) of partition 0 of `topic`, as the
/// storage log lines name it, and the number of its segments.
fn stream_of(c: &LocalCluster, topic: &str) -> (String, usize) {
    let v = c
        .get_json_any(&[1, 2, 3], "/admin/topics")
        .expect("/admin/topics");
    let t = v["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .unwrap_or_else(|| panic!("{topic} not in /admin/topics: {v}"));
    let id = t["id"].as_str().expect("topic id");
    let segments = t["partitions"][0]["segments"].as_array().map_or(0, Vec::len);
    (format!("{id}-0"), segments)
}

/// The "stream state rebuilt" lines of `stream` in the tail of node `k`'s log.
fn rebuild_lines(c: &LocalCluster, k: usize, stream: &str) -> Vec<String> {
    let needle = format!("stream={stream}");
    c.log_tail(k, 2000)
        .lines()
        .filter(|l| l.contains("stream state rebuilt") && l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// The numeric `key=value` field of a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Retried batches a node answered as duplicates (with their original
/// offset, not written again).
const DUPLICATES: &str = "distlog_producer_duplicate_batches_total";

/// A counter from node `k`'s /metrics (0 when absent or the node does not answer).
fn metric(c: &LocalCluster, k: usize, name: &str) -> f64 {
    c.get_text(k, "/metrics")
        .ok()
        .and_then(|body| {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// One rebuild of the partition's producer state on a new owner.
struct Rebuild {
    node: usize,
    /// The segment the rebuild read (1: the stream's first).
    lssn: u64,
    took_ms: u64,
    snapshot_bytes: u64,
    replayed_entries: u64,
}

impl std::fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {}: {} ms, segment {}, snapshot of {} bytes + {} entries replayed",
            self.node, self.took_ms, self.lssn, self.snapshot_bytes, self.replayed_entries
        )
    }
}

/// What the failovers of one run looked like.
#[derive(Debug, Default)]
struct Report {
    in_flight_at_kill: Vec<usize>,
    resumes: Vec<Duration>,
    rebuilds: Vec<Rebuild>,
    /// Per failover: batches the new owner answered as duplicates.
    duplicates_on_new_owner: Vec<f64>,
}

/// Produce idempotently to partition 0 of `topic` (created with `config`)
/// while its owner is killed with `kill -9` `iterations()` times (the
/// first time once the partition has at least `segments_before_kill`
/// segments); returns the failover report and what was sent.
fn run_owner_kills(
    c: &LocalCluster,
    topic: &str,
    config: &[(&str, &str)],
    segments_before_kill: usize,
) -> (Report, Vec<Sent>) {
    kafka::create_topic_replicated(c.bootstrap(), topic, 1, 3, config).expect("create 3/3/2 topic");
    let all = [1usize, 2, 3];
    c.wait_owner(&all, topic, 0, Duration::from_secs(20))
        .expect("owner");
    let (stream, _) = stream_of(c, topic);
    let producer =
        ContinuousProducer::start(c.bootstrap(), topic, SEND_INTERVAL, IDEMPOTENT).expect("producer");
    let mut rng = rand::thread_rng();
    let mut report = Report::default();
    for i in 0..iterations() {
        thread::sleep(Duration::from_millis(rng.gen_range(1500..3500)));
        let deadline = Instant::now() + Duration::from_secs(30);
        while stream_of(c, topic).1 < segments_before_kill {
            assert!(
                Instant::now() < deadline,
                "{topic}-0 did not reach {segments_before_kill} segments under load within 30 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        let owner = c
            .wait_owner(&all, topic, 0, Duration::from_secs(20))
            .expect("owner");
        let before: Vec<(usize, Vec<String>, f64)> = others(&all, owner)
            .into_iter()
            .map(|k| (k, rebuild_lines(c, k, &stream), metric(c, k, DUPLICATES)))
            .collect();
        c.kill9(owner).expect("kill owner");
        // Counted from the owner's death (kill9 returns once the process is
        // gone): what was sent and not yet answered then is retried.
        let killed_at = Instant::now();
        let in_flight = producer
            .snapshot()
            .iter()
            .filter(|s| s.outcome.is_none() && s.sent_at < killed_at)
            .count();
        let resume = producer
            .wait_ack_of_message_sent_after(killed_at, Duration::from_secs(30))
            .expect("producer resumes after the owner's death");
        let new_owner = c
            .wait_owner(&others(&all, owner), topic, 0, Duration::from_secs(15))
            .expect("new owner");
        assert_ne!(new_owner, owner);
        let (_, old_lines, old_duplicates) = before
            .iter()
            .find(|(k, _, _)| *k == new_owner)
            .expect("new owner was a live node");
        let duplicates = metric(c, new_owner, DUPLICATES) - old_duplicates;
        let new_lines: Vec<String> = rebuild_lines(c, new_owner, &stream)
            .into_iter()
            .filter(|l| !old_lines.contains(l))
            .collect();
        assert!(
            !new_lines.is_empty(),
            "iteration {i}: node {new_owner} took over {topic}-0 but logged no \"stream state rebuilt\" \
             for {stream}; its log ends with:\n{}",
            c.log_tail(new_owner, 40)
        );
        for l in &new_lines {
            report.rebuilds.push(Rebuild {
                node: new_owner,
                lssn: field(l, "lssn").unwrap_or_else(|| panic!("no lssn in {l}")),
                took_ms: field(l, "took_ms").unwrap_or_else(|| panic!("no took_ms in {l}")),
                snapshot_bytes: field(l, "snapshot_bytes").unwrap_or(0),
                replayed_entries: field(l, "replayed_entries").unwrap_or(0),
            });
        }
        eprintln!(
            "iteration {i}: killed owner {owner} with {in_flight} messages in flight; node {new_owner} \
             took over, producer resumed after {resume:?}; {duplicates} retried batches answered \
             as duplicates by the new owner; rebuilt: {:?}",
            new_lines
                .iter()
                .map(|l| l.split("stream state rebuilt").nth(1).unwrap_or(l).trim())
                .collect::<Vec<_>>()
        );
        report.in_flight_at_kill.push(in_flight);
        report.duplicates_on_new_owner.push(duplicates);
        report.resumes.push(resume);
        c.start(owner).expect("restart the killed node");
    }
    // Keep writing to the last new owner for a while.
    thread::sleep(Duration::from_secs(2));
    let sent = producer.stop().expect("stop producer");
    (report, sent)
}

/// Each acknowledged message is in the log exactly once, at its
/// acknowledged offset (verify_zero_loss); the whole partition, offset 0 to
/// the high watermark, holds each value once, densely, in send order; and
/// every message sent was acknowledged, so the log is exactly m0, m1, ...
/// without a gap. Returns the number of records.
fn verify_exactly_once_in_order(c: &LocalCluster, topic: &str, sent: &[Sent]) -> usize {
    let acked = acknowledged(sent);
    let n = verify_zero_loss(c.bootstrap(), topic, &acked).expect("every acknowledged message exactly once");

    // The whole partition, not only where the acknowledgements point: a
    // retried batch written twice would sit at offsets nobody was told of.
    let (low, high) = kafka::watermarks(c.bootstrap(), topic, 0).expect("watermarks");
    assert_eq!(low, 0, "log start offset");
    let consumer = kafka::assigned_consumer(
        &kafka::consumer_config(c.bootstrap()),
        topic,
        0,
        Offset::Offset(0),
    )
    .expect("consumer");
    let records = kafka::poll_n_across_failures(&consumer, high as usize, Duration::from_secs(60))
        .expect("read the partition to its high watermark");
    let mut first_at: HashMap<&[u8], i64> = HashMap::new();
    let mut ids = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, i as i64, "offsets are not dense");
        let value = r.payload.as_deref().unwrap_or_default();
        let text = String::from_utf8_lossy(value);
        if let Some(first) = first_at.insert(value, r.offset) {
            panic!(
                "{text:?} appears twice in {topic}-0, at offsets {first} and {} (a retried batch was \
                 written again)",
                r.offset
            );
        }
        let id: usize = text
            .strip_prefix('m')
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("unexpected value {text:?} at offset {}", r.offset));
        if let Some(previous) = ids.last() {
            assert!(
                id > *previous,
                "offset {}: m{id} after m{previous}, not in send order",
                r.offset
            );
        }
        ids.push(id);
    }

    let failed: Vec<String> = sent
        .iter()
        .filter_map(|s| match &s.outcome {
            Some((_, Ok(_))) => None,
            Some((_, Err(e))) => Some(format!("m{}: {e}", s.id)),
            None => Some(format!("m{}: no delivery report", s.id)),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} messages were not acknowledged by the idempotent producer (first: {:?})",
        failed.len(),
        sent.len(),
        &failed[..failed.len().min(10)]
    );
    // In order (above) and unique with every one of 0..sent acknowledged
    // and present: exactly 0..sent, no gap.
    if let Some(gap) = ids.iter().enumerate().find(|(i, id)| *i != **id) {
        panic!(
            "offset {}: m{} where m{} was expected: a gap in the producer's sequence",
            gap.0, gap.1, gap.0
        );
    }
    assert_eq!(
        records.len(),
        sent.len(),
        "the partition holds {} records for {} messages sent",
        records.len(),
        sent.len()
    );
    assert_eq!(n, records.len());
    n
}

fn check_and_report(c: &LocalCluster, topic: &str, report: &Report, sent: &[Sent], started: Instant) {
    let n = verify_exactly_once_in_order(c, topic, sent);
    let (_, segments) = stream_of(c, topic);
    eprintln!(
        "{topic}: {} sent, all acknowledged, {n} in the log, each once and in order; {segments} \
         segments; in flight at the kills {:?}; resumed after {:?}; rebuilds {:?}; retried \
         batches answered as duplicates by the new owners {:?}; {:?} in all",
        sent.len(),
        report.in_flight_at_kill,
        report.resumes,
        report.rebuilds,
        report.duplicates_on_new_owner,
        started.elapsed()
    );
    assert!(sent.len() > 10_000, "the producer made progress: {}", sent.len());
    assert!(
        report.in_flight_at_kill.iter().all(|n| *n > 0),
        "every kill happened with messages in flight: {:?}",
        report.in_flight_at_kill
    );
}

#[test]
fn idempotent_producer_across_owner_kill9_writes_every_message_once_in_order() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let c = cluster();
    let topic = "idem-fo";
    let (report, sent) = run_owner_kills(&c, topic, &[], 1);
    check_and_report(&c, topic, &report, &sent, started);
}

#[test]
fn idempotent_producer_across_owner_kill9_with_small_segments_rebuilds_from_snapshot() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let c = cluster();
    let topic = "idem-fo-seg";
    let (report, sent) = run_owner_kills(&c, topic, &[("segment.bytes", SMALL_SEGMENT_BYTES)], 2);
    check_and_report(&c, topic, &report, &sent, started);
    // A segment rolled before the first kill already, so every rebuild read
    // a later segment, which starts with the snapshot of a state that knew
    // the producer, and replayed the entries after it.
    assert!(
        report.rebuilds.iter().all(|r| r.lssn > 1 && r.snapshot_bytes > 0),
        "every rebuild started from a snapshot in a later segment: {:?}",
        report.rebuilds
    );
}
