//! The model's state: bookies (durable entries, fence markers, in-memory
//! LAC), the metadata store (owner epoch, segments), the owner processes
//! and the messages in flight (a multiset, kept sorted).

use std::fmt;
use std::hash::{Hash, Hasher};

use super::shape::{BOOKIES, MAX_ENTRIES, MAX_LEDGERS, PROCS};

/// One bookie. Entry sets are bitmasks over entry ids, per ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Bookie {
    /// Up (serving) or crashed.
    pub up: bool,
    /// Durable entries per ledger (always a prefix of the bookie's stripe).
    pub held: [u8; MAX_LEDGERS],
    /// Of `held`, the entries that came from recovery adds.
    pub rec: [u8; MAX_LEDGERS],
    /// Ledgers with a durable `.fenced` marker.
    pub fenced: u8,
    /// LAC piggybacked on durable adds (memory only: lost on a crash).
    pub lac: [Option<u8>; MAX_LEDGERS],
}

impl Bookie {
    /// Last durable entry of `ledger` (the stripe-prefix invariant makes
    /// it the bookie's whole story).
    pub fn last(&self, ledger: usize) -> Option<u8> {
        last_of(self.held[ledger])
    }

    /// Whether the ledger exists on the bookie (an add or a fence made it).
    pub fn exists(&self, ledger: usize) -> bool {
        self.held[ledger] != 0 || self.fenced & (1 << ledger) != 0
    }
}

/// Highest set bit of an entry mask.
pub fn last_of(mask: u8) -> Option<u8> {
    (mask != 0).then(|| 7 - mask.leading_zeros() as u8)
}

/// A segment in metadata (segment `i` is written to ledger `i`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Seg {
    /// Offset of entry 0 (every entry holds one record).
    pub base: u8,
    /// `None` while InProgress; `Some(last_entry_id)` once Completed.
    pub sealed: Option<Option<u8>>,
}

/// The metadata store (one linearizable state machine).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Meta {
    /// `owner_epoch` (0 = never acquired).
    pub epoch: u8,
    /// Current owner process.
    pub owner: Option<u8>,
    /// Segments added so far.
    pub nsegs: u8,
    /// The segments.
    pub segs: [Seg; MAX_LEDGERS],
}

/// What a request asks of a bookie. The derived order is the order in which
/// one process issues requests to one bookie within a ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ReqKind {
    /// A writer's add.
    Add,
    /// A fence (`BookieClient::fence`), answered with the last entry and LAC.
    Fence,
    /// A recovery add (`AddRequest::recovery`).
    RecAdd,
}

/// A message in flight.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Msg {
    /// Process → bookie. Field order gives the per-connection FIFO key.
    Req {
        /// Sending process.
        from: u8,
        /// Target bookie.
        to: u8,
        /// Ledger.
        ledger: u8,
        /// What is asked.
        kind: ReqKind,
        /// Entry id (adds).
        entry: u8,
        /// `prev_entry_id` (adds).
        prev: Option<u8>,
        /// Piggybacked LAC (writer adds).
        lac: Option<u8>,
    },
    /// Bookie → process.
    Resp {
        /// Receiving process.
        to: u8,
        /// Answering bookie.
        from: u8,
        /// Ledger.
        ledger: u8,
        /// What it answers.
        kind: ReqKind,
        /// Entry id (adds).
        entry: u8,
        /// Success (adds).
        ok: bool,
        /// Last entry and LAC (fence answers).
        last: Option<u8>,
        /// LAC known (fence answers).
        lac: Option<u8>,
    },
}

/// A recovery in its walk (`recovery.rs` `Walk`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Walk {
    /// The ledger recovered.
    pub ledger: u8,
    /// The known LAC (`known_lac`).
    pub lac: Option<u8>,
    /// Bookies that answered the fence.
    pub fenced: u8,
    /// Their fence answers (last entries), for the end's row.
    pub tips: [Option<u8>; BOOKIES],
    /// `Walk::held`: last entry held per fenced bookie, kept current.
    pub held: [Option<u8>; BOOKIES],
    /// `Walk::copying`.
    pub copying: u8,
    /// Entry being walked.
    pub e: u8,
    /// The candidate end.
    pub end: u8,
    /// Fenced holders of `e` when its copy started.
    pub holders: u8,
    /// Recovery adds of `e` not answered yet.
    pub pending: u8,
    /// Recovery adds of `e` that succeeded.
    pub ok: u8,
}

/// A writer of one ledger (`LedgerWriter` + `LogWriter`'s in-order commit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Writer {
    /// The ledger written.
    pub ledger: u8,
    /// Next entry id to issue.
    pub next: u8,
    /// Last confirmed entry (the LAC), confirmed strictly in order.
    pub lac: Option<u8>,
    /// Per entry, bookies that acknowledged the add.
    pub acks: [u8; MAX_ENTRIES],
    /// Per entry, bookies that failed it (error, fenced, timed out).
    pub fails: [u8; MAX_ENTRIES],
}

/// What an owner process is doing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// No open incarnation (never opened, failed, refused or closed).
    Idle,
    /// `recover` step 1: fences sent, answers collected.
    Fencing {
        /// The ledger being fenced.
        ledger: u8,
        /// Bookies that answered.
        answered: u8,
        /// Their last entries.
        last: [Option<u8>; BOOKIES],
        /// Their LACs.
        lac: [Option<u8>; BOOKIES],
    },
    /// `recover` step 3.
    Walking(Walk),
    /// Recovery found the end; `stream::open` seals next.
    Sealing {
        /// The ledger.
        ledger: u8,
        /// Recovered last entry.
        end: Option<u8>,
    },
    /// The stream is open with no segment being written: the next append
    /// adds one.
    Opened,
    /// Writing a segment.
    Writing(Writer),
}

