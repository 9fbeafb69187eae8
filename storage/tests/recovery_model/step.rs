//! The transitions: every action enabled in a state and the state it
//! leads to. Each action is one atomic step of one component; see the
//! module docs of `recovery_model.rs` for the code each one models.

use std::fmt;

use super::handle::{bit, bookie_handles, count, decide, entry_done, open, proc_handles, set_idle, settle};
use super::shape::{Shape, BOOKIES, PROCS};
use super::state::{Msg, ReqKind, Role, State, Writer};

/// One transition, for traces.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// `AcquireStream` CAS (epoch + 1) and `stream::open`.
    Acquire(u8),
    /// `stream::open` again at the same epoch (Assigned mode, after the
    /// incarnation ended).
    Reopen(u8),
    /// `LedgerWriter::add` of the next entry.
    Issue(u8),
    /// The writer seals its own segment (`complete_segment`).
    Close(u8),
    /// `AddSegment` for the next append.
    AddSegment(u8),
    /// `CompleteSegment` with the recovered end (`stream::open`).
    Seal(u8),
    /// `recover` stops waiting for fence answers and walks with this LAC.
    Decide(u8, Option<u8>),
    /// A message is delivered.
    Deliver(Msg),
    /// A message is lost.
    Drop(Msg),
    /// A process gives up waiting for a bookie's answer to entry `e`.
    Timeout(u8, u8, u8),
    /// A bookie crashes (keeps durable entries and fences, loses its LAC).
    Crash(u8),
    /// A crashed bookie comes back.
    Restart(u8),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Acquire(p) => write!(f, "P{p} acquires the stream (epoch CAS) and opens it"),
            Action::Reopen(p) => write!(f, "P{p} reopens the stream at its epoch"),
            Action::Issue(p) => write!(f, "P{p} issues its next entry"),
            Action::Close(p) => write!(f, "P{p} seals its segment at its LAC (CompleteSegment)"),
            Action::AddSegment(p) => write!(f, "P{p} adds a segment (AddSegment)"),
            Action::Seal(p) => write!(f, "P{p} seals the recovered segment (CompleteSegment)"),
            Action::Decide(p, lac) => write!(f, "P{p} ends fencing, known LAC {lac:?}"),
            Action::Deliver(m) => write!(f, "deliver {m}"),
            Action::Drop(m) => write!(f, "lose {m}"),
            Action::Timeout(p, b, e) => write!(f, "P{p} times out on B{b} for entry {e}"),
            Action::Crash(b) => write!(f, "B{b} crashes"),
            Action::Restart(b) => write!(f, "B{b} restarts"),
        }
    }
}

fn in_flight(s: &State, pred: impl Fn(&Msg) -> bool) -> bool {
    s.msgs.iter().any(pred)
}

/// Whether answer `m` can still change its receiver's state. One that
/// cannot (its entry settled, its future dropped with an ended
/// incarnation) is a no-op whenever delivered, and staleness never ends,
/// so it is discarded at once: the same behaviours, fewer states.
fn wanted(s: &State, sh: &Shape, m: &Msg) -> bool {
    let Msg::Resp {
        to,
        from,
        ledger,
        kind,
        entry,
        ..
    } = *m
    else {
        return true;
    };
    let b = bit(usize::from(from));
    match (kind, s.procs[usize::from(to)].role) {
        (ReqKind::Add, Role::Writing(w)) => {
            let e = usize::from(entry);
            w.ledger == ledger
                && entry < w.next
                && w.lac.is_none_or(|l| entry > l)
                && count(w.acks[e]) < sh.cfg.qa
                && w.fails[e].count_ones() <= sh.can_fail
                && (w.acks[e] | w.fails[e]) & b == 0
        }
        (
            ReqKind::Fence,
            Role::Fencing {
                ledger: l, answered, ..
            },
        ) => l == ledger && answered & b == 0,
        (ReqKind::RecAdd, Role::Walking(w)) => w.ledger == ledger && w.e == entry && w.pending & b != 0,
        _ => false,
    }
}

/// Push the successor if the fault budget allows `cost` more faults.
fn push(out: &mut Vec<(Action, State)>, sh: &Shape, a: Action, mut s: State, cost: u8) {
    if s.faults + cost <= sh.cfg.faults {
        s.faults += cost;
        if s.msgs.iter().any(|m| !wanted(&s, sh, m)) {
            let keep: Vec<Msg> = s.msgs.iter().copied().filter(|m| wanted(&s, sh, m)).collect();
            s.msgs = keep;
        }
        out.push((a, s));
    }
}

