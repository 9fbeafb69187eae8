//! Kafka leader epochs across an owner change: a single node takes a new owner epoch on every
//! restart, so producing, restarting and producing again leaves a log written at two epochs.
//! OffsetForLeaderEpoch must answer each epoch's end offset exactly as a Kafka leader does,
//! Fetch and ListOffsets must check the client's `current_leader_epoch`, ListOffsets must report
//! the epoch of the offset it returns, and a librdkafka consumer must read straight across the
//! epoch change (it validates its position with OffsetForLeaderEpoch) without a reset.

use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_compat_tests::raw::Conn;
use distlog_compat_tests::{kafka, DistlogProcess, OrPanic};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;

const TIMEOUT: Duration = Duration::from_secs(30);

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn conn(broker: &DistlogProcess) -> Conn {
    Conn::open(broker.kafka_addr(), "leader-epochs-test").or_panic("connect")
}

fn code(err: ResponseError) -> i16 {
    err.code()
}

/// Produces `count` records with timestamps `ts0, ts0+1, …` and returns their offsets.
fn produce(broker: &DistlogProcess, topic: &str, ts0: i64, count: usize) -> Vec<i64> {
    let records: Vec<kafka::TestRecord> = (0..count)
        .map(|i| kafka::TestRecord {
            timestamp: Some(ts0 + i as i64),
            ..kafka::TestRecord::value(format!("{topic}-{ts0}-{i}"))
        })
        .collect();
    let config = kafka::producer_config(&broker.bootstrap(), "all");
    let deliveries = kafka::produce_records(&config, topic, Some(0), &records, TIMEOUT).or_panic("produce");
    deliveries
        .into_iter()
        .map(|d| d.result.expect("delivered"))
        .collect()
}

/// The leader epoch Metadata v9 reports for partition 0 of `topic`.
fn metadata_epoch(c: &mut Conn, topic: &str) -> i32 {
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic)))
    ]));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 9, &req).or_panic("metadata");
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0, "metadata of {topic}");
    t.partitions[0].leader_epoch
}

/// After a restart the node re-acquires its streams in the background: wait until Metadata
/// shows an epoch other than `old`, and return it.
fn wait_for_new_epoch(broker: &DistlogProcess, topic: &str, old: i32) -> i32 {
    let started = Instant::now();
    loop {
        let epoch = metadata_epoch(&mut conn(broker), topic);
        if epoch != old {
            return epoch;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "leader epoch still {old} after restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One OffsetForLeaderEpoch answer: (error code, leader epoch, end offset).
fn end_offset(
    c: &mut Conn,
    version: i16,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (i16, i32, i64) {
    let mut req = OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
        .with_topic(name(topic))
        .with_partitions(vec![OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current_leader_epoch)
            .with_leader_epoch(leader_epoch)])]);
    if version >= 3 {
        // A consumer (CONSUMER_REPLICA_ID), as librdkafka sends it.
        req.replica_id = BrokerId(-1);
    }
    let resp: OffsetForLeaderEpochResponse = c
        .call(ApiKey::OffsetForLeaderEpoch, version, &req)
        .or_panic("OffsetForLeaderEpoch");
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].topic, name(topic));
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.partition, partition);
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// One Fetch answer for partition 0 from `offset`: (error code, high watermark, records).
fn fetch(
    c: &mut Conn,
    version: i16,
    topic: &str,
    current_leader_epoch: i32,
    offset: i64,
) -> (i16, i64, Option<Bytes>) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = c.call(ApiKey::Fetch, version, &req).or_panic("fetch");
    assert_eq!(resp.error_code, 0);
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.high_watermark, p.records.clone())
}

/// (base offset, partitionLeaderEpoch) of every v2 record batch in `records`.
fn batch_epochs(records: &[u8]) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    let mut rest = records;
    while rest.len() >= 17 {
        let base = i64::from_be_bytes(rest[0..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let epoch = i32::from_be_bytes(rest[12..16].try_into().expect("4 bytes"));
        assert_eq!(rest[16], 2, "magic 2");
        out.push((base, epoch));
        let end = 12 + usize::try_from(len).expect("non-negative batch length");
        rest = rest.get(end..).expect("whole batches");
    }
    assert!(rest.is_empty(), "trailing bytes after the last batch");
    out
}

/// One ListOffsets answer for partition 0: (error code, offset, timestamp, leader epoch).
fn list_offset(
    c: &mut Conn,
    version: i16,
    topic: &str,
    current_leader_epoch: i32,
    timestamp: i64,
) -> (i16, i64, i64, i32) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_timestamp(timestamp)])]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, version, &req).or_panic("ListOffsets");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp, p.leader_epoch)
}

