//! Fetch's byte limits at record-batch granularity (KIP-74, issue 11 item 7).
//!
//! The writer coalesces appends into entries of several record batches. A fetch must still
//! answer within the request's `max_bytes` and each partition's `partition_max_bytes` in whole
//! *batches* (only the first batch of the first non-empty partition may exceed them), or
//! librdkafka refuses the response ("Invalid response size … increase
//! receive.message.max.bytes") and never progresses. The configuration is the one that showed
//! it: `fetch.max.bytes=1000000`, `max.partition.fetch.bytes=20000000`, three partitions of
//! 900 KiB messages.
//!
//! The brokers run without a tail cache: the cache keeps the appends an entry was built from
//! (one batch each), so only reads of whole stored entries show the coalescing.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distlog_compat_tests::command::{kcat_available, kcat_command, run_with_deadline};
use distlog_compat_tests::kafka::{self, patterned_payload, TestRecord};
use distlog_compat_tests::raw::Conn;
use distlog_compat_tests::{DistlogOptions, DistlogProcess, OrPanic};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

const MESSAGE_BYTES: usize = 900 * 1024;
const PARTITIONS: i32 = 3;
/// Producers writing concurrently, each one message to every partition.
const PRODUCERS: usize = 6;
/// Rounds of producers tried before giving up on seeing multi-batch entries.
const MAX_ROUNDS: usize = 12;
const FETCH_MAX_BYTES: i32 = 1_000_000;
const PARTITION_MAX_BYTES: i32 = 20_000_000;
/// What librdkafka adds to `fetch.max.bytes` for the response frame's other fields: its
/// `receive.message.max.bytes` must be at least `fetch.max.bytes + 512`.
const FRAME_OVERHEAD: usize = 512;
const DEADLINE: Duration = Duration::from_secs(90);

/// A broker holding topic `topic` whose partitions have entries of several 900 KiB batches, and
/// what each partition holds: `expected[p]` = the payloads at offsets 0, 1, …
struct Loaded {
    broker: DistlogProcess,
    topic: &'static str,
    expected: Vec<Vec<Vec<u8>>>,
}

fn load(topic: &'static str) -> Loaded {
    let broker = DistlogProcess::start(DistlogOptions {
        env: vec![("DISTLOG_TAIL_CACHE_BYTES".to_string(), "0".to_string())],
        ..DistlogOptions::default()
    })
    .or_panic("start distlog");
    let bootstrap = broker.bootstrap();
    kafka::create_topic(&bootstrap, topic, PARTITIONS).or_panic("create topic");

    // Rounds of several producers at once, each one message per partition, so appends queue up
    // at each partition's writer and are coalesced into multi-batch entries; whether they do is
    // timing, so rounds go on until some entry holds several batches.
    let mut at: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut rounds = 0;
    loop {
        assert!(
            rounds < MAX_ROUNDS,
            "after {rounds} rounds of concurrent producers every 900 KiB message is in its own \
             entry: nothing to cut"
        );
        produce_round(&bootstrap, topic, rounds, &mut at);
        rounds += 1;
        let shared = multi_batch_entries(&broker, topic, (rounds * PRODUCERS) as i64);
        eprintln!("round {rounds}: {shared} records share an entry with the one before");
        if shared > 0 {
            break;
        }
    }
    let expected: Vec<Vec<Vec<u8>>> = (0..PARTITIONS)
        .map(|p| {
            let mut want = 0;
            at.range((p, 0)..(p, i64::MAX))
                .map(|(&(_, offset), &id)| {
                    assert_eq!(offset, want, "partition {p}: offsets 0, 1, …");
                    want += 1;
                    patterned_payload(id, MESSAGE_BYTES)
                })
                .collect()
        })
        .collect();
    for (p, e) in expected.iter().enumerate() {
        assert_eq!(e.len(), rounds * PRODUCERS, "partition {p}");
    }
    Loaded {
        broker,
        topic,
        expected,
    }
}

