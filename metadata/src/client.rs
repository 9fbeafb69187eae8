//! The metadata store handle used by the rest of distlog.
//!
//! `storage` and `broker` reach the metadata store only through
//! [`MetadataStore`]: local reads without a round trip, replicated writes,
//! change notifications, and membership changes (join, add a voter, remove
//! a node).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, watch};

use crate::error::MetadataError;
use crate::membership::{self, Members, MembershipChange, MembershipFailure};
use crate::metrics;
use crate::model::{Command, CommandResponse, MetaEvent, MetaState};
use crate::network::tcp::{self, AddrCallError, CallError, ForwardFailure, TcpTransport};
use crate::network::Network;
use crate::store::{LogStore, SledStore, StateMachineStore};
use crate::typ::{NodeId, Raft};

/// Capacity of the change-notification channel; a subscriber lagging further
/// behind gets `RecvError::Lagged` and must re-read the state.
const EVENT_CAPACITY: usize = 1024;
/// How long shutdown waits for Raft's tasks to release the database.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write keeps looking for a leader to forward to.
const FORWARD_DEADLINE: Duration = Duration::from_secs(5);
/// How long a membership change keeps looking for a leader to carry it out.
const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// How to open the metadata store.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// Directory holding the sled database (created if missing).
    pub data_dir: PathBuf,
    /// This node's Raft node id.
    pub node_id: NodeId,
    /// Address of this node's Raft RPC listener: bound by `open`, and the
    /// address peers reach it at (recorded in the Raft membership) unless
    /// `advertised_raft_addr` says otherwise.
    pub raft_addr: String,
    /// The address peers reach this node's Raft listener at, when that is
    /// not `raft_addr` (a node binding `0.0.0.0:9093` in a container is
    /// reached as `node4:9093`). Recorded in the membership when the node
    /// joins as a learner, or forms a single-voter group.
    pub advertised_raft_addr: Option<String>,
    /// The initial voters (node id → Raft address), this node included,
    /// used once when the group is first formed. Empty: a single-voter
    /// group of this node. The voter with the smallest id initialises the
    /// group; the others wait to hear from it.
    pub voters: BTreeMap<NodeId, String>,
    /// Raft addresses of existing members, used when this node is not
    /// among `voters` (or `voters` is empty): instead of forming a group,
    /// the node asks the seeds in turn (retrying until the startup timeout)
    /// to add it as a learner, then replicates the whole log. A node that
    /// is already a member (restart with its data directory) does not ask
    /// again. Ignored when this node is one of `voters`.
    pub seeds: Vec<String>,
}

impl MetadataConfig {
    /// The address peers reach this node at (see [`Self::advertised_raft_addr`]).
    pub fn advertised_raft_addr(&self) -> String {
        self.advertised_raft_addr
            .clone()
            .unwrap_or_else(|| self.raft_addr.clone())
    }
}

/// Raft tuning knobs (additive to the contract). The defaults suit
/// production; tests shrink the snapshot interval to exercise snapshots.
#[derive(Debug, Clone)]
pub struct RaftTuning {
    /// Build a snapshot once this many entries were applied since the last.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept below the latest snapshot when purging.
    pub max_in_snapshot_log_to_keep: u64,
    /// How long `open` waits for a leader and for the log to be applied.
    pub startup_timeout: Duration,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 1000,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

/// Handle to the local replica of the metadata store.
pub struct MetadataStore {
    node_id: NodeId,
    raft: Raft,
    state: Arc<RwLock<MetaState>>,
    events: broadcast::Sender<MetaEvent>,
    /// The database while the store runs; taken by `shutdown`.
    sled: Mutex<Option<Arc<SledStore>>>,
    /// The Raft RPC client (also forwards writes to the leader).
    transport: Arc<TcpTransport>,
    /// Stops the Raft RPC listener.
    listener_stop: watch::Sender<bool>,
}

impl MetadataStore {
    /// Open (or create) the store under `config.data_dir`, start Raft,
    /// form the group from `config.voters` on first boot (a single-voter
    /// group when empty) or, for a node that is not a voter but has
    /// `config.seeds`, join the existing group as a learner through them,
    /// and wait until a leader is known, this node is a member and the
    /// local state machine has applied the whole log.
    pub async fn open(config: MetadataConfig) -> Result<Arc<Self>, MetadataError> {
        Self::open_tuned(config, RaftTuning::default()).await
    }

