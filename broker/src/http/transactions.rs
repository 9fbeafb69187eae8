//! The transactions admin API: `/admin/transactions` lists the open
//! transactions of the whole cluster (Ongoing, or decided and waiting for
//! markers) from the local replica of the transaction state, oldest first,
//! to find a transaction that holds back `read_committed` consumers.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use distlog_metadata::{TxnMeta, TxnState};
use serde::Serialize;
use serde_json::{json, Value};

use crate::Broker;

/// The transaction routes over `broker`.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/admin/transactions", get(list))
        .with_state(broker)
}

/// One partition of an open transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
}

/// An open transaction as `/admin/transactions` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenTxn {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its producer epoch.
    pub producer_epoch: i16,
    /// Kafka's name of its state.
    pub state: &'static str,
    /// The partitions it writes to.
    pub partitions: Vec<OpenPartition>,
    /// The groups whose offsets it commits.
    pub groups: Vec<String>,
    /// Its timeout (ms).
    pub timeout_ms: i32,
    /// Wall-clock ms when it started; -1 when unknown.
    pub start_ms: i64,
    /// How long it has been open (ms); 0 when the start is unknown.
    pub age_ms: i64,
    /// Partitions whose commit or abort marker is not written yet.
    pub pending_markers: usize,
}

/// Whether a transaction in `state` is open: running, or decided with
/// markers still to write.
fn is_open(state: TxnState) -> bool {
    matches!(
        state,
        TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
    )
}

/// The open transactions among `txns` at wall-clock `now_ms`, oldest
/// first (ties by transactional id).
pub fn open_transactions<'a>(
    txns: impl IntoIterator<Item = (&'a String, &'a TxnMeta)>,
    now_ms: u64,
) -> Vec<OpenTxn> {
    let mut out: Vec<OpenTxn> = txns
        .into_iter()
        .filter(|(_, t)| is_open(t.state))
        .map(|(id, t)| OpenTxn {
            transactional_id: id.clone(),
            producer_id: t.producer_id,
            producer_epoch: t.producer_epoch,
            state: t.state.kafka_name(),
            partitions: t
                .partitions
                .iter()
                .map(|p| OpenPartition {
                    topic: p.topic.clone(),
                    partition: p.partition(),
                })
                .collect(),
            groups: t.groups.clone(),
            timeout_ms: t.timeout_ms,
            start_ms: t.start_ms,
            age_ms: if t.start_ms >= 0 {
                (now_ms as i64).saturating_sub(t.start_ms).max(0)
            } else {
                0
            },
            pending_markers: t.pending_markers.len(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.age_ms
            .cmp(&a.age_ms)
            .then_with(|| a.transactional_id.cmp(&b.transactional_id))
    });
    out
}

async fn list(State(broker): State<Arc<Broker>>) -> Json<Value> {
    let now_ms = distlog_metadata::now_ms();
    let open = broker.meta.read(|s| open_transactions(&s.transactions, now_ms));
    Json(json!({ "transactions": open }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use distlog_metadata::{StreamId, TxnPartition};

    use super::*;

    fn txn(state: TxnState, start_ms: i64, pending: usize) -> TxnMeta {
        let p = TxnPartition {
            stream: StreamId {
                topic_id: uuid::Uuid::from_u128(1),
                partition: 2,
            },
            topic: "t".into(),
        };
        TxnMeta {
            producer_id: 3,
            producer_epoch: 1,
            timeout_ms: 60_000,
            state,
            partitions: vec![p.clone()],
            groups: vec!["g".into()],
            pending_markers: vec![p; pending],
            start_ms,
            last_update_ms: 0,
            prepare_ms: 0,
        }
    }

    #[test]
    fn only_open_transactions_oldest_first() {
        let txns: BTreeMap<String, TxnMeta> = [
            ("young".to_string(), txn(TxnState::Ongoing, 900, 0)),
            ("old".to_string(), txn(TxnState::PrepareAbort, 100, 1)),
            ("mid".to_string(), txn(TxnState::PrepareCommit, 500, 0)),
            ("tie".to_string(), txn(TxnState::Ongoing, 500, 0)),
            ("done".to_string(), txn(TxnState::CompleteCommit, -1, 0)),
            ("idle".to_string(), txn(TxnState::Empty, -1, 0)),
            ("aborted".to_string(), txn(TxnState::CompleteAbort, -1, 0)),
        ]
        .into();
        let open = open_transactions(&txns, 1_000);
        assert_eq!(
            open.iter()
                .map(|t| (t.transactional_id.as_str(), t.age_ms))
                .collect::<Vec<_>>(),
            vec![("old", 900), ("mid", 500), ("tie", 500), ("young", 100)]
        );
        let old = &open[0];
        assert_eq!(old.state, "PrepareAbort");
        assert_eq!(old.pending_markers, 1);
        assert_eq!(
            old.partitions,
            vec![OpenPartition {
                topic: "t".into(),
                partition: 2
            }]
        );
        assert_eq!(serde_json::to_value(old).expect("JSON")["groups"], json!(["g"]));
        assert!(open_transactions(&BTreeMap::new(), 1).is_empty());
    }
}
