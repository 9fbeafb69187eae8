//! Cutting stored entries at record-batch boundaries for Fetch.
//!
//! The log writer coalesces appends into large entries (one entry holds one
//! or more v2 batches, byte-for-byte as produced and stamped). Kafka's size
//! rules (KIP-74) are per *batch*, so a fetch walks the batch headers of the
//! entries it read (`baseOffset`, `batchLength`, `lastOffsetDelta`, nothing
//! decoded) and returns slices of the entries (`Bytes::slice`, no copy)
//! holding whole batches.

use bytes::Bytes;

use super::batch::BatchWalker;

/// What [`take_batches`] chose from one partition's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakenBatches {
    /// Slices of the entries, in order, each a run of whole batches of one
    /// entry (sharing the entry's allocation).
    pub chunks: Vec<Bytes>,
    /// Their total length in bytes.
    pub bytes: usize,
}

/// One unit [`take_batches`] takes or leaves whole: a framed batch, or the
/// unframed rest of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit {
    start: usize,
    end: usize,
    /// `baseOffset + lastOffsetDelta` of a framed batch; `None` for an
    /// unframed rest, whose offsets are unknown.
    last_offset: Option<i64>,
    /// `baseOffset` of a framed batch; `None` for an unframed rest.
    base_offset: Option<i64>,
}

/// The units of one entry: its framed batches, then (if the entry stops
/// framing as v2 batches: truncated header, length below a header or past
/// the end, wrong magic) the rest of the entry as one unit.
fn units(entry: &[u8]) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut end = 0usize;
    for span in BatchWalker::new(entry) {
        match span {
            Ok(span) => {
                out.push(Unit {
                    start: span.start,
                    end: span.start + span.len,
                    last_offset: Some(
                        span.header
                            .base_offset
                            .saturating_add(i64::from(span.header.last_offset_delta)),
                    ),
                    base_offset: Some(span.header.base_offset),
                });
                end = span.start + span.len;
            }
            Err(_) => {
                out.push(Unit {
                    start: end,
                    end: entry.len(),
                    last_offset: None,
                    base_offset: None,
                });
                break;
            }
        }
    }
    out
}

/// The whole record batches a fetch from `fetch_offset` returns out of
/// `entries` (stored payloads, in log order, from the entry holding the
/// fetch offset):
///
/// - leading batches whose last offset is below `fetch_offset` are skipped,
///   so the result starts with the batch holding the fetch offset (as
///   Kafka's does);
/// - then batches are taken in order while their total stays within
///   `limit`, stopping at the first that does not fit;
/// - when `oversize_first` is set (the first batch of the response, KIP-74)
///   the first batch taken is taken even if it alone exceeds `limit`.
///
/// Stored bytes are not trusted: where an entry stops framing as v2 batches
/// the rest of that entry is one opaque unit, taken or left whole like a
/// batch (never skipped: its offsets are unknown), so corrupt bytes reach
/// the client as they would whole and nothing here panics or reads out of
/// bounds.
pub fn take_batches(
    entries: &[Bytes],
    fetch_offset: i64,
    limit: usize,
    oversize_first: bool,
) -> TakenBatches {
    take_batches_below(entries, fetch_offset, limit, oversize_first, i64::MAX)
}