    /// [`open`](Self::open) with explicit Raft tuning (additive to the
    /// contract; used by tests to force frequent snapshots).
    #[tracing::instrument(name = "metadata_open", skip_all, fields(node_id = config.node_id.get(), dir = %config.data_dir.display()))]
    pub async fn open_tuned(config: MetadataConfig, tuning: RaftTuning) -> Result<Arc<Self>, MetadataError> {
        metrics::init();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let state = Arc::new(RwLock::new(MetaState::default()));
        let dir = config.data_dir.clone();
        let (sm_state, sm_events) = (state.clone(), events.clone());
        let (sled, sm) = tokio::task::spawn_blocking(move || {
            let sled = SledStore::open(&dir)?;
            let sm = StateMachineStore::open(sled.clone(), sm_state, sm_events)?;
            Ok::<_, MetadataError>((sled, sm))
        })
        .await
        .map_err(|e| MetadataError::Storage(format!("metadata open task failed: {e}")))??;

        let raft_config = Config {
            cluster_name: "distlog-metadata".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: tuning.max_in_snapshot_log_to_keep,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetadataError::Raft(format!("invalid raft configuration: {e}")))?;

        let listener = tokio::net::TcpListener::bind(&config.raft_addr)
            .await
            .map_err(|e| {
                MetadataError::Raft(format!(
                    "cannot listen for Raft peers on {} ({e}); choose another address with --raft-listen",
                    config.raft_addr
                ))
            })?;
        let transport = Arc::new(TcpTransport::new());
        let raft = match Raft::new(
            config.node_id,
            Arc::new(raft_config),
            Network::shared(transport.clone()),
            LogStore::new(sled.clone()),
            sm,
        )
        .await
        {
            Ok(raft) => raft,
            Err(e) => {
                return Err(MetadataError::Raft(format!(
                    "cannot start metadata raft ({e}); check the data directory"
                )))
            }
        };
        let (listener_stop, stop_rx) = watch::channel(false);
        tokio::spawn(tcp::serve(listener, raft.clone(), stop_rx));
        let store = Arc::new(Self {
            node_id: config.node_id,
            raft,
            state,
            events,
            sled: Mutex::new(Some(sled)),
            transport,
            listener_stop,
        });
        match store.start(&config, &tuning).await {
            Ok(()) => Ok(store),
            Err(e) => {
                tracing::error!(error = %e, "metadata store failed to start; shutting raft down");
                if let Err(se) = store.shutdown().await {
                    tracing::warn!(error = %se, "metadata shutdown after failed open also failed");
                }
                Err(e)
            }
        }
    }

