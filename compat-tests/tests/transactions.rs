//! Kafka transactions through librdkafka against one real `distlog` process: commit across
//! partitions (markers take an offset), abort (read_committed drops the records, also when it
//! starts inside them or reads them in many small compressed fetches; read_uncommitted shows
//! them), two producers' transactions interleaved in
//! one partition (only the aborted one's records dropped), a transaction left open blocking
//! read_committed at the last stable offset until it commits, or until the coordinator aborts it
//! on timeout (its producer then fenced), zombie fencing by a second producer with the same
//! transactional id, and offsets sent to aborted and committed transactions.
//!
//! The broker's crash with transactions in every state, and the consume-transform-produce
//! application killed mid-transaction, are in `transactions_recovery.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use distlog_compat_tests::group::{committed_for_group, wait_until};
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::process::{DistlogOptions, DistlogProcess};
use distlog_compat_tests::txn::{
    self, last_stable_offset, list_latest, offsets_and_values, transactional_config, Isolation, TxnProducer,
    TXN_CALL_TIMEOUT,
};
use distlog_compat_tests::txn_broker::{
    at, init_producer, numbered, read, write_in_txn, OrPanicTxn, READ_TIMEOUT,
};
use distlog_compat_tests::{start_broker, OrPanic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn a_committed_transaction_across_three_partitions_is_read_in_order_with_its_markers_taking_an_offset() {
    const N: usize = 5;
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = "txn-commit";
    kafka::create_topic(&bootstrap, topic, 3).or_panic("create topic");
    let mut producer = init_producer(&bootstrap, "txn-commit-1");

    producer.begin().or_panic_txn("begin");
    let first: Vec<Vec<String>> = (0..3).map(|p| numbered(&format!("t1-p{p}"), N)).collect();
    for p in 0..3 {
        let offsets = write_in_txn(&mut producer, topic, p, &first[p as usize]);
        assert_eq!(offsets, (0..N as i64).collect::<Vec<_>>(), "partition {p}");
    }
    // Open: nothing is stable yet.
    for p in 0..3 {
        assert_eq!(
            last_stable_offset(broker.kafka_addr(), topic, p).or_panic("LSO"),
            0,
            "LSO of partition {p} while the transaction is open"
        );
    }
    producer.commit(TXN_CALL_TIMEOUT).or_panic_txn("commit");

    for p in 0..3 {
        // The commit marker sits at offset N: the high watermark and the LSO are N + 1 once it
        // is written (commit_transaction may return before the markers are).
        wait_until(Duration::from_secs(20), "the commit markers are written", || {
            Ok(last_stable_offset(broker.kafka_addr(), topic, p)? == N as i64 + 1)
        })
        .or_panic("LSO after the commit");
        assert_eq!(
            kafka::watermarks(&bootstrap, topic, p).or_panic("watermarks"),
            (0, N as i64 + 1),
            "watermarks of partition {p} after the first commit"
        );
        assert_eq!(
            list_latest(broker.kafka_addr(), topic, p, Isolation::ReadUncommitted).or_panic("HW"),
            N as i64 + 1
        );
        assert_eq!(
            read(&bootstrap, topic, p, Isolation::ReadCommitted),
            at(0, &first[p as usize]),
            "read_committed partition {p}"
        );
    }

    // The next transaction's first record follows the marker.
    producer.begin().or_panic_txn("begin 2");
    let second: Vec<Vec<String>> = (0..3).map(|p| numbered(&format!("t2-p{p}"), 2)).collect();
    for p in 0..3 {
        let offsets = write_in_txn(&mut producer, topic, p, &second[p as usize]);
        assert_eq!(offsets, vec![N as i64 + 1, N as i64 + 2], "partition {p}");
    }
    producer.commit(TXN_CALL_TIMEOUT).or_panic_txn("commit 2");
    for p in 0..3 {
        wait_until(
            Duration::from_secs(20),
            "the second commit markers are written",
            || Ok(last_stable_offset(broker.kafka_addr(), topic, p)? == N as i64 + 4),
        )
        .or_panic("LSO after the second commit");
        assert_eq!(
            kafka::watermarks(&bootstrap, topic, p).or_panic("watermarks"),
            (0, N as i64 + 4)
        );
        let mut expected = at(0, &first[p as usize]);
        expected.extend(at(N as i64 + 1, &second[p as usize]));
        assert_eq!(
            read(&bootstrap, topic, p, Isolation::ReadCommitted),
            expected,
            "read_committed partition {p} after two commits"
        );
        // read_uncommitted shows the same records: markers are never returned.
        assert_eq!(read(&bootstrap, topic, p, Isolation::ReadUncommitted), expected);
    }
}

#[test]
fn an_aborted_transaction_is_invisible_to_read_committed_and_visible_to_read_uncommitted() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = "txn-abort";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let mut producer = init_producer(&bootstrap, "txn-abort-1");

    producer.begin().or_panic_txn("begin");
    let aborted = numbered("aborted", 4);
    assert_eq!(write_in_txn(&mut producer, topic, 0, &aborted), vec![0, 1, 2, 3]);
    producer.abort(TXN_CALL_TIMEOUT).or_panic_txn("abort");

    producer.begin().or_panic_txn("begin 2");
    let committed = numbered("committed", 3);
    // The abort marker took offset 4.
    assert_eq!(write_in_txn(&mut producer, topic, 0, &committed), vec![5, 6, 7]);
    producer.commit(TXN_CALL_TIMEOUT).or_panic_txn("commit");
    wait_until(Duration::from_secs(20), "the commit marker is written", || {
        Ok(last_stable_offset(broker.kafka_addr(), topic, 0)? == 9)
    })
    .or_panic("LSO after the commit");
    assert_eq!(
        kafka::watermarks(&bootstrap, topic, 0).or_panic("watermarks"),
        (0, 9)
    );

    assert_eq!(
        read(&bootstrap, topic, 0, Isolation::ReadCommitted),
        at(5, &committed),
        "read_committed shows the committed transaction only"
    );
    let mut everything = at(0, &aborted);
    everything.extend(at(5, &committed));
    assert_eq!(
        read(&bootstrap, topic, 0, Isolation::ReadUncommitted),
        everything,
        "read_uncommitted shows the aborted records too"
    );
    // A read_committed fetch that starts inside the aborted transaction drops its records too.
    let reader = kafka::assigned_consumer(
        &txn::isolated_consumer_config(&bootstrap, Isolation::ReadCommitted),
        topic,
        0,
        Offset::Offset(2),
    )
    .or_panic("read_committed consumer from offset 2");
    let got = kafka::poll_n(&reader, 3, READ_TIMEOUT).or_panic("read_committed from offset 2");
    assert_eq!(
        offsets_and_values(&got),
        at(5, &committed),
        "read_committed from the middle of the aborted transaction"
    );
    kafka::expect_no_more(&reader, Duration::from_millis(500)).or_panic("nothing more");
}

