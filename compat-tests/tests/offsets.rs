//! ListOffsets (by time, earliest, latest), watermarks, and Fetch long polling.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::http::metric_sum;
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{now_ms, start_broker, OrPanic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

fn offset_for(consumer: &BaseConsumer, topic: &str, query: Offset) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, query).expect("valid query");
    let answer = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("ListOffsets");
    let elem = answer
        .find_partition(topic, 0)
        .expect("partition 0 in the answer");
    assert!(
        elem.error().is_ok(),
        "ListOffsets error for {query:?}: {:?}",
        elem.error()
    );
    elem.offset()
}

#[test]
fn offsets_for_times_finds_the_first_offset_at_or_after_a_timestamp() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "timed", 1).or_panic("create topic");
    let t0 = now_ms() - 3_600_000;
    let records: Vec<TestRecord> = (0..10)
        .map(|i| TestRecord {
            timestamp: Some(t0 + i * 1000),
            ..TestRecord::value(format!("t{i}"))
        })
        .collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "timed",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert!(
        deliveries.iter().all(|d| d.result == Ok(d.id as i64)),
        "{deliveries:?}"
    );

    let consumer: BaseConsumer = kafka::consumer_config(&bootstrap).create().expect("consumer");
    assert_eq!(
        offset_for(&consumer, "timed", Offset::Offset(t0 - 1000)),
        Offset::Offset(0)
    );
    assert_eq!(
        offset_for(&consumer, "timed", Offset::Offset(t0)),
        Offset::Offset(0)
    );
    assert_eq!(
        offset_for(&consumer, "timed", Offset::Offset(t0 + 5000)),
        Offset::Offset(5)
    );
    assert_eq!(
        offset_for(&consumer, "timed", Offset::Offset(t0 + 5500)),
        Offset::Offset(6)
    );
    assert_eq!(
        offset_for(&consumer, "timed", Offset::Offset(t0 + 9000)),
        Offset::Offset(9)
    );
    // Past the last timestamp Kafka answers offset -1, which librdkafka reports as End.
    assert_eq!(
        offset_for(&consumer, "timed", Offset::Offset(t0 + 9001)),
        Offset::End
    );
    // The special timestamps: -2 earliest, -1 latest.
    assert_eq!(
        offset_for(&consumer, "timed", Offset::Beginning),
        Offset::Offset(0)
    );
    assert_eq!(offset_for(&consumer, "timed", Offset::End), Offset::Offset(10));
}

#[test]
fn watermarks_track_each_partition() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "marks", 3).or_panic("create topic");
    for p in 0..3 {
        assert_eq!(
            kafka::watermarks(&bootstrap, "marks", p).or_panic("watermarks"),
            (0, 0),
            "partition {p}"
        );
    }
    let config = kafka::producer_config(&bootstrap, "all");
    let to_p0: Vec<TestRecord> = (0..37).map(|i| TestRecord::value(format!("a{i}"))).collect();
    let to_p2: Vec<TestRecord> = (0..5).map(|i| TestRecord::value(format!("c{i}"))).collect();
    kafka::produce_records(&config, "marks", Some(0), &to_p0, Duration::from_secs(30)).or_panic("produce p0");
    kafka::produce_records(&config, "marks", Some(2), &to_p2, Duration::from_secs(30)).or_panic("produce p2");
    assert_eq!(
        kafka::watermarks(&bootstrap, "marks", 0).or_panic("watermarks"),
        (0, 37)
    );
    assert_eq!(
        kafka::watermarks(&bootstrap, "marks", 1).or_panic("watermarks"),
        (0, 0)
    );
    assert_eq!(
        kafka::watermarks(&bootstrap, "marks", 2).or_panic("watermarks"),
        (0, 5)
    );
}

fn total_requests(broker: &distlog_compat_tests::DistlogProcess) -> f64 {
    let metrics = broker.http_get("/metrics").or_panic("GET /metrics");
    assert_eq!(metrics.status, 200);
    metric_sum(&metrics.body, "distlog_requests_total").expect("distlog_requests_total is exported")
}

#[test]
fn consumer_in_long_poll_receives_a_message_produced_one_second_later_within_two_seconds() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "tail", 1).or_panic("create topic");

    // A long fetch wait: a broker that does not wake waiting fetches on append fails this test.
    let mut config = kafka::consumer_config(&bootstrap);
    config.set("fetch.wait.max.ms", "5000");
    let consumer = kafka::assigned_consumer(&config, "tail", 0, Offset::Offset(0)).or_panic("consumer");
    // Let the consumer connect and park its first fetch at the (empty) end of the log.
    kafka::expect_no_more(&consumer, Duration::from_millis(1500)).or_panic("idle consumer");

    // While parked, the consumer must not be spinning: a long poll is one request, not hundreds.
    let before = total_requests(&broker);
    kafka::expect_no_more(&consumer, Duration::from_millis(1000)).or_panic("idle consumer");
    let idle_requests = total_requests(&broker) - before;
    assert!(
        idle_requests < 20.0,
        "{idle_requests} requests in 1 s of idle long polling"
    );

    let (tx, rx) = mpsc::channel();
    let producer_bootstrap = bootstrap.clone();
    let producer = thread::spawn(move || {
        let producer =
            kafka::recording_producer(&kafka::producer_config(&producer_bootstrap, "1")).or_panic("producer");
        // Connect before the clock starts, so the measurement is of the broker, not connection setup.
        producer
            .client()
            .fetch_metadata(Some("tail"), Duration::from_secs(10))
            .expect("metadata");
        thread::sleep(Duration::from_secs(1));
        let sent_at = Instant::now();
        kafka::send_record(&producer, "tail", Some(0), 0, &TestRecord::value("wake up")).or_panic("send");
        tx.send(sent_at).expect("main thread waits");
        producer.flush(Duration::from_secs(10)).expect("flush");
        producer.context().take()
    });

    let got = kafka::poll_n(&consumer, 1, Duration::from_secs(10)).or_panic("long-polling consumer");
    let received_at = Instant::now();
    let sent_at = rx.recv_timeout(Duration::from_secs(10)).expect("producer sent");
    let deliveries = producer.join().expect("producer thread");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].result, Ok(0));
    assert_eq!(got[0].offset, 0);
    assert_eq!(got[0].payload.as_deref(), Some(&b"wake up"[..]));
    let latency = received_at.duration_since(sent_at);
    assert!(
        latency < Duration::from_secs(2),
        "message reached the long-polling consumer after {latency:?}"
    );
}