    /// Initialise on first boot (or join through the seeds), wait for
    /// leadership and a fully applied log, and set the cluster id.
    async fn start(&self, config: &MetadataConfig, tuning: &RaftTuning) -> Result<(), MetadataError> {
        let deadline = Instant::now() + tuning.startup_timeout;
        let joining = !config.seeds.is_empty()
            && (config.voters.is_empty() || !config.voters.contains_key(&config.node_id));
        if joining {
            // Answered by the Raft core once it has loaded its state and
            // published it in the metrics read below.
            self.raft.is_initialized().await.map_err(fatal)?;
            let member = self
                .raft
                .metrics()
                .borrow()
                .membership_config
                .nodes()
                .any(|(id, _)| *id == config.node_id);
            if member {
                tracing::info!(
                    node_id = config.node_id.get(),
                    "already a metadata member; rejoining the group without asking the seeds"
                );
            } else {
                self.join(config, tuning.startup_timeout, deadline).await?;
            }
        } else {
            self.initialise(config).await?;
        }
        spawn_leader_watch(self.raft.clone());

        let node_id = self.node_id;
        self.raft
            .wait(Some(deadline.saturating_duration_since(Instant::now())))
            .metrics(
                |m| {
                    m.current_leader.is_some()
                        && m.last_applied.map(|l| l.index) >= m.last_log_index
                        && m.membership_config.nodes().any(|(id, _)| *id == node_id)
                },
                "metadata leader known, this node a member, and log applied",
            )
            .await
            .map_err(|e| {
                MetadataError::Raft(format!(
                    "metadata raft found no leader and applied log within {:?} ({e}); check that node_id \
                     {node_id} is the id this data directory was created with and that the other voters \
                     are running and reachable",
                    tuning.startup_timeout
                ))
            })?;

        if self.read(|s| s.cluster_id.is_empty()) {
            let cluster_id = uuid::Uuid::new_v4().to_string();
            self.write(Command::InitCluster { cluster_id }).await?;
        }
        tracing::info!(cluster_id = %self.read(|s| s.cluster_id.clone()), "metadata store open");
        Ok(())
    }

