//! The controller's watches, through [`runtime::Watch`]: one per type,
//! each feeding a cache and routing its changes to the roots and
//! dependencies they affect; and the cluster-health tick.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PartialObjectMeta};
use kube::core::SelectorExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::debug;

use super::context::{Caches, Triggers};
use super::decide;
use super::dependencies::DepKind;
use super::index::Index;
use super::kind::RootKind;
use super::memory::Memory;
use super::placement;
use crate::apis::{Cluster, GlobalIngress};
use crate::runtime::metrics::Metrics;
use crate::runtime::{CancellationToken, Change, Readiness, Watch};

/// What the routing of changes updates and where it sends work.
#[derive(Clone)]
pub struct Routing<K: RootKind> {
    pub index: Arc<Index>,
    pub memory: Arc<Memory>,
    pub triggers: Triggers<K>,
}

/// Starts every watch, registered with `readiness`; each runs until `shutdown`.
pub fn start<K: RootKind>(
    client: &kube::Client,
    routing: &Routing<K>,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Caches<K> {
    // Nothing the controller does with roots and GlobalIngresses reads their
    // managedFields (unlike the Services' and Secrets', whose label
    // ownership it checks): dropping them keeps those caches at about half
    // the memory.
    let (roots, changes) = Watch::new(K::plural(&()).into_owned(), Api::<K>::all(client.clone()))
        .without_managed_fields()
        .changes(readiness, shutdown);
    {
        let (routing, store) = (routing.clone(), roots.clone());
        tokio::spawn(changes.for_each(move |change| {
            on_root_kind(change, &routing, &store);
            futures::future::ready(())
        }));
    }
    let clusters = {
        let (triggers, roots) = (routing.triggers.clone(), roots.clone());
        Watch::new("clusters", Api::<Cluster>::all(client.clone())).spawn(
            readiness,
            shutdown,
            move |change| on_cluster(change, &triggers, &roots),
        )
    };
    let services = {
        let routing = routing.clone();
        Watch::new(
            "services",
            Api::<PartialObjectMeta<Service>>::all(client.clone()),
        )
        .spawn(readiness, shutdown, move |change| {
            on_dependency(change, DepKind::Service, &routing)
        })
    };
    let secrets = {
        let routing = routing.clone();
        Watch::new(
            "secrets",
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        )
        .spawn(readiness, shutdown, move |change| {
            on_dependency(change, DepKind::Secret, &routing)
        })
    };
    let (globals, changes) =
        Watch::new("globalingresses", Api::<GlobalIngress>::all(client.clone()))
            .without_managed_fields()
            .changes(readiness, shutdown);
    {
        let (triggers, roots, store) = (routing.triggers.clone(), roots.clone(), globals.clone());
        tokio::spawn(changes.for_each(move |change| {
            on_global(change, &triggers, &roots, &store);
            futures::future::ready(())
        }));
    }
    Caches {
        roots,
        clusters,
        services,
        secrets,
        globals,
    }
}

/// A root or leaf changed: its root reconciles; the index follows, and the
/// dependencies it stopped referencing are re-placed. A root that goes is
/// forgotten.
fn on_root_kind<K: RootKind>(change: Change<K>, routing: &Routing<K>, store: &Store<K>) {
    let Routing {
        index,
        memory,
        triggers,
    } = routing;
    let route = |object: &K| {
        let ns = object.namespace().unwrap_or_default();
        if K::is_root(object) {
            triggers.root(&ns, &object.name_any());
        } else if let Some(root) = K::root_of_leaf(object) {
            triggers.root(&ns, &root);
        }
    };
    match change {
        Change::Applied { old, new } => {
            for dropped in index.upsert(&new) {
                triggers.dependency(&dropped);
            }
            // A root that became a leaf (or back) must also reconcile as what it was.
            if let Some(old) = old.filter(|o| K::is_root(o) != K::is_root(&new)) {
                route(&old);
            }
            route(&new);
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
            route(&object);
        }
        Change::Relisted => {
            let all = store.state();
            index.rebuild(all.iter().map(|o| o.as_ref()));
            let live: HashSet<String> = all
                .iter()
                .filter(|o| K::is_root(o))
                .filter_map(|o| o.uid())
                .collect();
            memory.retain(&live);
            for object in &all {
                route(object);
            }
            for dep in index.all_dependencies() {
                triggers.dependency(&dep);
            }
        }
        Change::Failed(_) | Change::Restored => {}
    }
}

/// The roots whose placement selector matches any of `label_sets`.
fn roots_matching<K: RootKind>(
    roots: &Store<K>,
    label_sets: &[&BTreeMap<String, String>],
    triggers: &Triggers<K>,
) {
    for root in roots.state().iter().filter(|o| K::is_root(o)) {
        let Ok(selector) = placement::parse_selector(decide::selector_text(root.as_ref())) else {
            continue;
        };
        if label_sets.iter().any(|l| selector.matches(l)) {
            triggers.root(&root.namespace().unwrap_or_default(), &root.name_any());
        }
    }
}

/// A Cluster's labels, schedulability or existence changed: re-place the
/// roots it matched before or matches now. Health is followed separately.
fn on_cluster<K: RootKind>(change: Change<Cluster>, triggers: &Triggers<K>, roots: &Store<K>) {
    match change {
        Change::Applied {
            old: Some(old),
            new,
        } => {
            let placement_changed = old.labels() != new.labels()
                || old.spec.unschedulable != new.spec.unschedulable
                || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp;
            if placement_changed {
                roots_matching(roots, &[old.labels(), new.labels()], triggers);
            }
        }
        Change::Applied { old: None, new } => roots_matching(roots, &[new.labels()], triggers),
        Change::Deleted(old) => roots_matching(roots, &[old.labels()], triggers),
        // Anything may have changed while the watch was down: re-place every root.
        Change::Relisted => {
            for root in roots.state().iter().filter(|o| K::is_root(o)) {
                triggers.root(&root.namespace().unwrap_or_default(), &root.name_any());
            }
        }
        Change::Failed(_) | Change::Restored => {}
    }
}

/// A Service or Secret changed: its labels are reconciled, and the roots
/// that reference it report whether it exists.
fn on_dependency<D: Resource<DynamicType = ()>, K: RootKind>(
    change: Change<PartialObjectMeta<D>>,
    kind: DepKind,
    routing: &Routing<K>,
) {
    let Routing {
        index,
        memory,
        triggers,
    } = routing;
    match change {
        Change::Applied { new, .. } => {
            let key = (kind, new.namespace().unwrap_or_default(), new.name_any());
            triggers.dependency(&key);
            for root in index.dependents(&key) {
                triggers.root(&key.1, &root);
            }
        }
        Change::Deleted(object) => {
            let key = (
                kind,
                object.namespace().unwrap_or_default(),
                object.name_any(),
            );
            memory.dependency_succeeded(&key);
            for root in index.dependents(&key) {
                triggers.root(&key.1, &root);
            }
        }
        Change::Relisted => {
            for dep in index.all_dependencies().into_iter().filter(|d| d.0 == kind) {
                triggers.dependency(&dep);
            }
        }
        Change::Failed(_) | Change::Restored => {}
    }
}

/// A GlobalIngress changed: the root of its name reconciles (it rewrites
/// what it owns there), and the GlobalIngress is checked for being an
/// orphan (after a re-list, every one is).
fn on_global<K: RootKind>(
    change: Change<GlobalIngress>,
    triggers: &Triggers<K>,
    roots: &Store<K>,
    globals: &Store<GlobalIngress>,
) {
    let (global, applied) = match change {
        Change::Applied { new, .. } => (new, true),
        Change::Deleted(object) => (object, false),
        Change::Relisted => {
            for global in globals.state() {
                triggers.global(&global.namespace().unwrap_or_default(), &global.name_any());
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
    if roots.get(&ObjectRef::new(&name).within(&ns)).is_some() {
        triggers.root(&ns, &name);
    }
}

/// How often cluster health is re-evaluated: a heartbeat ages past the
/// threshold without any object changing.
const HEALTH_TICK: Duration = Duration::from_millis(500);

/// Re-places the roots of every cluster whose health flips, whether by a
/// status change or by its heartbeat growing too old, until `work` ends.
pub async fn follow_cluster_health<K: RootKind>(
    clusters: Store<Cluster>,
    roots: Store<K>,
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
