//! HTTP: /metrics, /health, admin API (CONTRACT).
