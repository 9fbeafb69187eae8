//! The group state machine driven directly, with explicit time.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;
use crate::group::member::{JoinRequest, JoinResult, SyncResult};

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);

fn timing(delay_ms: u64) -> GroupTiming {
    GroupTiming {
        initial_rebalance_delay: Duration::from_millis(delay_ms),
    }
}

fn req(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        instance_id: instance.map(str::to_string),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

/// Join and return the receiver of the answer.
fn join(g: &mut Group, r: JoinRequest, now: Instant) -> oneshot::Receiver<JoinResult> {
    let (tx, rx) = oneshot::channel();
    let mut fx = Effects::default();
    g.join(r, now, tx, &mut fx);
    rx
}

fn answered<T>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("answered now")
}

fn pending<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) {
    assert!(
        matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "expected no answer yet"
    );
}

/// A dynamic member's two-step join (KIP-394): returns its member id and
/// the receiver of the second join.
fn join_dynamic(g: &mut Group, now: Instant) -> (String, oneshot::Receiver<JoinResult>) {
    let mut first = join(g, req("", None, &["range"]), now);
    let r = answered(&mut first);
    assert_eq!(r.error, Some(ResponseError::MemberIdRequired));
    assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
    let rx = join(g, req(&r.member_id, None, &["range"]), now);
    (r.member_id, rx)
}

fn sync(
    g: &mut Group,
    member: &str,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
    now: Instant,
) -> (oneshot::Receiver<SyncResult>, Effects) {
    let (tx, rx) = oneshot::channel();
    let mut fx = Effects::default();
    g.sync(
        member,
        None,
        generation,
        None,
        None,
        assignments,
        now,
        tx,
        &mut fx,
    );
    (rx, fx)
}

/// Deliver what a persisted sync waits for (as the coordinator does once
/// the write is durable).
fn deliver(fx: Effects) {
    for (tx, r) in fx.after_persist {
        let _ = tx.send(r);
    }
}

#[test]
fn two_members_join_sync_and_become_stable() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let (a, mut ja) = join_dynamic(&mut g, t0);
    // One member, no delay: the rebalance completes at once.
    let ra = answered(&mut ja);
    assert_eq!(
        (ra.error, ra.generation, ra.leader.as_str()),
        (None, 1, a.as_str())
    );
    assert_eq!(ra.members.len(), 1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);

    // B joins while A is completing: a new rebalance, A must rejoin.
    let (b, mut jb) = join_dynamic(&mut g, t0);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    pending(&mut jb);
    let mut ja = join(&mut g, req(&a, None, &["range"]), t0);
    let ra = answered(&mut ja);
    let rb = answered(&mut jb);
    assert_eq!((ra.generation, rb.generation), (2, 2));
    assert_eq!(ra.leader, a, "the previous leader stays leader");
    assert_eq!(ra.members.len(), 2, "the leader gets every member's metadata");
    assert!(rb.members.is_empty(), "followers get no member list");
    assert_eq!(ra.protocol.as_deref(), Some("range"));

    // The follower's sync waits for the leader's.
    let (mut sb, fx) = sync(&mut g, &b, 2, vec![], t0);
    assert!(fx.persist.is_none());
    pending(&mut sb);
    let (mut sa, fx) = sync(
        &mut g,
        &a,
        2,
        vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ],
        t0,
    );
    assert_eq!(g.state(), GroupState::Stable);
    let record = fx.persist.as_ref().expect("the generation is stored");
    assert_eq!(record.generation, 2);
    assert_eq!(record.members.len(), 2);
    pending(&mut sa);
    deliver(fx);
    assert_eq!(answered(&mut sa).assignment, Bytes::from_static(b"A"));
    assert_eq!(answered(&mut sb).assignment, Bytes::from_static(b"B"));

    assert_eq!(g.heartbeat(&a, None, 2, t0), None);
    assert_eq!(
        g.heartbeat(&b, None, 1, t0),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        g.heartbeat("nobody", None, 2, t0),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn protocol_mismatch_and_unknown_members_are_refused() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let (_a, mut ja) = join_dynamic(&mut g, t0);
    answered(&mut ja);
    let mut other = join(&mut g, req("", None, &["roundrobin"]), t0);
    assert_eq!(
        answered(&mut other).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut unknown = join(&mut g, req("ghost", None, &["range"]), t0);
    assert_eq!(answered(&mut unknown).error, Some(ResponseError::UnknownMemberId));
    let mut r = req("", None, &["range"]);
    r.protocol_type = "connect".into();
    let mut wrong_type = join(&mut g, r, t0);
    assert_eq!(
        answered(&mut wrong_type).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
}

#[test]
fn protocol_selection_follows_the_majority_of_common_protocols() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(1000));
    let mut rx = Vec::new();
    for protocols in [
        &["range", "roundrobin"][..],
        &["roundrobin", "range"][..],
        &["roundrobin", "sticky", "range"][..],
    ] {
        let mut r = req("", None, protocols);
        r.require_known_member_id = false;
        rx.push(join(&mut g, r, t0));
    }
    let mut fx = Effects::default();
    g.tick(t0 + Duration::from_secs(2), &mut fx);
    for mut r in rx {
        let r = answered(&mut r);
        assert_eq!(r.protocol.as_deref(), Some("roundrobin"));
        assert_eq!(r.generation, 1);
    }
}

