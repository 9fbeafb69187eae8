//! The process's log subscriber, configured from `--log-level`,
//! `--log-format` and `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::config::{BrokerConfig, LogFormat};
use crate::error::BrokerError;

/// Install the global log subscriber: `RUST_LOG` when set, else the
/// configured level (with openraft's chatter kept to real warnings), as
/// text or JSON lines on stderr.
pub fn init_tracing(config: &BrokerConfig) -> Result<(), BrokerError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| BrokerError::Config(format!("invalid RUST_LOG '{v}': {e}")))?
        }
        // openraft narrates every election at info and every retry to an
        // unreachable peer at warn/error (twice a second while a node is
        // down); keep it to real warnings unless the operator asks for it
        // through RUST_LOG. Our own logs report leadership changes.
        _ => EnvFilter::try_new(format!(
            "{},openraft=warn,openraft::replication=off,openraft::engine::handler::replication_handler=error",
            config.log_level
        ))
        .map_err(|e| BrokerError::Config(format!("invalid log level '{}': {e}", config.log_level)))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| BrokerError::Config(format!("cannot install the log subscriber: {e}")))
}
