//! Push mode: the controller's own upstream caches, read by the syncers it
//! hosts instead of a watch and a cache of their own (issue #16, memory).
//!
//! The controller watches the leaves of a root kind in every namespace
//! for itself (Ingresses kept compact: `runtime::stored`). A push-mode syncer needs the same objects in its
//! cluster namespace: a [`Feed`] hands each change of the controller's
//! watch, after its store has taken it in, to the syncers subscribed to the
//! object's namespace (by name only), and the syncer reads the object from
//! the controller's store when a worker syncs it (parsed then, from a
//! compact store). So each leaf is cached
//! once in the process, not once more per syncer, and no syncer opens an
//! upstream watch for the type. Pull-mode syncers (one process per cluster)
//! keep their own watch: they have no controller beside them.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use kube::Resource;
use kube::api::{ApiResource, DynamicObject, TypeMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;
use tokio::sync::mpsc;

use super::copied::Copies;
use super::naming::ResourceSpec;
use crate::runtime::Change;
use crate::runtime::stored::Stored;

/// What a syncer's upstream routing sees: an object of its namespace that
/// changed (or went), by name, or a (re)list of the whole cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpChange {
    Object(String),
    Relisted,
}

impl UpChange {
    /// What a watch's change means to the routing (`None`: nothing).
    pub fn of<K: Resource, S>(change: &Change<K, S>) -> Option<Self> {
        match change {
            Change::Applied { new: o, .. } | Change::Deleted(o) => {
                o.meta().name.clone().map(UpChange::Object)
            }
            Change::Relisted => Some(UpChange::Relisted),
            Change::Failed(_) | Change::Restored => None,
        }
    }
}

/// A type the controller caches, as its syncers read it in one namespace.
pub trait SharedType: Send + Sync {
    /// The type, as discovery names it (the syncer uses the cache only
    /// for this version).
    fn api_resource(&self) -> ApiResource;
    /// The changes in `namespace` from now on; a [`UpChange::Relisted`]
    /// first when the cache holds its first full list already.
    fn subscribe(&self, namespace: &str) -> mpsc::UnboundedReceiver<UpChange>;
    /// The object `namespace/name`, as the API server sent it (less its
    /// managedFields and last-applied record, which the watch drops).
    fn get(&self, namespace: &str, name: &str) -> Option<DynamicObject>;
    /// The names of the objects in `namespace`, each with whether it is
    /// being deleted.
    fn names(&self, namespace: &str) -> Vec<(String, bool)>;
    /// Whether an object in `namespace`, not being deleted, has a name
    /// for which `wanted` holds.
    fn any_live(&self, namespace: &str, wanted: &dyn Fn(&str) -> bool) -> bool;
}

/// The controller's watch of `K`, fanned out to the syncers by namespace;
/// its store keeps the objects in the form `S` (see `runtime::stored`).
pub struct Feed<K: Resource<DynamicType = ()> + 'static, S: Stored<K> = K> {
    store: OnceLock<Store<S>>,
    subscribers: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<UpChange>>>>,
    listed: AtomicBool,
    kind: PhantomData<fn() -> K>,
}

impl<K: Resource<DynamicType = ()> + 'static, S: Stored<K>> Default for Feed<K, S> {
    fn default() -> Self {
        Self {
            store: OnceLock::new(),
            subscribers: Mutex::new(HashMap::new()),
            listed: AtomicBool::new(false),
            kind: PhantomData,
        }
    }
}

impl<K, S> Feed<K, S>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + Send + Sync + 'static,
    S: Stored<K>,
{
    /// The store of the watch whose changes are [`Feed::publish`]ed.
    pub fn set_store(&self, store: Store<S>) {
        let _ = self.store.set(store);
    }

    /// Hands `change` (after the store has taken it in) to the subscribers
    /// of its namespace; a (re)list to every subscriber.
    pub fn publish(&self, change: &Change<K, S>) {
        let Some(up) = UpChange::of(change) else {
            return;
        };
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        match (change, up) {
            (Change::Applied { new: o, .. } | Change::Deleted(o), up) => {
                let namespace = o.meta().namespace.as_deref().unwrap_or_default();
                if let Some(senders) = subscribers.get_mut(namespace) {
                    senders.retain(|s| s.send(up.clone()).is_ok());
                    if senders.is_empty() {
                        subscribers.remove(namespace);
                    }
                }
            }
            (_, up) => {
                self.listed.store(true, Ordering::Release);
                subscribers.retain(|_, senders| {
                    senders.retain(|s| s.send(up.clone()).is_ok());
                    !senders.is_empty()
                });
            }
        }
    }

    fn store(&self) -> Option<&Store<S>> {
        self.store.get()
    }
}

