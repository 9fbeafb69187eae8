//! `bookie_wire`: the bookie protocol's strict decoders and encoders
//! (`distlog_storage::bookie_net::protocol`) and the bookie serving decoded requests.
//!
//! Input: one selector byte, then one frame body (the bytes after the 4-byte length prefix).
//! An even selector reads the body as a request, an odd one as a response.
//!
//! Properties:
//! - neither decoder panics;
//! - a request the server decodes re-encodes (`encode_request`, the client's encoder) to exactly
//!   the same bytes; an accepted `Ok` response re-encodes to exactly the same bytes; an error
//!   response re-encodes to a frame that decodes to the same outcome (error frames carry unused
//!   fields, which re-encoding zeroes, so the check is one normalisation later);
//! - a decoded request is served as `BookieServer` serves it (same calls on the same
//!   `BookieClient`, here a `LocalBookie` in a scratch directory), and its answer, encoded by
//!   the server's `encode_response`, decodes at the client to the same op, id and outcome kind.
//!   For the bookie's sake the ledger id is folded into 1..=8 and `ReadLac` waits are dropped
//!   (the decoded request itself is checked unmodified above). The bookie is re-created in a
//!   fresh directory every [`RESET_EVERY`] inputs, so its files stay small.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use distlog_metadata::NodeId;
use distlog_storage::bookie::{Bookie, BookieConfig, LocalBookie};
use distlog_storage::bookie_net::protocol::{
    decode_request, decode_response, encode_request, encode_response, Frame, Request, Response,
    DEFAULT_MAX_FRAME, LEN_PREFIX,
};
use distlog_storage::ledger::BookieClient;

/// Inputs served by one bookie before it is replaced by a fresh one.
pub const RESET_EVERY: u64 = 100_000;

struct State {
    rt: tokio::runtime::Runtime,
    bookie: Arc<Bookie>,
    dir: PathBuf,
    served: u64,
}

impl State {
    fn open() -> (Arc<Bookie>, PathBuf) {
        let dir = crate::scratch::dir("bookie");
        let bookie = Bookie::open(BookieConfig {
            dir: dir.clone(),
            bookie_id: NodeId::new(1),
        })
        .expect("open a bookie in the scratch directory");
        (bookie, dir)
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn joined(frame: &Frame) -> Bytes {
    let mut b = BytesMut::with_capacity(frame.len);
    for c in &frame.chunks {
        b.extend_from_slice(c);
    }
    assert_eq!(b.len(), frame.len, "frame length matches its chunks");
    let prefix = u32::from_be_bytes(b[..LEN_PREFIX].try_into().expect("prefix"));
    assert_eq!(
        prefix as usize,
        frame.len - LEN_PREFIX,
        "length prefix matches the body"
    );
    b.freeze().split_off(LEN_PREFIX)
}

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    if sel % 2 == 1 {
        check_response(body);
    } else {
        check_request(body);
    }
}

fn check_response(body: Bytes) {
    let Ok((op, id, outcome)) = decode_response(body.clone()) else {
        return;
    };
    let encoded = joined(&encode_response(id, op, &outcome, DEFAULT_MAX_FRAME));
    let (op2, id2, outcome2) = decode_response(encoded.clone()).expect("a re-encoded response decodes");
    assert_eq!((op2, id2), (op, id));
    match (&outcome, &outcome2) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "Ok response survives re-encoding");
            assert_eq!(encoded, body, "Ok response re-encodes byte for byte");
        }
        (Err(_), Err(_)) => {
            let again = joined(&encode_response(id2, op2, &outcome2, DEFAULT_MAX_FRAME));
            assert_eq!(
                again, encoded,
                "error response encoding is a fixpoint after one round"
            );
        }
        _ => panic!("response outcome changed kind on re-encoding: {outcome:?} vs {outcome2:?}"),
    }
}

fn check_request(body: Bytes) {
    let Ok((id, req)) = decode_request(body.clone()) else {
        return;
    };
    let encoded = encode_request(id, &req, DEFAULT_MAX_FRAME).expect("a decoded request re-encodes");
    assert_eq!(joined(&encoded), body, "request re-encodes byte for byte");
    serve(id, req);
}

fn serve(id: u64, req: Request) {
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_some_and(|s| s.served >= RESET_EVERY) {
            if let Some(old) = slot.take() {
                old.bookie.shutdown();
                crate::scratch::remove(&old.dir);
                drop(old.rt);
            }
        }
        let state = slot.get_or_insert_with(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let (bookie, dir) = State::open();
            State {
                rt,
                bookie,
                dir,
                served: 0,
            }
        });
        state.served += 1;
        let client = LocalBookie(state.bookie.clone());
        let op = req.op();
        let fold = |l: u64| l % 8 + 1;
        let result: distlog_storage::Result<Response> = state.rt.block_on(async {
            match req {
                Request::Add(mut add) => {
                    add.ledger_id = fold(add.ledger_id);
                    client.add_entry(add).await.map(|()| Response::Added)
                }
                Request::Read {
                    ledger,
                    first,
                    last,
                    max_bytes,
                } => client
                    .read_entries(
                        fold(ledger),
                        first,
                        last,
                        (max_bytes as usize).min(DEFAULT_MAX_FRAME / 2),
                    )
                    .await
                    .map(Response::Entries),
                Request::EntryForSeq { ledger, seq } => {
                    client.entry_for_seq(fold(ledger), seq).await.map(Response::Row)
                }
                Request::EntryForTxid { ledger, txid } => {
                    client.entry_for_txid(fold(ledger), txid).await.map(Response::Row)
                }
                Request::LastEntry { ledger } => client.last_entry(fold(ledger)).await.map(Response::Row),
                Request::Fence { ledger } => client.fence(fold(ledger)).await.map(Response::Row),
                Request::Delete { ledger } => client.delete(fold(ledger)).await.map(|()| Response::Deleted),
                Request::ReadLac { ledger, known, .. } => client
                    .read_lac(fold(ledger), known, Duration::ZERO)
                    .await
                    .map(Response::Lac),
                Request::LedgerInfo { ledger } => client.ledger_info(fold(ledger)).await.map(Response::Info),
            }
        });
        let answer = joined(&encode_response(id, op, &result, DEFAULT_MAX_FRAME));
        let (op2, id2, outcome) = decode_response(answer).expect("the server's answer decodes at the client");
        assert_eq!((op2, id2), (op, id), "answer names its request");
        match (&result, &outcome) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "answer decodes to what was served"),
            (Err(_), Err(_)) => {}
            _ => panic!("answer changed kind on the wire: {result:?} vs {outcome:?}"),
        }
    });
}
