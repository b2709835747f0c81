//! The apply loop: a pass ([`super::pass`]) on every watch change (after a
//! short debounce that lets a burst of changes become one pass, at least as
//! long as the last pass took to plan), when a resolved hostname changes,
//! and when the pass said the next one is due (a cluster's heartbeat aging
//! past the threshold, a retry, a re-read).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;
use tracing::info;

use super::pass::Reconciler;
use crate::runtime::CancellationToken;

/// Wait this long after a change before a pass, so that a burst of events
/// (a status and a heartbeat, a list of many objects) becomes one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// How long to wait after a change, given how long the last pass took to
/// plan (its own work, not its writes): while changes keep coming (a bulk
/// of new roots), planning takes at most half of the time, and each pass
/// takes in what came during the wait.
fn debounce(last_planning: Duration) -> Duration {
    DEBOUNCE.max(last_planning)
}

/// Runs passes until `shutdown`, once the caches are filled; `notify` is
/// what the watches and the resolver signal.
pub async fn run(mut reconciler: Reconciler, notify: Arc<Notify>, shutdown: CancellationToken) {
    let caches = reconciler.caches();
    info!(
        globalingresses = caches.globals.len(),
        clusters = caches.clusters.len(),
        "caches filled; reconciling"
    );
    loop {
        let wake = tokio::select! {
            _ = shutdown.cancelled() => return,
            wake = reconciler.pass() => wake,
        };
        let took = reconciler.planning();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = notify.notified() => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(debounce(took)) => {}
                }
                // Events that came during the debounce are in this pass.
                let _ = notify.notified().now_or_never();
            }
            _ = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_after_a_change_is_at_least_the_last_pass() {
        assert_eq!(debounce(Duration::from_millis(3)), DEBOUNCE);
        assert_eq!(
            debounce(Duration::from_millis(70)),
            Duration::from_millis(70)
        );
    }
}
