//! DLSN: the physical address of a record in a log stream.

use std::fmt;

/// DistributedLog Sequence Number: (log segment sequence number, entry id,
/// slot id). Totally ordered: first by segment, then entry, then slot, so
/// comparing two DLSNs compares the records' positions in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Dlsn {
    /// Log segment sequence number (dense per stream, from 1).
    pub lssn: u64,
    /// Entry id within the segment's ledger (dense, from 0).
    pub entry_id: u64,
    /// Index of the record within the entry.
    pub slot_id: u64,
}

impl Dlsn {
    /// The smallest possible DLSN (before every record).
    pub const INITIAL: Dlsn = Dlsn {
        lssn: 1,
        entry_id: 0,
        slot_id: 0,
    };

    /// Build a DLSN.
    pub fn new(lssn: u64, entry_id: u64, slot_id: u64) -> Self {
        Dlsn {
            lssn,
            entry_id,
            slot_id,
        }
    }
}

impl fmt::Display for Dlsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DLSN{{{},{},{}}}", self.lssn, self.entry_id, self.slot_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_segment_then_entry_then_slot() {
        let mut v = vec![
            Dlsn::new(2, 0, 0),
            Dlsn::new(1, 5, 3),
            Dlsn::new(1, 5, 0),
            Dlsn::new(1, 0, 9),
            Dlsn::new(3, 0, 0),
            Dlsn::new(2, 0, 1),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                Dlsn::new(1, 0, 9),
                Dlsn::new(1, 5, 0),
                Dlsn::new(1, 5, 3),
                Dlsn::new(2, 0, 0),
                Dlsn::new(2, 0, 1),
                Dlsn::new(3, 0, 0),
            ]
        );
        assert!(Dlsn::INITIAL <= Dlsn::new(1, 0, 0));
        assert_eq!(Dlsn::new(4, 2, 1).to_string(), "DLSN{4,2,1}");
    }
}
