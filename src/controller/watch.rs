//! The controller's watches: one per type, each feeding a cache and routing
//! its changes to the roots and dependencies they affect.

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PartialObjectMeta};
use kube::core::SelectorExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::index::{DepKind, Index};
use super::placement;
use super::reconcile::Triggers;
use super::split;
use crate::apis::{Cluster, GlobalIngress};
use crate::labels;
use crate::runtime::CancellationToken;

/// The caches of every watched type.
pub struct Caches {
    pub ingresses: Store<Ingress>,
    pub clusters: Store<Cluster>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub globals: Store<GlobalIngress>,
}

impl Caches {
    /// Waits until every cache holds a full list (or shutdown).
    pub async fn wait_until_ready(&self, shutdown: &CancellationToken) {
        let all = async {
            let _ = self.ingresses.wait_until_ready().await;
            let _ = self.clusters.wait_until_ready().await;
            let _ = self.services.wait_until_ready().await;
            let _ = self.secrets.wait_until_ready().await;
            let _ = self.globals.wait_until_ready().await;
        };
        tokio::select! {
            _ = all => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// A change seen by a watch, after the cache has taken it in.
enum Change<K> {
    Applied {
        old: Option<Arc<K>>,
        new: K,
    },
    Deleted(K),
    /// A full (re)list replaced the cache.
    Relisted,
}

/// Starts every watch; each runs until `shutdown`.
pub fn start(
    client: &kube::Client,
    index: &Arc<Index>,
    triggers: &Triggers,
    shutdown: &CancellationToken,
) -> Caches {
    let (ingresses, writer) = reflector::store();
    {
        let (index, triggers, reader) = (index.clone(), triggers.clone(), ingresses.clone());
        let stream = watcher(
            Api::<Ingress>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(without_managed_fields);
        tokio::spawn(reflect(
            "ingresses",
            stream,
            writer,
            shutdown.clone(),
            move |change| on_ingress(change, &index, &triggers, &reader),
        ));
    }
    let (clusters, writer) = reflector::store();
    {
        let (triggers, roots) = (triggers.clone(), ingresses.clone());
        let stream = watcher(
            Api::<Cluster>::all(client.clone()),
            watcher::Config::default(),
        );
        tokio::spawn(reflect(
            "clusters",
            stream,
            writer,
            shutdown.clone(),
            move |change| on_cluster(change, &triggers, &roots),
        ));
    }
    let (services, writer) = reflector::store();
    {
        let (triggers, index) = (triggers.clone(), index.clone());
        let stream = watcher(
            Api::<PartialObjectMeta<Service>>::all(client.clone()),
            watcher::Config::default(),
        );
        tokio::spawn(reflect(
            "services",
            stream,
            writer,
            shutdown.clone(),
            move |change| on_dependency(change, DepKind::Service, &triggers, &index),
        ));
    }
    let (secrets, writer) = reflector::store();
    {
        let (triggers, index) = (triggers.clone(), index.clone());
        let stream = watcher(
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            watcher::Config::default(),
        );
        tokio::spawn(reflect(
            "secrets",
            stream,
            writer,
            shutdown.clone(),
            move |change| on_dependency(change, DepKind::Secret, &triggers, &index),
        ));
    }
    let (globals, writer) = reflector::store();
    {
        let (triggers, roots) = (triggers.clone(), ingresses.clone());
        let stream = watcher(
            Api::<GlobalIngress>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(without_managed_fields);
        tokio::spawn(reflect(
            "globalingresses",
            stream,
            writer,
            shutdown.clone(),
            move |change| on_global(change, &triggers, &roots),
        ));
    }
    Caches {
        ingresses,
        clusters,
        services,
        secrets,
        globals,
    }
}

/// Nothing the controller does with Ingresses and GlobalIngresses reads
/// their managedFields (unlike the Services' and Secrets', whose label
/// ownership it checks): dropping them keeps the caches at about half the
/// memory.
fn without_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Drives one watch: every event goes into the cache first, then to `on_change`.
async fn reflect<K>(
    what: &'static str,
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    mut writer: reflector::store::Writer<K>,
    shutdown: CancellationToken,
    mut on_change: impl FnMut(Change<K>) + Send,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let reader = writer.as_reader();
    let mut stream = pin!(stream.default_backoff());
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        match event {
            Some(Ok(event)) => {
                let old = match &event {
                    Event::Apply(obj) => reader.get(&ObjectRef::from_obj(obj)),
                    _ => None,
                };
                writer.apply_watcher_event(&event);
                match event {
                    Event::Apply(new) => on_change(Change::Applied { old, new }),
                    Event::Delete(obj) => on_change(Change::Deleted(obj)),
                    Event::InitDone => {
                        debug!(what, objects = reader.len(), "listed");
                        on_change(Change::Relisted)
                    }
                    Event::Init | Event::InitApply(_) => {}
                }
            }
            Some(Err(err)) => warn!(what, %err, "watch failed; retrying with backoff"),
            None => return,
        }
    }
}

/// The root a leaf belongs to: its controller owner reference.
fn root_of_leaf(leaf: &Ingress) -> Option<String> {
    leaf.owner_references()
        .iter()
        .find(|o| o.kind == "Ingress" && o.controller == Some(true))
        .map(|o| o.name.clone())
}

fn on_ingress(change: Change<Ingress>, index: &Index, triggers: &Triggers, store: &Store<Ingress>) {
    let route = |ingress: &Ingress| {
        let ns = ingress.namespace().unwrap_or_default();
        if split::is_root(ingress) {
            triggers.root(&ns, &ingress.name_any());
        } else if let Some(root) = root_of_leaf(ingress) {
            triggers.root(&ns, &root);
        }
    };
    match change {
        Change::Applied { old, new } => {
            for dropped in index.upsert(&new) {
                triggers.dependency(&dropped);
            }
            // A root that became a leaf (or back) must also reconcile as what it was.
            if let Some(old) = old.filter(|o| split::is_root(o) != split::is_root(&new)) {
                route(&old);
            }
            route(&new);
        }
        Change::Deleted(obj) => {
            for dropped in index.remove(&obj) {
                triggers.dependency(&dropped);
            }
            route(&obj);
        }
        Change::Relisted => {
            let all = store.state();
            index.rebuild(all.iter().map(|i| i.as_ref()));
            for ingress in &all {
                route(ingress);
            }
            for dep in index.all_dependencies() {
                triggers.dependency(&dep);
            }
        }
    }
}

/// The roots whose placement selector matches any of `label_sets`.
fn roots_matching(
    roots: &Store<Ingress>,
    label_sets: &[&BTreeMap<String, String>],
    triggers: &Triggers,
) {
    for root in roots.state().iter().filter(|i| split::is_root(i)) {
        let text = root
            .annotations()
            .get(labels::PLACEMENT_ANNOTATION)
            .map_or("", String::as_str);
        let Ok(selector) = placement::parse_selector(text) else {
            continue;
        };
        if label_sets.iter().any(|l| selector.matches(l)) {
            triggers.root(&root.namespace().unwrap_or_default(), &root.name_any());
        }
    }
}

/// A Cluster's labels, schedulability or existence changed: re-place the
/// roots it matched before or matches now. Health is followed separately.
fn on_cluster(change: Change<Cluster>, triggers: &Triggers, roots: &Store<Ingress>) {
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
            for root in roots.state().iter().filter(|i| split::is_root(i)) {
                triggers.root(&root.namespace().unwrap_or_default(), &root.name_any());
            }
        }
    }
}

fn on_dependency<K: Resource<DynamicType = ()>>(
    change: Change<PartialObjectMeta<K>>,
    kind: DepKind,
    triggers: &Triggers,
    index: &Index,
) {
    match change {
        Change::Applied { new, .. } => {
            let key = (kind, new.namespace().unwrap_or_default(), new.name_any());
            triggers.dependency(&key);
            // The roots that reference it report whether it exists.
            for root in index.dependents(&key) {
                triggers.root(&key.1, &root);
            }
        }
        Change::Deleted(obj) => {
            let key = (kind, obj.namespace().unwrap_or_default(), obj.name_any());
            for root in index.dependents(&key) {
                triggers.root(&key.1, &root);
            }
        }
        Change::Relisted => {
            for dep in index.all_dependencies().into_iter().filter(|d| d.0 == kind) {
                triggers.dependency(&dep);
            }
        }
    }
}

fn on_global(change: Change<GlobalIngress>, triggers: &Triggers, roots: &Store<Ingress>) {
    let global = match change {
        Change::Applied { new, .. } => new,
        Change::Deleted(obj) => obj,
        Change::Relisted => return,
    };
    let ns = global.namespace().unwrap_or_default();
    let name = global.name_any();
    if roots.get(&ObjectRef::new(&name).within(&ns)).is_some() {
        triggers.root(&ns, &name);
    }
}

/// How often cluster health is re-evaluated: a heartbeat ages past the
/// threshold without any object changing.
const HEALTH_TICK: Duration = Duration::from_millis(500);

/// Re-places the roots of every cluster whose health flips, whether by a
/// status change or by its heartbeat growing too old.
pub async fn follow_cluster_health(
    clusters: Store<Cluster>,
    roots: Store<Ingress>,
    triggers: Triggers,
    threshold: Duration,
    metrics: std::sync::Arc<crate::runtime::metrics::Metrics>,
    shutdown: CancellationToken,
) {
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut tick = tokio::time::interval(HEALTH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
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
