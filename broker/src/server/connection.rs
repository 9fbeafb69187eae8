//! One Kafka client connection: read frames, handle requests concurrently,
//! answer strictly in request order.
//!
//! Kafka clients pipeline many requests on one connection and match
//! responses by order (and correlation id). The reader parses each request
//! header, spawns the request's handling as its own task, and queues the
//! task's handle; the writer awaits the handles in queue order, so a slow
//! request (a long-poll fetch) delays later responses but never reorders
//! them. The queue is bounded ([`MAX_IN_FLIGHT`]), which bounds memory and
//! pushes back on a client that pipelines without reading.
//!
//! What is decoded here is only the header; the body goes to a
//! [`Dispatcher`], the seam that lets tests substitute the real handlers.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
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
    /// For produce requests: this request's turn in the connection's
    /// append order (see [`ProduceTurn`]).
    pub turn: Option<ProduceTurn>,
    /// The client's host as Kafka reports it in DescribeGroups (`/ip`).
    pub client_host: Arc<str>,
}

/// Keeps the appends of one connection's produce requests in request
/// order while the requests themselves run concurrently. Kafka handles a
/// connection's requests one at a time, and clients (librdkafka without
/// idempotence) rely on pipelined produce requests being stored in the
/// order sent. Each produce request waits for its predecessor's appends to
/// be queued ([`ProduceTurn::wait`]), queues its own, then passes the turn
/// on ([`ProduceTurn::pass`], or by being dropped, so an error never
/// blocks the connection).
#[derive(Debug)]
pub struct ProduceTurn {
    prev: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
}

impl ProduceTurn {
    /// A turn after `prev` (none for the connection's first produce); the
    /// returned receiver fires when this turn is passed.
    pub fn after(prev: Option<oneshot::Receiver<()>>) -> (ProduceTurn, oneshot::Receiver<()>) {
        let (done, next) = oneshot::channel();
        (ProduceTurn { prev, done }, next)
    }

    /// Wait until every earlier produce request of the connection has
    /// queued its appends.
    pub async fn wait(&mut self) {
        if let Some(prev) = self.prev.take() {
            let _ = prev.await;
        }
    }

    /// Let the next produce request of the connection queue its appends.
    pub fn pass(self) {
        let _ = self.done.send(());
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
        turn: None,
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
    let mut last_produce: Option<oneshot::Receiver<()>> = None;
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
        if api_key == ApiKey::Produce {
            let (turn, next) = ProduceTurn::after(last_produce.take());
            req.turn = Some(turn);
            last_produce = Some(next);
        }
        let correlation_id = req.header.correlation_id;
        let d = dispatcher.clone();
        let task = tokio::spawn(async move {
            let label = api_label(api_key);
            metrics::REQUESTS.with_label_values(&[label.as_str()]).inc();
            let started = Instant::now();
            let out = d.dispatch(req).await;
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
