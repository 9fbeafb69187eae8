//! Each anomaly, found in a hand-made history; and a clean history passes.

use super::*;

fn send(value: &str, partition: i32, outcome: SendOutcome) -> Send {
    Send {
        value: value.into(),
        partition,
        outcome,
    }
}

fn reads(vals: &[(i64, &str)]) -> Vec<(i64, String)> {
    vals.iter().map(|(o, v)| (*o, v.to_string())).collect()
}

/// Three acknowledged values on partition 0, read in full by an assign-mode
/// consumer and a group member that committed as it went.
fn clean() -> History {
    let log = reads(&[(0, "a"), (1, "b"), (2, "c")]);
    History {
        sends: vec![
            send("a", 0, SendOutcome::Acked(0)),
            send("b", 0, SendOutcome::Acked(1)),
            send("c", 0, SendOutcome::Acked(2)),
            send("d", 0, SendOutcome::Failed("timed out".into())),
        ],
        sessions: vec![
            ReadSession {
                consumer: "assign-0".into(),
                partition: 0,
                start: SessionStart::Assigned(0),
                reads: log.clone(),
            },
            ReadSession {
                consumer: "group".into(),
                partition: 0,
                start: SessionStart::Group {
                    acked: None,
                    attempted: None,
                },
                reads: log[..2].to_vec(),
            },
            ReadSession {
                consumer: "group".into(),
                partition: 0,
                start: SessionStart::Group {
                    acked: Some(2),
                    attempted: Some(2),
                },
                reads: log[2..].to_vec(),
            },
        ],
        commits: vec![
            Commit {
                partition: 0,
                offset: 2,
                acked: true,
            },
            Commit {
                partition: 0,
                offset: 3,
                acked: true,
            },
        ],
        final_committed: [(0, 3)].into(),
        final_read: [(0, log)].into(),
        recovery: Some(Duration::from_secs(2)),
        recovery_bound: Duration::from_secs(30),
        stuck: Vec::new(),
    }
}

fn names(h: &History) -> Vec<&'static str> {
    check(h).iter().map(Anomaly::name).collect()
}

#[test]
fn a_clean_history_passes() {
    assert_eq!(check(&clean()), vec![]);
}

#[test]
fn a_failed_send_may_be_in_the_log_once() {
    let mut h = clean();
    h.final_read.get_mut(&0).unwrap().push((3, "d".into()));
    h.sessions[0].reads.push((3, "d".into()));
    assert_eq!(check(&h), vec![]);
}

#[test]
fn an_acknowledged_value_missing_from_the_final_read_is_lost() {
    let mut h = clean();
    h.sends.push(send("e", 0, SendOutcome::Acked(3)));
    assert_eq!(
        check(&h),
        vec![Anomaly::LostWrite {
            partition: 0,
            value: "e".into(),
            offset: 3
        }]
    );
}

#[test]
fn a_value_at_another_offset_than_acknowledged_is_reported() {
    let mut h = clean();
    h.sends[2].outcome = SendOutcome::Acked(7);
    assert_eq!(names(&h), vec!["wrong-offset"]);
}

#[test]
fn an_acknowledgement_without_an_offset_checks_presence_only() {
    let mut h = clean();
    h.sends[1].outcome = SendOutcome::Acked(-1001);
    assert_eq!(check(&h), vec![]);
    h.final_read.get_mut(&0).unwrap().remove(1);
    h.sessions.clear();
    assert_eq!(names(&h), vec!["lost-write"]);
}

#[test]
fn a_value_at_two_offsets_is_a_duplicate() {
    let mut h = clean();
    h.final_read.get_mut(&0).unwrap().push((3, "b".into()));
    assert_eq!(
        check(&h),
        vec![Anomaly::Duplicate {
            partition: 0,
            value: "b".into(),
            offsets: vec![1, 3]
        }]
    );
}

