//! What the controller remembers between reconciles, beyond what the
//! caches show: per root (by uid) the condition states its Events announced,
//! the clusters it was last placed on, whether its convergence was
//! measured, and its consecutive failures; per dependency its consecutive
//! failures and the hash of the copies last written from which version of
//! it; the cluster namespaces known to exist, and those whose Cluster this
//! controller saw go. A root is forgotten in one call, [`Memory::forget`],
//! when it goes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::dependencies::DepKey;

/// What is remembered of one root: hashes and flags, not copies of the
/// strings they stand for. A controller keeps one per root for as long as
/// the root lives (10,000 roots: 10,000 of these), and all it ever asks is
/// "the same as last time?"; a 64-bit hash answers that, and a B-tree of
/// three strings per condition (its first node alone room for eleven
/// entries) cost about 1 KiB per root.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RootMemory {
    /// By condition type: the hash of the state (status, reason, message)
    /// last announced by an Event. Until the cache shows our GlobalIngress
    /// status write, every reconcile would announce the same change again.
    /// The types are the few texts every root shares ([`Memory::condition_type`]),
    /// in a slice without spare room (a vector of two kept room for four).
    announced: Box<[(Arc<str>, u64)]>,
    /// The hash of the clusters it was placed on at its last reconcile.
    placed: Option<u64>,
    /// Whether its convergence time was recorded.
    converged: bool,
    /// Consecutive failed reconciles.
    failures: u32,
    /// When a reconcile first saw some of its clusters report and others
    /// not yet (`decide::REPORT_WINDOW`).
    partial_since: Option<k8s_openapi::jiff::Timestamp>,
}

/// The controller's memory; every method takes a lock briefly.
#[derive(Default)]
pub struct Memory {
    /// By the 64-bit hash of the root's uid ([`root_key`]): the uid's own
    /// text would be one allocation more per root, and two uids of 10,000
    /// share a hash with a chance of about 10^-11 (the cost: an Event
    /// not sent).
    roots: Mutex<HashMap<u64, RootMemory>>,
    /// The condition types announced so far, one text each.
    condition_types: Mutex<HashSet<Arc<str>>>,
    dependency_failures: Mutex<HashMap<DepKey, u32>>,
    /// By (namespace, name): consecutive failures to delete an orphan GlobalIngress.
    global_failures: Mutex<HashMap<(String, String), u32>>,
    /// By dependency: (resourceVersion of the user's object, hash of its copies).
    copied: Mutex<HashMap<DepKey, (String, String)>>,
    /// Cluster namespaces known to exist, labelled for their Cluster.
    ensured: Mutex<HashSet<String>>,
    /// Cluster namespaces whose Cluster this controller saw deleted.
    departed: Mutex<HashSet<String>>,
    /// By Cluster uid: the refusal of its kubeconfigSecretRef last announced.
    refused: Mutex<HashMap<String, String>>,
    /// By written object (and part): the hash of the body last written and when.
    written: Mutex<HashMap<String, (u64, std::time::Instant)>>,
    /// How long recent new roots took until every cluster reported.
    slowest: Mutex<Slowest>,
}

/// How long [`Slowest`] remembers: between one and two of these.
const RECENT: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest of the durations observed over the last one to two
/// [`RECENT`] periods (two buckets: the current one and the one before).
#[derive(Default)]
struct Slowest {
    start: Option<std::time::Instant>,
    current: std::time::Duration,
    previous: std::time::Duration,
}

impl Slowest {
    fn roll(&mut self, at: std::time::Instant) {
        let Some(start) = self.start else {
            self.start = Some(at);
            return;
        };
        let age = at.saturating_duration_since(start);
        if age >= RECENT {
            self.previous = if age >= 2 * RECENT {
                std::time::Duration::ZERO
            } else {
                self.current
            };
            self.current = std::time::Duration::ZERO;
            self.start = Some(at);
        }
    }

    fn observe(&mut self, at: std::time::Instant, took: std::time::Duration) {
        self.roll(at);
        self.current = self.current.max(took);
    }

    fn get(&mut self, at: std::time::Instant) -> Option<std::time::Duration> {
        self.roll(at);
        Some(self.current.max(self.previous)).filter(|d| !d.is_zero())
    }
}

/// How long a write is remembered: an identical one meanwhile is not sent
/// again (the cache has not shown the first yet).
pub const WRITTEN_MEMORY: std::time::Duration = std::time::Duration::from_secs(5);

/// Fields of a body that say when something changed, not what: the hash of
/// a write leaves them out.
const TIME_FIELDS: [&str; 2] = ["lastTransitionTime", "lastChangeTime"];

