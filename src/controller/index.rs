//! In-memory indexes fed by the watches: which leaves a root has (in the
//! cluster namespaces, by their root labels), which roots a root label
//! value names, which roots reference a Service or Secret, and which
//! cluster namespaces hold a copy of a user's object. They let a reconcile
//! find what it needs without scanning every object.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::dependencies::DepKey;
use super::kind::RootKind;
use super::naming;

#[derive(Default)]
struct Inner {
    /// (root namespace, root label value) → (namespace, name) of its leaves.
    /// A root has a few (one per cluster), so a sorted vector: a B-tree
    /// node holds eleven entries whatever the count (about 0.5 KB per root).
    leaves: HashMap<(String, String), SmallSet<(String, String)>>,
    /// (namespace, root label value) → the roots of that label value (one,
    /// unless something is wrong).
    roots: HashMap<(String, String), SmallSet<String>>,
    /// A user's object → the cluster namespaces that hold a copy of it.
    copies: HashMap<DepKey, BTreeSet<String>>,
    /// dependency → `(namespace, name)` of the roots that reference it.
    dependents: HashMap<DepKey, BTreeSet<(String, String)>>,
    /// (namespace, root) → what it referenced when last seen.
    references: HashMap<(String, String), Vec<DepKey>>,
}

/// The indexes; every method takes the lock briefly.
#[derive(Default)]
pub struct Index(Mutex<Inner>);

impl Index {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than losing them; keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a root or leaf as seen now; returns the dependencies it no
    /// longer references (they need their labels recomputed).
    pub fn upsert<K: RootKind>(&self, object: &K, world: &K::World) -> Vec<DepKey> {
        let meta = object.meta();
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let mut inner = self.inner();
        if let Some(root) = naming::root_of_leaf(meta).filter(|_| naming::is_cluster_namespace(&ns))
        {
            inner
                .leaves
                .entry(root)
                .or_default()
                .insert((ns.clone(), name.clone()));
        }
        if K::is_root(object) {
            inner
                .roots
                .entry((ns.clone(), naming::root_label_value(&name)))
                .or_default()
                .insert(name.clone());
        }
        let new = if K::is_root(object) {
            K::dependencies(object, world)
        } else {
            Vec::new()
        };
        inner.replace_references(ns, name, new)
    }

    /// Forgets a deleted root or leaf; returns the dependencies it referenced.
    pub fn remove<K: RootKind>(&self, object: &K) -> Vec<DepKey> {
        let meta = object.meta();
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let mut inner = self.inner();
        if let Some(key) = naming::root_of_leaf(meta) {
            remove_small(&mut inner.leaves, &key, &(ns.clone(), name.clone()));
        }
        let label = (ns.clone(), naming::root_label_value(&name));
        remove_small(&mut inner.roots, &label, &name);
        inner.replace_references(ns, name, Vec::new())
    }

    /// Rebuilds the roots' and leaves' indexes from a full list (after a
    /// watch re-list).
    pub fn rebuild<K: RootKind>(
        &self,
        objects: impl IntoIterator<Item = impl std::borrow::Borrow<K>>,
        world: &K::World,
    ) {
        {
            let mut inner = self.inner();
            let copies = std::mem::take(&mut inner.copies);
            *inner = Inner::default();
            inner.copies = copies;
        }
        for object in objects {
            self.upsert(object.borrow(), world);
        }
    }

    /// `(namespace, name)` of the leaves labelled as belonging to `root` in `namespace`.
    pub fn leaves(&self, namespace: &str, root: &str) -> BTreeSet<(String, String)> {
        self.inner()
            .leaves
            .get(&(namespace.to_string(), naming::root_label_value(root)))
            .map(SmallSet::to_set)
            .unwrap_or_default()
    }

    /// The roots in `namespace` whose root label value is `label` (one,
    /// unless something is wrong).
    pub fn roots_labelled(&self, namespace: &str, label: &str) -> BTreeSet<String> {
        self.inner()
            .roots
            .get(&(namespace.to_string(), label.to_string()))
            .map(SmallSet::to_set)
            .unwrap_or_default()
    }

    /// Records that `cluster_namespace` holds a copy of `origin` (`present`)
    /// or no longer does.
    pub fn set_copy(&self, origin: &DepKey, cluster_namespace: &str, present: bool) {
        let mut inner = self.inner();
        if present {
            inner
                .copies
                .entry(origin.clone())
                .or_default()
                .insert(cluster_namespace.to_string());
        } else {
            remove_from(&mut inner.copies, origin, &cluster_namespace.to_string());
        }
    }

    /// The cluster namespaces holding a copy of `origin`.
    pub fn copies(&self, origin: &DepKey) -> BTreeSet<String> {
        self.inner().copies.get(origin).cloned().unwrap_or_default()
    }

    /// Every user's object some cluster namespace holds a copy of.
    pub fn all_copied(&self) -> Vec<DepKey> {
        self.inner().copies.keys().cloned().collect()
    }

    /// `(namespace, name)` of the roots that reference `dep`.
    pub fn dependents(&self, dep: &DepKey) -> BTreeSet<(String, String)> {
        self.inner()
            .dependents
            .get(dep)
            .cloned()
            .unwrap_or_default()
    }

