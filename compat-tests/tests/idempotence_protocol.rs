//! Idempotent producers at the protocol level, against a real `distlog` process: what ApiVersions
//! advertises, InitProducerId at every version, and Produce of hand-built v2 record batches whose
//! producer id, epoch, sequence and attributes are under the test's control, with the exact
//! answer Kafka gives for each rule (duplicate answered with the original offset,
//! OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, UNKNOWN_PRODUCER_ID, INVALID_TXN_STATE),
//! what the partition holds afterwards (ListOffsets and Fetch), and DescribeProducers. Requests
//! are encoded with the kafka-protocol crate and sent over a plain socket with read timeouts.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use distlog_compat_tests::raw;
use distlog_compat_tests::{kafka, DistlogProcess, OrPanic};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka error codes the tests expect.
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const UNKNOWN_PRODUCER_ID: i16 = 59;

/// The record batch attribute bit marking a transactional batch.
const TRANSACTIONAL: i16 = 0x10;

/// Base timestamp of the hand-built batches; a batch starting at sequence `s` has its first
/// record at `TS + 10 * s` and each further record 1 ms later.
const TS: i64 = 1_700_000_000_000;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

fn start() -> DistlogProcess {
    DistlogProcess::start_default().or_panic("start distlog")
}

fn connect(broker: &DistlogProcess) -> raw::Conn {
    raw::Conn::open(broker.kafka_addr(), "idempotence-protocol-test").or_panic("connect")
}

/// Appends a zigzag varint (Kafka's varint and varlong encoding).
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A v2 record batch built byte by byte: base offset 0, partition leader epoch -1, CreateTime,
/// no compression, the given producer id, epoch, base sequence and attributes, one record (null
/// key, no headers) per value, and a correct CRC-32C.
fn batch(producer_id: i64, epoch: i16, base_seq: i32, attributes: i16, values: &[Vec<u8>]) -> Bytes {
    let count = i32::try_from(values.len()).expect("few records");
    assert!(count > 0, "a batch has at least one record");
    let base_ts = TS + 10 * i64::from(base_seq.max(0));
    let mut records = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let i = i as i64;
        let mut body = vec![0u8]; // record attributes
        put_varint(&mut body, i); // timestamp delta
        put_varint(&mut body, i); // offset delta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    // Everything the CRC covers: attributes to the end.
    let mut covered = Vec::new();
    covered.extend_from_slice(&attributes.to_be_bytes());
    covered.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    covered.extend_from_slice(&base_ts.to_be_bytes());
    covered.extend_from_slice(&(base_ts + i64::from(count - 1)).to_be_bytes()); // max timestamp
    covered.extend_from_slice(&producer_id.to_be_bytes());
    covered.extend_from_slice(&epoch.to_be_bytes());
    covered.extend_from_slice(&base_seq.to_be_bytes());
    covered.extend_from_slice(&count.to_be_bytes());
    covered.extend_from_slice(&records);
    let crc = crc32c::crc32c(&covered);
    let mut out = Vec::new();
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let length = 4 + 1 + 4 + covered.len(); // leader epoch, magic, crc, covered
    out.extend_from_slice(&i32::try_from(length).expect("small batch").to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&covered);
    Bytes::from(out)
}

/// The value of the record of producer `tag` at `epoch` and `seq`.
fn value(tag: &str, epoch: i16, seq: i32) -> Vec<u8> {
    format!("{tag}-e{epoch}-s{seq}").into_bytes()
}

/// An idempotent batch of producer `pid` (values tagged `tag`) at `epoch`, sequences
/// `first..first + n`.
fn idempotent(pid: i64, tag: &str, epoch: i16, first: i32, n: i32) -> Bytes {
    let values: Vec<Vec<u8>> = (first..first + n).map(|q| value(tag, epoch, q)).collect();
    batch(pid, epoch, first, 0, &values)
}

/// The (error code, base offset) of the single partition a produce response answers.
fn produce_answer(resp: &ProduceResponse, t: &str, partition: i32) -> (i16, i64) {
    assert_eq!(resp.responses.len(), 1, "one topic answered: {resp:?}");
    let topic_resp = &resp.responses[0];
    assert_eq!(topic_resp.name.as_str(), t);
    assert_eq!(
        topic_resp.partition_responses.len(),
        1,
        "one partition answered: {resp:?}"
    );
    let p = &topic_resp.partition_responses[0];
    assert_eq!(p.index, partition);
    (p.error_code, p.base_offset)
}

