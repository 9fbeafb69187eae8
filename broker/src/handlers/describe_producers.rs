//! DescribeProducers (v0): the active idempotent producers of partitions
//! this node owns, from each partition's producer state.
//!
//! Answered by the partition's owner only (NOT_LEADER_OR_FOLLOWER
//! elsewhere), as Kafka's leader answers it. A producer's last sequence and
//! timestamp are those of its last batch; `current_txn_start_offset` is
//! the first offset of its transaction open in the partition (-1: none);
//! the coordinator epoch is not kept (-1).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::leader_epoch::open_stream;
use crate::error::storage_error;
use crate::producer::state::ProducerEntry;
use crate::producer::with_partition;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 0);

/// A partition's producers, sorted by id.
pub async fn partition_producers(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Result<Vec<PartitionProducer>, ResponseError> {
    let (_, stream) = broker.resolve(topic, partition)?;
    let handle = open_stream(broker, stream, -1).await?;
    handle.state().map_err(|e| storage_error(&e))?;
    let mut out = with_partition(&handle, |p| {
        let entries = p.with_states(|st| st.iter().map(|(id, e)| (id, e.clone())).collect::<Vec<_>>());
        entries
            .into_iter()
            .map(|(producer_id, entry)| PartitionProducer {
                producer_id,
                entry,
                txn_start_offset: p.open_txn_start(producer_id),
            })
            .collect::<Vec<_>>()
    })
    .unwrap_or_default();
    out.sort_by_key(|p| p.producer_id);
    Ok(out)
}

/// One producer as a partition knows it.
#[derive(Debug, Clone)]
pub struct PartitionProducer {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch and last batches.
    pub entry: ProducerEntry,
    /// The first offset of its transaction open in the partition, if any.
    pub txn_start_offset: Option<u64>,
}

/// Handle a DescribeProducers request.
pub async fn handle(
    broker: &Broker,
    _version: i16,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for p in t.partition_indexes {
            let resp = match partition_producers(broker, &t.name, p).await {
                Ok(producers) => PartitionResponse::default()
                    .with_partition_index(p)
                    .with_active_producers(
                        producers
                            .into_iter()
                            .map(|pp| {
                                let e = &pp.entry;
                                let last = e.last();
                                ProducerState::default()
                                    .with_producer_id(ProducerId(pp.producer_id))
                                    .with_producer_epoch(i32::from(e.epoch))
                                    .with_last_sequence(last.map_or(-1, |b| b.last_seq))
                                    .with_last_timestamp(last.map_or(-1, |b| b.max_timestamp))
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(
                                        pp.txn_start_offset.map_or(-1, |o| o as i64),
                                    )
                            })
                            .collect(),
                    ),
                Err(e) => PartitionResponse::default()
                    .with_partition_index(p)
                    .with_error_code(e.code()),
            };
            partitions.push(resp);
        }
        topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