impl<K, S> SharedType for Feed<K, S>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + Send + Sync + 'static,
    S: Stored<K>,
{
    fn api_resource(&self) -> ApiResource {
        ApiResource::erase::<K>(&())
    }

    fn subscribe(&self, namespace: &str) -> mpsc::UnboundedReceiver<UpChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        if self.listed.load(Ordering::Acquire) {
            let _ = tx.send(UpChange::Relisted);
        }
        subscribers
            .entry(namespace.to_string())
            .or_default()
            .push(tx);
        rx
    }

    fn get(&self, namespace: &str, name: &str) -> Option<DynamicObject> {
        let stored = self
            .store()?
            .get(&ObjectRef::<S>::new(name).within(namespace))?;
        // One parse per sync when the store is compact.
        let object = S::typed(&stored)?;
        // A typed object serializes to what it was read from, less fields
        // its type does not know (none for the leaves the controller
        // writes); a failure, which cannot happen, reads as "not cached"
        // (the worker then reads it from the API server). The metadata is
        // cloned as it is, the rest becomes the object's content: no round
        // trip of the whole object through a JSON tree and back.
        let mut data = serde_json::to_value(&*object).ok()?;
        let fields = data.as_object_mut()?;
        for typed in ["apiVersion", "kind", "metadata"] {
            fields.remove(typed);
        }
        Some(DynamicObject {
            types: Some(TypeMeta {
                api_version: K::api_version(&()).into_owned(),
                kind: K::kind(&()).into_owned(),
            }),
            metadata: object.meta().clone(),
            data,
        })
    }

    fn names(&self, namespace: &str) -> Vec<(String, bool)> {
        let Some(store) = self.store() else {
            return Vec::new();
        };
        store
            .state_filter(|o| o.stored_namespace() == Some(namespace))
            .iter()
            .map(|o| (o.stored_name().to_string(), o.stored_deleting()))
            .collect()
    }

    fn any_live(&self, namespace: &str, wanted: &dyn Fn(&str) -> bool) -> bool {
        self.store().is_some_and(|store| {
            store
                .find(|o| {
                    o.stored_namespace() == Some(namespace)
                        && !o.stored_deleting()
                        && wanted(o.stored_name())
                })
                .is_some()
        })
    }
}

/// The controller's caches its push-mode syncers read, by type, and the
/// record of their syncs the controller reads.
#[derive(Clone, Default)]
pub struct SharedCaches {
    types: Vec<(ResourceSpec, Arc<dyn SharedType>)>,
    copies: Option<Arc<Copies>>,
}

impl SharedCaches {
    /// Adds the controller's cache of `spec`'s objects.
    pub fn with(mut self, spec: ResourceSpec, cache: Arc<dyn SharedType>) -> Self {
        self.types.push((spec, cache));
        self
    }

    /// Where the syncers record their syncs of leaves for the controller.
    pub fn with_copies(mut self, copies: Arc<Copies>) -> Self {
        self.copies = Some(copies);
        self
    }

    /// The record of the syncs of leaves (push mode only).
    pub fn copies(&self) -> Option<&Copies> {
        self.copies.as_deref()
    }

