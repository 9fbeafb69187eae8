//! DeleteRecords (v0–2): move partitions' log start offsets forward, as
//! Kafka's `kafka-delete-records.sh` and the admin clients'
//! `delete_records` do.
//!
//! Served by each partition's owner (Kafka's leader): the stream is
//! truncated at the requested offset ([`StreamHandle::truncate`]): metadata
//! first, sealed segments wholly below it dropped and their ledgers
//! deleted; the rest of a segment the offset falls inside stays stored but
//! is hidden from readers (a fetch below it is OFFSET_OUT_OF_RANGE and
//! ListOffsets earliest answers it). The answer is the new low watermark.
//! Offset -1 means the high watermark; any other negative offset, or one
//! above the high watermark, is OFFSET_OUT_OF_RANGE, as in Kafka.

use distlog_storage::log::StreamHandle;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::info;

use super::leader_epoch::open_stream;
use crate::error::storage_error;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 2);

/// The requested offset that stands for the high watermark.
const HIGH_WATERMARK: i64 = -1;

/// Handle a DeleteRecords request: each partition is truncated by its
/// owner, concurrently; each answers its new low watermark or its error.
pub async fn handle(broker: &Broker, _version: i16, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let partitions = join_all(topic.partitions.iter().map(|p| async {
            let result = match broker.resolve(&topic.name, p.partition_index) {
                Ok((_, stream)) => match open_stream(broker, stream, -1).await {
                    Ok(handle) => truncate(&handle, p.offset).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            let base = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            match result {
                Ok(low) => {
                    info!(topic = %topic.name.as_str(), partition = p.partition_index, low_watermark = low,
                          "records deleted: log start offset moved");
                    base.with_low_watermark(low)
                }
                Err(e) => base.with_low_watermark(-1).with_error_code(e.code()),
            }
        }))
        .await;
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Truncate one partition at `offset` (-1: the high watermark); the new low
/// watermark.
async fn truncate(stream: &StreamHandle, offset: i64) -> Result<i64, ResponseError> {
    let target = match offset {
        HIGH_WATERMARK => u64::MAX,
        o if o < 0 => return Err(ResponseError::OffsetOutOfRange),
        o => o as u64,
    };
    let low = stream.truncate(target).await.map_err(|e| storage_error(&e))?;
    Ok(i64::try_from(low).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    #[test]
    fn responses_encode_at_every_supported_version() {
        let resp = DeleteRecordsResponse::default().with_topics(vec![DeleteRecordsTopicResult::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(0)
                    .with_low_watermark(42),
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(1)
                    .with_low_watermark(-1)
                    .with_error_code(ResponseError::OffsetOutOfRange.code()),
            ])]);
        for v in VERSIONS.0..=VERSIONS.1 {
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, v).unwrap();
            assert!(!buf.is_empty(), "v{v}");
        }
    }
}
