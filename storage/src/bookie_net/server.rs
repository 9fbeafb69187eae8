//! The bookie service: serves a bookie (any [`BookieClient`], in practice
//! the node's [`crate::bookie::LocalBookie`]) to remote ledger clients over
//! TCP.
//!
//! Per connection, one task reads frames and one writes answers. Requests
//! are dispatched in the order they arrive — an add is handed to the
//! bookie's group committer (`add_entry` enqueues synchronously) before the next
//! frame is even read, so pipelined adds keep their order end to end — and
//! answered as they complete, in any order, matched by request id.
//!
//! Backpressure: a request holds a share of the connection's budget
//! (`max_in_flight_requests`, `max_in_flight_bytes` of request frames)
//! from decoding until its answer is written; when the budget is spent the
//! reader stops reading, and TCP flow control pushes back on the client.
//! An undecodable or oversized frame closes the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::budget::{Budget, Share};
use super::frame::{write_chunks, FrameReader};
use super::net_metrics::SERVER;
use super::protocol::{decode_request, encode_response, Frame, Request, Response, DEFAULT_MAX_FRAME};
use crate::error::{Result, StorageError};
use crate::ledger::BookieClient;
use crate::metrics::BOOKIE_NET_SERVER_CONNECTIONS;

/// Limits of the bookie service, per connection.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame body accepted or sent (reads are cut to fit).
    pub max_frame_bytes: usize,
    /// Requests decoded but not yet answered, per connection.
    pub max_in_flight_requests: usize,
    /// Request frame bytes decoded but not yet answered, per connection.
    pub max_in_flight_bytes: usize,
    /// Longest long-poll a `read_lac` may ask for (longer asks are cut).
    pub max_lac_wait: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME,
            max_in_flight_requests: 4096,
            max_in_flight_bytes: 64 << 20,
            max_lac_wait: Duration::from_secs(60),
        }
    }
}