#[test]
fn a_value_nobody_sent_there_is_a_phantom() {
    let mut h = clean();
    h.final_read.get_mut(&0).unwrap().push((3, "zz".into()));
    assert_eq!(names(&h), vec!["phantom-write"]);
    // Sent, but to another partition: also a phantom where it was found.
    let mut h = clean();
    h.final_read.insert(1, reads(&[(0, "a")]));
    assert!(names(&h).contains(&"phantom-write"), "{:?}", check(&h));
}

#[test]
fn two_values_at_one_offset_are_inconsistent() {
    let mut h = clean();
    h.sessions[0].reads[1].1 = "x".into();
    assert!(check(&h).contains(&Anomaly::InconsistentOffsets {
        partition: 0,
        offset: 1,
        values: vec!["b".into(), "x".into()]
    }));
}

#[test]
fn a_consumer_going_back_is_nonmonotonic() {
    let mut h = clean();
    h.sessions[0].reads = reads(&[(0, "a"), (1, "b"), (0, "a"), (1, "b"), (2, "c")]);
    assert_eq!(
        check(&h),
        vec![Anomaly::NonmonotonicPoll {
            consumer: "assign-0".into(),
            partition: 0,
            from: 1,
            to: 0
        }]
    );
    // Starting before the assigned offset is going back too.
    let mut h = clean();
    h.sessions[0].start = SessionStart::Assigned(1);
    assert_eq!(names(&h), vec!["nonmonotonic-poll"]);
}

#[test]
fn a_consumer_jumping_over_records_skips() {
    let mut h = clean();
    h.sessions[0].reads = reads(&[(0, "a"), (2, "c")]);
    assert_eq!(
        check(&h),
        vec![Anomaly::PollSkip {
            consumer: "assign-0".into(),
            partition: 0,
            from: 0,
            to: 2
        }]
    );
    // Starting after the assigned offset, over records that exist.
    let mut h = clean();
    h.sessions[0].reads = reads(&[(1, "b"), (2, "c")]);
    assert_eq!(names(&h), vec!["poll-skip"]);
}

#[test]
fn a_member_resuming_behind_the_acknowledged_commit_is_a_regression() {
    let mut h = clean();
    h.sessions[2].reads = reads(&[(1, "b"), (2, "c")]);
    assert_eq!(
        check(&h),
        vec![Anomaly::CommittedOffsetRegression {
            partition: 0,
            from: 2,
            to: 1
        }]
    );
}

#[test]
fn a_member_resuming_past_every_commit_skips() {
    let mut h = clean();
    h.sessions[2].start = SessionStart::Group {
        acked: Some(1),
        attempted: Some(1),
    };
    assert_eq!(names(&h), vec!["poll-skip"]);
    // ...unless a commit reported failed reached that far.
    h.sessions[2].start = SessionStart::Group {
        acked: Some(1),
        attempted: Some(2),
    };
    assert_eq!(check(&h), vec![]);
}

#[test]
fn acknowledged_commits_going_back_or_lost_are_regressions() {
    let mut h = clean();
    h.commits.push(Commit {
        partition: 0,
        offset: 1,
        acked: true,
    });
    h.final_committed.insert(0, 1);
    assert_eq!(
        check(&h),
        vec![Anomaly::CommittedOffsetRegression {
            partition: 0,
            from: 3,
            to: 1
        }]
    );
    // The group forgot its committed offset.
    let mut h = clean();
    h.final_committed.clear();
    assert_eq!(names(&h), vec!["committed-offset-regression"]);
}

#[test]
fn no_acknowledgement_soon_after_healing_is_unavailability() {
    let mut h = clean();
    h.recovery = Some(Duration::from_secs(31));
    assert_eq!(names(&h), vec!["unavailable-too-long"]);
    h.recovery = None;
    assert_eq!(names(&h), vec!["unavailable-too-long"]);
}

#[test]
fn a_reader_left_behind_is_stuck() {
    let mut h = clean();
    h.stuck.push(("reader-1".into(), 0, 1, 3));
    assert_eq!(names(&h), vec!["stuck-consumer"]);
}
