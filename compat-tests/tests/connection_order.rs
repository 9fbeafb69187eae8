//! Per-connection order of effects: Kafka handles one request per connection at a time, so a
//! request sees the effects of every earlier request on its connection even when the client
//! pipelines them without waiting for responses. Each test sends pairs of requests back to back
//! on one plain socket (the second before the first is answered) and checks that the second
//! request's answer reflects exactly the first one's effect, many times over.

use bytes::Bytes;
use distlog_compat_tests::raw;
use distlog_compat_tests::{kafka, DistlogProcess, OrPanic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// How many back-to-back pairs each test sends.
const PAIRS: i64 = 200;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

/// A standalone (assign-based) commit of `offset` for partition 0 of `t`.
fn commit_request(group: &str, t: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(topic(t))
            .with_partitions(vec![
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(s(""))),
            ])])
}

/// An OffsetFetch (v7) of partition 0 of `t` asking for stable offsets, as librdkafka's
/// `committed()` does.
fn fetch_request(group: &str, t: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_require_stable(true)
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic(t))
                .with_partition_indexes(vec![0]),
        ]))
}

#[test]
fn offset_fetch_pipelined_after_offset_commit_returns_exactly_that_commit() {
    let broker = DistlogProcess::start_default().or_panic("start distlog");
    kafka::create_topic(&broker.bootstrap(), "t", 1).or_panic("create topic");
    let mut c = raw::Conn::open(broker.kafka_addr(), "connection-order-test").or_panic("connect");
    for i in 1..=PAIRS {
        let commit = c
            .send(ApiKey::OffsetCommit, 8, &commit_request("g", "t", i))
            .or_panic("send commit");
        let fetch = c
            .send(ApiKey::OffsetFetch, 7, &fetch_request("g", "t"))
            .or_panic("send fetch");
        let committed: OffsetCommitResponse = c
            .receive(ApiKey::OffsetCommit, 8, commit)
            .or_panic("commit response");
        let codes: Vec<i16> = committed
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        assert_eq!(codes, vec![0], "commit {i} succeeds");
        let fetched: OffsetFetchResponse = c
            .receive(ApiKey::OffsetFetch, 7, fetch)
            .or_panic("fetch response");
        assert_eq!(fetched.error_code, 0, "pair {i}: group-level error");
        let rows: Vec<(i32, i64, i16)> = fetched
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.committed_offset, p.error_code))
            })
            .collect();
        assert_eq!(
            rows,
            vec![(0, i, 0)],
            "pair {i}: the fetch sent right after the commit of {i} sees exactly it, stable"
        );
    }
}

/// A produce request (v9, acks=all) of one record to partition 0 of `t`.
fn produce_request(t: &str, i: i64) -> ProduceRequest {
    let batch = raw::one_record_batch(
        (-1, -1, -1),
        1_700_000_000_000 + i,
        Bytes::from(format!("record-{i}")),
    )
    .or_panic("encode record batch");
    raw::produce_request(t, 0, batch)
}

#[test]
fn list_offsets_pipelined_after_produce_sees_the_produced_record() {
    let broker = DistlogProcess::start_default().or_panic("start distlog");
    kafka::create_topic(&broker.bootstrap(), "t", 1).or_panic("create topic");
    let mut c = raw::Conn::open(broker.kafka_addr(), "connection-order-test").or_panic("connect");
    for i in 0..PAIRS {
        let produce = c
            .send(ApiKey::Produce, 9, &produce_request("t", i))
            .or_panic("send produce");
        let list = c
            .send(ApiKey::ListOffsets, 7, &raw::latest_offset_request("t", 0))
            .or_panic("send list offsets");
        let produced: ProduceResponse = c
            .receive(ApiKey::Produce, 9, produce)
            .or_panic("produce response");
        let rows: Vec<(i16, i64)> = produced
            .responses
            .iter()
            .flat_map(|t| {
                t.partition_responses
                    .iter()
                    .map(|p| (p.error_code, p.base_offset))
            })
            .collect();
        assert_eq!(rows, vec![(0, i)], "record {i} is stored at offset {i}");
        let listed: ListOffsetsResponse = c
            .receive(ApiKey::ListOffsets, 7, list)
            .or_panic("list offsets response");
        let rows: Vec<(i16, i64)> = listed
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (p.error_code, p.offset)))
            .collect();
        assert_eq!(
            rows,
            vec![(0, i + 1)],
            "pair {i}: the latest offset right after the produce of offset {i}"
        );
    }
}
