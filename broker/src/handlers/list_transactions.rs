//! ListTransactions (v0–1, KIP-664): the transactional ids this broker
//! coordinates, with their producer id and state, filtered by state names,
//! producer ids and (v1, KIP-994) by how long the open transaction has run.
//!
//! Every broker holds the whole transaction state (it is replicated), but
//! each answers only for the transactional ids it coordinates — the same
//! hash placement FindCoordinator answers for transactions — as a Kafka
//! broker answers for the `__transaction_state` partitions it leads. Admin
//! clients (`kafka-transactions.sh list`, `Admin.listTransactions`) ask
//! every broker and concatenate the answers, so each transaction appears
//! exactly once.

use distlog_metadata::{MetaState, NodeId, TxnMeta, TxnState};
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::group::placement::LiveBrokers;
use crate::Broker;

/// Versions implemented (advertised in ApiVersions). v2 (a transactional
/// id pattern) is not served.
pub const VERSIONS: (i16, i16) = (0, 1);

/// Every state distlog keeps, for parsing filters.
const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

/// Kafka state names distlog never reaches (it fences by bumping the
/// epoch in the same step as the abort, and forgets no transactional id):
/// a filter naming them is known, and matches nothing.
const KNOWN_UNUSED_STATES: [&str; 2] = ["PrepareEpochFence", "Dead"];

/// The filters of one ListTransactions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// `None`: any state; otherwise only these (possibly none, when every
    /// named state is unknown or unused).
    pub states: Option<Vec<TxnState>>,
    /// Only these producer ids; empty for any.
    pub producer_ids: Vec<i64>,
    /// Only transactions open for longer than this many ms; negative for
    /// any.
    pub min_duration_ms: i64,
}

impl ListFilter {
    /// The filter of a request, and the state names it gave that are not
    /// Kafka transaction states (answered as `unknown_state_filters`).
    pub fn parse(
        state_names: &[&str],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> (ListFilter, Vec<String>) {
        let mut unknown = Vec::new();
        let states = (!state_names.is_empty()).then(|| {
            let mut states = Vec::new();
            for name in state_names {
                match STATES.iter().find(|s| s.kafka_name() == *name) {
                    Some(s) => states.push(*s),
                    None if KNOWN_UNUSED_STATES.contains(name) => {}
                    None => unknown.push(name.to_string()),
                }
            }
            states
        });
        let filter = ListFilter {
            states,
            producer_ids: producer_ids.to_vec(),
            min_duration_ms,
        };
        (filter, unknown)
    }

    /// Whether `txn` passes the filter at wall-clock `now_ms`. The
    /// duration filter keeps only transactions that are open (have a start
    /// time) and have run for longer than the duration.
    pub fn matches(&self, txn: &TxnMeta, now_ms: u64) -> bool {
        if let Some(states) = &self.states {
            if !states.contains(&txn.state) {
                return false;
            }
        }
        if !self.producer_ids.is_empty() && !self.producer_ids.contains(&txn.producer_id) {
            return false;
        }
        if self.min_duration_ms >= 0 {
            if txn.start_ms < 0 {
                return false;
            }
            if (now_ms as i64).saturating_sub(txn.start_ms) <= self.min_duration_ms {
                return false;
            }
        }
        true
    }
}

/// One listed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its state.
    pub state: TxnState,
}

/// The transactions of `state` that broker `node_id` coordinates and that
/// pass `filter`, sorted by transactional id.
pub fn list(state: &MetaState, node_id: NodeId, filter: &ListFilter, now_ms: u64) -> Vec<Listed> {
    let live = LiveBrokers::read(state, now_ms, node_id);
    state
        .transactions
        .iter()
        .filter(|(id, txn)| live.is_local(id) && filter.matches(txn, now_ms))
        .map(|(id, txn)| Listed {
            transactional_id: id.clone(),
            producer_id: txn.producer_id,
            state: txn.state,
        })
        .collect()
}