/// Produces `records` to partition 0 of `t` at `version` and returns (error code, base offset).
fn produce(c: &mut raw::Conn, version: i16, t: &str, records: Bytes) -> (i16, i64) {
    let resp: ProduceResponse = c
        .call(ApiKey::Produce, version, &raw::produce_request(t, 0, records))
        .or_panic("produce");
    produce_answer(&resp, t, 0)
}

/// The latest offset (high watermark) of partition 0 of `t`, by ListOffsets v7.
fn latest(c: &mut raw::Conn, t: &str) -> i64 {
    let req = raw::latest_offset_request(t, 0);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).or_panic("list offsets");
    let rows: Vec<(i32, i16, i64)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code, p.offset))
        })
        .collect();
    assert_eq!(rows.len(), 1, "one partition listed: {rows:?}");
    assert_eq!((rows[0].0, rows[0].1), (0, 0), "ListOffsets of {t}-0 succeeds");
    rows[0].2
}

/// One stored record as a fetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    offset: i64,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    timestamp: i64,
    transactional: bool,
    value: Vec<u8>,
}

/// Every record of partition 0 of `t`, fetched (Fetch v11) from offset 0 up to the high
/// watermark, which must be `expected_hw`.
fn fetch_all(c: &mut raw::Conn, t: &str, expected_hw: i64) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut next = 0i64;
    for _ in 0..50 {
        if next >= expected_hw {
            break;
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(topic(t)).with_partitions(
                vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(next)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)],
            )]);
        let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req).or_panic("fetch");
        assert_eq!(resp.error_code, 0, "fetch error");
        assert_eq!(resp.responses.len(), 1);
        assert_eq!(resp.responses[0].partitions.len(), 1);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(
            (p.partition_index, p.error_code),
            (0, 0),
            "fetch of {t}-0 at {next}"
        );
        assert_eq!(p.high_watermark, expected_hw, "fetch: high watermark of {t}-0");
        let Some(records) = p.records.clone() else {
            continue;
        };
        let sets = RecordBatchDecoder::decode_all(&mut records.clone()).or_panic("decode fetched batches");
        for r in sets.iter().flat_map(|set| &set.records) {
            if r.offset < next {
                continue; // a batch fetched from its start, already seen
            }
            out.push(Stored {
                offset: r.offset,
                producer_id: r.producer_id,
                epoch: r.producer_epoch,
                sequence: r.sequence,
                timestamp: r.timestamp,
                transactional: r.transactional,
                value: r.value.as_deref().unwrap_or_default().to_vec(),
            });
            next = r.offset + 1;
        }
    }
    assert_eq!(next, expected_hw, "fetched up to the high watermark");
    out
}

/// What an idempotent record of producer `pid` (values tagged `tag`) at `epoch`, written at
/// `offset` by a batch starting at sequence `first`, looks like when fetched.
fn stored(offset: i64, pid: i64, tag: &str, epoch: i16, first: i32, seq: i32) -> Stored {
    Stored {
        offset,
        producer_id: pid,
        epoch,
        sequence: seq,
        timestamp: TS + 10 * i64::from(first) + i64::from(seq - first),
        transactional: false,
        value: value(tag, epoch, seq),
    }
}

/// A fresh producer id from InitProducerId v4 (what librdkafka 2.x sends), at epoch 0.
fn init_producer_id(c: &mut raw::Conn) -> i64 {
    let resp: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .or_panic("init producer id");
    assert_eq!(resp.error_code, 0, "InitProducerId: {resp:?}");
    assert!(resp.producer_id.0 >= 0, "InitProducerId: {resp:?}");
    assert_eq!(resp.producer_epoch, 0, "InitProducerId: {resp:?}");
    resp.producer_id.0
}

fn describe_request(topics: &[(&str, &[i32])]) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(
        topics
            .iter()
            .map(|(t, parts)| {
                describe_producers_request::TopicRequest::default()
                    .with_name(topic(t))
                    .with_partition_indexes(parts.to_vec())
            })
            .collect(),
    )
}

/// One DescribeProducers row: (topic, partition, error code, producers as (id, epoch, last
/// sequence, last timestamp, coordinator epoch, current transaction start offset)).
type DescribedPartition = (String, i32, i16, Vec<(i64, i32, i32, i64, i32, i64)>);

fn describe_rows(resp: &DescribeProducersResponse) -> Vec<DescribedPartition> {
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.as_str().to_string(),
                    p.partition_index,
                    p.error_code,
                    p.active_producers
                        .iter()
                        .map(|a| {
                            (
                                a.producer_id.0,
                                a.producer_epoch,
                                a.last_sequence,
                                a.last_timestamp,
                                a.coordinator_epoch,
                                a.current_txn_start_offset,
                            )
                        })
                        .collect(),
                )
            })
        })
        .collect()
}

