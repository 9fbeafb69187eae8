//! AlterConfigs, IncrementalAlterConfigs and DescribeConfigs over the wire, with hand-built
//! requests (so every error code is checked exactly): topic overrides and dynamic broker
//! configs, each refusal with Kafka's code and a message naming the config, `validate_only`
//! changing nothing, and a change applied live — a new `segment.bytes` makes the open stream's
//! writer roll at the new size without reopening the stream, a new `max.message.bytes` applies
//! to the next produce.

use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_compat_tests::raw::{self, Conn};
use distlog_compat_tests::{kafka, DistlogProcess, OrPanic};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    alter_configs_request, AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;

const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn resource(ty: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(ty)
        .with_resource_name(s(name))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(*op)
                        .with_value(v.map(s))
                })
                .collect(),
        )
}

/// IncrementalAlterConfigs v1 of `resources`: each resource's (error code, message).
fn incremental(
    conn: &mut Conn,
    validate_only: bool,
    resources: Vec<AlterConfigsResource>,
) -> Vec<(i16, String)> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    let resp: IncrementalAlterConfigsResponse = conn
        .call(ApiKey::IncrementalAlterConfigs, 1, &req)
        .or_panic("IncrementalAlterConfigs");
    resp.responses
        .iter()
        .map(|r| (r.error_code, r.error_message.as_deref().unwrap_or("").to_string()))
        .collect()
}

/// One IncrementalAlterConfigs resource: its (error code, message).
fn incremental1(conn: &mut Conn, ty: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) -> (i16, String) {
    incremental(conn, false, vec![resource(ty, name, ops)]).remove(0)
}

/// AlterConfigs at `version` of one resource (a full replacement): its (error code, message).
fn alter(
    conn: &mut Conn,
    version: i16,
    validate_only: bool,
    ty: i8,
    name: &str,
    kv: &[(&str, &str)],
) -> (i16, String) {
    let req = AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(s(name))
            .with_configs(
                kv.iter()
                    .map(|(k, v)| {
                        alter_configs_request::AlterableConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )]);
    let resp: AlterConfigsResponse = conn
        .call(ApiKey::AlterConfigs, version, &req)
        .or_panic("AlterConfigs");
    let r = &resp.responses[0];
    assert_eq!((r.resource_type, r.resource_name.as_str()), (ty, name));
    (r.error_code, r.error_message.as_deref().unwrap_or("").to_string())
}

/// DescribeConfigs v4 (with synonyms) of one resource: its error code and entries.
fn describe(conn: &mut Conn, ty: i8, name: &str) -> (i16, Vec<DescribeConfigsResourceResult>) {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let resp: DescribeConfigsResponse = conn
        .call(ApiKey::DescribeConfigs, 4, &req)
        .or_panic("DescribeConfigs");
    let r = resp.results.into_iter().next().expect("one result");
    (r.error_code, r.configs)
}

/// (value, source, read_only) of config `key` of a resource.
fn entry(conn: &mut Conn, ty: i8, name: &str, key: &str) -> (String, i8, bool) {
    let (code, configs) = describe(conn, ty, name);
    assert_eq!(code, 0, "describe {name}");
    let e = configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} listed for {name}"));
    (
        e.value.as_deref().unwrap_or("").to_string(),
        e.config_source,
        e.read_only,
    )
}

fn assert_refused(got: (i16, String), code: i16, needles: &[&str]) {
    assert_eq!(got.0, code, "{got:?}");
    for n in needles {
        assert!(got.1.contains(n), "message {:?} should contain {n:?}", got.1);
    }
}

