//! One pipelined connection to a remote bookie: an ordered queue of
//! encoded requests, a writer that takes budget in queue order and writes
//! with vectored I/O, a reader that matches answers to requests by id, and
//! the failure path that fails everything waiting when the connection ends.

use std::collections::{HashMap, VecDeque};
use std::io;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use distlog_metadata::NodeId;
use parking_lot::Mutex;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::Instrument;

use super::budget::{Budget, Share};
use super::client::BookieAddr;
use super::client::ClientConfig;
use super::frame::{write_chunks, FrameReader};
use super::net_metrics::CLIENT;
use super::protocol::{decode_response, encode_request, Frame, OpCode, Request, Response, LEN_PREFIX};
use crate::error::{Result, StorageError};
use crate::metrics::BOOKIE_NET_CONNECTS;

/// One connection: the ordered queue to its writer, and the state its
/// reader and writer share.
pub(super) struct Conn {
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
    _share: Share,
}

/// A connection-level failure talking to `label`'s bookie, as an I/O error
/// whose path names the bookie.
pub(super) fn unavailable(label: &str, kind: io::ErrorKind, reason: impl Into<String>) -> StorageError {
    StorageError::io(label, io::Error::new(kind, reason.into()))
}

/// What became of a request handed to [`Conn::enqueue`].
pub(super) enum Enqueued {
    /// On the queue; the answer will arrive on the reply channel.
    Queued,
    /// The connection had already closed its queue: the reply channel is
    /// handed back for another connection.
    Closed(oneshot::Sender<Result<Response>>),
}

impl Conn {
    /// Start a connection to `addr`: its task connects in the background
    /// (requests queue meanwhile). Needs a tokio runtime.
    pub(super) fn open(
        bookie_id: NodeId,
        addr: BookieAddr,
        label: &str,
        config: &ClientConfig,
    ) -> Result<Arc<Conn>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            unavailable(
                label,
                io::ErrorKind::Other,
                "no tokio runtime to run the connection on",
            )
        })?;
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(ConnShared {
            label: label.to_string(),
            next_id: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            kill: Notify::new(),
        });
        let span = tracing::debug_span!("bookie_client_conn", bookie = bookie_id.get(), %addr);
        runtime.spawn(run_conn(addr, config.clone(), shared.clone(), rx).instrument(span));
        Ok(Arc::new(Conn { queue, shared }))
    }

    /// False once the connection failed, was closed, or is closing.
    pub(super) fn is_alive(&self) -> bool {
        !self.shared.dead.load(Ordering::Acquire)
    }

    /// Give the request the next id, encode it and put it on the queue,
    /// synchronously: requests are written in the order of these calls.
    /// Fails (nothing queued) if the frame cannot be encoded.
    pub(super) fn enqueue(
        &self,
        req: &Request,
        reply: oneshot::Sender<Result<Response>>,
        started: Instant,
        max_frame: usize,
    ) -> Result<Enqueued> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(id, req, max_frame)?;
        let out = Outgoing {
            id,
            op: req.op(),
            frame,
            reply,
            started,
        };
        match self.queue.send(out) {
            Ok(()) => Ok(Enqueued::Queued),
            Err(mpsc::error::SendError(back)) => {
                self.shared.dead.store(true, Ordering::Release);
                Ok(Enqueued::Closed(back.reply))
            }
        }
    }

    /// Close the connection now (a request timed out: the bookie is
    /// presumed stuck); everything in flight fails, the next call reconnects.
    pub(super) fn close(&self) {
        self.shared.dead.store(true, Ordering::Release);
        self.shared.kill.notify_one();
    }
}

/// Connect, then write and read until the connection fails, is killed, or
/// every handle on it is gone; finally fail whatever is still waiting.
async fn run_conn(
    addr: BookieAddr,
    config: ClientConfig,
    shared: Arc<ConnShared>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let ended = async {
        let stream = connect(&addr, &config, &shared.label).await?;
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

/// Connect to `addr`, resolving a name first (within the same timeout).
async fn connect(addr: &BookieAddr, config: &ClientConfig, label: &str) -> Result<TcpStream> {
    let dial = async {
        match addr {
            BookieAddr::Socket(sock) => TcpStream::connect(*sock).await,
            BookieAddr::Host(host) => TcpStream::connect(host.as_str()).await,
        }
    };
    let outcome = tokio::time::timeout(config.connect_timeout, dial).await;
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
    let budget = Budget::new(config.max_in_flight_requests, config.max_in_flight_bytes);
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
        let share = budget
            .take(first.frame.len)
            .await
            .ok_or_else(|| unavailable(&shared.label, io::ErrorKind::Other, "budget closed"))?;
        let mut bytes = first.frame.len;
        register(shared, first, share, &mut chunks);
        let mut batched = 1;
        while batched < MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            match budget.try_take(next.frame.len) {
                Some(share) => {
                    bytes += next.frame.len;
                    register(shared, next, share, &mut chunks);
                    batched += 1;
                }
                None => {
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

fn register(shared: &ConnShared, out: Outgoing, share: Share, chunks: &mut VecDeque<Bytes>) {
    chunks.extend(out.frame.chunks);
    shared.pending.lock().insert(
        out.id,
        Pending {
            op: out.op,
            reply: out.reply,
            started: out.started,
            _share: share,
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
        CLIENT.bytes_in.inc_by((body.len() + LEN_PREFIX) as u64);
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
