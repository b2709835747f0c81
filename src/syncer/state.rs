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
