//! Kafka transactions through librdkafka against one real `distlog` process that crashes:
//! `kill -9` of the broker with transactions committed, aborted, open and
//! prepared-but-unmarked (everything resolved the same way after the restart), and a
//! consume-transform-produce application (`distlog-txn-app`) killed with SIGKILL
//! mid-transaction and restarted: every input record in the output exactly once, the group's
//! offsets at the input's end.

use std::path::Path;
use std::time::Duration;

use distlog_compat_tests::group::wait_until;
use distlog_compat_tests::kafka;
use distlog_compat_tests::process::{DistlogOptions, DistlogProcess};
use distlog_compat_tests::txn::{
    last_stable_offset, list_latest, transactional_config, Isolation, TxnProducer, TXN_CALL_TIMEOUT,
};
use distlog_compat_tests::txn_app::{self, TxnApp};
use distlog_compat_tests::txn_broker::{
    at, init_producer, numbered, read, write_in_txn, OrPanicTxn, READ_TIMEOUT,
};
use distlog_compat_tests::{start_broker, OrPanic};

#[test]
fn a_crash_and_restart_keeps_aborted_transactions_dropped_and_an_open_one_open() {
    let mut broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = "txn-restart";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let mut producer = init_producer(&bootstrap, "txn-restart-1");
    producer.begin().or_panic_txn("begin 1");
    let committed = numbered("committed", 2);
    assert_eq!(write_in_txn(&mut producer, topic, 0, &committed), vec![0, 1]);
    producer.commit(TXN_CALL_TIMEOUT).or_panic_txn("commit 1");
    producer.begin().or_panic_txn("begin 2");
    let aborted = numbered("aborted", 2);
    assert_eq!(write_in_txn(&mut producer, topic, 0, &aborted), vec![3, 4]);
    producer.abort(TXN_CALL_TIMEOUT).or_panic_txn("abort 2");
    producer.begin().or_panic_txn("begin 3");
    let open = numbered("open", 2);
    assert_eq!(write_in_txn(&mut producer, topic, 0, &open), vec![6, 7]);
    assert_eq!(
        last_stable_offset(broker.kafka_addr(), topic, 0).or_panic("LSO"),
        6
    );

    broker.kill9().or_panic("kill -9 the broker");
    broker.restart().or_panic("restart the broker");
    assert_eq!(
        broker.bootstrap(),
        bootstrap,
        "the restarted broker took other ports"
    );
    // The open transaction is still open after the restart, the aborted one still aborted.
    wait_until(
        Duration::from_secs(30),
        "the partition answers ListOffsets again",
        || Ok(last_stable_offset(broker.kafka_addr(), topic, 0).is_ok()),
    )
    .or_panic("ListOffsets after the restart");
    assert_eq!(
        last_stable_offset(broker.kafka_addr(), topic, 0).or_panic("LSO"),
        6,
        "the LSO after the restart (the open transaction starts at 6)"
    );
    assert_eq!(
        read(&bootstrap, topic, 0, Isolation::ReadCommitted),
        at(0, &committed),
        "read_committed after the restart"
    );

    // The producer, which outlived the broker, commits its open transaction.
    producer
        .commit(TXN_CALL_TIMEOUT)
        .or_panic_txn("commit 3 after the restart");
    wait_until(Duration::from_secs(20), "the commit marker is written", || {
        Ok(last_stable_offset(broker.kafka_addr(), topic, 0)? == 9)
    })
    .or_panic("LSO after the commit");
    let mut expected = at(0, &committed);
    expected.extend(at(6, &open));
    assert_eq!(read(&bootstrap, topic, 0, Isolation::ReadCommitted), expected);
    let mut everything = at(0, &committed);
    everything.extend(at(3, &aborted));
    everything.extend(at(6, &open));
    assert_eq!(read(&bootstrap, topic, 0, Isolation::ReadUncommitted), everything);
}

