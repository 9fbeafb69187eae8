//! One Kafka client connection: read frames, handle requests concurrently
//! with their effects in request order ([`Turn`]), answer strictly in
//! request order.
//!
//! Kafka clients pipeline many requests on one connection and match
//! responses by order (and correlation id). The reader parses each request
//! header, spawns the request's handling as its own task, and queues the
//! task's handle; the writer awaits the handles in queue order, so a slow
//! request (a long-poll fetch) delays later responses but never reorders
//! them. The queue is bounded ([`MAX_IN_FLIGHT`]), which bounds memory and
//! pushes back on a client that pipelines without reading. Each task starts
//! its request's effects only once every earlier request's effects are
//! applied (a produce: queued), so the connection behaves as Kafka's
//! one-request-at-a-time connection does while waits that cannot change an
//! outcome (acknowledgements, long polls, rebalances) overlap ([`Turn`]).
//!
//! What is decoded here is only the header; the body goes to a
//! [`Dispatcher`], the seam that lets tests substitute the real handlers.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::{FutureExt, Shared};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use super::framing::{read_frame, FrameError};
use crate::metrics;

/// Most requests of one connection handled at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// A request whose header is decoded and whose body is not.
#[derive(Debug)]
pub struct RawRequest {
    /// The API (known: unknown keys close the connection before this).
    pub api_key: ApiKey,
    /// The decoded request header (version, correlation id, client id).
    pub header: RequestHeader,
    /// The undecoded body, sliced from the frame without a copy.
    pub body: Bytes,
    /// This request's turn in the connection's order of effects (see
    /// [`Turn`]).
    pub turn: Turn,
    /// The client's host as Kafka reports it in DescribeGroups (`/ip`).
    pub client_host: Arc<str>,
}

/// A one-shot signal several waiters can await; it fires when sent or
/// when its sender is dropped (so a failed request never blocks the
/// connection).
type Signal = Shared<oneshot::Receiver<()>>;

/// One request's place in its connection's order of effects.
///
/// Kafka handles a connection's requests one at a time, so each request
/// sees the effects of every earlier one, and clients rely on that (an
/// OffsetFetch after an OffsetCommit returns the committed offset; a
/// ListOffsets after a produce sees its records). distlog handles a
/// connection's requests concurrently, but a request's effects start only
/// after the effects of every earlier request of the connection are
/// *applied*: its handler waits ([`Turn::wait`]) until they are, and it
/// declares its own effects applied with [`Turn::release`] (or by dropping
/// the turn when it finishes). Only what cannot change an outcome overlaps:
///
/// - a produce waits only until earlier requests' effects are *queued*
///   ([`Turn::queued`]): it declares its appends queued as soon as they
///   are, and keeps its turn (applied) until they are acknowledged, so
///   pipelined produces still append concurrently, in request order, while
///   any other request after a produce sees its records;
/// - requests parked waiting for something else release their turn once
///   their own effect is registered: a JoinGroup or SyncGroup once the
///   member is registered as waiting (a Heartbeat or LeaveGroup behind it
///   on the same connection is not blocked by the rebalance), a Fetch
///   before its long poll (it changes nothing).
///
/// Both signals of a request fire only after the same signal of every
/// earlier request of the connection ([`TurnChain`]), whatever order the
/// handlers run in.
#[derive(Debug, Default)]
pub struct Turn {
    wait_for: Option<Signal>,
    queued: Option<oneshot::Sender<()>>,
    applied: Option<oneshot::Sender<()>>,
}

impl Turn {
    /// Wait until every earlier request of the connection has applied its
    /// effects (for a produce: queued them).
    pub async fn wait(&mut self) {
        if let Some(prev) = self.wait_for.take() {
            let _ = prev.await;
        }
    }

    /// This request's effects are queued in their final order: later
    /// produces may queue theirs.
    pub fn queued(&mut self) {
        if let Some(tx) = self.queued.take() {
            let _ = tx.send(());
        }
    }

    /// This request's effects are applied: every later request may start
    /// its own. Implies [`Turn::queued`]. Dropping the turn does the same.
    pub fn release(&mut self) {
        self.queued();
        if let Some(tx) = self.applied.take() {
            let _ = tx.send(());
        }
    }
}

/// The connection's side of its requests' turns: hands out each request's
/// [`Turn`] and chains its signals behind the previous request's.
#[derive(Debug, Default)]
pub struct TurnChain {
    last_queued: Option<Signal>,
    last_applied: Option<Signal>,
}

