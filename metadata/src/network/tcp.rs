//! Raft RPCs over TCP.
//!
//! Each message is a frame: a 4-byte big-endian length, then the JSON of a
//! [`RaftRequest`] or [`RaftReply`]. A connection carries one exchange at a
//! time; the client keeps idle connections per peer for reuse and opens
//! another when all are busy (votes and replication to one peer may
//! overlap). Besides openraft's three RPCs, a follower forwards client
//! writes to the leader ([`RaftRequest::ClientWrite`]), so any node can
//! change the metadata, and membership changes go to the leader
//! ([`RaftRequest::ChangeMembership`]), also from a node that is not a
//! member yet and knows only a seed's address.
//!
//! Failures map onto openraft's model: a peer that cannot be connected to
//! is `Unreachable` (openraft backs off), a call that fails midway is a
//! network error (retried), and a Raft error raised by the peer travels
//! back typed as a remote error.

use std::collections::HashMap;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{PeerTransport, RpcResult};
use crate::membership::{self, Members, MembershipChange, MembershipFailure};
use crate::model::{ApplyResult, Command};
use crate::typ::{NodeId, Raft, TypeConfig};

/// Largest frame accepted (a snapshot chunk is far smaller).
const MAX_FRAME: usize = 256 * 1024 * 1024;
/// How long connecting to a peer may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one exchange may take (a forwarded write waits for a commit).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a membership change may take (the leader may wait
/// [`membership::CATCH_UP_TIMEOUT`] for a learner to catch up).
const MEMBERSHIP_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 4;

/// A request on the Raft port.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// openraft AppendEntries (replication and heartbeats).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// openraft RequestVote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A metadata write forwarded from a follower to the leader.
    ClientWrite(Command),
    /// A membership change for the leader: a node joining through a seed,
    /// or an operator's add/remove forwarded from any member.
    ChangeMembership(MembershipChange),
}

/// Why a forwarded write did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardFailure {
    /// The receiver is not the leader (any more); `leader` is its guess.
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<NodeId>,
    },
    /// The write failed on the leader (shutting down, storage error).
    Failed(String),
}

/// The answer to a [`RaftRequest`], of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// Answer to AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to Vote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to InstallSnapshot.
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// Answer to a forwarded write: the replicated outcome, or why it
    /// could not be applied.
    ClientWrite(Result<(u64, ApplyResult), ForwardFailure>),
    /// Answer to a membership change: the membership afterwards, or why
    /// it did not happen (`NotLeader` names the leader to ask instead).
    ChangeMembership(Result<Members, MembershipFailure>),
}

/// Failure of one exchange, before openraft's error types.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made.
    #[error("raft peer {target} at {addr} is unreachable: {reason}")]
    Unreachable {
        /// Peer id.
        target: NodeId,
        /// Address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The exchange failed after connecting.
    #[error("raft RPC to peer {target} at {addr} failed: {reason}")]
    Failed {
        /// Peer id.
        target: NodeId,
        /// Address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Failure of an exchange with a node known only by its address.
#[derive(Debug, thiserror::Error)]
pub enum AddrCallError {
    /// No connection could be made.
    #[error("metadata node at {addr} is unreachable: {reason}")]
    Unreachable {
        /// Address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The exchange failed after connecting; its outcome is unknown.
    #[error("raft RPC to the metadata node at {addr} failed: {reason}")]
    Failed {
        /// Address.
        addr: String,
        /// Why.
        reason: String,
    },
}

async fn connect(addr: &str) -> Result<Conn, String> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no connection within {CONNECT_TIMEOUT:?}")),
    };
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    Ok((BufReader::new(r), BufWriter::new(w)))
}

/// One request and its reply on `conn`, within `timeout`.
async fn exchange(conn: &mut Conn, req: &RaftRequest, timeout: Duration) -> Result<RaftReply, String> {
    let exchange = async {
        write_frame(&mut conn.1, req).await?;
        read_frame::<_, RaftReply>(&mut conn.0).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(Some(reply))) => Ok(reply),
        Ok(Ok(None)) => Err("the peer closed the connection".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Write `msg` as one frame (4-byte big-endian length, then its JSON) and
/// flush. Public so the frame format can be exercised without a socket (the
/// fuzz harness round-trips decoded frames through it); a body over the
/// maximum frame size is an error and nothing is written.
pub async fn write_frame<W: AsyncWriteExt + Unpin, T: Serialize>(w: &mut W, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {} bytes is too large",
            body.len()
        )));
    }
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// Read one frame and decode its JSON as `T`. `Ok(None)` is a clean end of
/// stream before a frame; a length over the maximum frame size, a stream
/// ending inside a frame or undecodable JSON is an error. Never allocates
/// more than 64 KiB ahead of the bytes actually received. Public so the
/// decoder can be fuzzed without a socket.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds {MAX_FRAME}"
        )));
    }
    // The buffer grows with the bytes that actually arrive, so a forged
    // length cannot make the node allocate it up front.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    (&mut *r).take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("connection closed inside a frame ({} of {len} bytes)", body.len()),
        ));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

type Conn = (
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    BufWriter<tokio::net::tcp::OwnedWriteHalf>,
);

/// The TCP client side: pooled connections to each peer.
#[derive(Default)]
pub struct TcpTransport {
    idle: Mutex<HashMap<NodeId, Vec<Conn>>>,
}

impl TcpTransport {
    /// A transport with no connections yet.
    pub fn new() -> TcpTransport {
        TcpTransport::default()
    }

