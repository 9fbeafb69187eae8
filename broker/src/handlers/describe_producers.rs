//! DescribeProducers (v0): the active idempotent producers of partitions
//! this node owns, from each partition's producer state.
//!
//! Answered by the partition's owner only (NOT_LEADER_OR_FOLLOWER
//! elsewhere), as Kafka's leader answers it. A producer's last sequence and
//! timestamp are those of its last batch; no transactions yet, so the
//! coordinator epoch is -1 and no transaction is open.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::leader_epoch::open_stream;
use crate::error::storage_error;
use crate::producer::state::ProducerEntry;
use crate::producer::PartitionProducers;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 0);

/// A partition's producers, as (producer id, entry), sorted by id.
pub async fn partition_producers(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Result<Vec<(i64, ProducerEntry)>, ResponseError> {
    let (_, stream) = broker.resolve(topic, partition)?;
    let handle = open_stream(broker, stream, -1).await?;
    let state = handle.state().map_err(|e| storage_error(&e))?;
    let mut out = state
        .as_ref()
        .and_then(|s| s.as_any().downcast_ref::<PartitionProducers>())
        .map(|p| p.with_states(|st| st.iter().map(|(id, e)| (id, e.clone())).collect::<Vec<_>>()))
        .unwrap_or_default();
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
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
                            .map(|(id, e)| {
                                let last = e.last();
                                ProducerState::default()
                                    .with_producer_id(ProducerId(id))
                                    .with_producer_epoch(i32::from(e.epoch))
                                    .with_last_sequence(last.map_or(-1, |b| b.last_seq))
                                    .with_last_timestamp(last.map_or(-1, |b| b.max_timestamp))
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(-1)
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
