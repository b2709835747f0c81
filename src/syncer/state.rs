//! The state of a sync session that its workers share: the synced types
//! with their caches, the work queue of object keys, the downstream client
//! and the namespaces known to exist downstream.
//!
//! A [`Key`] carries its type's state (an `Arc<TypeState>`), not an index
//! into a list: a worker holding a key holds everything it needs to sync
//! that object, and no lookup can miss or point at another session's type.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::context::ClusterCtx;
use super::discovery::SyncType;
use super::queue::WorkQueue;
use crate::runtime::CancellationToken;

/// One synced type with its caches.
pub struct TypeState {
    pub ty: SyncType,
    /// Upstream objects placed on the cluster.
    pub up: Store<DynamicObject>,
    /// Downstream copies managed by this syncer.
    pub down: Store<DynamicObject>,
}

/// An upstream object (and its downstream copy): its type, namespace, name.
#[derive(Clone)]
pub struct Key {
    pub ty: Arc<TypeState>,
    pub namespace: String,
    pub name: String,
}

impl Key {
    /// The key of `object` of type `ty`; `None` for an object without a
    /// namespace or name (the syncer syncs namespaced objects only).
    pub fn of(ty: &Arc<TypeState>, object: &DynamicObject) -> Option<Self> {
        Some(Self {
            ty: ty.clone(),
            namespace: object.namespace()?,
            name: object.meta().name.clone()?,
        })
    }

    /// The cache reference of the object (either side).
    pub fn object_ref(&self) -> ObjectRef<DynamicObject> {
        ObjectRef::new_with(&self.name, self.ty.ty.ar.clone()).within(&self.namespace)
    }
}

// Two keys are the same object when their types are the same `--resources`
// entry (one `TypeState` per entry and session).
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.ty.ty.spec == other.ty.ty.spec
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ty.ty.spec.hash(state);
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

/// `resource.group namespace/name`, as logs and reports name an object.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.ty.ty.spec, self.namespace, self.name)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a session's workers share.
pub struct Session {
    pub ctx: Arc<ClusterCtx>,
    pub downstream: kube::Client,
    pub types: Vec<Arc<TypeState>>,
    pub queue: Arc<WorkQueue<Key>>,
    /// Namespaces known to exist downstream.
    namespaces: Mutex<HashSet<String>>,
    pub cancel: CancellationToken,
}

impl Session {
    pub fn new(
        ctx: Arc<ClusterCtx>,
        downstream: kube::Client,
        types: Vec<Arc<TypeState>>,
        queue: Arc<WorkQueue<Key>>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            ctx,
            downstream,
            types,
            queue,
            namespaces: Mutex::new(HashSet::new()),
            cancel,
        }
    }

    /// Forgets that `namespace` exists downstream (an apply said it does not).
    pub fn forget_namespace(&self, namespace: &str) {
        self.namespaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(namespace);
    }

    pub fn knows_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(namespace)
    }

    pub fn remember_namespace(&self, namespace: &str) {
        self.namespaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(namespace.to_string());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use kube::api::ApiResource;
    use kube::runtime::reflector::store::Writer;

    use super::*;
    use crate::syncer::naming::ResourceSpec;

    fn type_state(resource: &str, group: &str) -> Arc<TypeState> {
        let ar = ApiResource {
            group: group.into(),
            version: "v1".into(),
            api_version: if group.is_empty() {
                "v1".into()
            } else {
                format!("{group}/v1")
            },
            kind: "Thing".into(),
            plural: resource.into(),
        };
        let store = || Writer::<DynamicObject>::new(ar.clone()).as_reader();
        Arc::new(TypeState {
            ty: SyncType {
                spec: ResourceSpec {
                    resource: resource.into(),
                    group: group.into(),
                },
                ar: ar.clone(),
                status_up: false,
            },
            up: store(),
            down: store(),
        })
    }

    fn key(ty: &Arc<TypeState>, namespace: &str, name: &str) -> Key {
        Key {
            ty: ty.clone(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    #[expect(
        clippy::mutable_key_type,
        reason = "a key hashes its type's spec, namespace and name, never the caches"
    )]
    fn keys_are_the_same_object_by_type_namespace_and_name() {
        let services = type_state("services", "");
        let secrets = type_state("secrets", "");
        let mut keys = HashSet::new();
        assert!(keys.insert(key(&services, "a", "x")));
        assert!(!keys.insert(key(&services, "a", "x")));
        assert!(keys.insert(key(&secrets, "a", "x")));
        assert!(keys.insert(key(&services, "b", "x")));
        assert!(keys.insert(key(&services, "a", "y")));
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn a_key_names_its_object() {
        let ingresses = type_state("ingresses", "networking.k8s.io");
        assert_eq!(
            key(&ingresses, "shop", "web").to_string(),
            "ingresses.networking.k8s.io shop/web"
        );
    }

    #[test]
    fn only_namespaced_named_objects_have_keys() {
        let services = type_state("services", "");
        let mut object = DynamicObject::new("web", &services.ty.ar);
        assert!(Key::of(&services, &object).is_none());
        object.metadata.namespace = Some("shop".into());
        let key = Key::of(&services, &object).map(|k| k.to_string());
        assert_eq!(key.as_deref(), Some("services shop/web"));
        assert_eq!(
            Key::of(&services, &object).map(|k| k.object_ref().name),
            Some("web".to_string())
        );
    }
}
