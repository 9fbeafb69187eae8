//! Kafka transactions on a replicated 3-node cluster of real `distlog` processes (node K on
//! 127.0.0.K, all roles, scripts/local-cluster.sh) under `kill -9`:
//!
//! - the owner of one of a transaction's partitions dies before the commit: the outcome is all or
//!   nothing;
//! - the transaction coordinator dies between prepare and complete (the test fault
//!   `DISTLOG_TEST_MARKER_DELAY_MS` holds the markers back 3 s after the prepare): the commit is
//!   completed anyway, on all three partitions, and the transactional id goes on working;
//!
//! The whole cluster crashing, a transaction abandoned while its coordinator dies and the
//! consume-transform-produce application on the cluster are in `cluster_txn_faults.rs`; the
//! randomized checker is in `cluster_txn_checker.rs`.
//!
//! The tests run one at a time (each cluster is three processes with lease timers on a small
//! machine).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use distlog_compat_tests::group::wait_until;
use distlog_compat_tests::txn::{end_offsets, find_transaction_coordinator, Isolation};
use distlog_compat_tests::txn_checker::{find_anomalies, TxnOutcome, TxnRecord};
use distlog_compat_tests::txn_cluster::{
    assert_no_anomaly, cluster, end_transaction, init_producer, kill9, node_of, replicated_topic, send_all,
    visible, wait_no_open_transaction, EnvVar, PARTITIONS,
};
use distlog_compat_tests::OrPanic;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// One cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_transaction_whose_partition_owner_is_killed_before_the_commit_is_all_or_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster();
    let topic = "txn-owner-kill";
    replicated_topic(&c, topic);
    let mut producer = init_producer(c.bootstrap(), "txn-owner-kill").expect("init");
    producer.begin().expect("begin");
    let values: Vec<(i32, String)> = PARTITIONS
        .iter()
        .flat_map(|p| (0..10).map(move |i| (*p, format!("ok-p{p}-{i}"))))
        .collect();
    send_all(&mut producer, topic, &values).expect("send");
    producer.flush(Duration::from_secs(30)).expect("flush");
    let failed: Vec<_> = producer
        .take_deliveries()
        .into_iter()
        .filter(|d| d.result.is_err())
        .collect();
    assert!(
        failed.is_empty(),
        "records not written before the kill: {failed:?}"
    );

    let victim = c
        .owner(&[1, 2, 3], topic, 1)
        .expect("owner")
        .expect("partition 1 has an owner");
    kill9(&c, victim).expect("kill the owner of partition 1");
    let killed_at = Instant::now();
    let ending = end_transaction(&producer, false);
    eprintln!(
        "killed node {victim} (owner of {topic}-1); the transaction ended {:?} after {:?}; errors: {:?}",
        ending.outcome,
        killed_at.elapsed(),
        ending.errors.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    drop(producer);
    c.start(victim).expect("restart the killed node");

    wait_no_open_transaction(&c, topic, Duration::from_secs(90));
    let seen = visible(&c, topic);
    let history = [TxnRecord {
        name: "the transaction".into(),
        outcome: ending.outcome,
        values: values.iter().map(|(_, v)| v.clone()).collect(),
    }];
    assert_no_anomaly(&find_anomalies(&history, &seen));
    assert!(
        seen.len() == values.len() || seen.is_empty(),
        "{} of the transaction's {} records are visible",
        seen.len(),
        values.len()
    );
    if !seen.is_empty() {
        // All of it, in order per partition at offsets 0..9.
        for p in PARTITIONS {
            let got: Vec<(i64, String)> = seen
                .iter()
                .filter(|(q, _, _)| *q == p)
                .map(|(_, o, v)| (*o, v.clone()))
                .collect();
            let want: Vec<(i64, String)> = (0..10).map(|i| (i, format!("ok-p{p}-{i}"))).collect();
            assert_eq!(got, want, "partition {p}");
        }
    }
}