#[test]
fn large_compressed_transactions_are_filtered_exactly_by_small_read_committed_fetches() {
    const N: usize = 3000;
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = "txn-large";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let mut config = transactional_config(&bootstrap, "txn-large-1", 60_000);
    config
        .set("compression.type", "lz4")
        .set("batch.num.messages", "100")
        .set("linger.ms", "2");
    let mut producer = TxnProducer::create(&config).or_panic("create producer");
    producer.init(TXN_CALL_TIMEOUT).or_panic_txn("init");
    // committed, aborted, committed: N records each, in many compressed batches.
    let plan = [("c1", false), ("ab", true), ("c2", false)];
    let mut first_offsets = Vec::new();
    for (name, abort) in plan {
        producer.begin().or_panic_txn("begin");
        let vals: Vec<String> = (0..N)
            .map(|i| format!("{name}-{i:05}-{}", "x".repeat(40)))
            .collect();
        let offsets = write_in_txn(&mut producer, topic, 0, &vals);
        let first = offsets[0];
        assert_eq!(
            offsets,
            (first..first + N as i64).collect::<Vec<_>>(),
            "{name}: dense offsets"
        );
        first_offsets.push(first);
        if abort {
            producer.abort(TXN_CALL_TIMEOUT).or_panic_txn("abort");
        } else {
            producer.commit(TXN_CALL_TIMEOUT).or_panic_txn("commit");
        }
    }
    let n = N as i64;
    assert_eq!(
        first_offsets,
        vec![0, n + 1, 2 * n + 2],
        "each marker takes one offset"
    );
    wait_until(
        Duration::from_secs(20),
        "the last commit marker is written",
        || Ok(last_stable_offset(broker.kafka_addr(), topic, 0)? == 3 * n + 3),
    )
    .or_panic("LSO");
    // Fetches of at most 16 KiB: their boundaries fall inside the aborted transaction.
    let mut small = txn::isolated_consumer_config(&bootstrap, Isolation::ReadCommitted);
    small
        .set("max.partition.fetch.bytes", "16384")
        .set("message.max.bytes", "16384")
        .set("fetch.max.bytes", "16384");
    for start in [0, n + 7, 2 * n] {
        let reader = kafka::assigned_consumer(&small, topic, 0, Offset::Offset(start)).or_panic("consumer");
        let expected: Vec<i64> = (0..n)
            .chain(2 * n + 2..3 * n + 2)
            .filter(|o| *o >= start)
            .collect();
        let got = kafka::poll_n(&reader, expected.len(), Duration::from_secs(60)).or_panic("read_committed");
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert!(
            offsets == expected,
            "read_committed from {start}: {} records, first wrong at {:?}",
            offsets.len(),
            offsets.iter().zip(&expected).position(|(a, b)| a != b)
        );
        assert!(
            txn::values(&got).iter().all(|v| !v.starts_with("ab-")),
            "read_committed from {start} returned aborted records"
        );
        kafka::expect_no_more(&reader, Duration::from_millis(300)).or_panic("nothing more");
    }
}

