//! The last-add-confirmed (LAC) each ledger's writer piggybacked on its adds,
//! and long-poll waits for it to advance.
//!
//! A tailing reader may only read entries up to the LAC; asking a bookie
//! "tell me when the LAC passes `known`" (DistributedLog's long-poll read of
//! LAC) lets it wait for new data without polling. The bookie learns the LAC
//! from adds: each add carries the writer's LAC at the time it was issued,
//! and it is recorded here once that add is durable.
//!
//! The value is held in memory only: after a restart a ledger's LAC is
//! unknown (`None`) until the next add carries one.

use std::collections::HashMap;
use std::time::Duration;

use distlog_metadata::LedgerId;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Highest piggybacked LAC per ledger, with waiters.
#[derive(Default)]
pub(crate) struct LacTracker {
    ledgers: Mutex<HashMap<LedgerId, watch::Sender<Option<u64>>>>,
}

/// True if `value` is a LAC greater than `known` (any LAC beats `None`).
fn newer(value: Option<u64>, known: Option<u64>) -> bool {
    value.is_some_and(|v| known.is_none_or(|k| v > k))
}

impl LacTracker {
    /// Record that the writer of `ledger` has confirmed every entry up to
    /// `lac`; wakes waiters if that is higher than what was known. Never
    /// moves the LAC backwards. Cheap and non-blocking (group-commit thread).
    pub(crate) fn advance(&self, ledger: LedgerId, lac: u64) {
        let mut ledgers = self.ledgers.lock();
        let tx = ledgers.entry(ledger).or_insert_with(|| watch::Sender::new(None));
        tx.send_if_modified(|cur| {
            let higher = newer(Some(lac), *cur);
            if higher {
                *cur = Some(lac);
            }
            higher
        });
    }

    /// The LAC currently known for `ledger`.
    pub(crate) fn get(&self, ledger: LedgerId) -> Option<u64> {
        self.ledgers.lock().get(&ledger).and_then(|tx| *tx.borrow())
    }

    /// Wait until the LAC of `ledger` is greater than `known`, at most
    /// `wait`; returns the LAC then known (which is `<= known` on timeout).
    /// A ledger not seen yet is waited on like an empty one.
    pub(crate) async fn wait(&self, ledger: LedgerId, known: Option<u64>, wait: Duration) -> Option<u64> {
        let mut rx = {
            let mut ledgers = self.ledgers.lock();
            ledgers
                .entry(ledger)
                .or_insert_with(|| watch::Sender::new(None))
                .subscribe()
        };
        let current = *rx.borrow_and_update();
        if newer(current, known) || wait.is_zero() {
            if current.is_none() {
                self.forget_if_unused(ledger, rx);
            }
            return current;
        }
        let woke = match tokio::time::timeout(wait, rx.wait_for(|v| newer(*v, known))).await {
            Ok(Ok(v)) => Some(*v),
            // Timed out, or the ledger was deleted while waiting.
            Ok(Err(_)) | Err(_) => None,
        };
        let lac = woke.unwrap_or_else(|| *rx.borrow());
        if lac.is_none() {
            self.forget_if_unused(ledger, rx);
        }
        lac
    }

    /// Drop the entry a wait created for a ledger that never got a LAC, once
    /// nobody else waits on it, so polls of unknown ledgers leave nothing.
    fn forget_if_unused(&self, ledger: LedgerId, rx: watch::Receiver<Option<u64>>) {
        drop(rx);
        let mut ledgers = self.ledgers.lock();
        if ledgers
            .get(&ledger)
            .is_some_and(|tx| tx.borrow().is_none() && tx.receiver_count() == 0)
        {
            ledgers.remove(&ledger);
        }
    }

    /// Forget a deleted ledger (its waiters return with the last value).
    pub(crate) fn remove(&self, ledger: LedgerId) {
        self.ledgers.lock().remove(&ledger);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn advance_is_monotonic_and_wakes_waiters() {
        let t = std::sync::Arc::new(LacTracker::default());
        assert_eq!(t.wait(1, None, Duration::ZERO).await, None);
        t.advance(1, 5);
        t.advance(1, 3);
        assert_eq!(t.get(1), Some(5));
        assert_eq!(t.wait(1, None, Duration::from_secs(5)).await, Some(5));
        // Times out with the current value when nothing newer arrives.
        let started = std::time::Instant::now();
        assert_eq!(t.wait(1, Some(5), Duration::from_millis(50)).await, Some(5));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.wait(1, Some(5), Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        t.advance(1, 6);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter wakes before its deadline")
            .expect("waiter task");
        assert_eq!(got, Some(6));
        t.remove(1);
        assert_eq!(t.get(1), None);
    }

    #[tokio::test]
    async fn polls_of_unknown_ledgers_leave_no_state() {
        let t = LacTracker::default();
        assert_eq!(t.wait(9, None, Duration::ZERO).await, None);
        assert_eq!(t.wait(9, Some(3), Duration::from_millis(10)).await, None);
        assert!(t.ledgers.lock().is_empty());
        t.advance(9, 1);
        assert_eq!(t.wait(9, None, Duration::ZERO).await, Some(1));
        assert_eq!(t.ledgers.lock().len(), 1);
    }
}
