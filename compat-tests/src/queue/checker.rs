//! The queue checker: Jepsen's Kafka-workload anomalies, judged from what
//! the clients saw.
//!
//! Inputs are plain data (a [`History`]), so every anomaly has a unit test
//! with a hand-made history (`checker_tests.rs`), and a failing trial's
//! history can be checked again without a cluster.
//!
//! What is promised, and so what is an anomaly:
//! * every acknowledged write is in the final read, at the offset its
//!   acknowledgement named ([`Anomaly::LostWrite`], [`Anomaly::WrongOffset`]);
//! * no value is at two offsets ([`Anomaly::Duplicate`]), and nothing is in
//!   the log that no producer sent ([`Anomaly::PhantomWrite`]);
//! * one offset holds one value, whoever reads it and when
//!   ([`Anomaly::InconsistentOffsets`]);
//! * a consumer's positions only go forward ([`Anomaly::NonmonotonicPoll`])
//!   and never jump over records that exist ([`Anomaly::PollSkip`]): offsets
//!   are dense here (no transactions in this workload, no compaction);
//! * a group's committed offsets only go forward, and a member resumes where
//!   the group committed ([`Anomaly::CommittedOffsetRegression`]);
//! * after the faults heal, writes are acknowledged again within the
//!   allowed time ([`Anomaly::UnavailableTooLong`]), and readers reach the
//!   end of every partition ([`Anomaly::StuckConsumer`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

/// What became of one produced value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Acknowledged (acks=all) at this offset; negative when the client
    /// acknowledged it without an offset (librdkafka's implicit ack).
    Acked(i64),
    /// Reported failed. It may still be in the log (a timeout, an
    /// unconfirmed append), at most once.
    Failed(String),
    /// No delivery report by the end of the trial.
    Unknown,
}

/// One value sent by a producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The value: unique over the whole trial.
    pub value: String,
    /// The partition it was sent to.
    pub partition: i32,
    /// What the producer was told.
    pub outcome: SendOutcome,
}

/// How a read session started: which offset its first record must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStart {
    /// An assign-mode consumer told to start at this offset.
    Assigned(i64),
    /// A group member given the partition: it must resume at the offset
    /// the group committed, which lies between the last commit the member
    /// saw succeed and the highest it attempted (a commit reported failed
    /// may still have been applied).
    Group {
        /// Highest offset whose commit was acknowledged before the session.
        acked: Option<i64>,
        /// Highest offset whose commit was attempted before the session.
        attempted: Option<i64>,
    },
}

/// The records one consumer read from one partition without being
/// repositioned: one assignment of a group member, or an assign-mode
/// consumer's whole life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSession {
    /// Which consumer (for the report).
    pub consumer: String,
    /// The partition.
    pub partition: i32,
    /// Where it had to start.
    pub start: SessionStart,
    /// (offset, value) in the order polled.
    pub reads: Vec<(i64, String)>,
}

/// One offset commit of the group member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The partition.
    pub partition: i32,
    /// The committed offset (the next record to read).
    pub offset: i64,
    /// Whether the commit was acknowledged.
    pub acked: bool,
}

/// Everything a trial's clients saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Every value sent, in send order.
    pub sends: Vec<Send>,
    /// Every read session, assign-mode and group.
    pub sessions: Vec<ReadSession>,
    /// The group member's commits, in the order made.
    pub commits: Vec<Commit>,
    /// The group's committed offsets read after the workload stopped.
    pub final_committed: BTreeMap<i32, i64>,
    /// The final full read: per partition, (offset, value) from 0 to the
    /// high watermark.
    pub final_read: BTreeMap<i32, Vec<(i64, String)>>,
    /// From the moment every fault healed to the first acknowledgement of
    /// a value sent after it (`None`: none came).
    pub recovery: Option<Duration>,
    /// How long recovery may take.
    pub recovery_bound: Duration,
    /// Readers that had not reached the end of a partition within the
    /// bound after the writes stopped: (reader, partition, position, end).
    pub stuck: Vec<(String, i32, i64, i64)>,
}

/// One violated promise (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// Acknowledged, never in the final read.
    LostWrite {
        partition: i32,
        value: String,
        offset: i64,
    },
    /// Acknowledged at one offset, found at another.
    WrongOffset {
        partition: i32,
        value: String,
        acked: i64,
        found: i64,
    },
    /// One value at two or more offsets.
    Duplicate {
        partition: i32,
        value: String,
        offsets: Vec<i64>,
    },
    /// A value in the log that no producer sent.
    PhantomWrite {
        partition: i32,
        offset: i64,
        value: String,
    },
    /// Two reads gave different values at one offset.
    InconsistentOffsets {
        partition: i32,
        offset: i64,
        values: Vec<String>,
    },
    /// A consumer's offsets went back (or repeated).
    NonmonotonicPoll {
        consumer: String,
        partition: i32,
        from: i64,
        to: i64,
    },
    /// A consumer jumped over records that exist.
    PollSkip {
        consumer: String,
        partition: i32,
        from: i64,
        to: i64,
    },
    /// The group's committed offset went back, or a member resumed
    /// somewhere the group never committed.
    CommittedOffsetRegression { partition: i32, from: i64, to: i64 },
    /// No write acknowledged within the bound after the faults healed.
    UnavailableTooLong {
        waited: Option<Duration>,
        bound: Duration,
    },
    /// A reader that stopped making progress: still behind the end of a
    /// partition well after the writes stopped and the faults healed.
    StuckConsumer {
        consumer: String,
        partition: i32,
        at: i64,
        end: i64,
    },
}

