//! [`RemoteBookie`]: a [`BookieClient`] that reaches a bookie in another
//! process over the bookie protocol.
//!
//! One TCP connection per remote bookie, opened on first use and reopened
//! by the first call after it was lost. Many requests are in flight on it
//! at once; answers come back in any order and are matched by request id.
//!
//! Ordering: `add_entry` assigns the request id and puts the encoded frame
//! on the connection's queue before it returns, and the connection writes
//! its queue strictly in order, so adds issued in entry-id order reach the
//! bookie (and its group committer, see [`super::server`]) in that order.
//!
//! Backpressure: the writer takes a share of the connection's budget
//! (`max_in_flight_requests`, `max_in_flight_bytes`) for each request, in
//! queue order, before writing it, and the share comes back with the
//! answer. When the budget is spent the queue waits — requests keep their
//! order and their futures simply resolve later.
//!
//! Failures: a lost connection (reset, end of stream, undecodable answer)
//! fails every request in flight or queued with an I/O error of kind
//! `ConnectionAborted` whose path names the bookie; connecting gets
//! `connect_timeout`; a request that has no answer after
//! `request_timeout` (plus its long-poll wait) fails with `TimedOut` and
//! closes the connection (the bookie is presumed stuck). The next call
//! reconnects. Errors the bookie reports come back as the same
//! [`StorageError`] variant (`Fenced`, `NoSuchLedger`, `OutOfOrder`, ...).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use distlog_metadata::{LedgerId, NodeId};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::connection::{unavailable, Conn, Enqueued};
use super::net_metrics::CLIENT;
use super::protocol::{OpCode, Request, Response, DEFAULT_MAX_FRAME};
use crate::error::{Result, StorageError};
use crate::ledger::{AddFuture, AddRequest, BookieClient, Entry, IndexRow, LedgerInfo};

/// How a [`RemoteBookie`] connects and how much it keeps in flight.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest wait for a TCP connection to the bookie.
    pub connect_timeout: Duration,
    /// Longest wait for an answer, counted from when the returned future is
    /// first polled (so it includes waiting for budget and for the
    /// connection). `read_lac` adds its long-poll wait on top. On expiry the
    /// request fails with `TimedOut` and the connection is closed. This is
    /// the bound on how long a quorum add can hang on a bookie that
    /// accepted the connection but stopped answering; a bookie that is down
    /// fails at once (refused) or after `connect_timeout`.
    pub request_timeout: Duration,
    /// Largest frame body sent or accepted.
    pub max_frame_bytes: usize,
    /// Requests written but not yet answered.
    pub max_in_flight_requests: usize,
    /// Request frame bytes written but not yet answered.
    pub max_in_flight_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: DEFAULT_MAX_FRAME,
            max_in_flight_requests: 1024,
            max_in_flight_bytes: 32 << 20,
        }
    }
}

/// Where a bookie is dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookieAddr {
    /// A socket address, dialled as is.
    Socket(SocketAddr),
    /// A `host:port` name, resolved again at every connect, so a bookie
    /// whose address changes (a container restarted or re-attached to its
    /// network) is found again, and one whose name does not resolve right
    /// now (its container is gone) fails like any unreachable bookie
    /// instead of failing the whole ensemble.
    Host(String),
}

impl BookieAddr {
    /// `text` as a socket address when it is one, else as a name.
    pub fn parse(text: &str) -> BookieAddr {
        match text.parse() {
            Ok(sock) => BookieAddr::Socket(sock),
            Err(_) => BookieAddr::Host(text.to_string()),
        }
    }
}

impl From<SocketAddr> for BookieAddr {
    fn from(sock: SocketAddr) -> Self {
        BookieAddr::Socket(sock)
    }
}

impl std::fmt::Display for BookieAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BookieAddr::Socket(s) => write!(f, "{s}"),
            BookieAddr::Host(h) => f.write_str(h),
        }
    }
}

/// A bookie in another process, reached over TCP.
pub struct RemoteBookie {
    inner: Arc<Inner>,
}

struct Inner {
    bookie_id: NodeId,
    addr: BookieAddr,
    /// Names the bookie in errors: "bookie 2 at 10.0.0.2:3181".
    label: String,
    config: ClientConfig,
    conn: Mutex<Option<Arc<Conn>>>,
}

impl RemoteBookie {
    /// A client of the bookie with node id `bookie_id` listening on `addr`.
    /// Nothing is connected until the first request.
    pub fn new(bookie_id: NodeId, addr: impl Into<BookieAddr>, config: ClientConfig) -> RemoteBookie {
        let addr = addr.into();
        let label = format!("bookie {bookie_id} at {addr}");
        RemoteBookie {
            inner: Arc::new(Inner {
                bookie_id,
                addr,
                label,
                config,
                conn: Mutex::new(None),
            }),
        }
    }

    /// The bookie's address.
    pub fn addr(&self) -> &BookieAddr {
        &self.inner.addr
    }

    /// True while a connection is open or being opened.
    pub fn is_connected(&self) -> bool {
        self.inner.conn.lock().as_ref().is_some_and(|c| c.is_alive())
    }

