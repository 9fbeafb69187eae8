//! Kafka transactions on a replicated 3-node cluster of real `distlog` processes (node K on
//! 127.0.0.K, all roles, scripts/local-cluster.sh) under faults beyond a single node's death:
//!
//! - every node killed at once with transactions committed, aborted, open and prepared (its
//!   markers held back): after the restart the prepared one is committed, the open one aborted
//!   on its timeout, the others as they were;
//! - a transaction abandoned by its producer is aborted on its timeout although its coordinator
//!   was killed in the meantime;
//! - the consume-transform-produce application (`distlog-txn-app`) through the death of an output
//!   partition's owner, of itself mid-transaction, and of its transaction coordinator: every
//!   input exactly once in the output, the group's offsets at the input's end.
//!
//! The tests run one at a time (each cluster is three processes with lease timers on a small
//! machine).

use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::txn::{end_offsets, transactional_config, Isolation, TxnProducer};
use distlog_compat_tests::txn_app::{self, TxnApp};
use distlog_compat_tests::txn_checker::{find_anomalies, TxnOutcome, TxnRecord};
use distlog_compat_tests::txn_cluster::{
    assert_no_anomaly, cluster, coordinator_of, end_transaction, init_producer, kill9, replicated_topic,
    send_all, visible, wait_no_open_transaction, EnvVar, PARTITIONS,
};

/// One cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn an_abandoned_transaction_is_aborted_on_its_timeout_after_its_coordinator_died() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster();
    let topic = "txn-abandoned";
    replicated_topic(&c, topic);
    let id = "txn-abandoned";
    // A producer with a 5 s transaction timeout writes to every partition and vanishes without
    // ending its transaction (dropping a librdkafka producer neither commits nor aborts).
    let mut producer =
        TxnProducer::create(&transactional_config(c.bootstrap(), id, 5_000)).expect("create producer");
    producer.init(Duration::from_secs(30)).expect("init");
    producer.begin().expect("begin");
    let values: Vec<(i32, String)> = PARTITIONS
        .iter()
        .flat_map(|p| (0..3).map(move |i| (*p, format!("abandoned-p{p}-{i}"))))
        .collect();
    send_all(&mut producer, topic, &values).expect("send");
    producer.flush(Duration::from_secs(30)).expect("flush");
    assert!(
        producer.take_deliveries().iter().all(|d| d.result.is_ok()),
        "the abandoned transaction's records were written"
    );
    drop(producer);
    let open = end_offsets(c.bootstrap(), topic, &PARTITIONS, Isolation::ReadCommitted).expect("LSO");
    assert_eq!(
        open.values().copied().collect::<Vec<_>>(),
        vec![0, 0, 0],
        "open on every partition"
    );

    // Its coordinator dies; whoever coordinates the id next must still time the transaction out.
    let coordinator = coordinator_of(&c, id).expect("the coordinator");
    kill9(&c, coordinator).expect("kill the coordinator");
    let killed_at = Instant::now();
    c.start(coordinator).expect("restart the coordinator");
    wait_no_open_transaction(&c, topic, Duration::from_secs(60));
    eprintln!(
        "the abandoned transaction was resolved {:?} after its coordinator (node {coordinator}) was killed",
        killed_at.elapsed()
    );
    let high =
        end_offsets(c.bootstrap(), topic, &PARTITIONS, Isolation::ReadUncommitted).expect("high watermarks");
    assert_eq!(
        high.values().copied().collect::<Vec<_>>(),
        vec![4, 4, 4],
        "three records and one abort marker on every partition"
    );
    assert_eq!(
        visible(&c, topic),
        vec![],
        "read_committed shows nothing of the abandoned transaction"
    );
    // The id is usable again.
    let mut next = init_producer(c.bootstrap(), id).expect("a new producer with the id");
    next.begin().expect("begin");
    send_all(&mut next, topic, &[(0, "next".to_string())]).expect("send");
    let ending = end_transaction(&next, false);
    assert_eq!(ending.outcome, TxnOutcome::Committed, "{:?}", ending.errors);
    wait_no_open_transaction(&c, topic, Duration::from_secs(30));
    assert_eq!(visible(&c, topic), vec![(0, 4, "next".to_string())]);
}

