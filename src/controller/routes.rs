//! The controller's watches, through [`runtime::Watch`]: one per type,
//! each feeding a cache and routing its changes to the roots, dependencies
//! and cluster namespaces they affect; and the cluster-health tick. Each
//! root kind watches its own objects; the other watches are shared by
//! every kind ([`start_shared`]): one cache each, every change handed to
//! every kind's routing.
//!
//! API calls (list/watch, all namespaces): the root kind (roots and
//! leaves), clusters, globalingresses, placedobjects; the metadata only of
//! services, secrets and configmaps (users' objects and the copies in
//! cluster namespaces); and leases named `kcp-ingress-glbc-presence`
//! (field selector on the name: the glbcs' presence).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PartialObjectMeta};
use kube::core::SelectorExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::debug;

use super::context::{Shared, Triggers};
use super::copies;
use super::dependencies::{DepKey, DepKind};
use super::index::Index;
use super::kind::{self, RootKind};
use super::memory::Memory;
use super::naming;
use super::placement;
use super::slim;
use crate::apis::{Cluster, GlobalIngress, PlacedObject};
use crate::gateway_api::reference_grant::ReferenceGrant;
use crate::labels;
use crate::mailbox;
use crate::runtime::compact::Compact;
use crate::runtime::metrics::Metrics;
use crate::runtime::stored::Stored;
use crate::runtime::{CancellationToken, Change, Readiness, Watch};
use crate::syncer::shared::Feed;

/// What the routing of changes updates and where it sends work.
pub struct Routing<K: RootKind> {
    pub index: Arc<Index>,
    pub memory: Arc<Memory>,
    pub triggers: Triggers<K>,
    /// What the kind reads besides its own objects (for its dependencies).
    pub world: Arc<K::World>,
}

impl<K: RootKind> Clone for Routing<K> {
    fn clone(&self) -> Self {
        Self {
            index: self.index.clone(),
            memory: self.memory.clone(),
            triggers: self.triggers.clone(),
            world: self.world.clone(),
        }
    }
}