/// Every enabled transition of `s`.
pub fn successors(s: &State, sh: &Shape, out: &mut Vec<(Action, State)>) {
    out.clear();
    for p in 0..PROCS {
        process_actions(s, sh, p, out);
    }
    message_actions(s, sh, out);
    for b in 0..BOOKIES {
        if s.bookies[b].up && s.faults >= sh.cfg.faults {
            continue;
        }
        let mut n = s.clone();
        if s.bookies[b].up {
            n.bookies[b].up = false;
            n.bookies[b].lac = Default::default();
            n.msgs
                .retain(|m| !matches!(m, Msg::Req { to, .. } if usize::from(*to) == b));
            push(out, sh, Action::Crash(b as u8), n, 1);
        } else {
            n.bookies[b].up = true;
            push(out, sh, Action::Restart(b as u8), n, 0);
        }
    }
}

fn message_actions(s: &State, sh: &Shape, out: &mut Vec<(Action, State)>) {
    for (k, m) in s.msgs.iter().enumerate() {
        if k > 0 && s.msgs[k - 1] == *m {
            continue;
        }
        let mut n = s.clone();
        n.take(m);
        // A lost answer is a timeout while the request is in flight (then
        // the request is handled and its answer is stale): only requests
        // are lost.
        match *m {
            Msg::Req { from, to, .. } => {
                let first = s
                    .msgs
                    .iter()
                    .find(|x| matches!(x, Msg::Req { from: f, to: t, .. } if *f == from && *t == to));
                // In FIFO mode only a connection's oldest request can be
                // handled or lost (later ones go on a new connection).
                if sh.cfg.fifo && first != Some(m) {
                    continue;
                }
                if s.faults < sh.cfg.faults {
                    push(out, sh, Action::Drop(*m), n.clone(), 1);
                }
                if !s.bookies[usize::from(to)].up {
                    continue;
                }
                bookie_handles(&mut n, sh, *m);
            }
            Msg::Resp { .. } => proc_handles(&mut n, sh, *m),
        }
        push(out, sh, Action::Deliver(*m), n, 0);
    }
}

fn process_actions(s: &State, sh: &Shape, p: usize, out: &mut Vec<(Action, State)>) {
    let pr = s.procs[p];
    let pu = p as u8;
    match pr.role {
        Role::Idle => {
            if s.meta.epoch < sh.cfg.epochs {
                let mut n = s.clone();
                n.meta.epoch += 1;
                n.meta.owner = Some(pu);
                n.procs[p].epoch = n.meta.epoch;
                open(&mut n, p);
                push(out, sh, Action::Acquire(pu), n, 0);
            }
            if pr.epoch > 0 && pr.epoch == s.meta.epoch && s.meta.owner == Some(pu) {
                let mut n = s.clone();
                open(&mut n, p);
                push(out, sh, Action::Reopen(pu), n, 0);
            }
        }
        Role::Fencing {
            ledger,
            answered,
            last,
            lac,
        } => {
            let waiting = in_flight(s, |m| match *m {
                Msg::Req { from, kind, .. } => from == pu && kind == ReqKind::Fence,
                Msg::Resp { to, kind, .. } => to == pu && kind == ReqKind::Fence,
            });
            let early = u8::from(waiting);
            let known: Vec<Option<u8>> = (0..BOOKIES)
                .filter(|i| answered & bit(*i) != 0)
                .map(|i| lac[i])
                .collect();
            let best = known.iter().copied().max().flatten();
            let mut choices: Vec<Option<u8>> = known;
            choices.push(None);
            choices.sort_unstable();
            choices.dedup();
            for c in choices {
                let mut n = s.clone();
                decide(&mut n, sh, p, ledger, answered, last, c);
                push(out, sh, Action::Decide(pu, c), n, early + u8::from(c != best));
            }
        }
        Role::Walking(w) => {
            for b in (0..BOOKIES).filter(|b| w.pending & bit(*b) != 0) {
                let bu = b as u8;
                let answer = in_flight(
                    s,
                    |m| matches!(*m, Msg::Resp { to, from, kind: ReqKind::RecAdd, .. } if to == pu && from == bu),
                );
                if answer {
                    continue;
                }
                let req = in_flight(
                    s,
                    |m| matches!(*m, Msg::Req { to, from, kind: ReqKind::RecAdd, entry, .. } if from == pu && to == bu && entry == w.e),
                );
                let mut n = s.clone();
                let mut w2 = w;
                w2.pending &= !bit(b);
                w2.copying &= !bit(b);
                if w2.pending == 0 {
                    entry_done(&mut n, sh, p, w2);
                } else {
                    n.procs[p].role = Role::Walking(w2);
                }
                push(out, sh, Action::Timeout(pu, bu, w.e), n, u8::from(req));
            }
        }
        Role::Sealing { ledger, end } => {
            let mut n = s.clone();
            let seg = &mut n.meta.segs[usize::from(ledger)];
            if n.meta.epoch == pr.epoch && seg.sealed.is_none() {
                seg.sealed = Some(end);
                n.procs[p].role = Role::Opened;
            } else {
                set_idle(&mut n, p);
            }
            push(out, sh, Action::Seal(pu), n, 0);
        }
        Role::Opened => {
            let k = usize::from(s.meta.nsegs);
            if s.meta.nsegs < sh.cfg.ledgers {
                let mut n = s.clone();
                let prev_sealed = k == 0 || n.meta.segs[k - 1].sealed.is_some();
                if n.meta.epoch == pr.epoch && prev_sealed {
                    let base = match k {
                        0 => 0,
                        _ => {
                            let prev = n.meta.segs[k - 1];
                            prev.base + prev.sealed.flatten().map_or(0, |e| e + 1)
                        }
                    };
                    n.meta.segs[k].base = base;
                    n.meta.segs[k].sealed = None;
                    n.meta.nsegs += 1;
                    n.procs[p].role = Role::Writing(Writer {
                        ledger: k as u8,
                        next: 0,
                        lac: None,
                        acks: Default::default(),
                        fails: Default::default(),
                    });
                } else {
                    set_idle(&mut n, p);
                }
                push(out, sh, Action::AddSegment(pu), n, 0);
            }
        }
        Role::Writing(w) => writer_actions(s, sh, p, w, out),
    }
}

