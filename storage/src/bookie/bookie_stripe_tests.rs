//! A bookie holding the stripe of one ensemble position of a striped
//! ledger (E > Qw): sparse entry ids, each add following the previous
//! entry of the stripe.

use bytes::Bytes;

use super::{after, body, open, read_all};
use crate::error::StorageError;
use crate::ledger::{BookieClient, Entry};

/// A bookie holding the stripe of index 0 of a 3/2 ensemble: entries 0, 2,
/// 3, 5, 6, ... each following the previous one of the stripe.
#[tokio::test]
async fn a_striped_bookie_holds_its_stripe_and_detects_a_missed_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = open(dir.path());
    let stripe = [0u64, 2, 3, 5, 6];
    let mut prev = None;
    for &e in &stripe {
        b.add_entry(after(8, e, prev, &[&body(e)]))
            .await
            .expect("stripe add");
        prev = Some(e);
    }
    let held = |v: Vec<Entry>| v.iter().map(|e| e.row.entry_id).collect::<Vec<_>>();
    assert_eq!(held(read_all(&b, 8).await), stripe.to_vec());
    assert_eq!(
        held(b.read_entries(8, 1, 4, usize::MAX).await.expect("read")),
        vec![2, 3]
    );
    assert_eq!(
        held(b.read_entries(8, 4, 4, usize::MAX).await.expect("read")),
        Vec::<u64>::new()
    );
    assert_eq!(held(b.read_entries(8, 4, 9, 0).await.expect("read")), vec![5]);
    assert_eq!(
        b.entry_for_seq(8, 145).await.expect("seq").map(|r| r.entry_id),
        Some(3)
    );
    assert_eq!(
        b.entry_for_txid(8, 4).await.expect("txid").map(|r| r.entry_id),
        Some(5)
    );
    let info = b.ledger_info(8).await.expect("info");
    assert_eq!((info.entries, info.last_entry_id), (5, Some(6)));
    // The add of 9 names 8 as the previous entry of the stripe; the bookie
    // never got 8 (its last is 6), so it reports that it missed entries.
    match b.add_entry(after(8, 9, Some(8), &[&body(9)])).await {
        Err(StorageError::OutOfOrder {
            ledger: 8,
            last: Some(6),
            prev: Some(8),
        }) => {}
        other => panic!("expected OutOfOrder(last 6, prev 8), got {other:?}"),
    }
    // A recovery add of an entry it holds is acknowledged as is; of a new
    // one, it must follow the last entry like any add.
    let mut again = after(8, 3, Some(2), &[b"other bytes"]);
    again.recovery = true;
    b.add_entry(again).await.expect("already durable");
    let mut fill = after(8, 8, Some(6), &[&body(8)]);
    fill.recovery = true;
    b.add_entry(fill).await.expect("recovery add fills the stripe");
    b.add_entry(after(8, 9, Some(8), &[&body(9)]))
        .await
        .expect("now 9 follows");
    // The sparse ledger survives a restart byte for byte.
    drop(b);
    let b = open(dir.path());
    let all = read_all(&b, 8).await;
    assert_eq!(held(all.clone()), vec![0, 2, 3, 5, 6, 8, 9]);
    for e in &all {
        assert_eq!(e.payload, Bytes::from(body(e.row.entry_id)));
    }
    // A stripe whose first entry is not 0 starts the ledger too.
    b.add_entry(after(9, 1, None, &[b"first of stripe"]))
        .await
        .expect("first of its stripe");
    assert_eq!(held(read_all(&b, 9).await), vec![1]);
}