impl TurnChain {
    /// The turn of the connection's next request, and the future that
    /// forwards its signals to later requests once the earlier ones fired;
    /// the future must run alongside the request (it ends when the turn is
    /// released and every earlier turn was). `after_queued`: the request
    /// needs only earlier effects queued (produce), not applied.
    pub fn next(&mut self, after_queued: bool) -> (Turn, impl Future<Output = ()> + Send + 'static) {
        let (queued, own_queued) = oneshot::channel();
        let (applied, own_applied) = oneshot::channel();
        let (chained_queued, q_rx) = oneshot::channel::<()>();
        let (chained_applied, a_rx) = oneshot::channel::<()>();
        let prev_queued = self.last_queued.replace(q_rx.shared());
        let prev_applied = self.last_applied.replace(a_rx.shared());
        let wait_for = if after_queued {
            prev_queued.clone()
        } else {
            prev_applied.clone()
        };
        let forward = async move {
            let q = async move {
                let _ = own_queued.await;
                if let Some(p) = prev_queued {
                    let _ = p.await;
                }
                let _ = chained_queued.send(());
            };
            let a = async move {
                let _ = own_applied.await;
                if let Some(p) = prev_applied {
                    let _ = p.await;
                }
                let _ = chained_applied.send(());
            };
            futures::future::join(q, a).await;
        };
        let turn = Turn {
            wait_for,
            queued: Some(queued),
            applied: Some(applied),
        };
        (turn, forward)
    }
}

/// What the connection does with a handled request.
#[derive(Debug)]
pub enum Outcome {
    /// Write this frame (size prefix, response header and body included).
    Respond(Bytes),
    /// Write this frame given as consecutive pieces (the first starts with
    /// the size prefix); large pieces — stored record bytes — are written
    /// from where they are, never copied into a response buffer.
    RespondChunks(Vec<Bytes>),
    /// Write nothing (produce with acks=0); later responses keep their order.
    NoResponse,
    /// Close the connection (undecodable body, encoding failure).
    Close(String),
}

/// Routes requests to handlers. Implemented by the broker's handler table
/// ([`crate::handlers::KafkaDispatcher`]) and by test doubles.
pub trait Dispatcher: Send + Sync + 'static {
    /// Whether requests of this API and version are served. A request that
    /// is not accepted closes the connection (what Kafka does), except that
    /// an implementation should accept every ApiVersions version to answer
    /// KIP-511 style.
    fn accepts(&self, api_key: ApiKey, version: i16) -> bool;

    /// Handle one request.
    fn dispatch(self: Arc<Self>, req: RawRequest) -> impl Future<Output = Outcome> + Send + 'static;
}

/// Why a frame's header was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The frame is shorter than api key + version.
    TooShort,
    /// The api key is not a Kafka API.
    UnknownApiKey(i16),
    /// The header does not decode at the header version of its API.
    Undecodable(String),
}

/// Parse a frame's request header (at the header version its api key and
/// version call for); the rest of the frame is the body.
pub fn parse_header(frame: Bytes) -> Result<RawRequest, HeaderError> {
    if frame.len() < 4 {
        return Err(HeaderError::TooShort);
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| HeaderError::UnknownApiKey(key))?;
    let header_version = api_key.request_header_version(version);
    let mut buf = frame;
    let mut header = RequestHeader::decode(&mut buf, header_version)
        .map_err(|e| HeaderError::Undecodable(e.to_string()))?;
    // The client id would otherwise be a slice of the frame and keep it
    // shared for the whole request, forcing a copy of produced records.
    header.client_id = header
        .client_id
        .map(|c| kafka_protocol::protocol::StrBytes::from_string(c.as_str().to_owned()));
    Ok(RawRequest {
        api_key,
        header,
        body: buf,
        turn: Turn::default(),
        client_host: Arc::from(""),
    })
}

/// The metric label of an API.
pub fn api_label(api_key: ApiKey) -> String {
    format!("{api_key:?}")
}

/// A handled (or in-progress) request awaiting its turn to be written.
struct Pending {
    api_key: ApiKey,
    correlation_id: i32,
    task: JoinHandle<Outcome>,
}

