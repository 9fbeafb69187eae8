//! The consumer-group admin API: every group with its state, members,
//! their assignments, and per-partition committed offsets with lag
//! (`/admin/groups`, `/admin/groups/{group}`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::group::protocol::assigned_partitions;
use crate::Broker;

/// The group routes over `broker`.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/admin/groups", get(list))
        .route("/admin/groups/{group}", get(one))
        .with_state(broker)
}

async fn list(State(broker): State<Arc<Broker>>) -> Json<Value> {
    let mut groups = Vec::new();
    for g in broker.groups.list() {
        if let Some(v) = describe(&broker, &g.group_id).await {
            groups.push(v);
        }
    }
    Json(json!({ "groups": groups }))
}

async fn one(State(broker): State<Arc<Broker>>, Path(group): Path<String>) -> Response {
    match describe(&broker, &group).await {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": format!("group '{group}' does not exist"), "kafka_error": "GroupIdNotFound"}),
            ),
        )
            .into_response(),
    }
}

/// One group as JSON, or `None` when it does not exist.
async fn describe(broker: &Broker, group_id: &str) -> Option<Value> {
    let summary = broker.groups.describe(group_id)?;
    let members: Vec<Value> = summary
        .members
        .iter()
        .map(|m| {
            let assignment: Vec<Value> = assigned_partitions(&m.assignment)
                .into_iter()
                .map(|(topic, partitions)| json!({"topic": topic, "partitions": partitions}))
                .collect();
            json!({
                "member_id": m.member_id,
                "group_instance_id": m.instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": assignment,
            })
        })
        .collect();
    let committed = broker.groups.fetch_offsets(group_id, None, false);
    let mut offsets = Vec::new();
    for (topic, rows) in committed {
        for (partition, fetched) in rows {
            let high_watermark = match broker.resolve(&topic, partition) {
                Ok((_, stream)) => broker.ns.bounds(stream).await.ok().map(|(_, end)| end as i64),
                Err(_) => None,
            };
            let lag = high_watermark.map(|hw| (hw - fetched.offset).max(0));
            offsets.push(json!({
                "topic": topic,
                "partition": partition,
                "committed_offset": fetched.offset,
                "leader_epoch": fetched.leader_epoch,
                "metadata": fetched.metadata,
                "high_watermark": high_watermark,
                "lag": lag,
            }));
        }
    }
    Some(json!({
        "group_id": summary.group_id,
        "state": summary.state.name(),
        "protocol_type": summary.protocol_type,
        "protocol": summary.protocol,
        "generation": summary.generation,
        "leader": summary.leader,
        "coordinator": broker.groups.node_id(),
        "members": members,
        "offsets": offsets,
    }))
}
