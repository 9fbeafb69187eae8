//! An exhaustive explicit-state model check of ledger fencing and recovery,
//! and of the ownership handoff, **as distlog implements them** (issue 15).
//!
//! A breadth-first search enumerates every interleaving of the steps below
//! within small bounds, keeps a visited set of 64-bit state fingerprints,
//! and checks the invariants in every state it reaches. A failing
//! invariant is reported with the shortest trace leading to it.
//!
//! # What is modelled (and where it is in the code)
//!
//! One stream; an ensemble of E = 3 bookies with Qw/Qa 3/2 (every bookie
//! holds every entry) or 2/2 (striped: entry `e` goes to bookies `e mod 3`
//! and `e + 1 mod 3`); two owner processes; a metadata store; messages in
//! flight. The striping tables (write sets, `prev_in_stripe`, the first
//! entry a bookie lacks, `covers_every_write_set(coverage_quorum)`) are
//! computed from the real `ledger::ensemble::Ensemble` (`shape.rs`).
//!
//! **Metadata** (`metadata/src/state_machine.rs` `apply_inner`), one
//! linearizable state machine: `AcquireStream` bumps `owner_epoch` (a CAS:
//! a process acquires only with the current epoch); `AddSegment` needs the
//! caller's epoch current and the previous segment Completed;
//! `CompleteSegment` needs the caller's epoch current and the segment
//! InProgress. A refusal changes nothing and ends the caller's incarnation
//! (`NotOwner`). `RollSegment` is `CompleteSegment` then `AddSegment` with
//! nothing between, one of the interleavings of the two separate steps.
//!
//! **Bookie** (`bookie/group_commit.rs` `GroupCommitter::validate`,
//! `publish`, `fence`): an add to an unknown ledger with a `prev_entry_id`
//! is `OutOfOrder`; a writer add to a fenced ledger is `Fenced`; a recovery
//! add of an entry already held is acknowledged as is; otherwise the add
//! must name the bookie's last entry as `prev_entry_id` (`OutOfOrder`
//! else), is made durable, and its piggybacked LAC is recorded
//! (`LacTracker::advance`, never backwards). A fence makes the `.fenced`
//! marker durable and answers the last entry (and the LAC, see below).
//! Every request is handled atomically (durable before answered). A crash
//! keeps entries and fence markers and loses the LAC (`lac.rs`: memory
//! only) and the requests queued to it; a crashed bookie refuses
//! connections (requests to it fail at once) until it restarts.
//!
//! **Writer** (`ledger/handle.rs` `LedgerWriter::add`; `log/writer/mod.rs`
//! `LogWriter::run`, `commit`, `fail`): issuing entry `e` sends an add to
//! every member of its write set with `prev_entry_id =
//! prev_in_stripe(member, e)` and the writer's current LAC; an entry
//! succeeds at `Qa` acks and fails at more than `Qw - Qa` failures
//! (refusals, fencing, timeouts); entries are confirmed strictly in order
//! (`FuturesOrdered`): the head entry is confirmed, which advances the LAC
//! and acknowledges it to the client (recorded in the state), or fails,
//! which ends the incarnation (`fail`: nothing later is acknowledged). A
//! writer seals its own segment (`complete_segment`, also the first half
//! of a roll) only with nothing in flight, at its LAC, then may add the
//! next segment (`open_segment_inner`), whose base offset follows the
//! sealed end.
//!
//! **Opening a stream** (`log/stream.rs` `open`; `log/namespace.rs`
//! `stream`, `ownership_changed`): a process acquires the stream (epoch
//! CAS) — or, in Assigned mode after its incarnation failed, reopens it at
//! the epoch it still owns — and reads the segments. An InProgress last
//! segment is recovered and sealed at the new epoch with
//! `CompleteSegment`; then the next append adds a segment.
//!
//! **Recovery** (`ledger/recovery.rs` `recover`, `known_lac`, `Walk::run`,
//! `Walk::copy`, `Walk::read_from_holders`):
//! 1. fence every bookie of the ensemble; wait for the answers (each may
//!    time out); proceed only if the bookies that answered cover every
//!    write set with `coverage_quorum = Qw - Qa + 1` members
//!    (`covers_every_write_set`), else fail (retriable);
//! 2. candidate end = the highest last entry answered; known LAC = the
//!    highest LAC a fenced bookie reports (`known_lac`; a LAC read may fail,
//!    so any reported value or none may be used); a LAC past the candidate
//!    end fails recovery;
//! 3. walk from `min(lowest entry some fenced bookie lacks of its stripe,
//!    LAC + 1)` to the candidate end: an entry no fenced bookie holds ends
//!    the ledger before it (or fails recovery at or below the LAC); missing
//!    copies on fenced members of the write set are written with recovery
//!    adds, after reading the entry from a fenced holder (a read of a
//!    crashed bookie fails: for an entry past the LAC that fails recovery,
//!    at or below it copying stops); a failed recovery add stops copying
//!    to that bookie; past the LAC the entry must end on `Qa` members or
//!    recovery fails;
//! 4. the end's row comes from a fence answer or is read from a fenced
//!    holder; `stream::open` seals the segment there (`CompleteSegment`).
//!
//! **Network**: a multiset of requests and answers. The scheduler delivers
//! any answer, delivers or loses a request (in FIFO mode only the oldest
//! request of each process→bookie connection, as over one TCP
//! connection: a lost request is a broken connection), crashes and
//! restarts bookies, and lets a process time out on a bookie whose answer
//! is not in flight (the request was lost, or is still on its way and may
//! land later). An answer that can no longer change its receiver (its
//! entry settled, its incarnation ended) is discarded at once: delivering
//! it would be a no-op. Losing an answer is the same as a timeout while
//! the request is in flight, so only requests are lost.
//!
//! **Faults** are bounded by a budget: a lost request, a timeout while the
//! request is still in flight, a bookie crash, ending the fence wait while
//! fence answers are still in flight, and using a known LAC below the
//! highest reported each cost one. Restarts are free.
//!
//! **Simplifications**, each a restriction of timing, not of what a
//! component may do: acquiring and reading the stream's segments are one
//! step (a later read only sees changes by a newer epoch, whose effect on
//! this process is a refused CAS); a process acquires only when its
//! previous incarnation ended (Acquire mode; a closing incarnation running
//! alongside a new one is the other process); every entry holds one record
//! and there are no stream-state snapshot (control) entries; a writer
//! does not seal an empty segment; one fence round per recovery attempt.
//!
//! # Invariants (checked in every reached state)
//!
//! * (a) no acknowledged entry is past its segment's sealed end
//!   (no acknowledged-then-lost);
//! * (b) fencing: once a segment is sealed, the old writer's own adds can
//!   never put a prefix of entries past the sealed end on an ack quorum,
//!   so it cannot acknowledge anything new past the end, ever (a writer may
//!   still receive, after the seal, acks for entries at or below the end
//!   that bookies accepted before the fence; that is allowed);
//! * (c) every entry up to a sealed end is durable on at least `Qa`
//!   members of its write set (readable, re-replicated as recovery does);
//! * (d) the owner epoch never goes back; no two live incarnations share
//!   an epoch; a sealed segment never changes;
//! * (e) offsets are dense: a segment is added only after the previous one
//!   is sealed, at the offset following its sealed end;
//! * (f) every bookie holds a prefix of its stripe.
//!
//! # Bounds and running
//!
//! Every run: E = 3, two owner processes, requests FIFO per connection
//! unless said otherwise, depth bound 255 (never reached: each search
//! ends by exhaustion). "Entries a+b": the first segment's writer may
//! issue `a` entries, later segments' writers `b`.
//!
//! | test | Qw/Qa | entries | epochs | segments | faults |
//! |---|---|---|---|---|---|
//! | `unstriped_handoff_without_faults` | 3/2 | 2+1 | 2 | 2 | 0 |
//! | `unstriped_recovery_with_one_fault` | 3/2 | 1+1 | 2 | 2 | 1 |
//! | `striped_handoff_without_faults` | 2/2 | 2+1 | 2 | 2 | 0 |
//! | `striped_recovery_with_one_fault` | 2/2 | 1+1 | 2 | 2 | 1 |
//! | `larger_*` (ignored) | 3/2 and 2/2 | up to 3 | up to 3 | up to 2 | 1 |
//!
//! `cargo test -p distlog-storage --test recovery_model -- --nocapture`
//! runs the default bounds (printing states, transitions, time and
//! states/second; about 1.3 million states in all, some 20 s in a debug
//! build on 2 idle cores), the broken variants (each must be caught, with a
//! counterexample trace) and the witness of the ack-after-seal race.
//! `-- --ignored --nocapture` runs the larger bounds (minutes) and
//! `custom_bounds`, whose bounds come from the environment
//! (`QW QA N N2 EP LG F FIFO DEPTH`).
//!
//! The visited set holds 64-bit fingerprints (hash compaction): two
//! distinct states colliding would cut a branch, with odds of about
//! `n² / 2⁶⁵` for `n` states (below 10⁻⁶ at the larger bounds).

