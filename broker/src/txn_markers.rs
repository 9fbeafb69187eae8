//! Writing transaction markers: the second phase of ending a transaction.
//!
//! Once a transaction is prepared (`TxnOp::End` or a coordinator abort
//! applied `PrepareCommit`/`PrepareAbort` in the metadata store), the owner
//! of each of its partitions appends the commit or abort marker
//! ([`crate::records::control`]) to the partition's stream and reports it
//! with `TxnOp::MarkersWritten`; the metadata store completes the
//! transaction when no partition waits any more. The step from coordinator
//! to owner goes through the replicated store rather than a request between
//! brokers, so:
//! - it needs no live coordinator once prepared: a prepared transaction
//!   completes after a coordinator failover;
//! - a write that fails (owner crash, fenced ledger, metadata unavailable)
//!   is retried by whoever owns the partition next: every node sweeps the
//!   prepared transactions every [`SWEEP`] for partitions it owns whose
//!   marker is still pending, besides reacting to `TxnPrepared` at once;
//! - a marker may be written twice (written, then the owner died before
//!   reporting it): the second finds no open transaction of the producer
//!   and changes nothing but taking an offset, as a retried Kafka marker
//!   does.
//!
//! In single-node mode every stream is this node's to mark.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::{MetaEvent, StreamId, TxnMeta, TxnOp, TxnState};
use distlog_storage::log::AppendRequest;
use distlog_storage::StorageError;
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::records::control::end_txn_marker;
use crate::Broker;

/// How often every node looks for prepared transactions whose markers it
/// owes (after a missed event, a failed write or an ownership change).
const SWEEP: Duration = Duration::from_millis(1000);

/// Test-only fault: wait this long after a transaction is prepared before
/// writing its markers (opens the window between prepare and complete for
/// failover tests). Unset in production.
const TEST_DELAY_ENV: &str = "DISTLOG_TEST_MARKER_DELAY_MS";

/// One prepared transaction's markers owed by this node.
#[derive(Debug, Clone)]
struct Work {
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    streams: Vec<StreamId>,
    /// Wall-clock ms of the prepare (marker latency is measured from it).
    prepare_ms: u64,
}

/// Start the marker writer of this node; it stops when `shutdown` turns true.
pub fn spawn(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    let delay = std::env::var(TEST_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    tokio::spawn(async move {
        let in_flight: Arc<Mutex<HashSet<(String, StreamId)>>> = Arc::default();
        let mut events = broker.meta.subscribe();
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let work = tokio::select! {
                _ = shutdown.changed() => return,
                _ = sweep.tick() => owed_by(&broker, None),
                ev = events.recv() => match ev {
                    Ok(MetaEvent::TxnPrepared { transactional_id, .. }) => owed_by(&broker, Some(&transactional_id)),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => owed_by(&broker, None),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            for mut w in work {
                {
                    let mut busy = in_flight.lock();
                    w.streams
                        .retain(|s| busy.insert((w.transactional_id.clone(), *s)));
                }
                if w.streams.is_empty() {
                    continue;
                }
                let broker = broker.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    write_markers(&broker, &w).await;
                    let mut busy = in_flight.lock();
                    for s in &w.streams {
                        busy.remove(&(w.transactional_id.clone(), *s));
                    }
                });
            }
        }
    })
}

/// The markers this node owes now: pending markers of prepared
/// transactions (of `only` that transactional id, or all) on streams it
/// owns (every stream in single-node mode).
fn owed_by(broker: &Broker, only: Option<&str>) -> Vec<Work> {
    let me = broker.config.node_id;
    let cluster = broker.config.is_cluster();
    broker.meta.read(|s| {
        let work = |(id, t): (&String, &TxnMeta)| {
            if !t.state.is_prepared() {
                return None;
            }
            let streams: Vec<StreamId> = t
                .pending_markers
                .iter()
                .map(|p| p.stream)
                .filter(|st| !cluster || s.stream(st).and_then(|m| m.owner) == Some(me))
                .collect();
            (!streams.is_empty()).then(|| Work {
                transactional_id: id.clone(),
                producer_id: t.producer_id,
                producer_epoch: t.producer_epoch,
                commit: t.state == TxnState::PrepareCommit,
                streams,
                prepare_ms: t.prepare_ms,
            })
        };
        match only {
            Some(id) => s
                .transactions
                .get_key_value(id)
                .and_then(work)
                .into_iter()
                .collect(),
            None => s.transactions.iter().filter_map(work).collect(),
        }
    })
}

/// Append the marker to each stream of `w` and report those written.
/// Streams that failed stay pending: the next sweep retries them.
async fn write_markers(broker: &Broker, w: &Work) {
    let writes = w.streams.iter().map(|stream| async move {
        let marker = end_txn_marker(
            w.producer_id,
            w.producer_epoch,
            w.commit,
            0,
            distlog_metadata::now_ms() as i64,
        );
        let req = AppendRequest {
            payload: marker,
            record_count: 1,
            max_timestamp: distlog_metadata::now_ms() as i64,
        };
        match broker.ns.append(*stream, req).await {
            Ok(r) => {
                debug!(transactional_id = %w.transactional_id, %stream, offset = r.base_offset, commit = w.commit, "transaction marker written");
                Some(*stream)
            }
            // The partition knows the producer at a newer epoch: this
            // transaction is long settled there. Nothing to write.
            Err(StorageError::Refused(e)) => {
                warn!(transactional_id = %w.transactional_id, %stream, error = %e, "transaction marker refused as stale; counted as written");
                Some(*stream)
            }
            Err(e) => {
                debug!(transactional_id = %w.transactional_id, %stream, error = %e, "transaction marker not written yet; retried at the next sweep");
                None
            }
        }
    });
    let written: Vec<StreamId> = futures::future::join_all(writes)
        .await
        .into_iter()
        .flatten()
        .collect();
    if written.is_empty() {
        return;
    }
    let now = distlog_metadata::now_ms();
    let op = TxnOp::MarkersWritten {
        transactional_id: w.transactional_id.clone(),
        producer_id: w.producer_id,
        producer_epoch: w.producer_epoch,
        streams: written.clone(),
        now_ms: now,
    };
    match broker.meta.txn(op).await {
        Ok(_) => {
            if w.prepare_ms > 0 {
                let secs = now.saturating_sub(w.prepare_ms) as f64 / 1000.0;
                for _ in &written {
                    crate::metrics::TXN_MARKER_SECONDS.observe(secs);
                }
            }
            if written.len() == w.streams.len() {
                info!(transactional_id = %w.transactional_id, commit = w.commit, partitions = written.len(), "transaction markers written");
            }
        }
        Err(e) => {
            // The markers are in the streams; reporting again after a
            // retry writes them a second time, which changes nothing.
            warn!(transactional_id = %w.transactional_id, error = %e, "cannot record written transaction markers; retried at the next sweep");
        }
    }
}
