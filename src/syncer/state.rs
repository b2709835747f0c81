//! The state of a sync session that its workers share: the synced types
//! with their caches, the work queue of object keys, the downstream client
//! and the namespaces known to exist downstream.
//!
//! A [`Key`] carries its type's state (an `Arc<TypeState>`), not an index
//! into a list: a worker holding a key holds everything it needs to sync
//! that object, and no lookup can miss or point at another session's type.
//! Its [`Place`] names the object on both sides: the upstream name in the
//! cluster namespace and the downstream namespace and name, each computed
//! from the other, so a change on either side wakes the same key.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::debug;

use super::cached::Cached;
use super::context::ClusterCtx;
use super::copy_record::CopyRecord;
use super::discovery::SyncType;
use super::layout::{Carrier, Place, Target};
use super::queue::WorkQueue;
use super::shared::SharedType;
use super::status_sent::StatusSent;
use crate::runtime::CancellationToken;

/// One synced type with its caches.
pub struct TypeState {
    pub ty: SyncType,
    /// How its objects are carried in the cluster namespace.
    pub carrier: Carrier,
    /// What the upstream watch lists: the type itself, or `PlacedObject`.
    pub up_ar: ApiResource,
    /// Upstream objects in the cluster namespace (of the type, or the
    /// `PlacedObject`s carrying it).
    pub up: Upstream,
    /// Downstream copies managed by this syncer, as what it compares of
    /// them ([`CopyRecord`]).
    pub down: Store<CopyRecord>,
    /// The copies a sync applied whose new version the watch has not
    /// brought yet: by place, the digest of the version applied and the
    /// mark it was applied with ([`TypeState::applied`]).
    pub just_applied: Mutex<HashMap<Target, (u64, u64)>>,
    /// The leaf statuses written up that the upstream cache does not show
    /// yet: not written again meanwhile ([`StatusSent`]).
    pub status_sent: StatusSent,
}

/// Where a session reads the upstream objects of a type.
pub enum Upstream {
    /// Its own watch of the cluster namespace (pull mode; push mode for a
    /// type the controller does not cache whole).
    Own(Store<Cached>),
    /// The controller's cache of the type (push mode), read for the
    /// cluster namespace ([`super::shared`]).
    Shared(Arc<dyn SharedType>),
}

impl Upstream {
    /// The object `name` in `cluster_namespace`, as the API server sent it.
    pub fn get(
        &self,
        ar: &ApiResource,
        cluster_namespace: &str,
        name: &str,
    ) -> Option<DynamicObject> {
        match self {
            Upstream::Own(store) => store
                .get(&ObjectRef::new_with(name, Arc::new(ar.clone())).within(cluster_namespace))
                .map(|o| o.to_dynamic()),
            Upstream::Shared(cache) => cache.get(cluster_namespace, name),
        }
    }

    /// The names of the objects in `cluster_namespace`, each with whether
    /// it is being deleted.
    pub fn names(&self, cluster_namespace: &str) -> Vec<(String, bool)> {
        match self {
            Upstream::Own(store) => store
                .state()
                .iter()
                .filter_map(|o| {
                    Some((
                        o.meta().name.clone()?,
                        o.metadata.deletion_timestamp.is_some(),
                    ))
                })
                .collect(),
            Upstream::Shared(cache) => cache.names(cluster_namespace),
        }
    }

    /// Whether an object in `cluster_namespace`, not being deleted, has a
    /// name for which `wanted` holds.
    fn any_live(&self, cluster_namespace: &str, wanted: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Upstream::Own(store) => store
                .find(|o| {
                    o.metadata.deletion_timestamp.is_none()
                        && o.meta().name.as_deref().is_some_and(wanted)
                })
                .is_some(),
            Upstream::Shared(cache) => cache.any_live(cluster_namespace, wanted),
        }
    }
}

