//! The JSON admin API: topics with their streams and segments, the
//! offset → DLSN → txid mapping of a record (`ns.locate`), a partition's
//! replica report (`ns.replica_report`: what each bookie of each segment's
//! ensemble holds, asked of the bookies), and where one ledger's copies are
//! (`ns.ledger_whereabouts`: every registered bookie asked), and a
//! partition's idempotent producers (its owner's producer state).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use distlog_metadata::SegmentState;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::storage_error;
use crate::Broker;

/// The admin routes over `broker`.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/admin/topics", get(topics))
        .route("/admin/locate", get(locate))
        .route("/admin/partitions/{topic}/{partition}/replicas", get(replicas))
        .route("/admin/ledgers/{ledger}", get(ledger))
        .route("/admin/streams/{topic}/{partition}/producers", get(producers))
        .with_state(broker)
}

async fn topics(State(broker): State<Arc<Broker>>) -> Json<Value> {
    let topics: Vec<Value> = broker.meta.read(|s| {
        s.topics
            .values()
            .map(|t| {
                let partitions: Vec<Value> = (0..t.partitions)
                    .map(|p| match s.stream(&t.stream(p)) {
                        Some(st) => json!({
                            "partition": p,
                            "owner": st.owner,
                            "epoch": st.owner_epoch,
                            "log_start_offset": st.log_start_offset,
                            "segments": st.segments.iter().map(|g| json!({
                                "lssn": g.lssn,
                                "ledger_id": g.ledger_id,
                                "state": match g.state {
                                    SegmentState::InProgress => "in_progress",
                                    SegmentState::Completed => "completed",
                                },
                                "base_offset": g.base_offset,
                                "last_offset": g.last_offset,
                                "start_txid": g.start_txid,
                                "end_txid": g.end_txid,
                                "last_entry_id": g.last_entry_id,
                                "size_bytes": g.size_bytes,
                                "ensemble": g.ensemble,
                                "epoch": g.owner_epoch,
                            })).collect::<Vec<_>>(),
                        }),
                        None => json!({"partition": p, "owner": null, "epoch": 0, "segments": []}),
                    })
                    .collect();
                json!({
                    "name": t.name,
                    "id": t.id.to_string(),
                    "partitions": partitions,
                    "configs": t.configs,
                })
            })
            .collect()
    });
    Json(json!({ "topics": topics }))
}

/// Query of `/admin/locate`.
#[derive(Debug, Deserialize)]
struct LocateQuery {
    topic: String,
    partition: i32,
    offset: u64,
}

fn error(status: StatusCode, kafka_error: Option<String>, message: String) -> Response {
    (
        status,
        Json(json!({"error": message, "kafka_error": kafka_error})),
    )
        .into_response()
}

async fn locate(State(broker): State<Arc<Broker>>, Query(q): Query<LocateQuery>) -> Response {
    let stream = match broker.resolve(&q.topic, q.partition) {
        Ok((_, stream)) => stream,
        Err(e) => {
            let msg = format!("topic '{}' partition {} does not exist", q.topic, q.partition);
            return error(StatusCode::NOT_FOUND, Some(format!("{e:?}")), msg);
        }
    };
    match broker.ns.locate(stream, q.offset).await {
        Ok((dlsn, txid)) => Json(json!({
            "topic": q.topic,
            "partition": q.partition,
            "offset": q.offset,
            "dlsn": {"lssn": dlsn.lssn, "entry_id": dlsn.entry_id, "slot_id": dlsn.slot_id},
            "txid": txid,
        }))
        .into_response(),
        Err(e) => {
            let k = storage_error(&e);
            let status = match k {
                kafka_protocol::error::ResponseError::OffsetOutOfRange
                | kafka_protocol::error::ResponseError::UnknownTopicOrPartition => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, Some(format!("{k:?}")), e.to_string())
        }
    }
}

