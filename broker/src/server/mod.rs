//! Kafka listener, connections, framing (CONTRACT).
