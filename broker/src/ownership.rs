//! Stream ownership planning: which broker writes each stream (the Kafka
//! partition leader).
//!
//! The controller (the metadata Raft leader) keeps every stream owned by a
//! broker with a live lease, spread evenly: streams without an owner, or
//! whose owner's lease expired, go to their preferred owner (see
//! [`crate::preferred`]) when it is live, else to the live broker owning
//! the fewest streams; then streams away from their live preferred owner
//! move back to it (Kafka's automatic preferred-leader rebalancing), and,
//! while one broker owns two or more streams more than another, a stream
//! whose preferred owner is not live moves from the most to the least
//! loaded. Rebalancing is bounded per round so clients see few leader
//! changes at once. Each planned move is applied as a
//! compare-and-set on the stream's owner epoch, so a plan computed from a
//! stale view cannot undo a newer assignment. [`plan_ownership`] is the
//! pure planning step and [`apply_ownership_round`] one controller round
//! and [`run_controller`] the periodic task on the metadata leader.

use std::collections::BTreeMap;

use distlog_metadata::{Command, MetadataError, MetadataStore, NodeId, StreamId};
use tracing::Instrument;

use crate::preferred::{candidate_brokers, preferred_owner};

/// A stream with its owner and owner epoch, as planning sees it.
pub type StreamOwner = (StreamId, Option<NodeId>, u64);

/// One ownership change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipMove {
    /// The stream.
    pub stream: StreamId,
    /// The owner the plan was computed against (`None`: unowned).
    pub from: Option<NodeId>,
    /// The new owner.
    pub to: NodeId,
    /// The owner epoch the move expects (compare-and-set).
    pub expected_epoch: u64,
}

/// Plan the moves that give every stream a live owner and even out the
/// load, moving at most `max_rebalance_moves` healthy streams.
///
/// `streams` lists each stream with its owner and owner epoch; `brokers`
/// the registered brokers in id order (live or not: they define each
/// stream's preferred owner, see [`crate::preferred`]); `live` the brokers
/// whose lease has not expired. With no live broker nothing is planned.
///
/// An orphaned stream (no owner, or an owner whose lease expired) goes to
/// its preferred owner when that broker is live, else to the least loaded
/// live broker. Rebalancing first moves streams back to their live
/// preferred owner, then evens out the load using only streams whose
/// preferred owner is not live: a stream on its preferred owner is never
/// moved for balance, so an ElectLeaders result stays put.
pub fn plan_ownership(
    streams: &[StreamOwner],
    brokers: &[NodeId],
    live: &[NodeId],
    max_rebalance_moves: usize,
) -> Vec<OwnershipMove> {
    if live.is_empty() {
        return Vec::new();
    }
    let preferred = |s: StreamId| preferred_owner(s, brokers).filter(|p| live.contains(p));
    let mut load: BTreeMap<NodeId, Vec<StreamId>> = live.iter().map(|b| (*b, Vec::new())).collect();
    let mut orphans = Vec::new();
    for (stream, owner, epoch) in streams {
        match owner.and_then(|o| load.get_mut(&o)) {
            Some(owned) => owned.push(*stream),
            None => orphans.push((*stream, *owner, *epoch)),
        }
    }
    let epochs: BTreeMap<StreamId, (Option<NodeId>, u64)> =
        streams.iter().map(|(s, o, e)| (*s, (*o, *e))).collect();
    let least = |load: &BTreeMap<NodeId, Vec<StreamId>>| -> Option<NodeId> {
        load.iter()
            .min_by_key(|(id, owned)| (owned.len(), **id))
            .map(|(id, _)| *id)
    };
    let mut moves = Vec::new();
    for (stream, from, expected_epoch) in orphans {
        let Some(to) = preferred(stream).or_else(|| least(&load)) else {
            break;
        };
        if let Some(owned) = load.get_mut(&to) {
            owned.push(stream);
        }
        moves.push(OwnershipMove {
            stream,
            from,
            to,
            expected_epoch,
        });
    }
    let mut budget = max_rebalance_moves;
    // Back to the preferred owner.
    let homeless: Vec<(StreamId, NodeId, NodeId)> = load
        .iter()
        .flat_map(|(owner, owned)| owned.iter().map(move |s| (*s, *owner)))
        .filter_map(|(s, owner)| preferred(s).filter(|p| *p != owner).map(|p| (s, owner, p)))
        .collect();
    for (stream, from, to) in homeless.into_iter().take(budget) {
        budget -= 1;
        if let Some(owned) = load.get_mut(&from) {
            owned.retain(|s| *s != stream);
        }
        if let Some(owned) = load.get_mut(&to) {
            owned.push(stream);
        }
        moves.push(OwnershipMove {
            stream,
            from: Some(from),
            to,
            expected_epoch: epochs.get(&stream).map_or(0, |e| e.1),
        });
    }
    // Even out the load with streams that have no live preferred owner.
    while budget > 0 {
        let Some(to) = least(&load) else { break };
        let floor = load.get(&to).map_or(0, Vec::len);
        let mut donors: Vec<(&NodeId, &Vec<StreamId>)> = load
            .iter()
            .filter(|(_, owned)| owned.len() >= floor + 2)
            .collect();
        donors.sort_by_key(|(id, owned)| (std::cmp::Reverse(owned.len()), **id));
        let pick = donors.iter().find_map(|(id, owned)| {
            owned
                .iter()
                .rev()
                .find(|s| preferred(**s).is_none())
                .map(|s| (**id, *s))
        });
        let Some((from, stream)) = pick else { break };
        budget -= 1;
        if let Some(owned) = load.get_mut(&from) {
            owned.retain(|s| *s != stream);
        }
        if let Some(owned) = load.get_mut(&to) {
            owned.push(stream);
        }
        let (from, expected_epoch) = epochs.get(&stream).copied().unwrap_or((Some(from), 0));
        moves.push(OwnershipMove {
            stream,
            from,
            to,
            expected_epoch,
        });
    }
    moves
}