/// The records `name` writes in one transaction: two per partition.
fn two_per_partition(name: &str) -> Vec<(i32, String)> {
    PARTITIONS
        .iter()
        .flat_map(|p| (0..2).map(move |i| (*p, format!("{name}-p{p}-{i}"))))
        .collect()
}

#[test]
fn a_whole_cluster_crash_resolves_committed_aborted_open_and_prepared_transactions() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Markers 3 s after each prepare: the last commit is prepared but unmarked at the crash.
    let _delay = EnvVar::set("DISTLOG_TEST_MARKER_DELAY_MS", "3000");
    let c = cluster();
    let topic = "txn-full-crash";
    replicated_topic(&c, topic);
    let write = |producer: &mut TxnProducer, name: &str| {
        producer.begin().expect("begin");
        send_all(producer, topic, &two_per_partition(name)).expect("send");
        producer.flush(Duration::from_secs(30)).expect("flush");
        assert!(
            producer.take_deliveries().iter().all(|d| d.result.is_ok()),
            "{name}'s records were written"
        );
    };
    let mut committed = init_producer(c.bootstrap(), "txn-full-crash-committed").expect("init");
    write(&mut committed, "committed");
    assert_eq!(end_transaction(&committed, false).outcome, TxnOutcome::Committed);
    wait_no_open_transaction(&c, topic, Duration::from_secs(30));
    let mut aborted = init_producer(c.bootstrap(), "txn-full-crash-aborted").expect("init");
    write(&mut aborted, "aborted");
    assert_eq!(end_transaction(&aborted, true).outcome, TxnOutcome::Aborted);
    wait_no_open_transaction(&c, topic, Duration::from_secs(30));
    // Open at the crash, with a 5 s timeout: aborted by the coordinator afterwards.
    let mut open = TxnProducer::create(&transactional_config(c.bootstrap(), "txn-full-crash-open", 5_000))
        .expect("create producer");
    open.init(Duration::from_secs(30)).expect("init");
    write(&mut open, "open");
    // Prepared at the crash (commit_transaction returned), its markers not yet written.
    let mut prepared = init_producer(c.bootstrap(), "txn-full-crash-prepared").expect("init");
    write(&mut prepared, "prepared");
    prepared
        .commit(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("commit (returns once prepared): {e}"));
    let high =
        end_offsets(c.bootstrap(), topic, &PARTITIONS, Isolation::ReadUncommitted).expect("high watermarks");
    for k in [1, 2, 3] {
        kill9(&c, k).expect("kill -9 a node");
    }
    assert_eq!(
        high.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "no marker of the open or the prepared transaction before the crash"
    );
    drop((open, prepared));
    c.start_many(&[1, 2, 3]).expect("restart every node");

    wait_no_open_transaction(&c, topic, Duration::from_secs(90));
    let high =
        end_offsets(c.bootstrap(), topic, &PARTITIONS, Isolation::ReadUncommitted).expect("high watermarks");
    assert_eq!(
        high.values().copied().collect::<Vec<_>>(),
        vec![12, 12, 12],
        "one marker each for the open and the prepared transaction"
    );
    let seen = visible(&c, topic);
    for p in PARTITIONS {
        let got: Vec<(i64, String)> = seen
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, o, v)| (*o, v.clone()))
            .collect();
        let want = vec![
            (0, format!("committed-p{p}-0")),
            (1, format!("committed-p{p}-1")),
            (8, format!("prepared-p{p}-0")),
            (9, format!("prepared-p{p}-1")),
        ];
        assert_eq!(got, want, "partition {p} after the whole cluster's crash");
    }
    let history = ["committed", "aborted", "open", "prepared"].map(|name| TxnRecord {
        name: name.to_string(),
        outcome: match name {
            "committed" | "prepared" => TxnOutcome::Committed,
            _ => TxnOutcome::Aborted,
        },
        values: two_per_partition(name).into_iter().map(|(_, v)| v).collect(),
    });
    assert_no_anomaly(&find_anomalies(&history, &seen));
}

