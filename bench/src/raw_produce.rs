//! Hand-built idempotent produce traffic for the benchmarks: InitProducerId and Produce requests
//! (record batches with a producer id, epoch and sequences) pipelined over raw connections, for
//! scenarios that need more producers than librdkafka clients are practical for (scenario 9).

use std::collections::VecDeque;
use std::thread;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    produce_request, ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use distlog_compat_tests::raw;

/// Produce version sent (what librdkafka 2.x sends).
pub const PRODUCE_VERSION: i16 = 9;
/// InitProducerId version sent.
pub const INIT_PID_VERSION: i16 = 4;

/// Sequence number of the first record of batch `round`.
pub fn seq(round: u32, records_per_batch: u32) -> i32 {
    i32::try_from(u64::from(round) * u64::from(records_per_batch)).unwrap_or(i32::MAX)
}

/// Runs `work` on `connections` threads, thread `c` getting producers `c, c + connections, …`,
/// and returns everything they return, sorted.
pub fn spread<T: Send + Ord>(
    producers: usize,
    connections: usize,
    work: impl Fn(Vec<usize>) -> anyhow::Result<Vec<T>> + Sync,
) -> anyhow::Result<Vec<T>> {
    let results: Vec<anyhow::Result<Vec<T>>> = thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                let mine: Vec<usize> = (c..producers).step_by(connections).collect();
                let work = &work;
                s.spawn(move || work(mine))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a connection thread panicked")))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort();
    Ok(all)
}

/// Sends every request of `reqs` on `conn` with up to `window` unanswered, handing each response
/// to `on_response` with the request's tag, in request order.
pub fn pipeline_calls<Req: Encodable, Resp: Decodable>(
    conn: &mut raw::Conn,
    key: ApiKey,
    version: i16,
    reqs: impl Iterator<Item = anyhow::Result<(usize, Req)>>,
    window: usize,
    mut on_response: impl FnMut(usize, Resp) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut waiting: VecDeque<(i32, usize)> = VecDeque::with_capacity(window);
    for item in reqs {
        let (tag, req) = item?;
        if waiting.len() >= window {
            if let Some((c, t)) = waiting.pop_front() {
                on_response(t, conn.receive(key, version, c)?)?;
            }
        }
        waiting.push_back((conn.send(key, version, &req)?, tag));
    }
    while let Some((c, t)) = waiting.pop_front() {
        on_response(t, conn.receive(key, version, c)?)?;
    }
    Ok(())
}

/// InitProducerId without a transactional id (an idempotent producer's first call).
pub fn init_pid_request() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// A Produce request (acks=all) of one batch of `records` records to partition 0 of `topic`: producer
/// `producer_id`, epoch 0, sequences from `first_seq`. The same arguments give the same bytes.
pub fn produce(
    topic: &str,
    producer_id: i64,
    first_seq: i32,
    records: u32,
    value: &Bytes,
    timestamp: i64,
) -> anyhow::Result<ProduceRequest> {
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: first_seq.wrapping_add(i as i32),
            timestamp,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, &recs, &options).context("encode a record batch")?;
    Ok(ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.freeze()))])]))
}

/// The (error code, base offset) of the one partition of a produce response.
pub fn produce_result(resp: &ProduceResponse) -> anyhow::Result<(i16, i64)> {
    let p = resp
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("a produce response without a partition")?;
    Ok((p.error_code, p.base_offset))
}
