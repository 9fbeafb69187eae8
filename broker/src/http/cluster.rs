//! The cluster admin API: the metadata quorum (leader, term, voters,
//! learners), every registered node with its roles, lease and the streams
//! it owns, and membership changes (`/admin/cluster`,
//! `POST /admin/cluster/voters/{id}?addr=HOST:PORT`,
//! `DELETE /admin/cluster/nodes/{id}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use distlog_metadata::NodeId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::Broker;

/// The cluster routes over `broker`.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/admin/cluster", get(cluster))
        .route("/admin/cluster/voters/{id}", post(add_voter))
        .route("/admin/cluster/nodes/{id}", delete(remove_node))
        .with_state(broker)
}

/// The cluster as this node sees it. `ready` is true once a Raft leader is
/// known and every Raft member has registered a live lease.
async fn cluster(State(broker): State<Arc<Broker>>) -> Json<Value> {
    let m = broker.meta.raft_metrics();
    let members = broker.meta.members();
    let now = distlog_metadata::now_ms();
    let nodes: Vec<Value> = broker.meta.read(|s| {
        let mut owned: BTreeMap<NodeId, usize> = BTreeMap::new();
        for st in s.streams.values() {
            if let Some(o) = st.owner {
                *owned.entry(o).or_default() += 1;
            }
        }
        s.brokers
            .values()
            .map(|b| {
                json!({
                    "id": b.id,
                    "kafka": b.is_broker().then(|| format!("{}:{}", b.kafka_host, b.kafka_port)),
                    "bookie": b.bookie_addr,
                    "rack": b.rack,
                    "live": b.is_live(now),
                    "lease_ms_left": b.lease_expires_ms.saturating_sub(now),
                    "streams_owned": owned.get(&b.id).copied().unwrap_or(0),
                    "voter": members.voters.contains_key(&b.id),
                    "learner": members.learners.contains_key(&b.id),
                })
            })
            .collect()
    });
    let all_registered = members.voters.keys().chain(members.learners.keys()).all(|id| {
        broker
            .meta
            .read(|s| s.brokers.get(id).is_some_and(|b| b.is_live(now)))
    });
    Json(json!({
        "node_id": broker.config.node_id,
        "cluster_id": broker.meta.read(|s| s.cluster_id.clone()),
        "roles": broker.config.roles.to_string(),
        "raft": {
            "leader": m.current_leader,
            "term": m.current_term,
            "last_applied": m.last_applied.map(|l| l.index),
            "snapshot": m.snapshot.map(|l| l.index),
            "voters": members.voters,
            "learners": members.learners,
        },
        "nodes": nodes,
        "ready": m.current_leader.is_some() && all_registered,
    }))
}

/// Query of `POST /admin/cluster/voters/{id}`.
#[derive(Debug, Deserialize)]
struct AddVoterQuery {
    /// The node's Raft address (its `--raft-listen`).
    addr: String,
}

/// Make node `id` (already running, usually a learner) a metadata voter.
async fn add_voter(
    State(broker): State<Arc<Broker>>,
    Path(id): Path<NodeId>,
    Query(q): Query<AddVoterQuery>,
) -> Response {
    membership_answer(broker.meta.add_voter(id, &q.addr).await)
}

/// Remove node `id` from the metadata group (voter or learner).
async fn remove_node(State(broker): State<Arc<Broker>>, Path(id): Path<NodeId>) -> Response {
    membership_answer(broker.meta.remove_node(id).await)
}

fn membership_answer(r: Result<distlog_metadata::Members, distlog_metadata::MetadataError>) -> Response {
    match r {
        Ok(m) => Json(json!({"voters": m.voters, "learners": m.learners})).into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"error": e.to_string()}))).into_response(),
    }
}