#[test]
fn initial_delay_gathers_joins_into_one_generation() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(3000));
    let (_a, mut ja) = join_dynamic(&mut g, t0);
    pending(&mut ja);
    let (_b, mut jb) = join_dynamic(&mut g, t0 + Duration::from_secs(1));
    let mut fx = Effects::default();
    // The second join pushed the delay to t0 + 4 s.
    g.tick(t0 + Duration::from_millis(3500), &mut fx);
    pending(&mut ja);
    assert_eq!(g.next_deadline(), Some(t0 + Duration::from_secs(4)));
    g.tick(t0 + Duration::from_secs(4), &mut fx);
    assert_eq!(answered(&mut ja).generation, 1);
    assert_eq!(answered(&mut jb).generation, 1);
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let (a, mut ja) = join_dynamic(&mut g, t0);
    answered(&mut ja);
    let (_, fx) = sync(&mut g, &a, 1, vec![(a.clone(), Bytes::from_static(b"A"))], t0);
    deliver(fx);
    let (b, mut jb) = join_dynamic(&mut g, t0);
    pending(&mut jb);
    // A keeps heartbeating but never rejoins; B's join completes at the
    // rebalance timeout without A.
    let mut fx = Effects::default();
    for s in [8, 16, 24] {
        let at = t0 + Duration::from_secs(s);
        assert_eq!(
            g.heartbeat(&a, None, 1, at),
            Some(ResponseError::RebalanceInProgress)
        );
        g.tick(at, &mut fx);
    }
    g.tick(t0 + REBALANCE - Duration::from_millis(1), &mut fx);
    pending(&mut jb);
    g.tick(t0 + REBALANCE, &mut fx);
    let rb = answered(&mut jb);
    assert_eq!(
        (rb.error, rb.generation, rb.leader.as_str()),
        (None, 2, b.as_str())
    );
    assert_eq!(
        g.heartbeat(&a, None, 2, t0 + REBALANCE),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_silent_member_is_expelled_after_its_session_timeout() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let (a, mut ja) = join_dynamic(&mut g, t0);
    answered(&mut ja);
    let (_, fx) = sync(&mut g, &a, 1, vec![], t0);
    deliver(fx);
    assert_eq!(g.next_deadline(), Some(t0 + SESSION));
    // Heartbeats keep it alive.
    assert_eq!(g.heartbeat(&a, None, 1, t0 + Duration::from_secs(8)), None);
    let mut fx = Effects::default();
    g.tick(t0 + SESSION, &mut fx);
    assert_eq!(g.state(), GroupState::Stable);
    g.tick(t0 + Duration::from_secs(18), &mut fx);
    assert_eq!(g.state(), GroupState::Empty, "the only member expired");
    assert_eq!(fx.persist.as_ref().map(|r| r.members.len()), Some(0));
    assert_eq!(g.generation(), 2);
}