    /// The shared cache of `spec` in the version `ar` (as discovery
    /// resolved it), if the controller keeps one.
    pub fn of(&self, spec: &ResourceSpec, ar: &ApiResource) -> Option<Arc<dyn SharedType>> {
        self.types
            .iter()
            .find(|(s, c)| s == spec && c.api_resource().api_version == ar.api_version)
            .map(|(_, c)| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;

    fn ingress(namespace: &str, name: &str) -> Ingress {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7",
                         "labels": {"kcp-ingress.dev/root": "web"}},
            "spec": {"rules": [{"host": "web.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}
        }))
        .unwrap()
    }

    fn applied(o: Ingress) -> Change<Ingress> {
        Change::Applied { old: None, new: o }
    }

    #[test]
    fn a_subscriber_sees_its_namespace_only_and_every_relist() {
        let mut writer = Writer::<Ingress>::new(());
        let feed = Feed::<Ingress>::default();
        feed.set_store(writer.as_reader());
        let mut east = feed.subscribe("kcp-ingress-cluster-east");
        let mut west = feed.subscribe("kcp-ingress-cluster-west");
        let leaf = ingress("kcp-ingress-cluster-east", "shop.web--east");
        writer.apply_watcher_event(&Event::Apply(leaf.clone()));
        feed.publish(&applied(leaf.clone()));
        feed.publish(&applied(ingress("shop", "web")));
        feed.publish(&Change::Failed("down".into()));
        feed.publish(&Change::Relisted);
        assert_eq!(
            east.try_recv().unwrap(),
            UpChange::Object("shop.web--east".into())
        );
        assert_eq!(east.try_recv().unwrap(), UpChange::Relisted);
        assert!(east.try_recv().is_err());
        assert_eq!(west.try_recv().unwrap(), UpChange::Relisted);
        assert!(west.try_recv().is_err());
        // Subscribed after the first list: told to look at everything.
        let mut late = feed.subscribe("kcp-ingress-cluster-east");
        assert_eq!(late.try_recv().unwrap(), UpChange::Relisted);
        // A gone subscriber is dropped.
        drop(west);
        feed.publish(&Change::Relisted);
        let subscribers = feed.subscribers.lock().unwrap();
        assert!(!subscribers.contains_key("kcp-ingress-cluster-west"));
    }

    #[test]
    fn a_syncer_reads_the_object_as_the_api_server_sent_it() {
        reads_as_sent::<Ingress>();
        // As the controller stores its Ingresses: parsed per read.
        reads_as_sent::<crate::runtime::compact::Compact<Ingress>>();
    }

    fn reads_as_sent<S: Stored<Ingress>>() {
        let mut writer = Writer::<S>::new(());
        let feed = Feed::<Ingress, S>::default();
        assert!(feed.get("ns", "a").is_none());
        feed.set_store(writer.as_reader());
        let leaf = ingress("kcp-ingress-cluster-east", "shop.web--east");
        let mut deleting = ingress("kcp-ingress-cluster-east", "shop.old--east");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        for o in [leaf.clone(), deleting, ingress("shop", "web")] {
            writer.apply_watcher_event(&Event::Apply(S::store(&o)));
        }
        let read = feed
            .get("kcp-ingress-cluster-east", "shop.web--east")
            .unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&leaf).unwrap()
        );
        assert_eq!(read.types.unwrap().kind, "Ingress");
        let mut names = feed.names("kcp-ingress-cluster-east");
        names.sort();
        assert_eq!(
            names,
            [
                ("shop.old--east".to_string(), true),
                ("shop.web--east".to_string(), false)
            ]
        );
        assert!(feed.any_live("kcp-ingress-cluster-east", &|n| n.starts_with("shop.web")));
        assert!(!feed.any_live("kcp-ingress-cluster-east", &|n| n.starts_with("shop.old")));
        assert!(!feed.any_live("kcp-ingress-cluster-west", &|_| true));
    }

    #[test]
    fn the_syncers_loops_over_a_compact_store_build_no_metadata() {
        use crate::runtime::compact::Compact;
        let mut writer = Writer::<Compact<Ingress>>::new(());
        let feed = Feed::<Ingress, Compact<Ingress>>::default();
        feed.set_store(writer.as_reader());
        for name in ["shop.a--east", "shop.b--east"] {
            let leaf = ingress("kcp-ingress-cluster-east", name);
            writer.apply_watcher_event(&Event::Apply(Compact::store(&leaf)));
        }
        assert_eq!(feed.names("kcp-ingress-cluster-east").len(), 2);
        assert!(feed.any_live("kcp-ingress-cluster-east", &|n| n == "shop.b--east"));
        assert!(writer.as_reader().state().iter().all(|o| !o.meta_built()));
    }

    #[test]
    fn the_cache_serves_its_own_version_only() {
        let feed: Arc<dyn SharedType> = Arc::new(Feed::<Ingress>::default());
        let spec = ResourceSpec {
            resource: "ingresses".into(),
            group: "networking.k8s.io".into(),
        };
        let caches = SharedCaches::default().with(spec.clone(), feed);
        let v1 = ApiResource::erase::<Ingress>(&());
        assert!(caches.of(&spec, &v1).is_some());
        let beta = ApiResource {
            api_version: "networking.k8s.io/v1beta1".into(),
            version: "v1beta1".into(),
            ..v1.clone()
        };
        assert!(caches.of(&spec, &beta).is_none());
        let services = ResourceSpec {
            resource: "services".into(),
            group: String::new(),
        };
        assert!(caches.of(&services, &v1).is_none());
    }
}
