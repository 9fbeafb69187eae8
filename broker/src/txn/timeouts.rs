//! Aborting transactions that outlived their timeout.
//!
//! A producer that opens a transaction and goes away would otherwise hold
//! back every read_committed consumer of its partitions for ever. Kafka's
//! coordinator looks for such transactions every
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms` and aborts
//! them with a bumped epoch, fencing the producer. Here the Raft leader
//! does it (one sweeper acting at a time, over state every node shares):
//! each round it writes a [`TxnOp::Timeout`] for every transaction it saw
//! timed out, naming the producer id and epoch it saw, so a transaction
//! that moved on meanwhile (ended, re-initialised) is left alone by the
//! state machine's compare-and-set.
//!
//! The same round forgets transactional ids idle for
//! `transactional.id.expiration.ms` without a transaction open
//! ([`TxnOp::Expire`]), as Kafka's coordinator does, so the state does not
//! grow with every transactional id ever used.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::{now_ms, MetadataStore, TxnMeta, TxnOp, TxnState};
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// One transaction to abort, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Its transactional id.
    pub transactional_id: String,
    /// The producer id it had.
    pub producer_id: i64,
    /// The producer epoch it had.
    pub producer_epoch: i16,
}

/// What one round does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Open transactions past their timeout: abort them.
    pub timed_out: Vec<Expired>,
    /// Transactional ids idle past `transactional.id.expiration.ms`: forget them.
    pub idle: Vec<Expired>,
    /// How many transactions are open or being completed (Ongoing,
    /// PrepareCommit, PrepareAbort).
    pub open: usize,
}

/// The round at `now_ms` with ids expiring after `id_expiration_ms` idle.
pub fn plan(transactions: &BTreeMap<String, TxnMeta>, now_ms: u64, id_expiration_ms: u64) -> Plan {
    let observed = |(id, t): (&String, &TxnMeta)| Expired {
        transactional_id: id.clone(),
        producer_id: t.producer_id,
        producer_epoch: t.producer_epoch,
    };
    Plan {
        timed_out: transactions
            .iter()
            .filter(|(_, t)| t.timed_out(now_ms))
            .map(observed)
            .collect(),
        idle: transactions
            .iter()
            .filter(|(_, t)| t.expired(now_ms, id_expiration_ms))
            .map(observed)
            .collect(),
        open: transactions
            .values()
            .filter(|t| t.state == TxnState::Ongoing || t.state.is_prepared())
            .count(),
    }
}

/// Every `interval`, while this node is the Raft leader, abort the
/// transactions that outlived their timeout; stops when `shutdown` flips.
/// Runs on every node; only the leader acts, so a failover moves the work.
pub async fn run(
    meta: Arc<MetadataStore>,
    interval: Duration,
    id_expiration_ms: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !meta.is_leader() {
            crate::metrics::TRANSACTIONS_OPEN.set(0);
            continue;
        }
        sweep(&meta, id_expiration_ms)
            .instrument(tracing::debug_span!("transaction_timeouts"))
            .await;
    }
}

/// One round: abort what timed out, then publish the open count.
async fn sweep(meta: &MetadataStore, id_expiration_ms: u64) {
    let now = now_ms();
    let plan = meta.read(|s| plan(&s.transactions, now, id_expiration_ms));
    crate::metrics::TRANSACTIONS_OPEN.set(plan.open as i64);
    for e in plan.idle {
        let op = TxnOp::Expire {
            transactional_id: e.transactional_id.clone(),
            producer_id: e.producer_id,
            producer_epoch: e.producer_epoch,
            expiration_ms: id_expiration_ms,
            now_ms: now,
        };
        match meta.txn(op).await {
            Ok(_) => {
                info!(transactional_id = %e.transactional_id, "forgot a transactional id idle past transactional.id.expiration.ms");
            }
            Err(err) => {
                warn!(transactional_id = %e.transactional_id, error = %err, "could not expire an idle transactional id; retrying next round");
            }
        }
    }
    for e in plan.timed_out {
        let op = TxnOp::Timeout {
            transactional_id: e.transactional_id.clone(),
            producer_id: e.producer_id,
            producer_epoch: e.producer_epoch,
            now_ms: now,
        };
        if let Err(err) = meta.txn(op).await {
            warn!(
                transactional_id = %e.transactional_id,
                error = %err,
                "could not abort a timed-out transaction; retrying next round"
            );
            continue;
        }
        // The write is ignored when the transaction moved on; count only
        // the ones it aborted (the epoch was bumped to fence the producer).
        let aborted = meta.read(|s| {
            s.transactions.get(&e.transactional_id).is_some_and(|t| {
                (t.producer_id, t.producer_epoch) != (e.producer_id, e.producer_epoch)
                    && matches!(t.state, TxnState::PrepareAbort | TxnState::CompleteAbort)
            })
        });
        if aborted {
            crate::metrics::TRANSACTIONS.with_label_values(&["timeout"]).inc();
            info!(
                transactional_id = %e.transactional_id,
                producer_id = e.producer_id,
                producer_epoch = e.producer_epoch,
                "aborted a transaction that outlived its timeout; its producer is fenced"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(state: TxnState, start_ms: i64, timeout_ms: i32) -> TxnMeta {
        TxnMeta {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms,
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
    fn plan_names_timed_out_transactions_and_counts_open_ones() {
        let mut all = BTreeMap::new();
        all.insert("old".to_string(), txn(TxnState::Ongoing, 1_000, 500));
        all.insert("young".to_string(), txn(TxnState::Ongoing, 1_900, 500));
        all.insert("closing".to_string(), txn(TxnState::PrepareCommit, 0, 500));
        all.insert("aborting".to_string(), txn(TxnState::PrepareAbort, 0, 500));
        all.insert("idle".to_string(), txn(TxnState::Empty, -1, 500));
        all.insert("done".to_string(), txn(TxnState::CompleteCommit, -1, 500));
        let Plan {
            timed_out,
            idle,
            open,
        } = plan(&all, 2_000, 10_000);
        assert!(idle.is_empty());
        assert_eq!(
            timed_out,
            vec![Expired {
                transactional_id: "old".into(),
                producer_id: 7,
                producer_epoch: 3,
            }]
        );
        assert_eq!(open, 4);
        // Exactly at the timeout it is not yet expired.
        let later = plan(&all, 1_500, 10_000);
        assert!(later.timed_out.is_empty(), "{later:?}");
        // Idle ids (no open transaction) expire; open ones never do.
        let idle: Vec<String> = plan(&all, 20_000, 10_000)
            .idle
            .into_iter()
            .map(|e| e.transactional_id)
            .collect();
        assert_eq!(idle, vec!["done".to_string(), "idle".to_string()]);
    }
}
