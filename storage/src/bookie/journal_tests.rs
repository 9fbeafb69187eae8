//! Journal tests: round trips across rolled files, replay from a checkpoint,
//! torn and corrupt tails, recycled files, and hostile bytes.

use super::*;

fn row(entry_id: u64, len: u32) -> IndexRow {
    IndexRow {
        entry_id,
        first_seq: entry_id * 10,
        record_count: 2,
        txid: entry_id + 100,
        len,
    }
}

fn payload(ledger: LedgerId, entry_id: u64, len: u32) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (ledger as u32 ^ (entry_id as u32).wrapping_mul(31) ^ i) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Write one group (payloads split into two chunks to exercise the crc
/// over chunks) and return the records as replay should yield them.
fn write_group(w: &mut JournalWriter, records: &[Replayed]) -> JournalPosition {
    let owned: Vec<(RecordKind, LedgerId, IndexRow, Vec<Bytes>)> = records
        .iter()
        .map(|r| match r {
            Replayed::Add { ledger, row, payload } => {
                let mid = payload.len() / 2;
                let chunks = vec![payload.slice(..mid), payload.slice(mid..)];
                (RecordKind::Add, *ledger, *row, chunks)
            }
            Replayed::Fence(l) => (RecordKind::Fence, *l, NO_ROW, vec![]),
            Replayed::Delete(l) => (RecordKind::Delete, *l, NO_ROW, vec![]),
        })
        .collect();
    let group: Vec<GroupRecord<'_>> = owned
        .iter()
        .map(|(kind, ledger, row, chunks)| GroupRecord {
            kind: *kind,
            ledger: *ledger,
            row: *row,
            payload: chunks,
        })
        .collect();
    w.append_group(&group).expect("append")
}

fn add(ledger: LedgerId, entry_id: u64, len: u32) -> Replayed {
    Replayed::Add {
        ledger,
        row: row(entry_id, len),
        payload: payload(ledger, entry_id, len),
    }
}

/// Groups of adds over three ledgers, with a fence and a delete among them.
fn workload(groups: u64) -> Vec<Vec<Replayed>> {
    (0..groups)
        .map(|g| {
            let mut group: Vec<Replayed> = (0..3)
                .map(|l| add(l + 1, g, (g * 37 % 500) as u32 + l as u32 + 16))
                .collect();
            if g == 5 {
                group.push(Replayed::Fence(2));
            }
            if g == 7 {
                group.push(Replayed::Delete(3));
            }
            group
        })
        .collect()
}

fn replay_all(dir: &Path, from: JournalPosition) -> (Vec<Replayed>, ReplayOutcome) {
    let mut got = Vec::new();
    let outcome = replay(dir, from, |r| got.push(r)).expect("replay");
    (got, outcome)
}

#[test]
fn records_round_trip_across_rolled_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 4 KiB files: the workload spans many of them.
    let mut w = JournalWriter::start(dir.path(), 1, 4096, Vec::new()).expect("start");
    let groups = workload(40);
    let mut end = JournalPosition::default();
    for g in &groups {
        end = write_group(&mut w, g);
    }
    w.current().sync().expect("sync");
    let (got, outcome) = replay_all(dir.path(), JournalPosition { file: 1, offset: 0 });
    let want: Vec<Replayed> = groups.into_iter().flatten().collect();
    assert_eq!(got, want);
    assert_eq!(outcome.records, want.len() as u64);
    assert_eq!(outcome.end, end);
    assert!(end.file > 3, "the workload rolled over several files: {end:?}");
    assert_eq!(outcome.files, (1..=end.file).collect::<Vec<_>>());
}

#[test]
fn replay_from_a_checkpoint_yields_only_later_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = JournalWriter::start(dir.path(), 7, 4096, Vec::new()).expect("start");
    let groups = workload(30);
    let mut checkpoint = JournalPosition::default();
    for (i, g) in groups.iter().enumerate() {
        let pos = write_group(&mut w, g);
        if i == 17 {
            checkpoint = pos;
        }
    }
    let (got, _) = replay_all(dir.path(), checkpoint);
    let want: Vec<Replayed> = groups.into_iter().skip(18).flatten().collect();
    assert_eq!(got, want);
}

#[test]
fn a_group_larger_than_a_file_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = JournalWriter::start(dir.path(), 1, 1024, Vec::new()).expect("start");
    let groups = vec![
        vec![add(1, 0, 100)],
        vec![add(1, 1, 5000), add(2, 0, 3000)],
        vec![add(1, 2, 10)],
    ];
    for g in &groups {
        write_group(&mut w, g);
    }
    let (got, outcome) = replay_all(dir.path(), JournalPosition { file: 1, offset: 0 });
    assert_eq!(got, groups.into_iter().flatten().collect::<Vec<_>>());
    assert_eq!(outcome.end.file, 3);
}

