//! The transitions: every action enabled in a state and the state it
//! leads to. Each action is one atomic step of one component; see the
//! module docs of `recovery_model.rs` for the code each one models.

use std::fmt;

use super::shape::{Broken, Shape, BOOKIES, PROCS};
use super::state::{Msg, ReqKind, Role, State, Walk, Writer};

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

fn count(mask: u8) -> usize {
    mask.count_ones() as usize
}

fn bit(i: usize) -> u8 {
    1 << i
}

/// The process's incarnation ends: answers still in flight to it are
/// dropped with its futures.
fn set_idle(s: &mut State, p: usize) {
    s.procs[p].role = Role::Idle;
    s.msgs
        .retain(|m| !matches!(m, Msg::Resp { to, .. } if usize::from(*to) == p));
}

/// `stream::open` after the epoch is known: fence and recover an
/// InProgress last segment, else be ready to add one.
fn open(s: &mut State, p: usize) {
    set_idle(s, p);
    let n = usize::from(s.meta.nsegs);
    if n > 0 && s.meta.segs[n - 1].sealed.is_none() {
        let ledger = (n - 1) as u8;
        for b in 0..BOOKIES {
            // A down bookie refuses the connection: its fence fails at once.
            if s.bookies[b].up {
                s.send(Msg::Req {
                    from: p as u8,
                    to: b as u8,
                    ledger,
                    kind: ReqKind::Fence,
                    entry: 0,
                    prev: None,
                    lac: None,
                });
            }
        }
        s.procs[p].role = Role::Fencing {
            ledger,
            answered: 0,
            last: [None; BOOKIES],
            lac: [None; BOOKIES],
        };
    } else {
        s.procs[p].role = Role::Opened;
    }
}

/// `LogWriter::run`'s `FuturesOrdered`: confirm the head entry once it has
/// `Qa` acks, fail the writer once its head can no longer reach `Qa`.
fn settle(s: &mut State, sh: &Shape, p: usize, mut w: Writer) {
    loop {
        let head = w.lac.map_or(0, |l| l + 1);
        if head >= w.next {
            break;
        }
        let h = usize::from(head);
        if count(w.acks[h]) >= sh.cfg.qa {
            w.lac = Some(head);
            let l = usize::from(w.ledger);
            s.acked[l] = Some(s.acked[l].map_or(head, |a| a.max(head)));
        } else if w.fails[h].count_ones() > sh.can_fail {
            set_idle(s, p);
            return;
        } else {
            break;
        }
    }
    s.procs[p].role = Role::Writing(w);
}

/// End the walk at `end`: the end's row comes from a fence answer or is
/// read from a fenced holder (`recover`, after `Walk::run`).
fn walk_ends(s: &mut State, sh: &Shape, p: usize, w: &Walk, end: Option<u8>) {
    if let Some(e) = end {
        let in_tips = (0..BOOKIES).any(|i| w.fenced & bit(i) != 0 && w.tips[i] == Some(e));
        let readable = (0..BOOKIES).any(|i| holds(sh, w, i, e) && s.bookies[i].up);
        if !in_tips && !readable {
            set_idle(s, p);
            return;
        }
    }
    s.procs[p].role = Role::Sealing {
        ledger: w.ledger,
        end,
    };
}

/// `Walk::holds`.
fn holds(sh: &Shape, w: &Walk, i: usize, e: u8) -> bool {
    w.fenced & bit(i) != 0 && sh.in_ws(i, e) && w.held[i].is_some_and(|last| last >= e)
}

/// The copy of `w.e` finished: check the ack quorum past the LAC, go on.
fn entry_done(s: &mut State, sh: &Shape, p: usize, mut w: Walk) {
    let confirmed = w.lac.is_some_and(|l| w.e <= l);
    if !confirmed && count(w.holders) + count(w.ok) < sh.cfg.qa {
        set_idle(s, p);
        return;
    }
    w.e += 1;
    advance(s, sh, p, w);
}

/// `Walk::run` from `w.e` until it must wait for recovery adds, ends, or fails.
fn advance(s: &mut State, sh: &Shape, p: usize, mut w: Walk) {
    if w.e > w.end {
        return walk_ends(s, sh, p, &w, Some(w.end));
    }
    let e = w.e;
    let confirmed = w.lac.is_some_and(|l| e <= l);
    let holders = (0..BOOKIES)
        .filter(|&i| holds(sh, &w, i, e))
        .fold(0, |m, i| m | bit(i));
    if holders == 0 {
        if confirmed {
            return set_idle(s, p);
        }
        return walk_ends(s, sh, p, &w, e.checked_sub(1));
    }
    let lacking = sh.ws[usize::from(e)] & w.fenced & !holders;
    let targets = lacking & w.copying;
    w.holders = holders;
    w.ok = 0;
    w.pending = 0;
    if targets != 0 {
        // `read_from_holders`: a read of a crashed bookie fails.
        if !(0..BOOKIES).any(|i| holders & bit(i) != 0 && s.bookies[i].up) {
            if !confirmed {
                return set_idle(s, p);
            }
            w.copying &= !targets;
        } else {
            for i in (0..BOOKIES).filter(|i| targets & bit(*i) != 0) {
                if s.bookies[i].up {
                    s.send(Msg::Req {
                        from: p as u8,
                        to: i as u8,
                        ledger: w.ledger,
                        kind: ReqKind::RecAdd,
                        entry: e,
                        prev: sh.prev[i][usize::from(e)],
                        lac: None,
                    });
                    w.pending |= bit(i);
                } else {
                    w.copying &= !bit(i);
                }
            }
        }
    }
    if w.pending == 0 {
        entry_done(s, sh, p, w);
    } else {
        s.procs[p].role = Role::Walking(w);
    }
}

