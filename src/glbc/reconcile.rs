//! The apply loop: a pass ([`super::pass`]) on every watch change, when a
//! resolved hostname changes, and when the pass said the next one is due (a
//! cluster's heartbeat aging past the threshold, a retry, a re-read). After
//! a change, a pass starts [`SETTLE`] later (the events of one write burst
//! join it), but no sooner than [`DEBOUNCE`] — or twice as long as the last
//! pass took to plan — after the last one started: a quiet glbc answers a
//! change at once, a busy one takes in a burst of changes per pass.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::info;

use super::pass::Reconciler;
use crate::runtime::CancellationToken;

/// The shortest time between the starts of two passes, so that a burst of
/// events (a status and a heartbeat, a list of many objects) becomes one
/// pass.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// How long a pass waits after the change that wakes it, at least: the
/// watch events of one write burst (the objects of one list, a controller's
/// writes of one reconcile) come within it.
const SETTLE: Duration = Duration::from_millis(2);

/// The shortest time between the starts of two passes, given how long the
/// last one took to plan (its own work, not its writes): while changes keep
/// coming (a bulk of new roots), planning takes at most half of the time,
/// and each pass takes in what came meanwhile.
fn debounce(last_planning: Duration) -> Duration {
    DEBOUNCE.max(last_planning * 2)
}

/// When the pass that a change at `changed` wakes starts: [`SETTLE`]
/// after it, and not before [`debounce`] after the last pass's start.
fn next_pass(changed: Instant, last_start: Instant, last_planning: Duration) -> Instant {
    (changed + SETTLE).max(last_start + debounce(last_planning))
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
        let started = Instant::now();
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
                    _ = tokio::time::sleep_until(next_pass(Instant::now(), started, took)) => {}
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
    fn the_wait_after_a_change_is_at_least_twice_the_last_planning() {
        assert_eq!(debounce(Duration::from_millis(3)), DEBOUNCE);
        // A pass that planned for 70 ms: the next starts no sooner than
        // 140 ms after it started, so that planning takes at most half of
        // the time.
        assert_eq!(
            debounce(Duration::from_millis(70)),
            Duration::from_millis(140)
        );
    }

    #[test]
    fn a_quiet_glbc_passes_at_once_a_busy_one_once_per_debounce() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        // The last pass started long ago: the change's pass comes at once.
        assert_eq!(next_pass(t0 + ms(500), t0, ms(3)), t0 + ms(500) + SETTLE);
        // It started 5 ms before the change: no sooner than the debounce
        // after that start.
        assert_eq!(next_pass(t0 + ms(5), t0, ms(3)), t0 + DEBOUNCE);
        // A pass that planned for 70 ms: the next starts 140 ms after it.
        assert_eq!(next_pass(t0 + ms(150), t0, ms(70)), t0 + ms(150) + SETTLE);
        assert_eq!(next_pass(t0 + ms(80), t0, ms(70)), t0 + ms(140));
    }
}