impl Anomaly {
    /// The anomaly's name, as the campaign table counts it.
    pub fn name(&self) -> &'static str {
        match self {
            Anomaly::LostWrite { .. } => "lost-write",
            Anomaly::WrongOffset { .. } => "wrong-offset",
            Anomaly::Duplicate { .. } => "duplicate",
            Anomaly::PhantomWrite { .. } => "phantom-write",
            Anomaly::InconsistentOffsets { .. } => "inconsistent-offsets",
            Anomaly::NonmonotonicPoll { .. } => "nonmonotonic-poll",
            Anomaly::PollSkip { .. } => "poll-skip",
            Anomaly::CommittedOffsetRegression { .. } => "committed-offset-regression",
            Anomaly::UnavailableTooLong { .. } => "unavailable-too-long",
            Anomaly::StuckConsumer { .. } => "stuck-consumer",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            Anomaly::LostWrite {
                partition,
                value,
                offset,
            } => {
                write!(
                    f,
                    "{value} acknowledged at {partition}/{offset}, not in the final read"
                )
            }
            Anomaly::WrongOffset {
                partition,
                value,
                acked,
                found,
            } => write!(
                f,
                "{value} acknowledged at {partition}/{acked}, found at {partition}/{found}"
            ),
            Anomaly::Duplicate {
                partition,
                value,
                offsets,
            } => write!(f, "{value} at {partition}/{offsets:?}"),
            Anomaly::PhantomWrite {
                partition,
                offset,
                value,
            } => write!(
                f,
                "{partition}/{offset} holds {value:?}, which no producer sent there"
            ),
            Anomaly::InconsistentOffsets {
                partition,
                offset,
                values,
            } => write!(f, "{partition}/{offset} read as {values:?}"),
            Anomaly::NonmonotonicPoll {
                consumer,
                partition,
                from,
                to,
            } => write!(f, "{consumer} read {partition}/{from} then {partition}/{to}"),
            Anomaly::PollSkip {
                consumer,
                partition,
                from,
                to,
            } => write!(
                f,
                "{consumer} read {partition}/{from} then {partition}/{to}, skipping records"
            ),
            Anomaly::CommittedOffsetRegression { partition, from, to } => {
                write!(f, "partition {partition}: committed {from}, then {to}")
            }
            Anomaly::UnavailableTooLong { waited, bound } => match waited {
                Some(w) => write!(
                    f,
                    "first acknowledgement {w:?} after the faults healed (bound {bound:?})"
                ),
                None => write!(
                    f,
                    "nothing acknowledged after the faults healed (bound {bound:?})"
                ),
            },
            Anomaly::StuckConsumer {
                consumer,
                partition,
                at,
                end,
            } => write!(
                f,
                "{consumer} stuck at {partition}/{at}, the partition ends at {end}"
            ),
        }
    }
}

/// Every anomaly in `h`, in a stable order (by kind, then partition and
/// offset). Empty means the trial passed.
pub fn check(h: &History) -> Vec<Anomaly> {
    let mut out = Vec::new();
    check_final_read(h, &mut out);
    check_consistency(h, &mut out);
    check_sessions(h, &mut out);
    check_commits(h, &mut out);
    if h.recovery.is_none_or(|r| r > h.recovery_bound) {
        out.push(Anomaly::UnavailableTooLong {
            waited: h.recovery,
            bound: h.recovery_bound,
        });
    }
    for (consumer, partition, at, end) in &h.stuck {
        out.push(Anomaly::StuckConsumer {
            consumer: consumer.clone(),
            partition: *partition,
            at: *at,
            end: *end,
        });
    }
    out
}