#[test]
fn interleaved_transactions_of_two_producers_in_one_partition_drop_only_the_aborted_ones_records() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = "txn-two-producers";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let mut a = init_producer(&bootstrap, "txn-two-a");
    let mut b = init_producer(&bootstrap, "txn-two-b");
    a.begin().or_panic_txn("A begin");
    b.begin().or_panic_txn("B begin");
    // a-0 @0, b-0 @1, a-1 @2, b-1 @3: each written before the next is sent.
    assert_eq!(write_in_txn(&mut a, topic, 0, &["a-0".to_string()]), vec![0]);
    assert_eq!(write_in_txn(&mut b, topic, 0, &["b-0".to_string()]), vec![1]);
    assert_eq!(write_in_txn(&mut a, topic, 0, &["a-1".to_string()]), vec![2]);
    assert_eq!(write_in_txn(&mut b, topic, 0, &["b-1".to_string()]), vec![3]);
    assert_eq!(
        last_stable_offset(broker.kafka_addr(), topic, 0).or_panic("LSO"),
        0
    );

    a.abort(TXN_CALL_TIMEOUT).or_panic_txn("A abort");
    // A's abort marker at 4; B, open since offset 1, now holds the LSO.
    wait_until(Duration::from_secs(20), "A's abort marker is written", || {
        Ok(list_latest(broker.kafka_addr(), topic, 0, Isolation::ReadUncommitted)? == 5)
    })
    .or_panic("high watermark after A's abort");
    assert_eq!(
        last_stable_offset(broker.kafka_addr(), topic, 0).or_panic("LSO"),
        1,
        "the LSO is B's first offset while B is open"
    );
    let reader = committed_reader(&bootstrap, topic);
    kafka::expect_no_more(&reader, Duration::from_secs(2))
        .or_panic("nothing stable at offset 0 but an aborted record");

    b.commit(TXN_CALL_TIMEOUT).or_panic_txn("B commit");
    let got = kafka::poll_n(&reader, 2, READ_TIMEOUT).or_panic("read_committed after B's commit");
    assert_eq!(
        offsets_and_values(&got),
        vec![(1, "b-0".to_string()), (3, "b-1".to_string())],
        "read_committed drops A's records and keeps B's, interleaved with them"
    );
    kafka::expect_no_more(&reader, Duration::from_millis(500)).or_panic("nothing more");
    assert_eq!(
        last_stable_offset(broker.kafka_addr(), topic, 0).or_panic("LSO"),
        6
    );
    assert_eq!(
        read(&bootstrap, topic, 0, Isolation::ReadUncommitted),
        vec![
            (0, "a-0".to_string()),
            (1, "b-0".to_string()),
            (2, "a-1".to_string()),
            (3, "b-1".to_string())
        ]
    );
}