#[test]
fn offset_for_leader_epoch_fetch_and_list_offsets_across_an_epoch_change() {
    let mut broker = DistlogProcess::start_default().or_panic("start distlog");
    let topic = "epochs";
    kafka::create_topic(&broker.bootstrap(), topic, 1).or_panic("create topic");
    let ts0 = distlog_compat_tests::now_ms() - 60_000;

    // ApiVersions advertises OffsetForLeaderEpoch at the versions of the protocol schema.
    let versions: ApiVersionsResponse = conn(&broker)
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .or_panic("ApiVersions");
    let ofle = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::OffsetForLeaderEpoch as i16)
        .expect("OffsetForLeaderEpoch advertised");
    assert_eq!((ofle.min_version, ofle.max_version), (2, 4));

    // Epoch 1 writes offsets 0..5.
    assert_eq!(produce(&broker, topic, ts0, 5), vec![0, 1, 2, 3, 4]);
    let mut c = conn(&broker);
    let first = metadata_epoch(&mut c, topic);
    assert_eq!(first, 1, "a new topic's stream is owned at epoch 1");
    // The latest epoch ends at the log end offset.
    assert_eq!(end_offset(&mut c, 4, topic, 0, 1, 1), (0, 1, 5));

    broker.restart().or_panic("restart");
    let second = wait_for_new_epoch(&broker, topic, first);
    assert_eq!(
        second, 2,
        "a restarted single node owns its streams at the next epoch"
    );
    let mut c = conn(&broker);
    // Epoch 2 has written nothing yet: it starts at (and ends at) the log end.
    assert_eq!(end_offset(&mut c, 4, topic, 0, 2, 1), (0, 1, 5));
    assert_eq!(end_offset(&mut c, 4, topic, 0, 2, 2), (0, 2, 5));

    // Epoch 2 writes offsets 5..8.
    assert_eq!(produce(&broker, topic, ts0 + 100, 3), vec![5, 6, 7]);
    let mut c = conn(&broker);
    let unknown_topic = code(ResponseError::UnknownTopicOrPartition);
    let fenced = code(ResponseError::FencedLeaderEpoch);
    let unknown_epoch = code(ResponseError::UnknownLeaderEpoch);
    for v in 2..=4 {
        // Epoch 1 ends where epoch 2 starts; epoch 2 is the latest and ends at the log end.
        assert_eq!(end_offset(&mut c, v, topic, 0, -1, 1), (0, 1, 5), "v{v}");
        assert_eq!(end_offset(&mut c, v, topic, 0, 2, 1), (0, 1, 5), "v{v}");
        assert_eq!(end_offset(&mut c, v, topic, 0, 2, 2), (0, 2, 8), "v{v}");
        // Older than any epoch: the requested epoch and the first epoch's start.
        assert_eq!(end_offset(&mut c, v, topic, 0, -1, 0), (0, 0, 0), "v{v}");
        // A future epoch is undefined, without error.
        assert_eq!(end_offset(&mut c, v, topic, 0, -1, 3), (0, -1, -1), "v{v}");
        assert_eq!(end_offset(&mut c, v, topic, 0, -1, -1), (0, -1, -1), "v{v}");
        // The client's current leader epoch is checked first.
        assert_eq!(
            end_offset(&mut c, v, topic, 0, 3, 2),
            (unknown_epoch, -1, -1),
            "v{v}"
        );
        assert_eq!(end_offset(&mut c, v, topic, 0, 1, 1), (fenced, -1, -1), "v{v}");
        // Unknown partitions and topics.
        assert_eq!(
            end_offset(&mut c, v, topic, 7, -1, 1),
            (unknown_topic, -1, -1),
            "v{v}"
        );
        assert_eq!(
            end_offset(&mut c, v, "no-such-topic", 0, -1, 1),
            (unknown_topic, -1, -1),
            "v{v}"
        );
    }

    // Fetch checks the current leader epoch from v9; the stored batches carry the epoch that
    // wrote them, the same history OffsetForLeaderEpoch answers from.
    for v in 9..=12 {
        let (err, _, records) = fetch(&mut c, v, topic, 1, 0);
        assert_eq!((err, records.map_or(0, |r| r.len())), (fenced, 0), "v{v}");
        let (err, _, _) = fetch(&mut c, v, topic, 3, 0);
        assert_eq!(err, unknown_epoch, "v{v}");
        // Each read stays within a segment, and each segment holds one epoch's records.
        for (from, epoch) in [(0, 1), (5, 2)] {
            let (err, hw, records) = fetch(&mut c, v, topic, 2, from);
            assert_eq!((err, hw), (0, 8), "v{v}");
            let batches = batch_epochs(&records.expect("records"));
            assert_eq!(batches.first().map(|b| b.0), Some(from), "v{v}");
            for (base, stamped) in batches {
                assert_eq!(stamped, epoch, "v{v} batch at {base}");
            }
        }
    }

    // ListOffsets checks the current leader epoch from v4 and reports the epoch of the offset.
    for v in 4..=7 {
        assert_eq!(list_offset(&mut c, v, topic, 1, -1).0, fenced, "v{v}");
        assert_eq!(list_offset(&mut c, v, topic, 3, -1).0, unknown_epoch, "v{v}");
        assert_eq!(
            list_offset(&mut c, v, topic, 2, -2),
            (0, 0, -1, 1),
            "v{v} earliest"
        );
        assert_eq!(list_offset(&mut c, v, topic, 2, -1), (0, 8, -1, 2), "v{v} latest");
        assert_eq!(
            list_offset(&mut c, v, topic, -1, ts0 + 3),
            (0, 3, ts0 + 3, 1),
            "v{v}"
        );
        assert_eq!(
            list_offset(&mut c, v, topic, -1, ts0 + 50),
            (0, 5, ts0 + 100, 2),
            "v{v}"
        );
        assert_eq!(
            list_offset(&mut c, v, topic, -1, ts0 + 1000),
            (0, -1, -1, -1),
            "v{v}"
        );
    }
    assert_eq!(
        list_offset(&mut c, 7, topic, 2, -3),
        (0, 7, ts0 + 102, 2),
        "max timestamp"
    );
}

