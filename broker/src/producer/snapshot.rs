//! The byte form of a partition's producer state, written by storage as
//! control entries at the start of each segment and read back when a new
//! owner opens the partition.
//!
//! ```text
//! "DLPS" version:u8=2 producers:u32
//!   per producer: producer_id:i64 epoch:i16 last_seen_ms:i64 batches:u8 (≤ 5)
//!     per batch:  first_seq:i32 last_seq:i32 first_offset:u64 record_count:u32 max_timestamp:i64
//! open_txns:u32
//!   per open transaction:    producer_id:i64 first_offset:u64
//! aborted_txns:u32
//!   per aborted transaction: producer_id:i64 first_offset:u64 last_offset:u64 (marker order)
//! ```
//! Big-endian, nothing after the last aborted transaction. Version 1
//! (written before transactions existed) ends after the producers and is
//! still read, as holding no transaction. The bookie checks each
//! entry's crc32c; decoding is strict all the same (a count that does not
//! fit the bytes, more than five batches, trailing bytes: an error, never a
//! panic), because a wrong state would wrongly refuse or re-write batches.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use std::collections::HashMap;

use super::state::{BatchMeta, ProducerEntry, ProducerStates, MAX_BATCHES};
use super::txn::{AbortedTxn, TxnIndex};

const MAGIC: &[u8; 4] = b"DLPS";
const VERSION: u8 = 2;
/// The version written before transactions existed (producers only).
const VERSION_1: u8 = 1;
const OPEN_TXN_SIZE: usize = 8 + 8;
const ABORTED_TXN_SIZE: usize = 8 + 8 + 8;
const PRODUCER_FIXED: usize = 8 + 2 + 8 + 1;
const BATCH_SIZE: usize = 4 + 4 + 8 + 4 + 8;

/// Why a snapshot could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a producer-state snapshot, or of a version this binary does not know.
    #[error("not a producer state snapshot of version {VERSION}")]
    BadHeader,
    /// The bytes end inside a field.
    #[error("producer state snapshot truncated at byte {0}")]
    Truncated(usize),
    /// A producer with more batches than are ever kept.
    #[error("producer state snapshot holds {0} batches for one producer (at most 5)")]
    TooManyBatches(u8),
    /// Bytes after the last producer.
    #[error("producer state snapshot has {0} trailing bytes")]
    Trailing(usize),
}

/// Encode the state (see module docs).
pub fn encode(states: &ProducerStates, txns: &TxnIndex) -> Bytes {
    let mut out = BytesMut::with_capacity(9 + states.len() * (PRODUCER_FIXED + MAX_BATCHES * BATCH_SIZE));
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32(u32::try_from(states.len()).unwrap_or(u32::MAX));
    for (id, e) in states.iter().take(u32::MAX as usize) {
        out.put_i64(id);
        out.put_i16(e.epoch);
        out.put_i64(e.last_seen_ms);
        out.put_u8(e.batches.len().min(MAX_BATCHES) as u8);
        for b in e.batches.iter().take(MAX_BATCHES) {
            out.put_i32(b.first_seq);
            out.put_i32(b.last_seq);
            out.put_u64(b.first_offset);
            out.put_u32(b.record_count);
            out.put_i64(b.max_timestamp);
        }
    }
    let open: Vec<(i64, u64)> = txns.ongoing().collect();
    out.put_u32(open.len() as u32);
    for (producer_id, first) in open {
        out.put_i64(producer_id);
        out.put_u64(first);
    }
    let aborted: Vec<&AbortedTxn> = txns.aborted().collect();
    out.put_u32(aborted.len() as u32);
    for a in aborted {
        out.put_i64(a.producer_id);
        out.put_u64(a.first_offset);
        out.put_u64(a.last_offset);
    }
    out.freeze()
}

/// A bounds-checked big-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let end = self
            .pos
            .checked_add(N)
            .ok_or(SnapshotError::Truncated(self.pos))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(SnapshotError::Truncated(self.pos))?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

/// Decode a snapshot written by [`encode`] (or by a version-1 encoder).
pub fn decode(bytes: &[u8]) -> Result<(ProducerStates, TxnIndex), SnapshotError> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    if c.take::<4>().ok().as_ref() != Some(MAGIC) {
        return Err(SnapshotError::BadHeader);
    }
    let version = c.u8().map_err(|_| SnapshotError::BadHeader)?;
    if version != VERSION && version != VERSION_1 {
        return Err(SnapshotError::BadHeader);
    }
    let count = c.u32()? as usize;
    // Every producer takes at least PRODUCER_FIXED bytes: a count that
    // cannot fit is refused before anything is allocated for it.
    if count > (bytes.len() - c.pos) / PRODUCER_FIXED {
        return Err(SnapshotError::Truncated(bytes.len()));
    }
    let mut states = ProducerStates::default();
    for _ in 0..count {
        let producer_id = c.i64()?;
        let epoch = c.i16()?;
        let last_seen_ms = c.i64()?;
        let n = c.u8()?;
        if n as usize > MAX_BATCHES {
            return Err(SnapshotError::TooManyBatches(n));
        }
        let mut batches = VecDeque::with_capacity(n as usize);
        for _ in 0..n {
            batches.push_back(BatchMeta {
                first_seq: c.i32()?,
                last_seq: c.i32()?,
                first_offset: c.u64()?,
                record_count: c.u32()?,
                max_timestamp: c.i64()?,
            });
        }
        states.insert(
            producer_id,
            ProducerEntry {
                epoch,
                batches,
                last_seen_ms,
            },
        );
    }
    let txns = if version == VERSION_1 {
        TxnIndex::default()
    } else {
        decode_txns(&mut c)?
    };
    if c.pos != bytes.len() {
        return Err(SnapshotError::Trailing(bytes.len() - c.pos));
    }
    Ok((states, txns))
}