#[test]
fn topic_and_broker_configs_are_altered_validated_and_described() {
    let broker = DistlogProcess::start_default().or_panic("start distlog");
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, "cfg", 1).or_panic("create topic");
    let mut conn = Conn::open(broker.kafka_addr(), "configs-test").or_panic("connect");

    // Incremental SET of a config distlog honours and of one that cannot change its behaviour.
    let ok = incremental1(
        &mut conn,
        TOPIC,
        "cfg",
        &[
            ("retention.ms", SET, Some("100000")),
            ("delete.retention.ms", SET, Some("900")),
        ],
    );
    assert_eq!(ok, (0, String::new()));
    assert_eq!(
        entry(&mut conn, TOPIC, "cfg", "retention.ms"),
        ("100000".into(), DYNAMIC_TOPIC_CONFIG, false)
    );
    assert_eq!(entry(&mut conn, TOPIC, "cfg", "delete.retention.ms").0, "900");

    // Every refusal, with Kafka's code and a message naming the config.
    assert_refused(
        incremental1(&mut conn, TOPIC, "cfg", &[("no.such.config", SET, Some("1"))]),
        INVALID_CONFIG,
        &["no.such.config"],
    );
    assert_refused(
        incremental1(&mut conn, TOPIC, "cfg", &[("segment.bytes", SET, Some("abc"))]),
        INVALID_CONFIG,
        &["segment.bytes", "not an integer"],
    );
    assert_refused(
        incremental1(
            &mut conn,
            TOPIC,
            "cfg",
            &[("remote.storage.enable", SET, Some("true"))],
        ),
        INVALID_CONFIG,
        &["remote.storage.enable", "not supported"],
    );
    assert_refused(
        incremental1(
            &mut conn,
            TOPIC,
            "cfg",
            &[("cleanup.policy", APPEND, Some("compact"))],
        ),
        INVALID_CONFIG,
        &["cleanup.policy"],
    );
    assert_refused(
        incremental1(
            &mut conn,
            TOPIC,
            "cfg",
            &[("distlog.ensemble.size", SET, Some("2"))],
        ),
        INVALID_CONFIG,
        &["distlog.ensemble.size 2 needs 2 live bookies; this cluster has 1"],
    );
    assert_refused(
        incremental1(&mut conn, TOPIC, "cfg", &[("retention.ms", APPEND, Some("5"))]),
        INVALID_CONFIG,
        &["Can't APPEND to key retention.ms because its type is not LIST."],
    );
    assert_refused(
        incremental1(
            &mut conn,
            TOPIC,
            "no-such-topic",
            &[("retention.ms", SET, Some("5"))],
        ),
        UNKNOWN_TOPIC,
        &["no-such-topic"],
    );
    assert_refused(
        incremental1(&mut conn, TOPIC, "cfg", &[("retention.ms", 7, Some("5"))]),
        INVALID_REQUEST,
        &["Unknown operations type 7"],
    );
    assert_refused(
        incremental1(
            &mut conn,
            BROKER,
            "1",
            &[("advertised.listeners", SET, Some("PLAINTEXT://elsewhere:9092"))],
        ),
        INVALID_REQUEST,
        &["Cannot update these configs dynamically: advertised.listeners"],
    );
    assert_refused(
        incremental1(&mut conn, BROKER, "", &[("log.segment.bytes", SET, Some("1"))]),
        INVALID_REQUEST,
        &["log.segment.bytes"],
    );
    assert_refused(
        incremental1(&mut conn, BROKER, "9", &[("log.retention.ms", SET, Some("5"))]),
        INVALID_REQUEST,
        &["Unexpected broker id"],
    );
    let twice = incremental(
        &mut conn,
        false,
        vec![
            resource(TOPIC, "cfg", &[("retention.ms", SET, Some("5"))]),
            resource(TOPIC, "cfg", &[("segment.ms", SET, Some("5"))]),
        ],
    );
    assert!(twice.iter().all(|r| r.0 == INVALID_REQUEST), "{twice:?}");
    assert_refused(
        alter(&mut conn, 0, false, TOPIC, "cfg", &[("retention.ms", "-5")]),
        INVALID_CONFIG,
        &["retention.ms"],
    );
    // None of the refused changes was stored.
    assert_eq!(entry(&mut conn, TOPIC, "cfg", "retention.ms").0, "100000");
    assert_ne!(
        entry(&mut conn, TOPIC, "cfg", "segment.ms").1,
        DYNAMIC_TOPIC_CONFIG
    );

    // validate_only checks and changes nothing, in both APIs.
    let checked = incremental(
        &mut conn,
        true,
        vec![resource(TOPIC, "cfg", &[("retention.ms", SET, Some("5"))])],
    );
    assert_eq!(checked, vec![(0, String::new())]);
    assert_refused(
        incremental(
            &mut conn,
            true,
            vec![resource(TOPIC, "cfg", &[("retention.ms", SET, Some("x"))])],
        )
        .remove(0),
        INVALID_CONFIG,
        &["retention.ms"],
    );
    assert_eq!(
        alter(&mut conn, 1, true, TOPIC, "cfg", &[("segment.ms", "60000")]),
        (0, String::new())
    );
    assert_eq!(entry(&mut conn, TOPIC, "cfg", "retention.ms").0, "100000");
    assert_ne!(
        entry(&mut conn, TOPIC, "cfg", "segment.ms").1,
        DYNAMIC_TOPIC_CONFIG
    );

    // AlterConfigs replaces the whole set: retention.ms goes back to its default.
    assert_eq!(
        alter(&mut conn, 2, false, TOPIC, "cfg", &[("segment.ms", "60000")]),
        (0, String::new())
    );
    assert_eq!(
        entry(&mut conn, TOPIC, "cfg", "segment.ms"),
        ("60000".into(), DYNAMIC_TOPIC_CONFIG, false)
    );
    assert_eq!(
        entry(&mut conn, TOPIC, "cfg", "retention.ms"),
        ("604800000".into(), STATIC_BROKER_CONFIG, false)
    );
    assert_eq!(
        entry(&mut conn, TOPIC, "cfg", "delete.retention.ms").0,
        "86400000"
    );
    // DELETE removes one override.
    assert_eq!(
        incremental1(&mut conn, TOPIC, "cfg", &[("segment.ms", DELETE, None)]).0,
        0
    );
    assert_ne!(
        entry(&mut conn, TOPIC, "cfg", "segment.ms").1,
        DYNAMIC_TOPIC_CONFIG
    );

    // Dynamic broker configs: cluster-wide, then this broker's, as topic defaults.
    assert_eq!(
        incremental1(
            &mut conn,
            BROKER,
            "",
            &[("log.retention.ms", SET, Some("123456"))]
        ),
        (0, String::new())
    );
    let (code, cluster) = describe(&mut conn, BROKER, "");
    assert_eq!(code, 0);
    let listed: Vec<(&str, Option<&str>, i8)> = cluster
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_deref(), c.config_source))
        .collect();
    assert_eq!(
        listed,
        vec![("log.retention.ms", Some("123456"), DYNAMIC_DEFAULT_BROKER_CONFIG)]
    );
    assert_eq!(
        entry(&mut conn, TOPIC, "cfg", "retention.ms"),
        ("123456".into(), DYNAMIC_DEFAULT_BROKER_CONFIG, false)
    );
    assert_eq!(
        entry(&mut conn, BROKER, "1", "log.retention.ms"),
        ("123456".into(), DYNAMIC_DEFAULT_BROKER_CONFIG, false)
    );
    assert_eq!(
        alter(
            &mut conn,
            0,
            false,
            BROKER,
            "1",
            &[("log.retention.ms", "654321")]
        )
        .0,
        0
    );
    assert_eq!(
        entry(&mut conn, TOPIC, "cfg", "retention.ms"),
        ("654321".into(), DYNAMIC_BROKER_CONFIG, false)
    );
    // read_only is truthful: only what AlterConfigs accepts says false.
    let (_, all) = describe(&mut conn, BROKER, "1");
    let read_only = |n: &str| all.iter().find(|c| c.name.as_str() == n).map(|c| c.read_only);
    assert_eq!(read_only("advertised.listeners"), Some(true));
    assert_eq!(read_only("listeners"), Some(true));
    assert_eq!(read_only("broker.id"), Some(true));
    assert_eq!(read_only("log.segment.bytes"), Some(false));
    assert_eq!(read_only("message.max.bytes"), Some(false));
    // Removing them restores the static default.
    assert_eq!(alter(&mut conn, 0, false, BROKER, "1", &[]).0, 0);
    assert_eq!(
        incremental1(&mut conn, BROKER, "", &[("log.retention.ms", DELETE, None)]).0,
        0
    );
    assert_eq!(
        entry(&mut conn, TOPIC, "cfg", "retention.ms"),
        ("604800000".into(), STATIC_BROKER_CONFIG, false)
    );
    assert!(describe(&mut conn, BROKER, "").1.is_empty());
}

