//! The invariants, and the breadth-first search that checks them in every
//! reachable state (shortest counterexamples first).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::shape::{Shape, BOOKIES, MAX_LEDGERS};
use super::state::{Role, State};
use super::step::{successors, Action};

/// A broken invariant, with the shortest trace reaching it.
#[derive(Debug)]
pub struct Violation {
    /// Which invariant ("a" … "f").
    pub invariant: &'static str,
    /// What exactly is wrong.
    pub detail: String,
    /// The actions from the initial state, then the state reached.
    pub trace: Vec<String>,
}

/// What a search found.
#[derive(Debug)]
pub struct Outcome {
    /// Distinct states reached.
    pub states: u64,
    /// Transitions followed.
    pub transitions: u64,
    /// Deepest BFS level reached.
    pub depth: u32,
    /// Whether states at the depth bound still had successors.
    pub truncated: bool,
    /// Wall time in seconds.
    pub secs: f64,
    /// The first violation found, if any.
    pub violation: Option<Violation>,
}

/// Entries of ledger `l` held by at least `Qa` members of their write set
/// (`writer_only`: counting only copies made by the writer's own adds).
fn copies(s: &State, sh: &Shape, l: usize, e: u8, writer_only: bool) -> usize {
    (0..BOOKIES)
        .filter(|&b| {
            let bk = &s.bookies[b];
            let mask = if writer_only {
                bk.held[l] & !bk.rec[l]
            } else {
                bk.held[l]
            };
            sh.in_ws(b, e) && mask & (1 << e) != 0
        })
        .count()
}

/// The first invariant `s` breaks.
pub fn violation(s: &State, sh: &Shape) -> Option<(&'static str, String)> {
    let n = usize::from(s.meta.nsegs);
    for l in 0..n {
        let seg = s.meta.segs[l];
        let Some(end) = seg.sealed else { continue };
        // (a) No acknowledged entry is past the sealed end.
        if let Some(a) = s.acked[l] {
            if end.is_none_or(|end| a > end) {
                return Some((
                    "a",
                    format!("L{l}: entry {a} was acknowledged but the segment is sealed at {end:?}"),
                ));
            }
        }
        // (b) Fencing: the old writer's own adds can never make an entry
        // past the end confirmable (a prefix of entries on Qa bookies).
        let confirmable = (0..sh.entries(l as u8))
            .take_while(|e| copies(s, sh, l, *e, true) >= sh.cfg.qa)
            .count();
        if confirmable > end.map_or(0, |e| usize::from(e) + 1) {
            return Some((
                "b",
                format!("L{l}: writer adds put entries 0..{confirmable} on an ack quorum, past the sealed end {end:?}"),
            ));
        }
        // (c) Every entry up to the sealed end is durable on Qa bookies.
        for e in 0..=end.unwrap_or(0) {
            if end.is_some() && copies(s, sh, l, e, false) < sh.cfg.qa {
                return Some((
                    "c",
                    format!("L{l}: sealed at {end:?} but entry {e} is on fewer than Qa bookies"),
                ));
            }
        }
    }
    // (d) No two live incarnations share an epoch.
    let live: Vec<u8> = s
        .procs
        .iter()
        .filter(|p| p.role != Role::Idle)
        .map(|p| p.epoch)
        .collect();
    if live.len() == 2 && live[0] == live[1] {
        return Some(("d", format!("two processes hold epoch {}", live[0])));
    }
    // (e) Offsets are dense: each segment starts where the previous ended.
    for l in 1..n {
        let prev = s.meta.segs[l - 1];
        let Some(end) = prev.sealed else {
            return Some(("e", format!("L{l} added while L{} is in progress", l - 1)));
        };
        let want = prev.base + end.map_or(0, |e| e + 1);
        if s.meta.segs[l].base != want {
            return Some((
                "e",
                format!("L{l} starts at offset {} instead of {want}", s.meta.segs[l].base),
            ));
        }
    }
    // (f) Every bookie holds a prefix of its stripe.
    for (b, bk) in s.bookies.iter().enumerate() {
        for l in 0..MAX_LEDGERS {
            let Some(last) = bk.last(l) else { continue };
            let stripe = (0..=last)
                .filter(|e| sh.in_ws(b, *e))
                .fold(0u8, |m, e| m | 1 << e);
            if bk.held[l] != stripe {
                return Some((
                    "f",
                    format!("B{b} L{l} holds {:#b}, not a stripe prefix", bk.held[l]),
                ));
            }
        }
    }
    None
}