/// Lost, misplaced, duplicated and phantom values, from the final read.
fn check_final_read(h: &History, out: &mut Vec<Anomaly>) {
    let sent: HashMap<&str, &Send> = h.sends.iter().map(|s| (s.value.as_str(), s)).collect();
    // value -> offsets, per partition.
    let mut found: HashMap<(i32, &str), Vec<i64>> = HashMap::new();
    for (p, records) in &h.final_read {
        for (offset, value) in records {
            found.entry((*p, value.as_str())).or_default().push(*offset);
            match sent.get(value.as_str()) {
                Some(s) if s.partition == *p => {}
                _ => out.push(Anomaly::PhantomWrite {
                    partition: *p,
                    offset: *offset,
                    value: value.clone(),
                }),
            }
        }
    }
    let mut dups: Vec<_> = found.iter().filter(|(_, o)| o.len() > 1).collect();
    dups.sort_by_key(|((p, _), o)| (*p, o[0]));
    for ((p, value), offsets) in dups {
        out.push(Anomaly::Duplicate {
            partition: *p,
            value: value.to_string(),
            offsets: offsets.clone(),
        });
    }
    for s in &h.sends {
        let SendOutcome::Acked(acked) = s.outcome else {
            continue;
        };
        match found.get(&(s.partition, s.value.as_str())) {
            None => out.push(Anomaly::LostWrite {
                partition: s.partition,
                value: s.value.clone(),
                offset: acked,
            }),
            // A negative offset is an acknowledgement without one:
            // librdkafka's implicit ack (-1001) of a batch whose request
            // failed but whose successor's success proves it was written.
            Some(offsets) if acked >= 0 && !offsets.contains(&acked) => out.push(Anomaly::WrongOffset {
                partition: s.partition,
                value: s.value.clone(),
                acked,
                found: offsets[0],
            }),
            Some(_) => {}
        }
    }
}

/// One value per offset over every read, final read included.
fn check_consistency(h: &History, out: &mut Vec<Anomaly>) {
    let mut at: BTreeMap<(i32, i64), Vec<String>> = BTreeMap::new();
    let all = h
        .final_read
        .iter()
        .map(|(p, r)| (*p, r))
        .chain(h.sessions.iter().map(|s| (s.partition, &s.reads)));
    for (p, reads) in all {
        for (offset, value) in reads {
            let values = at.entry((p, *offset)).or_default();
            if !values.contains(value) {
                values.push(value.clone());
            }
        }
    }
    for ((partition, offset), values) in at {
        if values.len() > 1 {
            out.push(Anomaly::InconsistentOffsets {
                partition,
                offset,
                values,
            });
        }
    }
}

/// Each session goes forward one offset at a time from where it had to start.
fn check_sessions(h: &History, out: &mut Vec<Anomaly>) {
    for s in &h.sessions {
        let end = h
            .final_read
            .get(&s.partition)
            .and_then(|r| r.last())
            .map_or(0, |(o, _)| o + 1);
        // The offset the first record must have: -1 means "unknown" (a group
        // member that never saw a commit starts at the log start, 0 here).
        let (lo, hi) = match &s.start {
            SessionStart::Assigned(o) => (*o, *o),
            SessionStart::Group { acked, attempted } => {
                (acked.unwrap_or(0), attempted.unwrap_or(0).max(acked.unwrap_or(0)))
            }
        };
        let mut prev: Option<i64> = None;
        for (offset, _) in &s.reads {
            match prev {
                None if *offset < lo => match s.start {
                    SessionStart::Assigned(_) => out.push(Anomaly::NonmonotonicPoll {
                        consumer: s.consumer.clone(),
                        partition: s.partition,
                        from: lo,
                        to: *offset,
                    }),
                    SessionStart::Group { .. } => out.push(Anomaly::CommittedOffsetRegression {
                        partition: s.partition,
                        from: lo,
                        to: *offset,
                    }),
                },
                None if *offset > hi && hi < end => out.push(Anomaly::PollSkip {
                    consumer: s.consumer.clone(),
                    partition: s.partition,
                    from: hi - 1,
                    to: *offset,
                }),
                None => {}
                Some(p) if *offset <= p => out.push(Anomaly::NonmonotonicPoll {
                    consumer: s.consumer.clone(),
                    partition: s.partition,
                    from: p,
                    to: *offset,
                }),
                Some(p) if *offset > p + 1 => out.push(Anomaly::PollSkip {
                    consumer: s.consumer.clone(),
                    partition: s.partition,
                    from: p,
                    to: *offset,
                }),
                Some(_) => {}
            }
            prev = Some(*offset);
        }
    }
}

/// Acknowledged commits never go back, and the final committed offset is
/// one the member committed, no older than its last acknowledged one.
fn check_commits(h: &History, out: &mut Vec<Anomaly>) {
    let mut last_acked: BTreeMap<i32, i64> = BTreeMap::new();
    let mut max_attempted: BTreeMap<i32, i64> = BTreeMap::new();
    for c in &h.commits {
        let m = max_attempted.entry(c.partition).or_insert(c.offset);
        *m = (*m).max(c.offset);
        if !c.acked {
            continue;
        }
        if let Some(prev) = last_acked.get(&c.partition) {
            if c.offset < *prev {
                out.push(Anomaly::CommittedOffsetRegression {
                    partition: c.partition,
                    from: *prev,
                    to: c.offset,
                });
            }
        }
        last_acked.insert(c.partition, c.offset);
    }
    for (p, acked) in &last_acked {
        let max = max_attempted.get(p).copied().unwrap_or(*acked);
        match h.final_committed.get(p) {
            Some(c) if *c >= *acked && *c <= max => {}
            other => out.push(Anomaly::CommittedOffsetRegression {
                partition: *p,
                from: *acked,
                to: other.copied().unwrap_or(-1),
            }),
        }
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