    /// Enqueue `req` on the connection now (opening one if needed) and
    /// return the wait for its answer. `extra` extends the timeout (long
    /// polls).
    fn submit(&self, req: Request, extra: Duration) -> BoxFuture<'static, Result<Response>> {
        let inner = &self.inner;
        let op = req.op();
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let mut reply = tx;
        // A connection found dead while enqueueing is replaced once.
        let mut queued = None;
        for _ in 0..2 {
            let conn = match inner.connection() {
                Ok(c) => c,
                Err(e) => return fail_now(op, "unavailable", e),
            };
            match conn.enqueue(&req, reply, started, inner.config.max_frame_bytes) {
                Ok(Enqueued::Queued) => {
                    queued = Some(conn);
                    break;
                }
                Ok(Enqueued::Closed(back)) => reply = back,
                Err(e) => return fail_now(op, "rejected", e),
            }
        }
        let Some(conn) = queued else {
            return fail_now(
                op,
                "unavailable",
                unavailable(
                    &inner.label,
                    io::ErrorKind::ConnectionAborted,
                    "connection closed while sending",
                ),
            );
        };
        let timeout = inner.config.request_timeout + extra;
        let label = inner.label.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(unavailable(
                    &label,
                    io::ErrorKind::ConnectionAborted,
                    "connection closed before the bookie answered",
                )),
                Err(_) => {
                    conn.close();
                    CLIENT.failed(op, "timeout");
                    Err(unavailable(
                        &label,
                        io::ErrorKind::TimedOut,
                        format!("no answer to {} within {timeout:?}; connection closed", op.name()),
                    ))
                }
            }
        })
    }
}

/// An already failed request (counted under `outcome`).
fn fail_now(op: OpCode, outcome: &str, e: StorageError) -> BoxFuture<'static, Result<Response>> {
    CLIENT.failed(op, outcome);
    Box::pin(futures::future::ready(Err(e)))
}

impl Inner {
    /// The live connection, or a new one.
    fn connection(&self) -> Result<Arc<Conn>> {
        let mut slot = self.conn.lock();
        if let Some(c) = slot.as_ref() {
            if c.is_alive() {
                return Ok(c.clone());
            }
        }
        let conn = Conn::open(self.bookie_id, self.addr.clone(), &self.label, &self.config)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

fn unexpected(label: &str, op: OpCode, got: &Response) -> StorageError {
    unavailable(
        label,
        io::ErrorKind::InvalidData,
        format!("answer {got:?} does not fit a {} request", op.name()),
    )
}

#[async_trait]
impl BookieClient for RemoteBookie {
    fn bookie_id(&self) -> NodeId {
        self.inner.bookie_id
    }

    fn add_entry(&self, req: AddRequest) -> AddFuture {
        let answer = self.submit(Request::Add(req), Duration::ZERO);
        let label = self.inner.label.clone();
        Box::pin(async move {
            match answer.await? {
                Response::Added => Ok(()),
                other => Err(unexpected(&label, OpCode::Add, &other)),
            }
        })
    }

    async fn read_entries(
        &self,
        ledger: LedgerId,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<Entry>> {
        let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
        let req = Request::Read {
            ledger,
            first,
            last,
            max_bytes,
        };
        match self.submit(req, Duration::ZERO).await? {
            Response::Entries(e) => Ok(e),
            other => Err(unexpected(&self.inner.label, OpCode::Read, &other)),
        }
    }

    async fn entry_for_seq(&self, ledger: LedgerId, seq: u64) -> Result<Option<IndexRow>> {
        self.row(Request::EntryForSeq { ledger, seq }).await
    }

    async fn entry_for_txid(&self, ledger: LedgerId, txid: u64) -> Result<Option<IndexRow>> {
        self.row(Request::EntryForTxid { ledger, txid }).await
    }

    async fn last_entry(&self, ledger: LedgerId) -> Result<Option<IndexRow>> {
        self.row(Request::LastEntry { ledger }).await
    }

    async fn fence(&self, ledger: LedgerId) -> Result<Option<IndexRow>> {
        self.row(Request::Fence { ledger }).await
    }

    async fn delete(&self, ledger: LedgerId) -> Result<()> {
        match self.submit(Request::Delete { ledger }, Duration::ZERO).await? {
            Response::Deleted => Ok(()),
            other => Err(unexpected(&self.inner.label, OpCode::Delete, &other)),
        }
    }

    async fn read_lac(&self, ledger: LedgerId, known: Option<u64>, wait: Duration) -> Result<Option<u64>> {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let req = Request::ReadLac {
            ledger,
            known,
            wait_ms,
        };
        match self.submit(req, wait).await? {
            Response::Lac(lac) => Ok(lac),
            other => Err(unexpected(&self.inner.label, OpCode::ReadLac, &other)),
        }
    }

    async fn ledger_info(&self, ledger: LedgerId) -> Result<LedgerInfo> {
        match self
            .submit(Request::LedgerInfo { ledger }, Duration::ZERO)
            .await?
        {
            Response::Info(info) => Ok(info),
            other => Err(unexpected(&self.inner.label, OpCode::LedgerInfo, &other)),
        }
    }
}

impl RemoteBookie {
    async fn row(&self, req: Request) -> Result<Option<IndexRow>> {
        let op = req.op();
        match self.submit(req, Duration::ZERO).await? {
            Response::Row(r) => Ok(r),
            other => Err(unexpected(&self.inner.label, op, &other)),
        }
    }
}
