//! Entry log tests: appends across rolled files read back by location, a
//! scan that rebuilds the same locations and cuts a torn tail, and reads
//! that refuse what is not the entry asked for.

use super::*;

fn row(entry_id: u64, len: u32) -> IndexRow {
    IndexRow {
        entry_id,
        first_seq: entry_id * 3,
        record_count: 3,
        txid: entry_id + 7,
        len,
    }
}

fn payload(ledger: LedgerId, entry_id: u64, len: u32) -> Vec<Bytes> {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (ledger as u32 * 7 + entry_id as u32 * 13 + i) as u8)
        .collect();
    let mid = bytes.len() / 3;
    vec![
        Bytes::copy_from_slice(&bytes[..mid]),
        Bytes::copy_from_slice(&bytes[mid..]),
    ]
}

/// Flushes of interleaved ledgers: ledger l gets entries in each flush.
fn flushes() -> Vec<Vec<(LedgerId, IndexRow, Vec<Bytes>)>> {
    (0..6u64)
        .map(|f| {
            let mut flush = Vec::new();
            for ledger in [3u64, 1, 2] {
                for k in 0..3 {
                    let entry = f * 3 + k;
                    let len = ((ledger * 100 + entry * 37) % 700) as u32 + 1;
                    flush.push((ledger, row(entry, len), payload(ledger, entry, len)));
                }
            }
            flush
        })
        .collect()
}

fn append_all(w: &mut EntryLogWriter) -> Vec<(LedgerId, IndexRow, Vec<Bytes>, Location)> {
    let mut out = Vec::new();
    for flush in flushes() {
        let pending: Vec<PendingEntry<'_>> = flush
            .iter()
            .map(|(ledger, row, payload)| PendingEntry {
                ledger: *ledger,
                row: *row,
                payload,
            })
            .collect();
        let locations = w.append(&pending).expect("append");
        w.sync().expect("sync");
        for ((ledger, row, payload), at) in flush.into_iter().zip(locations) {
            out.push((ledger, row, payload, at));
        }
    }
    out
}

fn concat(chunks: &[Bytes]) -> Bytes {
    Bytes::from(chunks.concat())
}

#[test]
fn appended_entries_read_back_by_location_across_rolled_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = EntryLogWriter::open(dir.path(), 1, 0, 4096).expect("open");
    let written = append_all(&mut w);
    assert_eq!(
        w.current().id,
        written.last().map_or(0, |w| w.3.log),
        "the last file is the current one"
    );
    let logs = list_logs(dir.path()).expect("list");
    assert!(logs.len() > 3, "the writes rolled over several files: {logs:?}");
    let files: Vec<EntryLogFile> = logs
        .iter()
        .map(|&id| open_log(dir.path(), id).expect("open log"))
        .collect();
    for (ledger, row, payload, at) in &written {
        let file = files
            .iter()
            .find(|f| f.id == at.log)
            .expect("the location's file");
        assert_eq!(
            read_entry(file, *at, *ledger, row).expect("read"),
            concat(payload)
        );
    }
    // A ledger's entries of one flush are contiguous in one file.
    let ledger_1: Vec<&Location> = written
        .iter()
        .filter(|w| w.0 == 1)
        .map(|w| &w.3)
        .take(3)
        .collect();
    assert!(ledger_1
        .windows(2)
        .all(|p| p[0].log == p[1].log && p[0].offset < p[1].offset));
}

#[test]
fn a_scan_rebuilds_every_location_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = EntryLogWriter::open(dir.path(), 1, 0, 1 << 20).expect("open");
    let written = append_all(&mut w);
    drop(w);
    let mut scanned = Vec::new();
    let out = scan(dir.path(), 1, &mut |ledger, row, at| {
        scanned.push((ledger, row, at));
    })
    .expect("scan");
    assert_eq!(out.cut, 0);
    let want: Vec<(LedgerId, IndexRow, Location)> = written.iter().map(|w| (w.0, w.1, w.3)).collect();
    assert_eq!(scanned, want);
    // Tear the last record: the scan keeps everything before it and cuts the rest.
    let path = log_path(dir.path(), 1);
    let len = std::fs::metadata(&path).expect("metadata").len();
    let file = OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(len - 3).expect("tear");
    drop(file);
    let mut scanned = Vec::new();
    let out = scan(dir.path(), 1, &mut |ledger, row, at| {
        scanned.push((ledger, row, at));
    })
    .expect("scan");
    assert_eq!(scanned, want[..want.len() - 1].to_vec());
    assert_eq!(out.end, want[want.len() - 1].2.offset);
    assert_eq!(
        std::fs::metadata(&path).expect("metadata").len(),
        out.end,
        "the tail was cut"
    );
    // The writer goes on from the scanned end.
    let (ledger, row, payload, _) = &written[written.len() - 1];
    let mut w = EntryLogWriter::open(dir.path(), 1, out.end, 1 << 20).expect("reopen");
    let at = w
        .append(&[PendingEntry {
            ledger: *ledger,
            row: *row,
            payload,
        }])
        .expect("append");
    w.sync().expect("sync");
    assert_eq!(at, vec![want[want.len() - 1].2]);
    let file = open_log(dir.path(), 1).expect("open log");
    assert_eq!(
        read_entry(&file, at[0], *ledger, row).expect("read"),
        concat(payload)
    );
}

#[test]
fn a_read_refuses_anything_but_the_entry_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = EntryLogWriter::open(dir.path(), 9, 0, 1 << 20).expect("open");
    let written = append_all(&mut w);
    let file = open_log(dir.path(), 9).expect("open log");
    let (ledger, row, _, at) = &written[4];
    let corrupt = |r: Result<Bytes>| matches!(r, Err(StorageError::Corrupt { .. }));
    // Another ledger, another row, a wrong offset, another file's id, past the end.
    assert!(corrupt(read_entry(&file, *at, ledger + 1, row)));
    assert!(corrupt(read_entry(
        &file,
        *at,
        *ledger,
        &IndexRow { txid: 0, ..*row }
    )));
    assert!(corrupt(read_entry(
        &file,
        Location {
            offset: at.offset + 1,
            ..*at
        },
        *ledger,
        row
    )));
    assert!(corrupt(read_entry(
        &file,
        Location { log: 8, ..*at },
        *ledger,
        row
    )));
    assert!(corrupt(read_entry(
        &file,
        Location {
            offset: 1 << 30,
            ..*at
        },
        *ledger,
        row
    )));
    // A flipped payload byte fails the crc.
    let mut bytes = std::fs::read(log_path(dir.path(), 9)).expect("read file");
    bytes[at.offset as usize + RECORD_HEADER_LEN + 1] ^= 1;
    std::fs::write(log_path(dir.path(), 9), &bytes).expect("write file");
    let file = open_log(dir.path(), 9).expect("open log");
    assert!(corrupt(read_entry(&file, *at, *ledger, row)));
}
