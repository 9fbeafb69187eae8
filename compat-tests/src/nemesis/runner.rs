//! Applying a [`Schedule`] to a running cluster, and healing it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
    /// Nodes that exited on their own during the trial (the supervisor
    /// started them again).
    pub exited: BTreeSet<usize>,
    /// Errors the nemesis met (a restart that failed, say); the trial
    /// reports them, since a fault it did not really inject proves nothing.
    pub errors: Vec<String>,
}

/// Each node's state as the nemesis left it.
#[derive(Default)]
struct Nodes {
    /// Killed by the nemesis, its restart not due yet.
    killed: BTreeSet<usize>,
    paused: BTreeSet<usize>,
    /// Being started again in the background (faults skip it meanwhile).
    restarting: BTreeSet<usize>,
    /// Exited on its own (a node stops when its metadata store fails, on a
    /// full disk say): the supervisor starts it again, at most every
    /// [`SUPERVISOR_BACKOFF`], as systemd or a container runtime would.
    crashed: BTreeMap<usize, Instant>,
    /// Disk-full faults in force: the disk is freed when the last heals.
    disk_full: usize,
}

/// How often the supervisor tries to start a node that exited on its own.
const SUPERVISOR_BACKOFF: Duration = Duration::from_secs(3);

enum Event {
    Apply(usize),
    Heal(usize),
}

/// Run `schedule` on `c` from `started`, then heal everything; returns what
/// was done. Blocks for the schedule's duration plus the healing.
pub fn run(c: &LocalCluster, schedule: &Schedule, started: Instant) -> NemesisReport {
    let report = Mutex::new(NemesisReport::default());
    let nodes = Mutex::new(Nodes::default());
    let log = |line: String| {
        let t = started.elapsed().as_secs_f64();
        lock(&report).history.push(format!("t+{t:>5.1}s {line}"));
    };
    let mut events: Vec<(Duration, Event)> = Vec::new();
    for (i, s) in schedule.steps.iter().enumerate() {
        events.push((s.at, Event::Apply(i)));
        events.push(((s.at + s.lasts).min(schedule.duration), Event::Heal(i)));
    }
    // Stable: events at one instant keep the schedule's order.
    events.sort_by_key(|(t, _)| *t);
    let mut events = events.into_iter().peekable();
    let mut active: BTreeSet<usize> = BTreeSet::new();
    thread::scope(|scope| {
        loop {
            // Sleep in short ticks until the next event (or the end of the
            // schedule), supervising the nodes meanwhile.
            let next = events.peek().map_or(schedule.duration, |(t, _)| *t);
            while started.elapsed() < next {
                supervise(c, schedule, &nodes, &report, started, scope, &log);
                thread::sleep((next - started.elapsed().min(next)).min(Duration::from_millis(250)));
            }
            let Some((_, event)) = events.next() else {
                break;
            };
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
                        if lock(&nodes).killed.remove(&node) {
                            lock(&nodes).restarting.insert(node);
                            let (nodes, report) = (&nodes, &report);
                            scope.spawn(move || restart(c, node, nodes, report, started));
                        }
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
    let paused = std::mem::take(&mut lock(&nodes).paused);
    for k in paused {
        if c.is_running(k) {
            if let Err(e) = c.signal(k, "CONT") {
                errors.push(format!("SIGCONT n{k}: {e:#}"));
            }
        }
    }
    if let Err(e) = std::fs::remove_file(filler(c, schedule.disk_node)) {
        if e.kind() != std::io::ErrorKind::NotFound {
            errors.push(format!("remove the disk filler: {e}"));
        }
    }
    let down: Vec<usize> = (1..=schedule.nodes).filter(|k| !c.is_running(*k)).collect();
    for k in &down {
        if !lock(&nodes).killed.contains(k) {
            log(format!("n{k} had exited on its own"));
            lock(&report).exited.insert(*k);
        }
    }
    if !down.is_empty() {
        log(format!("starting {down:?}"));
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

/// Start again, in the background, every node that exited on its own (not
/// killed by the nemesis), at most every [`SUPERVISOR_BACKOFF`].
fn supervise<'scope, 'env>(
    c: &'env LocalCluster,
    schedule: &Schedule,
    nodes: &'env Mutex<Nodes>,
    report: &'env Mutex<NemesisReport>,
    started: Instant,
    scope: &'scope thread::Scope<'scope, 'env>,
    log: &impl Fn(String),
) {
    for k in 1..=schedule.nodes {
        let mut n = lock(nodes);
        if n.killed.contains(&k) || n.restarting.contains(&k) || c.is_running(k) {
            continue;
        }
        let now = Instant::now();
        match n.crashed.get(&k) {
            Some(next) if now < *next => continue,
            Some(_) => {}
            None => {
                log(format!("n{k} exited on its own; the supervisor starts it again"));
                lock(report).exited.insert(k);
                n.paused.remove(&k);
            }
        }
        n.crashed.insert(k, now + SUPERVISOR_BACKOFF);
        n.restarting.insert(k);
        drop(n);
        scope.spawn(move || restart(c, k, nodes, report, started));
    }
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
            if n.killed.contains(node) || n.restarting.contains(node) || !c.is_running(*node) {
                return Ok(false);
            }
            c.kill9(*node)?;
            n.killed.insert(*node);
            n.paused.remove(node);
        }
        Fault::Pause { node } => {
            let mut n = lock(nodes);
            if n.killed.contains(node)
                || n.restarting.contains(node)
                || n.paused.contains(node)
                || !c.is_running(*node)
            {
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
            let mut n = lock(nodes);
            if n.disk_full == 0 {
                fill(&filler(c, *node))?;
            }
            n.disk_full += 1;
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
            if n.paused.remove(node) && c.is_running(*node) {
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
        Fault::DiskFull { node } => {
            let mut n = lock(nodes);
            n.disk_full = n.disk_full.saturating_sub(1);
            if n.disk_full > 0 {
                return Ok(());
            }
            match std::fs::remove_file(filler(c, *node)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

/// Start a node again (in the background of the schedule); a failure
/// (its disk is still full, say) leaves it to the supervisor.
fn restart(
    c: &LocalCluster,
    node: usize,
    nodes: &Mutex<Nodes>,
    report: &Mutex<NemesisReport>,
    started: Instant,
) {
    let result = c.start(node);
    let t = started.elapsed().as_secs_f64();
    let line = match result {
        Ok(()) => {
            lock(nodes).crashed.remove(&node);
            format!("t+{t:>5.1}s n{node} running again")
        }
        Err(e) => {
            let why = format!("{e:#}");
            let last = why
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            lock(nodes)
                .crashed
                .insert(node, Instant::now() + SUPERVISOR_BACKOFF);
            format!("t+{t:>5.1}s n{node} did not start: {last}")
        }
    };
    lock(report).history.push(line);
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
