//! Striped placement on a 3-node cluster of real `distlog` processes: a
//! topic with E/Qw/Qa = 3/2/2 puts each entry on the two bookies of its
//! write set (ensemble positions `e mod 3` and `e+1 mod 3`), so each bookie
//! holds two thirds of every segment. Records produced with acks=all read
//! back exactly; the replica report (asked of the bookies) shows every
//! committed entry on exactly its write set; and killing the partition
//! owner (and with it one of the three bookies) while producing loses no
//! acknowledged record.

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::chaos::{acknowledged, verify_zero_loss, ContinuousProducer};
use distlog_compat_tests::cluster::LocalCluster;
use distlog_compat_tests::kafka;
use serde_json::Value;

/// One cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Session timeout (lease): failover takes about this long.
const SESSION_MS: u64 = 6000;

const STRIPED: [(&str, &str); 3] = [
    ("distlog.ensemble.size", "3"),
    ("distlog.write.quorum", "2"),
    ("distlog.ack.quorum", "2"),
];

fn cluster() -> LocalCluster {
    LocalCluster::up(
        3,
        &format!("--broker-session-timeout-ms {SESSION_MS} --broker-heartbeat-interval-ms 1500"),
    )
    .expect("3-node cluster up")
}

/// A 1-partition topic striped 3/2/2, with a live owner.
fn striped_topic(c: &LocalCluster, name: &str) {
    kafka::create_topic_replicated(c.bootstrap(), name, 1, 3, &STRIPED).expect("create a 3/2/2 topic");
    c.wait_owner(&[1, 2, 3], name, 0, Duration::from_secs(20))
        .expect("owner");
}

/// Why `seg` (one segment of a replica report) does not have every
/// committed entry on exactly its write set, or `None` when it does. Entry
/// `x`'s write set is ensemble positions `x mod 3` and `x+1 mod 3`, so the
/// bookie at position `i` must hold exactly the committed `x` with
/// `(i - x) mod 3 < 2` — and, when `exact`, nothing more (after a crash a
/// bookie may keep a never-acknowledged entry past a recovered segment's
/// sealed end, which is never read).
fn off_its_write_sets(seg: &Value, exact: bool) -> Option<String> {
    let shape = (
        seg["ensemble"].as_array().map(Vec::len),
        seg["write_quorum"].as_u64(),
        seg["ack_quorum"].as_u64(),
    );
    if shape != (Some(3), Some(2), Some(2)) {
        return Some(format!("shape {shape:?}"));
    }
    let Some(committed) = seg["committed_last_entry_id"].as_u64() else {
        return Some("committed end unknown".into());
    };
    if seg["under_replicated_entries"] != 0 || seg["below_write_quorum_entries"] != 0 {
        return Some("short entries".into());
    }
    let replicas = seg["replicas"].as_array()?;
    let mut total = 0;
    for (i, r) in replicas.iter().enumerate() {
        let stripe = (0..=committed).filter(|x| (i as u64 + 3 - x % 3) % 3 < 2).count() as u64;
        let last = (0..=committed).rev().find(|x| (i as u64 + 3 - x % 3) % 3 < 2);
        let held = (
            r["reachable"].as_bool(),
            r["entries"].as_u64(),
            r["stripe_entries"].as_u64(),
            r["missing_entries"].as_u64(),
            r["last_entry_id"].as_u64(),
        );
        let ok = match held {
            (Some(true), Some(entries), Some(s), Some(0), l) if s == stripe => {
                if exact {
                    entries == stripe && l == last
                } else {
                    entries >= stripe && l >= last
                }
            }
            _ => false,
        };
        if !ok {
            return Some(format!(
                "bookie at position {i}: {held:?}, want {stripe} entries up to {last:?}"
            ));
        }
        total += stripe;
    }
    (total != 2 * (committed + 1)).then(|| format!("{total} copies of {} entries", committed + 1))
}

