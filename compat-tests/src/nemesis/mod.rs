//! The nemesis: randomized fault schedules for a multi-process cluster.
//!
//! A [`Schedule`] is drawn from a seed alone ([`Schedule::generate`]), so a
//! failing trial replays with the same faults at the same times
//! (`scripts/chaos.sh --seed S`); [`runner::Nemesis`] applies it to a
//! [`LocalCluster`](crate::cluster::LocalCluster) started in network
//! namespaces, and heals everything at the end of the trial.
//!
//! Faults may overlap (several at once are part of the point); the runner
//! keeps each node's state, so a fault that no longer applies (pausing a
//! node that is down) is skipped and says so in the history.

pub mod net;
pub mod runner;

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One kind of fault (nodes are 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9`; healed by starting the node again on its data.
    Kill { node: usize },
    /// SIGSTOP; healed by SIGCONT. Pauses both shorter and longer than the
    /// broker session timeout are drawn.
    Pause { node: usize },
    /// The node cut off from every other node (both directions).
    Isolate { node: usize },
    /// The cluster split in two: `minority` cut off from the rest.
    Split { minority: Vec<usize> },
    /// Packets from `from` to `to` dropped; the other way still flows.
    OneWay { from: usize, to: usize },
    /// The small-disk node's data directory filled to the last byte.
    DiskFull { node: usize },
}

impl Fault {
    /// The kind's name, as the campaign table counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Isolate { .. } => "isolate",
            Fault::Split { .. } => "split",
            Fault::OneWay { .. } => "one-way",
            Fault::DiskFull { .. } => "disk-full",
        }
    }

    /// Every kind, in table order.
    pub const KINDS: [&'static str; 6] = ["kill", "pause", "isolate", "split", "one-way", "disk-full"];
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { node } => write!(f, "kill -9 n{node}"),
            Fault::Pause { node } => write!(f, "pause n{node}"),
            Fault::Isolate { node } => write!(f, "isolate n{node}"),
            Fault::Split { minority } => write!(f, "split {minority:?} from the rest"),
            Fault::OneWay { from, to } => write!(f, "drop n{from}->n{to}"),
            Fault::DiskFull { node } => write!(f, "fill n{node}'s disk"),
        }
    }
}

/// A fault and when it starts and heals, from the trial's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When it is applied.
    pub at: Duration,
    /// What.
    pub fault: Fault,
    /// How long until it heals (it heals at the trial's end at the latest).
    pub lasts: Duration,
}

/// A trial's faults, drawn from its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// The node whose data directory is a small disk (disk-full faults).
    pub disk_node: usize,
    /// How long faults are injected; everything heals then.
    pub duration: Duration,
    /// The faults, by start time.
    pub steps: Vec<Step>,
}

/// The broker session timeout the long pauses must exceed (the default of
/// `--broker-session-timeout-ms`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

impl Schedule {
    /// Draw a schedule for a cluster of `nodes` (3 or more) running faults
    /// for `duration`. The same arguments always give the same schedule.
    pub fn generate(seed: u64, nodes: usize, duration: Duration) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let disk_node = rng.gen_range(1..=nodes);
        let span = duration.as_millis().max(4000) as u64;
        let mut steps = Vec::new();
        let count = rng.gen_range(2..=6);
        while steps.len() < count {
            let at = Duration::from_millis(rng.gen_range(1000..span - 2000));
            let burst = rng.gen_bool(0.25);
            for _ in 0..if burst { 2 } else { 1 } {
                steps.push(draw_step(&mut rng, nodes, disk_node, at));
            }
        }
        steps.sort_by_key(|s| s.at);
        Schedule {
            seed,
            nodes,
            disk_node,
            duration,
            steps,
        }
    }

    /// One line per fault: the compact history a failing trial prints.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "seed {} · {} nodes · disk node n{} · {:?} of faults\n",
            self.seed, self.nodes, self.disk_node, self.duration
        );
        for s in &self.steps {
            out.push_str(&format!(
                "  t+{:>5.1}s  {} for {:.1}s\n",
                s.at.as_secs_f64(),
                s.fault,
                s.lasts.as_secs_f64()
            ));
        }
        out
    }
}

/// One random fault starting at `at`.
fn draw_step(rng: &mut StdRng, nodes: usize, disk_node: usize, at: Duration) -> Step {
    let node = rng.gen_range(1..=nodes);
    let ms = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.gen_range(lo..hi));
    let (fault, lasts) = match rng.gen_range(0..100) {
        0..=21 => (Fault::Kill { node }, ms(rng, 500, 8000)),
        22..=41 => {
            // Half shorter than the session timeout, half well beyond it.
            let session = SESSION_TIMEOUT.as_millis() as u64;
            let lasts = if rng.gen_bool(0.5) {
                ms(rng, 300, session / 2)
            } else {
                ms(rng, session + 2000, session * 2 + 2000)
            };
            (Fault::Pause { node }, lasts)
        }
        42..=56 => (Fault::Isolate { node }, ms(rng, 2000, 12000)),
        57..=71 => {
            // A minority: fewer than half, and at least one node.
            let size = rng.gen_range(1..=(nodes - 1) / 2);
            let mut all: Vec<usize> = (1..=nodes).collect();
            let mut minority = Vec::new();
            for _ in 0..size {
                minority.push(all.remove(rng.gen_range(0..all.len())));
            }
            minority.sort_unstable();
            (Fault::Split { minority }, ms(rng, 2000, 12000))
        }
        72..=86 => {
            let mut to = rng.gen_range(1..=nodes - 1);
            if to >= node {
                to += 1;
            }
            (Fault::OneWay { from: node, to }, ms(rng, 2000, 12000))
        }
        _ => (Fault::DiskFull { node: disk_node }, ms(rng, 1000, 10000)),
    };
    Step { at, fault, lasts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_draws_the_same_schedule() {
        let d = Duration::from_secs(45);
        assert_eq!(Schedule::generate(7, 3, d), Schedule::generate(7, 3, d));
        assert_ne!(Schedule::generate(7, 3, d), Schedule::generate(8, 3, d));
    }

    #[test]
    fn schedules_stay_inside_the_trial_and_name_real_nodes() {
        let d = Duration::from_secs(45);
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..500 {
            for nodes in [3, 5] {
                let s = Schedule::generate(seed, nodes, d);
                assert!(s.steps.len() >= 2, "{}", s.describe());
                for step in &s.steps {
                    assert!(
                        step.at >= Duration::from_secs(1) && step.at < d,
                        "{}",
                        s.describe()
                    );
                    kinds.insert(step.fault.kind());
                    let named = match &step.fault {
                        Fault::Kill { node }
                        | Fault::Pause { node }
                        | Fault::Isolate { node }
                        | Fault::DiskFull { node } => vec![*node],
                        Fault::Split { minority } => {
                            assert!(!minority.is_empty() && minority.len() * 2 < nodes);
                            minority.clone()
                        }
                        Fault::OneWay { from, to } => {
                            assert_ne!(from, to);
                            vec![*from, *to]
                        }
                    };
                    assert!(named.iter().all(|n| (1..=nodes).contains(n)), "{}", s.describe());
                }
            }
        }
        assert_eq!(kinds.len(), Fault::KINDS.len(), "every kind is drawn: {kinds:?}");
    }
}