#[test]
fn offsets_sent_to_an_aborted_transaction_are_not_committed_and_to_a_committed_one_are() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let (input, output, group) = ("txn-offsets-in", "txn-offsets-out", "txn-offsets-group");
    kafka::create_topic(&bootstrap, input, 1).or_panic("create input");
    kafka::create_topic(&bootstrap, output, 1).or_panic("create output");
    plain_write(&bootstrap, input, &numbered("in", 10));
    // The group's metadata from a consumer of the group that never joins it (generation -1).
    let member: BaseConsumer = distlog_compat_tests::group::group_consumer_config(&bootstrap, group)
        .create()
        .or_panic_any("group consumer");
    let metadata = member
        .group_metadata()
        .expect("a consumer with a group.id has group metadata");
    let offsets = |at: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(input, 0, Offset::Offset(at))
            .expect("offset list");
        tpl
    };
    let committed = || committed_for_group(&bootstrap, group, input, &[0]).or_panic("committed offsets");
    let mut producer = init_producer(&bootstrap, "txn-offsets-1");

    producer.begin().or_panic_txn("begin 1");
    assert_eq!(
        write_in_txn(&mut producer, output, 0, &["x".to_string()]),
        vec![0]
    );
    producer
        .send_offsets(&offsets(5), &metadata, TXN_CALL_TIMEOUT)
        .or_panic_txn("send offsets 1");
    producer.abort(TXN_CALL_TIMEOUT).or_panic_txn("abort 1");
    assert_eq!(
        committed(),
        BTreeMap::from([(0, None)]),
        "offsets of an aborted transaction were committed"
    );

    producer.begin().or_panic_txn("begin 2");
    assert_eq!(
        write_in_txn(&mut producer, output, 0, &["y".to_string()]),
        vec![2]
    );
    producer
        .send_offsets(&offsets(7), &metadata, TXN_CALL_TIMEOUT)
        .or_panic_txn("send offsets 2");
    producer.commit(TXN_CALL_TIMEOUT).or_panic_txn("commit 2");
    // The offset commit completes with the markers; a stable OffsetFetch waits for it.
    wait_until(
        Duration::from_secs(20),
        "the transaction's offsets are committed",
        || Ok(committed_for_group(&bootstrap, group, input, &[0])? == BTreeMap::from([(0, Some(7))])),
    )
    .or_panic("offsets of the committed transaction");
    assert_eq!(
        read(&bootstrap, output, 0, Isolation::ReadCommitted),
        vec![(2, "y".to_string())]
    );
}