#[test]
fn a_crash_between_prepare_and_markers_completes_the_commit_and_times_out_the_open_transaction() {
    let mut broker = DistlogProcess::start(DistlogOptions {
        extra_args: vec![
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms".into(),
            "500".into(),
        ],
        // Markers are written 3 s after a transaction is prepared: the crash falls in between.
        env: vec![("DISTLOG_TEST_MARKER_DELAY_MS".into(), "3000".into())],
        ..DistlogOptions::default()
    })
    .or_panic("start broker");
    let bootstrap = broker.bootstrap();
    let topic = "txn-crash-prepared";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let mut a =
        TxnProducer::create(&transactional_config(&bootstrap, "txn-crash-a", 3_000)).or_panic("create A");
    a.init(TXN_CALL_TIMEOUT).or_panic_txn("init A");
    let mut b = init_producer(&bootstrap, "txn-crash-b");
    a.begin().or_panic_txn("A begin");
    let a_values = numbered("a", 2);
    assert_eq!(write_in_txn(&mut a, topic, 0, &a_values), vec![0, 1]);
    b.begin().or_panic_txn("B begin");
    let b_values = numbered("b", 2);
    assert_eq!(write_in_txn(&mut b, topic, 0, &b_values), vec![2, 3]);
    b.commit(TXN_CALL_TIMEOUT)
        .or_panic_txn("B commit (returns once prepared)");
    let high = list_latest(broker.kafka_addr(), topic, 0, Isolation::ReadUncommitted).or_panic("HW");
    broker.kill9().or_panic("kill -9 the broker");
    assert_eq!(
        high, 4,
        "B's commit marker was written before the crash (the delay did not hold)"
    );

    broker.restart().or_panic("restart the broker");
    // B's prepared commit is completed, A (open, 3 s timeout) is aborted: two markers, and
    // nothing left open.
    wait_until(Duration::from_secs(60), "both transactions are resolved", || {
        let stable = last_stable_offset(broker.kafka_addr(), topic, 0)?;
        let high = list_latest(broker.kafka_addr(), topic, 0, Isolation::ReadUncommitted)?;
        if (stable, high) != (6, 6) {
            anyhow::bail!("LSO {stable}, high watermark {high}");
        }
        Ok(true)
    })
    .or_panic("resolution after the restart");
    assert_eq!(
        read(&broker.bootstrap(), topic, 0, Isolation::ReadCommitted),
        at(2, &b_values),
        "read_committed: B's commit completed, A aborted"
    );
    let mut everything = at(0, &a_values);
    everything.extend(at(2, &b_values));
    assert_eq!(
        read(&broker.bootstrap(), topic, 0, Isolation::ReadUncommitted),
        everything
    );

    let failure = a
        .commit(TXN_CALL_TIMEOUT)
        .expect_err("A's transaction was aborted on its timeout");
    assert!(failure.is_fenced(), "A's commit after its timeout: {failure}");
    b.begin().or_panic_txn("B begin 2");
    assert_eq!(write_in_txn(&mut b, topic, 0, &["b-next".to_string()]), vec![6]);
    b.commit(TXN_CALL_TIMEOUT).or_panic_txn("B commit 2");
    wait_until(
        Duration::from_secs(20),
        "B's second commit marker is written",
        || Ok(last_stable_offset(broker.kafka_addr(), topic, 0)? == 8),
    )
    .or_panic("LSO after B's second commit");
    let mut expected = at(2, &b_values);
    expected.push((6, "b-next".to_string()));
    assert_eq!(
        read(&broker.bootstrap(), topic, 0, Isolation::ReadCommitted),
        expected
    );
}

#[test]
fn consume_transform_produce_killed_mid_transaction_and_restarted_outputs_every_input_exactly_once() {
    const M: usize = 600;
    const PARTITIONS: i32 = 3;
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topics = ("ctp-in", "ctp-out", "ctp-group", "ctp-app");
    kafka::create_topic(&bootstrap, topics.0, PARTITIONS).or_panic("create input");
    kafka::create_topic(&bootstrap, topics.1, PARTITIONS).or_panic("create output");
    let per_partition = txn_app::fill_input(&bootstrap, topics.0, PARTITIONS, M).or_panic("fill the input");
    let args = txn_app::txn_app_args(&bootstrap, topics, 10, 100, 120);
    let binary = Path::new(env!("CARGO_BIN_EXE_distlog-txn-app"));

    let mut first = TxnApp::spawn(binary, &args).or_panic("start the app");
    // Killed with a transaction open whose records are written (flushed) but not committed.
    first
        .wait_for("a 5th committed batch", Duration::from_secs(60), |v| {
            v["event"] == "committed" && v["batches"].as_u64() >= Some(5)
        })
        .or_panic("progress");
    let open = first
        .wait_for("an open transaction", Duration::from_secs(30), |v| {
            v["event"] == "produced"
        })
        .or_panic("an open transaction");
    first.kill9().or_panic("kill the app");
    let total_before = first.committed_total();
    assert!(
        (total_before as usize) < M,
        "the app finished before it was killed ({total_before} of {M})"
    );
    eprintln!("killed the app after {total_before} committed records, with an open transaction: {open}");

    let mut second = TxnApp::spawn(binary, &args).or_panic("restart the app");
    second
        .wait_for("done", Duration::from_secs(120), |v| v["event"] == "done")
        .or_panic("the restarted app finishes");
    let status = second.wait_exit(Duration::from_secs(30)).or_panic("app exit");
    assert!(status.success(), "the restarted app exited with {status}");

    let raw_count = txn_app::verify_exactly_once_output(
        &bootstrap,
        topics.0,
        topics.1,
        topics.2,
        &per_partition,
        READ_TIMEOUT,
    )
    .or_panic("exactly once");
    // The killed transaction's records were written and aborted: read_uncommitted has more.
    assert!(
        raw_count > M,
        "the killed transaction's records were not in the log ({raw_count} records read_uncommitted)"
    );
}
