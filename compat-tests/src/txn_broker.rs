//! Shared helpers of the transaction tests against one broker (`transactions`,
//! `transactions_recovery`): an initialised transactional producer, a transaction written to one
//! partition with the offsets its records got, and a partition read to its end under an
//! isolation level as (offset, value) pairs. They panic on failure, naming what failed.

use std::time::Duration;

use crate::txn::{
    offsets_and_values, read_to_end, transactional_config, Isolation, TxnFailure, TxnProducer,
    TXN_CALL_TIMEOUT,
};
use crate::OrPanic;

/// How long a test reads a partition to its end ([`read`]).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A transactional producer with id `id` and a 60 s transaction timeout, initialised.
pub fn init_producer(bootstrap: &str, id: &str) -> TxnProducer {
    let producer =
        TxnProducer::create(&transactional_config(bootstrap, id, 60_000)).or_panic("create producer");
    producer
        .init(TXN_CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("init_transactions({id}): {e}"));
    producer
}

/// Begins a transaction, writes `values` to `partition` of `topic` (key `k{partition}`), and
/// waits for their delivery reports; returns the offsets they were written at, in order.
pub fn write_in_txn(producer: &mut TxnProducer, topic: &str, partition: i32, values: &[String]) -> Vec<i64> {
    let key = format!("k{partition}");
    let ids: Vec<usize> = values
        .iter()
        .map(|v| {
            producer
                .send(topic, partition, Some(key.as_bytes()), v.as_bytes())
                .or_panic("send")
        })
        .collect();
    producer.flush(Duration::from_secs(30)).or_panic("flush");
    let deliveries = producer.take_deliveries();
    ids.iter()
        .zip(values)
        .map(|(id, value)| {
            let d = deliveries
                .iter()
                .find(|d| d.id == *id)
                .unwrap_or_else(|| panic!("no delivery report for message {id}: {deliveries:?}"));
            assert_eq!(d.partition, partition, "{d:?}");
            *d.result
                .as_ref()
                .unwrap_or_else(|e| panic!("{value} not delivered: {e:?}"))
        })
        .collect()
}

/// The read_committed (or read_uncommitted) contents of `partition`: (offset, value).
pub fn read(bootstrap: &str, topic: &str, partition: i32, isolation: Isolation) -> Vec<(i64, String)> {
    let records = read_to_end(bootstrap, topic, &[partition], isolation, READ_TIMEOUT)
        .or_panic("read to end")
        .remove(&partition)
        .unwrap_or_default();
    offsets_and_values(&records)
}

/// `n` values `{prefix}-{i}`, i counted from 0.
pub fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// `values` paired with consecutive offsets from `first`, as [`read`] returns them.
pub fn at(first: i64, values: &[String]) -> Vec<(i64, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (first + i as i64, v.clone()))
        .collect()
}

/// Panics with the classified transactional error.
pub trait OrPanicTxn<T> {
    /// Returns the value or panics with `what` and the [`TxnFailure`].
    fn or_panic_txn(self, what: &str) -> T;
}

impl<T> OrPanicTxn<T> for Result<T, TxnFailure> {
    fn or_panic_txn(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}
