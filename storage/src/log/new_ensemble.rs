//! Choosing the ensemble of a new segment, and checking it can take writes
//! before the segment is recorded.
//!
//! Placement ([`super::bookies::BookieSet::place`]) goes by leases, and a
//! lease outlives its node by up to the session timeout. A ledger placed on
//! a dead bookie is worse than no ledger: its first entries land on the
//! live members of their write sets only, and recovering it (which must not
//! seal an entry on fewer than `Qa` bookies unless it was confirmed) then
//! waits for the dead bookie. So every member of a chosen ensemble is
//! *probed* (asked for the new ledger's info, a cheap in-memory answer)
//! before the segment is recorded:
//!
//! * a healthy placement with an unreachable member is placed again
//!   without it (and the writer suspects it for a while);
//! * when no healthy ensemble of `E` reachable bookies exists, a degraded
//!   one (some members down) is used only if every write set still has `Qa`
//!   reachable members — so every entry can be confirmed. Without striping
//!   that is "`Qa` of the `E` bookies reachable"; with striping (E > Qw) a
//!   single down member already leaves its write sets short when
//!   `Qw = Qa`, and the stream waits (retriably) for enough bookies instead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use distlog_metadata::{LedgerId, NodeId};
use tracing::warn;

use super::bookies::BookieSet;
use crate::error::{Result, StorageError};
use crate::ledger::handle::Ensemble;

/// How long a probed bookie may take to answer before it counts as
/// unreachable (a refused connection fails at once).
pub(crate) const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Which members of `ensemble` answer a probe within [`PROBE_WAIT`], in
/// ensemble order.
async fn probe(ensemble: &Ensemble, ledger: LedgerId) -> Vec<bool> {
    let asks = ensemble.bookies.iter().map(|b| async move {
        matches!(
            tokio::time::timeout(PROBE_WAIT, b.ledger_info(ledger)).await,
            Ok(Ok(_))
        )
    });
    futures::future::join_all(asks).await
}

/// The bookie ids and clients of a new segment's ledger (E/Qw/Qa as
/// given, already clamped to `E >= Qw >= Qa`), checked by probing (see the
/// module docs). Bookies in `suspects` (recent failures, with when) are
/// avoided while enough others exist; unreachable ones found here are
/// added to it. Fails with the retriable `NotEnoughBookies` when no
/// ensemble can confirm every entry.
pub(crate) async fn choose(
    bookies: &BookieSet,
    (e, qw, qa): (usize, usize, usize),
    ledger: LedgerId,
    suspects: &mut HashMap<NodeId, Instant>,
) -> Result<(Vec<NodeId>, Ensemble, bool)> {
    let mut unreachable: Vec<NodeId> = Vec::new();
    let healthy_err = loop {
        let avoid: Vec<NodeId> = suspects.keys().chain(&unreachable).copied().collect();
        // Avoid recent failures, unless too few others exist.
        let placed = match bookies.place(e, ledger, &avoid) {
            Err(_) if avoid.len() > unreachable.len() => bookies.place(e, ledger, &unreachable),
            other => other,
        };
        let ids = match placed {
            Ok(ids) => ids,
            Err(err) => break err,
        };
        let ensemble = bookies.ensemble_of(&ids, qw, qa).await?;
        let reachable = probe(&ensemble, ledger).await;
        if reachable.iter().all(|r| *r) {
            return Ok((ids, ensemble, false));
        }
        let now = Instant::now();
        for (id, _) in ids.iter().zip(&reachable).filter(|(_, r)| !**r) {
            warn!(
                bookie = id.get(),
                ledger, "a bookie placed for a new segment does not answer; placing again without it"
            );
            unreachable.push(*id);
            suspects.insert(*id, now);
        }
    };
    let ids = bookies
        .place_degraded(e, qa, ledger)
        .map_err(|_| healthy_err.duplicate())?;
    let ensemble = bookies.ensemble_of(&ids, qw, qa).await?;
    let reachable = probe(&ensemble, ledger).await;
    if !ensemble.covers_every_write_set(qa, |i| reachable[i]) {
        let up: Vec<NodeId> = ids
            .iter()
            .zip(&reachable)
            .filter(|(_, r)| **r)
            .map(|(id, _)| *id)
            .collect();
        return Err(StorageError::NotEnoughBookies(format!(
            "no ensemble of {e} bookies can confirm every entry: degraded ensemble {ids:?} has {up:?} \
             reachable, and every write set of {qw} needs {qa} of them ({healthy_err})"
        )));
    }
    Ok((ids, ensemble, true))
}
