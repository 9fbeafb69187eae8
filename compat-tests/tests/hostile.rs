//! Bytes no client would send: garbage, oversized and negative length prefixes, truncated frames,
//! and ApiVersions from the future. The broker must close bad connections, answer KIP-511
//! correctly, and keep serving well-behaved clients throughout.

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::raw::{self, API_VERSIONS_KEY, UNSUPPORTED_VERSION};
use distlog_compat_tests::{start_broker, DistlogProcess, OrPanic};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A raw ApiVersions v0 exchange plus a librdkafka produce/consume: proof the broker still serves.
fn assert_serves_normal_clients(broker: &DistlogProcess, topic: &str) {
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    stream
        .write_all(&raw::api_versions_request(0, 42, "after-garbage"))
        .expect("write ApiVersions v0");
    let response = raw::read_frame(&mut stream).or_panic("ApiVersions v0 response");
    let decoded = raw::decode_api_versions_v0(&response).or_panic("decode ApiVersions v0");
    assert_eq!(decoded.correlation_id, 42);
    assert_eq!(decoded.error_code, 0);

    let bootstrap = broker.bootstrap();
    let deliveries = kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        topic,
        Some(0),
        &[TestRecord::value("still alive")],
        Duration::from_secs(30),
    )
    .or_panic("produce");
    assert_eq!(deliveries[0].result, Ok(0));
    let consumed = kafka::consume_n(&bootstrap, topic, 0, 0, 1, Duration::from_secs(20)).or_panic("consume");
    assert_eq!(consumed[0].payload.as_deref(), Some(&b"still alive"[..]));
}

fn expect_closed_after(broker: &DistlogProcess, what: &str, bytes: &[u8]) {
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    raw::send_and_expect_close(&mut stream, bytes, IO_TIMEOUT).or_panic(what);
}

#[test]
fn garbage_and_bad_length_prefixes_close_the_connection_and_the_broker_keeps_serving() {
    let mut broker = start_broker();
    // Far above any max request size.
    expect_closed_after(
        &broker,
        "oversized length prefix",
        &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4],
    );
    // A negative size.
    expect_closed_after(&broker, "negative length prefix", &[0xff, 0xff, 0xff, 0xfe, 0, 0]);
    // Another protocol entirely: "GET " read as a size is ~1.2 GB.
    expect_closed_after(
        &broker,
        "HTTP on the Kafka port",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    // A well-framed request whose header is garbage (API key -1, version -1).
    expect_closed_after(&broker, "undecodable header", &raw::frame(&[0xff; 32]));
    // An unknown API key with a plausible header.
    let mut unknown = Vec::new();
    unknown.extend_from_slice(&9999i16.to_be_bytes());
    unknown.extend_from_slice(&0i16.to_be_bytes());
    unknown.extend_from_slice(&1i32.to_be_bytes());
    unknown.extend_from_slice(&(-1i16).to_be_bytes());
    expect_closed_after(&broker, "unknown API key", &raw::frame(&unknown));

    // A truncated frame: promise 100 bytes, send 10, half-close. The broker must not hang on it.
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    stream.write_all(&100u32.to_be_bytes()).expect("write size");
    stream.write_all(&[0u8; 10]).expect("write partial body");
    stream.shutdown(Shutdown::Write).expect("half-close");
    raw::send_and_expect_close(&mut stream, &[], IO_TIMEOUT).or_panic("truncated frame");

    assert!(broker.is_running(), "the broker died from bad input");
    kafka::create_topic(&broker.bootstrap(), "survivor", 1).or_panic("create topic");
    assert_serves_normal_clients(&broker, "survivor");
}

#[test]
fn api_versions_v99_is_answered_per_kip_511_and_the_client_can_retry_lower() {
    let broker = start_broker();
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    stream
        .write_all(&raw::api_versions_request(99, 1234, "from-the-future"))
        .expect("write");
    let response = raw::read_frame(&mut stream).or_panic("response to ApiVersions v99");
    let decoded = raw::decode_api_versions_v0(&response).or_panic("v0-format response");
    assert_eq!(decoded.correlation_id, 1234);
    assert_eq!(decoded.error_code, UNSUPPORTED_VERSION);

    let mut keys: Vec<i16> = decoded.api_keys.iter().map(|r| r.api_key).collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(before, keys.len(), "duplicate API keys: {:?}", decoded.api_keys);
    for required in [0, 1, 2, 3, API_VERSIONS_KEY, 19, 20, 32] {
        assert!(
            keys.contains(&required),
            "API key {required} missing from {:?}",
            decoded.api_keys
        );
    }
    for range in &decoded.api_keys {
        assert!(range.min_version <= range.max_version, "bad range {range:?}");
    }
    let api_versions = decoded
        .api_keys
        .iter()
        .find(|r| r.api_key == API_VERSIONS_KEY)
        .expect("listed above");
    assert_eq!(api_versions.min_version, 0);
    assert!(
        api_versions.max_version >= 3,
        "ApiVersions up to v3 at least: {api_versions:?}"
    );

    // Same connection, the highest advertised version: a normal answer.
    let version = api_versions.max_version;
    stream
        .write_all(&raw::api_versions_request(version, 1235, "retry"))
        .expect("write retry");
    let retry = raw::read_frame(&mut stream).or_panic("response to the retry");
    assert!(retry.len() >= 6, "response too short: {retry:?}");
    assert_eq!(i32::from_be_bytes([retry[0], retry[1], retry[2], retry[3]]), 1235);
    assert_eq!(
        i16::from_be_bytes([retry[4], retry[5]]),
        0,
        "error code of ApiVersions v{version}"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = start_broker();
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    let mut batch = Vec::new();
    for correlation in 1..=5 {
        batch.extend(raw::api_versions_request(0, correlation, "pipeline"));
    }
    stream.write_all(&batch).expect("write pipelined requests");
    for correlation in 1..=5 {
        let response = raw::read_frame(&mut stream).or_panic("pipelined response");
        let decoded = raw::decode_api_versions_v0(&response).or_panic("decode");
        assert_eq!(decoded.correlation_id, correlation, "responses out of order");
        assert_eq!(decoded.error_code, 0);
    }
}