#[test]
fn pending_member_ids_expire() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let mut first = join(&mut g, req("", None, &["range"]), t0);
    let id = answered(&mut first).member_id;
    let mut fx = Effects::default();
    g.tick(t0 + SESSION, &mut fx);
    let mut late = join(&mut g, req(&id, None, &["range"]), t0 + SESSION);
    assert_eq!(answered(&mut late).error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn leave_rebalances_the_rest() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let (a, mut ja) = join_dynamic(&mut g, t0);
    answered(&mut ja);
    let (b, mut jb) = join_dynamic(&mut g, t0);
    let mut ja = join(&mut g, req(&a, None, &["range"]), t0);
    answered(&mut ja);
    answered(&mut jb);
    let (_, fx) = sync(&mut g, &a, 2, vec![], t0);
    deliver(fx);
    let mut fx = Effects::default();
    assert_eq!(g.leave(&a, None, t0, &mut fx), None);
    assert_eq!(fx.rebalances, 1);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.leave(&a, None, t0, &mut fx),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        g.heartbeat(&b, None, 2, t0),
        Some(ResponseError::RebalanceInProgress)
    );
    let mut jb = join(&mut g, req(&b, None, &["range"]), t0);
    let rb = answered(&mut jb);
    assert_eq!((rb.generation, rb.leader.as_str()), (3, b.as_str()));
}

#[test]
fn a_restarted_static_member_keeps_its_assignment_without_a_rebalance() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let mut js = join(&mut g, req("", Some("inst-1"), &["range"]), t0);
    let s1 = answered(&mut js);
    assert_eq!(s1.error, None, "static members skip MEMBER_ID_REQUIRED");
    assert!(s1.member_id.starts_with("inst-1-"));
    let (d, mut jd) = join_dynamic(&mut g, t0);
    let mut js = join(&mut g, req(&s1.member_id, Some("inst-1"), &["range"]), t0);
    answered(&mut jd);
    let leader = answered(&mut js);
    assert_eq!(leader.generation, 2);
    let (_, fx) = sync(
        &mut g,
        &s1.member_id,
        2,
        vec![
            (s1.member_id.clone(), Bytes::from_static(b"S")),
            (d.clone(), Bytes::from_static(b"D")),
        ],
        t0,
    );
    deliver(fx);
    assert_eq!(g.state(), GroupState::Stable);

    // The static member restarts: it joins with no member id.
    let mut js2 = join(&mut g, req("", Some("inst-1"), &["range"]), t0);
    let s2 = answered(&mut js2);
    assert_eq!(s2.error, None);
    assert_ne!(s2.member_id, s1.member_id);
    assert_eq!(s2.generation, 2, "no new generation");
    assert_eq!(
        s2.leader, s1.member_id,
        "the old leader id, so it does not reassign"
    );
    assert_eq!(g.state(), GroupState::Stable);
    let (mut sync2, _) = sync(&mut g, &s2.member_id, 2, vec![], t0);
    assert_eq!(answered(&mut sync2).assignment, Bytes::from_static(b"S"));
    // The old incarnation is fenced.
    let mut fx = Effects::default();
    assert_eq!(
        g.heartbeat(&s1.member_id, Some("inst-1"), 2, t0),
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        g.leave(&s1.member_id, Some("inst-1"), t0, &mut fx),
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        g.check_commit(&s1.member_id, Some("inst-1"), 2),
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(g.check_commit(&s2.member_id, Some("inst-1"), 2), None);
    assert_eq!(
        g.heartbeat(&d, None, 2, t0),
        None,
        "the other member saw no rebalance"
    );
}