/// The `batches` of the app's last `committed` event (0 before any).
fn batches_so_far(app: &TxnApp) -> u64 {
    app.events
        .iter()
        .rev()
        .find(|v| v["event"] == "committed")
        .and_then(|v| v["batches"].as_u64())
        .unwrap_or(0)
}

/// Waits until the app has committed `more` batches beyond what it had.
fn wait_progress(app: &mut TxnApp, more: u64, what: &str) {
    let target = batches_so_far(app) + more;
    app.wait_for(what, Duration::from_secs(120), |v| {
        v["event"] == "committed" && v["batches"].as_u64() >= Some(target)
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn consume_transform_produce_through_owner_coordinator_and_app_kills_outputs_every_input_exactly_once() {
    const M: usize = 900;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster();
    let topics = ("ctp-c-in", "ctp-c-out", "ctp-c-group", "ctp-c-app");
    replicated_topic(&c, topics.0);
    replicated_topic(&c, topics.1);
    let per_partition = txn_app::fill_input(c.bootstrap(), topics.0, 3, M).expect("fill the input");
    let args = txn_app::txn_app_args(c.bootstrap(), topics, 10, 30, 240);
    let binary = Path::new(env!("CARGO_BIN_EXE_distlog-txn-app"));
    let started = Instant::now();
    let mut app = TxnApp::spawn(binary, &args).expect("start the app");
    wait_progress(&mut app, 3, "3 committed batches");

    // Fault 1: the owner of an output partition.
    let owner = c
        .owner(&[1, 2, 3], topics.1, 0)
        .expect("owner")
        .expect("the output partition has an owner");
    eprintln!(
        "{:?}: kill -9 node {owner} (owner of {}-0)",
        started.elapsed(),
        topics.1
    );
    kill9(&c, owner).expect("kill the owner");
    thread::sleep(Duration::from_secs(1));
    c.start(owner).expect("restart the owner");
    wait_progress(&mut app, 5, "progress after the owner's death");

    // Fault 2: the app itself, with a transaction open.
    app.wait_for("an open transaction", Duration::from_secs(60), |v| {
        v["event"] == "produced"
    })
    .expect("an open transaction");
    eprintln!(
        "{:?}: kill -9 the app after {} committed records, mid-transaction",
        started.elapsed(),
        app.committed_total()
    );
    app.kill9().expect("kill the app");
    let mut app = TxnApp::spawn(binary, &args).expect("restart the app");
    wait_progress(&mut app, 3, "3 committed batches after the app's restart");

    // Fault 3: the app's transaction coordinator.
    let coordinator = coordinator_of(&c, topics.3).expect("the app's transaction coordinator");
    eprintln!(
        "{:?}: kill -9 node {coordinator} (transaction coordinator of {})",
        started.elapsed(),
        topics.3
    );
    kill9(&c, coordinator).expect("kill the coordinator");
    thread::sleep(Duration::from_secs(1));
    c.start(coordinator).expect("restart the coordinator");
    let total_before = app.committed_total();
    assert!(
        (total_before as usize) < M,
        "the app finished before the last fault ({total_before} of {M})"
    );

    app.wait_for("done", Duration::from_secs(180), |v| v["event"] == "done")
        .expect("the app finishes");
    let status = app.wait_exit(Duration::from_secs(30)).expect("app exit");
    assert!(status.success(), "the app exited with {status}");
    let aborted_left = app.events.iter().filter(|v| v["event"] == "aborted").count();
    let raw = txn_app::verify_exactly_once_output(
        c.bootstrap(),
        topics.0,
        topics.1,
        topics.2,
        &per_partition,
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "every one of {M} inputs exactly once in the output ({raw} records read_uncommitted, {aborted_left} \
         batches aborted by the last app); {:?} in all",
        started.elapsed()
    );
}