    /// Every dependency some root references.
    pub fn all_dependencies(&self) -> Vec<DepKey> {
        self.inner().dependents.keys().cloned().collect()
    }
}

impl Inner {
    fn replace_references(&mut self, ns: String, root: String, new: Vec<DepKey>) -> Vec<DepKey> {
        let old = self
            .references
            .remove(&(ns.clone(), root.clone()))
            .unwrap_or_default();
        let dropped: Vec<DepKey> = old.iter().filter(|d| !new.contains(d)).cloned().collect();
        let key = (ns.clone(), root.clone());
        for dep in &dropped {
            if let Some(set) = self.dependents.get_mut(dep) {
                set.remove(&key);
                if set.is_empty() {
                    self.dependents.remove(dep);
                }
            }
        }
        for dep in &new {
            self.dependents
                .entry(dep.clone())
                .or_default()
                .insert(key.clone());
        }
        if !new.is_empty() {
            self.references.insert((ns, root), new);
        }
        dropped
    }
}

/// A set of a few values, as a sorted vector.
#[derive(Debug)]
struct SmallSet<V>(Vec<V>);

impl<V> Default for SmallSet<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V: Ord + Clone> SmallSet<V> {
    fn insert(&mut self, value: V) {
        if let Err(at) = self.0.binary_search(&value) {
            self.0.insert(at, value);
            self.0.shrink_to_fit();
        }
    }

    fn remove(&mut self, value: &V) {
        if let Ok(at) = self.0.binary_search(value) {
            self.0.remove(at);
            self.0.shrink_to_fit();
        }
    }

    fn to_set(&self) -> BTreeSet<V> {
        self.0.iter().cloned().collect()
    }
}

/// Removes `value` from the small set at `key`, and the set when it empties.
fn remove_small<K: std::hash::Hash + Eq, V: Ord + Clone>(
    map: &mut HashMap<K, SmallSet<V>>,
    key: &K,
    value: &V,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(value);
        if set.0.is_empty() {
            map.remove(key);
        }
    }
}

/// Removes `value` from the set at `key`, and the set when it empties.
fn remove_from<K: std::hash::Hash + Eq, V: Ord>(
    map: &mut HashMap<K, BTreeSet<V>>,
    key: &K,
    value: &V,
) {
    if let Some(set) = map.get_mut(key) {
        set.remove(value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;

    use super::*;
    use crate::controller::dependencies::DepKind;
    use crate::labels;

    fn ingress(ns: &str, name: &str, labels: &[(&str, &str)], services: &[&str]) -> Ingress {
        let paths: Vec<serde_json::Value> = services
            .iter()
            .map(|s| serde_json::json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": s, "port": {"number": 80}}}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"rules": [{"host": "a.example.test", "http": {"paths": paths}}]}
        }))
        .unwrap()
    }

    #[test]
    fn tracks_leaves_roots_copies_and_dependents() {
        let index = Index::default();
        let web = (DepKind::Service, "ns".to_string(), "web".to_string());
        let api = (DepKind::Service, "ns".to_string(), "api".to_string());
        assert!(
            index
                .upsert(&ingress("ns", "shop", &[], &["web", "api"]), &())
                .is_empty()
        );
        let leaf_labels = [
            (labels::ROOT_LABEL, "shop"),
            (labels::ROOT_NAMESPACE_LABEL, "ns"),
        ];
        let leaf = ingress(
            "kcp-ingress-cluster-east",
            "ns.shop--east",
            &leaf_labels,
            &["web"],
        );
        index.upsert(&leaf, &());
        assert_eq!(
            index.leaves("ns", "shop"),
            BTreeSet::from([(
                "kcp-ingress-cluster-east".to_string(),
                "ns.shop--east".to_string()
            )])
        );
        assert_eq!(
            index.roots_labelled("ns", "shop"),
            BTreeSet::from(["shop".to_string()])
        );
        assert_eq!(
            index.dependents(&web),
            BTreeSet::from([("ns".to_string(), "shop".to_string())])
        );
        // The root stops referencing api.
        assert_eq!(
            index.upsert(&ingress("ns", "shop", &[], &["web"]), &()),
            vec![api.clone()]
        );
        assert!(index.dependents(&api).is_empty());
        index.set_copy(&web, "kcp-ingress-cluster-east", true);
        index.rebuild::<Ingress>([&ingress("ns", "shop", &[], &["web"])], &());
        assert_eq!(
            index.copies(&web).len(),
            1,
            "a re-list of roots keeps the copies"
        );
        index.set_copy(&web, "kcp-ingress-cluster-east", false);
        assert!(index.all_copied().is_empty());
        assert_eq!(
            index.remove(&ingress("ns", "shop", &[], &["web"])),
            vec![web.clone()]
        );
        // Leaves live in cluster namespaces only.
        let elsewhere = ingress("ns", "ns.shop--west", &leaf_labels, &[]);
        index.upsert(&leaf, &());
        index.upsert(&elsewhere, &());
        assert_eq!(index.leaves("ns", "shop").len(), 1);
        index.remove(&leaf);
        assert!(index.leaves("ns", "shop").is_empty() && index.all_dependencies().is_empty());
        assert!(index.roots_labelled("ns", "shop").is_empty());
    }
}
