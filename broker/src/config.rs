//! Node configuration (CONTRACT; implemented by the broker-core work).

/// Broker/node configuration resolved from flags, TOML and DISTLOG_* env.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Kafka broker id (also the node id).
    pub node_id: u32,
    /// Largest request frame accepted (bytes).
    pub max_request_bytes: usize,
    /// Largest record batch accepted in a produce (`message.max.bytes`).
    pub message_max_bytes: usize,
}
