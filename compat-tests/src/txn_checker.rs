//! The transaction history checker: what each transactional producer was told about its
//! transactions ([`TxnRecord`]), checked against what read_committed shows, turned into named
//! anomalies ([`Anomaly`]): lost committed writes, aborted reads, torn transactions, duplicates
//! and values no transaction wrote.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// What a transactional producer was told about one of its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// `commit_transaction` returned Ok: every record must be visible to read_committed.
    Committed,
    /// `abort_transaction` returned Ok: no record may be visible.
    Aborted,
    /// An error left the outcome open: all records or none may be visible, never some.
    Unknown,
}

/// One transaction of a history: its name, what its producer was told, and the values it wrote.
#[derive(Debug, Clone)]
pub struct TxnRecord {
    /// A name for reports, e.g. `p2-t7`.
    pub name: String,
    /// What the producer was told.
    pub outcome: TxnOutcome,
    /// Every value the transaction wrote (values are unique across the history).
    pub values: Vec<String>,
}

/// One violation of transactional guarantees found by [`find_anomalies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// A record of a committed transaction is not visible to read_committed.
    LostCommittedWrite {
        /// The transaction.
        txn: String,
        /// The missing values.
        missing: Vec<String>,
    },
    /// A record of an aborted transaction is visible to read_committed.
    AbortedRead {
        /// The transaction.
        txn: String,
        /// The visible values.
        visible: Vec<String>,
    },
    /// Some but not all of a transaction's records are visible.
    TornTransaction {
        /// The transaction.
        txn: String,
        /// What its producer was told.
        outcome: TxnOutcome,
        /// How many of its records are visible.
        visible: usize,
        /// How many it wrote.
        written: usize,
    },
    /// A value is visible more than once.
    Duplicate {
        /// The value.
        value: String,
        /// Where it is: (partition, offset) of each copy.
        at: Vec<(i32, i64)>,
    },
    /// A visible value no transaction of the history wrote.
    UnknownValue {
        /// The value.
        value: String,
        /// (partition, offset).
        at: (i32, i64),
    },
}

impl Anomaly {
    /// The anomaly's name, as reports use it.
    pub fn name(&self) -> &'static str {
        match self {
            Anomaly::LostCommittedWrite { .. } => "lost committed write",
            Anomaly::AbortedRead { .. } => "aborted read",
            Anomaly::TornTransaction { .. } => "torn transaction",
            Anomaly::Duplicate { .. } => "duplicate",
            Anomaly::UnknownValue { .. } => "unknown value",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostCommittedWrite { txn, missing } => {
                write!(
                    f,
                    "{}: {txn} committed, but {missing:?} are not visible",
                    self.name()
                )
            }
            Anomaly::AbortedRead { txn, visible } => {
                write!(f, "{}: {txn} aborted, but {visible:?} are visible", self.name())
            }
            Anomaly::TornTransaction {
                txn,
                outcome,
                visible,
                written,
            } => write!(
                f,
                "{}: {txn} ({outcome:?}) has {visible} of its {written} records visible",
                self.name()
            ),
            Anomaly::Duplicate { value, at } => {
                write!(
                    f,
                    "{}: {value} is visible {} times, at {at:?}",
                    self.name(),
                    at.len()
                )
            }
            Anomaly::UnknownValue { value, at } => {
                write!(
                    f,
                    "{}: {value} at {at:?} was written by no transaction",
                    self.name()
                )
            }
        }
    }
}

/// Checks `history` against what read_committed shows (`visible`: (partition, offset, value)),
/// returning every anomaly: lost committed writes, aborted reads, torn transactions (some but
/// not all records visible, whatever the producer was told), duplicates and unknown values.
pub fn find_anomalies(history: &[TxnRecord], visible: &[(i32, i64, String)]) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut seen: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (partition, offset, value) in visible {
        seen.entry(value.as_str())
            .or_default()
            .push((*partition, *offset));
    }
    let mut known: HashSet<&str> = HashSet::new();
    for txn in history {
        let (shown, missing): (Vec<&String>, Vec<&String>) =
            txn.values.iter().partition(|v| seen.contains_key(v.as_str()));
        known.extend(txn.values.iter().map(String::as_str));
        match txn.outcome {
            TxnOutcome::Committed if !missing.is_empty() => anomalies.push(Anomaly::LostCommittedWrite {
                txn: txn.name.clone(),
                missing: missing.iter().map(|v| (*v).clone()).collect(),
            }),
            TxnOutcome::Aborted if !shown.is_empty() => anomalies.push(Anomaly::AbortedRead {
                txn: txn.name.clone(),
                visible: shown.iter().map(|v| (*v).clone()).collect(),
            }),
            _ => {}
        }
        if !shown.is_empty() && !missing.is_empty() {
            anomalies.push(Anomaly::TornTransaction {
                txn: txn.name.clone(),
                outcome: txn.outcome,
                visible: shown.len(),
                written: txn.values.len(),
            });
        }
    }
    for (value, at) in &seen {
        if at.len() > 1 {
            anomalies.push(Anomaly::Duplicate {
                value: (*value).to_string(),
                at: at.clone(),
            });
        }
        if !known.contains(value) {
            anomalies.push(Anomaly::UnknownValue {
                value: (*value).to_string(),
                at: at[0],
            });
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(name: &str, outcome: TxnOutcome, values: &[&str]) -> TxnRecord {
        TxnRecord {
            name: name.to_string(),
            outcome,
            values: values.iter().map(|v| (*v).to_string()).collect(),
        }
    }

    fn at(values: &[&str]) -> Vec<(i32, i64, String)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (0, i as i64, (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let history = [
            txn("c", TxnOutcome::Committed, &["c1", "c2"]),
            txn("a", TxnOutcome::Aborted, &["a1"]),
            txn("u1", TxnOutcome::Unknown, &["u1"]),
            txn("u2", TxnOutcome::Unknown, &["u2", "u3"]),
        ];
        assert_eq!(find_anomalies(&history, &at(&["c1", "u2", "c2", "u3"])), vec![]);
    }

    #[test]
    fn names_every_anomaly() {
        let history = [
            txn("c", TxnOutcome::Committed, &["c1", "c2"]),
            txn("a", TxnOutcome::Aborted, &["a1", "a2"]),
            txn("u", TxnOutcome::Unknown, &["u1", "u2"]),
            txn("d", TxnOutcome::Committed, &["d1"]),
        ];
        let found = find_anomalies(&history, &at(&["c1", "a1", "a2", "u1", "d1", "d1", "zz"]));
        let names: Vec<&str> = found.iter().map(Anomaly::name).collect();
        assert_eq!(
            names,
            vec![
                "lost committed write",
                "torn transaction",
                "aborted read",
                "torn transaction",
                "duplicate",
                "unknown value"
            ],
            "{found:?}"
        );
        assert_eq!(
            found[0],
            Anomaly::LostCommittedWrite {
                txn: "c".into(),
                missing: vec!["c2".into()]
            }
        );
        assert_eq!(
            found[4],
            Anomaly::Duplicate {
                value: "d1".into(),
                at: vec![(0, 4), (0, 5)]
            }
        );
    }
}