/// Writes `values` to partition 0 of `topic` with a plain (non-transactional) producer; returns
/// their offsets.
fn plain_write(bootstrap: &str, topic: &str, values: &[String]) -> Vec<i64> {
    let records: Vec<TestRecord> = values.iter().map(|v| TestRecord::value(v.clone())).collect();
    kafka::produce_records(
        &kafka::producer_config(bootstrap, "all"),
        topic,
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("plain produce")
    .into_iter()
    .map(|d| d.result.unwrap_or_else(|e| panic!("plain write failed: {e:?}")))
    .collect()
}

/// A read_committed consumer of partition 0 of `topic` from offset 0.
fn committed_reader(bootstrap: &str, topic: &str) -> BaseConsumer {
    kafka::assigned_consumer(
        &txn::isolated_consumer_config(bootstrap, Isolation::ReadCommitted),
        topic,
        0,
        Offset::Offset(0),
    )
    .or_panic("read_committed consumer")
}

#[test]
fn an_open_transaction_holds_read_committed_at_its_first_offset_until_it_commits() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = "txn-interleave";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let mut a = init_producer(&bootstrap, "txn-interleave-a");
    a.begin().or_panic_txn("begin");
    let a_values = numbered("a", 3);
    assert_eq!(write_in_txn(&mut a, topic, 0, &a_values), vec![0, 1, 2]);
    let later = numbered("plain", 3);
    assert_eq!(plain_write(&bootstrap, topic, &later), vec![3, 4, 5]);

    assert_eq!(
        last_stable_offset(broker.kafka_addr(), topic, 0).or_panic("LSO"),
        0
    );
    assert_eq!(
        list_latest(broker.kafka_addr(), topic, 0, Isolation::ReadUncommitted).or_panic("HW"),
        6
    );
    let reader = committed_reader(&bootstrap, topic);
    // Blocked at the LSO: nothing at or after A's first offset, not even the committed plain
    // records after it.
    kafka::expect_no_more(&reader, Duration::from_secs(3)).or_panic("read_committed before A commits");

    a.commit(TXN_CALL_TIMEOUT).or_panic_txn("commit A");
    let got = kafka::poll_n(&reader, 6, READ_TIMEOUT).or_panic("read_committed after A commits");
    let mut expected = at(0, &a_values);
    expected.extend(at(3, &later));
    assert_eq!(
        offsets_and_values(&got),
        expected,
        "A's records, then the later ones, in offset order"
    );
    // A's commit marker is at 6: the next write lands at 7.
    assert_eq!(plain_write(&bootstrap, topic, &["after".to_string()]), vec![7]);
    let got = kafka::poll_n(&reader, 1, READ_TIMEOUT).or_panic("read the write after the marker");
    assert_eq!(offsets_and_values(&got), vec![(7, "after".to_string())]);
    kafka::expect_no_more(&reader, Duration::from_millis(500)).or_panic("nothing more");
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_by_the_coordinator_and_its_producer_fenced() {
    let broker = DistlogProcess::start(DistlogOptions {
        extra_args: vec![
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms".into(),
            "500".into(),
        ],
        ..DistlogOptions::default()
    })
    .or_panic("start broker");
    let bootstrap = broker.bootstrap();
    let topic = "txn-timeout";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let mut a =
        TxnProducer::create(&transactional_config(&bootstrap, "txn-timeout-a", 3_000)).or_panic("create A");
    a.init(TXN_CALL_TIMEOUT).or_panic_txn("init A");
    // Before the transaction starts on the coordinator (with its first AddPartitionsToTxn).
    let began = Instant::now();
    a.begin().or_panic_txn("begin A");
    let a_values = numbered("a", 3);
    assert_eq!(write_in_txn(&mut a, topic, 0, &a_values), vec![0, 1, 2]);
    let later = numbered("plain", 3);
    assert_eq!(plain_write(&bootstrap, topic, &later), vec![3, 4, 5]);

    // A is never ended. After its 3 s timeout the coordinator aborts it: the abort marker at 6
    // makes everything stable, and read_committed gets the later records and none of A's.
    let reader = committed_reader(&bootstrap, topic);
    let got = kafka::poll_n(&reader, 3, Duration::from_secs(30)).or_panic("read_committed after the timeout");
    assert_eq!(offsets_and_values(&got), at(3, &later));
    assert!(
        began.elapsed() >= Duration::from_secs(3),
        "the transaction was aborted after {:?}, before its 3 s timeout",
        began.elapsed()
    );
    kafka::expect_no_more(&reader, Duration::from_millis(500)).or_panic("none of A's records");
    assert_eq!(
        last_stable_offset(broker.kafka_addr(), topic, 0).or_panic("LSO"),
        7
    );
    assert_eq!(
        kafka::watermarks(&bootstrap, topic, 0).or_panic("watermarks"),
        (0, 7)
    );

    // A's producer learns of it at its next commit: its epoch is stale.
    let failure = a
        .commit(TXN_CALL_TIMEOUT)
        .expect_err("the commit of a transaction the coordinator aborted must fail");
    eprintln!("A's commit after the coordinator's abort: {failure}");
    assert!(
        failure.is_fenced(),
        "A's commit must fail fenced (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH / _FENCED): {failure}"
    );
    assert!(
        failure.fatal || failure.abortable,
        "librdkafka reports a fenced commit as fatal or abortable: {failure}"
    );
    let mut expected = at(0, &a_values);
    expected.extend(at(3, &later));
    assert_eq!(
        read(&bootstrap, topic, 0, Isolation::ReadCommitted),
        at(3, &later)
    );
    assert_eq!(read(&bootstrap, topic, 0, Isolation::ReadUncommitted), expected);
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = "txn-zombie";
    kafka::create_topic(&bootstrap, topic, 1).or_panic("create topic");
    let id = "txn-zombie-x";
    let mut p1 = init_producer(&bootstrap, id);
    p1.begin().or_panic_txn("P1 begin");
    let p1_values = numbered("p1", 2);
    assert_eq!(write_in_txn(&mut p1, topic, 0, &p1_values), vec![0, 1]);

    // P2 takes over the id: P1's open transaction is aborted (marker at 2), its epoch is stale.
    let mut p2 = init_producer(&bootstrap, id);

    p1.send(topic, 0, None, b"p1-after-fence")
        .or_panic("P1 enqueue after the fence");
    let failure = p1
        .commit(TXN_CALL_TIMEOUT)
        .expect_err("the zombie's commit must fail");
    eprintln!("P1's commit after P2's init_transactions: {failure}");
    assert!(
        failure.is_fenced(),
        "P1 must fail fenced (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH / _FENCED): {failure}"
    );
    let p1_deliveries = p1.take_deliveries();
    assert!(
        p1_deliveries.iter().all(|d| d.result.is_err()),
        "P1's write after the fence was acknowledged: {p1_deliveries:?}"
    );

    p2.begin().or_panic_txn("P2 begin");
    let p2_values = numbered("p2", 2);
    assert_eq!(write_in_txn(&mut p2, topic, 0, &p2_values), vec![3, 4]);
    p2.commit(TXN_CALL_TIMEOUT).or_panic_txn("P2 commit");

    wait_until(Duration::from_secs(20), "P2's commit marker is written", || {
        Ok(last_stable_offset(broker.kafka_addr(), topic, 0)? == 6)
    })
    .or_panic("LSO after P2's commit");
    assert_eq!(
        read(&bootstrap, topic, 0, Isolation::ReadCommitted),
        at(3, &p2_values),
        "read_committed shows nothing of P1's transaction"
    );
    let mut everything = at(0, &p1_values);
    everything.extend(at(3, &p2_values));
    assert_eq!(
        read(&bootstrap, topic, 0, Isolation::ReadUncommitted),
        everything,
        "no record of P1 written after P2's init"
    );
}

/// Panics with the whole error chain of a harness or client error.
trait OrPanicAny<T> {
    fn or_panic_any(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrPanicAny<T> for Result<T, E> {
    fn or_panic_any(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}
