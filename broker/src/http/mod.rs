//! The HTTP port: `/metrics` (Prometheus text), `/health`, and a small
//! JSON admin API over the metadata state and the namespace
//! (`/admin/topics`, `/admin/locate`, `/admin/partitions/{topic}/{partition}/replicas`,
//! `/admin/ledgers/{ledger}`,
//! `/admin/groups`, `/admin/transactions`).

pub mod admin;
pub mod cluster;
pub mod groups;
pub mod transactions;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, TextEncoder};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Broker;

/// Whether the node is serving; `/health` answers 200 only once it is.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Mark the node as serving (after the Kafka listener runs).
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Mark the node as shutting down.
    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether the node is serving.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Routes that need no broker state: `/metrics` and `/health`.
pub fn base_router(ready: Readiness) -> Router {
    Router::new().route("/metrics", get(metrics)).route(
        "/health",
        get(move || {
            let ready = ready.clone();
            async move { health(&ready) }
        }),
    )
}

/// The full HTTP router: base routes plus the admin API over `broker`.
pub fn router(broker: Arc<Broker>, ready: Readiness) -> Router {
    base_router(ready)
        .merge(admin::router(broker.clone()))
        .merge(groups::router(broker.clone()))
        .merge(transactions::router(broker.clone()))
        .merge(cluster::router(broker))
}

/// Serve `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
}

async fn metrics() -> Response {
    let families = prometheus::gather();
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    match encoder.encode(&families, &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, encoder.format_type().to_string())], buf).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
            .into_response(),
    }
}

fn health(ready: &Readiness) -> Response {
    if ready.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting"})),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get_text(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn health_and_metrics() {
        crate::metrics::init();
        crate::metrics::REQUESTS.with_label_values(&["Metadata"]).inc();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let ready = Readiness::default();
        let (tx, rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, base_router(ready.clone()), rx));

        let r = get_text(addr, "/health").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        ready.set_ready();
        let r = get_text(addr, "/health").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with(r#"{"status":"ok"}"#), "{r}");

        let r = get_text(addr, "/metrics").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        for name in [
            "distlog_requests_total{api=\"Metadata\"}",
            "distlog_bytes_in_total",
            "distlog_connections_active",
        ] {
            assert!(r.contains(name), "missing {name}");
        }

        tx.send(true).expect("send");
        server.await.expect("join").expect("serve");
    }
}
