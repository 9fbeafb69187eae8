//! Applying a [`Schedule`] to a running cluster, and healing it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{net, Fault, Schedule};
use crate::cluster::LocalCluster;

/// What the nemesis did in one trial.
#[derive(Debug, Clone, Default)]
pub struct NemesisReport {
    /// One line per action (applied, healed, skipped), with its time.
    pub history: Vec<String>,
    /// Faults applied, per kind (skipped ones not counted).
    pub applied: BTreeMap<&'static str, usize>,
    /// When every fault had healed and every node was running again.
    pub healed_at: Option<Instant>,
    /// Nodes that had exited on their own by the end (restarted then).
    pub exited: Vec<usize>,
    /// Errors the nemesis met (a restart that failed, say); the trial
    /// reports them, since a fault it did not really inject proves nothing.
    pub errors: Vec<String>,
}

/// Each node's state as the nemesis left it.
#[derive(Default)]
struct Nodes {
    down: BTreeSet<usize>,
    paused: BTreeSet<usize>,
    /// Being started again in the background (faults skip it meanwhile).
    restarting: BTreeSet<usize>,
}

enum Event {
    Apply(usize),
    Heal(usize),
}

/// Run `schedule` on `c` from `started`, then heal everything; returns what
/// was done. Blocks for the schedule's duration plus the healing.
pub fn run(c: &LocalCluster, schedule: &Schedule, started: Instant) -> NemesisReport {
    let report = Mutex::new(NemesisReport::default());
    let nodes = Arc::new(Mutex::new(Nodes::default()));
    let log = |line: String| {
        let t = started.elapsed().as_secs_f64();
        lock(&report).history.push(format!("t+{t:>5.1}s {line}"));
    };
    let mut events: Vec<(Duration, Event)> = Vec::new();
    for (i, s) in schedule.steps.iter().enumerate() {
        events.push((s.at, Event::Apply(i)));
        events.push(((s.at + s.lasts).min(schedule.duration), Event::Heal(i)));
    }
    // Stable: at one instant, in schedule order (heals of earlier faults
    // before later applies only when they are earlier in time).
    events.sort_by_key(|(t, _)| *t);
    let mut active: BTreeSet<usize> = BTreeSet::new();
    thread::scope(|scope| {
        for (at, event) in events {
            let now = started.elapsed();
            if at > now {
                thread::sleep(at - now);
            }
            match event {
                Event::Apply(i) => {
                    let fault = &schedule.steps[i].fault;
                    match apply(c, schedule, fault, i, &nodes) {
                        Ok(true) => {
                            active.insert(i);
                            *lock(&report).applied.entry(fault.kind()).or_default() += 1;
                            log(format!("{fault}"));
                        }
                        Ok(false) => log(format!("{fault}: skipped (the node is down or restarting)")),
                        Err(e) => {
                            log(format!("{fault}: FAILED {e:#}"));
                            lock(&report).errors.push(format!("{fault}: {e:#}"));
                        }
                    }
                }
                Event::Heal(i) if active.remove(&i) => {
                    let fault = &schedule.steps[i].fault;
                    log(format!("heal {fault}"));
                    if let Fault::Kill { node } = fault {
                        let node = *node;
                        let nodes = nodes.clone();
                        let report = &report;
                        scope.spawn(move || restart(c, node, &nodes, report, started));
                    } else if let Err(e) = heal(c, schedule, fault, i, &nodes) {
                        lock(&report).errors.push(format!("heal {fault}: {e:#}"));
                    }
                }
                Event::Heal(_) => {}
            }
        }
    });
    // Everything back: no rule, no pause, no filler, every node running.
    let mut errors = Vec::new();
    if let Err(e) = net::heal_all(c) {
        errors.push(format!("heal the network: {e:#}"));
    }
    let (paused, down) = {
        let mut n = lock(&nodes);
        (std::mem::take(&mut n.paused), std::mem::take(&mut n.down))
    };
    for k in paused {
        if let Err(e) = c.signal(k, "CONT") {
            errors.push(format!("SIGCONT n{k}: {e:#}"));
        }
    }
    if let Err(e) = std::fs::remove_file(filler(c, schedule.disk_node)) {
        if e.kind() != std::io::ErrorKind::NotFound {
            errors.push(format!("remove the disk filler: {e}"));
        }
    }
    // A node that exited on its own (it stops when its metadata store
    // fails, on a full disk say) is started again, as a supervisor would.
    let mut down = down;
    for k in 1..=schedule.nodes {
        if !down.contains(&k) && !c.is_running(k) {
            log(format!("n{k} had exited on its own; starting it again"));
            lock(&report).exited.push(k);
            down.insert(k);
        }
    }
    if !down.is_empty() {
        let down: Vec<usize> = down.into_iter().collect();
        if let Err(e) = c.start_many(&down) {
            errors.push(format!("restart {down:?}: {e:#}"));
        }
    }
    log("healed: every node running, no fault left".to_string());
    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    report.errors.extend(errors);
    report.healed_at = Some(Instant::now());
    report
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Apply one fault; `Ok(false)` when it does not apply now.
fn apply(
    c: &LocalCluster,
    schedule: &Schedule,
    fault: &Fault,
    id: usize,
    nodes: &Mutex<Nodes>,
) -> anyhow::Result<bool> {
    let tag = id.to_string();
    let all: Vec<usize> = (1..=schedule.nodes).collect();
    match fault {
        Fault::Kill { node } => {
            let mut n = lock(nodes);
            if n.down.contains(node) || n.restarting.contains(node) {
                return Ok(false);
            }
            c.kill9(*node)?;
            n.down.insert(*node);
            n.paused.remove(node);
        }
        Fault::Pause { node } => {
            let mut n = lock(nodes);
            if n.down.contains(node) || n.restarting.contains(node) || n.paused.contains(node) {
                return Ok(false);
            }
            c.signal(*node, "STOP")?;
            n.paused.insert(*node);
        }
        Fault::Isolate { node } => {
            let rest: Vec<usize> = all.iter().copied().filter(|k| k != node).collect();
            net::drop_between(c, &rest, &[*node], &tag)?;
            net::drop_between(c, &[*node], &rest, &tag)?;
        }
        Fault::Split { minority } => {
            let rest: Vec<usize> = all.iter().copied().filter(|k| !minority.contains(k)).collect();
            net::drop_between(c, &rest, minority, &tag)?;
            net::drop_between(c, minority, &rest, &tag)?;
        }
        Fault::OneWay { from, to } => net::drop_between(c, &[*from], &[*to], &tag)?,
        Fault::DiskFull { node } => {
            fill(&filler(c, *node))?;
        }
    }
    Ok(true)
}

/// Heal one fault (all but `Kill`, which [`restart`] heals).
fn heal(
    c: &LocalCluster,
    schedule: &Schedule,
    fault: &Fault,
    id: usize,
    nodes: &Mutex<Nodes>,
) -> anyhow::Result<()> {
    let tag = id.to_string();
    let all: Vec<usize> = (1..=schedule.nodes).collect();
    match fault {
        Fault::Kill { .. } => Ok(()),
        Fault::Pause { node } => {
            let mut n = lock(nodes);
            if n.paused.remove(node) && !n.down.contains(node) {
                c.signal(*node, "CONT")?;
            }
            Ok(())
        }
        Fault::Isolate { node } => {
            let rest: Vec<usize> = all.iter().copied().filter(|k| k != node).collect();
            net::heal_between(c, &rest, &[*node], &tag)?;
            net::heal_between(c, &[*node], &rest, &tag)
        }
        Fault::Split { minority } => {
            let rest: Vec<usize> = all.iter().copied().filter(|k| !minority.contains(k)).collect();
            net::heal_between(c, &rest, minority, &tag)?;
            net::heal_between(c, minority, &rest, &tag)
        }
        Fault::OneWay { from, to } => net::heal_between(c, &[*from], &[*to], &tag),
        Fault::DiskFull { node } => match std::fs::remove_file(filler(c, *node)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        },
    }
}

/// Start a killed node again, in the background of the schedule.
fn restart(
    c: &LocalCluster,
    node: usize,
    nodes: &Mutex<Nodes>,
    report: &Mutex<NemesisReport>,
    started: Instant,
) {
    {
        let mut n = lock(nodes);
        if !n.down.remove(&node) {
            return;
        }
        n.restarting.insert(node);
    }
    let result = c.start(node);
    let t = started.elapsed().as_secs_f64();
    let mut r = lock(report);
    match result {
        Ok(()) => r.history.push(format!("t+{t:>5.1}s n{node} running again")),
        Err(e) => {
            r.history.push(format!("t+{t:>5.1}s n{node} restart FAILED"));
            r.errors.push(format!("restart n{node}: {e:#}"));
            // Still down: the final heal starts it.
            lock(nodes).down.insert(node);
        }
    }
    lock(nodes).restarting.remove(&node);
}

/// The file that fills node `k`'s small disk.
fn filler(c: &LocalCluster, k: usize) -> PathBuf {
    c.data_dir(k).join("nemesis-fill")
}

/// Write zeros to `path` until the file system refuses another byte.
fn fill(path: &Path) -> anyhow::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let big = vec![0u8; 1 << 20];
    for chunk in [&big[..], &big[..4096], &big[..1]] {
        while f.write_all(chunk).is_ok() {}
    }
    // What was written is in the page cache of a tmpfs: it is the disk.
    let _ = f.sync_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_stops_at_the_first_refused_byte() {
        // /dev/full refuses every write: the loop must end, not spin.
        let started = Instant::now();
        fill(Path::new("/dev/full")).expect("fill");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
