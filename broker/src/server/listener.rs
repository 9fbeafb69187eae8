//! The Kafka TCP listener: accept loop, one task per connection, graceful
//! drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::connection::{self, Dispatcher};
use crate::error::BrokerError;

/// Bind a TCP listener; an address in use (or any bind failure) becomes an
/// error naming the flag that sets the address.
pub async fn bind(addr: &str, flag: &'static str) -> Result<TcpListener, BrokerError> {
    TcpListener::bind(addr).await.map_err(|error| BrokerError::Bind {
        addr: addr.to_string(),
        flag,
        error,
    })
}

/// Accept Kafka connections until `shutdown` turns true, then stop
/// accepting, let every connection finish the requests it has already read
/// for up to `grace`, and abort what is left.
pub async fn run<D: Dispatcher>(
    listener: TcpListener,
    dispatcher: Arc<D>,
    max_request_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        warn!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    let (rd, wr) = stream.into_split();
                    conns.spawn(connection::serve(
                        rd,
                        wr,
                        dispatcher.clone(),
                        max_request_bytes,
                        shutdown.clone(),
                        peer.to_string(),
                    ));
                }
                Err(e) => {
                    // Typically out of file descriptors: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    let open = conns.len();
    if open > 0 {
        info!(connections = open, "draining Kafka connections");
    }
    let drained = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            connections = conns.len(),
            "grace period over; aborting remaining connections"
        );
        conns.shutdown().await;
    }
}
