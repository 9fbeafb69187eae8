//! Errors of the DL core (segment store, ledgers, log streams).

use distlog_metadata::{LedgerId, MetadataError, StreamId};

/// Everything that can go wrong in storage. The broker maps these onto
/// Kafka error codes in one place.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A disk read/write/fsync failed (including a full disk), or — with
    /// `path` naming a remote bookie ("bookie 2 at 10.0.0.2:3181") — the
    /// network connection to it failed, timed out or broke the protocol.
    /// Nothing was acknowledged by that bookie.
    #[error(
        "I/O error on {path}: {source} (a disk: check free space and the data directory; \
         a remote bookie: check that it runs and is reachable)"
    )]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The ledger was fenced by a newer writer: this writer lost ownership.
    #[error("ledger {0} is fenced: another writer owns the stream now")]
    Fenced(LedgerId),
    /// The ledger does not exist on this bookie.
    #[error("ledger {0} not found")]
    NoSuchLedger(LedgerId),
    /// The requested entry does not exist (yet).
    #[error("ledger {ledger}: entry {entry} not found")]
    NoSuchEntry { ledger: LedgerId, entry: u64 },
    /// An add did not follow the bookie's last entry of the ledger: the
    /// writer expected the bookie to hold `prev` last (the previous entry
    /// of the bookie's stripe), but it holds `last`. The bookie missed
    /// entries it should hold (it was down, or an add to it failed), or the
    /// add repeats one it already has.
    #[error(
        "ledger {ledger}: the add follows {} of this bookie's stripe, but the bookie's last entry is {}          (it missed entries of its stripe, or the add is a repeat)",
        entry_name(.prev),
        entry_name(.last)
    )]
    OutOfOrder {
        ledger: LedgerId,
        /// The bookie's last entry of the ledger.
        last: Option<u64>,
        /// The entry the add says must be the bookie's last.
        prev: Option<u64>,
    },
    /// Stored bytes failed their checksum (corruption on disk).
    #[error("ledger {ledger}: entry {entry} is corrupt (crc mismatch)")]
    Corrupt { ledger: LedgerId, entry: u64 },
    /// The stream does not exist (topic deleted or never created).
    #[error("stream {0} does not exist")]
    NoSuchStream(StreamId),
    /// The requested offset is outside [log start, high watermark].
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    /// This broker does not own the stream (or lost it to a newer epoch).
    #[error("not the owner of stream {0}")]
    NotOwner(StreamId),
    /// An append the log cannot accept (e.g. no records in it).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The store is shutting down.
    #[error("storage is shutting down")]
    ShuttingDown,
    /// Not enough bookies to form or keep a write quorum (retriable).
    #[error("not enough bookies: {0}")]
    NotEnoughBookies(String),
    /// The metadata store failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// An append was issued to the bookies but never confirmed: the writer
    /// failed (`cause`) before the entry reached its ack quorum. Unlike the
    /// other errors of an append, this one does not mean "not written":
    /// ledger recovery keeps an entry that any bookie holds, so the records
    /// may still appear in the log, once. A client must treat it as "maybe
    /// written" (a retry without an idempotent producer may duplicate).
    #[error(
        "the append was sent to the bookies but not confirmed ({0}); it may still appear in the log \
         after recovery: retry with an idempotent producer to avoid a duplicate"
    )]
    Unconfirmed(Box<StorageError>),
    /// The stream's state refused the append (see
    /// `log::stream_state`); the embedder's own error, passed through.
    #[error("append refused: {0}")]
    Refused(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl StorageError {
    /// A copy of this error for each of several waiters failed by the same
    /// cause (I/O sources are re-created from their kind and message).
    pub fn duplicate(&self) -> StorageError {
        match self {
            StorageError::Io { path, source } => StorageError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::Fenced(l) => StorageError::Fenced(*l),
            StorageError::NoSuchLedger(l) => StorageError::NoSuchLedger(*l),
            StorageError::NoSuchEntry { ledger, entry } => StorageError::NoSuchEntry {
                ledger: *ledger,
                entry: *entry,
            },
            StorageError::OutOfOrder { ledger, last, prev } => StorageError::OutOfOrder {
                ledger: *ledger,
                last: *last,
                prev: *prev,
            },
            StorageError::Corrupt { ledger, entry } => StorageError::Corrupt {
                ledger: *ledger,
                entry: *entry,
            },
            StorageError::NoSuchStream(s) => StorageError::NoSuchStream(*s),
            StorageError::OffsetOutOfRange { offset, start, end } => StorageError::OffsetOutOfRange {
                offset: *offset,
                start: *start,
                end: *end,
            },
            StorageError::NotOwner(s) => StorageError::NotOwner(*s),
            StorageError::InvalidAppend(m) => StorageError::InvalidAppend(m.clone()),
            StorageError::ShuttingDown => StorageError::ShuttingDown,
            StorageError::NotEnoughBookies(m) => StorageError::NotEnoughBookies(m.clone()),
            StorageError::Metadata(m) => StorageError::Metadata(MetadataError::Raft(m.to_string())),
            StorageError::Refused(e) => StorageError::Refused(e.clone()),
            StorageError::Unconfirmed(cause) => StorageError::Unconfirmed(Box::new(cause.duplicate())),
        }
    }

    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// "entry N", or "no entry" (error messages).
fn entry_name(e: &Option<u64>) -> String {
    e.map_or_else(|| "no entry".to_string(), |e| format!("entry {e}"))
}

/// Result alias for storage.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