/// Serve one connection until the client closes it, a frame or header is
/// bad, a handler asks to close, or `shutdown` turns true. On every exit
/// except a handler-requested close, responses to requests already read are
/// still written (bounded by the caller's grace period).
pub async fn serve<R, W, D>(
    rd: R,
    wr: W,
    dispatcher: Arc<D>,
    max_request_bytes: usize,
    shutdown: watch::Receiver<bool>,
    peer: String,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    D: Dispatcher,
{
    let _guard = metrics::ConnectionGuard::new();
    let (tx, rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    let reader = read_loop(rd, tx, dispatcher, max_request_bytes, shutdown, peer.clone());
    let writer = write_loop(wr, rx, peer.clone());
    tokio::pin!(reader);
    tokio::pin!(writer);
    tokio::select! {
        () = &mut reader => writer.await,
        () = &mut writer => {}
    }
    debug!(%peer, "connection closed");
}

async fn read_loop<R: AsyncRead + Unpin, D: Dispatcher>(
    rd: R,
    tx: mpsc::Sender<Pending>,
    dispatcher: Arc<D>,
    max_request_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
    peer: String,
) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let client_host: Arc<str> = {
        let ip = peer.rsplit_once(':').map_or(peer.as_str(), |(ip, _)| ip);
        Arc::from(format!("/{}", ip.trim_start_matches('[').trim_end_matches(']')))
    };
    let mut turns = TurnChain::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let frame = tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
            f = read_frame(&mut rd, max_request_bytes) => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(FrameError::Io(e)) => {
                // A client hanging up (reset, broken pipe) is not a protocol error.
                debug!(%peer, error = %e, "connection ended by a socket error");
                return;
            }
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        };
        metrics::BYTES_IN.inc_by(frame.len() as u64 + 4);
        let mut req = match parse_header(frame) {
            Ok(r) => r,
            Err(e) => {
                warn!(%peer, error = ?e, "closing connection: bad request header");
                return;
            }
        };
        req.client_host = client_host.clone();
        let version = req.header.request_api_version;
        if !dispatcher.accepts(req.api_key, version) {
            warn!(%peer, api = ?req.api_key, version, "closing connection: unsupported API version");
            metrics::REQUEST_ERRORS
                .with_label_values(&[api_label(req.api_key).as_str()])
                .inc();
            return;
        }
        let api_key = req.api_key;
        // A produce waits for its turn itself, after validating its
        // records; every other request waits before it is dispatched.
        let is_produce = api_key == ApiKey::Produce;
        let (turn, forward) = turns.next(is_produce);
        req.turn = turn;
        let correlation_id = req.header.correlation_id;
        let d = dispatcher.clone();
        let task = tokio::spawn(async move {
            let label = api_label(api_key);
            metrics::REQUESTS.with_label_values(&[label.as_str()]).inc();
            let started = Instant::now();
            let handle = async move {
                if !is_produce {
                    req.turn.wait().await;
                }
                d.dispatch(req).await
            };
            let (out, ()) = futures::future::join(handle, forward).await;
            metrics::REQUEST_SECONDS
                .with_label_values(&[label.as_str()])
                .observe(started.elapsed().as_secs_f64());
            if matches!(out, Outcome::Close(_)) {
                metrics::REQUEST_ERRORS.with_label_values(&[label.as_str()]).inc();
            }
            out
        });
        let pending = Pending {
            api_key,
            correlation_id,
            task,
        };
        if tx.send(pending).await.is_err() {
            return; // the writer stopped: the connection is closing
        }
    }
}

/// Write responses in request order. Output is buffered and flushed
/// whenever the writer would otherwise wait (no queued request, or the next
/// one still running), so a burst of ready responses costs one syscall
/// while a response is never held back behind a slow request.
async fn write_loop<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::Receiver<Pending>, peer: String) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut next: Option<Pending> = None;
    loop {
        let p = match next.take() {
            Some(p) => p,
            None => {
                if wr.flush().await.is_err() {
                    break;
                }
                match rx.recv().await {
                    Some(p) => p,
                    None => break,
                }
            }
        };
        if !p.task.is_finished() && wr.flush().await.is_err() {
            break;
        }
        match p.task.await {
            Ok(Outcome::Respond(frame)) => {
                if let Err(e) = wr.write_all(&frame).await {
                    debug!(%peer, error = %e, "write failed; closing connection");
                    break;
                }
                metrics::BYTES_OUT.inc_by(frame.len() as u64);
            }
            Ok(Outcome::RespondChunks(chunks)) => {
                let mut n = 0usize;
                let mut failed = false;
                for c in &chunks {
                    if let Err(e) = wr.write_all(c).await {
                        debug!(%peer, error = %e, "write failed; closing connection");
                        failed = true;
                        break;
                    }
                    n += c.len();
                }
                if failed {
                    break;
                }
                metrics::BYTES_OUT.inc_by(n as u64);
            }
            Ok(Outcome::NoResponse) => {}
            Ok(Outcome::Close(reason)) => {
                warn!(%peer, api = ?p.api_key, correlation_id = p.correlation_id, %reason, "closing connection");
                break;
            }
            Err(e) => {
                error!(%peer, api = ?p.api_key, correlation_id = p.correlation_id, error = %e,
                    "request handler failed; closing connection");
                metrics::REQUEST_ERRORS
                    .with_label_values(&[api_label(p.api_key).as_str()])
                    .inc();
                break;
            }
        }
        next = rx.try_recv().ok();
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}