/// One controller round: plan from the local replica and apply each move
/// as an `AcquireStream` compare-and-set on the planned epoch. A move that
/// lost a race (the epoch changed) is skipped; the next round replans.
/// Until `grace_until_ms` (a new controller's grace, see
/// [`run_controller`]) a registered broker whose lease lapsed keeps its
/// streams ([`spare_lapsed_owners`]). A stream taken from an owner whose
/// lease had lapsed is left alone if that owner is live again by the time
/// the move is written (a round's writes can wait on the quorum for a
/// while). Returns how many moves applied. Only the metadata leader should
/// run it.
pub async fn apply_ownership_round(
    meta: &MetadataStore,
    now_ms: u64,
    max_rebalance_moves: usize,
    grace_until_ms: u64,
) -> Result<usize, MetadataError> {
    let (streams, brokers, live, registered): (Vec<StreamOwner>, Vec<NodeId>, Vec<NodeId>, Vec<NodeId>) =
        meta.read(|s| {
            (
                s.streams
                    .values()
                    .map(|st| (st.id, st.owner, st.owner_epoch))
                    .collect(),
                candidate_brokers(s),
                s.live_brokers(now_ms).map(|b| b.id).collect(),
                s.brokers
                    .values()
                    .filter(|b| b.is_broker())
                    .map(|b| b.id)
                    .collect(),
            )
        });
    let streams = if now_ms < grace_until_ms {
        spare_lapsed_owners(streams, &live, &registered)
    } else {
        streams
    };
    let mut applied = 0;
    for m in plan_ownership(&streams, &brokers, &live, max_rebalance_moves) {
        if let Some(from) = m.from.filter(|f| !live.contains(f)) {
            let back = meta.read(|s| {
                s.brokers
                    .get(&from)
                    .is_some_and(|b| b.is_live(distlog_metadata::now_ms()))
            });
            if back {
                tracing::debug!(stream = %m.stream, owner = from.get(), "owner renewed its lease since the plan; stream stays");
                continue;
            }
        }
        match meta
            .write(Command::AcquireStream {
                stream: m.stream,
                owner: m.to,
                expected_epoch: Some(m.expected_epoch),
            })
            .await
        {
            Ok(_) => {
                applied += 1;
                tracing::info!(stream = %m.stream, from = ?m.from, to = m.to.get(), "stream ownership assigned");
            }
            Err(MetadataError::Rejected(e)) => {
                tracing::debug!(stream = %m.stream, error = %e, "ownership move lost a race; replanning next round");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(applied)
}

/// The streams a controller in its grace may plan for: those owned by a
/// registered broker whose lease lapsed are left out (neither moved nor
/// counted). Right after a metadata leader change every lease can look
/// lapsed (renewals could not commit while there was no leader), and the
/// moves a new controller made on that view were undone a round later
/// when the renewals landed: leadership flapped twice within milliseconds,
/// and librdkafka, handed two leader changes back to back, kept fetching
/// from the broker in between, which answered NOT_LEADER_OR_FOLLOWER for
/// good (a consumer stuck in the reliability campaign, seed 3070). Kafka's
/// controller likewise gives every broker a fresh session after failover.
pub fn spare_lapsed_owners(
    streams: Vec<StreamOwner>,
    live: &[NodeId],
    registered: &[NodeId],
) -> Vec<StreamOwner> {
    streams
        .into_iter()
        .filter(|(_, owner, _)| !owner.is_some_and(|o| !live.contains(&o) && registered.contains(&o)))
        .collect()
}

/// Whether lease renewals are committing, as the controller sees it: some
/// live broker renews every heartbeat, so the newest lease expiry in the
/// replica advances at least that often. When it stood still for the
/// grace (two heartbeats), renewals could not commit (the quorum was lost,
/// the leader stalled) and every lease may have lapsed for that reason
/// alone; when renewals resume, the controller gives brokers the same grace
/// as after an election. (Found when a metadata leader that had lost its
/// quorum for 6 s moved a stream off its own node, whose lease had lapsed
/// only because nothing could commit, and back 2 s later.)
#[derive(Debug)]
pub struct RenewalWatch {
    newest_expiry_ms: u64,
    advanced_at: std::time::Instant,
}

impl RenewalWatch {
    /// A watch that has seen no renewal yet (as of `now`).
    pub fn new(now: std::time::Instant) -> RenewalWatch {
        RenewalWatch {
            newest_expiry_ms: 0,
            advanced_at: now,
        }
    }

    /// Note the newest lease expiry in the replica at `now`; true when it
    /// advanced after standing still for `stall` or longer (renewals
    /// resumed after a stall).
    pub fn resumed(
        &mut self,
        newest_expiry_ms: u64,
        now: std::time::Instant,
        stall: std::time::Duration,
    ) -> bool {
        if newest_expiry_ms <= self.newest_expiry_ms {
            return false;
        }
        let stalled = self.newest_expiry_ms > 0 && now.duration_since(self.advanced_at) >= stall;
        self.newest_expiry_ms = newest_expiry_ms;
        self.advanced_at = now;
        stalled
    }
}

/// How often the controller looks for streams to (re)assign.
const CONTROLLER_TICK: std::time::Duration = std::time::Duration::from_millis(500);
/// Healthy streams move (to even out load) at most once per this period, so
/// clients see few leader changes at once; orphaned streams move at once.
const REBALANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The controller: on whichever node leads the metadata quorum, keep
/// every stream owned by a live broker and the load even. Runs on every
/// `meta` node (only the leader acts) until `shutdown` flips; a failed round
/// is logged and retried on the next tick.
///
/// A node that becomes the controller waits `grace_ms` before it treats a
/// lapsed lease as a dead broker: the leases it sees may have lapsed only
/// because nobody could renew them during the election. Two heartbeat
/// intervals (what `Node` passes, at most the session timeout) let every
/// live broker renew through the new leader, while a broker that really
/// died has usually lapsed by then anyway, so failover is not delayed.
pub async fn run_controller(
    meta: std::sync::Arc<MetadataStore>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    grace_ms: u64,
) {
    let mut tick = tokio::time::interval(CONTROLLER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rebalance = std::time::Instant::now();
    let mut leading = false;
    let mut grace_until_ms = 0;
    let mut renewals = RenewalWatch::new(std::time::Instant::now());
    let stall = std::time::Duration::from_millis(grace_ms);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let newest = meta.read(|s| {
            s.brokers
                .values()
                .filter(|b| b.is_broker())
                .map(|b| b.lease_expires_ms)
                .max()
                .unwrap_or(0)
        });
        let resumed = renewals.resumed(newest, std::time::Instant::now(), stall);
        if !meta.is_leader() {
            leading = false;
            continue;
        }
        if leading && resumed {
            grace_until_ms = distlog_metadata::now_ms() + grace_ms;
            tracing::info!(
                grace_ms,
                "lease renewals resumed after a stall: brokers get the grace to renew before their streams move"
            );
        }
        if !leading {
            leading = true;
            // A new controller gives brokers time to renew, through it, the
            // leases that may have lapsed during the election.
            last_rebalance = std::time::Instant::now();
            grace_until_ms = distlog_metadata::now_ms() + grace_ms;
            tracing::info!(
                grace_ms,
                "this node is the controller: assigning stream ownership"
            );
        }
        let rebalance = last_rebalance.elapsed() >= REBALANCE_EVERY;
        if rebalance {
            last_rebalance = std::time::Instant::now();
        }
        let round = apply_ownership_round(
            &meta,
            distlog_metadata::now_ms(),
            usize::from(rebalance),
            grace_until_ms,
        );
        match round.instrument(tracing::info_span!("controller_round")).await {
            Ok(0) => {}
            Ok(n) => crate::metrics::OWNERSHIP_MOVES.inc_by(n as u64),
            Err(e) => tracing::warn!(error = %e, "controller round failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition `p` of a topic whose preferred owners over brokers
    /// [1, 2, 3] are 1 + p mod 3 (its id is 0 mod 3).
    fn s(p: u32) -> StreamId {
        StreamId {
            topic_id: uuid::Uuid::from_u128(3),
            partition: p,
        }
    }

    const ALL: &[u64] = &[1, 2, 3];

    fn n(id: u64) -> NodeId {
        NodeId::new(id)
    }

    fn live(ids: &[u64]) -> Vec<NodeId> {
        ids.iter().copied().map(NodeId::new).collect()
    }

    fn owners_after(
        streams: &[(StreamId, Option<NodeId>, u64)],
        moves: &[OwnershipMove],
    ) -> BTreeMap<NodeId, usize> {
        let mut owner: BTreeMap<StreamId, Option<NodeId>> =
            streams.iter().map(|(s, o, _)| (*s, *o)).collect();
        for m in moves {
            owner.insert(m.stream, Some(m.to));
        }
        let mut counts = BTreeMap::new();
        for o in owner.values() {
            *counts.entry(o.expect("every stream owned")).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn unowned_streams_spread_evenly_over_live_brokers() {
        let streams: Vec<_> = (0..10).map(|p| (s(p), None, 0)).collect();
        let moves = plan_ownership(&streams, &live(ALL), &live(ALL), 0);
        assert_eq!(moves.len(), 10);
        assert!(moves.iter().all(|m| m.from.is_none() && m.expected_epoch == 0));
        assert!(
            moves
                .iter()
                .all(|m| m.to == n(1 + u64::from(m.stream.partition % 3))),
            "each to its preferred owner: {moves:?}"
        );
        assert_eq!(
            owners_after(&streams, &moves),
            BTreeMap::from([(n(1), 4), (n(2), 3), (n(3), 3)])
        );
    }

    #[test]
    fn streams_of_a_dead_broker_move_with_their_epoch_and_nothing_else_moves() {
        let mut streams: Vec<_> = (0..6).map(|p| (s(p), Some(n(u64::from(1 + p % 3))), 7)).collect();
        streams[0].2 = 9;
        // Broker 1 (streams 0 and 3) lost its lease.
        let moves = plan_ownership(&streams, &live(ALL), &live(&[2, 3]), 0);
        let moved: Vec<(u32, Option<NodeId>, u64)> = moves
            .iter()
            .map(|m| (m.stream.partition, m.from, m.expected_epoch))
            .collect();
        assert_eq!(moved, vec![(0, Some(n(1)), 9), (3, Some(n(1)), 7)]);
        assert_eq!(
            owners_after(&streams, &moves),
            BTreeMap::from([(n(2), 3), (n(3), 3)])
        );
    }

    #[test]
    fn a_new_broker_receives_streams_a_bounded_number_at_a_time() {
        let streams: Vec<_> = (0..8).map(|p| (s(p), Some(n(u64::from(1 + p % 2))), 1)).collect();
        let first = plan_ownership(&streams, &live(ALL), &live(ALL), 1);
        assert_eq!(first.len(), 1, "at most one healthy stream per round");
        assert_eq!(first[0].to, n(3));
        let all = plan_ownership(&streams, &live(ALL), &live(ALL), 10);
        let counts = owners_after(&streams, &all);
        assert_eq!(
            counts.values().max().unwrap() - counts.values().min().unwrap(),
            1,
            "{counts:?}"
        );
        // Balanced already: nothing to do.
        let after: Vec<_> = {
            let mut owner: BTreeMap<StreamId, NodeId> =
                streams.iter().map(|(s, o, _)| (*s, o.unwrap())).collect();
            for m in &all {
                owner.insert(m.stream, m.to);
            }
            owner.into_iter().map(|(s, o)| (s, Some(o), 2)).collect()
        };
        assert!(plan_ownership(&after, &live(ALL), &live(ALL), 10).is_empty());
    }

    #[test]
    fn streams_on_their_preferred_owner_are_never_moved_for_balance() {
        // Three topics whose partition 0 all prefer broker 1, all at home:
        // broker 1 owns three streams and 2 and 3 none, and it stays so
        // (an ElectLeaders result is not undone).
        let streams: Vec<_> = [3u128, 6, 9]
            .iter()
            .map(|t| {
                let id = StreamId {
                    topic_id: uuid::Uuid::from_u128(*t),
                    partition: 0,
                };
                (id, Some(n(1)), 4)
            })
            .collect();
        assert!(plan_ownership(&streams, &live(ALL), &live(ALL), 10).is_empty());
    }

    #[test]
    fn a_stream_away_from_its_live_preferred_owner_moves_back() {
        // Stream 2 prefers broker 3 but broker 1 took it while 3 was away.
        let streams = vec![
            (s(0), Some(n(1)), 1),
            (s(1), Some(n(2)), 1),
            (s(2), Some(n(1)), 5),
        ];
        assert_eq!(
            plan_ownership(&streams, &live(ALL), &live(&[1, 2]), 10),
            Vec::new(),
            "its preferred owner is not live: it stays"
        );
        assert_eq!(
            plan_ownership(&streams, &live(ALL), &live(ALL), 10),
            vec![OwnershipMove {
                stream: s(2),
                from: Some(n(1)),
                to: n(3),
                expected_epoch: 5
            }]
        );
        assert!(
            plan_ownership(&streams, &live(ALL), &live(ALL), 0).is_empty(),
            "bounded by the rebalance budget"
        );
    }

    #[test]
    fn streams_without_a_live_preferred_owner_even_out_the_load() {
        // Broker 1 is gone for good; its streams (0, 3, 6) all went to 2.
        let streams = vec![
            (s(0), Some(n(2)), 2),
            (s(1), Some(n(2)), 1),
            (s(2), Some(n(3)), 1),
            (s(3), Some(n(2)), 2),
            (s(6), Some(n(2)), 2),
        ];
        let moves = plan_ownership(&streams, &live(ALL), &live(&[2, 3]), 10);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert_eq!((moves[0].from, moves[0].to), (Some(n(2)), n(3)));
        assert_ne!(moves[0].stream, s(1), "stream 1 is at home on broker 2");
        // An orphan whose preferred owner is dead goes to the least loaded.
        let orphan = plan_ownership(
            &[(s(0), None, 0), (s(1), Some(n(2)), 1)],
            &live(ALL),
            &live(&[2, 3]),
            0,
        );
        assert_eq!(orphan.iter().map(|m| m.to).collect::<Vec<_>>(), vec![n(3)]);
    }

    #[test]
    fn a_new_controller_spares_the_streams_of_registered_brokers_whose_lease_lapsed() {
        // Seed 3070: n1 live, n2 and n3 registered with lapsed leases (the
        // election kept them from renewing). In the grace nothing moves;
        // an unowned stream or one of an unregistered owner still does,
        // and only to a live broker.
        let streams = vec![
            (s(0), Some(n(2)), 4),
            (s(1), Some(n(3)), 2),
            (s(2), Some(n(1)), 7),
            (s(3), None, 0),
            (s(4), Some(n(9)), 1),
        ];
        let spared = spare_lapsed_owners(streams.clone(), &live(&[1]), &live(ALL));
        assert_eq!(
            spared.iter().map(|(s, _, _)| s.partition).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        let moves = plan_ownership(&spared, &live(ALL), &live(&[1]), 0);
        assert_eq!(
            moves
                .iter()
                .map(|m| (m.stream.partition, m.to))
                .collect::<Vec<_>>(),
            vec![(3, n(1)), (4, n(1))]
        );
        // Without the grace, the lapsed owners' streams move too.
        assert_eq!(plan_ownership(&streams, &live(ALL), &live(&[1]), 0).len(), 4);
    }

    #[test]
    fn no_live_broker_plans_nothing() {
        assert!(plan_ownership(&[(s(0), Some(n(1)), 3)], &live(ALL), &[], 5).is_empty());
    }
}

#[cfg(test)]
mod round_tests {
    use std::collections::BTreeMap;

    use distlog_metadata::{BrokerInfo, Command, MetadataConfig, MetadataStore, NodeId};

    use super::{apply_ownership_round, RenewalWatch};

    fn broker(id: u32, lease_expires_ms: u64) -> Command {
        Command::RegisterBroker(BrokerInfo {
            id: NodeId::from(id),
            kafka_host: "127.0.0.1".into(),
            kafka_port: 9092,
            listeners: Default::default(),
            rack: None,
            bookie_addr: None,
            lease_expires_ms,
        })
    }

    #[tokio::test]
    async fn rounds_assign_balance_and_move_streams_off_expired_brokers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = MetadataStore::open(MetadataConfig {
            data_dir: dir.path().join("meta"),
            node_id: NodeId::new(1),
            raft_addr: "127.0.0.1:0".into(),
            advertised_raft_addr: None,
            voters: Default::default(),
            seeds: Vec::new(),
        })
        .await
        .expect("metadata");
        meta.write(broker(1, 10_000)).await.expect("b1");
        meta.write(broker(2, 10_000)).await.expect("b2");
        meta.write(Command::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::from_u128(9),
            partitions: 4,
            configs: BTreeMap::new(),
            created_ms: 0,
        })
        .await
        .expect("topic");
        let owners = |m: &MetadataStore| -> Vec<(Option<NodeId>, u64)> {
            m.read(|s| s.streams.values().map(|st| (st.owner, st.owner_epoch)).collect())
        };
        assert_eq!(apply_ownership_round(&meta, 5_000, 4, 0).await.expect("round"), 4);
        let after = owners(&meta);
        assert_eq!(
            after.iter().filter(|(o, _)| *o == Some(NodeId::new(1))).count(),
            2
        );
        assert_eq!(
            after.iter().filter(|(o, _)| *o == Some(NodeId::new(2))).count(),
            2
        );
        assert!(after.iter().all(|(_, e)| *e == 1));
        assert_eq!(
            apply_ownership_round(&meta, 5_000, 4, 0).await.expect("round"),
            0,
            "stable"
        );
        // Broker 2's lease lapses (time 20 s): its streams move to broker 1 with a new epoch.
        meta.write(broker(1, 30_000)).await.expect("renew b1");
        // A controller still in its grace (until 25 s) leaves them: the
        // lapse may be the election's doing.
        assert_eq!(
            apply_ownership_round(&meta, 20_000, 4, 25_000)
                .await
                .expect("round"),
            0,
            "in the grace"
        );
        assert_eq!(
            apply_ownership_round(&meta, 20_000, 4, 0).await.expect("round"),
            2
        );
        let after = owners(&meta);
        assert!(after.iter().all(|(o, _)| *o == Some(NodeId::new(1))), "{after:?}");
        assert_eq!(
            after.iter().filter(|(_, e)| *e == 2).count(),
            2,
            "moved streams got epoch 2"
        );
        meta.shutdown().await.expect("shutdown");
    }

    #[test]
    fn renewals_that_resume_after_a_stall_are_noticed_and_steady_ones_are_not() {
        let t0 = std::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let stall = ms(2000);
        let mut w = RenewalWatch::new(t0);
        assert!(
            !w.resumed(10_000, t0 + ms(100), stall),
            "the first renewal seen is no resumption"
        );
        assert!(!w.resumed(11_000, t0 + ms(1100), stall), "steady renewals");
        assert!(
            !w.resumed(11_000, t0 + ms(5000), stall),
            "standing still is no resumption yet"
        );
        assert!(
            !w.resumed(10_500, t0 + ms(5100), stall),
            "an older expiry changes nothing"
        );
        assert!(
            w.resumed(17_000, t0 + ms(6000), stall),
            "advanced after 4.9 s without renewals"
        );
        assert!(!w.resumed(18_000, t0 + ms(7000), stall), "steady again");
    }
}
