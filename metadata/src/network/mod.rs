//! Raft RPC transport between metadata replicas.
//!
//! [`PeerTransport`] is the wire under openraft's network: one
//! request/response exchange per call. [`tcp::TcpTransport`] carries the
//! RPCs over TCP to [`tcp::serve`] on each peer's Raft listener;
//! [`NoPeers`] is the transport of a single-voter group, where every peer
//! is reported unreachable (nothing here ever pretends an RPC succeeded).

pub mod tcp;

use std::sync::Arc;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::typ::{NodeId, TypeConfig};

/// Error returned by a [`PeerTransport`]: the peer could not be reached (or
/// the connection failed mid-call).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Nothing answered at the peer's address; openraft backs off.
    #[error("raft peer {target} at {addr} is unreachable: {reason}")]
    Unreachable {
        /// The peer's node id.
        target: NodeId,
        /// The address that was tried.
        addr: String,
        /// Why it could not be reached.
        reason: String,
    },
    /// The call started but failed (I/O error, bad frame).
    #[error("raft RPC to peer {target} failed: {reason}")]
    Failed {
        /// The peer's node id.
        target: NodeId,
        /// What went wrong.
        reason: String,
    },
}

/// The result of one RPC as openraft sees it.
pub type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// The wire under the Raft network: one implementation per transport.
pub trait PeerTransport: Send + Sync + 'static {
    /// Send an AppendEntries request to `target` and await its answer.
    fn append_entries(
        &self,
        target: NodeId,
        node: &BasicNode,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> impl std::future::Future<Output = RpcResult<AppendEntriesResponse<NodeId>>> + Send;
    /// Send a Vote request to `target` and await its answer.
    fn vote(
        &self,
        target: NodeId,
        node: &BasicNode,
        rpc: VoteRequest<NodeId>,
    ) -> impl std::future::Future<Output = RpcResult<VoteResponse<NodeId>>> + Send;
    /// Send one InstallSnapshot chunk to `target` and await its answer.
    fn install_snapshot(
        &self,
        target: NodeId,
        node: &BasicNode,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> impl std::future::Future<Output = RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError>> + Send;
}

/// The transport of a single-voter group: no peer is ever reachable.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPeers;

impl NoPeers {
    fn refuse(target: NodeId, node: &BasicNode) -> TransportError {
        TransportError::Unreachable {
            target,
            addr: node.addr.clone(),
            reason: "this build has no Raft peer transport (single-voter metadata group)".into(),
        }
    }
}

impl PeerTransport for NoPeers {
    async fn append_entries(
        &self,
        target: NodeId,
        node: &BasicNode,
        _rpc: AppendEntriesRequest<TypeConfig>,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        Err(to_rpc_error(Self::refuse(target, node)))
    }

    async fn vote(
        &self,
        target: NodeId,
        node: &BasicNode,
        _rpc: VoteRequest<NodeId>,
    ) -> RpcResult<VoteResponse<NodeId>> {
        Err(to_rpc_error(Self::refuse(target, node)))
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        node: &BasicNode,
        _rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        Err(to_rpc_error(Self::refuse(target, node)))
    }
}

/// The openraft network factory over a [`PeerTransport`].
pub struct Network<T: PeerTransport> {
    transport: Arc<T>,
}

impl<T: PeerTransport> Network<T> {
    /// A network sending every RPC through `transport`.
    pub fn new(transport: T) -> Self {
        Self::shared(Arc::new(transport))
    }

    /// A network over a transport also used elsewhere (write forwarding).
    pub fn shared(transport: Arc<T>) -> Self {
        Self { transport }
    }
}

impl<T: PeerTransport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = PeerClient<T>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            transport: self.transport.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// Connection to one peer.
pub struct PeerClient<T: PeerTransport> {
    transport: Arc<T>,
    target: NodeId,
    node: BasicNode,
}

/// The openraft form of a transport failure: unreachable peers make
/// openraft back off; failed calls are retried.
pub fn to_rpc_error<E: std::error::Error>(
    e: TransportError,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    match &e {
        TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        TransportError::Failed { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

impl<T: PeerTransport> RaftNetwork<TypeConfig> for PeerClient<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.transport.append_entries(self.target, &self.node, rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.transport
            .install_snapshot(self.target, &self.node, rpc)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.transport.vote(self.target, &self.node, rpc).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_peers_reports_unreachable() {
        let mut factory = Network::new(NoPeers);
        let mut client = factory
            .new_client(NodeId::new(2), &BasicNode::new("127.0.0.1:1"))
            .await;
        let rpc = VoteRequest::new(openraft::Vote::new(1, NodeId::new(1)), None);
        let err = client
            .vote(rpc, RPCOption::new(std::time::Duration::from_millis(10)))
            .await
            .expect_err("no peer transport");
        assert!(matches!(err, RPCError::Unreachable(_)), "got {err:?}");
    }
}