/// `recover` after the fences: coverage, candidate end, LAC, walk start.
fn decide(
    s: &mut State,
    sh: &Shape,
    p: usize,
    ledger: u8,
    answered: u8,
    last: [Option<u8>; BOOKIES],
    lac: Option<u8>,
) {
    if !sh.covers[usize::from(answered)] {
        return set_idle(s, p);
    }
    let tips: Vec<u8> = (0..BOOKIES)
        .filter(|i| answered & bit(*i) != 0)
        .filter_map(|i| last[i])
        .collect();
    let Some(end) = tips.iter().copied().max() else {
        s.procs[p].role = Role::Sealing { ledger, end: None };
        return;
    };
    if sh.cfg.broken == Broken::NoReReplication {
        s.procs[p].role = Role::Sealing {
            ledger,
            end: Some(end),
        };
        return;
    }
    if lac.is_some_and(|l| l > end) {
        return set_idle(s, p);
    }
    let from = (0..BOOKIES)
        .filter(|i| answered & bit(*i) != 0)
        .map(|i| sh.first_lack[i][last[i].map_or(0, |l| usize::from(l) + 1)])
        .min()
        .unwrap_or(0);
    let start = from.min(lac.map_or(0, |l| l + 1));
    let mut held = [None; BOOKIES];
    for i in (0..BOOKIES).filter(|i| answered & bit(*i) != 0) {
        held[i] = last[i];
    }
    let w = Walk {
        ledger,
        lac,
        fenced: answered,
        tips: held,
        held,
        copying: answered,
        e: start,
        end,
        holders: 0,
        pending: 0,
        ok: 0,
    };
    advance(s, sh, p, w);
}

/// A bookie handles a request (`GroupCommitter::validate`/`publish`/`fence`).
fn bookie_handles(s: &mut State, sh: &Shape, m: Msg) {
    let Msg::Req {
        from,
        to,
        ledger,
        kind,
        entry,
        prev,
        lac,
    } = m
    else {
        return;
    };
    let (l, bk) = (usize::from(ledger), &mut s.bookies[usize::from(to)]);
    let mut answer = Msg::Resp {
        to: from,
        from: to,
        ledger,
        kind,
        entry,
        ok: false,
        last: None,
        lac: None,
    };
    if kind == ReqKind::Fence {
        bk.fenced |= bit(l);
        if let Msg::Resp { last, lac, .. } = &mut answer {
            *last = bk.last(l);
            *lac = bk.lac[l];
        }
    } else {
        let ok = if !bk.exists(l) && prev.is_some() {
            false
        } else if bk.fenced & bit(l) != 0 && kind == ReqKind::Add && sh.cfg.broken != Broken::AcceptAfterFence
        {
            false
        } else if kind == ReqKind::RecAdd && bk.held[l] & bit(usize::from(entry)) != 0 {
            true
        } else if bk.last(l) != prev {
            false
        } else {
            bk.held[l] |= bit(usize::from(entry));
            if kind == ReqKind::RecAdd {
                bk.rec[l] |= bit(usize::from(entry));
            }
            if let Some(lac) = lac {
                bk.lac[l] = Some(bk.lac[l].map_or(lac, |x| x.max(lac)));
            }
            true
        };
        if let Msg::Resp { ok: o, .. } = &mut answer {
            *o = ok;
        }
    }
    s.send(answer);
}

/// A process handles an answer (stale answers are discarded).
fn proc_handles(s: &mut State, sh: &Shape, m: Msg) {
    let Msg::Resp {
        to,
        from,
        ledger,
        kind,
        entry,
        ok,
        last,
        lac,
    } = m
    else {
        return;
    };
    let (p, b) = (usize::from(to), usize::from(from));
    match (kind, s.procs[p].role) {
        (ReqKind::Add, Role::Writing(mut w)) if w.ledger == ledger && entry < w.next => {
            let e = usize::from(entry);
            if (w.acks[e] | w.fails[e]) & bit(b) == 0 {
                if ok {
                    w.acks[e] |= bit(b);
                } else {
                    w.fails[e] |= bit(b);
                }
            }
            settle(s, sh, p, w);
        }
        (
            ReqKind::Fence,
            Role::Fencing {
                ledger: l,
                mut answered,
                last: mut lasts,
                lac: mut lacs,
            },
        ) if l == ledger => {
            answered |= bit(b);
            lasts[b] = last;
            lacs[b] = lac;
            s.procs[p].role = Role::Fencing {
                ledger,
                answered,
                last: lasts,
                lac: lacs,
            };
        }
        (ReqKind::RecAdd, Role::Walking(mut w))
            if w.ledger == ledger && w.e == entry && w.pending & bit(b) != 0 =>
        {
            w.pending &= !bit(b);
            if ok {
                w.ok |= bit(b);
                w.held[b] = Some(entry);
            } else {
                w.copying &= !bit(b);
            }
            if w.pending == 0 {
                entry_done(s, sh, p, w);
            } else {
                s.procs[p].role = Role::Walking(w);
            }
        }
        _ => {}
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
