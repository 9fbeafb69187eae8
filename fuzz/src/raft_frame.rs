//! `raft_frame`: the Raft transport's frames (`distlog_metadata::network::tcp`): a 4-byte
//! big-endian length, then the JSON of a `RaftRequest` (what a node's Raft port reads) or a
//! `RaftReply` (what the caller reads back).
//!
//! Input: one selector byte (even: read requests, odd: replies), then a byte stream holding
//! any number of frames, read with the transport's own `read_frame` until it ends or fails.
//!
//! Properties: reading never panics and never allocates ahead of the bytes present; every
//! decoded frame is written back with the transport's `write_frame`, and that frame decodes
//! to the same value (compared by its debug form, the types have no `PartialEq`).

use distlog_metadata::network::tcp::{read_frame, write_frame, RaftReply, RaftRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Frames read from one input at most (inputs are small; this bounds the work anyway).
const MAX_FRAMES: usize = 64;

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
}

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    RT.with(|rt| {
        rt.block_on(async {
            if sel % 2 == 0 {
                read_all::<RaftRequest>(stream).await;
            } else {
                read_all::<RaftReply>(stream).await;
            }
        });
    });
}

async fn read_all<T: Serialize + DeserializeOwned + std::fmt::Debug>(mut stream: &[u8]) {
    for _ in 0..MAX_FRAMES {
        let msg = match read_frame::<_, T>(&mut stream).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return,
        };
        let mut out = Vec::new();
        write_frame(&mut out, &msg)
            .await
            .expect("a decoded frame writes back");
        let mut again: &[u8] = &out;
        let back = read_frame::<_, T>(&mut again)
            .await
            .expect("a written frame reads back")
            .expect("one frame");
        assert!(again.is_empty(), "write_frame wrote exactly one frame");
        assert_eq!(format!("{back:?}"), format!("{msg:?}"), "frame round trip");
    }
}
