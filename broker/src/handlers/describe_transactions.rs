//! DescribeTransactions (v0, KIP-664): per transactional id, its state,
//! producer id and epoch, timeout, the start of the open transaction and
//! the partitions it holds, from the local replica of the transaction
//! state.
//!
//! As in Kafka, only the transactional id's coordinator answers (the hash
//! placement FindCoordinator answers for transactions); every other broker
//! answers NOT_COORDINATOR, so an admin client that found the coordinator
//! gets the answer and one that did not is told to look it up. Groups whose
//! offsets the transaction commits are not partitions here (Kafka lists the
//! `__consumer_offsets` partition of each; distlog has no such topic).

use std::collections::BTreeMap;

use distlog_metadata::{MetaState, NodeId, TxnMeta};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::group::placement::LiveBrokers;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 0);

/// The answer for one transactional id: its description, or the error.
pub fn describe_one(
    state: &MetaState,
    node_id: NodeId,
    id: &str,
    now_ms: u64,
) -> Result<TxnMeta, ResponseError> {
    if id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    if !LiveBrokers::read(state, now_ms, node_id).is_local(id) {
        return Err(ResponseError::NotCoordinator);
    }
    state
        .transactions
        .get(id)
        .cloned()
        .ok_or(ResponseError::TransactionalIdNotFound)
}

/// The partitions of a transaction grouped by topic name, topics and
/// partitions ascending.
pub fn topics_of(txn: &TxnMeta) -> Vec<(String, Vec<i32>)> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in &txn.partitions {
        by_topic
            .entry(p.topic.as_str())
            .or_default()
            .push(p.partition() as i32);
    }
    by_topic
        .into_iter()
        .map(|(t, mut parts)| {
            parts.sort_unstable();
            parts.dedup();
            (t.to_string(), parts)
        })
        .collect()
}

/// Handle a DescribeTransactions request.
pub async fn handle(
    broker: &Broker,
    _version: i16,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let now_ms = distlog_metadata::now_ms();
    let node_id = broker.config.node_id;
    let answers: Vec<(TransactionalId, Result<TxnMeta, ResponseError>)> = broker.meta.read(|s| {
        req.transactional_ids
            .iter()
            .map(|id| (id.clone(), describe_one(s, node_id, id.0.as_str(), now_ms)))
            .collect()
    });
    let states = answers
        .into_iter()
        .map(|(id, answer)| {
            let out = TransactionState::default().with_transactional_id(id);
            match answer {
                Err(e) => out.with_error_code(e.code()),
                Ok(txn) => out
                    .with_transaction_state(StrBytes::from_static_str(txn.state.kafka_name()))
                    .with_transaction_timeout_ms(txn.timeout_ms)
                    .with_transaction_start_time_ms(txn.start_ms)
                    .with_producer_id(ProducerId(txn.producer_id))
                    .with_producer_epoch(txn.producer_epoch)
                    .with_topics(
                        topics_of(&txn)
                            .into_iter()
                            .map(|(t, parts)| {
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(t)))
                                    .with_partitions(parts)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlog_metadata::{StreamId, TxnPartition, TxnState};

    fn part(topic: &str, topic_id: u128, partition: u32) -> TxnPartition {
        TxnPartition {
            stream: StreamId {
                topic_id: uuid::Uuid::from_u128(topic_id),
                partition,
            },
            topic: topic.into(),
        }
    }

    fn txn(partitions: Vec<TxnPartition>) -> TxnMeta {
        TxnMeta {
            producer_id: 4,
            producer_epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions,
            groups: vec!["g".into()],
            pending_markers: Vec::new(),
            start_ms: 123,
            last_update_ms: 0,
            prepare_ms: 0,
        }
    }

    #[test]
    fn partitions_are_grouped_by_topic_in_order() {
        let t = txn(vec![
            part("b", 2, 1),
            part("a", 1, 3),
            part("b", 2, 0),
            part("a", 1, 0),
        ]);
        assert_eq!(
            topics_of(&t),
            vec![("a".to_string(), vec![0, 3]), ("b".to_string(), vec![0, 1])]
        );
        assert!(topics_of(&txn(vec![])).is_empty());
    }

    #[test]
    fn unknown_ids_empty_ids_and_other_coordinators_are_refused() {
        let mut state = MetaState::default();
        state.transactions.insert("t1".into(), txn(vec![]));
        let me = NodeId::new(1);
        assert_eq!(describe_one(&state, me, "t1", 10).map(|t| t.producer_id), Ok(4));
        assert_eq!(
            describe_one(&state, me, "nope", 10).err(),
            Some(ResponseError::TransactionalIdNotFound)
        );
        assert_eq!(
            describe_one(&state, me, "", 10).err(),
            Some(ResponseError::InvalidRequest)
        );
        // Another live broker coordinates every id: this one answers
        // NOT_COORDINATOR (its own lease has lapsed, so it is not placed).
        state.brokers.insert(
            NodeId::new(2),
            distlog_metadata::BrokerInfo {
                id: NodeId::new(2),
                kafka_host: "h".into(),
                kafka_port: 9092,
                listeners: Default::default(),
                rack: None,
                bookie_addr: None,
                lease_expires_ms: 1_000,
            },
        );
        assert_eq!(
            describe_one(&state, me, "t1", 10).err(),
            Some(ResponseError::NotCoordinator)
        );
        assert_eq!(
            describe_one(&state, me, "nope", 10).err(),
            Some(ResponseError::NotCoordinator)
        );
    }
}
