//! The roots whose cleanup finalizer this controller added moments ago,
//! while its cache may not show it yet.
//!
//! The controller adds the finalizer with a JSON patch that first tests
//! the finalizers the cached object shows (`runtime::finalizers`), and
//! goes on with the patched object; its cache shows the finalizer only
//! when the watch brings it. A root reconciled again before then — a
//! Gateway woken by its new HTTPRoute, a route woken by its parent
//! Gateway's changes: the Gateway API kinds wake each other — would send
//! the same patch from the stale copy, the server would refuse it (422:
//! the test fails, the finalizer is there), and the reconcile would fail
//! and be retried. Those doomed round trips sat in the path of a new
//! Gateway + HTTPRoute pair (one or two of them in a third of the pairs of
//! a bench run). Remembering the roots whose finalizer is on its way lets
//! such a reconcile wait for the watch instead, which wakes it anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an added finalizer is awaited in the cache before a reconcile
/// adds it again (a watch that lost the event relists well within it).
pub const AWAIT_FINALIZER: Duration = Duration::from_secs(10);

/// Roots (by uid) whose cleanup finalizer was added, and when.
#[derive(Default)]
pub struct FinalizersSent(Mutex<HashMap<String, Instant>>);

impl FinalizersSent {
    /// Notes that the finalizer of root `uid` was added at `at`.
    pub fn added(&self, uid: &str, at: Instant) {
        let mut sent = self.lock();
        sent.retain(|_, t| at.saturating_duration_since(*t) < AWAIT_FINALIZER);
        sent.insert(uid.to_string(), at);
    }

    /// Whether the finalizer of root `uid` was added less than
    /// [`AWAIT_FINALIZER`] before `now` (the cache is behind: wait for it).
    pub fn on_its_way(&self, uid: &str, now: Instant) -> bool {
        self.lock()
            .get(uid)
            .is_some_and(|t| now.saturating_duration_since(*t) < AWAIT_FINALIZER)
    }

    /// The cache shows root `uid`'s finalizer (or the root is gone).
    pub fn seen(&self, uid: &str) {
        let mut sent = self.lock();
        if !sent.is_empty() {
            sent.remove(uid);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_finalizer_is_awaited_until_seen_or_for_a_while() {
        let sent = FinalizersSent::default();
        let t0 = Instant::now();
        assert!(!sent.on_its_way("a", t0));
        sent.added("a", t0);
        assert!(sent.on_its_way("a", t0 + Duration::from_millis(300)));
        assert!(!sent.on_its_way("b", t0));
        // Not for ever: a lost watch event must not hold the root.
        assert!(!sent.on_its_way("a", t0 + AWAIT_FINALIZER));
        sent.seen("a");
        assert!(!sent.on_its_way("a", t0));
        // Old entries go when others are added.
        sent.added("b", t0);
        sent.added("c", t0 + AWAIT_FINALIZER);
        assert_eq!(sent.lock().len(), 1);
    }
}