/// The hash of a write's body, without its times ([`TIME_FIELDS`]). A
/// reconcile that runs before the cache shows the controller's last status
/// write computes the same status again from the older one, stamped with
/// a later time wherever it sees a change; sending it would write the same
/// content twice (seen in a bulk's debug logs: second GlobalIngress status
/// writes within 100 ms of the first, their bodies differing). The times
/// of the write already sent are the right ones: they are the earlier.
pub fn body_hash(body: &serde_json::Value) -> u64 {
    use std::hash::{Hash, Hasher};
    fn feed(value: &serde_json::Value, h: &mut std::hash::DefaultHasher) {
        use serde_json::Value;
        match value {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => (2u8, n).hash(h),
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(items) => {
                (4u8, items.len()).hash(h);
                items.iter().for_each(|v| feed(v, h));
            }
            Value::Object(fields) => {
                let kept = || {
                    fields
                        .iter()
                        .filter(|(k, _)| !TIME_FIELDS.contains(&k.as_str()))
                };
                (5u8, kept().count()).hash(h);
                for (k, v) in kept() {
                    k.hash(h);
                    feed(v, h);
                }
            }
        }
    }
    let mut h = std::hash::DefaultHasher::new();
    feed(body, &mut h);
    h.finish()
}

/// The key of root `uid` in [`Memory`]'s map of roots.
fn root_key(uid: &str) -> u64 {
    crate::hash::of(uid)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves at worst a stale entry.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Memory {
    /// Whether `condition` of root `uid` differs from what was last
    /// announced for it, remembering it: an Event is due only then.
    pub fn announce(&self, uid: &str, condition: &Condition) -> bool {
        let state = crate::hash::of(&(
            condition.status.as_str(),
            condition.reason.as_str(),
            condition.message.as_str(),
        ));
        let type_ = self.condition_type(&condition.type_);
        let mut roots = lock(&self.roots);
        let announced = &mut roots.entry(root_key(uid)).or_default().announced;
        match announced.iter_mut().find(|(t, _)| *t == type_) {
            Some((_, h)) => std::mem::replace(h, state) != state,
            None => {
                let mut types = std::mem::take(announced).into_vec();
                types.push((type_, state));
                *announced = types.into_boxed_slice();
                true
            }
        }
    }

    /// The one shared text of condition type `type_`.
    fn condition_type(&self, type_: &str) -> Arc<str> {
        let mut types = lock(&self.condition_types);
        match types.get(type_) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(type_);
                types.insert(shared.clone());
                shared
            }
        }
    }

    /// Forgets what was announced for root `uid` under condition types
    /// starting with `prefix` but for `keep` (problems that went: if one
    /// comes back, it is announced again).
    pub fn retain_announced(&self, uid: &str, prefix: &str, keep: &[String]) {
        if let Some(memory) = lock(&self.roots).get_mut(&root_key(uid)) {
            let mut announced = std::mem::take(&mut memory.announced).into_vec();
            announced.retain(|(type_, _)| {
                !type_.starts_with(prefix) || keep.iter().any(|k| **k == **type_)
            });
            memory.announced = announced.into_boxed_slice();
        }
    }

    /// Records that root `uid` is placed on `targets`; whether that differs
    /// from its previous placement (false at the first).
    pub fn moved(&self, uid: &str, targets: &[String]) -> bool {
        lock(&self.roots)
            .entry(root_key(uid))
            .or_default()
            .placed
            .replace(crate::hash::of(targets))
            .is_some_and(|before| before != crate::hash::of(targets))
    }

    /// Records that root `uid` converged; true only the first time.
    pub fn first_convergence(&self, uid: &str) -> bool {
        let mut roots = lock(&self.roots);
        let memory = roots.entry(root_key(uid)).or_default();
        !std::mem::replace(&mut memory.converged, true)
    }

    /// A new root took `took` until every cluster reported.
    pub fn converged_after(&self, took: std::time::Duration) {
        lock(&self.slowest).observe(std::time::Instant::now(), took);
    }

    /// The longest a new root took until every cluster reported, lately
    /// (`decide::report_windows`).
    pub fn slowest_recent(&self) -> Option<std::time::Duration> {
        lock(&self.slowest).get(std::time::Instant::now())
    }

    /// When root `uid` was first seen with some clusters reported and
    /// others not, remembering `now` if this is the first time (`partial`).
    pub fn partial_since(
        &self,
        uid: &str,
        partial: bool,
        now: k8s_openapi::jiff::Timestamp,
    ) -> Option<k8s_openapi::jiff::Timestamp> {
        let mut roots = lock(&self.roots);
        let memory = roots.entry(root_key(uid)).or_default();
        if partial && memory.partial_since.is_none() {
            memory.partial_since = Some(now);
        }
        memory.partial_since
    }

    /// Whether the write `key` with a body of hash `hash` was sent less
    /// than [`WRITTEN_MEMORY`] ago.
    pub fn recently_written(&self, key: &str, hash: u64) -> bool {
        lock(&self.written)
            .get(key)
            .is_some_and(|(h, at)| *h == hash && at.elapsed() < WRITTEN_MEMORY)
    }

    /// Remembers that the write `key` with a body of hash `hash` was sent.
    pub fn wrote(&self, key: String, hash: u64) {
        let mut written = lock(&self.written);
        if written.len() >= 4096 {
            written.retain(|_, (_, at)| at.elapsed() < WRITTEN_MEMORY);
        }
        written.insert(key, (hash, std::time::Instant::now()));
    }

    /// Counts a failed reconcile of root `uid`; the consecutive failures so far.
    pub fn root_failed(&self, uid: &str) -> u32 {
        let mut roots = lock(&self.roots);
        let memory = roots.entry(root_key(uid)).or_default();
        memory.failures = memory.failures.saturating_add(1);
        memory.failures
    }

    /// A reconcile of root `uid` succeeded: its failures start over.
    pub fn root_succeeded(&self, uid: &str) {
        if let Some(memory) = lock(&self.roots).get_mut(&root_key(uid)) {
            memory.failures = 0;
        }
    }

    /// Counts a failed reconcile of a dependency; the consecutive failures so far.
    pub fn dependency_failed(&self, dep: &DepKey) -> u32 {
        let mut failures = lock(&self.dependency_failures);
        let n = failures.entry(dep.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    /// A reconcile of a dependency succeeded, or the dependency went: its
    /// failures start over.
    pub fn dependency_succeeded(&self, dep: &DepKey) {
        lock(&self.dependency_failures).remove(dep);
    }

    /// Counts a failed check of a GlobalIngress; the consecutive failures so far.
    pub fn global_failed(&self, key: &(String, String)) -> u32 {
        let mut failures = lock(&self.global_failures);
        let n = failures.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    /// A check of a GlobalIngress succeeded: its failures start over.
    pub fn global_succeeded(&self, key: &(String, String)) {
        lock(&self.global_failures).remove(key);
    }

    /// The hash of the copies of `dep` written from its version `rv`, if known.
    pub fn copy_hash(&self, dep: &DepKey, rv: &str) -> Option<String> {
        lock(&self.copied)
            .get(dep)
            .filter(|(v, _)| v == rv)
            .map(|(_, h)| h.clone())
    }

    /// Remembers the hash of the copies of `dep` at its version `rv`; with
    /// `None`, forgets it (the object went).
    pub fn set_copy_hash(&self, dep: &DepKey, version: Option<(String, String)>) {
        let mut copied = lock(&self.copied);
        match version {
            Some(v) => copied.insert(dep.clone(), v),
            None => copied.remove(dep),
        };
    }

    /// Whether cluster namespace `ns` is known to exist as it should.
    pub fn namespace_ensured(&self, ns: &str) -> bool {
        lock(&self.ensured).contains(ns)
    }

    /// Records whether cluster namespace `ns` is known to exist as it should.
    pub fn set_namespace_ensured(&self, ns: &str, ensured: bool) {
        let mut set = lock(&self.ensured);
        if ensured {
            set.insert(ns.to_string());
        } else {
            set.remove(ns);
        }
    }

    /// Whether this controller saw the Cluster of namespace `ns` go.
    pub fn departed(&self, ns: &str) -> bool {
        lock(&self.departed).contains(ns)
    }

    /// Records whether the Cluster of namespace `ns` went (and its
    /// namespace still holds objects).
    pub fn set_departed(&self, ns: &str, departed: bool) {
        let mut set = lock(&self.departed);
        if departed {
            set.insert(ns.to_string());
        } else {
            set.remove(ns);
        }
    }

    /// Whether refusing Cluster `uid`'s kubeconfigSecretRef for `why` is
    /// news (not yet announced), remembering it.
    pub fn announce_refusal(&self, uid: &str, why: &str) -> bool {
        lock(&self.refused).insert(uid.to_string(), why.to_string()) != Some(why.to_string())
    }

    /// Forgets root `uid`: it is gone.
    pub fn forget(&self, uid: &str) {
        lock(&self.roots).remove(&root_key(uid));
    }

    /// Forgets every root whose uid `live` does not hold (after a re-list:
    /// roots deleted while the watch was down).
    pub fn retain(&self, live: &HashSet<String>) {
        let live: HashSet<u64> = live.iter().map(|uid| root_key(uid)).collect();
        lock(&self.roots).retain(|key, _| live.contains(key));
    }

    /// What is remembered of root `uid`.
    pub fn root(&self, uid: &str) -> Option<RootMemory> {
        lock(&self.roots).get(&root_key(uid)).cloned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_slowest_recent_convergence_is_remembered_for_one_to_two_periods() {
        use std::time::{Duration, Instant};
        let (t0, secs) = (Instant::now(), Duration::from_secs);
        let mut slowest = super::Slowest::default();
        assert_eq!(slowest.get(t0), None);
        slowest.observe(t0, secs(20));
        slowest.observe(t0 + secs(1), secs(5));
        assert_eq!(slowest.get(t0 + secs(29)), Some(secs(20)));
        // The next period still sees it, the one after does not.
        assert_eq!(slowest.get(t0 + secs(31)), Some(secs(20)));
        slowest.observe(t0 + secs(40), secs(3));
        assert_eq!(slowest.get(t0 + secs(62)), Some(secs(3)));
        assert_eq!(slowest.get(t0 + secs(200)), None);
    }

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::controller::dependencies::DepKind;

    fn ready(status: &str, reason: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    #[test]
    fn a_write_is_a_repeat_only_with_the_same_body_while_remembered() {
        let memory = Memory::default();
        let body = serde_json::json!({"status": {"a": 1}});
        let other = serde_json::json!({"status": {"a": 2}});
        assert!(!memory.recently_written("k", body_hash(&body)));
        memory.wrote("k".into(), body_hash(&body));
        assert!(memory.recently_written("k", body_hash(&body)));
        assert!(!memory.recently_written("k", body_hash(&other)));
        assert!(!memory.recently_written("j", body_hash(&body)));
    }

    #[test]
    fn a_body_that_differs_only_in_its_times_hashes_alike() {
        let at = |t: &str, s: &str| {
            serde_json::json!({"status": {
                "clusters": [{"cluster": "a", "addresses": [{"ip": "1.2.3.4"}], "lastChangeTime": t}],
                "conditions": [{"type": "Ready", "status": s, "lastTransitionTime": t}],
            }})
        };
        let first = at("2026-01-01T00:00:00Z", "True");
        assert_eq!(
            body_hash(&first),
            body_hash(&at("2026-01-01T00:00:07Z", "True"))
        );
        assert_ne!(
            body_hash(&first),
            body_hash(&at("2026-01-01T00:00:00Z", "False"))
        );
        // Structure counts: a value moved between fields is another body.
        assert_ne!(
            body_hash(&serde_json::json!({"a": [1], "b": []})),
            body_hash(&serde_json::json!({"a": [], "b": [1]}))
        );
        assert_ne!(
            body_hash(&serde_json::json!({"a": {"b": 1}, "c": 2})),
            body_hash(&serde_json::json!({"a": {"b": 1, "c": 2}}))
        );
    }

    #[test]
    fn a_root_is_remembered_until_forgotten() {
        let memory = Memory::default();
        assert!(memory.announce("u", &ready("True", "Placed")));
        assert!(!memory.announce("u", &ready("True", "Placed")));
        assert!(memory.announce("u", &ready("False", "NoMatchingCluster")));
        assert!(!memory.moved("u", &["a".into()]));
        assert!(!memory.moved("u", &["a".into()]));
        assert!(memory.moved("u", &["b".into()]));
        assert!(memory.first_convergence("u"));
        assert!(!memory.first_convergence("u"));
        assert_eq!((memory.root_failed("u"), memory.root_failed("u")), (1, 2));
        memory.root_succeeded("u");
        assert_eq!(memory.root_failed("u"), 1);
        let mut problem = ready("True", "Missing");
        problem.type_ = "DependencyMissing".into();
        assert!(memory.announce("u", &problem));
        problem.message = "now with a message".into();
        assert!(memory.announce("u", &problem));
        assert!(!memory.announce("u", &problem));
        memory.retain_announced("u", "Dependency", &[]);
        assert!(memory.announce("u", &problem));
        assert!(!memory.announce("u", &ready("False", "NoMatchingCluster")));
        memory.forget("u");
        assert_eq!(memory.root("u"), None);
        assert!(memory.announce("u", &ready("False", "NoMatchingCluster")));
        memory.retain(&HashSet::new());
        assert_eq!(memory.root("u"), None);
    }

    #[test]
    fn dependency_failures_count_per_dependency() {
        let memory = Memory::default();
        let web = (DepKind::Service, "ns".to_string(), "web".to_string());
        let tls = (DepKind::Secret, "ns".to_string(), "web".to_string());
        assert_eq!(memory.dependency_failed(&web), 1);
        assert_eq!(memory.dependency_failed(&web), 2);
        assert_eq!(memory.dependency_failed(&tls), 1);
        memory.dependency_succeeded(&web);
        assert_eq!(memory.dependency_failed(&web), 1);
        let global = ("ns".to_string(), "web".to_string());
        assert_eq!(memory.global_failed(&global), 1);
        assert_eq!(memory.global_failed(&global), 2);
        memory.global_succeeded(&global);
        assert_eq!(memory.global_failed(&global), 1);
    }
}
