//! The broker's shared state, handed to every request handler.

use std::sync::Arc;

use distlog_metadata::{MetadataStore, StreamId, TopicMeta};
use distlog_storage::log::Namespace;
use kafka_protocol::error::ResponseError;

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::producer::failed::FailedBatches;
use crate::producer::ids::ProducerIdBlocks;

/// Everything a handler needs: the metadata replica, the namespace of log
/// streams, and the node's configuration.
pub struct Broker {
    /// Local replica of the metadata store.
    pub meta: Arc<MetadataStore>,
    /// This node's log streams.
    pub ns: Arc<Namespace>,
    /// Node configuration.
    pub config: Arc<BrokerConfig>,
    /// The consumer-group coordinator.
    pub groups: Arc<GroupCoordinator>,
    /// Producer ids for InitProducerId, from blocks of the metadata store.
    pub producer_ids: ProducerIdBlocks,
    /// Idempotent batches whose append failed retriably, so a batch
    /// pipelined behind one gets its error, not OUT_OF_ORDER_SEQUENCE_NUMBER.
    pub failed_batches: FailedBatches,
}

impl Broker {
    /// Resolve a topic name and partition to its stream, or the Kafka error
    /// a broker answers for an unknown topic or partition.
    pub fn resolve(&self, topic: &str, partition: i32) -> Result<(TopicMeta, StreamId), ResponseError> {
        self.meta.read(|s| {
            let t = s.topic(topic).ok_or(ResponseError::UnknownTopicOrPartition)?;
            if partition < 0 || partition as u32 >= t.partitions {
                return Err(ResponseError::UnknownTopicOrPartition);
            }
            Ok((t.clone(), t.stream(partition as u32)))
        })
    }
}