#[test]
fn a_torn_or_corrupt_tail_ends_replay_at_the_last_good_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = JournalWriter::start(dir.path(), 1, 1 << 20, Vec::new()).expect("start");
    let groups = workload(10);
    let mut ends = Vec::new();
    for g in &groups {
        ends.push(write_group(&mut w, g));
    }
    drop(w);
    let path = journal_path(dir.path(), 1);
    let original = std::fs::read(&path).expect("read");
    let all: Vec<Replayed> = groups.iter().flatten().cloned().collect();
    // Flip one byte in the middle of the last group's first record.
    let last_start = ends[8].offset as usize;
    for at in [
        last_start + 3,
        last_start + 30,
        last_start + RECORD_HEADER_LEN + 1,
    ] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let (got, outcome) = replay_all(dir.path(), JournalPosition { file: 1, offset: 0 });
        let kept = groups[..9].iter().map(Vec::len).sum::<usize>();
        assert_eq!(got, all[..kept].to_vec(), "byte {at} flipped");
        assert_eq!(outcome.end, ends[8]);
    }
    // Cut the file inside the last record.
    let mut bytes = original.clone();
    bytes.truncate(ends[9].offset as usize - 5);
    std::fs::write(&path, &bytes).expect("write");
    let (got, _) = replay_all(dir.path(), JournalPosition { file: 1, offset: 0 });
    assert_eq!(got.len(), all.len() - 1, "all but the cut record");
}

#[test]
fn a_file_whose_end_was_lost_ends_replay_whatever_the_next_file_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = JournalWriter::start(dir.path(), 1, 2048, Vec::new()).expect("start");
    let groups = workload(20);
    for g in &groups {
        write_group(&mut w, g);
    }
    drop(w);
    // Lose file 1's roll record (its last sync did not happen): file 2 and
    // later were never acknowledged and must not be replayed.
    let path = journal_path(dir.path(), 1);
    let mut bytes = std::fs::read(&path).expect("read");
    let (first_file, _) = {
        let mut n = Vec::new();
        let o = replay(dir.path(), JournalPosition { file: 1, offset: 0 }, |r| n.push(r)).expect("replay");
        (n, o)
    };
    let mut in_file_1 = Vec::new();
    let (end_1, rolled) = replay_file(dir.path(), 1, 0, &mut |r| in_file_1.push(r)).expect("replay file");
    assert!(rolled && first_file.len() > in_file_1.len());
    bytes[end_1 as usize..end_1 as usize + RECORD_HEADER_LEN].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    let (got, outcome) = replay_all(dir.path(), JournalPosition { file: 1, offset: 0 });
    assert_eq!(got, in_file_1);
    assert_eq!(
        outcome.end,
        JournalPosition {
            file: 1,
            offset: end_1
        }
    );
}

#[test]
fn recycled_files_do_not_replay_records_of_an_earlier_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = JournalWriter::start(dir.path(), 1, 4096, Vec::new()).expect("start");
    for g in &workload(30) {
        write_group(&mut w, g);
    }
    let last = w.position().file;
    assert!(last >= 3);
    // A checkpoint at the current position retires every earlier file.
    let checkpoint = w.position();
    w.retire(1..last, 2).expect("retire");
    let files = list_files(dir.path()).expect("list");
    assert_eq!(
        files.len(),
        3,
        "two recyclable files kept plus the current one: {files:?}"
    );
    // New, short groups: the next files are recycled ones, full of old records.
    let fresh: Vec<Vec<Replayed>> = (0..12).map(|g| vec![add(9, g, 700)]).collect();
    for g in &fresh {
        write_group(&mut w, g);
    }
    assert!(w.position().file >= last + 2, "rolled into recycled files");
    let (got, _) = replay_all(dir.path(), checkpoint);
    assert_eq!(got, fresh.into_iter().flatten().collect::<Vec<_>>());
}

#[test]
fn hostile_bytes_never_panic_and_replay_a_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = JournalWriter::start(dir.path(), 1, 1 << 16, Vec::new()).expect("start");
    let groups = workload(6);
    for g in &groups {
        write_group(&mut w, g);
    }
    drop(w);
    let all: Vec<Replayed> = groups.into_iter().flatten().collect();
    let path = journal_path(dir.path(), 1);
    let original = std::fs::read(&path).expect("read");
    let used = all
        .iter()
        .map(|r| match r {
            Replayed::Add { payload, .. } => RECORD_HEADER_LEN + payload.len(),
            _ => RECORD_HEADER_LEN,
        })
        .sum::<usize>();
    // A deterministic stream of hostile edits: random bytes, lengths set to
    // huge values, headers copied to wrong places.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let mut bytes = original.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % (used + 200);
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 if at + 16 <= bytes.len() => {
                    bytes[at + 12..at + 16].copy_from_slice(&u32::MAX.to_le_bytes());
                }
                _ if at + RECORD_HEADER_LEN <= bytes.len() => {
                    let header: Vec<u8> = original[..RECORD_HEADER_LEN].to_vec();
                    bytes[at..at + RECORD_HEADER_LEN].copy_from_slice(&header);
                }
                _ => {}
            }
        }
        std::fs::write(&path, &bytes).expect("write");
        let (got, _) = replay_all(dir.path(), JournalPosition { file: 1, offset: 0 });
        assert!(got.len() <= all.len());
        assert_eq!(
            got,
            all[..got.len()].to_vec(),
            "replay yields a prefix of what was written"
        );
    }
}