#[test]
fn a_commit_survives_the_coordinator_killed_between_prepare_and_complete() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _delay = EnvVar::set("DISTLOG_TEST_MARKER_DELAY_MS", "3000");
    let c = cluster();
    let topic = "txn-coord-kill";
    replicated_topic(&c, topic);
    let id = "txn-coord-kill";
    let mut producer = init_producer(c.bootstrap(), id).expect("init");

    let first_addr: std::net::SocketAddr = c
        .bootstrap()
        .split(',')
        .next()
        .expect("a bootstrap address")
        .parse()
        .expect("host:port");
    let mut coordinator = None;
    wait_until(Duration::from_secs(20), "FindCoordinator(transaction)", || {
        coordinator = Some(find_transaction_coordinator(first_addr, id)?);
        Ok(true)
    })
    .or_panic("find the transaction coordinator");
    let (node_id, host, port) = coordinator.expect("found");
    let coordinator = node_of(&c, &host, port);
    assert_eq!(
        node_id as usize, coordinator,
        "the coordinator's node id and address disagree"
    );

    // A read_uncommitted consumer, connected beforehand, to look at the high watermarks in the
    // window between the prepare and the (held back) markers.
    let watcher: BaseConsumer =
        distlog_compat_tests::txn::isolated_consumer_config(c.bootstrap(), Isolation::ReadUncommitted)
            .create()
            .expect("consumer");
    for p in PARTITIONS {
        watcher
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
    }

    producer.begin().expect("begin");
    let t1: Vec<(i32, String)> = PARTITIONS
        .iter()
        .flat_map(|p| (0..5).map(move |i| (*p, format!("t1-p{p}-{i}"))))
        .collect();
    send_all(&mut producer, topic, &t1).expect("send");
    producer
        .commit(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("commit (returns once prepared): {e}"));
    // The markers are held back 3 s after the prepare: none is written yet.
    let highs: Vec<i64> = PARTITIONS
        .iter()
        .map(|p| {
            watcher
                .fetch_watermarks(topic, *p, Duration::from_secs(2))
                .expect("watermarks")
                .1
        })
        .collect();
    kill9(&c, coordinator).expect("kill the coordinator");
    assert_eq!(
        highs,
        vec![5, 5, 5],
        "a marker was written before the coordinator was killed (DISTLOG_TEST_MARKER_DELAY_MS not in effect?)"
    );
    eprintln!("killed the transaction coordinator, node {coordinator}, between prepare and complete");
    c.start(coordinator).expect("restart the coordinator");

    // The commit is completed: every record of it visible on all three partitions.
    wait_until(
        Duration::from_secs(90),
        "the commit is completed on all partitions",
        || {
            Ok(
                end_offsets(c.bootstrap(), topic, &PARTITIONS, Isolation::ReadCommitted)?
                    .values()
                    .all(|lso| *lso == 6),
            )
        },
    )
    .or_panic("commit completed");
    let expected_t1 =
        |p: i32| -> Vec<(i64, String)> { (0..5).map(|i| (i, format!("t1-p{p}-{i}"))).collect() };
    let seen = visible(&c, topic);
    for p in PARTITIONS {
        let got: Vec<(i64, String)> = seen
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, o, v)| (*o, v.clone()))
            .collect();
        assert_eq!(
            got,
            expected_t1(p),
            "partition {p} after the coordinator's failover"
        );
    }

    // The same producer runs another transaction.
    producer.begin().expect("begin 2");
    let t2: Vec<(i32, String)> = PARTITIONS.iter().map(|p| (*p, format!("t2-p{p}"))).collect();
    send_all(&mut producer, topic, &t2).expect("send 2");
    let ending = end_transaction(&producer, false);
    assert_eq!(
        ending.outcome,
        TxnOutcome::Committed,
        "the producer's next transaction after the failover: {:?}",
        ending.errors
    );
    // So does a new producer with the same id, which fences the old one.
    let mut successor = init_producer(c.bootstrap(), id).expect("init the successor");
    successor.begin().expect("begin 3");
    let t3: Vec<(i32, String)> = PARTITIONS.iter().map(|p| (*p, format!("t3-p{p}"))).collect();
    send_all(&mut successor, topic, &t3).expect("send 3");
    let ending = end_transaction(&successor, false);
    assert_eq!(
        ending.outcome,
        TxnOutcome::Committed,
        "the successor's transaction: {:?}",
        ending.errors
    );
    producer.begin().expect("the fenced producer begins locally");
    send_all(&mut producer, topic, &[(0, "zombie".to_string())]).expect("enqueue");
    let zombie = producer
        .commit(Duration::from_secs(30))
        .expect_err("the fenced producer's commit must fail");
    assert!(zombie.is_fenced(), "the old producer must be fenced: {zombie}");

    wait_no_open_transaction(&c, topic, Duration::from_secs(60));
    let seen = visible(&c, topic);
    for p in PARTITIONS {
        let got: Vec<(i64, String)> = seen
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, o, v)| (*o, v.clone()))
            .collect();
        let mut want = expected_t1(p);
        want.push((6, format!("t2-p{p}")));
        want.push((8, format!("t3-p{p}")));
        assert_eq!(got, want, "partition {p} after three transactions");
    }
}