#[test]
fn commit_checks_follow_kafka() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    assert_eq!(
        g.check_commit("", None, -1),
        None,
        "standalone commit to an empty group"
    );
    let (a, mut ja) = join_dynamic(&mut g, t0);
    answered(&mut ja);
    assert_eq!(
        g.check_commit(&a, None, 1),
        Some(ResponseError::RebalanceInProgress)
    );
    let (_, fx) = sync(&mut g, &a, 1, vec![], t0);
    deliver(fx);
    assert_eq!(g.check_commit(&a, None, 1), None);
    assert_eq!(
        g.check_commit(&a, None, 0),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(g.check_commit("x", None, 1), Some(ResponseError::UnknownMemberId));
    assert_eq!(g.check_commit("", None, -1), Some(ResponseError::UnknownMemberId));
    g.mark_dead();
    assert_eq!(
        g.check_commit(&a, None, 1),
        Some(ResponseError::CoordinatorNotAvailable)
    );
}

#[test]
fn transactional_commit_checks_follow_kafka() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    assert_eq!(g.check_txn_commit("", None, -1), None);
    let (a, mut ja) = join_dynamic(&mut g, t0);
    answered(&mut ja);
    // Completing a rebalance does not refuse a transactional commit.
    assert_eq!(g.check_txn_commit(&a, None, 1), None);
    let (_, fx) = sync(&mut g, &a, 1, vec![], t0);
    deliver(fx);
    assert_eq!(g.check_txn_commit(&a, None, 1), None);
    assert_eq!(
        g.check_txn_commit(&a, None, 0),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        g.check_txn_commit("x", None, 1),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        g.check_txn_commit(&a, Some("nobody"), 1),
        Some(ResponseError::UnknownMemberId)
    );
    // Without a member identity (older producers) it is allowed even
    // though the group has members.
    assert_eq!(g.check_txn_commit("", None, -1), None);
    g.mark_dead();
    assert_eq!(
        g.check_txn_commit("", None, -1),
        Some(ResponseError::CoordinatorNotAvailable)
    );
}

#[test]
fn a_transactional_commit_of_a_fenced_static_member_is_refused() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let mut js = join(&mut g, req("", Some("i"), &["range"]), t0);
    let s = answered(&mut js);
    let (_, fx) = sync(&mut g, &s.member_id, 1, vec![], t0);
    deliver(fx);
    assert_eq!(g.check_txn_commit(&s.member_id, Some("i"), 1), None);
    assert_eq!(
        g.check_txn_commit("old-member", Some("i"), 1),
        Some(ResponseError::FencedInstanceId)
    );
}

#[test]
fn restore_brings_back_a_stable_generation() {
    let t0 = Instant::now();
    let mut g = Group::new("g", timing(0));
    let mut js = join(&mut g, req("", Some("i"), &["range"]), t0);
    let s = answered(&mut js);
    let (_, fx) = sync(
        &mut g,
        &s.member_id,
        1,
        vec![(s.member_id.clone(), Bytes::from_static(b"X"))],
        t0,
    );
    let record = fx.persist.clone().expect("stored");
    deliver(fx);
    let mut back = Group::restore("g", &record, timing(0), t0);
    assert_eq!(back.state(), GroupState::Stable);
    assert_eq!(back.generation(), 1);
    assert_eq!(back.heartbeat(&s.member_id, Some("i"), 1, t0), None);
    let (mut sx, _) = sync(&mut back, &s.member_id, 1, vec![], t0);
    assert_eq!(answered(&mut sx).assignment, Bytes::from_static(b"X"));
    let summary = back.summary();
    assert_eq!(summary.members[0].metadata, Bytes::from_static(b"meta-range"));
}