/// One round: [`PRODUCERS`] producers at once, each sending one message to every partition;
/// records where each message landed in `at` ((partition, offset) → message id).
fn produce_round(bootstrap: &str, topic: &'static str, round: usize, at: &mut BTreeMap<(i32, i64), usize>) {
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let bootstrap = bootstrap.to_string();
            thread::spawn(move || {
                let mut config = kafka::producer_config(&bootstrap, "1");
                config.set("linger.ms", "50");
                let p = kafka::recording_producer(&config)?;
                for partition in 0..PARTITIONS as usize {
                    let id = id(round, producer, partition);
                    let r = TestRecord::value(patterned_payload(id, MESSAGE_BYTES));
                    kafka::send_record(&p, topic, Some(partition as i32), id, &r)?;
                }
                p.flush(Duration::from_secs(60))?;
                anyhow::Ok(p.context().take())
            })
        })
        .collect();
    for h in producers {
        let deliveries = h.join().expect("producer thread").or_panic("produce");
        assert_eq!(deliveries.len(), PARTITIONS as usize);
        for d in deliveries {
            let offset = d
                .result
                .unwrap_or_else(|e| panic!("message {} not delivered: {e:?}", d.id));
            assert_eq!(d.partition, (d.id % PARTITIONS as usize) as i32);
            assert!(
                at.insert((d.partition, offset), d.id).is_none(),
                "offset given twice"
            );
        }
    }
}

/// How many records of the first `n` of each partition share an entry with the record before
/// them (offset → entry from the admin API's `/admin/locate`).
fn multi_batch_entries(broker: &DistlogProcess, topic: &str, n: i64) -> usize {
    let mut shared = 0;
    for p in 0..PARTITIONS {
        let mut entries = BTreeSet::new();
        for offset in 0..n {
            let r = broker
                .http_get(&format!(
                    "/admin/locate?topic={topic}&partition={p}&offset={offset}"
                ))
                .or_panic("locate");
            assert_eq!(r.status, 200, "{}", r.body);
            let v: serde_json::Value = serde_json::from_str(&r.body).expect("locate JSON");
            entries.insert((v["dlsn"]["lssn"].to_string(), v["dlsn"]["entry_id"].to_string()));
        }
        shared += n as usize - entries.len();
    }
    shared
}

/// Message id of producer `producer`'s message to `partition` in round `round`.
fn id(round: usize, producer: usize, partition: usize) -> usize {
    (round * PRODUCERS + producer) * PARTITIONS as usize + partition
}

/// (base offset, size) of every v2 batch in `records`, which must hold whole batches only.
fn batches(records: &[u8]) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        assert!(rest.len() >= 61, "truncated batch header");
        let base = i64::from_be_bytes(rest[0..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        assert_eq!(rest[16], 2, "magic 2");
        let size = 12 + usize::try_from(len).expect("non-negative batch length");
        out.push((base, size));
        rest = rest.get(size..).expect("whole batches");
    }
    out
}

#[test]
fn raw_fetches_stay_within_max_bytes_in_whole_batches() {
    let loaded = load("fetch-limits-raw");
    let topic = loaded.topic;
    let mut conn = Conn::open(loaded.broker.kafka_addr(), "fetch-limits").or_panic("connect");
    let mut next = vec![0i64; PARTITIONS as usize];
    let ends: Vec<i64> = loaded.expected.iter().map(|e| e.len() as i64).collect();
    let started = Instant::now();
    let mut responses = 0;
    while next != ends {
        assert!(
            started.elapsed() < DEADLINE,
            "read up to {next:?} of {ends:?} in {DEADLINE:?}"
        );
        let req = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(next[p as usize])
                                .with_partition_max_bytes(PARTITION_MAX_BYTES)
                        })
                        .collect(),
                )]);
        // v11: what librdkafka 2.0.2 sends.
        let (resp, frame): (FetchResponse, usize) =
            conn.call_sized(ApiKey::Fetch, 11, &req).or_panic("fetch");
        responses += 1;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.responses.len(), 1);
        let parts = &resp.responses[0].partitions;
        assert_eq!(parts.len(), PARTITIONS as usize);

        let mut total = 0usize;
        let mut first_batch: Option<usize> = None;
        for (p, part) in parts.iter().enumerate() {
            assert_eq!((part.partition_index, part.error_code), (p as i32, 0));
            assert_eq!(part.high_watermark, ends[p], "partition {p}");
            let records = part.records.clone().unwrap_or_default();
            let found = batches(&records);
            let bytes: usize = found.iter().map(|(_, n)| n).sum();
            if first_batch.is_none() {
                first_batch = found.first().map(|(_, n)| *n);
            }
            assert!(
                bytes <= PARTITION_MAX_BYTES as usize || (total == 0 && found.len() == 1),
                "partition {p}: {bytes} record bytes above partition_max_bytes"
            );
            total += bytes;
            // Every record, in order, from the fetch offset: no record before it, none twice.
            let sets = RecordBatchDecoder::decode_all(&mut Bytes::clone(&records)).expect("decode batches");
            for r in sets.iter().flat_map(|s| &s.records) {
                let at = next[p];
                assert_eq!(r.offset, at, "partition {p}: record out of order");
                let want = &loaded.expected[p][at as usize];
                assert!(
                    r.value.as_deref() == Some(want.as_slice()),
                    "partition {p} offset {at}: payload differs"
                );
                next[p] += 1;
            }
        }
        let first = first_batch.expect("an empty response although records remain");
        // KIP-74: within max_bytes, unless the first batch alone exceeds it; then it alone.
        if first > FETCH_MAX_BYTES as usize {
            assert_eq!(total, first, "only the oversized first batch may be returned");
            assert!(frame <= first + FRAME_OVERHEAD, "response of {frame} bytes");
        } else {
            assert!(
                total <= FETCH_MAX_BYTES as usize,
                "{total} record bytes in a response to max_bytes={FETCH_MAX_BYTES}"
            );
            assert!(
                frame <= FETCH_MAX_BYTES as usize + FRAME_OVERHEAD,
                "response of {frame} bytes to max_bytes={FETCH_MAX_BYTES}"
            );
        }
    }
    // One 900 KiB batch per response: two never fit in 1,000,000 bytes.
    assert_eq!(responses, ends.iter().sum::<i64>());
}

