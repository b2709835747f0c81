//! In-memory indexes fed by the watches: which leaves a root has (in the
//! cluster namespaces, by their root labels), which roots a root label
//! value names, which roots reference a Service or Secret, and which
//! cluster namespaces hold a copy of a user's object. They let a reconcile
//! find what it needs without scanning every object.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::dependencies::DepKey;
use super::kind::RootKind;
use super::naming;
use crate::labels;

/// The indexes, shaped for a controller that keeps one entry per root for
/// as long as the root lives (10,000 roots: 10,000 entries): one map
/// entry per root label holds its roots, what they reference and its
/// leaves, and the texts repeated across roots are shared, not copied (a
/// root's `namespace/name` is one text that the dependents' sets share; a
/// cluster namespace one text for all its leaves; a leaf's name is not
/// kept when its root and cluster namespace give it). Session 10's shape
/// (a map of leaves, one of roots and one of references, each keyed by
/// two strings, with every name copied) took 1.3 KB in 20 allocations
/// per root (`examples/mem_per_root.rs`).
#[derive(Default)]
struct Inner {
    /// `namespace/root label value` → the roots of that label value and
    /// the leaves labelled as theirs.
    labelled: HashMap<Arc<str>, Labelled>,
    /// A user's object → the cluster namespaces that hold a copy of it
    /// (per dependency, not per root).
    copies: HashMap<DepKey, BTreeSet<String>>,
    /// dependency → `namespace/name` of the roots that reference it (the
    /// same texts as their [`RootEntry::id`]).
    dependents: HashMap<Arc<DepKey>, BTreeSet<Arc<str>>>,
    /// The cluster namespaces leaves were seen in, one text each.
    cluster_namespaces: HashSet<Arc<str>>,
}

/// What one root label value names.
#[derive(Default)]
struct Labelled {
    /// The roots of the label value (one, unless something is wrong),
    /// sorted by id.
    roots: Box<[RootEntry]>,
    /// The leaves labelled as belonging to it, sorted.
    leaves: Box<[Leaf]>,
}

/// A root and what it referenced when last seen.
struct RootEntry {
    /// `namespace/name` (neither holds a `/`); the map key's text itself
    /// when the name is its own label value (any name up to 63 characters).
    id: Arc<str>,
    /// Shared with the keys of [`Inner::dependents`].
    references: Box<[Arc<DepKey>]>,
}

/// A leaf, in its cluster namespace.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Leaf {
    namespace: Arc<str>,
    /// `None` when it is the name [`derived_leaf_name`] gives (every leaf
    /// the controller names itself).
    name: Option<Box<str>>,
}

/// The one text an index keeps for `namespace/name` (or label value).
fn id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// `(namespace, name)` of an [`id`].
fn split_id(id: &str) -> (String, String) {
    let (namespace, name) = id.split_once('/').unwrap_or(("", id));
    (namespace.to_string(), name.to_string())
}

/// The name the controller gives the leaf in `cluster_namespace` of the
/// root labelled `label` in `root_namespace` ([`naming::leaf_key`]), when
/// the cluster's name can be read back from its namespace (not for a
/// cluster namespace shortened with a hash).
fn derived_leaf_name(root_namespace: &str, label: &str, cluster_namespace: &str) -> Option<String> {
    let cluster = cluster_namespace.strip_prefix(labels::CLUSTER_NAMESPACE_PREFIX)?;
    let (namespace, name) = naming::leaf_key(root_namespace, label, cluster);
    (namespace == cluster_namespace).then_some(name)
}