#[test]
fn librdkafka_consumes_across_an_epoch_change_without_reset() {
    let mut broker = DistlogProcess::start_default().or_panic("start distlog");
    let topic = "epochs-consume";
    kafka::create_topic(&broker.bootstrap(), topic, 1).or_panic("create topic");
    let ts0 = distlog_compat_tests::now_ms() - 60_000;
    assert_eq!(produce(&broker, topic, ts0, 10), (0..10).collect::<Vec<i64>>());

    let mut config = kafka::consumer_config(&broker.bootstrap());
    config
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    let consumer = kafka::assigned_consumer(&config, topic, 0, Offset::Beginning).or_panic("consumer");
    let before = kafka::poll_n(&consumer, 10, TIMEOUT).or_panic("consume epoch 1");
    assert_eq!(
        before.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<i64>>()
    );

    // A crash: the new incarnation recovers the open segment and owns the stream at epoch 2.
    let bootstrap = broker.bootstrap();
    broker.kill9().or_panic("kill -9");
    broker.restart().or_panic("restart");
    assert_eq!(
        broker.bootstrap(),
        bootstrap,
        "the restarted broker must keep its port for the consumer to reconnect"
    );
    assert_eq!(wait_for_new_epoch(&broker, topic, 1), 2);
    assert_eq!(
        produce(&broker, topic, ts0 + 100, 10),
        (10..20).collect::<Vec<i64>>()
    );

    let after = kafka::poll_n_across_failures(&consumer, 10, TIMEOUT).or_panic("consume across the restart");
    assert_eq!(
        after.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (10..20).collect::<Vec<i64>>(),
        "the consumer continues at its position: no reset, no duplicates"
    );
    for (i, r) in after.iter().enumerate() {
        assert_eq!(
            r.payload.as_deref(),
            Some(format!("{topic}-{}-{i}", ts0 + 100).as_bytes())
        );
    }
    kafka::expect_no_more(&consumer, Duration::from_secs(1)).or_panic("no more records");

    // The consumer validated its position against the new epoch.
    let metrics = broker.http_get("/metrics").or_panic("metrics");
    let validations: f64 = metrics
        .body
        .lines()
        .filter(|l| l.starts_with("distlog_requests_total{") && l.contains("api=\"OffsetForLeaderEpoch\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    assert!(
        validations >= 1.0,
        "librdkafka sent no OffsetForLeaderEpoch after the epoch change"
    );
}