impl TypeState {
    /// A state with no copy applied yet.
    pub fn new(
        ty: SyncType,
        carrier: Carrier,
        up_ar: ApiResource,
        up: Upstream,
        down: Store<CopyRecord>,
    ) -> Self {
        Self {
            ty,
            carrier,
            up_ar,
            up,
            down,
            just_applied: Mutex::new(HashMap::new()),
            status_sent: StatusSent::default(),
        }
    }

    /// The cache reference of the copy at `target`.
    pub fn copy_ref(&self, target: &Target) -> ObjectRef<CopyRecord> {
        ObjectRef::new_with(&target.name, Arc::new(self.ty.ar.clone())).within(&target.namespace)
    }

    /// The cached copy at `target`.
    pub fn stored_copy(&self, target: &Target) -> Option<Arc<CopyRecord>> {
        self.down.get(&self.copy_ref(target))
    }

    /// Whether the copies' cache has listed once: from then on, a copy it
    /// does not hold was not there when the watch last said.
    pub fn copies_listed(&self) -> bool {
        self.down
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    }

    /// A sync applied the desired object marked `mark` at `target`, and the
    /// cluster answered `applied`: that version of the copy is up to date,
    /// with no need to compare it when the watch brings it (or has brought
    /// it already).
    pub fn applied(&self, target: &Target, applied: &CopyRecord, mark: u64) {
        let mut pending = self.just_applied.lock().unwrap_or_else(|p| p.into_inner());
        match self.stored_copy(target) {
            Some(stored) if stored.digest() == applied.digest() => {
                pending.remove(target);
                stored.verify(mark);
                debug!(copy = %target, "copy verified from the apply's answer");
            }
            _ => {
                pending.insert(target.clone(), (applied.digest(), mark));
            }
        }
    }

    /// The watch stored a new version of the copy at `target` (`old`: the
    /// version before): verified without a comparison when it is the one a
    /// sync applied, or when it differs from a verified `old` in nothing
    /// the syncer compares (a status update, say).
    pub fn copy_changed(&self, target: &Target, old: Option<&CopyRecord>) {
        let mut pending = self.just_applied.lock().unwrap_or_else(|p| p.into_inner());
        let Some(stored) = self.stored_copy(target) else {
            return;
        };
        let digest = stored.digest();
        let (mark, how) = match pending.get(target) {
            Some(&(applied, mark)) if applied == digest => {
                pending.remove(target);
                (Some(mark), "the version applied")
            }
            _ => (
                old.filter(|o| o.digest() == digest && o.verified() != 0)
                    .map(CopyRecord::verified),
                "unchanged but for status or bookkeeping",
            ),
        };
        drop(pending);
        if let Some(mark) = mark {
            stored.verify(mark);
            debug!(copy = %target, "copy verified as stored: {how}");
        }
    }

    /// The copy at `target` is gone: nothing applied there is pending.
    pub fn copy_deleted(&self, target: &Target) {
        self.just_applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(target);
    }

    /// Whether the upstream objects (not being deleted) in
    /// `cluster_namespace` or this syncer's cached copies have one in the
    /// downstream `namespace`.
    pub fn maps_into(&self, cluster_namespace: &str, namespace: &str) -> bool {
        let up = self.up.any_live(cluster_namespace, &|name| {
            Place::of_upstream(&self.ty.spec, name)
                .target()
                .is_some_and(|t| t.namespace == namespace)
        });
        up || self
            .down
            .state()
            .iter()
            .any(|o| o.namespace() == Some(namespace))
    }
}

/// One object of a synced type: its upstream name in the cluster namespace
/// and its downstream namespace and name, as far as they exist
/// ([`Place`]).
#[derive(Clone)]
pub struct Key {
    pub ty: Arc<TypeState>,
    pub place: Place,
}

impl Key {
    /// The key of the upstream object `name` (in the cluster namespace).
    pub fn of_upstream(ty: &Arc<TypeState>, name: &str) -> Self {
        Self {
            ty: ty.clone(),
            place: Place::of_upstream(&ty.ty.spec, name),
        }
    }