#[path = "recovery_model/check.rs"]
mod check;
#[path = "recovery_model/handle.rs"]
mod handle;
#[path = "recovery_model/shape.rs"]
mod shape;
#[path = "recovery_model/state.rs"]
mod state;
#[path = "recovery_model/step.rs"]
mod step;

use check::{explore, Outcome};
use shape::{Broken, Config, Shape};

/// Explore `cfg` and print what was found.
fn run(name: &str, cfg: Config) -> Outcome {
    let out = explore(&Shape::new(cfg));
    println!(
        "{name} (Qw/Qa {}/{}, entries {}+{}, epochs {}, ledgers {}, faults {}, {}): {} states, {} transitions, \
         depth {}{}, {:.1} s, {:.0} states/s",
        cfg.qw,
        cfg.qa,
        cfg.entries,
        cfg.later_entries,
        cfg.epochs,
        cfg.ledgers,
        cfg.faults,
        if cfg.fifo { "fifo" } else { "any order" },
        out.states,
        out.transitions,
        out.depth,
        if out.truncated { " (depth bound hit)" } else { "" },
        out.secs,
        out.states as f64 / out.secs.max(1e-9)
    );
    if let Some(v) = &out.violation {
        println!(
            "invariant ({}) violated: {}\n{}",
            v.invariant,
            v.detail,
            v.trace.join("\n")
        );
    }
    out
}

