//! The in-flight budget of one connection: at most `max_requests` requests
//! and `max_bytes` bytes of request frames between being taken on (read by
//! the server, written by the client) and being answered.
//!
//! Each side has a single taker (the server's reader, the client's writer)
//! that takes shares in arrival/queue order, so waiting for a share never
//! reorders requests and two takers can never deadlock on the two limits.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits on what one connection has in flight.
pub(crate) struct Budget {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
}

/// One request's share of a [`Budget`]; returned when dropped.
pub(crate) struct Share {
    _request: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl Budget {
    /// A budget of `max_requests` requests and `max_bytes` bytes (each at
    /// least 1).
    pub(crate) fn new(max_requests: usize, max_bytes: usize) -> Budget {
        let max_requests = max_requests.clamp(1, Semaphore::MAX_PERMITS);
        let max_bytes = max_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Budget {
            requests: Arc::new(Semaphore::new(max_requests)),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
        }
    }

    /// Bytes a frame of `len` bytes holds: a frame larger than the whole
    /// budget takes all of it (and so travels alone).
    fn cost(&self, len: usize) -> u32 {
        // max_bytes fits u32 (clamped in `new`).
        len.clamp(1, self.max_bytes) as u32
    }

    /// Wait for a share for a frame of `len` bytes. `None` only if the
    /// budget was closed, which never happens while it is alive.
    pub(crate) async fn take(&self, len: usize) -> Option<Share> {
        let request = self.requests.clone().acquire_owned().await.ok()?;
        let bytes = self.bytes.clone().acquire_many_owned(self.cost(len)).await.ok()?;
        Some(Share {
            _request: request,
            _bytes: bytes,
        })
    }

    /// A share for a frame of `len` bytes if one is free right now.
    pub(crate) fn try_take(&self, len: usize) -> Option<Share> {
        let request = self.requests.clone().try_acquire_owned().ok()?;
        let bytes = self.bytes.clone().try_acquire_many_owned(self.cost(len)).ok()?;
        Some(Share {
            _request: request,
            _bytes: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_limits_hold_and_shares_come_back_on_drop() {
        let b = Budget::new(2, 100);
        let s1 = b.try_take(60).expect("fits");
        assert!(b.try_take(60).is_none(), "bytes exhausted");
        let s2 = b.try_take(40).expect("fits exactly");
        assert!(b.try_take(0).is_none(), "requests exhausted");
        drop(s1);
        // A frame larger than the whole budget waits for all of it.
        assert!(b.try_take(1000).is_none());
        drop(s2);
        let big = tokio::time::timeout(std::time::Duration::from_secs(5), b.take(1000))
            .await
            .expect("free budget is granted at once")
            .expect("budget open");
        assert!(b.try_take(1).is_none());
        drop(big);
        assert!(b.try_take(1).is_some());
    }
}
