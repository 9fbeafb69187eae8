//! KIP-890 part 1: before a transactional batch may open a transaction in
//! a partition, the owner confirms with the transaction state that the
//! partition was added to the producer's open transaction. Without this a
//! batch that arrives after its transaction ended (a late retry, a client
//! bug) would open a transaction no coordinator knows of, holding the last
//! stable offset forever ("hanging transaction") or slipping into the next
//! transaction.
//!
//! The order makes it safe against a marker racing the produce:
//! 1. the partition's verification guard is set for (producer, epoch);
//! 2. the transaction state is read after a metadata barrier (so every
//!    AddPartitionsToTxn and EndTxn acknowledged before is seen; on the
//!    Raft leader, whose replica has applied every acknowledged change, a
//!    positive local answer is taken without one);
//! 3. the batch is appended; the writer admits it as a transaction's first
//!    batch only while the guard is still set. A marker for the producer
//!    admitted between 1 and 3 clears the guard, so the batch is refused.
//!
//! A partition where the producer's transaction is already open needs no
//! verification (the common case: every batch after the first).

use distlog_metadata::{StreamId, TxnState};
use kafka_protocol::error::ResponseError;

use super::with_partition;
use crate::error::{metadata_error, storage_error};
use crate::Broker;

/// Verify that `stream` is part of the open transaction of
/// `transactional_id` for producer `producer_id` at `epoch`, setting the
/// partition's guard first (see module docs). `Ok` also when the producer
/// already has a transaction open in the partition.
pub async fn verify_partition(
    broker: &Broker,
    transactional_id: Option<&str>,
    stream: StreamId,
    producer_id: i64,
    epoch: i16,
) -> Result<(), ResponseError> {
    let handle = broker
        .ns
        .open_stream(stream)
        .await
        .map_err(|e| storage_error(&e))?;
    let open =
        with_partition(&handle, |p| p.has_open_txn(producer_id)).ok_or(ResponseError::InvalidTxnState)?;
    if open {
        return Ok(());
    }
    let Some(transactional_id) = transactional_id else {
        return Err(ResponseError::InvalidTxnState);
    };
    with_partition(&handle, |p| p.add_txn_guard(producer_id, epoch));
    // On the Raft leader every acknowledged transaction change is already
    // applied locally (a write is answered after the leader applies it),
    // so a positive answer needs no barrier; elsewhere, or when the local
    // answer is negative, a barrier makes the read see every change
    // acknowledged before it, so a client that just added the partition
    // through another broker is not refused.
    if broker.meta.is_leader() && check(broker, transactional_id, stream, producer_id, epoch).is_ok() {
        return Ok(());
    }
    broker.meta.barrier().await.map_err(|e| metadata_error(&e))?;
    check(broker, transactional_id, stream, producer_id, epoch)
}

/// Whether the local replica shows `stream` in the open transaction of
/// `transactional_id` at `producer_id`/`epoch`, or the Kafka error why not.
fn check(
    broker: &Broker,
    transactional_id: &str,
    stream: StreamId,
    producer_id: i64,
    epoch: i16,
) -> Result<(), ResponseError> {
    broker.meta.read(|s| {
        let Some(txn) = s.transactions.get(transactional_id) else {
            return Err(ResponseError::InvalidTxnState);
        };
        if txn.producer_id != producer_id {
            return Err(ResponseError::InvalidTxnState);
        }
        if epoch < txn.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        let added = txn.state == TxnState::Ongoing
            && txn.producer_epoch == epoch
            && txn.partitions.iter().any(|p| p.stream == stream);
        if added {
            Ok(())
        } else {
            Err(ResponseError::InvalidTxnState)
        }
    })
}
