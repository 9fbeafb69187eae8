//! CreateTopics and DeleteTopics: a deleted topic disappears, and re-creating the name gives a
//! new, empty topic with the new partition count.

use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{start_broker, OrPanic};

fn topic_names(bootstrap: &str) -> Vec<String> {
    let md = kafka::fetch_metadata(bootstrap, None).or_panic("metadata");
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

#[test]
fn delete_removes_the_topic_and_recreating_the_name_starts_empty() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "doomed", 2).or_panic("create");
    let records: Vec<TestRecord> = (0..5).map(|i| TestRecord::value(format!("old-{i}"))).collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "doomed",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert!(deliveries.iter().all(|d| d.result.is_ok()), "{deliveries:?}");
    assert_eq!(
        kafka::watermarks(&bootstrap, "doomed", 0).or_panic("watermarks"),
        (0, 5)
    );
    // The producer is dropped here, so no client keeps asking for (and auto-creating) the topic.

    kafka::delete_topic(&bootstrap, "doomed").or_panic("delete");
    // Kafka deletes asynchronously; allow a moment, then it must be gone.
    let started = Instant::now();
    while topic_names(&bootstrap).contains(&"doomed".to_string()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "topic still listed 10 s after delete"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // The open stream of partition 0 closed with its topic: the expected path, no warning.
    assert!(
        !broker
            .log_tail(5_000)
            .contains("could not seal the segment on close"),
        "deleting a topic with an open stream warned:\n{}",
        broker.log_tail(40)
    );

    kafka::create_topic(&bootstrap, "doomed", 1).or_panic("re-create");
    let md = kafka::fetch_metadata(&bootstrap, Some("doomed")).or_panic("metadata");
    assert_eq!(md.topics()[0].error(), None);
    assert_eq!(md.topics()[0].partitions().len(), 1, "new partition count");
    assert_eq!(
        kafka::watermarks(&bootstrap, "doomed", 0).or_panic("watermarks"),
        (0, 0),
        "re-created empty"
    );

    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "doomed",
        Some(0),
        &[TestRecord::value("new-0")],
        Duration::from_secs(30),
    )
    .or_panic("produce to re-created topic");
    assert_eq!(deliveries[0].result, Ok(0));
    let consumed =
        kafka::consume_n(&bootstrap, "doomed", 0, 0, 1, Duration::from_secs(20)).or_panic("consume");
    assert_eq!(consumed[0].payload.as_deref(), Some(&b"new-0"[..]));
}

#[test]
fn creating_an_existing_topic_fails_with_topic_already_exists() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "twice", 1).or_panic("create");
    let err = kafka::create_topic(&bootstrap, "twice", 1).expect_err("second create must fail");
    assert!(format!("{err:#}").contains("TopicAlreadyExists"), "{err:#}");
}
