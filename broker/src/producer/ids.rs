//! Producer ids, handed out from blocks that the metadata store allocates
//! (KIP-730): one Raft write per [`BLOCK_SIZE`] producers, not one per
//! producer, and the next block is fetched in the background before the
//! current one runs out. Ids are unique across the cluster and never
//! reused; a block not used up when a node stops is simply skipped.

use std::sync::Arc;

use distlog_metadata::{MetadataError, MetadataStore};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// Producer ids per block (Kafka's block size too).
pub const BLOCK_SIZE: u64 = 1000;

/// This node's current block of producer ids.
pub struct ProducerIdBlocks {
    meta: Arc<MetadataStore>,
    block: Mutex<Block>,
}

struct Block {
    next: u64,
    end: u64,
    prefetch: Option<JoinHandle<Result<u64, MetadataError>>>,
}

impl ProducerIdBlocks {
    /// No block yet: the first call allocates one.
    pub fn new(meta: Arc<MetadataStore>) -> Self {
        ProducerIdBlocks {
            meta,
            block: Mutex::new(Block {
                next: 0,
                end: 0,
                prefetch: None,
            }),
        }
    }

    /// A fresh producer id. Fails only when no block can be had from the
    /// metadata store (no quorum, or the id space is exhausted).
    pub async fn next_id(&self) -> Result<i64, MetadataError> {
        let mut b = self.block.lock().await;
        if b.next >= b.end {
            let first = match b.prefetch.take() {
                Some(pending) => match pending.await {
                    Ok(Ok(first)) => first,
                    _ => self.meta.allocate_producer_ids(BLOCK_SIZE).await?,
                },
                None => self.meta.allocate_producer_ids(BLOCK_SIZE).await?,
            };
            b.next = first;
            b.end = first + BLOCK_SIZE;
        }
        let id = i64::try_from(b.next)
            .map_err(|_| MetadataError::Storage("the producer id space is exhausted".into()))?;
        b.next += 1;
        if b.prefetch.is_none() && b.end - b.next <= BLOCK_SIZE / 10 {
            let meta = self.meta.clone();
            b.prefetch = Some(tokio::spawn(async move {
                meta.allocate_producer_ids(BLOCK_SIZE).await
            }));
        }
        Ok(id)
    }
}