/// The default bounds for a quorum shape.
fn bounds(qw: usize, qa: usize) -> Config {
    Config {
        qw,
        qa,
        entries: 2,
        later_entries: 1,
        epochs: 2,
        ledgers: 2,
        faults: 0,
        fifo: true,
        max_depth: 255,
        broken: Broken::None,
    }
}

/// Exhaustive within the bounds, no violation, and not cut by the depth bound.
fn assert_clean(name: &str, cfg: Config) {
    let out = run(name, cfg);
    if let Some(v) = out.violation {
        panic!(
            "{name}: invariant ({}) violated: {}\n{}",
            v.invariant,
            v.detail,
            v.trace.join("\n")
        );
    }
    assert!(!out.truncated, "{name}: the depth bound cut the search");
}

/// 3/3/2: an old writer with two entries pipelined, a new owner fencing,
/// recovering and writing its own segment; no faults.
#[test]
fn unstriped_handoff_without_faults() {
    assert_clean("3/3/2 handoff", bounds(3, 2));
}

/// 3/3/2 with one fault (a lost request, a late answer, a bookie crash, an
/// early end of fencing or a lost LAC read) anywhere.
#[test]
fn unstriped_recovery_with_one_fault() {
    let cfg = Config {
        entries: 1,
        faults: 1,
        ..bounds(3, 2)
    };
    assert_clean("3/3/2 one fault", cfg);
}

/// 3/2/2 (striped): the same handoff.
#[test]
fn striped_handoff_without_faults() {
    assert_clean("3/2/2 handoff", bounds(2, 2));
}

/// 3/2/2 with one fault.
#[test]
fn striped_recovery_with_one_fault() {
    let cfg = Config {
        entries: 1,
        faults: 1,
        ..bounds(2, 2)
    };
    assert_clean("3/2/2 one fault", cfg);
}

// The larger bounds, each minutes at most in a debug build (figures from a
// shared 2-core machine): `cargo test -p distlog-storage --test
// recovery_model -- --ignored --nocapture` (they run in parallel).

/// 3/3/2, two pipelined entries and one fault (about 6.3 million states,
/// 3 minutes).
#[test]
#[ignore = "minutes; run with -- --ignored"]
fn larger_unstriped_two_entries_one_fault() {
    let cfg = Config {
        ledgers: 1,
        faults: 1,
        ..bounds(3, 2)
    };
    assert_clean("3/3/2 two entries one fault", cfg);
}

/// Three epochs: the second owner's segment recovered in turn by a third
/// incarnation, one fault (3/3/2: about 4.6 million states, 2 minutes;
/// 3/2/2: about 1.1 million, 25 s).
#[test]
#[ignore = "minutes; run with -- --ignored"]
fn larger_three_epochs_one_fault() {
    for (qw, qa) in [(3, 2), (2, 2)] {
        let cfg = Config {
            entries: 1,
            epochs: 3,
            faults: 1,
            ..bounds(qw, qa)
        };
        assert_clean(&format!("3/{qw}/{qa} three epochs one fault"), cfg);
    }
}

/// 3/2/2 with two pipelined entries (write sets {0,1} and {1,2}: the
/// striped stripe-prefix checks matter; about 0.5 million states, 15 s),
/// then three (every write set used; about 5.7 million states, 5 minutes on
/// a loaded machine), with one fault.
#[test]
#[ignore = "minutes; run with -- --ignored"]
fn larger_striped_one_fault() {
    for entries in [2, 3] {
        let cfg = Config {
            entries,
            ledgers: 1,
            faults: 1,
            ..bounds(2, 2)
        };
        assert_clean(&format!("3/2/2 {entries} entries one fault"), cfg);
    }
}