/// The replica report of `topic`/0 from its owner (which knows the
/// in-progress segment's committed end), once every segment has each
/// committed entry on exactly its write set (see [`off_its_write_sets`]);
/// panics after `within`.
fn wait_on_write_sets(c: &LocalCluster, topic: &str, exact: bool, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let path = format!("/admin/partitions/{topic}/0/replicas");
    loop {
        let seen = c
            .owner(&[1, 2, 3], topic, 0)
            .and_then(|o| c.get_json(o.unwrap_or(1), &path));
        let problem = match &seen {
            Ok(report) => match report["segments"].as_array() {
                Some(segs) if !segs.is_empty() => segs
                    .iter()
                    .find_map(|s| off_its_write_sets(s, exact).map(|p| format!("lssn {}: {p}", s["lssn"]))),
                _ => Some("no segments".into()),
            },
            Err(e) => Some(format!("{e:#}")),
        };
        match (problem, seen) {
            (None, Ok(report)) => return report,
            (problem, seen) => assert!(
                Instant::now() < deadline,
                "{topic}: replicas not exactly on their write sets within {within:?}: {problem:?}\n{seen:?}"
            ),
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn three_nodes_stripe_every_entry_over_exactly_its_two_write_set_bookies() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster();
    striped_topic(&c, "st");
    let records: Vec<kafka::TestRecord> = (0..2000)
        .map(|i| kafka::TestRecord::value(format!("m{i}")))
        .collect();
    // Small batches, one request at a time: about 200 entries, so the
    // stripes are many entries long.
    let mut config = kafka::producer_config(c.bootstrap(), "all");
    config
        .set("batch.num.messages", "10")
        .set("linger.ms", "0")
        .set("max.in.flight.requests.per.connection", "1");
    let deliveries =
        kafka::produce_records(&config, "st", Some(0), &records, Duration::from_secs(60)).expect("produce");
    // One producer, one partition, no failure: message i lands at offset i.
    let acked: Vec<(usize, i64)> = deliveries
        .iter()
        .map(|d| (d.id, *d.result.as_ref().expect("acknowledged")))
        .collect();
    assert_eq!(acked, (0..2000).map(|i| (i, i as i64)).collect::<Vec<_>>());
    // Read back in order: exact offsets and contents, and nothing else.
    let back = kafka::consume_n(c.bootstrap(), "st", 0, 0, 2000, Duration::from_secs(60)).expect("consume");
    for (i, r) in back.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(
            r.payload.as_deref(),
            Some(format!("m{i}").as_bytes()),
            "offset {i}"
        );
    }
    assert_eq!(
        kafka::watermarks(c.bootstrap(), "st", 0).expect("watermarks"),
        (0, 2000)
    );
    assert_eq!(
        verify_zero_loss(c.bootstrap(), "st", &acked).expect("read back"),
        2000
    );

    let report = wait_on_write_sets(&c, "st", true, Duration::from_secs(20));
    let segments = report["segments"].as_array().expect("segments");
    let entries: u64 = segments
        .iter()
        .map(|s| s["committed_last_entry_id"].as_u64().expect("committed") + 1)
        .sum();
    eprintln!(
        "2000 records in {entries} entries over {} segment(s), each entry on exactly 2 of 3 bookies",
        segments.len()
    );
    assert!(entries >= 100, "{entries} entries: too few to stripe");
}

#[test]
fn owner_kill9_while_producing_to_a_striped_topic_loses_no_acknowledged_record() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster();
    striped_topic(&c, "sk");
    let producer =
        ContinuousProducer::start(c.bootstrap(), "sk", Duration::from_millis(2), &[]).expect("producer");
    let all = [1usize, 2, 3];
    for i in 0..2 {
        thread::sleep(Duration::from_millis(1500));
        let owner = c
            .wait_owner(&all, "sk", 0, Duration::from_secs(30))
            .expect("owner");
        c.kill9(owner).expect("kill the owner");
        // From the owner's death (kill9 returns once it is gone).
        let killed_at = Instant::now();
        let others: Vec<usize> = all.iter().copied().filter(|k| *k != owner).collect();
        let new_owner = c
            .wait_owner(&others, "sk", 0, Duration::from_secs(SESSION_MS / 1000 + 15))
            .expect("ownership moves to a live node");
        // Every segment needs its three bookies: the killed node's comes back
        // with its data, and the new owner's recovery (which may need it for
        // the tail) completes.
        c.start(owner).expect("restart the killed node");
        let resume = producer
            .wait_ack_of_message_sent_after(killed_at, Duration::from_secs(60))
            .expect("the producer resumes");
        eprintln!("iteration {i}: killed owner {owner}; {new_owner} took over; resumed after {resume:?}");
    }
    thread::sleep(Duration::from_secs(1));
    let sent = producer.stop().expect("stop the producer");
    let acked = acknowledged(&sent);
    assert!(
        acked.len() > 500,
        "the producer made progress: {} acknowledged",
        acked.len()
    );
    let n = verify_zero_loss(c.bootstrap(), "sk", &acked).expect("zero loss");
    eprintln!(
        "striped owner failover: {} sent, {} acknowledged, {n} in the log",
        sent.len(),
        acked.len()
    );
    // Recovery left every committed entry on exactly its write set.
    let report = wait_on_write_sets(&c, "sk", false, Duration::from_secs(30));
    eprintln!(
        "{} segments, every committed entry on its two write-set bookies",
        report["segments"].as_array().map_or(0, Vec::len)
    );
}
