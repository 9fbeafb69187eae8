//! Node registration and liveness: every node registers itself in the
//! metadata store (its Kafka address when it runs the broker role, its
//! bookie address when it serves one) and keeps renewing that registration
//! as a lease. The controller treats a broker whose lease expired as dead
//! and moves its streams; ledger placement skips bookies whose lease
//! expired.
//!
//! Lease expiry is an absolute wall-clock time written by the node itself
//! and compared with the controller's clock, so node clocks must agree to
//! well within the session timeout (as with NTP-synchronised hosts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use distlog_metadata::{BrokerInfo, Command, ListenerAddr, MetadataError, MetadataStore};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::config::BrokerConfig;

/// This node's registration, with a lease of `session_timeout` from now
/// (`None`: already expired, for a clean shutdown).
pub fn registration(config: &BrokerConfig, lease: Option<Duration>) -> BrokerInfo {
    let (kafka_host, kafka_port) = if config.roles.broker {
        (config.advertised_kafka_host.clone(), config.advertised_kafka_port)
    } else {
        (String::new(), 0)
    };
    // Named listeners are registered only when there are several: a node
    // with one listener is reached at its one address whatever the name.
    let listeners = if config.roles.broker && config.listeners.len() > 1 {
        config
            .listeners
            .iter()
            .map(|l| {
                let addr = ListenerAddr {
                    host: l.advertised_host.clone(),
                    port: l.advertised_port,
                };
                (l.name.clone(), addr)
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let now = distlog_metadata::now_ms();
    BrokerInfo {
        id: config.node_id,
        kafka_host,
        kafka_port,
        listeners,
        rack: config.rack.clone(),
        bookie_addr: if config.roles.bookie {
            config
                .advertised_bookie
                .clone()
                .or_else(|| config.bookie_listen.clone())
        } else {
            None
        },
        lease_expires_ms: lease.map_or(now, |l| now + l.as_millis() as u64),
    }
}

/// Register (or re-register) this node with a fresh lease.
pub async fn register(meta: &MetadataStore, config: &BrokerConfig) -> Result<(), MetadataError> {
    let lease = Duration::from_millis(config.broker_session_timeout_ms);
    meta.write(Command::RegisterBroker(registration(config, Some(lease))))
        .await
        .map(|_| ())
}

/// Give up the lease at once (clean shutdown), so the controller moves
/// this node's streams without waiting for the session timeout.
pub async fn release(meta: &MetadataStore, config: &BrokerConfig) -> Result<(), MetadataError> {
    meta.write(Command::RegisterBroker(registration(config, None)))
        .await
        .map(|_| ())
}

/// Renew the lease every heartbeat interval until `shutdown` flips, and
/// keep the `distlog_cluster_nodes` gauge current. A failed renewal (no
/// metadata leader for a moment) is retried on the next tick; a node that
/// cannot renew for a whole session timeout loses its streams.
pub async fn renew(meta: Arc<MetadataStore>, config: Arc<BrokerConfig>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.broker_heartbeat_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match register(&meta, &config).await {
            Ok(()) => debug!("lease renewed"),
            Err(e) => warn!(error = %e, "lease renewal failed; retrying at the next heartbeat"),
        }
        let now = distlog_metadata::now_ms();
        let (live, expired) = meta.read(|s| {
            let live = s.brokers.values().filter(|b| b.is_live(now)).count();
            (live, s.brokers.len() - live)
        });
        crate::metrics::NODES
            .with_label_values(&["live"])
            .set(live as i64);
        crate::metrics::NODES
            .with_label_values(&["expired"])
            .set(expired as i64);
    }
}