/// The name a [`Leaf`] keeps: none when it is the derived one.
fn kept_leaf_name(
    root_namespace: &str,
    label: &str,
    namespace: &str,
    name: &str,
) -> Option<Box<str>> {
    (derived_leaf_name(root_namespace, label, namespace).as_deref() != Some(name))
        .then(|| name.into())
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
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let is_root = K::is_root(object);
        let new = if is_root {
            K::dependencies(object, world)
        } else {
            Vec::new()
        };
        let mut inner = self.inner();
        if let Some((root_ns, label)) =
            naming::root_of_leaf(meta).filter(|_| naming::is_cluster_namespace(ns))
        {
            inner.insert_leaf(&root_ns, &label, ns, name);
        }
        if is_root {
            inner.insert_root(ns, name);
        }
        inner.replace_references(ns, name, new)
    }

    /// Forgets a deleted root or leaf; returns the dependencies it referenced.
    pub fn remove<K: RootKind>(&self, object: &K) -> Vec<DepKey> {
        let meta = object.meta();
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let mut inner = self.inner();
        if let Some((root_ns, label)) = naming::root_of_leaf(meta) {
            inner.remove_leaf(&root_ns, &label, ns, name);
        }
        let dropped = inner.replace_references(ns, name, Vec::new());
        inner.remove_root(ns, name);
        dropped
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
        let label = naming::root_label_value(root);
        let inner = self.inner();
        let Some(labelled) = inner.labelled.get(id(namespace, &label).as_str()) else {
            return BTreeSet::new();
        };
        labelled
            .leaves
            .iter()
            .map(|leaf| {
                let name = match &leaf.name {
                    Some(name) => name.to_string(),
                    None => {
                        derived_leaf_name(namespace, &label, &leaf.namespace).unwrap_or_default()
                    }
                };
                (leaf.namespace.to_string(), name)
            })
            .collect()
    }

    /// The roots in `namespace` whose root label value is `label` (one,
    /// unless something is wrong).
    pub fn roots_labelled(&self, namespace: &str, label: &str) -> BTreeSet<String> {
        self.inner()
            .labelled
            .get(id(namespace, label).as_str())
            .map(|l| l.roots.iter().map(|r| split_id(&r.id).1).collect())
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
        } else if let Some(set) = inner.copies.get_mut(origin) {
            set.remove(cluster_namespace);
            if set.is_empty() {
                inner.copies.remove(origin);
            }
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
            .map(|ids| ids.iter().map(|i| split_id(i)).collect())
            .unwrap_or_default()
    }

    /// Every dependency some root references.
    pub fn all_dependencies(&self) -> Vec<DepKey> {
        self.inner()
            .dependents
            .keys()
            .map(|k| DepKey::clone(k))
            .collect()
    }
}

impl Inner {
    /// The entry of label value `label` in `namespace`, made if missing,
    /// with its key (shared text).
    fn labelled(&mut self, namespace: &str, label: &str) -> (Arc<str>, &mut Labelled) {
        let text = id(namespace, label);
        let key = match self.labelled.get_key_value(text.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(text),
        };
        (key.clone(), self.labelled.entry(key).or_default())
    }

    /// Drops the entry of `key` when it names nothing any more.
    fn prune(&mut self, key: &str) {
        if self
            .labelled
            .get(key)
            .is_some_and(|l| l.roots.is_empty() && l.leaves.is_empty())
        {
            self.labelled.remove(key);
        }
    }

    fn insert_root(&mut self, ns: &str, name: &str) {
        let label = naming::root_label_value(name);
        let (key, labelled) = self.labelled(ns, &label);
        let root_id: Arc<str> = if label == name {
            key
        } else {
            Arc::from(id(ns, name))
        };
        if let Err(at) = labelled.roots.binary_search_by(|r| r.id.cmp(&root_id)) {
            let entry = RootEntry {
                id: root_id,
                references: Box::default(),
            };
            insert_at(&mut labelled.roots, at, entry);
        }
    }

    fn remove_root(&mut self, ns: &str, name: &str) {
        let key = id(ns, &naming::root_label_value(name));
        let root_id = id(ns, name);
        if let Some(labelled) = self.labelled.get_mut(key.as_str())
            && let Ok(at) = labelled.roots.binary_search_by(|r| (*r.id).cmp(&root_id))
        {
            remove_at(&mut labelled.roots, at);
            self.prune(&key);
        }
    }