/// An owner process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Proc {
    /// The epoch its incarnation opened at (0 = none yet).
    pub epoch: u8,
    /// What it is doing.
    pub role: Role,
}

/// The whole model state.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct State {
    /// Bookies.
    pub bookies: [Bookie; BOOKIES],
    /// Metadata.
    pub meta: Meta,
    /// Owner processes.
    pub procs: [Proc; PROCS],
    /// Messages in flight, sorted (a multiset).
    pub msgs: Vec<Msg>,
    /// Per ledger, the highest entry acknowledged to a client (acks are
    /// in order, so every entry up to it was acknowledged).
    pub acked: [Option<u8>; MAX_LEDGERS],
    /// Faults spent.
    pub faults: u8,
}

impl State {
    /// Every bookie up and empty, no epoch, no segment.
    pub fn initial() -> State {
        State {
            bookies: [Bookie {
                up: true,
                ..Bookie::default()
            }; BOOKIES],
            meta: Meta::default(),
            procs: [Proc {
                epoch: 0,
                role: Role::Idle,
            }; PROCS],
            msgs: Vec::new(),
            acked: [None; MAX_LEDGERS],
            faults: 0,
        }
    }

    /// Put a message in flight.
    pub fn send(&mut self, m: Msg) {
        let at = self.msgs.partition_point(|x| *x < m);
        self.msgs.insert(at, m);
    }

    /// Take one copy of `m` out of flight.
    pub fn take(&mut self, m: &Msg) {
        if let Ok(at) = self.msgs.binary_search(m) {
            self.msgs.remove(at);
        }
    }

    /// A 64-bit fingerprint of the state (for the visited set).
    pub fn fingerprint(&self) -> u64 {
        let mut h = Mix(0x9e37_79b9_7f4a_7c15);
        self.hash(&mut h);
        h.finish()
    }
}

/// A small, fast hasher (multiply-rotate, murmur3 finaliser): the default
/// SipHash dominates the run time in a debug build.
struct Mix(u64);

impl Hasher for Mix {
    fn write(&mut self, bytes: &[u8]) {
        // The `u8` arrays: a word per 7 bytes, few calls (debug build).
        let mut w = bytes.len() as u64;
        for (i, &b) in bytes.iter().enumerate() {
            w = (w << 8) | u64::from(b);
            if i % 7 == 6 {
                self.write_u64(w);
                w = 0;
            }
        }
        self.write_u64(w);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        let x = self.0 ^ v;
        self.0 = x.rotate_left(23).wrapping_mul(0x9fb2_1c65_1e98_df25);
    }
    fn finish(&self) -> u64 {
        let mut k = self.0;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
}

fn entry(e: Option<u8>) -> String {
    e.map_or("none".into(), |e| e.to_string())
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Msg::Req {
                from,
                to,
                ledger,
                kind,
                entry: e,
                prev,
                lac,
            } => match kind {
                ReqKind::Fence => write!(f, "fence(L{ledger}) P{from}->B{to}"),
                _ => write!(
                    f,
                    "{}(L{ledger} e{e} prev={} lac={}) P{from}->B{to}",
                    if kind == ReqKind::Add {
                        "add"
                    } else {
                        "recovery-add"
                    },
                    entry(prev),
                    entry(lac)
                ),
            },
            Msg::Resp {
                to,
                from,
                ledger,
                kind,
                entry: e,
                ok,
                last,
                lac,
            } => match kind {
                ReqKind::Fence => write!(
                    f,
                    "fenced(L{ledger} last={} lac={}) B{from}->P{to}",
                    entry(last),
                    entry(lac)
                ),
                _ => write!(
                    f,
                    "{}-{}(L{ledger} e{e}) B{from}->P{to}",
                    if kind == ReqKind::Add {
                        "add"
                    } else {
                        "recovery-add"
                    },
                    if ok { "ok" } else { "refused" }
                ),
            },
        }
    }
}

/// Entry ids of a mask, for display.
pub fn entries(mask: u8) -> String {
    let v: Vec<String> = (0..8u8)
        .filter(|e| mask & (1 << e) != 0)
        .map(|e| e.to_string())
        .collect();
    format!("{{{}}}", v.join(","))
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.bookies.iter().enumerate() {
            write!(f, "  B{i}{}:", if b.up { "" } else { " (down)" })?;
            for l in 0..usize::from(self.meta.nsegs) {
                write!(
                    f,
                    " L{l}={}{}{} lac={}",
                    entries(b.held[l]),
                    if b.rec[l] != 0 {
                        format!(" rec{}", entries(b.rec[l]))
                    } else {
                        String::new()
                    },
                    if b.fenced & (1 << l) != 0 { " fenced" } else { "" },
                    entry(b.lac[l])
                )?;
            }
            writeln!(f)?;
        }
        write!(f, "  meta: epoch {} owner {:?}", self.meta.epoch, self.meta.owner)?;
        for (l, s) in self
            .meta
            .segs
            .iter()
            .take(usize::from(self.meta.nsegs))
            .enumerate()
        {
            match s.sealed {
                None => write!(f, " | L{l} base {} in-progress", s.base)?,
                Some(end) => write!(f, " | L{l} base {} sealed at {}", s.base, entry(end))?,
            }
        }
        writeln!(f)?;
        for (i, p) in self.procs.iter().enumerate() {
            writeln!(f, "  P{i} epoch {}: {:?}", p.epoch, p.role)?;
        }
        writeln!(
            f,
            "  acked: {:?}  faults: {}  in flight: {}",
            self.acked,
            self.faults,
            self.msgs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
