//! Push mode: what the controller's own syncers did with the leaves, for
//! the controller's reconcile in the same process (issue #16, writes).
//!
//! The merged statuses of a new root wait a while for its clusters to
//! report (`controller::decide::REPORT_WINDOW`). Counted from the leaf's
//! creation, that window ends too early in a bulk of new roots: a syncer
//! busy with the backlog copies a leaf downstream long after it was
//! created, and the statuses are then written once per cluster instead of
//! once. The syncers in the controller's process record here when they
//! first synced each leaf, and when they last finished any sync (they are
//! alive and making progress), so the window can start at the copy: see
//! [`Copies::evidence`]. Pull-mode syncers (other processes) record
//! nothing, and their clusters keep the windows counted from creation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// A syncer that finished no sync for this long is taken as stalled: its
/// clusters' leaves not synced yet are no evidence of a queue being worked
/// through, and their windows count from the leaves' creation again.
pub const STALLED_AFTER: Duration = Duration::from_secs(20);

/// How long a leaf's first sync is remembered. Longer than any wait it can
/// make (`decide::MAX_COPY_WAIT` and then `decide::MAX_REPORT_WINDOW`, a
/// unit test checks): a leaf synced longer ago than this is older than
/// that too, and forgetting it changes no decision.
pub const RETAIN: Duration = Duration::from_secs(300);

/// What the controller knows of a leaf's cluster having had its chance
/// to report on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyEvidence {
    /// Nothing: no in-process syncer for the cluster (pull mode), a syncer
    /// that stalled, or a leaf its syncer synced without creating the copy
    /// (the copy was there already, or could not be made): the window
    /// counts from the leaf's creation.
    Unknown,
    /// Not synced yet by its syncer, which is alive and working through its
    /// queue: the cluster has not had a chance to report.
    Pending,
    /// Its syncer created the copy at this time.
    CopiedAt(Timestamp),
}

/// A wake-up of the leaf's root, once its syncer synced it.
type Wake = Box<dyn FnOnce() + Send>;

/// The record every push-mode syncer writes and the controller reads.
#[derive(Default)]
pub struct Copies {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per leaf (a hash of its uid): when its syncer first synced it, and
    /// whether that sync created the copy.
    leaves: HashMap<u64, (Timestamp, bool)>,
    /// Per cluster: when its syncer last finished a sync.
    progress: HashMap<String, Timestamp>,
    /// Per leaf (a hash of its uid): whom to wake when it is synced, and
    /// since when.
    waiting: HashMap<u64, (Timestamp, Wake)>,
    /// Records since the last pruning.
    since_pruned: usize,
}

/// Records between prunings of what is older than [`RETAIN`].
const PRUNE_EVERY: usize = 4096;

fn key(uid: &str) -> u64 {
    crate::hash::of(uid)
}

fn older_than(t: Timestamp, now: Timestamp, d: Duration) -> bool {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    t.as_millisecond() < now.as_millisecond().saturating_sub(ms)
}

impl Copies {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `cluster`'s syncer finished a sync (of anything) at `now`.
    pub fn progressed(&self, cluster: &str, now: Timestamp) {
        let mut inner = self.lock();
        match inner.progress.get_mut(cluster) {
            Some(t) => *t = now,
            None => {
                inner.progress.insert(cluster.to_string(), now);
            }
        }
    }

    /// A syncer synced the leaf `uid` at `now` (a sync that ended without
    /// an error), creating its copy (`copied`) or not; only its first sync
    /// counts. Wakes whoever waits for it.
    pub fn synced(&self, uid: &str, copied: bool, now: Timestamp) {
        let k = key(uid);
        let wake = {
            let mut inner = self.lock();
            inner.leaves.entry(k).or_insert((now, copied));
            inner.since_pruned += 1;
            if inner.since_pruned >= PRUNE_EVERY {
                inner.prune(now);
            }
            inner.waiting.remove(&k).map(|(_, wake)| wake)
        };
        if let Some(wake) = wake {
            wake();
        }
    }