/// Requests delivered in any order (reconnections reorder them), two
/// entries, 3/3/2 (about 0.6 million states, 15 s).
#[test]
#[ignore = "run with -- --ignored"]
fn larger_any_order() {
    let cfg = Config {
        ledgers: 1,
        fifo: false,
        ..bounds(3, 2)
    };
    assert_clean("3/3/2 any order", cfg);
}

/// The race fencing permits, shown reachable: after a recovery sealed the
/// segment, the old writer still acknowledges an entry, one at or below the
/// sealed end whose copies bookies accepted before the fence reached them
/// (its acks were in flight). Invariant (a) holds: the entry is in the log.
#[test]
fn an_old_writer_may_still_acknowledge_an_entry_below_the_seal_after_it() {
    let cfg = Config {
        entries: 1,
        ledgers: 1,
        ..bounds(3, 2)
    };
    let out = check::witness(&Shape::new(cfg), &|a, b| {
        (0..usize::from(a.meta.nsegs))
            .find(|&l| a.meta.segs[l].sealed.is_some() && b.acked[l] > a.acked[l])
            .map(|l| {
                format!(
                    "L{l}: entry {:?} acknowledged after the seal {:?}",
                    b.acked[l], b.meta.segs[l].sealed
                )
            })
    });
    let v = out.violation.expect("the race is reachable");
    println!("{}\n{}", v.detail, v.trace.join("\n"));
}

/// The checker can fail: each broken rule is caught, with the invariant it
/// breaks and a counterexample trace.
fn assert_caught(name: &str, cfg: Config, invariant: &str) {
    let out = run(name, cfg);
    let v = out
        .violation
        .unwrap_or_else(|| panic!("{name}: the broken rule was not caught"));
    assert_eq!(v.invariant, invariant, "{name}: {}", v.detail);
    assert!(v.trace.len() > 1, "{name}: a counterexample has steps");
}

#[test]
fn recovery_with_too_few_fenced_bookies_lets_the_old_writer_confirm_past_the_seal() {
    let cfg = Config {
        entries: 1,
        ledgers: 1,
        faults: 1,
        broken: Broken::FenceTooFew,
        ..bounds(3, 2)
    };
    assert_caught("fence too few", cfg, "b");
    // The same rule loses an acknowledged entry outright: invariant (a)
    // alone is broken too (the shortest such trace).
    let out = check::witness(&Shape::new(cfg), &|_, b| {
        (0..usize::from(b.meta.nsegs)).find_map(|l| {
            let end = b.meta.segs[l].sealed?;
            let acked = b.acked[l]?;
            end.is_none_or(|end| acked > end)
                .then(|| format!("L{l}: entry {acked} acknowledged, segment sealed at {end:?}"))
        })
    });
    let v = out.violation.expect("an acknowledged entry is lost");
    println!("(a) violated: {}\n{}", v.detail, v.trace.join("\n"));
}

#[test]
fn bookies_accepting_adds_after_the_fence_break_fencing() {
    let cfg = Config {
        entries: 1,
        ledgers: 1,
        broken: Broken::AcceptAfterFence,
        ..bounds(3, 2)
    };
    assert_caught("accept after fence", cfg, "b");
}

#[test]
fn recovery_without_re_replication_seals_under_replicated_entries() {
    let cfg = Config {
        entries: 1,
        ledgers: 1,
        broken: Broken::NoReReplication,
        ..bounds(3, 2)
    };
    assert_caught("no re-replication", cfg, "c");
}

fn env(name: &str, default: u8) -> u8 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Ad-hoc bounds from the environment (`QW QA N N2 EP LG F FIFO DEPTH`),
/// e.g. `N=2 F=1 LG=1 cargo test -p distlog-storage --test recovery_model
/// -- --ignored --nocapture custom_bounds`.
#[test]
#[ignore = "bounds from the environment; see the doc comment"]
fn custom_bounds() {
    let mut c = bounds(usize::from(env("QW", 3)), usize::from(env("QA", 2)));
    c.entries = env("N", c.entries);
    c.later_entries = env("N2", c.later_entries);
    c.epochs = env("EP", c.epochs);
    c.ledgers = env("LG", c.ledgers);
    c.faults = env("F", c.faults);
    c.fifo = env("FIFO", 1) == 1;
    c.max_depth = u32::from(env("DEPTH", 255));
    assert_clean("custom", c);
}
