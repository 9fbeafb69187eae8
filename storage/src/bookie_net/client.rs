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
//! bookie (and its journal, see [`super::server`]) in that order.
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

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use distlog_metadata::LedgerId;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::frame::{write_chunks, FrameReader};
use super::net_metrics::CLIENT;
use super::protocol::{decode_response, encode_request, Frame, OpCode, Request, Response, DEFAULT_MAX_FRAME};
use crate::error::{Result, StorageError};
use crate::ledger::{AddFuture, AddRequest, BookieClient, Entry, IndexRow};
use crate::metrics::BOOKIE_NET_CONNECTS;

/// How a [`RemoteBookie`] connects and how much it keeps in flight.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest wait for a TCP connection to the bookie.
    pub connect_timeout: Duration,
    /// Longest wait for an answer, counted from the call (so it includes
    /// waiting for budget and for the connection). `read_lac` adds its
    /// long-poll wait on top. On expiry the connection is closed.
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

/// A bookie in another process, reached over TCP.
pub struct RemoteBookie {
    inner: Arc<Inner>,
}

struct Inner {
    bookie_id: u32,
    addr: SocketAddr,
    /// Names the bookie in errors: "bookie 2 at 10.0.0.2:3181".
    label: String,
    config: ClientConfig,
    conn: Mutex<Option<Arc<Conn>>>,
}

/// One connection: the ordered queue to its writer, and the state its
/// reader and writer share.
struct Conn {
    queue: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<ConnShared>,
}

struct ConnShared {
    label: String,
    next_id: AtomicU64,
    dead: AtomicBool,
    /// Requests written, by id, waiting for their answer.
    pending: Mutex<HashMap<u64, Pending>>,
    /// Closes the connection (request timeout).
    kill: Notify,
}

/// A request queued for writing.
struct Outgoing {
    id: u64,
    op: OpCode,
    frame: Frame,
    reply: oneshot::Sender<Result<Response>>,
    started: Instant,
}

/// A request written, waiting for its answer.
struct Pending {
    op: OpCode,
    reply: oneshot::Sender<Result<Response>>,
    started: Instant,
    _permit: OwnedSemaphorePermit,
}

fn unavailable(label: &str, kind: io::ErrorKind, reason: impl Into<String>) -> StorageError {
    StorageError::io(label, io::Error::new(kind, reason.into()))
}

impl RemoteBookie {
    /// A client of the bookie with node id `bookie_id` listening on `addr`.
    /// Nothing is connected until the first request.
    pub fn new(bookie_id: u32, addr: SocketAddr, config: ClientConfig) -> RemoteBookie {
        RemoteBookie {
            inner: Arc::new(Inner {
                bookie_id,
                addr,
                label: format!("bookie {bookie_id} at {addr}"),
                config,
                conn: Mutex::new(None),
            }),
        }
    }

