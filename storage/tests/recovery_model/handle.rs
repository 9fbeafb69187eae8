//! What each component does when it takes a step: a bookie handling a
//! request, a process handling an answer, the writer settling its entries
//! in order, and the recovery walk. Called from `step.rs`.

use super::shape::{Broken, Shape, BOOKIES};
use super::state::{Msg, ReqKind, Role, State, Walk, Writer};

/// Members of a bookie (or entry) bitmask.
pub fn count(mask: u8) -> usize {
    mask.count_ones() as usize
}

/// The bitmask of bookie (or ledger, entry) `i`.
pub fn bit(i: usize) -> u8 {
    1 << i
}

/// The process's incarnation ends: answers still in flight to it are
/// dropped with its futures.
pub fn set_idle(s: &mut State, p: usize) {
    s.procs[p].role = Role::Idle;
    s.msgs
        .retain(|m| !matches!(m, Msg::Resp { to, .. } if usize::from(*to) == p));
}

/// `stream::open` after the epoch is known: fence and recover an
/// InProgress last segment, else be ready to add one.
pub fn open(s: &mut State, p: usize) {
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
pub fn settle(s: &mut State, sh: &Shape, p: usize, mut w: Writer) {
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
pub fn walk_ends(s: &mut State, sh: &Shape, p: usize, w: &Walk, end: Option<u8>) {
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
pub fn holds(sh: &Shape, w: &Walk, i: usize, e: u8) -> bool {
    w.fenced & bit(i) != 0 && sh.in_ws(i, e) && w.held[i].is_some_and(|last| last >= e)
}

/// The copy of `w.e` finished: check the ack quorum past the LAC, go on.
pub fn entry_done(s: &mut State, sh: &Shape, p: usize, mut w: Walk) {
    let confirmed = w.lac.is_some_and(|l| w.e <= l);
    if !confirmed && count(w.holders) + count(w.ok) < sh.cfg.qa {
        set_idle(s, p);
        return;
    }
    w.e += 1;
    advance(s, sh, p, w);
}

/// `Walk::run` from `w.e` until it must wait for recovery adds, ends, or fails.
pub fn advance(s: &mut State, sh: &Shape, p: usize, mut w: Walk) {
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
        if (0..BOOKIES).any(|i| holders & bit(i) != 0 && s.bookies[i].up) {
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
        } else if confirmed {
            w.copying &= !targets;
        } else {
            return set_idle(s, p);
        }
    }
    if w.pending == 0 {
        entry_done(s, sh, p, w);
    } else {
        s.procs[p].role = Role::Walking(w);
    }
}

/// `recover` after the fences: coverage, candidate end, LAC, walk start.
pub fn decide(
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
pub fn bookie_handles(s: &mut State, sh: &Shape, m: Msg) {
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
        let unknown = !bk.exists(l) && prev.is_some();
        let fenced =
            bk.fenced & bit(l) != 0 && kind == ReqKind::Add && sh.cfg.broken != Broken::AcceptAfterFence;
        let ok = if unknown || fenced {
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
pub fn proc_handles(s: &mut State, sh: &Shape, m: Msg) {
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