#[test]
fn librdkafka_consumes_with_receive_message_max_bytes_at_its_minimum() {
    let loaded = load("fetch-limits-rdkafka");
    let mut config = kafka::consumer_config(&loaded.broker.bootstrap());
    config
        .set("fetch.max.bytes", FETCH_MAX_BYTES.to_string())
        .set("max.partition.fetch.bytes", PARTITION_MAX_BYTES.to_string())
        // librdkafka's floor for these settings: fetch.max.bytes + 512.
        .set(
            "receive.message.max.bytes",
            (FETCH_MAX_BYTES as usize + FRAME_OVERHEAD).to_string(),
        );
    let consumer: BaseConsumer = config.create().expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(loaded.topic, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&tpl).expect("assign");
    let n: usize = loaded.expected.iter().map(Vec::len).sum();
    let got = kafka::poll_n(&consumer, n, DEADLINE).or_panic("consume");
    let mut next = vec![0i64; PARTITIONS as usize];
    for r in &got {
        let p = r.partition as usize;
        assert_eq!(r.offset, next[p], "partition {p}: record out of order");
        assert!(
            r.payload.as_deref() == Some(loaded.expected[p][r.offset as usize].as_slice()),
            "partition {p} offset {}: payload differs",
            r.offset
        );
        next[p] += 1;
    }
    let ends: Vec<i64> = loaded.expected.iter().map(|e| e.len() as i64).collect();
    assert_eq!(next, ends);
    kafka::expect_no_more(&consumer, Duration::from_millis(500)).or_panic("no more records");
}

#[test]
fn kcat_consumes_with_the_same_fetch_limits() {
    if !kcat_available() {
        return;
    }
    let loaded = load("fetch-limits-kcat");
    let bootstrap = loaded.broker.bootstrap();
    let fetch_max = format!("fetch.max.bytes={FETCH_MAX_BYTES}");
    let partition_max = format!("max.partition.fetch.bytes={PARTITION_MAX_BYTES}");
    // Left alone, librdkafka keeps receive.message.max.bytes at 100 MB; at its floor it refuses
    // any response above the limits.
    let receive_max = format!(
        "receive.message.max.bytes={}",
        FETCH_MAX_BYTES as usize + FRAME_OVERHEAD
    );
    let mut cmd = kcat_command();
    cmd.args([
        "-C",
        "-b",
        &bootstrap,
        "-t",
        loaded.topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-X",
        &fetch_max,
        "-X",
        &partition_max,
        "-X",
        &receive_max,
        "-f",
        "%p %o %S\\n",
    ]);
    let out = run_with_deadline(cmd, None, DEADLINE).or_panic("kcat");
    assert!(
        out.status.success(),
        "kcat failed ({}):\n{}",
        out.status,
        out.stderr
    );
    let mut next = vec![0i64; PARTITIONS as usize];
    for line in out.stdout_text().lines() {
        let f: Vec<i64> = line
            .split(' ')
            .map(|x| x.parse().unwrap_or_else(|_| panic!("kcat line {line:?}")))
            .collect();
        let [p, offset, size] = f[..] else {
            panic!("kcat line {line:?}")
        };
        assert_eq!(offset, next[p as usize], "partition {p}: record out of order");
        assert_eq!(size, MESSAGE_BYTES as i64, "partition {p} offset {offset}");
        next[p as usize] += 1;
    }
    let ends: Vec<i64> = loaded.expected.iter().map(|e| e.len() as i64).collect();
    assert_eq!(next, ends, "kcat stderr:\n{}", out.stderr);
}