/// Handle a ListTransactions request from the local metadata replica.
pub async fn handle(broker: &Broker, version: i16, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let names: Vec<&str> = req.state_filters.iter().map(|s| s.as_str()).collect();
    let producer_ids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 { req.duration_filter } else { -1 };
    let (filter, unknown) = ListFilter::parse(&names, &producer_ids, duration);
    let now_ms = distlog_metadata::now_ms();
    let listed = broker
        .meta
        .read(|s| list(s, broker.config.node_id, &filter, now_ms));
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(StrBytes::from_string).collect())
        .with_transaction_states(
            listed
                .into_iter()
                .map(|t| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                        .with_producer_id(ProducerId(t.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(t.state.kafka_name()))
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, state: TxnState, start_ms: i64) -> TxnMeta {
        TxnMeta {
            producer_id,
            producer_epoch: 0,
            timeout_ms: 60_000,
            state,
            partitions: Vec::new(),
            groups: Vec::new(),
            pending_markers: Vec::new(),
            start_ms,
            last_update_ms: 0,
            prepare_ms: 0,
        }
    }

    #[test]
    fn state_filters_parse_kafka_names_and_report_unknown_ones() {
        let (f, unknown) = ListFilter::parse(&[], &[], -1);
        assert_eq!(f.states, None);
        assert!(unknown.is_empty());
        let (f, unknown) = ListFilter::parse(&["Ongoing", "Bogus", "Dead", "CompleteAbort"], &[], -1);
        assert_eq!(f.states, Some(vec![TxnState::Ongoing, TxnState::CompleteAbort]));
        assert_eq!(unknown, vec!["Bogus".to_string()]);
        // Only unknown names: nothing matches (Kafka lists nothing then).
        let (f, unknown) = ListFilter::parse(&["ongoing"], &[], -1);
        assert_eq!(f.states, Some(vec![]));
        assert_eq!(unknown, vec!["ongoing".to_string()]);
        assert!(!f.matches(&txn(1, TxnState::Ongoing, 5), 10));
    }

    #[test]
    fn filters_by_state_producer_id_and_duration() {
        let ongoing = txn(7, TxnState::Ongoing, 1_000);
        let empty = txn(8, TxnState::Empty, -1);
        let (any, _) = ListFilter::parse(&[], &[], -1);
        assert!(any.matches(&ongoing, 2_000) && any.matches(&empty, 2_000));

        let (by_state, _) = ListFilter::parse(&["Ongoing"], &[], -1);
        assert!(by_state.matches(&ongoing, 2_000));
        assert!(!by_state.matches(&empty, 2_000));

        let (by_pid, _) = ListFilter::parse(&[], &[8, 9], -1);
        assert!(!by_pid.matches(&ongoing, 2_000));
        assert!(by_pid.matches(&empty, 2_000));

        // Running for longer than 500 ms: at 1_500 it has run exactly 500.
        let (by_age, _) = ListFilter::parse(&[], &[], 500);
        assert!(!by_age.matches(&ongoing, 1_500));
        assert!(by_age.matches(&ongoing, 1_501));
        // No open transaction: not running at all.
        assert!(!by_age.matches(&empty, 1_000_000));
        let (zero, _) = ListFilter::parse(&[], &[], 0);
        assert!(zero.matches(&ongoing, 1_001));
    }

    #[test]
    fn a_broker_lists_only_the_transactions_it_coordinates() {
        let mut state = MetaState::default();
        for (i, id) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            state
                .transactions
                .insert(id.to_string(), txn(i as i64, TxnState::Ongoing, 1));
        }
        let (any, _) = ListFilter::parse(&[], &[], -1);
        // No broker registered: the local one coordinates everything.
        let all = list(&state, NodeId::new(1), &any, 10);
        assert_eq!(
            all.iter()
                .map(|t| t.transactional_id.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "b", "c", "d", "e", "f"]
        );
        assert_eq!(all[2].producer_id, 2);
        assert_eq!(all[2].state, TxnState::Ongoing);

        // Two live brokers: each transaction is listed by exactly one, the
        // one placement names.
        for id in [1u64, 2] {
            state.brokers.insert(
                NodeId::new(id),
                distlog_metadata::BrokerInfo {
                    id: NodeId::new(id),
                    kafka_host: "h".into(),
                    kafka_port: 9092,
                    listeners: Default::default(),
                    rack: None,
                    bookie_addr: None,
                    lease_expires_ms: 1_000_000,
                },
            );
        }
        let one = list(&state, NodeId::new(1), &any, 10);
        let two = list(&state, NodeId::new(2), &any, 10);
        assert_eq!(one.len() + two.len(), 6);
        let live = LiveBrokers::read(&state, 10, NodeId::new(1));
        for t in &one {
            assert_eq!(live.coordinator(&t.transactional_id), NodeId::new(1));
        }
        for t in &two {
            assert_eq!(live.coordinator(&t.transactional_id), NodeId::new(2));
        }
    }
}