#[test]
fn hand_built_batches_decode_with_a_valid_crc() {
    // The builder itself, checked against the kafka-protocol decoder (which verifies the CRC):
    // a broken builder would make every broker test below meaningless.
    let mut bytes = batch(77, 3, 40, 0, &[b"a".to_vec(), b"bc".to_vec(), vec![7u8; 300]]);
    let sets = RecordBatchDecoder::decode_all(&mut bytes).or_panic("decode");
    assert_eq!(sets.len(), 1);
    let got: Vec<(i64, i64, i16, i32, i64, Option<Bytes>)> = sets[0]
        .records
        .iter()
        .map(|r| {
            (
                r.offset,
                r.producer_id,
                r.producer_epoch,
                r.sequence,
                r.timestamp,
                r.value.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 77, 3, 40, TS + 400, Some(Bytes::from_static(b"a"))),
            (1, 77, 3, 41, TS + 401, Some(Bytes::from_static(b"bc"))),
            (2, 77, 3, 42, TS + 402, Some(Bytes::from(vec![7u8; 300]))),
        ]
    );
    let mut txn = batch(77, 3, 0, TRANSACTIONAL, &[b"x".to_vec()]);
    let sets = RecordBatchDecoder::decode_all(&mut txn).or_panic("decode transactional");
    assert!(sets[0].records[0].transactional);
    // A flipped byte in the records is caught by the CRC.
    let mut corrupt = batch(77, 3, 0, 0, &[b"x".to_vec()]).to_vec();
    let last = corrupt.len() - 2;
    corrupt[last] ^= 1;
    assert!(RecordBatchDecoder::decode_all(&mut Bytes::from(corrupt)).is_err());
}

#[test]
fn api_versions_advertise_init_producer_id_0_to_5_and_describe_producers_0() {
    let broker = start();
    // v0, decoded by hand.
    let mut stream = raw::connect(broker.kafka_addr(), IO_TIMEOUT).or_panic("connect");
    stream
        .write_all(&raw::api_versions_request(0, 1, "versions"))
        .expect("send ApiVersions v0");
    let decoded =
        raw::decode_api_versions_v0(&raw::read_frame(&mut stream).or_panic("read")).or_panic("decode");
    assert_eq!(decoded.correlation_id, 1);
    assert_eq!(decoded.error_code, 0);
    let v0: Vec<(i16, i16, i16)> = decoded
        .api_keys
        .iter()
        .map(|a| (a.api_key, a.min_version, a.max_version))
        .collect();
    assert_producer_apis_advertised(&v0);

    // v3 (flexible), through the kafka-protocol codec.
    let mut c = connect(&broker);
    let resp: ApiVersionsResponse = c
        .call(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(s("distlog-compat"))
                .with_client_software_version(s("1.0")),
        )
        .or_panic("ApiVersions v3");
    assert_eq!(resp.error_code, 0);
    let v3: Vec<(i16, i16, i16)> = resp
        .api_keys
        .iter()
        .map(|a| (a.api_key, a.min_version, a.max_version))
        .collect();
    assert_producer_apis_advertised(&v3);
}

/// InitProducerId is advertised exactly once as v0–5 and DescribeProducers as v0, among
/// (api key, min, max) rows.
fn assert_producer_apis_advertised(rows: &[(i16, i16, i16)]) {
    let range = |key: ApiKey| -> Vec<(i16, i16)> {
        rows.iter()
            .filter(|(k, _, _)| *k == key as i16)
            .map(|(_, lo, hi)| (*lo, *hi))
            .collect()
    };
    assert_eq!(range(ApiKey::InitProducerId), vec![(0, 5)]);
    assert_eq!(range(ApiKey::DescribeProducers), vec![(0, 0)]);
}

