//! The leaf statuses a syncer wrote up whose new version its upstream
//! cache has not shown yet (pure but for a lock).
//!
//! The syncer compares a leaf's status with its copy's against its cache
//! of the leaf. Right after a status write that cache is behind: when the
//! copy's status changes twice in a row (a Gateway that a stand-in or an
//! implementation first reports with no route attached, then with its
//! route), the watch event of the first write wakes the leaf while the
//! cache still shows the first status, and the second status was written
//! again, word for word (issue #16: about one in seven Gateway status
//! writes of the single-root bench, 19 of 131 in one run). A write's answer carries the leaf's
//! new resourceVersion; while the cache shows an older one, the same
//! status is not written again. A different status is: the cluster's truth
//! is never held back, only repeated writes of it are.
//!
//! resourceVersions are compared as numbers (what an etcd-backed API server
//! hands out); one that is not a number never counts as behind, so the
//! status is then compared and written as before.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

/// What was written last to each leaf (by upstream name) and the version
/// the write answered, until the cache shows that version.
#[derive(Default)]
pub struct StatusSent(Mutex<HashMap<String, Sent>>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    version: u64,
    digest: u64,
}

/// A status body's digest (its compact JSON, hashed).
fn digest(body: &Value) -> u64 {
    crate::hash::of(&body.to_string())
}

fn number(version: Option<&str>) -> Option<u64> {
    version?.parse().ok()
}

impl StatusSent {
    /// Whether writing `body` to the leaf `name`, whose cached version is
    /// `cached`, would repeat a write the cache does not show yet. Once the
    /// cache shows that write (or a later version), the record goes.
    pub fn repeats(&self, name: &str, cached: Option<&str>, body: Option<&Value>) -> bool {
        let mut sent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(last) = sent.get(name).copied() else {
            return false;
        };
        match number(cached) {
            Some(version) if version < last.version => {
                body.is_some_and(|b| digest(b) == last.digest)
            }
            _ => {
                sent.remove(name);
                false
            }
        }
    }

    /// `body` was written to the leaf `name`, and the answer's version is
    /// `answered`.
    pub fn sent(&self, name: &str, answered: Option<&str>, body: &Value) {
        let mut sent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match number(answered) {
            Some(version) => {
                sent.insert(
                    name.to_string(),
                    Sent {
                        version,
                        digest: digest(body),
                    },
                );
            }
            None => {
                sent.remove(name);
            }
        }
    }

    /// The leaf `name` is gone or no longer synced: nothing to remember.
    pub fn forget(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// How many writes the cache does not show yet.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache shows every write.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status(routes: i64) -> Value {
        json!({"status": {"listeners": [{"name": "http", "attachedRoutes": routes}]}})
    }

    #[test]
    fn a_write_the_cache_does_not_show_is_not_repeated() {
        let sent = StatusSent::default();
        let (first, second) = (status(0), status(1));
        assert!(!sent.repeats("g", Some("10"), Some(&first)));
        sent.sent("g", Some("11"), &first);
        // The second status, over a cache still at the version before.
        assert!(!sent.repeats("g", Some("10"), Some(&second)));
        sent.sent("g", Some("12"), &second);
        // The watch brings the first write: the cache is still behind.
        assert!(sent.repeats("g", Some("11"), Some(&second)));
        // A status that differs from the last write is written.
        assert!(!sent.repeats("g", Some("11"), Some(&first)));
        assert_eq!(sent.len(), 1);
        // The cache shows the second write: compared as usual again.
        assert!(!sent.repeats("g", Some("12"), Some(&second)));
        assert!(sent.is_empty());
    }

    #[test]
    fn a_later_version_or_an_unknown_one_clears_the_record() {
        let sent = StatusSent::default();
        sent.sent("g", Some("12"), &status(1));
        // Someone else wrote after the syncer: its status may differ.
        assert!(!sent.repeats("g", Some("15"), Some(&status(1))));
        assert!(sent.is_empty());
        sent.sent("g", Some("12"), &status(1));
        assert!(!sent.repeats("g", None, Some(&status(1))));
        assert!(!sent.repeats("g", Some("x"), Some(&status(1))));
        assert!(sent.is_empty());
        // An answer without a number records nothing.
        sent.sent("g", Some("abc"), &status(1));
        assert!(sent.is_empty());
    }

    #[test]
    fn nothing_to_write_still_settles_and_forget_forgets() {
        let sent = StatusSent::default();
        sent.sent("g", Some("12"), &status(1));
        sent.sent("h", Some("13"), &status(1));
        assert!(
            !sent.repeats("g", Some("11"), None),
            "no body: nothing to repeat"
        );
        assert_eq!(sent.len(), 2, "still behind: kept");
        assert!(!sent.repeats("g", Some("12"), None));
        sent.forget("h");
        assert!(sent.is_empty());
    }
}
