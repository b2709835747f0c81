//! A work queue of object keys: a key waits at most once, is worked on by
//! at most one worker at a time, and a key added while it is worked on is
//! worked on again afterwards. Unlike kube-runtime's `Controller`, it also
//! serves keys whose object is gone from every cache (an upstream object
//! that lost its placement label still needs its downstream copy deleted).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The queue; share it in an `Arc`.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
}

struct State<K> {
    order: VecDeque<K>,
    queued: HashSet<K>,
    running: HashSet<K>,
    /// Keys added while running: queued again when done.
    dirty: HashSet<K>,
    /// Consecutive failures per key, for the retry delay.
    failures: HashMap<K, u32>,
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                order: VecDeque::new(),
                queued: HashSet::new(),
                running: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A panic while holding the lock leaves consistent sets behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for `key` to be worked on.
    pub fn add(&self, key: K) {
        let mut state = self.lock();
        if state.running.contains(&key) {
            state.dirty.insert(key);
        } else if state.queued.insert(key.clone()) {
            state.order.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Adds `key` after `delay`, unless `cancel` fires first.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration, cancel: &CancellationToken) {
        let queue = Arc::clone(self);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => queue.add(key),
                () = cancel.cancelled() => {}
            }
        });
    }

    /// The next key to work on; the caller must call [`WorkQueue::done`] with it.
    pub async fn next(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.order.pop_front() {
                    state.queued.remove(&key);
                    state.running.insert(key.clone());
                    let more = !state.order.is_empty();
                    drop(state);
                    if more {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Ends work on `key`: `ok` resets its failure count; a failure returns
    /// how many times in a row it has now failed.
    pub fn done(&self, key: &K, ok: bool) -> u32 {
        let mut state = self.lock();
        state.running.remove(key);
        let failures = if ok {
            state.failures.remove(key);
            0
        } else {
            let n = state.failures.entry(key.clone()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        if state.dirty.remove(key) && state.queued.insert(key.clone()) {
            state.order.push_back(key.clone());
            drop(state);
            self.ready.notify_one();
        }
        failures
    }

    /// Keys waiting (not running).
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The longest a failed key waits before it is tried again (the delay
/// itself is `runtime::backoff(failures, RETRY_CAP)`).
pub const RETRY_CAP: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_waits_once() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, "a");
        assert_eq!(q.next().await, "b");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_running_runs_again_after() {
        let q = WorkQueue::default();
        q.add("a");
        let key = q.next().await;
        q.add("a");
        assert!(q.is_empty(), "not handed out twice at once");
        q.done(&key, true);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test]
    async fn failures_count_until_success() {
        let q = WorkQueue::default();
        q.add("a");
        let k = q.next().await;
        assert_eq!(q.done(&k, false), 1);
        q.add("a");
        let k = q.next().await;
        assert_eq!(q.done(&k, false), 2);
        q.add("a");
        let k = q.next().await;
        assert_eq!(q.done(&k, true), 0);
    }

    #[tokio::test]
    async fn next_waits_for_an_add() {
        let q = Arc::new(WorkQueue::default());
        let waiter = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.add(7);
        assert_eq!(waiter.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn add_after_adds_later_unless_cancelled() {
        let q = Arc::new(WorkQueue::default());
        let cancel = CancellationToken::new();
        q.add_after(1, Duration::from_millis(10), &cancel);
        assert!(q.is_empty());
        let got = tokio::time::timeout(Duration::from_secs(5), q.next()).await;
        assert_eq!(got.ok(), Some(1));

        cancel.cancel();
        q.add_after(2, Duration::from_millis(10), &cancel);
        let got = tokio::time::timeout(Duration::from_millis(200), q.next()).await;
        assert!(got.is_err(), "a cancelled delayed add must not happen");
    }
}
