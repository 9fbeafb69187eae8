//! Stream state (`log::stream_state`) over the real metadata store and a
//! real bookie: the writer consults it in order (duplicates answered with
//! the original's position and not written, refusals passed through), its
//! snapshots are control entries that readers never see, and a new opening
//! of the stream rebuilds it — by replay within a segment, and from a
//! snapshot once the stream rolled past the appends it remembers.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use distlog_metadata::{MetadataStore, NodeId, StreamId};
use distlog_storage::bookie::{Bookie, LocalBookie};
use distlog_storage::log::{
    Admission, Namespace, NamespaceConfig, StateError, StreamConfig, StreamState, StreamStateFn,
};
use distlog_storage::StorageError;
use parking_lot::Mutex;

/// Tags at or above this are refused.
const REFUSED: u64 = 1_000_000;

/// A toy state: the offset of every tag written (records are
/// `[offset][tag]`, see `common::record`); a tag written again is a
/// duplicate.
#[derive(Default)]
struct Tags {
    seen: Mutex<HashMap<u64, u64>>,
    restores: Mutex<Vec<usize>>,
}

#[derive(Debug, thiserror::Error)]
#[error("tag {0} refused")]
struct Refused(u64);

fn tag_of(record: &[u8]) -> u64 {
    u64::from_be_bytes(record[8..16].try_into().expect("16-byte record"))
}

impl StreamState for Tags {
    fn admit(&self, payload: &[u8], base: u64, _count: u32, _now: i64) -> Admission {
        let tag = tag_of(payload);
        if tag >= REFUSED {
            return Admission::Refuse(Arc::new(Refused(tag)) as StateError);
        }
        let mut seen = self.seen.lock();
        match seen.get(&tag) {
            Some(&at) => Admission::Duplicate {
                base_offset: at,
                next_offset: at + 1,
            },
            None => {
                seen.insert(tag, base);
                Admission::Write
            }
        }
    }

    fn replay(&self, payload: &[u8], first_seq: u64) {
        let mut seen = self.seen.lock();
        for (i, rec) in payload.chunks_exact(16).enumerate() {
            seen.insert(tag_of(rec), first_seq + i as u64);
        }
    }

    fn restore(&self, snapshot: &[u8]) -> Result<(), StateError> {
        self.restores.lock().push(snapshot.len());
        let mut seen = self.seen.lock();
        seen.clear();
        for pair in snapshot.chunks_exact(16) {
            let tag = u64::from_be_bytes(pair[0..8].try_into().expect("8"));
            let at = u64::from_be_bytes(pair[8..16].try_into().expect("8"));
            seen.insert(tag, at);
        }
        Ok(())
    }

    fn snapshot(&self, _now: i64) -> Bytes {
        let seen = self.seen.lock();
        let mut b = BytesMut::with_capacity(seen.len() * 16);
        for (tag, at) in seen.iter() {
            b.put_u64(*tag);
            b.put_u64(*at);
        }
        b.freeze()
    }