#[test]
fn init_producer_id_at_every_version_hands_out_distinct_ids_and_refuses_an_empty_transactional_id() {
    let broker = start();
    let mut c = connect(&broker);
    let mut ids = Vec::new();
    for version in 0..=5i16 {
        let resp: InitProducerIdResponse = c
            .call(
                ApiKey::InitProducerId,
                version,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
            )
            .or_panic("init producer id");
        assert_eq!(resp.error_code, 0, "v{version}: {resp:?}");
        assert!(resp.producer_id.0 >= 0, "v{version}: {resp:?}");
        assert_eq!(resp.producer_epoch, 0, "v{version}: {resp:?}");
        ids.push(resp.producer_id.0);

        if version >= 3 {
            // KIP-360: an idempotent producer naming its current id and epoch gets a fresh id
            // at epoch 0 (Kafka hands out a new one when there is no transactional id).
            let current = *ids.last().expect("an id");
            let again: InitProducerIdResponse = c
                .call(
                    ApiKey::InitProducerId,
                    version,
                    &InitProducerIdRequest::default()
                        .with_transactional_id(None)
                        .with_transaction_timeout_ms(60_000)
                        .with_producer_id(ProducerId(current))
                        .with_producer_epoch(0),
                )
                .or_panic("init producer id naming the current one");
            assert_eq!(again.error_code, 0, "v{version}: {again:?}");
            assert!(again.producer_id.0 >= 0, "v{version}: {again:?}");
            assert_eq!(again.producer_epoch, 0, "v{version}: {again:?}");
            ids.push(again.producer_id.0);
        }

        // An empty transactional id (Kafka refuses "": only a null id is
        // idempotent-only; transactional ids are tests/txn_protocol.rs's).
        let txn: InitProducerIdResponse = c
            .call(
                ApiKey::InitProducerId,
                version,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(""))))
                    .with_transaction_timeout_ms(60_000),
            )
            .or_panic("init producer id with an empty transactional id");
        assert_eq!(
            (txn.error_code, txn.producer_id.0, txn.producer_epoch),
            (INVALID_REQUEST, -1, -1),
            "v{version}: an empty transactional id is refused: {txn:?}"
        );
    }
    assert_eq!(ids.len(), 6 + 3);
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "producer ids handed out twice: {ids:?}"
    );
}

#[test]
fn produce_applies_kafkas_idempotence_rules_and_describe_producers_reports_them() {
    const T: &str = "idem";
    const V: i16 = 9;
    let broker = start();
    kafka::create_topic(&broker.bootstrap(), T, 2).or_panic("create topic");
    kafka::create_topic(&broker.bootstrap(), "plain", 1).or_panic("create topic");
    let mut c = connect(&broker);
    let p = init_producer_id(&mut c);

    // In sequence: written.
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 0, 5)),
        (0, 0),
        "seq 0..4"
    );
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 5, 5)),
        (0, 5),
        "seq 5..9"
    );
    assert_eq!(latest(&mut c, T), 10);

    // Retries of written batches: answered with the original offsets, nothing written again.
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 0, 5)),
        (0, 0),
        "resent seq 0..4"
    );
    assert_eq!(latest(&mut c, T), 10, "a duplicate of seq 0..4 was written again");
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 5, 5)),
        (0, 5),
        "resent seq 5..9"
    );
    assert_eq!(latest(&mut c, T), 10, "a duplicate of seq 5..9 was written again");

    // A gap (10 expected).
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 11, 1)),
        (OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
        "seq 11 after 9"
    );
    assert_eq!(latest(&mut c, T), 10, "the out-of-order batch was written");

    // KIP-360 epoch bump: a new epoch must start at sequence 0.
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 1, 3, 1)),
        (OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
        "epoch 1 starting at seq 3"
    );
    assert_eq!(latest(&mut c, T), 10);
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 1, 0, 2)),
        (0, 10),
        "epoch 1 seq 0..1"
    );
    assert_eq!(latest(&mut c, T), 12);
    // The old epoch is fenced, even continuing its own sequence.
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 10, 1)),
        (INVALID_PRODUCER_EPOCH, -1),
        "epoch 0 seq 10 after epoch 1"
    );
    assert_eq!(latest(&mut c, T), 12);

    // A producer this partition never saw, not starting at 0.
    let q = init_producer_id(&mut c);
    assert_ne!(q, p);
    assert_eq!(
        produce(&mut c, V, T, idempotent(q, "q", 0, 7, 1)),
        (UNKNOWN_PRODUCER_ID, -1),
        "unknown producer at seq 7"
    );
    assert_eq!(latest(&mut c, T), 12);

    // No producer id: no deduplication, even of byte-identical batches.
    let plain = batch(-1, -1, -1, 0, &[b"plain".to_vec()]);
    assert_eq!(produce(&mut c, V, T, plain.clone()), (0, 12), "first plain batch");
    assert_eq!(produce(&mut c, V, T, plain), (0, 13), "identical plain batch");
    assert_eq!(latest(&mut c, T), 14);

    // A transactional batch, otherwise next in sequence: refused, and it does not move the
    // producer's sequence (the same batch without the bit is then written).
    let txn = batch(p, 1, 2, TRANSACTIONAL, &[value("p", 1, 2)]);
    assert_eq!(
        produce(&mut c, V, T, txn),
        (INVALID_TXN_STATE, -1),
        "transactional batch"
    );
    assert_eq!(latest(&mut c, T), 14);
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 1, 2, 1)),
        (0, 14),
        "epoch 1 seq 2 after the refused transactional batch"
    );
    assert_eq!(latest(&mut c, T), 15);

    // Exactly what the partition holds.
    let mut expected: Vec<Stored> = (0..5).map(|q| stored(q.into(), p, "p", 0, 0, q)).collect();
    expected.extend((5..10).map(|q| stored(q.into(), p, "p", 0, 5, q)));
    expected.extend((0..2).map(|q| stored(10 + i64::from(q), p, "p", 1, 0, q)));
    for offset in [12, 13] {
        expected.push(Stored {
            offset,
            producer_id: -1,
            epoch: -1,
            sequence: -1,
            timestamp: TS,
            transactional: false,
            value: b"plain".to_vec(),
        });
    }
    expected.push(stored(14, p, "p", 1, 2, 2));
    assert_eq!(fetch_all(&mut c, T, 15), expected);

    // DescribeProducers: the one producer that wrote, at its last epoch and sequence; none on a
    // partition never written, nor on one written only without a producer id.
    let plain_topic = batch(-1, -1, -1, 0, &[b"x".to_vec()]);
    assert_eq!(produce(&mut c, V, "plain", plain_topic), (0, 0));
    let resp: DescribeProducersResponse = c
        .call(
            ApiKey::DescribeProducers,
            0,
            &describe_request(&[(T, &[0, 1, 7]), ("plain", &[0]), ("no-such-topic", &[0])]),
        )
        .or_panic("describe producers");
    assert_eq!(
        describe_rows(&resp),
        vec![
            (T.to_string(), 0, 0, vec![(p, 1, 2, TS + 20, -1, -1)]),
            (T.to_string(), 1, 0, vec![]),
            (T.to_string(), 7, UNKNOWN_TOPIC_OR_PARTITION, vec![]),
            ("plain".to_string(), 0, 0, vec![]),
            ("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION, vec![]),
        ]
    );
}