    /// What is known of `cluster`'s chance to report on the leaf `uid`
    /// (`None`: a leaf about to be created) at `now`.
    pub fn evidence(&self, cluster: &str, uid: Option<&str>, now: Timestamp) -> CopyEvidence {
        let inner = self.lock();
        if let Some(&(at, copied)) = uid.and_then(|u| inner.leaves.get(&key(u))) {
            return if copied {
                CopyEvidence::CopiedAt(at)
            } else {
                CopyEvidence::Unknown
            };
        }
        match inner.progress.get(cluster) {
            Some(&t) if !older_than(t, now, STALLED_AFTER) => CopyEvidence::Pending,
            _ => CopyEvidence::Unknown,
        }
    }

    /// Calls `wake` once the leaf `uid` is synced (replacing an earlier
    /// wake for it); forgotten after [`RETAIN`].
    pub fn wake_when_synced(&self, uid: &str, now: Timestamp, wake: Wake) {
        let k = key(uid);
        let mut inner = self.lock();
        if inner.leaves.contains_key(&k) {
            drop(inner);
            wake();
            return;
        }
        inner.waiting.insert(k, (now, wake));
    }
}

impl Inner {
    /// Forgets what is older than [`RETAIN`] (and gives the memory back
    /// after a bulk).
    fn prune(&mut self, now: Timestamp) {
        self.since_pruned = 0;
        self.leaves.retain(|_, (t, _)| !older_than(*t, now, RETAIN));
        self.waiting
            .retain(|_, (t, _)| !older_than(*t, now, RETAIN));
        if self.leaves.len() < self.leaves.capacity() / 4 {
            self.leaves.shrink_to_fit();
        }
        if self.waiting.len() < self.waiting.capacity() / 4 {
            self.waiting.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn a_leaf_is_pending_while_its_syncer_progresses_and_copied_once_synced() {
        let copies = Copies::default();
        // No syncer here for the cluster (pull mode): nothing known.
        assert_eq!(
            copies.evidence("east", Some("u1"), at(0)),
            CopyEvidence::Unknown
        );
        copies.progressed("east", at(0));
        assert_eq!(
            copies.evidence("east", Some("u1"), at(1)),
            CopyEvidence::Pending
        );
        assert_eq!(copies.evidence("east", None, at(1)), CopyEvidence::Pending);
        assert_eq!(
            copies.evidence("west", Some("u1"), at(1)),
            CopyEvidence::Unknown
        );
        // Stalled: no sync finished for a while.
        let stalled = i64::try_from(STALLED_AFTER.as_secs()).unwrap() + 1;
        assert_eq!(
            copies.evidence("east", Some("u1"), at(stalled)),
            CopyEvidence::Unknown
        );
        // The first sync counts; a later one does not move the window.
        copies.synced("u1", true, at(5));
        copies.synced("u1", false, at(9));
        assert_eq!(
            copies.evidence("east", Some("u1"), at(10)),
            CopyEvidence::CopiedAt(at(5))
        );
        // A copy that was there already: no evidence of when.
        copies.synced("u2", false, at(5));
        assert_eq!(
            copies.evidence("east", Some("u2"), at(6)),
            CopyEvidence::Unknown
        );
    }

    #[test]
    fn the_waiting_root_is_woken_once_when_its_leaf_is_synced() {
        let copies = Copies::default();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = |w: &Arc<AtomicUsize>| {
            let w = w.clone();
            Box::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            }) as Wake
        };
        copies.wake_when_synced("u1", at(0), counter(&woken));
        copies.wake_when_synced("u1", at(1), counter(&woken));
        assert_eq!(woken.load(Ordering::Relaxed), 0);
        copies.synced("u1", true, at(2));
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        copies.synced("u1", true, at(3));
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        // Synced already: woken at once.
        copies.wake_when_synced("u1", at(4), counter(&woken));
        assert_eq!(woken.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn what_is_older_than_the_retention_is_forgotten() {
        let copies = Copies::default();
        copies.synced("old", true, at(0));
        copies.wake_when_synced("gone", at(0), Box::new(|| {}));
        let later = at(i64::try_from(RETAIN.as_secs()).unwrap() + 1);
        for i in 0..PRUNE_EVERY {
            copies.synced(&format!("u{i}"), true, later);
        }
        let inner = copies.lock();
        assert!(!inner.leaves.contains_key(&key("old")));
        assert!(inner.leaves.contains_key(&key("u0")));
        assert!(inner.waiting.is_empty());
    }
}