/// Starts the watch of the root kind `K` (roots and leaves), registered
/// with `readiness`, until `shutdown`; each change also goes to `feed`
/// (the push-mode syncers), when given.
pub fn start_roots<K: RootKind>(
    client: &kube::Client,
    routing: &Routing<K>,
    feed: Option<Arc<Feed<K, K::Stored>>>,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Store<K::Stored> {
    // Nothing the controller does with roots and GlobalIngresses reads their
    // managedFields (unlike the Services' and Secrets', whose label
    // ownership it checks): dropping them keeps those caches at about half
    // the memory.
    let (roots, changes) = Watch::new(K::plural(&()).into_owned(), Api::<K>::all(client.clone()))
        .without_managed_fields()
        .stored_changes::<K::Stored>(readiness, shutdown);
    {
        let (routing, store) = (routing.clone(), roots.clone());
        if let Some(feed) = &feed {
            feed.set_store(roots.clone());
        }
        tokio::spawn(changes.for_each(move |change| {
            if let Some(feed) = &feed {
                feed.publish(&change);
            }
            on_root_kind(change, &routing, &store);
            futures::future::ready(())
        }));
    }
    roots
}

/// A change of a GlobalIngress: the object as read, its store's compact form.
pub type Globals = Change<GlobalIngress, Compact<GlobalIngress>>;

/// One root kind's routing of the changes the shared watches see.
pub trait KindRoutes: Send + Sync {
    fn cluster(&self, change: Change<Cluster>, clusters: &Store<Cluster>);
    fn object(&self, kind: DepKind, meta: &kube::core::ObjectMeta, present: bool);
    fn relisted(&self, kind: DepKind);
    fn placed(&self, change: Change<PlacedObject>, store: &Store<PlacedObject>);
    fn global(&self, change: Globals, store: &Store<Compact<GlobalIngress>>);
}

/// A kind's routing with its roots' cache.
pub struct KindRouter<K: RootKind> {
    pub routing: Routing<K>,
    pub roots: Store<K::Stored>,
}

impl<K: RootKind> KindRoutes for KindRouter<K> {
    fn cluster(&self, change: Change<Cluster>, clusters: &Store<Cluster>) {
        on_cluster(change, &self.routing, &self.roots, clusters);
    }

    fn object(&self, kind: DepKind, meta: &kube::core::ObjectMeta, present: bool) {
        route_object(kind, meta, present, &self.routing);
    }

    fn relisted(&self, kind: DepKind) {
        relisted(kind, &self.routing);
    }

    fn placed(&self, change: Change<PlacedObject>, store: &Store<PlacedObject>) {
        on_placed(change, &self.routing, store);
    }

    fn global(&self, change: Globals, store: &Store<Compact<GlobalIngress>>) {
        on_global(change, &self.routing.triggers, &self.roots, store);
    }
}

/// Every kind's routing of the shared watches' changes.
pub type Kinds = Arc<[Arc<dyn KindRoutes>]>;

/// Starts the shared watches, registered with `readiness`; each runs until
/// `shutdown` and hands every change to every kind.
pub fn start_shared(
    client: &kube::Client,
    gateway_api: bool,
    kinds: &Kinds,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Shared {
    let (clusters, changes) =
        Watch::new("clusters", Api::<Cluster>::all(client.clone())).changes(readiness, shutdown);
    {
        let (kinds, store) = (kinds.clone(), clusters.clone());
        tokio::spawn(changes.for_each(move |change| {
            for k in kinds.iter() {
                k.cluster(change.clone(), &store);
            }
            futures::future::ready(())
        }));
    }
    let services = watch_metadata::<Service>(
        client,
        "services",
        DepKind::Service,
        kinds,
        readiness,
        shutdown,
    );
    let secrets = watch_metadata::<Secret>(
        client,
        "secrets",
        DepKind::Secret,
        kinds,
        readiness,
        shutdown,
    );
    let configmaps = watch_metadata::<ConfigMap>(
        client,
        "configmaps",
        DepKind::ConfigMap,
        kinds,
        readiness,
        shutdown,
    );
    let grants = gateway_api.then(|| {
        watch_metadata::<ReferenceGrant>(
            client,
            "referencegrants (metadata)",
            DepKind::ReferenceGrant,
            kinds,
            readiness,
            shutdown,
        )
    });
    let (placed, changes) = Watch::new("placedobjects", Api::<PlacedObject>::all(client.clone()))
        .without_managed_fields()
        .changes(readiness, shutdown);
    {
        let (kinds, store) = (kinds.clone(), placed.clone());
        tokio::spawn(changes.for_each(move |change| {
            for k in kinds.iter() {
                k.placed(change.clone(), &store);
            }
            futures::future::ready(())
        }));
    }
    let (globals, changes) =
        Watch::new("globalingresses", Api::<GlobalIngress>::all(client.clone()))
            .without_managed_fields()
            .slim(slim::global_ingress)
            .stored_changes::<Compact<GlobalIngress>>(readiness, shutdown);
    {
        let (kinds, store) = (kinds.clone(), globals.clone());
        tokio::spawn(changes.for_each(move |change| {
            for k in kinds.iter() {
                k.global(change.clone(), &store);
            }
            futures::future::ready(())
        }));
    }
    // Whether a glbc is live decides only how new GlobalIngresses are
    // created (with its finalizer or not): nothing waits for this watch,
    // and a change triggers nothing.
    let presence = Watch::new("glbc presence leases", Api::<Lease>::all(client.clone()))
        .config(
            watcher::Config::default()
                .fields(&format!("metadata.name={}", labels::GLBC_PRESENCE_LEASE)),
        )
        .without_managed_fields()
        .spawn(&Readiness::default(), shutdown, |_| {});
    Shared {
        clusters,
        services,
        secrets,
        configmaps,
        placed,
        globals,
        grants,
        presence,
    }
}

/// A root or leaf changed: its root reconciles; the index follows, and the
/// dependencies it stopped referencing are re-placed. A root that goes is
/// forgotten.
fn on_root_kind<K: RootKind>(
    change: Change<K, K::Stored>,
    routing: &Routing<K>,
    store: &Store<K::Stored>,
) {
    let Routing {
        index,
        memory,
        triggers,
        world,
    } = routing;
    // A leaf reconciles its root, or itself when it has none (an orphan,
    // deleted then); a gone Cluster's namespace is emptied.
    let route = |object: Routed| {
        let Routed {
            namespace: ns,
            name,
            is_root,
            root_of_leaf,
        } = object;
        if is_root {
            triggers.root(&ns, &name);
            return;
        }
        if naming::is_cluster_namespace(&ns) {
            triggers.cluster_namespace(&ns);
        }
        let roots = root_of_leaf
            .map(|(root_ns, label)| (index.roots_labelled(&root_ns, &label), root_ns))
            .filter(|(roots, _)| !roots.is_empty());
        match roots {
            Some((roots, root_ns)) => {
                for root in roots {
                    triggers.root(&root_ns, &root);
                }
            }
            None => triggers.root(&ns, &name),
        }
    };
    match change {
        Change::Applied { old, new } => {
            for dropped in index.upsert(&new, world) {
                triggers.dependency(&dropped);
            }
            // A root that became a leaf (or back) must also reconcile as what it was.
            if let Some(old) = old.filter(|o| kind::is_root::<K>(o) != K::is_root(&new)) {
                route(Routed::stored::<K>(&old));
            }
            route(Routed::typed(&new));
        }
        Change::Deleted(object) => {
            for dropped in index.remove(&object) {
                triggers.dependency(&dropped);
            }
            if let Some(uid) = object.uid() {
                memory.forget(&uid);
            }
            if K::is_root(&object) {
                // Its GlobalIngress, if one is left, is now an orphan.
                triggers.global(&object.namespace().unwrap_or_default(), &object.name_any());
            }
            route(Routed::typed(&object));
        }
        Change::Relisted => {
            let all = store.state();
            // One parse per object (a compact store), one object at a
            // time (all of them typed at once would be the memory the
            // compact store saves): the index reads what each references,
            // the memory the live roots' uids.
            let mut live: HashSet<String> = HashSet::new();
            index.rebuild::<K>(
                all.iter().filter_map(K::Stored::typed).inspect(|o| {
                    if let Some(uid) = o.uid().filter(|_| K::is_root(o)) {
                        live.insert(uid);
                    }
                }),
                world,
            );
            memory.retain(&live);
            for object in &all {
                route(Routed::stored::<K>(object));
            }
            for dep in index.all_dependencies() {
                triggers.dependency(&dep);
            }
        }
        Change::Failed(_) | Change::Restored => {}
    }
}

/// What routing a root or leaf reads of it: the same of a typed object
/// and of its stored form.
struct Routed {
    namespace: String,
    name: String,
    is_root: bool,
    root_of_leaf: Option<(String, String)>,
}

impl Routed {
    fn typed<K: RootKind>(object: &K) -> Self {
        Self {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            is_root: K::is_root(object),
            root_of_leaf: naming::root_of_leaf(object.meta()),
        }
    }

    fn stored<K: RootKind>(object: &K::Stored) -> Self {
        Self {
            namespace: object.stored_namespace().unwrap_or_default().to_string(),
            name: object.stored_name().to_string(),
            is_root: kind::is_root::<K>(object),
            root_of_leaf: kind::root_of_leaf::<K>(object),
        }
    }
}

/// The roots whose placement selector matches any of `label_sets` (no
/// parse of a compact store: the selector is kept typed).
fn roots_matching<K: RootKind>(
    roots: &Store<K::Stored>,
    label_sets: &[&BTreeMap<String, String>],
    triggers: &Triggers<K>,
) {
    for root in roots.state().iter().filter(|o| kind::is_root::<K>(o)) {
        let Ok(selector) = placement::parse_selector(kind::stored_selector::<K>(root)) else {
            continue;
        };
        if label_sets.iter().any(|l| selector.matches(l)) {
            triggers.root(
                root.stored_namespace().unwrap_or_default(),
                root.stored_name(),
            );
        }
    }
}

/// A Cluster's labels, schedulability or existence changed: re-place the
/// roots it matched before or matches now, and ensure (or, when it is gone,
/// empty) its namespace. Health is followed separately.
fn on_cluster<K: RootKind>(
    change: Change<Cluster>,
    routing: &Routing<K>,
    roots: &Store<K::Stored>,
    clusters: &Store<Cluster>,
) {
    let Routing {
        memory, triggers, ..
    } = routing;
    let namespace = |c: &Cluster| mailbox::cluster_namespace(&c.name_any());
    match change {
        Change::Applied {
            old: Some(old),
            new,
        } => {
            triggers.cluster_namespace(&namespace(&new));
            let placement_changed = old.labels() != new.labels()
                || old.spec.unschedulable != new.spec.unschedulable
                || drain_time(&old) != drain_time(&new)
                || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp;
            if placement_changed {
                roots_matching(roots, &[old.labels(), new.labels()], triggers);
            }
        }
        Change::Applied { old: None, new } => {
            triggers.cluster_namespace(&namespace(&new));
            roots_matching(roots, &[new.labels()], triggers);
        }
        Change::Deleted(old) => {
            memory.set_departed(&namespace(&old), true);
            triggers.cluster_namespace(&namespace(&old));
            roots_matching(roots, &[old.labels()], triggers);
        }
        // Anything may have changed while the watch was down: ensure every
        // namespace, re-place every root.
        Change::Relisted => {
            for cluster in clusters.state() {
                triggers.cluster_namespace(&namespace(&cluster));
            }
            for root in roots.state().iter().filter(|o| kind::is_root::<K>(o)) {
                triggers.root(
                    root.stored_namespace().unwrap_or_default(),
                    root.stored_name(),
                );
            }
        }
        Change::Failed(_) | Change::Restored => {}
    }
}

/// A user's object or a copy changed. A user's Service, Secret or
/// ConfigMap: its copies are reconciled, and the roots that reference it
/// report whether it exists. A copy in a cluster namespace: the index
/// follows, its origin's copies are reconciled (a copy deleted by someone
/// else comes back), and the roots of its origin read its conflicts.
fn route_object<K: RootKind>(
    kind: DepKind,
    meta: &kube::core::ObjectMeta,
    present: bool,
    routing: &Routing<K>,
) {
    let Routing {
        index,
        memory,
        triggers,
        ..
    } = routing;
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let key: DepKey = if naming::is_cluster_namespace(&ns) {
        let Some(origin) = copies::origin_of_copy(kind, &name) else {
            return;
        };
        index.set_copy(&origin, &ns, present);
        triggers.cluster_namespace(&ns);
        origin
    } else {
        let key = (kind, ns, name);
        if !present {
            memory.dependency_succeeded(&key);
        }
        key
    };
    triggers.dependency(&key);
    for (root_ns, root) in index.dependents(&key) {
        triggers.root(&root_ns, &root);
    }
}

/// The metadata watch of a kind of dependency (users' objects and copies, all namespaces).
fn watch_metadata<D>(
    client: &kube::Client,
    what: &str,
    kind: DepKind,
    kinds: &Kinds,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Store<PartialObjectMeta<D>>
where
    D: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, changes) = Watch::new(what, Api::<PartialObjectMeta<D>>::all(client.clone()))
        .changes(readiness, shutdown);
    let (kinds, reader) = (kinds.clone(), store.clone());
    tokio::spawn(changes.for_each(move |change| {
        on_dependency(change, kind, &kinds, &reader);
        futures::future::ready(())
    }));
    store
}

/// A Service, Secret or ConfigMap changed (a user's or a copy).
fn on_dependency<D: Resource<DynamicType = ()> + Clone>(
    change: Change<PartialObjectMeta<D>>,
    kind: DepKind,
    kinds: &Kinds,
    store: &Store<PartialObjectMeta<D>>,
) {
    match change {
        Change::Applied { new, .. } => {
            for k in kinds.iter() {
                k.object(kind, &new.metadata, true);
            }
        }
        Change::Deleted(object) => {
            for k in kinds.iter() {
                k.object(kind, &object.metadata, false);
            }
        }
        Change::Relisted => {
            for object in store.state() {
                let meta = &object.metadata;
                let ns = meta.namespace.as_deref().unwrap_or_default();
                if naming::is_cluster_namespace(ns)
                    || !copies::hand_placed_clusters(meta).is_empty()
                {
                    for k in kinds.iter() {
                        k.object(kind, meta, true);
                    }
                }
            }
            for k in kinds.iter() {
                k.relisted(kind);
            }
        }
        Change::Failed(_) | Change::Restored => {}
    }
}

/// After a re-list, every dependency of `kind` that roots reference or that
/// has copies is reconciled.
fn relisted<K: RootKind>(kind: DepKind, routing: &Routing<K>) {
    let Routing {
        index, triggers, ..
    } = routing;
    for dep in index
        .all_dependencies()
        .into_iter()
        .chain(index.all_copied())
        .filter(|d| d.0 == kind)
    {
        triggers.dependency(&dep);
    }
}

/// A `PlacedObject` changed: the copy of a Service (the controller's), or
/// one placed by hand (left alone).
fn on_placed<K: RootKind>(
    change: Change<PlacedObject>,
    routing: &Routing<K>,
    store: &Store<PlacedObject>,
) {
    // The copy of a Service or a ReferenceGrant, by its resource label.
    let kind_of = |p: &PlacedObject| {
        [DepKind::Service, DepKind::ReferenceGrant]
            .into_iter()
            .find(|kind| {
                let (plural, group) = copies::resource(*kind);
                p.labels().get(labels::PLACED_RESOURCE_LABEL)
                    == Some(&mailbox::placed_resource_label_value(plural, group))
            })
    };
    match change {
        Change::Applied { new, .. } => {
            if let Some(kind) = kind_of(&new) {
                route_object(kind, &new.metadata, true, routing)
            }
        }
        Change::Deleted(old) => {
            if let Some(kind) = kind_of(&old) {
                route_object(kind, &old.metadata, false, routing)
            }
        }
        Change::Relisted => {
            for placed in store.state() {
                if let Some(kind) = kind_of(&placed) {
                    route_object(kind, &placed.metadata, true, routing);
                }
            }
            relisted(DepKind::Service, routing);
            relisted(DepKind::ReferenceGrant, routing);
        }
        _ => {}
    }
}

/// A GlobalIngress changed: the root of its name reconciles (it rewrites
/// what it owns there), and the GlobalIngress is checked for being an
/// orphan (after a re-list, every one is).
fn on_global<K: RootKind>(
    change: Globals,
    triggers: &Triggers<K>,
    roots: &Store<K::Stored>,
    globals: &Store<Compact<GlobalIngress>>,
) {
    let (global, applied) = match change {
        Change::Applied { new, .. } => (new, true),
        Change::Deleted(object) => (object, false),
        Change::Relisted => {
            for global in globals.state() {
                triggers.global(
                    global.namespace().unwrap_or_default(),
                    global.name().unwrap_or_default(),
                );
            }
            return;
        }
        Change::Failed(_) | Change::Restored => return,
    };
    let ns = global.namespace().unwrap_or_default();
    let name = global.name_any();
    if applied {
        triggers.global(&ns, &name);
    }
    // The root of kind `K` that controls it, and the one whose
    // GlobalIngress would have its name (it may be waiting for the name).
    let controller = global
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .filter(|o| o.kind == K::kind(&()) && o.api_version == K::api_version(&()))
        .map(|o| o.name.clone());
    let by_name = [
        Some(name.clone()),
        name.strip_suffix(labels::gateway_api::GLOBAL_SUFFIX)
            .map(str::to_string),
    ]
    .into_iter()
    .flatten()
    .filter(|root| K::global_name(root).as_deref() == Some(name.as_str()));
    for root in controller.into_iter().chain(by_name) {
        if roots.get(&ObjectRef::new(&root).within(&ns)).is_some() {
            triggers.root(&ns, &root);
        }
    }
}

/// How often cluster health is re-evaluated: a heartbeat ages past the
/// threshold without any object changing.
const HEALTH_TICK: Duration = Duration::from_millis(500);

/// Re-places the roots of every cluster whose health flips, whether by a
/// status change or by its heartbeat growing too old, until `work` ends.
pub async fn follow_cluster_health<K: RootKind>(
    clusters: Store<Cluster>,
    roots: Store<K::Stored>,
    triggers: Triggers<K>,
    threshold: Duration,
    metrics: Arc<Metrics>,
    work: CancellationToken,
) {
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut tick = tokio::time::interval(HEALTH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while work.run_until_cancelled(tick.tick()).await.is_some() {
        let now = Timestamp::now();
        let all = clusters.state();
        let healthy = all.iter().filter(|c| c.is_healthy(now, threshold)).count();
        metrics
            .healthy_clusters
            .set(i64::try_from(healthy).unwrap_or(i64::MAX));
        known.retain(|name, _| all.iter().any(|c| c.name_any() == *name));
        for cluster in all {
            let name = cluster.name_any();
            let healthy = cluster.is_healthy(now, threshold);
            if known
                .insert(name.clone(), healthy)
                .is_some_and(|was| was != healthy)
            {
                debug!(cluster = %name, healthy, "cluster health changed");
                roots_matching(&roots, &[cluster.labels()], &triggers);
            }
        }
    }
}

/// When the glbc says a Cluster's drain completes (its leaves may go then).
fn drain_time(cluster: &Cluster) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    cluster.status.as_ref()?.drain_complete_time.as_ref()
}
