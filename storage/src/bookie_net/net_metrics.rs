//! Per-side handles onto the bookie protocol metrics of
//! [`crate::metrics`], resolved once so the hot path does no label lookups.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{Histogram, IntCounter};

use super::protocol::OpCode;
use crate::error::StorageError;
use crate::metrics::{BOOKIE_NET_BYTES, BOOKIE_NET_REQUESTS, BOOKIE_NET_REQUEST_SECONDS};

/// Metric handles of one side (`server` or `client`).
pub(crate) struct SideMetrics {
    side: &'static str,
    ok: Vec<IntCounter>,
    latency: Vec<Histogram>,
    /// Bytes read off sockets.
    pub(crate) bytes_in: IntCounter,
    /// Bytes written to sockets.
    pub(crate) bytes_out: IntCounter,
}

impl SideMetrics {
    fn new(side: &'static str) -> SideMetrics {
        SideMetrics {
            side,
            ok: OpCode::ALL
                .iter()
                .map(|op| BOOKIE_NET_REQUESTS.with_label_values(&[side, op.name(), "ok"]))
                .collect(),
            latency: OpCode::ALL
                .iter()
                .map(|op| BOOKIE_NET_REQUEST_SECONDS.with_label_values(&[side, op.name()]))
                .collect(),
            bytes_in: BOOKIE_NET_BYTES.with_label_values(&[side, "in"]),
            bytes_out: BOOKIE_NET_BYTES.with_label_values(&[side, "out"]),
        }
    }

    /// Count one finished request and its latency.
    pub(crate) fn finished(&self, op: OpCode, elapsed: Duration, outcome: Result<(), &StorageError>) {
        self.latency[op.index()].observe(elapsed.as_secs_f64());
        match outcome {
            Ok(()) => self.ok[op.index()].inc(),
            Err(e) => self.failed(op, outcome_label(e)),
        }
    }

    /// Count one failed request under an explicit outcome label.
    pub(crate) fn failed(&self, op: OpCode, outcome: &str) {
        BOOKIE_NET_REQUESTS
            .with_label_values(&[self.side, op.name(), outcome])
            .inc();
    }
}

/// Metrics of this node's bookie service.
pub(crate) static SERVER: LazyLock<SideMetrics> = LazyLock::new(|| SideMetrics::new("server"));
/// Metrics of requests to remote bookies.
pub(crate) static CLIENT: LazyLock<SideMetrics> = LazyLock::new(|| SideMetrics::new("client"));

/// The `outcome` label of an error.
pub(crate) fn outcome_label(e: &StorageError) -> &'static str {
    match e {
        StorageError::Io { .. } => "io",
        StorageError::Fenced(_) => "fenced",
        StorageError::NoSuchLedger(_) => "no_such_ledger",
        StorageError::NoSuchEntry { .. } => "no_such_entry",
        StorageError::OutOfOrder { .. } => "out_of_order",
        StorageError::Corrupt { .. } => "corrupt",
        StorageError::ShuttingDown => "shutting_down",
        _ => "other",
    }
}