/// The partition's stream as `/admin/topics` shows it.
fn partition0(broker: &DistlogProcess, topic: &str) -> Value {
    let resp = broker.http_get("/admin/topics").or_panic("GET /admin/topics");
    let json: Value = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("parse /admin/topics: {e}: {}", resp.body));
    json["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .map_or_else(
            || panic!("{topic} listed: {json}"),
            |t| t["partitions"][0].clone(),
        )
}

/// Produces one 1000-byte record (its own entry) to partition 0; returns the error code.
fn produce_one(conn: &mut Conn, topic: &str, i: usize, len: usize) -> i16 {
    let value = Bytes::from(kafka::patterned_payload(i, len));
    let batch = raw::one_record_batch((-1, -1, -1), 1_700_000_000_000 + i as i64, value).or_panic("batch");
    let resp: ProduceResponse = conn
        .call(ApiKey::Produce, 9, &raw::produce_request(topic, 0, batch))
        .or_panic("produce");
    resp.responses[0].partition_responses[0].error_code
}

#[test]
fn a_changed_topic_config_applies_to_the_open_stream() {
    let broker = DistlogProcess::start_default().or_panic("start distlog");
    kafka::create_topic(&broker.bootstrap(), "live", 1).or_panic("create topic");
    let mut conn = Conn::open(broker.kafka_addr(), "configs-live").or_panic("connect");
    for i in 0..10 {
        assert_eq!(produce_one(&mut conn, "live", i, 1000), 0);
    }
    let before = partition0(&broker, "live");
    assert_eq!(before["segments"].as_array().map(Vec::len), Some(1), "{before}");
    let epoch = before["epoch"].clone();

    // A smaller segment.bytes: the open stream's writer rolls at the new size from now on.
    assert_eq!(
        incremental1(&mut conn, TOPIC, "live", &[("segment.bytes", SET, Some("4096"))]),
        (0, String::new())
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 10;
    let after = loop {
        assert_eq!(produce_one(&mut conn, "live", i, 1000), 0);
        i += 1;
        let p = partition0(&broker, "live");
        let completed = p["segments"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|g| g["state"] == "completed").count());
        if completed >= 4 && i >= 40 {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no rolls at the new size after {i} records: {p}"
        );
    };
    assert_eq!(after["epoch"], epoch, "the stream was not reopened: {after}");
    let segments = after["segments"].as_array().expect("segments");
    // The first segment held the 10 records written before the change (and rolled at the first
    // decision after it); every later completed one rolled once it reached 4096 bytes.
    for seg in segments.iter().skip(1).filter(|g| g["state"] == "completed") {
        let size = seg["size_bytes"].as_u64().expect("size");
        assert!(
            (4096..4096 + 1200).contains(&size),
            "segment rolled at the new size: {seg}"
        );
    }

    // max.message.bytes applies to the next produce.
    assert_eq!(produce_one(&mut conn, "live", 1000, 2000), 0);
    assert_eq!(
        incremental1(
            &mut conn,
            TOPIC,
            "live",
            &[("max.message.bytes", SET, Some("1000"))]
        )
        .0,
        0
    );
    assert_eq!(produce_one(&mut conn, "live", 1001, 2000), MESSAGE_TOO_LARGE);
    // And a dynamic broker default does too, for a topic that sets none.
    assert_eq!(
        incremental1(&mut conn, TOPIC, "live", &[("max.message.bytes", DELETE, None)]).0,
        0
    );
    assert_eq!(produce_one(&mut conn, "live", 1002, 2000), 0);
    assert_eq!(
        incremental1(&mut conn, BROKER, "", &[("message.max.bytes", SET, Some("1000"))]).0,
        0
    );
    assert_eq!(produce_one(&mut conn, "live", 1003, 2000), MESSAGE_TOO_LARGE);
}