/// (d) across one transition: the epoch never goes back, a sealed
/// segment never changes, segments are never removed.
fn transition_violation(a: &State, b: &State) -> Option<(&'static str, String)> {
    if b.meta.epoch < a.meta.epoch {
        return Some((
            "d",
            format!("owner epoch went back from {} to {}", a.meta.epoch, b.meta.epoch),
        ));
    }
    if b.meta.nsegs < a.meta.nsegs {
        return Some(("e", "a segment disappeared".into()));
    }
    for l in 0..usize::from(a.meta.nsegs) {
        if a.meta.segs[l].sealed.is_some() && a.meta.segs[l].sealed != b.meta.segs[l].sealed {
            return Some(("d", format!("sealed segment L{l} changed")));
        }
    }
    None
}

/// Keys are fingerprints already: hash them as they are.
#[derive(Default)]
struct Ident(u64);

impl Hasher for Ident {
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Parents = HashMap<u64, u64, BuildHasherDefault<Ident>>;

/// Rebuild the actions leading to the state with fingerprint `last`.
fn trace(parents: &Parents, sh: &Shape, last: u64, end: &State) -> Vec<String> {
    let mut chain = vec![last];
    let mut at = last;
    while let Some(&p) = parents.get(&at) {
        if p == at {
            break;
        }
        chain.push(p);
        at = p;
    }
    chain.reverse();
    let mut s = State::initial();
    let mut out = Vec::new();
    let mut succ = Vec::new();
    for fp in chain.iter().skip(1) {
        successors(&s, sh, &mut succ);
        let Some((a, n)) = succ.iter().find(|(_, n)| n.fingerprint() == *fp) else {
            out.push("(trace lost: fingerprint collision?)".into());
            break;
        };
        out.push(format!("{:>3}. {a}", out.len() + 1));
        s = n.clone();
    }
    out.push(format!("state reached:\n{end}"));
    out
}

/// Explore every state reachable within the bounds, breadth first,
/// checking every invariant on every transition.
pub fn explore(sh: &Shape) -> Outcome {
    search(sh, &|a, b| {
        transition_violation(a, b).or_else(|| violation(b, sh))
    })
}

/// The first transition (shortest trace) for which `found` says something:
/// to show that a behaviour is reachable.
pub fn witness(sh: &Shape, found: &dyn Fn(&State, &State) -> Option<String>) -> Outcome {
    search(sh, &|a, b| found(a, b).map(|what| ("witness", what)))
}

type Check<'a> = dyn Fn(&State, &State) -> Option<(&'static str, String)> + 'a;

/// Breadth-first search until `check` reports a transition.
fn search(sh: &Shape, check: &Check<'_>) -> Outcome {
    let started = Instant::now();
    let init = State::initial();
    let mut parents = Parents::default();
    parents.insert(init.fingerprint(), init.fingerprint());
    let mut level = vec![init];
    let (mut depth, mut transitions, mut truncated) = (0u32, 0u64, false);
    let mut succ: Vec<(Action, State)> = Vec::new();
    let mut found = None;
    'search: while !level.is_empty() {
        let mut next = Vec::new();
        for s in &level {
            successors(s, sh, &mut succ);
            if depth >= sh.cfg.max_depth {
                truncated |= !succ.is_empty();
                continue;
            }
            let from = s.fingerprint();
            for (_, n) in succ.drain(..) {
                transitions += 1;
                let fp = n.fingerprint();
                if parents.contains_key(&fp) {
                    continue;
                }
                parents.insert(fp, from);
                if let Some(v) = check(s, &n) {
                    found = Some((v, fp, n));
                    break 'search;
                }
                next.push(n);
            }
        }
        if next.is_empty() {
            break;
        }
        if std::env::var_os("MODEL_PROGRESS").is_some() {
            eprintln!(
                "depth {depth}: {} states, next level {}, {:.1} s",
                parents.len(),
                next.len(),
                started.elapsed().as_secs_f64()
            );
        }
        depth += 1;
        level = next;
    }
    let violation = found.map(|((invariant, detail), fp, n)| Violation {
        invariant,
        detail,
        trace: trace(&parents, sh, fp, &n),
    });
    Outcome {
        states: parents.len() as u64,
        transitions,
        depth,
        truncated,
        secs: started.elapsed().as_secs_f64(),
        violation,
    }
}