fn writer_actions(s: &State, sh: &Shape, p: usize, w: Writer, out: &mut Vec<(Action, State)>) {
    let pu = p as u8;
    if w.next < sh.entries(w.ledger) {
        let mut n = s.clone();
        let mut w2 = w;
        let e = w.next;
        for b in (0..BOOKIES).filter(|b| sh.in_ws(*b, e)) {
            if n.bookies[b].up {
                n.send(Msg::Req {
                    from: pu,
                    to: b as u8,
                    ledger: w.ledger,
                    kind: ReqKind::Add,
                    entry: e,
                    prev: sh.prev[b][usize::from(e)],
                    lac: w.lac,
                });
            } else {
                w2.fails[usize::from(e)] |= bit(b);
            }
        }
        w2.next += 1;
        settle(&mut n, sh, p, w2);
        push(out, sh, Action::Issue(pu), n, 0);
    }
    if w.next > 0 && w.lac == Some(w.next - 1) {
        let mut n = s.clone();
        let seg = &mut n.meta.segs[usize::from(w.ledger)];
        if n.meta.epoch == s.procs[p].epoch && seg.sealed.is_none() {
            seg.sealed = Some(w.lac);
            n.procs[p].role = Role::Opened;
        } else {
            set_idle(&mut n, p);
        }
        push(out, sh, Action::Close(pu), n, 0);
    }
    // Give up on a bookie whose answer is not in flight (lost, or the
    // request is still on its way: a late add, which costs a fault).
    for e in w.lac.map_or(0, |l| l + 1)..w.next {
        let eu = usize::from(e);
        if count(w.acks[eu]) >= sh.cfg.qa || w.fails[eu].count_ones() > sh.can_fail {
            continue;
        }
        for b in (0..BOOKIES).filter(|b| sh.in_ws(*b, e) && (w.acks[eu] | w.fails[eu]) & bit(*b) == 0) {
            let bu = b as u8;
            let answer = in_flight(s, |m| {
                matches!(*m, Msg::Resp { to, from, ledger, kind: ReqKind::Add, entry, .. }
                    if to == pu && from == bu && ledger == w.ledger && entry == e)
            });
            if answer {
                continue;
            }
            let req = in_flight(s, |m| {
                matches!(*m, Msg::Req { to, from, ledger, kind: ReqKind::Add, entry, .. }
                    if from == pu && to == bu && ledger == w.ledger && entry == e)
            });
            let mut n = s.clone();
            let mut w2 = w;
            w2.fails[eu] |= bit(b);
            settle(&mut n, sh, p, w2);
            push(out, sh, Action::Timeout(pu, bu, e), n, u8::from(req));
        }
    }
}