/// A running bookie service. Dropping it stops accepting and closes every
/// connection (as [`BookieServer::shutdown`] does, without waiting).
pub struct BookieServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BookieServer {
    /// Bind `addr` and serve `bookie` on it until shut down. Must be called
    /// within a tokio runtime.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        bookie: Arc<dyn BookieClient>,
        config: ServerConfig,
    ) -> Result<BookieServer> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| StorageError::io("bookie listener", e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| StorageError::io("bookie listener", e))?;
        let (stop, stopped) = watch::channel(false);
        let span =
            tracing::info_span!("bookie_server", bookie = bookie.bookie_id().get(), addr = %local_addr);
        let task = tokio::spawn(accept_loop(listener, bookie, Arc::new(config), stopped).instrument(span));
        tracing::info!(addr = %local_addr, "bookie service listening");
        Ok(BookieServer {
            local_addr,
            stop,
            task: Some(task),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, close every connection (requests in flight get no
    /// answer; adds already handed to the group committer still become durable) and
    /// wait until the listener and all connection tasks are gone, so the
    /// port can be bound again.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for BookieServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    bookie: Arc<dyn BookieClient>,
    config: Arc<ServerConfig>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let span = tracing::debug_span!("bookie_conn", %peer);
                    conns.spawn(serve(stream, bookie.clone(), config.clone()).instrument(span));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "bookie service accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
    tracing::info!("bookie service stopped");
}

/// An answer ready to write, holding its request's share of the budget.
struct Outbound {
    frame: Frame,
    _share: Share,
}

/// Decrements the open-connections gauge when a connection ends, however.
struct ConnGauge;

impl ConnGauge {
    fn open() -> ConnGauge {
        BOOKIE_NET_SERVER_CONNECTIONS.inc();
        ConnGauge
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        BOOKIE_NET_SERVER_CONNECTIONS.dec();
    }
}

async fn serve(stream: TcpStream, bookie: Arc<dyn BookieClient>, config: Arc<ServerConfig>) {
    let _gauge = ConnGauge::open();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let (read, write) = tokio::join!(read_loop(rd, bookie, &config, tx), write_loop(wr, rx));
    match (read, write) {
        (Ok(()), Ok(())) => tracing::debug!("bookie connection closed by peer"),
        (Err(e), _) if e.kind() == std::io::ErrorKind::InvalidData => {
            tracing::warn!(error = %e, "bookie connection closed: bad frame");
        }
        (Err(e), _) | (_, Err(e)) => tracing::debug!(error = %e, "bookie connection ended"),
    }
}

/// Read, decode and dispatch requests until end of stream or a bad frame.
/// Either way the requests still running are then dropped (a client never
/// half-closes, so nobody would read their answers; adds already handed to
/// the group committer still become durable) — a long poll does not keep a dead
/// connection's task alive.
async fn read_loop(
    rd: OwnedReadHalf,
    bookie: Arc<dyn BookieClient>,
    config: &ServerConfig,
    tx: mpsc::UnboundedSender<Outbound>,
) -> std::io::Result<()> {
    let mut frames = FrameReader::new(rd, config.max_frame_bytes);
    let budget = Budget::new(config.max_in_flight_requests, config.max_in_flight_bytes);
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let Some(body) = frames.next_frame().await? else {
            break;
        };
        let frame_len = body.len() + super::protocol::LEN_PREFIX;
        SERVER.bytes_in.inc_by(frame_len as u64);
        let (id, req) = decode_request(body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        // Waiting here stops reading: TCP pushes back on the client.
        let share = budget
            .take(frame_len)
            .await
            .ok_or_else(|| std::io::Error::other("budget closed"))?;
        dispatch(&mut tasks, &bookie, config, &tx, id, req, share);
    }
    Ok(())
}

/// Start one request. Adds are enqueued on the bookie here, synchronously,
/// so they reach the group committer in arrival order.
fn dispatch(
    tasks: &mut JoinSet<()>,
    bookie: &Arc<dyn BookieClient>,
    config: &ServerConfig,
    tx: &mpsc::UnboundedSender<Outbound>,
    id: u64,
    req: Request,
    share: Share,
) {
    let started = Instant::now();
    let op = req.op();
    let max_frame = config.max_frame_bytes;
    let b = bookie.clone();
    let work: futures::future::BoxFuture<'static, Result<Response>> = match req {
        Request::Add(add) => {
            let added = bookie.add_entry(add);
            Box::pin(async move { added.await.map(|()| Response::Added) })
        }
        Request::Read {
            ledger,
            first,
            last,
            max_bytes,
        } => {
            // Leave room for the rows and header: answers are cut to fit anyway.
            let max = (max_bytes as usize).min(max_frame / 2);
            Box::pin(async move {
                b.read_entries(ledger, first, last, max)
                    .await
                    .map(Response::Entries)
            })
        }
        Request::EntryForSeq { ledger, seq } => {
            Box::pin(async move { b.entry_for_seq(ledger, seq).await.map(Response::Row) })
        }
        Request::EntryForTxid { ledger, txid } => {
            Box::pin(async move { b.entry_for_txid(ledger, txid).await.map(Response::Row) })
        }
        Request::LastEntry { ledger } => {
            Box::pin(async move { b.last_entry(ledger).await.map(Response::Row) })
        }
        Request::Fence { ledger } => Box::pin(async move { b.fence(ledger).await.map(Response::Row) }),
        Request::Delete { ledger } => {
            Box::pin(async move { b.delete(ledger).await.map(|()| Response::Deleted) })
        }
        Request::ReadLac {
            ledger,
            known,
            wait_ms,
        } => {
            let wait = Duration::from_millis(u64::from(wait_ms)).min(config.max_lac_wait);
            Box::pin(async move { b.read_lac(ledger, known, wait).await.map(Response::Lac) })
        }
        Request::LedgerInfo { ledger } => {
            Box::pin(async move { b.ledger_info(ledger).await.map(Response::Info) })
        }
    };
    let tx = tx.clone();
    tasks.spawn(async move {
        let result = work.await;
        SERVER.finished(op, started.elapsed(), result.as_ref().map(|_| ()));
        if let Err(e) = &result {
            tracing::debug!(op = op.name(), id, error = %e, "bookie request failed");
        }
        let frame = encode_response(id, op, &result, max_frame);
        // A closed channel means the connection is gone: nobody to answer.
        let _ = tx.send(Outbound { frame, _share: share });
    });
}

/// Most answers gathered into one vectored write.
const MAX_BATCH: usize = 256;

/// Write answers as they come, batching whatever is ready into one
/// vectored write. Ends when every sender is gone.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) -> std::io::Result<()> {
    let mut chunks = VecDeque::new();
    let mut sent = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        sent.push(first);
        while sent.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => sent.push(next),
                Err(_) => break,
            }
        }
        let mut bytes = 0usize;
        for out in &sent {
            bytes += out.frame.len;
            chunks.extend(out.frame.chunks.iter().cloned());
        }
        write_chunks(&mut wr, &mut chunks).await?;
        SERVER.bytes_out.inc_by(bytes as u64);
        // Releases the budget of the answered requests.
        sent.clear();
    }
    Ok(())
}