/// `GET /admin/partitions/{topic}/{partition}/replicas`: per segment (oldest
/// first) its lssn, ledger, ensemble, quorums, base offset, state, committed
/// end, and per bookie of the ensemble whether it answered and which
/// entries it holds (`entries` held — the first ones of its stripe, ids
/// `0..entries` without striping — `last_entry_id`, `stripe_entries` and
/// `missing_entries` of the committed ones its write sets assign to it),
/// plus the counts of committed entries on fewer than `ack_quorum`
/// (`under_replicated_entries`) and fewer than `write_quorum`
/// (`below_write_quorum_entries`) bookies of their write set (see
/// `distlog_storage::log::SegmentReplicas`).
/// Answered by any node (it reads metadata and asks the bookies; it does
/// not open the stream). A bookie that does not answer within a few
/// seconds is reported `reachable: false` with its error.
async fn replicas(
    State(broker): State<Arc<Broker>>,
    Path((topic, partition)): Path<(String, i32)>,
) -> Response {
    let stream = match broker.resolve(&topic, partition) {
        Ok((_, stream)) => stream,
        Err(e) => {
            let msg = format!("topic '{topic}' partition {partition} does not exist");
            return error(StatusCode::NOT_FOUND, Some(format!("{e:?}")), msg);
        }
    };
    match broker.ns.replica_report(stream).await {
        Ok(segments) => Json(json!({
            "topic": topic,
            "partition": partition,
            "segments": segments,
        }))
        .into_response(),
        Err(e) => {
            let k = storage_error(&e);
            let status = match k {
                kafka_protocol::error::ResponseError::UnknownTopicOrPartition => StatusCode::NOT_FOUND,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, Some(format!("{k:?}")), e.to_string())
        }
    }
}

/// `GET /admin/ledgers/{ledger}`: what every registered bookie (live or
/// not, in id order) holds of one ledger — `exists`, `entries`, `bytes`,
/// `fenced`, or `reachable: false` with the error when it does not answer
/// within a few seconds — and which segment references it, if any
/// (`segment`: topic, partition, lssn; `null` once its topic was deleted
/// or its stream truncated past it). Answered by any node; shows whether a
/// released ledger is gone from every bookie, and where a ledger lives.
async fn ledger(State(broker): State<Arc<Broker>>, Path(ledger): Path<u64>) -> Response {
    let segment = broker.meta.read(|s| {
        s.topics.values().find_map(|t| {
            (0..t.partitions).find_map(|p| {
                s.stream(&t.stream(p))?
                    .segments
                    .iter()
                    .find(|g| g.ledger_id == ledger)
                    .map(|g| json!({"topic": t.name, "partition": p, "lssn": g.lssn, "ensemble": g.ensemble}))
            })
        })
    });
    let bookies = broker.ns.ledger_whereabouts(ledger).await;
    Json(json!({
        "ledger_id": ledger,
        "segment": segment,
        "bookies": bookies,
    }))
    .into_response()
}

/// `GET /admin/streams/{topic}/{partition}/producers`: the idempotent
/// producers in the partition's producer state, by producer id: `epoch`,
/// `last_seen_ms` (expiry counts from it) and the remembered `batches`
/// (oldest first: `first_sequence`, `last_sequence`, `first_offset`,
/// `record_count`, `max_timestamp`). Answered by the partition's owner
/// (DescribeProducers' data, with every remembered batch); elsewhere 409
/// with `NotLeaderOrFollower`.
async fn producers(
    State(broker): State<Arc<Broker>>,
    Path((topic, partition)): Path<(String, i32)>,
) -> Response {
    match crate::handlers::describe_producers::partition_producers(&broker, &topic, partition).await {
        Ok(list) => {
            let producers: Vec<Value> = list
                .iter()
                .map(|pp| {
                    let (id, e) = (pp.producer_id, &pp.entry);
                    let batches: Vec<Value> = e
                        .batches
                        .iter()
                        .map(|b| {
                            json!({
                                "first_sequence": b.first_seq,
                                "last_sequence": b.last_seq,
                                "first_offset": b.first_offset,
                                "record_count": b.record_count,
                                "max_timestamp": b.max_timestamp,
                            })
                        })
                        .collect();
                    json!({
                        "producer_id": id,
                        "epoch": e.epoch,
                        "last_seen_ms": e.last_seen_ms,
                        "current_txn_start_offset": pp.txn_start_offset,
                        "batches": batches,
                    })
                })
                .collect();
            Json(json!({
                "topic": topic,
                "partition": partition,
                "producers": producers,
            }))
            .into_response()
        }
        Err(k) => {
            let status = match k {
                kafka_protocol::error::ResponseError::UnknownTopicOrPartition => StatusCode::NOT_FOUND,
                kafka_protocol::error::ResponseError::NotLeaderOrFollower => StatusCode::CONFLICT,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            let msg = format!("producers of '{topic}' partition {partition}: {k:?}");
            error(status, Some(format!("{k:?}")), msg)
        }
    }
}