    /// The bookie's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// True while a connection is open or being opened.
    pub fn is_connected(&self) -> bool {
        self.inner
            .conn
            .lock()
            .as_ref()
            .is_some_and(|c| !c.shared.dead.load(Ordering::Acquire))
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
            let id = conn.shared.next_id.fetch_add(1, Ordering::Relaxed);
            let frame = match encode_request(id, &req, inner.config.max_frame_bytes) {
                Ok(f) => f,
                Err(e) => return fail_now(op, "rejected", e),
            };
            match conn.queue.send(Outgoing {
                id,
                op,
                frame,
                reply,
                started,
            }) {
                Ok(()) => {
                    queued = Some(conn);
                    break;
                }
                Err(mpsc::error::SendError(back)) => {
                    conn.shared.dead.store(true, Ordering::Release);
                    reply = back.reply;
                }
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
                    conn.shared.close();
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

impl ConnShared {
    fn close(&self) {
        self.dead.store(true, Ordering::Release);
        self.kill.notify_one();
    }
}

impl Inner {
    /// The live connection, or a new one (its task connects in the
    /// background; requests queue meanwhile). Needs a tokio runtime.
    fn connection(&self) -> Result<Arc<Conn>> {
        let mut slot = self.conn.lock();
        if let Some(c) = slot.as_ref() {
            if !c.shared.dead.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            unavailable(
                &self.label,
                io::ErrorKind::Other,
                "no tokio runtime to run the connection on",
            )
        })?;
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(ConnShared {
            label: self.label.clone(),
            next_id: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            kill: Notify::new(),
        });
        let span = tracing::debug_span!("bookie_client_conn", bookie = self.bookie_id, addr = %self.addr);
        runtime.spawn(run_conn(self.addr, self.config.clone(), shared.clone(), rx).instrument(span));
        let conn = Arc::new(Conn { queue, shared });
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Connect, then write and read until the connection fails, is killed, or
/// every handle on it is gone; finally fail whatever is still waiting.
async fn run_conn(
    addr: SocketAddr,
    config: ClientConfig,
    shared: Arc<ConnShared>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let ended = async {
        let stream = connect(addr, &config, &shared.label).await?;
        let (rd, wr) = stream.into_split();
        tokio::select! {
            r = write_loop(wr, &mut rx, &shared, &config) => r,
            r = read_loop(rd, &shared, config.max_frame_bytes) => r,
            _ = shared.kill.notified() => Err(unavailable(
                &shared.label,
                io::ErrorKind::TimedOut,
                "connection closed after a request timed out",
            )),
        }
    }
    .await;
    shared.dead.store(true, Ordering::Release);
    rx.close();
    let err = match ended {
        Ok(()) => {
            tracing::debug!("bookie connection idle and released");
            unavailable(
                &shared.label,
                io::ErrorKind::ConnectionAborted,
                "connection released",
            )
        }
        Err(e) => {
            tracing::debug!(error = %e, "bookie connection lost");
            e
        }
    };
    let pending: Vec<Pending> = shared.pending.lock().drain().map(|(_, p)| p).collect();
    for p in pending {
        CLIENT.failed(p.op, "unavailable");
        let _ = p.reply.send(Err(err.duplicate()));
    }
    while let Ok(out) = rx.try_recv() {
        CLIENT.failed(out.op, "unavailable");
        let _ = out.reply.send(Err(err.duplicate()));
    }
}

async fn connect(addr: SocketAddr, config: &ClientConfig, label: &str) -> Result<TcpStream> {
    let outcome = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await;
    let stream = match outcome {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let tag = if e.kind() == io::ErrorKind::ConnectionRefused {
                "refused"
            } else {
                "error"
            };
            BOOKIE_NET_CONNECTS.with_label_values(&[tag]).inc();
            return Err(unavailable(label, e.kind(), format!("connect failed: {e}")));
        }
        Err(_) => {
            BOOKIE_NET_CONNECTS.with_label_values(&["timeout"]).inc();
            return Err(unavailable(
                label,
                io::ErrorKind::TimedOut,
                format!("connect timed out after {:?}", config.connect_timeout),
            ));
        }
    };
    BOOKIE_NET_CONNECTS.with_label_values(&["ok"]).inc();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    tracing::debug!("connected to bookie");
    Ok(stream)
}

/// Most requests gathered into one vectored write.
const MAX_BATCH: usize = 256;

/// Write queued requests in queue order, each after taking its share of the
/// budget; registers each as pending before writing it. `Ok` when every
/// handle on the connection is gone.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    shared: &ConnShared,
    config: &ClientConfig,
) -> Result<()> {
    let per_request = (config.max_in_flight_bytes / config.max_in_flight_requests.max(1)).max(1);
    let units = config.max_in_flight_bytes.max(per_request);
    let budget = Arc::new(Semaphore::new(units));
    let cost = |out: &Outgoing| u32::try_from((per_request + out.frame.len).min(units)).unwrap_or(u32::MAX);
    let mut chunks = VecDeque::new();
    let mut held: Option<Outgoing> = None;
    loop {
        let first = match held.take() {
            Some(out) => out,
            None => match rx.recv().await {
                Some(out) => out,
                None => return Ok(()),
            },
        };
        // Nothing is buffered unwritten here, so waiting cannot deadlock.
        let permit = budget
            .clone()
            .acquire_many_owned(cost(&first))
            .await
            .map_err(|_| unavailable(&shared.label, io::ErrorKind::Other, "budget closed"))?;
        let mut bytes = first.frame.len;
        register(shared, first, permit, &mut chunks);
        let mut batched = 1;
        while batched < MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            match budget.clone().try_acquire_many_owned(cost(&next)) {
                Ok(permit) => {
                    bytes += next.frame.len;
                    register(shared, next, permit, &mut chunks);
                    batched += 1;
                }
                Err(_) => {
                    held = Some(next);
                    break;
                }
            }
        }
        write_chunks(&mut wr, &mut chunks)
            .await
            .map_err(|e| unavailable(&shared.label, e.kind(), format!("write failed: {e}")))?;
        CLIENT.bytes_out.inc_by(bytes as u64);
    }
}

fn register(shared: &ConnShared, out: Outgoing, permit: OwnedSemaphorePermit, chunks: &mut VecDeque<Bytes>) {
    chunks.extend(out.frame.chunks);
    shared.pending.lock().insert(
        out.id,
        Pending {
            op: out.op,
            reply: out.reply,
            started: out.started,
            _permit: permit,
        },
    );
}

/// Read answers and hand each to its waiter. Any answer that cannot be
/// decoded, names an unknown request id or the wrong op ends the connection.
async fn read_loop(rd: OwnedReadHalf, shared: &ConnShared, max_frame: usize) -> Result<()> {
    let mut frames = FrameReader::new(rd, max_frame);
    loop {
        let body = match frames.next_frame().await {
            Ok(Some(body)) => body,
            Ok(None) => {
                return Err(unavailable(
                    &shared.label,
                    io::ErrorKind::ConnectionAborted,
                    "connection closed by the bookie",
                ))
            }
            Err(e) => {
                return Err(unavailable(
                    &shared.label,
                    e.kind(),
                    format!("connection lost: {e}"),
                ));
            }
        };
        CLIENT
            .bytes_in
            .inc_by((body.len() + super::protocol::LEN_PREFIX) as u64);
        let (op, id, result) = decode_response(body).map_err(|e| {
            unavailable(
                &shared.label,
                io::ErrorKind::InvalidData,
                format!("bad answer: {e}"),
            )
        })?;
        let Some(p) = shared.pending.lock().remove(&id) else {
            return Err(unavailable(
                &shared.label,
                io::ErrorKind::InvalidData,
                format!("answer to unknown request {id}"),
            ));
        };
        if p.op != op {
            let reason = format!("answer of type {} to a {} request", op.name(), p.op.name());
            let _ = p.reply.send(Err(unavailable(
                &shared.label,
                io::ErrorKind::InvalidData,
                reason.clone(),
            )));
            return Err(unavailable(&shared.label, io::ErrorKind::InvalidData, reason));
        }
        let result = result.map_err(|e| match e {
            // Say which bookie's disk failed.
            StorageError::Io { path, source } => StorageError::Io {
                path: format!("{}: {path}", shared.label),
                source,
            },
            other => other,
        });
        CLIENT.finished(op, p.started.elapsed(), result.as_ref().map(|_| ()));
        let _ = p.reply.send(result);
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
    fn bookie_id(&self) -> u32 {
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