#[test]
fn pipelined_idempotent_produces_and_their_pipelined_retries_are_written_once() {
    const T: &str = "pipelined";
    // v8: the last non-flexible Produce version (the other test uses v9).
    const V: i16 = 8;
    let broker = start();
    kafka::create_topic(&broker.bootstrap(), T, 1).or_panic("create topic");
    let mut c = connect(&broker);
    let p = init_producer_id(&mut c);
    let batches: Vec<Bytes> = (0..5).map(|b| idempotent(p, "p", 0, 10 * b, 10)).collect();

    for round in ["first sends", "retries"] {
        let correlations: Vec<i32> = batches
            .iter()
            .map(|b| {
                c.send(ApiKey::Produce, V, &raw::produce_request(T, 0, b.clone()))
                    .or_panic("send produce")
            })
            .collect();
        let answers: Vec<(i16, i64)> = correlations
            .into_iter()
            .map(|corr| {
                let resp: ProduceResponse = c.receive(ApiKey::Produce, V, corr).or_panic("produce answer");
                produce_answer(&resp, T, 0)
            })
            .collect();
        assert_eq!(
            answers,
            vec![(0, 0), (0, 10), (0, 20), (0, 30), (0, 40)],
            "{round}"
        );
        assert_eq!(latest(&mut c, T), 50, "{round}");
    }
    let expected: Vec<Stored> = (0..50)
        .map(|q| stored(q.into(), p, "p", 0, q - q % 10, q))
        .collect();
    assert_eq!(fetch_all(&mut c, T, 50), expected);

    // Only the last five batches are remembered (Kafka's limit): after a sixth, a retry of the
    // first is no longer recognised and is out of order; one of the last five still is.
    assert_eq!(produce(&mut c, V, T, idempotent(p, "p", 0, 50, 10)), (0, 50));
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 0, 10)),
        (OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
        "retry of a batch older than the five remembered"
    );
    assert_eq!(
        produce(&mut c, V, T, idempotent(p, "p", 0, 10, 10)),
        (0, 10),
        "retry of the oldest of the five remembered"
    );
    assert_eq!(latest(&mut c, T), 60);
    let resp: DescribeProducersResponse = c
        .call(ApiKey::DescribeProducers, 0, &describe_request(&[(T, &[0])]))
        .or_panic("describe producers");
    assert_eq!(
        describe_rows(&resp),
        vec![(T.to_string(), 0, 0, vec![(p, 0, 59, TS + 509, -1, -1)])]
    );
}
