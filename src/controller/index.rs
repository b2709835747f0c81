//! In-memory indexes fed by the watch of a root kind: which leaves a root has, and
//! which roots reference a Service or Secret. They let a reconcile find what
//! it needs without scanning every object.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::dependencies::DepKey;
use super::kind::RootKind;
use super::naming;
use crate::labels;

#[derive(Default)]
struct Inner {
    /// (namespace, root label value) → leaf names.
    leaves: HashMap<(String, String), BTreeSet<String>>,
    /// dependency → names of the roots (in its namespace) that reference it.
    dependents: HashMap<DepKey, BTreeSet<String>>,
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
    pub fn upsert<K: RootKind>(&self, object: &K) -> Vec<DepKey> {
        let meta = object.meta();
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let mut inner = self.inner();
        if let Some(root) = leaf_root_label(object) {
            inner
                .leaves
                .entry((ns.clone(), root))
                .or_default()
                .insert(name.clone());
        }
        let new = if K::is_root(object) {
            K::dependencies(object)
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
        if let Some(root) = leaf_root_label(object) {
            let key = (ns.clone(), root);
            if let Some(set) = inner.leaves.get_mut(&key) {
                set.remove(&name);
                if set.is_empty() {
                    inner.leaves.remove(&key);
                }
            }
        }
        inner.replace_references(ns, name, Vec::new())
    }

    /// Rebuilds everything from a full list (after a watch re-list).
    pub fn rebuild<'a, K: RootKind>(&self, objects: impl IntoIterator<Item = &'a K>) {
        *self.inner() = Inner::default();
        for object in objects {
            self.upsert(object);
        }
    }

    /// Names of the leaves labelled as belonging to `root` in `namespace`.
    pub fn leaves(&self, namespace: &str, root: &str) -> BTreeSet<String> {
        self.inner()
            .leaves
            .get(&(namespace.to_string(), naming::root_label_value(root)))
            .cloned()
            .unwrap_or_default()
    }

    /// Names of the roots that reference `dep`.
    pub fn dependents(&self, dep: &DepKey) -> BTreeSet<String> {
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
        for dep in &dropped {
            if let Some(set) = self.dependents.get_mut(dep) {
                set.remove(&root);
                if set.is_empty() {
                    self.dependents.remove(dep);
                }
            }
        }
        for dep in &new {
            self.dependents
                .entry(dep.clone())
                .or_default()
                .insert(root.clone());
        }
        if !new.is_empty() {
            self.references.insert((ns, root), new);
        }
        dropped
    }
}

fn leaf_root_label<K: RootKind>(object: &K) -> Option<String> {
    object
        .meta()
        .labels
        .as_ref()?
        .get(labels::ROOT_LABEL)
        .cloned()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;

    use super::*;
    use crate::controller::dependencies::DepKind;

    fn ingress(name: &str, labels: &[(&str, &str)], services: &[&str]) -> Ingress {
        let paths: Vec<serde_json::Value> = services
            .iter()
            .map(|s| serde_json::json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": s, "port": {"number": 80}}}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"rules": [{"host": "a.example.test", "http": {"paths": paths}}]}
        }))
        .unwrap()
    }

    #[test]
    fn tracks_leaves_and_dependents() {
        let index = Index::default();
        let web = (DepKind::Service, "ns".to_string(), "web".to_string());
        let api = (DepKind::Service, "ns".to_string(), "api".to_string());
        assert!(
            index
                .upsert(&ingress("shop", &[], &["web", "api"]))
                .is_empty()
        );
        index.upsert(&ingress(
            "shop--east",
            &[(labels::ROOT_LABEL, "shop")],
            &["web"],
        ));
        assert_eq!(
            index.leaves("ns", "shop"),
            BTreeSet::from(["shop--east".to_string()])
        );
        assert_eq!(index.dependents(&web), BTreeSet::from(["shop".to_string()]));
        // The root stops referencing api.
        assert_eq!(
            index.upsert(&ingress("shop", &[], &["web"])),
            vec![api.clone()]
        );
        assert!(index.dependents(&api).is_empty());
        assert_eq!(
            index.remove(&ingress("shop", &[], &["web"])),
            vec![web.clone()]
        );
        index.remove(&ingress(
            "shop--east",
            &[(labels::ROOT_LABEL, "shop")],
            &["web"],
        ));
        assert!(index.leaves("ns", "shop").is_empty() && index.all_dependencies().is_empty());
    }
}
