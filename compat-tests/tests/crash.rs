//! Durability across process death: SIGKILL in the middle of a produce stream loses nothing that
//! was acknowledged, and SIGTERM shuts down cleanly with everything readable after restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use distlog_compat_tests::kafka::{self, Delivery, TestRecord};
use distlog_compat_tests::{start_broker, OrPanic};
use rdkafka::producer::Producer;

/// Produces `crash-<id>` messages (acks=all) until `stop` is set, then waits for every delivery
/// report (ack or failure). Returns how many were sent and all their reports.
fn produce_until_stopped(bootstrap: String, stop: Arc<AtomicBool>) -> (usize, Vec<Delivery>) {
    let mut config = kafka::producer_config(&bootstrap, "all");
    // Short message timeout: after the kill, outstanding messages fail quickly instead of
    // waiting for the restarted broker (the set of acknowledged messages must be final first).
    config.set("message.timeout.ms", "4000").set("linger.ms", "2");
    let producer = kafka::recording_producer(&config).or_panic("producer");
    let mut sent = 0usize;
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(30) {
        let record = TestRecord::value(format!("crash-{sent}"));
        kafka::send_record(&producer, "crash", Some(0), sent, &record).or_panic("enqueue");
        sent += 1;
        producer.poll(Duration::ZERO);
        if sent.is_multiple_of(50) {
            // Pace the stream (~tens of thousands per second at most) so the queue stays small.
            thread::sleep(Duration::from_millis(1));
        }
    }
    // Every message now either was acknowledged or times out within message.timeout.ms.
    let _ = producer.flush(Duration::from_secs(15));
    (sent, producer.context().take())
}

#[test]
fn sigkill_mid_stream_keeps_every_acknowledged_message_exactly_once_at_its_offset() {
    let mut broker = start_broker();
    kafka::create_topic(&broker.bootstrap(), "crash", 1).or_panic("create topic");

    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, stop) = (broker.bootstrap(), Arc::clone(&stop));
        thread::spawn(move || produce_until_stopped(bootstrap, stop))
    };
    thread::sleep(Duration::from_millis(2500));
    broker.kill9().or_panic("SIGKILL the broker");
    stop.store(true, Ordering::SeqCst);
    let (sent, deliveries) = producer.join().expect("producer thread");

    assert_eq!(deliveries.len(), sent, "one delivery report per message");
    let acked: Vec<(usize, i64)> = deliveries
        .iter()
        .filter_map(|d| d.result.as_ref().ok().map(|offset| (d.id, *offset)))
        .collect();
    assert!(
        acked.len() >= 100,
        "only {} of {sent} messages acknowledged before the kill",
        acked.len()
    );
    let max_acked = acked.iter().map(|(_, o)| *o).max().expect("some acked");

    broker.restart().or_panic("restart on the same data dir");
    let bootstrap = broker.bootstrap();
    let (low, high) = kafka::watermarks(&bootstrap, "crash", 0).or_panic("watermarks");
    assert_eq!(low, 0);
    assert!(
        high > max_acked,
        "high watermark {high} but offset {max_acked} was acknowledged"
    );

    let n = usize::try_from(high).expect("non-negative");
    let consumed =
        kafka::consume_n(&bootstrap, "crash", 0, 0, n, Duration::from_secs(60)).or_panic("consume");
    for (i, r) in consumed.iter().enumerate() {
        assert_eq!(r.offset, i as i64, "offsets are contiguous from 0");
    }
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for r in &consumed {
        *seen.entry(r.payload.as_deref().unwrap_or_default()).or_default() += 1;
    }
    for (id, offset) in &acked {
        let expected = format!("crash-{id}");
        let at = &consumed[usize::try_from(*offset).expect("acked offsets are non-negative")];
        assert_eq!(
            at.payload.as_deref(),
            Some(expected.as_bytes()),
            "acknowledged message {id} is not at its acknowledged offset {offset}"
        );
        assert_eq!(
            seen.get(expected.as_bytes()),
            Some(&1),
            "acknowledged message {id} stored more than once"
        );
    }

    // The log keeps going after recovery: the next append lands right after the high watermark.
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "crash",
        Some(0),
        &[TestRecord::value("after restart")],
        Duration::from_secs(30),
    )
    .or_panic("produce after restart");
    assert_eq!(deliveries[0].result, Ok(high));
    eprintln!(
        "crash test: {sent} sent, {} acknowledged, {high} present after restart",
        acked.len()
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_data_survives_restart() {
    let mut broker = start_broker();
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "graceful", 1).or_panic("create topic");
    let records: Vec<TestRecord> = (0..500).map(|i| TestRecord::value(format!("g{i}"))).collect();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "graceful",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert!(
        deliveries.iter().all(|d| d.result == Ok(d.id as i64)),
        "all acknowledged in order"
    );

    let started = Instant::now();
    let status = broker.terminate(Duration::from_secs(10)).or_panic("SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    eprintln!("clean shutdown took {:?}", started.elapsed());

    broker.restart().or_panic("restart");
    let bootstrap = broker.bootstrap();
    assert_eq!(
        kafka::watermarks(&bootstrap, "graceful", 0).or_panic("watermarks"),
        (0, 500)
    );
    let consumed =
        kafka::consume_n(&bootstrap, "graceful", 0, 0, 500, Duration::from_secs(30)).or_panic("consume");
    for (i, (got, sent)) in consumed.iter().zip(&records).enumerate() {
        assert_eq!(got.offset, i as i64);
        assert_eq!(got.payload, sent.payload);
    }
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "graceful",
        Some(0),
        &[TestRecord::value("after restart")],
        Duration::from_secs(30),
    )
    .or_panic("produce after restart");
    assert_eq!(deliveries[0].result, Ok(500));
}
