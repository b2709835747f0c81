//! What the glbc remembers about its own writes between passes: when each
//! root's records were last accepted by the DNS server, and which status
//! writes the cache has not shown yet.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::RootKey;

#[derive(Debug, Default)]
pub struct Ledger {
    /// When this process last had each root's records accepted.
    last_sent: HashMap<RootKey, Time>,
    /// resourceVersion of a GlobalIngress before our last status write, while
    /// the cache has not caught up with that write.
    written: HashMap<RootKey, String>,
}

impl Ledger {
    /// The DNS server accepted records of `root` at `at`.
    pub fn sent(&mut self, root: RootKey, at: &Time) {
        self.last_sent.insert(root, at.clone());
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

    /// Forgets the roots that are gone.
    pub fn retain(&mut self, live: impl Fn(&RootKey) -> bool) {
        self.last_sent.retain(|k, _| live(k));
        self.written.retain(|k, _| live(k));
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
    fn gone_roots_are_forgotten() {
        let mut ledger = Ledger::default();
        let (a, b) = (RootKey::new("ns", "a"), RootKey::new("ns", "b"));
        let at = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        ledger.sent(a.clone(), &at);
        ledger.sent(b.clone(), &at);
        ledger.retain(|k| *k == a);
        assert!(ledger.last_sent(&a).is_some() && ledger.last_sent(&b).is_none());
    }
}