    /// Form the group from `config.voters` on first boot (the smallest id
    /// initialises; the others wait to hear from it).
    async fn initialise(&self, config: &MetadataConfig) -> Result<(), MetadataError> {
        let initialized = self.raft.is_initialized().await.map_err(fatal)?;
        let voters: BTreeMap<NodeId, BasicNode> = if config.voters.is_empty() {
            BTreeMap::from([(config.node_id, BasicNode::new(config.advertised_raft_addr()))])
        } else {
            config
                .voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
                .collect()
        };
        if !voters.contains_key(&config.node_id) {
            return Err(MetadataError::Raft(format!(
                "node {} is not among the metadata voters {:?}; list every voter, this node included, \
                 or give the Raft addresses of existing members as seeds to join as a learner",
                config.node_id,
                voters.keys().collect::<Vec<_>>()
            )));
        }
        let initialiser = voters.keys().next() == Some(&config.node_id);
        if !initialized && initialiser {
            match self.raft.initialize(voters.clone()).await {
                Ok(()) => tracing::info!(
                    node_id = config.node_id.get(),
                    voters = ?voters.keys().collect::<Vec<_>>(),
                    "initialised the metadata quorum"
                ),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    return Err(MetadataError::Raft(format!(
                        "cannot initialise metadata raft: {e}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Ask the seeds, in turn and until `deadline`, to add this node as a
    /// learner; a seed that is not the leader names the leader, which is
    /// asked next.
    async fn join(
        &self,
        config: &MetadataConfig,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<(), MetadataError> {
        let change = MembershipChange::AddLearner {
            node_id: config.node_id,
            addr: config.advertised_raft_addr(),
        };
        let mut last_error = String::from("no seed answered yet");
        loop {
            for seed in &config.seeds {
                let mut target = seed.clone();
                // A seed may redirect to the leader; follow a few hops.
                for _ in 0..3 {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        break;
                    }
                    let call = self.transport.change_membership(&target, change.clone());
                    let Ok(outcome) = tokio::time::timeout(remaining, call).await else {
                        last_error = format!("{target} did not answer before the startup timeout");
                        break;
                    };
                    match outcome {
                        Ok(Ok(members)) => {
                            tracing::info!(
                                node_id = config.node_id.get(),
                                via = %target,
                                voters = ?members.voters.keys().collect::<Vec<_>>(),
                                "joined the metadata group as a learner"
                            );
                            return Ok(());
                        }
                        Ok(Err(MembershipFailure::NotLeader {
                            leader_addr: Some(leader),
                            ..
                        })) => target = leader,
                        Ok(Err(MembershipFailure::NotLeader {
                            leader_addr: None, ..
                        })) => {
                            last_error = format!("{target} knows no metadata leader yet");
                            break;
                        }
                        Ok(Err(MembershipFailure::Refused(reason))) => {
                            return Err(MetadataError::Raft(format!(
                                "cannot join the metadata group through {target}: {reason}"
                            )))
                        }
                        Ok(Err(MembershipFailure::Failed(reason))) => {
                            last_error = format!("{target}: {reason}");
                            break;
                        }
                        Err(e) => {
                            last_error = e.to_string();
                            break;
                        }
                    }
                }
                if Instant::now() >= deadline {
                    return Err(MetadataError::Raft(format!(
                        "node {} could not join the metadata group through the seeds {:?} within {timeout:?} \
                         (last error: {last_error}); check that the seeds are running metadata members and \
                         reachable from this node",
                        config.node_id, config.seeds
                    )));
                }
            }
            tokio::time::sleep(
                Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }

    /// Make `node_id` (Raft address `addr`) a voter of the metadata group:
    /// it is added as a learner if it is not a member yet, and promoted
    /// once it has caught up with the leader; existing learners stay.
    /// Callable on any member (carried out by the leader). Already a voter
    /// at `addr`: no change. Returns the membership afterwards.
    pub async fn add_voter(&self, node_id: NodeId, addr: &str) -> Result<Members, MetadataError> {
        self.change_members(MembershipChange::AddVoter {
            node_id,
            addr: addr.to_string(),
        })
        .await
    }

    /// Remove `node_id` from the metadata group's voters and learners.
    /// Callable on any member (carried out by the leader). Refused for an
    /// id that is not a member and for the last voter. Returns the
    /// membership afterwards; the removed node stops receiving the log and
    /// should be shut down.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<Members, MetadataError> {
        self.change_members(MembershipChange::Remove { node_id }).await
    }

    /// The metadata group's voters and learners with their Raft addresses,
    /// as this replica knows them (no round trip).
    pub fn members(&self) -> Members {
        Members::from_metrics(&self.raft.metrics().borrow())
    }

    /// Carry out `change` on the leader: locally when this node leads, else
    /// sent to the leader, retrying while leadership moves (until
    /// [`MEMBERSHIP_DEADLINE`]).
    async fn change_members(&self, change: MembershipChange) -> Result<Members, MetadataError> {
        let deadline = Instant::now() + MEMBERSHIP_DEADLINE;
        loop {
            let outcome = if self.is_leader() {
                Ok(membership::apply(&self.raft, change.clone()).await)
            } else {
                let leader = {
                    let m = self.raft.metrics();
                    let m = m.borrow();
                    m.current_leader.and_then(|l| {
                        m.membership_config
                            .membership()
                            .get_node(&l)
                            .map(|n| n.addr.clone())
                    })
                };
                match leader {
                    Some(addr) => self.transport.change_membership(&addr, change.clone()).await,
                    None => Ok(Err(MembershipFailure::NotLeader {
                        leader: None,
                        leader_addr: None,
                    })),
                }
            };
            let last_error = match outcome {
                Ok(Ok(members)) => return Ok(members),
                Ok(Err(MembershipFailure::Refused(reason))) => return Err(MetadataError::Raft(reason)),
                Ok(Err(MembershipFailure::Failed(reason))) => return Err(MetadataError::Raft(reason)),
                Ok(Err(e @ MembershipFailure::NotLeader { .. })) => e.to_string(),
                Err(e @ AddrCallError::Unreachable { .. }) => e.to_string(),
                Err(e @ AddrCallError::Failed { .. }) => {
                    return Err(MetadataError::Raft(format!(
                        "{e}; the membership change may or may not have been applied: check members()"
                    )))
                }
            };
            if Instant::now() >= deadline {
                return Err(MetadataError::Raft(format!(
                    "no metadata leader carried out {change:?} within {MEMBERSHIP_DEADLINE:?} \
                     (last error: {last_error}); check that a majority of the voters is running, then retry"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replicate and apply a command; returns the state machine's response
    /// once the command is committed and applied locally.
    /// Refusals come back as `MetadataError::Rejected`.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, MetadataError> {
        let _timer = metrics::WRITE_SECONDS.start_timer();
        let outcome = self.write_or_forward(cmd).await.map(|(response, _)| response);
        let label = match &outcome {
            Ok(_) => "ok",
            Err(MetadataError::Rejected(_)) => "rejected",
            Err(_) => "error",
        };
        metrics::WRITES.with_label_values(&[label]).inc();
        outcome
    }

    /// A read barrier: once this returns `Ok`, the local replica has
    /// applied every command committed before the call, so a following
    /// [`MetadataStore::read`] sees them all (a linearizable read, not just
    /// a local one). It replicates a command that changes nothing (an empty
    /// [`Command::Groups`] batch) and waits until this replica applied it.
    ///
    /// For work that must not act on a lagging replica, such as deleting a
    /// ledger because no segment references it: a ledger is referenced
    /// before its first entry is written, so a ledger found on a bookie
    /// before the barrier and unreferenced after it is garbage.
    pub async fn barrier(&self) -> Result<(), MetadataError> {
        let (_, applied_here) = self.write_or_forward(Command::Groups(Vec::new())).await?;
        if applied_here {
            Ok(())
        } else {
            Err(MetadataError::Raft(format!(
                "this metadata replica did not catch up with the leader within {FORWARD_DEADLINE:?}; \
                 check its connectivity to the other voters"
            )))
        }
    }

    /// Claim `group` for this node ([`Command::ClaimGroup`]) and return the
    /// claim, once this replica has applied it: a following
    /// [`MetadataStore::read`] sees every change made to the group before
    /// the claim (it doubles as a read barrier), and the changes of earlier
    /// claimants made after it are fenced. A node cut off from the quorum
    /// cannot claim, so it never coordinates from a stale replica.
    pub async fn claim_group(&self, group: &str) -> Result<u64, MetadataError> {
        let cmd = Command::ClaimGroup {
            group: group.to_string(),
            node: self.node_id,
        };
        match self.write_or_forward(cmd).await? {
            (CommandResponse::GroupClaim(claim), true) => Ok(claim),
            (CommandResponse::GroupClaim(_), false) => Err(MetadataError::Raft(format!(
                "this metadata replica did not catch up with the leader within {FORWARD_DEADLINE:?}; \
                 check its connectivity to the other voters"
            ))),
            (other, _) => Err(MetadataError::Raft(format!(
                "unexpected answer to a group claim: {other:?}"
            ))),
        }
    }

    /// Write through the local Raft when this node leads; otherwise forward
    /// to the leader, retrying while leadership moves (until
    /// [`FORWARD_DEADLINE`]). A forwarded write whose answer was lost is not
    /// retried: its outcome is unknown.
    /// The flag is whether this replica has applied the write (always so
    /// for a local write; for a forwarded one, unless it lags).
    async fn write_or_forward(&self, cmd: Command) -> Result<(CommandResponse, bool), MetadataError> {
        // On the leader (always, on a single node) the write is local. When
        // leadership moved just before the call, the refusal names the new
        // leader: forward to it below rather than failing the caller.
        let mut first = None;
        if self.is_leader() {
            match local_outcome(self.raft.client_write(cmd.clone()).await)? {
                Ok(response) => return Ok((response, true)),
                Err(forward) => first = Some(forward),
            }
        }
        let deadline = Instant::now() + FORWARD_DEADLINE;
        let mut last_leader = None;
        loop {
            let forward = match first.take() {
                Some(f) => f,
                None => match local_outcome(self.raft.client_write(cmd.clone()).await)? {
                    Ok(response) => return Ok((response, true)),
                    Err(forward) => forward,
                },
            };
            last_leader = forward.leader_id.or(last_leader);
            if let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) {
                if leader != self.node_id {
                    match self
                        .transport
                        .forward_write(leader, &node.addr, cmd.clone())
                        .await
                    {
                        Ok(Ok((index, result))) => {
                            let applied_here = self.wait_applied(index).await;
                            return result.map(|r| (r, applied_here)).map_err(MetadataError::Rejected);
                        }
                        Ok(Err(ForwardFailure::NotLeader { .. })) | Err(CallError::Unreachable { .. }) => {}
                        Ok(Err(ForwardFailure::Failed(reason))) => return Err(MetadataError::Raft(reason)),
                        Err(e @ CallError::Failed { .. }) => {
                            return Err(MetadataError::Raft(format!(
                                "{e}; the write may or may not have been applied"
                            )))
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(match last_leader {
                    Some(leader) => MetadataError::ForwardToLeader { leader: Some(leader) },
                    None => MetadataError::NoLeader,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until this replica has applied log `index`, so that a caller
    /// reading right after its forwarded write sees the write (the leader
    /// answers once it applied the entry; followers apply a moment later).
    /// Gives up after [`FORWARD_DEADLINE`] with a warning: the write did
    /// apply, only the local view lags (a partitioned follower). Returns
    /// whether the replica caught up.
    async fn wait_applied(&self, index: u64) -> bool {
        let waited = self
            .raft
            .wait(Some(FORWARD_DEADLINE))
            .applied_index_at_least(Some(index), "forwarded write applied locally")
            .await;
        if let Err(e) = &waited {
            tracing::warn!(index, error = %e, "local metadata replica lags behind a forwarded write");
        }
        waited.is_ok()
    }

    /// Read the local replica's state (no round trip). Do not hold across
    /// awaits: `f` runs under a read lock.
    pub fn read<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        f(&self.state.read())
    }

    /// [`MetadataStore::read`] for code that may already run inside a
    /// `read` closure of the same thread (a callback invoked under it, such
    /// as storage's per-topic settings function): it never waits for a
    /// queued writer, so a nested read cannot deadlock against one.
    pub fn read_nested<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        f(&self.state.read_recursive())
    }

    /// Subscribe to change notifications published after each apply.
    pub fn subscribe(&self) -> broadcast::Receiver<MetaEvent> {
        self.events.subscribe()
    }

    /// Whether this node is currently the Raft leader (the controller).
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// Resolves once this replica's Raft core has stopped on its own: a
    /// storage error (a full or failing disk under sled), a panic. Such a
    /// replica never learns or writes anything again, yet `read` keeps
    /// answering its last state, so a node that went on would serve stale
    /// metadata (old owners, old leaders) for ever. The embedder stops the
    /// node instead, to be restarted on its data once the disk is fixed.
    /// Never resolves before [`shutdown`](Self::shutdown) is called
    /// otherwise, and is not meant to be awaited across it.
    pub async fn failed(&self) -> MetadataError {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(f) = &metrics.borrow_and_update().running_state {
                return fatal(f.clone());
            }
            if metrics.changed().await.is_err() {
                return MetadataError::Raft("metadata raft is shut down".into());
            }
        }
    }

    /// A copy of openraft's current metrics for this replica (term, leader,
    /// last applied, snapshot, purged log): for health checks and tests.
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The metadata quorum as this replica sees it (leader, term, committed
    /// index, members and, on the leader, each member's replicated index),
    /// for DescribeQuorum. Asks the Raft core for the committed index (one
    /// round trip to its task; no network).
    pub async fn quorum_status(&self) -> Result<crate::quorum::QuorumStatus, MetadataError> {
        let committed = self
            .raft
            .with_raft_state(|st| st.committed.map(|l| l.index))
            .await
            .map_err(fatal)?;
        let m = self.raft.metrics().borrow().clone();
        Ok(crate::quorum::QuorumStatus::from_metrics(&m, committed))
    }

    /// Stop Raft and flush sled.
    ///
    /// Once this returns Ok the database is closed and its directory may be
    /// reopened (also in this process). Writes fail afterwards; `read` keeps
    /// returning the last state. Calling it again is a no-op.
    pub async fn shutdown(&self) -> Result<(), MetadataError> {
        let Some(sled) = self.sled.lock().take() else {
            return Ok(());
        };
        let _ = self.listener_stop.send(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata raft core ended abnormally during shutdown");
        }
        let flush_handle = sled.clone();
        tokio::task::spawn_blocking(move || flush_handle.flush())
            .await
            .map_err(|e| MetadataError::Storage(format!("metadata flush task failed: {e}")))?
            .map_err(|e| MetadataError::Storage(format!("cannot flush metadata database: {e}")))?;
        let weak: Weak<SledStore> = Arc::downgrade(&sled);
        drop(sled);
        // Raft's state machine worker and in-flight blocking calls release
        // their handles shortly after the core stops.
        let deadline = Instant::now() + RELEASE_TIMEOUT;
        while weak.strong_count() > 0 {
            if Instant::now() >= deadline {
                return Err(MetadataError::Storage(
                    "metadata database still in use 10s after raft shutdown; it will close when the \
                     remaining raft tasks end — retry opening later"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(node_id = self.node_id.get(), "metadata store shut down");
        Ok(())
    }
}

impl Drop for MetadataStore {
    /// A store dropped without [`shutdown`](MetadataStore::shutdown) still
    /// stops its Raft tasks (in the background, when a runtime is available)
    /// so the database is eventually closed.
    fn drop(&mut self) {
        if self.sled.lock().take().is_none() {
            return;
        }
        tracing::warn!(
            node_id = self.node_id.get(),
            "metadata store dropped without shutdown; stopping raft"
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let raft = self.raft.clone();
            handle.spawn(async move {
                if let Err(e) = raft.shutdown().await {
                    tracing::warn!(error = %e, "metadata raft ended abnormally");
                }
            });
        }
    }
}

/// A local Raft write's outcome: applied (`Ok(Ok)`), refused or failed
/// (`Err`), or to be forwarded to the leader (`Ok(Err)`).
#[allow(clippy::type_complexity)]
fn local_outcome(
    result: Result<
        openraft::raft::ClientWriteResponse<crate::typ::TypeConfig>,
        RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    >,
) -> Result<Result<CommandResponse, openraft::error::ForwardToLeader<NodeId, BasicNode>>, MetadataError> {
    match result {
        Ok(resp) => resp.data.map(Ok).map_err(MetadataError::Rejected),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Ok(Err(f)),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(MetadataError::Raft(e.to_string()))
        }
        Err(RaftError::Fatal(f)) => Err(fatal(f)),
    }
}

fn fatal(f: Fatal<NodeId>) -> MetadataError {
    match f {
        Fatal::StorageError(e) => MetadataError::Storage(e.to_string()),
        Fatal::Panicked => MetadataError::Raft("metadata raft core panicked; restart the node".into()),
        Fatal::Stopped => MetadataError::Raft("metadata raft is shut down".into()),
    }
}

/// Log leadership and term changes (the task ends when Raft stops).
fn spawn_leader_watch(raft: Raft) {
    let mut rx = raft.metrics();
    drop(raft);
    tokio::spawn(async move {
        let mut last = (None, 0);
        loop {
            let now = {
                let m = rx.borrow_and_update();
                (m.current_leader, m.current_term)
            };
            if now != last {
                tracing::info!(leader = ?now.0, term = now.1, "metadata raft leadership changed");
                last = now;
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
}
