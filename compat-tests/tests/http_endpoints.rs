//! The HTTP port: `/health`, Prometheus `/metrics`, the JSON `/admin/topics` and
//! `/admin/partitions/{topic}/{partition}/replicas`.

use std::time::Duration;

use distlog_compat_tests::http::metric_sum;
use distlog_compat_tests::kafka::{self, TestRecord};
use distlog_compat_tests::{start_broker, OrPanic};

#[test]
fn health_metrics_and_admin_topics_answer() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();

    let health = broker.http_get("/health").or_panic("GET /health");
    assert_eq!(health.status, 200);

    kafka::create_topic(&bootstrap, "observed", 2).or_panic("create topic");
    let records: Vec<TestRecord> = (0..20).map(|i| TestRecord::value(format!("m{i}"))).collect();
    kafka::produce_records(
        &kafka::producer_config(&bootstrap, "all"),
        "observed",
        Some(0),
        &records,
        Duration::from_secs(30),
    )
    .or_panic("produce");

    let metrics = broker.http_get("/metrics").or_panic("GET /metrics");
    assert_eq!(metrics.status, 200);
    let requests =
        metric_sum(&metrics.body, "distlog_requests_total").expect("distlog_requests_total exported");
    assert!(requests >= 3.0, "requests counted: {requests}");
    assert!(
        metrics.body.contains("distlog_requests_total{") && metrics.body.contains("api="),
        "requests are labelled by api"
    );
    let fsyncs = metric_sum(&metrics.body, "distlog_bookie_fsyncs_total")
        .expect("distlog_bookie_fsyncs_total exported");
    assert!(fsyncs >= 1.0, "acks=all produce must have fsynced: {fsyncs}");

    let topics = broker.http_get("/admin/topics").or_panic("GET /admin/topics");
    assert_eq!(topics.status, 200);
    let json: serde_json::Value = serde_json::from_str(&topics.body).or_panic_json(&topics.body);
    assert!(
        json.to_string().contains("\"observed\""),
        "topic missing from /admin/topics: {json}"
    );

    // The replica report, asked of the bookies: the 20 records are committed on the ack
    // quorum of the (single-node, 1/1/1) ensemble, and nothing is under-replicated.
    let report = broker
        .http_get("/admin/partitions/observed/0/replicas")
        .or_panic("GET replicas");
    assert_eq!(report.status, 200, "{}", report.body);
    let json: serde_json::Value = serde_json::from_str(&report.body).or_panic_json(&report.body);
    assert_eq!(json["topic"], "observed");
    assert_eq!(json["partition"], 0);
    let segments = json["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 1, "{json}");
    let seg = &segments[0];
    assert_eq!(seg["state"], "in_progress");
    assert_eq!(seg["base_offset"], 0);
    assert_eq!(seg["under_replicated_entries"], 0);
    let ensemble = seg["ensemble"].as_array().expect("ensemble");
    assert_eq!(ensemble.len(), 1);
    let committed = seg["committed_last_entry_id"]
        .as_u64()
        .expect("committed entries")
        + 1;
    let replicas = seg["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 1);
    assert_eq!(replicas[0]["bookie"], ensemble[0]);
    assert_eq!(replicas[0]["reachable"], true);
    assert_eq!(replicas[0]["entries"].as_u64(), Some(committed));
    assert_eq!(replicas[0]["last_entry_id"].as_u64(), Some(committed - 1));
    let unknown = broker
        .http_get("/admin/partitions/observed/7/replicas")
        .or_panic("GET replicas of a missing partition");
    assert_eq!(unknown.status, 404);

    let missing = broker.http_get("/no-such-endpoint").or_panic("GET unknown path");
    assert_eq!(missing.status, 404);
}

trait OrPanicJson<T> {
    fn or_panic_json(self, body: &str) -> T;
}

impl<T> OrPanicJson<T> for Result<T, serde_json::Error> {
    fn or_panic_json(self, body: &str) -> T {
        self.unwrap_or_else(|e| panic!("admin answer is not JSON ({e}): {body}"))
    }
}