/// The transaction section of a version-2 snapshot; counts are checked
/// against the bytes left before anything is allocated for them.
fn decode_txns(c: &mut Cursor<'_>) -> Result<TxnIndex, SnapshotError> {
    let open = c.u32()? as usize;
    if open > (c.buf.len() - c.pos) / OPEN_TXN_SIZE {
        return Err(SnapshotError::Truncated(c.buf.len()));
    }
    let mut ongoing = HashMap::with_capacity(open);
    for _ in 0..open {
        let producer_id = c.i64()?;
        ongoing.insert(producer_id, c.u64()?);
    }
    let aborted_count = c.u32()? as usize;
    if aborted_count > (c.buf.len() - c.pos) / ABORTED_TXN_SIZE {
        return Err(SnapshotError::Truncated(c.buf.len()));
    }
    let mut aborted = std::collections::VecDeque::with_capacity(aborted_count);
    for _ in 0..aborted_count {
        aborted.push_back(AbortedTxn {
            producer_id: c.i64()?,
            first_offset: c.u64()?,
            last_offset: c.u64()?,
        });
    }
    Ok(TxnIndex::from_parts(ongoing, aborted))
}

#[cfg(test)]
mod tests {
    use super::super::state::{seq_add, BatchIdentity};
    use super::*;

    fn sample(producers: i64) -> ProducerStates {
        let mut st = ProducerStates::default();
        for pid in 0..producers {
            for i in 0..(pid % 7) as i32 + 1 {
                let b = BatchIdentity {
                    producer_id: pid,
                    epoch: (pid % 3) as i16,
                    first_seq: i * 4,
                    last_seq: seq_add(i * 4, 3),
                    record_count: 4,
                    max_timestamp: 1_700_000_000_000 + i64::from(i),
                };
                st.record(&b, (pid as u64) * 100 + i as u64 * 4, 5_000 + pid);
            }
        }
        st
    }

    fn sample_txns() -> TxnIndex {
        let mut t = TxnIndex::default();
        for pid in 0..5 {
            t.begin(pid, pid as u64 * 10);
            if pid % 2 == 0 {
                t.end(pid, pid as u64 * 10 + 5, pid % 4 == 0);
            }
        }
        t
    }

    /// What survives a snapshot: open transactions and the aborted index
    /// (not the guards or the not-yet-stable markers).
    fn persisted(t: &TxnIndex) -> (Vec<(i64, u64)>, Vec<AbortedTxn>) {
        let mut open: Vec<_> = t.ongoing().collect();
        open.sort_unstable();
        (open, t.aborted().copied().collect())
    }

    #[test]
    fn round_trip() {
        for n in [0, 1, 17, 1000] {
            let st = sample(n);
            let txns = sample_txns();
            let bytes = encode(&st, &txns);
            let (back, back_txns) = decode(&bytes).expect("decodes");
            assert_eq!(back, st, "{n} producers");
            assert_eq!(persisted(&back_txns), persisted(&txns));
        }
        // Five batches kept per producer at most: 10,000 producers fit a
        // default 4 MiB entry several times over.
        assert!(encode(&sample(10_000), &TxnIndex::default()).len() < 2 << 20);
    }

    #[test]
    fn version_1_snapshots_still_decode_without_transactions() {
        let st = sample(3);
        let mut v1 = encode(&st, &TxnIndex::default()).to_vec();
        v1.truncate(v1.len() - 8); // the two empty transaction counts
        v1[4] = VERSION_1;
        let (back, txns) = decode(&v1).expect("decodes");
        assert_eq!(back, st);
        assert_eq!(persisted(&txns), (vec![], vec![]));
    }

    #[test]
    fn hostile_snapshots_are_errors_not_panics() {
        let good = encode(&sample(20), &sample_txns()).to_vec();
        // Every truncation.
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Trailing bytes.
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(SnapshotError::Trailing(1)));
        // Wrong magic, wrong version.
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(SnapshotError::BadHeader));
        let mut bad = good.clone();
        bad[4] = 9;
        assert_eq!(decode(&bad), Err(SnapshotError::BadHeader));
        // A producer count far beyond the bytes: refused before allocating.
        let mut bad = good.clone();
        bad[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&bad), Err(SnapshotError::Truncated(_))));
        // Six batches for one producer.
        let mut one = ProducerStates::default();
        one.record(
            &BatchIdentity {
                producer_id: 1,
                epoch: 0,
                first_seq: 0,
                last_seq: 0,
                record_count: 1,
                max_timestamp: 0,
            },
            0,
            0,
        );
        let mut bad = encode(&one, &TxnIndex::default()).to_vec();
        bad[9 + 18] = 6;
        assert_eq!(decode(&bad), Err(SnapshotError::TooManyBatches(6)));
        // Every single-byte corruption either decodes or errors.
        for i in 0..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xff;
            let _ = decode(&flipped);
        }
    }
}