    /// The key of the downstream `copy`; `None` for a copy without a
    /// namespace or name (the syncer syncs namespaced objects only).
    pub fn of_downstream(ty: &Arc<TypeState>, copy: &CopyRecord) -> Option<Self> {
        let (namespace, name) = (copy.namespace()?, copy.name()?);
        Some(Self {
            ty: ty.clone(),
            place: Place::of_downstream(&ty.ty.spec, namespace, name),
        })
    }

    /// The cache reference of the downstream copy.
    pub fn downstream_ref(&self) -> Option<ObjectRef<CopyRecord>> {
        self.place.target().map(|t| self.ty.copy_ref(t))
    }
}

// Two keys are the same object when their types are the same `--resources`
// entry (one `TypeState` per entry and session) and their places are.
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.ty.ty.spec == other.ty.ty.spec && self.place == other.place
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ty.ty.spec.hash(state);
        self.place.hash(state);
    }
}

/// `resource.group namespace/name`, as logs and reports name an object:
/// its downstream name, or its upstream one when it maps to none.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Mapped { target, .. } | Place::Orphan(target) => {
                write!(f, "{} {target}", self.ty.ty.spec)
            }
            Place::Unmapped { upstream } => {
                write!(f, "{} {upstream} (upstream, unmapped)", self.ty.ty.spec)
            }
        }
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
    /// Since when each namespace the syncer may delete has had nothing
    /// mapped into it.
    unused: Mutex<HashMap<String, Instant>>,
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
            unused: Mutex::new(HashMap::new()),
            cancel,
        }
    }

    /// `namespace` has something mapped into it again.
    pub fn namespace_used(&self, namespace: &str) {
        self.unused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(namespace);
    }

    /// `namespace` has nothing mapped into it: `None` once that has been
    /// so for `grace`, else how long is left.
    pub fn namespace_unused(&self, namespace: &str, grace: Duration) -> Option<Duration> {
        let mut unused = self.unused.lock().unwrap_or_else(|p| p.into_inner());
        let since = *unused
            .entry(namespace.to_string())
            .or_insert_with(Instant::now);
        let left = grace.saturating_sub(since.elapsed());
        if left.is_zero() {
            unused.remove(namespace);
            None
        } else {
            Some(left)
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

    use kube::api::{ApiResource, DynamicObject};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::syncer::naming::ResourceSpec;

    fn type_state(resource: &str, group: &str) -> Arc<TypeState> {
        type_state_with_copies(resource, group).0
    }

    /// A type state and the writer of its copies' store.
    fn type_state_with_copies(resource: &str, group: &str) -> (Arc<TypeState>, Writer<CopyRecord>) {
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
        let spec = ResourceSpec {
            resource: resource.into(),
            group: group.into(),
        };
        let copies = Writer::<CopyRecord>::new(Arc::new(ar.clone()));
        let state = Arc::new(TypeState::new(
            SyncType {
                spec: spec.clone(),
                ar: ar.clone(),
                status_up: false,
            },
            Carrier::of(&spec),
            ar.clone(),
            Upstream::Own(Writer::<Cached>::new(Arc::new(ar.clone())).as_reader()),
            copies.as_reader(),
        ));
        (state, copies)
    }

    fn copy(host: &str, ip: &str) -> CopyRecord {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "d-1",
                         "annotations": {"kcp-ingress.dev/applied-hash": "h"}},
            "spec": {"rules": [{"host": host}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
        }))
        .unwrap()
    }

    fn shop_web() -> Target {
        Target {
            namespace: "shop".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn the_version_a_sync_applied_is_verified_whenever_the_watch_brings_it() {
        let (ty, mut copies) = type_state_with_copies("ingresses", "networking.k8s.io");
        let target = shop_web();
        // The watch brings the applied version after the apply's answer.
        ty.applied(&target, &copy("a", "1"), 7);
        copies.apply_watcher_event(&Event::Apply(copy("a", "1")));
        ty.copy_changed(&target, None);
        let stored = ty.stored_copy(&target).unwrap();
        assert_eq!((stored.verified(), stored.has_body()), (7, false));
        assert!(ty.just_applied.lock().unwrap().is_empty());
        // ... or before it.
        copies.apply_watcher_event(&Event::Apply(copy("b", "1")));
        ty.copy_changed(&target, Some(&stored));
        assert_eq!(ty.stored_copy(&target).unwrap().verified(), 0);
        ty.applied(&target, &copy("b", "1"), 8);
        assert_eq!(ty.stored_copy(&target).unwrap().verified(), 8);
        assert!(ty.just_applied.lock().unwrap().is_empty());
    }

    #[test]
    fn a_status_change_keeps_the_verification_an_edit_does_not() {
        let (ty, mut copies) = type_state_with_copies("ingresses", "networking.k8s.io");
        let target = shop_web();
        copies.apply_watcher_event(&Event::Apply(copy("a", "1")));
        let verified = ty.stored_copy(&target).unwrap();
        verified.verify(7);
        copies.apply_watcher_event(&Event::Apply(copy("a", "2")));
        ty.copy_changed(&target, Some(&verified));
        let status_changed = ty.stored_copy(&target).unwrap();
        assert_eq!(
            (status_changed.verified(), status_changed.has_body()),
            (7, false)
        );
        copies.apply_watcher_event(&Event::Apply(copy("hijacked", "2")));
        ty.copy_changed(&target, Some(&status_changed));
        let edited = ty.stored_copy(&target).unwrap();
        assert_eq!((edited.verified(), edited.has_body()), (0, true));
        // An applied version the watch has not brought yet stays pending
        // until it does, or the copy goes.
        ty.applied(&target, &copy("a", "2"), 9);
        assert_eq!(ty.just_applied.lock().unwrap().len(), 1);
        ty.copy_deleted(&target);
        assert!(ty.just_applied.lock().unwrap().is_empty());
    }

    fn key(ty: &Arc<TypeState>, upstream: &str) -> Key {
        Key {
            ty: ty.clone(),
            place: Place::of_upstream(&ty.ty.spec, upstream),
        }
    }

    #[test]
    #[expect(
        clippy::mutable_key_type,
        reason = "a key hashes its type's spec and place, never the caches"
    )]
    fn keys_are_the_same_object_by_type_and_place() {
        let services = type_state("services", "");
        let secrets = type_state("secrets", "");
        let mut keys = HashSet::new();
        assert!(keys.insert(key(&services, "a.x.services")));
        assert!(!keys.insert(key(&services, "a.x.services")));
        assert!(keys.insert(key(&secrets, "a.x")));
        assert!(keys.insert(key(&services, "b.x.services")));
        assert!(keys.insert(key(&services, "nothing")));
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn a_key_names_its_object() {
        let ingresses = type_state("ingresses", "networking.k8s.io");
        assert_eq!(
            key(&ingresses, "shop.web--east").to_string(),
            "ingresses.networking.k8s.io shop/web--east"
        );
        assert_eq!(
            key(&ingresses, "web").to_string(),
            "ingresses.networking.k8s.io web (upstream, unmapped)"
        );
    }

    #[test]
    fn both_sides_give_the_same_key() {
        let services = type_state("services", "");
        let mut up = DynamicObject::new("shop.web.services", &services.ty.ar);
        up.metadata.namespace = Some("kcp-ingress-cluster-east".into());
        let record = |metadata: serde_json::Value| -> CopyRecord {
            serde_json::from_value(serde_json::json!({"metadata": metadata})).unwrap()
        };
        assert!(
            Key::of_downstream(&services, &record(serde_json::json!({"name": "web"}))).is_none()
        );
        let down = record(serde_json::json!({"name": "web", "namespace": "shop"}));
        let (u, d) = (
            Key::of_upstream(&services, &up.metadata.name.clone().unwrap()),
            Key::of_downstream(&services, &down).unwrap(),
        );
        assert!(u == d);
        assert_eq!(u.place.upstream(), Some("shop.web.services"));
        assert_eq!(
            d.downstream_ref().and_then(|r| r.namespace),
            Some("shop".to_string())
        );
    }
}