    fn tick(&self, _now: i64) {}

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct Node {
    meta: Arc<MetadataStore>,
    bookie: Arc<Bookie>,
    ns: Arc<Namespace>,
    /// The state of the stream's current opening (the factory's last).
    last_state: Arc<Mutex<Option<Arc<Tags>>>>,
}

async fn start(dir: &Path, segment_bytes: u64) -> Node {
    let meta = common::open_meta(dir).await;
    let bookie = common::open_bookie(dir, 1).await;
    let last_state: Arc<Mutex<Option<Arc<Tags>>>> = Arc::default();
    let keep = last_state.clone();
    let stream_state: StreamStateFn = Arc::new(move |_| {
        let s = Arc::new(Tags::default());
        *keep.lock() = Some(s.clone());
        s as Arc<dyn StreamState>
    });
    let ns = Namespace::open(
        meta.clone(),
        Arc::new(LocalBookie(bookie.clone())),
        NamespaceConfig {
            broker_id: NodeId::new(1),
            stamp: common::stamp(),
            tail_cache_bytes: 0,
            stream_config: StreamConfig {
                max_segment_bytes: segment_bytes,
                ..StreamConfig::default()
            }
            .for_every_stream(),
            speculative_read_delay: Some(Duration::from_millis(50)),
            ownership: Default::default(),
            stream_state: Some(stream_state),
            reopen_quarantine: distlog_storage::log::namespace::REOPEN_QUARANTINE,
        },
    )
    .await
    .expect("namespace opens");
    Node {
        meta,
        bookie,
        ns,
        last_state,
    }
}

async fn stop(n: Node) {
    n.ns.shutdown().await.expect("namespace shutdown");
    n.bookie.shutdown();
    n.meta.shutdown().await.expect("metadata shutdown");
}

/// Every record of the stream as (offset, tag), read through the reader
/// (which must never return a control entry).
async fn read_all(ns: &Namespace, s: StreamId) -> Vec<(u64, u64)> {
    let (start, hw) = ns.bounds(s).await.expect("bounds");
    let mut out = Vec::new();
    let mut off = start;
    while off < hw {
        let r = ns.read(s, off, 1 << 20).await.expect("read");
        assert!(!r.entries.is_empty(), "nothing read at {off} below {hw}");
        for e in &r.entries {
            assert!(e.record_count > 0, "a control entry was returned to a reader");
            assert_eq!(e.payload.len(), 16 * e.record_count as usize);
            for (i, rec) in e.payload.chunks_exact(16).enumerate() {
                let at = e.first_seq + i as u64;
                if at >= off {
                    out.push((at, tag_of(rec)));
                }
            }
            off = e.first_seq + u64::from(e.record_count);
        }
    }
    out
}

async fn append(ns: &Namespace, s: StreamId, tag: u64) -> Result<u64, StorageError> {
    ns.append(s, common::record(tag, 0)).await.map(|r| r.base_offset)
}

#[test]
fn duplicates_are_answered_from_the_state_and_survive_reopening_by_replay_and_by_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = common::rt();
    // Small segments: 16 records of 16 bytes fill one, so the stream rolls
    // and later segments start with a snapshot of every tag before them.
    let segment_bytes = 256;
    let stream = rt.block_on(async {
        let n = start(dir.path(), segment_bytes).await;
        let s = common::create_replicated_topic(&n.meta, "tags", (1, 1, 1)).await;
        for tag in 0..10 {
            assert_eq!(append(&n.ns, s, tag).await.expect("append"), tag);
        }
        // A duplicate: the original's offset, nothing written.
        assert_eq!(append(&n.ns, s, 3).await.expect("duplicate"), 3);
        assert_eq!(n.ns.bounds(s).await.expect("bounds").1, 10);
        // A refusal: the state's own error, nothing written.
        match append(&n.ns, s, REFUSED + 1).await {
            Err(StorageError::Refused(e)) => assert_eq!(e.to_string(), "tag 1000001 refused"),
            other => panic!("expected the state's refusal, got {other:?}"),
        }
        assert_eq!(n.ns.bounds(s).await.expect("bounds").1, 10);
        // Reads skip the control entries (each segment starts with one).
        let got = read_all(&n.ns, s).await;
        assert_eq!(got, (0..10).map(|t| (t, t)).collect::<Vec<_>>());
        stop(n).await;
        s
    });
    // Reopen: rebuilt by replay of the last segment after its snapshot.
    rt.block_on(async {
        let n = start(dir.path(), segment_bytes).await;
        assert_eq!(append(&n.ns, stream, 9).await.expect("duplicate after reopen"), 9);
        assert_eq!(append(&n.ns, stream, 10).await.expect("append"), 10);
        // Roll well past the first tags: 60 more records, several segments.
        for tag in 11..70 {
            assert_eq!(append(&n.ns, stream, tag).await.expect("append"), tag);
        }
        let segments = n.meta.read(|m| m.stream(&stream).expect("stream").segments.len());
        assert!(segments >= 4, "only {segments} segments: the stream did not roll");
        stop(n).await;
    });
    // Reopen again: tag 0 lives only in the snapshots now; the rebuild
    // restores the last one and replays what follows it.
    rt.block_on(async {
        let n = start(dir.path(), segment_bytes).await;
        assert_eq!(
            append(&n.ns, stream, 0)
                .await
                .expect("duplicate of the first tag"),
            0
        );
        assert_eq!(
            append(&n.ns, stream, 69)
                .await
                .expect("duplicate of the last tag"),
            69
        );
        assert_eq!(append(&n.ns, stream, 70).await.expect("append"), 70);
        let state = n.last_state.lock().clone().expect("a state was made");
        assert!(
            state.restores.lock().iter().any(|len| *len >= 16 * 50),
            "the rebuild did not restore a snapshot holding the early tags: {:?}",
            state.restores.lock()
        );
        let got = read_all(&n.ns, stream).await;
        assert_eq!(got, (0..71).map(|t| (t, t)).collect::<Vec<_>>());
        // Txid lookups never land on a control entry either.
        let hit =
            n.ns.find_by_txid(stream, 0)
                .await
                .expect("txid lookup")
                .expect("an entry");
        assert!(hit.entry.record_count > 0);
        assert_eq!(hit.entry.first_seq, 0);
        stop(n).await;
    });
}

#[test]
fn a_crash_keeps_the_state_of_every_durable_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stream = {
        let rt = common::rt();
        rt.block_on(async {
            let n = start(dir.path(), 1 << 30).await;
            let s = common::create_replicated_topic(&n.meta, "crash", (1, 1, 1)).await;
            for tag in 0..50 {
                assert_eq!(append(&n.ns, s, tag).await.expect("append"), tag);
            }
            s
        })
        // The runtime is dropped without a shutdown: a crash, nothing sealed.
    };
    let rt = common::rt();
    rt.block_on(async {
        let n = start(dir.path(), 1 << 30).await;
        for tag in [0, 25, 49] {
            assert_eq!(append(&n.ns, stream, tag).await.expect("duplicate"), tag);
        }
        assert_eq!(append(&n.ns, stream, 50).await.expect("append"), 50);
        assert_eq!(n.ns.bounds(stream).await.expect("bounds").1, 51);
        stop(n).await;
    });
}