/// [`take_batches`], stopping before the first batch that starts at or
/// after `end_offset` (a read_committed fetch stops at the last stable
/// offset). With a bound, bytes of unknown offsets end the take.
pub fn take_batches_below(
    entries: &[Bytes],
    fetch_offset: i64,
    limit: usize,
    oversize_first: bool,
    end_offset: i64,
) -> TakenBatches {
    let mut taken = TakenBatches::default();
    let mut skipping = true;
    for entry in entries {
        let mut run: Option<(usize, usize)> = None;
        let mut full = false;
        for unit in units(entry) {
            if skipping && unit.last_offset.is_some_and(|last| last < fetch_offset) {
                continue;
            }
            if end_offset < i64::MAX && unit.base_offset.is_none_or(|base| base >= end_offset) {
                full = true;
                break;
            }
            let len = unit.end - unit.start;
            let fits = taken.bytes.checked_add(len).is_some_and(|n| n <= limit);
            let exempt = oversize_first && taken.bytes == 0;
            if !(fits || exempt) {
                full = true;
                break;
            }
            skipping = false;
            taken.bytes += len;
            run = Some(match run {
                Some((start, _)) => (start, unit.end),
                None => (unit.start, unit.end),
            });
        }
        if let Some((start, end)) = run {
            taken.chunks.push(if start == 0 && end == entry.len() {
                entry.clone()
            } else {
                entry.slice(start..end)
            });
        }
        if full {
            break;
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::super::batch::{HEADER_SIZE, LAST_OFFSET_DELTA_OFFSET, LENGTH_OFFSET, MAGIC_OFFSET};
    use super::*;

    /// A framed (not otherwise valid) v2 batch of `len` bytes holding
    /// offsets `base..=base + delta`.
    fn framed(base: i64, delta: i32, len: usize) -> Vec<u8> {
        assert!(len >= HEADER_SIZE);
        let mut b = vec![0u8; len];
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&delta.to_be_bytes());
        b
    }

    /// An entry of consecutive one-record batches from offset `base`, of
    /// these sizes.
    fn entry(base: i64, sizes: &[usize]) -> Bytes {
        let mut out = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            out.extend(framed(base + i as i64, 0, n));
        }
        Bytes::from(out)
    }

    fn lens(t: &TakenBatches) -> Vec<usize> {
        t.chunks.iter().map(Bytes::len).collect()
    }

    #[test]
    fn entries_are_cut_after_the_last_batch_that_fits() {
        let e = entry(0, &[100, 100, 100]);
        let t = take_batches(std::slice::from_ref(&e), 0, 250, false);
        assert_eq!(lens(&t), vec![200]);
        assert_eq!(t.bytes, 200);
        // Zero copy: the chunk is a slice of the entry.
        assert_eq!(t.chunks[0].as_ptr(), e.as_ptr());
        assert_eq!(t.chunks[0], e.slice(..200));

        // Exactly at the limit: all of it, the entry itself.
        let t = take_batches(std::slice::from_ref(&e), 0, 300, false);
        assert_eq!((lens(&t), t.bytes), (vec![300], 300));
        assert_eq!(t.chunks[0].as_ptr(), e.as_ptr());

        // Across entries: the second is cut.
        let es = [entry(0, &[100, 100]), entry(2, &[80, 80, 80])];
        let t = take_batches(&es, 0, 370, false);
        assert_eq!((lens(&t), t.bytes), (vec![200, 160], 360));
        assert_eq!(t.chunks[1], es[1].slice(..160));
    }

    #[test]
    fn only_an_exempt_first_batch_may_exceed_the_limit() {
        let e = entry(0, &[500, 100]);
        let t = take_batches(std::slice::from_ref(&e), 0, 300, true);
        assert_eq!((lens(&t), t.bytes), (vec![500], 500), "first batch alone");
        let t = take_batches(std::slice::from_ref(&e), 0, 300, false);
        assert_eq!((lens(&t), t.bytes), (vec![], 0), "not exempt: nothing");
        // Exemption is for the first batch only, and a zero limit still
        // returns it.
        let t = take_batches(&[entry(0, &[100, 100])], 0, 0, true);
        assert_eq!((lens(&t), t.bytes), (vec![100], 100));
        // Nothing to take.
        assert_eq!(take_batches(&[], 0, 10, true), TakenBatches::default());
        assert_eq!(
            take_batches(&[Bytes::new()], 0, 10, true),
            TakenBatches::default()
        );
    }

    #[test]
    fn batches_before_the_fetch_offset_are_skipped() {
        // Offsets 10..=12, 13..=15, 16: fetch 14 starts at the second batch
        // (which holds it) and that batch is the exempt first one.
        let mut b = framed(10, 2, 100);
        b.extend(framed(13, 2, 200));
        b.extend(framed(16, 0, 70));
        let e = Bytes::from(b);
        let t = take_batches(std::slice::from_ref(&e), 14, 150, true);
        assert_eq!(t.chunks, vec![e.slice(100..300)]);
        assert_eq!(t.bytes, 200);
        let t = take_batches(std::slice::from_ref(&e), 14, 1000, false);
        assert_eq!(t.chunks, vec![e.slice(100..370)]);
        let t = take_batches(std::slice::from_ref(&e), 13, 1000, false);
        assert_eq!(t.chunks, vec![e.slice(100..370)], "fetch at a batch's base");
        let t = take_batches(std::slice::from_ref(&e), 12, 1000, false);
        assert_eq!(t.chunks, vec![e.clone()], "fetch at a batch's last offset");
        // A whole entry before the fetch offset is skipped too.
        let es = [entry(0, &[100, 100]), entry(2, &[100, 100])];
        let t = take_batches(&es, 3, 1000, false);
        assert_eq!(t.chunks, vec![es[1].slice(100..)]);
        // Beyond every batch: nothing.
        assert_eq!(take_batches(&es, 9, 1000, true).bytes, 0);
        // Only leading batches are skipped: a later batch with lower offsets
        // (never written, but not trusted) is returned in place.
        let mut b = framed(5, 0, 100);
        b.extend(framed(1, 0, 100));
        let e = Bytes::from(b);
        assert_eq!(
            take_batches(std::slice::from_ref(&e), 5, 1000, false).chunks,
            vec![e]
        );
    }

    #[test]
    fn a_bound_stops_before_the_first_batch_at_or_past_it() {
        // Offsets 10, 11, 12 in one entry, 13 in the next.
        let entries = [entry(10, &[100, 100, 100]), entry(13, &[80])];
        let t = take_batches_below(&entries, 10, 10_000, true, 12);
        assert_eq!(t.chunks, vec![entries[0].slice(..200)]);
        let t = take_batches_below(&entries, 11, 10_000, true, 14);
        assert_eq!(t.chunks, vec![entries[0].slice(100..), entries[1].clone()]);
        // Nothing below the bound past the fetch offset: nothing at all,
        // not even the exempt first batch.
        assert!(take_batches_below(&entries, 12, 10_000, true, 12)
            .chunks
            .is_empty());
        // Bytes of unknown offsets end a bounded take.
        let mut b = framed(0, 0, 100);
        b.extend([0u8; 7]);
        let e = Bytes::from(b);
        let t = take_batches_below(std::slice::from_ref(&e), 0, 1000, false, 50);
        assert_eq!(t.chunks, vec![e.slice(..100)]);
    }

    #[test]
    fn unframed_bytes_are_one_unit_and_never_panic() {
        let good = framed(0, 0, 100);
        // A truncated header after a good batch: the rest is one unit.
        let mut b = good.clone();
        b.extend([0u8; 7]);
        let e = Bytes::from(b);
        assert_eq!(
            take_batches(std::slice::from_ref(&e), 0, 1000, false).chunks,
            vec![e.clone()]
        );
        assert_eq!(
            take_batches(std::slice::from_ref(&e), 0, 105, false).chunks,
            vec![e.slice(..100)]
        );
        // Negative, too small and oversize lengths; wrong magic.
        for (len, magic) in [
            (-1i32, 2u8),
            (i32::MIN, 2),
            (48, 2),
            (i32::MAX, 2),
            (1000, 2),
            (88, 1),
        ] {
            let mut bad = framed(1, 0, 100);
            bad[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
            bad[MAGIC_OFFSET] = magic;
            let mut b = good.clone();
            b.extend(&bad);
            b.extend(framed(2, 0, 100));
            let e = Bytes::from(b);
            // The whole unframed rest (200 bytes) is taken or left whole.
            let t = take_batches(std::slice::from_ref(&e), 0, 1000, false);
            assert_eq!(
                (t.chunks.clone(), t.bytes),
                (vec![e.clone()], 300),
                "len {len} magic {magic}"
            );
            let t = take_batches(std::slice::from_ref(&e), 0, 299, false);
            assert_eq!(t.chunks, vec![e.slice(..100)], "len {len} magic {magic}");
            // Unknown offsets are never skipped.
            let t = take_batches(std::slice::from_ref(&e), 50, 1000, true);
            assert_eq!(t.chunks, vec![e.slice(100..)], "len {len} magic {magic}");
            // Corrupt from the start: the whole entry is one (exempt) unit.
            let e = Bytes::from(bad.clone());
            let t = take_batches(std::slice::from_ref(&e), 0, 10, true);
            assert_eq!(t.chunks, vec![e.clone()], "len {len} magic {magic}");
            assert_eq!(take_batches(std::slice::from_ref(&e), 0, 10, false).bytes, 0);
        }
        // Huge offsets do not overflow.
        let e = Bytes::from(framed(i64::MAX, i32::MAX, 100));
        assert_eq!(
            take_batches(std::slice::from_ref(&e), i64::MAX, 1000, false).bytes,
            100
        );
        let e = Bytes::from(framed(i64::MIN, i32::MIN, 100));
        assert_eq!(
            take_batches(std::slice::from_ref(&e), i64::MIN, 1000, false).bytes,
            100
        );
        assert_eq!(
            take_batches(std::slice::from_ref(&e), i64::MIN + 1, 1000, false).bytes,
            0
        );
    }

    #[test]
    fn random_bytes_never_panic_and_chunks_stay_in_bounds() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let mut entries = Vec::new();
            for _ in 0..next() % 4 {
                let mut b: Vec<u8> = Vec::new();
                for _ in 0..next() % 4 {
                    if next() % 2 == 0 {
                        b.extend(framed(
                            next() as i64 % 50,
                            (next() % 5) as i32,
                            61 + (next() % 80) as usize,
                        ));
                    } else {
                        let n = (next() % 90) as usize;
                        b.extend((0..n).map(|_| next() as u8));
                    }
                }
                if !b.is_empty() && next() % 3 == 0 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                entries.push(Bytes::from(b));
            }
            let limit = (next() % 400) as usize;
            let exempt = next() % 2 == 0;
            let bound = next() as i64 % 70;
            let t = take_batches_below(&entries, next() as i64 % 60, limit, exempt, bound);
            // With a bound, only framed batches starting below it are taken.
            for c in &t.chunks {
                for span in BatchWalker::new(c) {
                    let span = span.expect("bounded takes are whole batches");
                    assert!(span.header.base_offset < bound);
                }
            }
            let t = take_batches(&entries, next() as i64 % 60, limit, exempt);
            assert_eq!(t.bytes, t.chunks.iter().map(Bytes::len).sum::<usize>());
            assert!(t.chunks.iter().all(|c| !c.is_empty()));
            if !exempt {
                assert!(t.bytes <= limit);
            }
        }
    }
}