    fn insert_leaf(&mut self, root_ns: &str, label: &str, ns: &str, name: &str) {
        let namespace = match self.cluster_namespaces.get(ns) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(ns);
                self.cluster_namespaces.insert(shared.clone());
                shared
            }
        };
        let leaf = Leaf {
            namespace,
            name: kept_leaf_name(root_ns, label, ns, name),
        };
        let (_, labelled) = self.labelled(root_ns, label);
        if let Err(at) = labelled.leaves.binary_search(&leaf) {
            insert_at(&mut labelled.leaves, at, leaf);
        }
    }

    fn remove_leaf(&mut self, root_ns: &str, label: &str, ns: &str, name: &str) {
        let key = id(root_ns, label);
        let kept = kept_leaf_name(root_ns, label, ns, name);
        if let Some(labelled) = self.labelled.get_mut(key.as_str())
            && let Some(at) = labelled
                .leaves
                .iter()
                .position(|l| *l.namespace == *ns && l.name == kept)
        {
            remove_at(&mut labelled.leaves, at);
            self.prune(&key);
        }
    }

    /// Sets what root `ns/name` references (if it is a known root);
    /// returns what it referenced before and no longer does.
    fn replace_references(&mut self, ns: &str, name: &str, new: Vec<DepKey>) -> Vec<DepKey> {
        let key = id(ns, &naming::root_label_value(name));
        let root_id = id(ns, name);
        let Inner {
            labelled,
            dependents,
            ..
        } = self;
        let Some(root) = labelled
            .get_mut(key.as_str())
            .and_then(|l| l.roots.iter_mut().find(|r| *r.id == *root_id))
        else {
            return Vec::new();
        };
        let old = std::mem::take(&mut root.references);
        let mut dropped = Vec::new();
        for dep in old.iter().filter(|d| !new.contains(d)) {
            dropped.push(DepKey::clone(dep));
            if let Some(set) = dependents.get_mut(&**dep) {
                set.remove(&root.id);
                if set.is_empty() {
                    dependents.remove(&**dep);
                }
            }
        }
        drop(old);
        let references: Vec<Arc<DepKey>> = new
            .into_iter()
            .map(|dep| {
                let shared = match dependents.get_key_value(&dep) {
                    Some((shared, _)) => shared.clone(),
                    None => Arc::new(dep),
                };
                dependents
                    .entry(shared.clone())
                    .or_default()
                    .insert(root.id.clone());
                shared
            })
            .collect();
        root.references = references.into_boxed_slice();
        dropped
    }
}

/// Inserts `value` at `at` in a boxed slice (no spare room kept).
fn insert_at<T>(slice: &mut Box<[T]>, at: usize, value: T) {
    let mut items = std::mem::take(slice).into_vec();
    items.insert(at, value);
    *slice = items.into_boxed_slice();
}

/// Removes the item at `at` from a boxed slice.
fn remove_at<T>(slice: &mut Box<[T]>, at: usize) {
    let mut items = std::mem::take(slice).into_vec();
    items.remove(at);
    *slice = items.into_boxed_slice();
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

    #[test]
    fn keeps_names_it_cannot_derive_and_shares_the_rest() {
        let index = Index::default();
        // A root whose name is longer than a label value: its label is
        // shortened, its id is not.
        let long = "a".repeat(70);
        let label = naming::root_label_value(&long);
        assert_ne!(label, long);
        index.upsert(&ingress("ns", &long, &[], &["web"]), &());
        index.upsert(&ingress("ns", "shop", &[], &["web"]), &());
        assert_eq!(
            index.roots_labelled("ns", &label),
            BTreeSet::from([long.clone()])
        );
        let web = (DepKind::Service, "ns".to_string(), "web".to_string());
        assert_eq!(
            index.dependents(&web),
            BTreeSet::from([
                ("ns".to_string(), long.clone()),
                ("ns".to_string(), "shop".to_string())
            ])
        );
        let labels = [
            (labels::ROOT_LABEL, "shop"),
            (labels::ROOT_NAMESPACE_LABEL, "ns"),
        ];
        // The derived name, one not derived (made by hand), and one in a
        // cluster namespace shortened with a hash.
        let (hashed_ns, hashed_name) = naming::leaf_key("ns", "shop", &"c".repeat(70));
        assert!(hashed_ns.len() < 70);
        let leaves = [
            ("kcp-ingress-cluster-east", "ns.shop--east".to_string()),
            ("kcp-ingress-cluster-east", "by-hand".to_string()),
            (hashed_ns.as_str(), hashed_name.clone()),
        ];
        for (ns, name) in &leaves {
            index.upsert(&ingress(ns, name, &labels, &[]), &());
        }
        let expected: BTreeSet<(String, String)> = leaves
            .iter()
            .map(|(ns, name)| (ns.to_string(), name.clone()))
            .collect();
        assert_eq!(index.leaves("ns", "shop"), expected);
        // Seen again: nothing doubles.
        index.upsert(&ingress(leaves[0].0, &leaves[0].1, &labels, &[]), &());
        assert_eq!(index.leaves("ns", "shop").len(), 3);
        for (ns, name) in &leaves {
            index.remove(&ingress(ns, name, &labels, &[]));
        }
        assert!(index.leaves("ns", "shop").is_empty());
        assert_eq!(
            index.remove(&ingress("ns", &long, &[], &["web"])),
            vec![web.clone()]
        );
        assert_eq!(index.dependents(&web).len(), 1);
        index.remove(&ingress("ns", "shop", &[], &["web"]));
        let inner = index.inner();
        assert!(inner.labelled.is_empty() && inner.dependents.is_empty());
    }
}
