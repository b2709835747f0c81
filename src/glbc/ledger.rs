//! What the glbc remembers about its own writes between passes: when each
//! root's records were last accepted by the DNS server, which status
//! writes the cache has not shown yet, which statuses were found shown
//! and under what inputs, and how many passes in a row had a write fail.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::RootKey;
use crate::hash::Map;
use crate::runtime;

/// Longest retry delay of failed status or finalizer writes.
const WRITE_RETRY_CAP: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Ledger {
    /// When this process last had each root's records accepted.
    last_sent: Map<RootKey, Time>,
    /// resourceVersion of a GlobalIngress before our last status write, while
    /// the cache has not caught up with that write.
    written: Map<RootKey, String>,
    /// Per root (the hash of its key): the fingerprint of the inputs under
    /// which its status was last found shown. A pass does not compute the
    /// status again while they stay the same (most roots, most passes).
    shown: Map<u64, u64>,
    /// Consecutive passes in which a status or finalizer write failed.
    write_failures: u32,
}

impl Ledger {
    /// The DNS server accepted records of `root` at `at`.
    pub fn sent(&mut self, root: RootKey, at: &Time) {
        // What its status says changes with what the server holds.
        self.shown.remove(&crate::hash::of(&root));
        self.last_sent.insert(root, at.clone());
    }

    /// Whether `root`'s status was found shown under the inputs of
    /// `fingerprint` (and nothing it reads changed since).
    pub fn still_shown(&self, root: &RootKey, fingerprint: u64) -> bool {
        self.shown.get(&crate::hash::of(root)) == Some(&fingerprint)
    }

    /// `root`'s status was found shown under the inputs of `fingerprint`.
    pub fn found_shown(&mut self, root: &RootKey, fingerprint: u64) {
        self.shown.insert(crate::hash::of(root), fingerprint);
    }

    /// `root` is being deleted: nothing of it is kept.
    pub fn forget(&mut self, root: &RootKey) {
        self.shown.remove(&crate::hash::of(root));
        self.last_sent.remove(root);
        self.written.remove(root);
    }

    pub fn last_sent(&self, root: &RootKey) -> Option<&Time> {
        self.last_sent.get(root)
    }

    /// Whether the cache still shows `root` at `rv`, from before our last
    /// status write (so its status must not be judged yet); forgets the
    /// write once the cache has moved on.
    pub fn awaits_cache(&mut self, root: &RootKey, rv: &str) -> bool {
        if self.written.get(root).is_some_and(|w| w == rv) {
            return true;
        }
        self.written.remove(root);
        false
    }

    /// Our status write took `root` from `rv` to `new_rv`.
    pub fn wrote(&mut self, root: RootKey, rv: String, new_rv: &str) {
        if new_rv != rv {
            self.written.insert(root, rv);
        }
    }

    /// Whether every write of a pass went through; if not, the delay
    /// before the pass that retries them.
    pub fn writes_done(&mut self, all_ok: bool) -> Option<Duration> {
        if all_ok {
            self.write_failures = 0;
            return None;
        }
        self.write_failures = self.write_failures.saturating_add(1);
        Some(runtime::backoff(self.write_failures, WRITE_RETRY_CAP))
    }

    /// Forgets the roots that are gone, given the `count` that live and
    /// which they are: only once more roots are remembered than live (a
    /// root is forgotten when its deletion is seen; this catches the rest),
    /// so that a pass does not look up every root for it.
    pub fn retain(&mut self, count: usize, live: impl Fn(&RootKey) -> bool) {
        if self.last_sent.len() > count || self.written.len() > count {
            self.last_sent.retain(|k, _| live(k));
            self.written.retain(|k, _| live(k));
        }
        if self.shown.len() > count {
            // Keyed by hash: rebuilt from the live roots that have one.
            self.shown.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_root_waits_until_the_cache_moves_on() {
        let mut ledger = Ledger::default();
        let root = RootKey::new("ns", "a");
        assert!(!ledger.awaits_cache(&root, "1"));
        ledger.wrote(root.clone(), "1".into(), "2");
        assert!(ledger.awaits_cache(&root, "1"));
        assert!(!ledger.awaits_cache(&root, "2"));
        // Forgotten once seen.
        assert!(!ledger.awaits_cache(&root, "1"));
        // A write that changed nothing is not awaited.
        ledger.wrote(root.clone(), "3".into(), "3");
        assert!(!ledger.awaits_cache(&root, "3"));
    }

    #[test]
    fn failed_writes_are_retried_with_backoff() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.writes_done(true), None);
        assert_eq!(ledger.writes_done(false), Some(Duration::from_millis(250)));
        assert_eq!(ledger.writes_done(false), Some(Duration::from_millis(500)));
        assert_eq!(ledger.writes_done(false), Some(WRITE_RETRY_CAP));
        assert_eq!(ledger.writes_done(false), Some(WRITE_RETRY_CAP));
        assert_eq!(ledger.writes_done(true), None);
        assert_eq!(ledger.writes_done(false), Some(Duration::from_millis(250)));
    }

    #[test]
    fn gone_roots_are_forgotten() {
        let mut ledger = Ledger::default();
        let (a, b) = (RootKey::new("ns", "a"), RootKey::new("ns", "b"));
        let at = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        ledger.sent(a.clone(), &at);
        ledger.sent(b.clone(), &at);
        // As many remembered as live: nothing is looked up.
        ledger.retain(2, |k| *k == a);
        assert!(ledger.last_sent(&b).is_some());
        ledger.retain(1, |k| *k == a);
        assert!(ledger.last_sent(&a).is_some() && ledger.last_sent(&b).is_none());
        ledger.forget(&a);
        assert!(ledger.last_sent(&a).is_none());
    }

    #[test]
    fn a_shown_status_holds_while_its_inputs_stay_and_its_records_are_not_sent() {
        let mut ledger = Ledger::default();
        let (a, b) = (RootKey::new("ns", "a"), RootKey::new("ns", "b"));
        assert!(!ledger.still_shown(&a, 1));
        ledger.found_shown(&a, 1);
        ledger.found_shown(&b, 1);
        assert!(ledger.still_shown(&a, 1));
        assert!(!ledger.still_shown(&a, 2), "other inputs");
        // Records of `a` accepted: what its status says may change.
        ledger.sent(a.clone(), &Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(!ledger.still_shown(&a, 1));
        assert!(ledger.still_shown(&b, 1));
        ledger.forget(&b);
        assert!(!ledger.still_shown(&b, 1));
    }
}
