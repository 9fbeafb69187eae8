//! Prometheus metrics of the Kafka front end (CONTRACT).