    /// One exchange with the peer `target` at `addr`.
    pub async fn call(&self, target: NodeId, addr: &str, req: &RaftRequest) -> Result<RaftReply, CallError> {
        let pooled = self.idle.lock().get_mut(&target).and_then(|v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => connect(addr).await.map_err(|reason| CallError::Unreachable {
                target,
                addr: addr.to_string(),
                reason,
            })?,
        };
        let failed = |reason: String| CallError::Failed {
            target,
            addr: addr.to_string(),
            reason,
        };
        let reply = exchange(&mut conn, req, CALL_TIMEOUT).await.map_err(failed)?;
        let mut idle = self.idle.lock();
        let pool = idle.entry(target).or_default();
        if pool.len() < IDLE_PER_PEER {
            pool.push(conn);
        }
        Ok(reply)
    }

    /// Ask the metadata node at `addr` (a seed, or the leader) to carry out
    /// a membership change, on a connection of its own (the node's id may
    /// be unknown). `NotLeader` answers name the leader to ask instead.
    pub async fn change_membership(
        &self,
        addr: &str,
        change: MembershipChange,
    ) -> Result<Result<Members, MembershipFailure>, AddrCallError> {
        let mut conn = connect(addr).await.map_err(|reason| AddrCallError::Unreachable {
            addr: addr.to_string(),
            reason,
        })?;
        let failed = |reason: String| AddrCallError::Failed {
            addr: addr.to_string(),
            reason,
        };
        match exchange(
            &mut conn,
            &RaftRequest::ChangeMembership(change),
            MEMBERSHIP_CALL_TIMEOUT,
        )
        .await
        .map_err(failed)?
        {
            RaftReply::ChangeMembership(r) => Ok(r),
            other => Err(failed(format!("unexpected reply {other:?}"))),
        }
    }

    /// Forward a metadata write to the node `target` (believed leader).
    pub async fn forward_write(
        &self,
        target: NodeId,
        addr: &str,
        cmd: Command,
    ) -> Result<Result<(u64, ApplyResult), ForwardFailure>, CallError> {
        match self.call(target, addr, &RaftRequest::ClientWrite(cmd)).await? {
            RaftReply::ClientWrite(r) => Ok(r),
            other => Err(CallError::Failed {
                target,
                addr: addr.to_string(),
                reason: format!("unexpected reply {other:?}"),
            }),
        }
    }
}

fn rpc_error<E: std::error::Error>(e: CallError) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    match &e {
        CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::Failed { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected<E: std::error::Error>(
    target: NodeId,
    node: &BasicNode,
    reply: &RaftReply,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    rpc_error(CallError::Failed {
        target,
        addr: node.addr.clone(),
        reason: format!("reply of the wrong kind: {reply:?}"),
    })
}

// The error type is openraft's, sized as openraft defines it.
#[allow(clippy::result_large_err)]
fn remote<T, E: std::error::Error>(
    target: NodeId,
    node: &BasicNode,
    r: Result<T, RaftError<NodeId, E>>,
) -> RpcResult<T, E> {
    r.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(target, node.clone(), e)))
}

impl PeerTransport for TcpTransport {
    async fn append_entries(
        &self,
        target: NodeId,
        node: &BasicNode,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self
            .call(target, &node.addr, &RaftRequest::AppendEntries(rpc))
            .await
        {
            Ok(RaftReply::AppendEntries(r)) => remote(target, node, r),
            Ok(other) => Err(unexpected(target, node, &other)),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn vote(
        &self,
        target: NodeId,
        node: &BasicNode,
        rpc: VoteRequest<NodeId>,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(target, &node.addr, &RaftRequest::Vote(rpc)).await {
            Ok(RaftReply::Vote(r)) => remote(target, node, r),
            Ok(other) => Err(unexpected(target, node, &other)),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        node: &BasicNode,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self
            .call(target, &node.addr, &RaftRequest::InstallSnapshot(rpc))
            .await
        {
            Ok(RaftReply::InstallSnapshot(r)) => remote(target, node, r),
            Ok(other) => Err(unexpected(target, node, &other)),
            Err(e) => Err(rpc_error(e)),
        }
    }
}

/// Answer Raft RPCs arriving on `listener` with `raft` until `shutdown`
/// turns true.
pub async fn serve(listener: TcpListener, raft: Raft, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let raft = raft.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, raft, shutdown).await {
                        debug!(%peer, error = %e, "raft connection closed");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "raft listener accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    raft: Raft,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    loop {
        let req = tokio::select! {
            req = read_frame::<_, RaftRequest>(&mut r) => req?,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(req) = req else { return Ok(()) };
        let reply = match req {
            RaftRequest::AppendEntries(rpc) => RaftReply::AppendEntries(raft.append_entries(rpc).await),
            RaftRequest::Vote(rpc) => RaftReply::Vote(raft.vote(rpc).await),
            RaftRequest::InstallSnapshot(rpc) => RaftReply::InstallSnapshot(raft.install_snapshot(rpc).await),
            RaftRequest::ClientWrite(cmd) => RaftReply::ClientWrite(client_write(&raft, cmd).await),
            RaftRequest::ChangeMembership(change) => {
                RaftReply::ChangeMembership(membership::apply(&raft, change).await)
            }
        };
        write_frame(&mut w, &reply).await?;
    }
}

/// Apply a forwarded write on the leader; the answer carries the log index
/// of the entry so the forwarding node can wait until its own replica has
/// applied it (read-your-writes on every node).
async fn client_write(raft: &Raft, cmd: Command) -> Result<(u64, ApplyResult), ForwardFailure> {
    use openraft::error::ClientWriteError;
    match raft.client_write(cmd).await {
        Ok(resp) => Ok((resp.log_id.index, resp.data)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ForwardFailure::NotLeader { leader: f.leader_id })
        }
        Err(e) => Err(ForwardFailure::Failed(e.to_string())),
    }
}
