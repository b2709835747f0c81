//! The I/O shell of the controller: read the caches, call the pure core,
//! write only what differs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::runtime::events::{Event, EventType, Recorder};
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PartialObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::index::{DepKey, DepKind, Index};
use super::merge::{self, ClusterView};
use super::placement::{self, Placement};
use super::split;
use crate::apis::condition::{condition, degraded};
use crate::apis::{Cluster, GlobalIngress, GlobalIngressStatus};
use crate::labels::{self, conditions};
use crate::runtime::metrics::Metrics;

/// Errors of one reconcile; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("waiting for {0} leaf Ingress(es) to be deleted")]
    LeavesRemain(usize),
    #[error("cannot encode an object: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where reconciles send their follow-up work.
#[derive(Clone)]
pub struct Triggers {
    pub roots: UnboundedSender<ObjectRef<Ingress>>,
    pub services: UnboundedSender<ObjectRef<PartialObjectMeta<Service>>>,
    pub secrets: UnboundedSender<ObjectRef<PartialObjectMeta<Secret>>>,
}

impl Triggers {
    pub fn root(&self, namespace: &str, name: &str) {
        let _ = self
            .roots
            .unbounded_send(ObjectRef::new(name).within(namespace));
    }

    pub fn dependency(&self, (kind, namespace, name): &DepKey) {
        match kind {
            DepKind::Service => {
                let _ = self
                    .services
                    .unbounded_send(ObjectRef::new(name).within(namespace));
            }
            DepKind::Secret => {
                let _ = self
                    .secrets
                    .unbounded_send(ObjectRef::new(name).within(namespace));
            }
        }
    }
}

/// A condition's status, reason and message, as an Event announced them.
pub type Announced = (String, String, String);

/// Everything a reconcile reads from, and writes through.
pub struct Context {
    pub client: kube::Client,
    pub ingresses: Store<Ingress>,
    pub clusters: Store<Cluster>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub globals: Store<GlobalIngress>,
    pub index: Arc<Index>,
    pub triggers: Triggers,
    pub recorder: Recorder,
    pub health_threshold: Duration,
    /// Consecutive failures per object, for the retry backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    pub metrics: Arc<Metrics>,
    /// Roots whose convergence time was recorded (by uid).
    pub converged: Mutex<HashSet<String>>,
    /// The condition states last announced by an Event, by (root uid,
    /// condition type): until the cache shows our GlobalIngress status
    /// write, every reconcile would announce the same change again.
    pub announced: Mutex<HashMap<(String, String), Announced>>,
    /// The clusters each root (by uid) was placed on at its last reconcile.
    pub placed: Mutex<HashMap<String, Vec<String>>>,
}

impl Context {
    /// Accounts for one finished reconcile: metrics, and a success resets
    /// the object's backoff.
    pub fn finished(&self, controller: &str, key: &str, started: Instant, ok: bool, failed: bool) {
        self.metrics
            .reconciled(controller, started.elapsed().as_secs_f64(), failed);
        if ok {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
        }
    }

    /// Whether `condition` of `root` differs from what was last announced
    /// for it, remembering it: an Event is due only then.
    fn announce(&self, root: &Ingress, condition: &Condition) -> bool {
        let Some(uid) = root.uid() else {
            return true;
        };
        let state = (
            condition.status.clone(),
            condition.reason.clone(),
            condition.message.clone(),
        );
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        announced.insert((uid, condition.type_.clone()), state.clone()) != Some(state)
    }

    fn forget_announcements(&self, uid: &str) {
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        for type_ in [conditions::READY, conditions::DEPENDENCIES_READY] {
            announced.remove(&(uid.to_string(), type_.to_string()));
        }
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// The dependencies of `root` whose placement labels may need to
    /// change: all of them when the root's clusters changed since its last
    /// reconcile, else those that lack a label for one of its clusters. A
    /// dependency's reconcile looks at every root that references it, so
    /// triggering it on every root's reconcile costs O(roots²) when many
    /// roots share one Service.
    fn dependencies_to_place(&self, root: &Ingress, targets: &[String]) -> Vec<DepKey> {
        let moved = root.uid().is_none_or(|uid| {
            let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
            placed
                .insert(uid, targets.to_vec())
                .is_some_and(|before| before != targets)
        });
        let labelled = |meta: &kube::core::ObjectMeta| {
            targets.iter().all(|c| {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&labels::state_label(c)))
                    == Some(&labels::STATE_SYNC.to_string())
            })
        };
        index_keys(root)
            .into_iter()
            .filter(|(kind, ns, name)| {
                let current = match kind {
                    DepKind::Service => self
                        .services
                        .get(&ObjectRef::new(name).within(ns))
                        .map(|o| labelled(&o.metadata)),
                    DepKind::Secret => self
                        .secrets
                        .get(&ObjectRef::new(name).within(ns))
                        .map(|o| labelled(&o.metadata)),
                };
                moved || current != Some(true)
            })
            .collect()
    }
}

/// `Kind namespace/name`, for logs and the backoff table.
pub fn object_key(kind: &str, meta: &kube::core::ObjectMeta) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

fn apply_params() -> PatchParams {
    PatchParams::apply(labels::CONTROLLER_MANAGER).force()
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// The target clusters of a valid root (none for an invalid one, whose
/// problem is reported by its own reconcile).
pub fn targets_of(root: &Ingress, clusters: &Store<Cluster>) -> Option<Placement> {
    if !split::validate(root).is_empty() {
        return None;
    }
    let selector = placement::parse_selector(
        root.annotations()
            .get(labels::PLACEMENT_ANNOTATION)
            .map_or("", String::as_str),
    )
    .ok()?;
    Some(placement::place(
        &selector,
        clusters.state().iter().map(|c| c.as_ref()),
    ))
}

// ---------------------------------------------------------------- roots

/// Reconciles one root Ingress (leaves are ignored: they trigger their root).
pub async fn reconcile_root(
    root: Arc<Ingress>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<ReconcileError>> {
    if !split::is_root(&root) {
        return Ok(Action::await_change());
    }
    let ns = root.namespace().unwrap_or_default();
    let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, labels::CLEANUP_FINALIZER, root, |event| async {
        match event {
            finalizer::Event::Apply(root) => apply_root(&root, &ctx).await,
            finalizer::Event::Cleanup(root) => cleanup_root(&root, &ctx).await,
        }
    })
    .await
}

/// What a root's reconcile decided, reported in the GlobalIngress.
struct Verdict {
    ready: Condition,
    dependencies: Condition,
    placed: usize,
    healthy: usize,
}

async fn apply_root(root: &Ingress, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let global = ctx.globals.get(&ObjectRef::new(&name).within(&ns));
    let previous: Vec<Condition> = global
        .as_ref()
        .and_then(|g| g.status.as_ref())
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = now();

    let problems = split::validate(root);
    let selector = placement::parse_selector(
        root.annotations()
            .get(labels::PLACEMENT_ANNOTATION)
            .map_or("", String::as_str),
    );
    let (placement, ready) = match (problems.first(), selector) {
        (Some(problem), _) => {
            let message = problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            (
                None,
                condition(
                    &previous,
                    conditions::READY,
                    false,
                    problem.reason,
                    &message,
                    now.clone(),
                ),
            )
        }
        (None, Err(err)) => (
            None,
            condition(
                &previous,
                conditions::READY,
                false,
                "InvalidPlacement",
                &err.to_string(),
                now.clone(),
            ),
        ),
        (None, Ok(selector)) => {
            let placement =
                placement::place(&selector, ctx.clusters.state().iter().map(|c| c.as_ref()));
            let mut message = format!("placed on {} cluster(s)", placement.targets.len());
            if !placement.unusable.is_empty() {
                let skipped: Vec<String> = placement
                    .unusable
                    .iter()
                    .map(|(_, why)| why.clone())
                    .collect();
                message = format!("{message}; skipped: {}", skipped.join("; "));
            }
            let reason = if placement.targets.is_empty() {
                "NoMatchingCluster"
            } else {
                "Placed"
            };
            let ready = condition(
                &previous,
                conditions::READY,
                !placement.targets.is_empty(),
                reason,
                &message,
                now.clone(),
            );
            (Some(placement), ready)
        }
    };
    if changed(&previous, &ready) && ctx.announce(root, &ready) {
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(ctx, root, type_, &ready.reason, &ready.message, "Place").await;
    }

    let mut views = Vec::new();
    if let Some(placement) = &placement {
        sync_leaves(root, placement, ctx).await?;
        let ts = Timestamp::now();
        for cluster in &placement.targets {
            let healthy = ctx
                .clusters
                .get(&ObjectRef::new(cluster))
                .is_some_and(|c| c.is_healthy(ts, ctx.health_threshold));
            let leaf = ctx
                .ingresses
                .get(&ObjectRef::new(&split::leaf_name(&name, cluster)).within(&ns));
            views.push(ClusterView {
                cluster: cluster.clone(),
                healthy,
                entries: leaf.map(|l| lb_entries(&l)).unwrap_or_default(),
            });
        }
        write_root_status(root, &merge::root_entries(&views), ctx).await?;
        record_convergence(root, &views, ctx);
    }

    let dependencies = check_dependencies(root, &previous, &now, ctx);
    if changed(&previous, &dependencies)
        && ctx.announce(root, &dependencies)
        && dependencies.status == "False"
    {
        publish(
            ctx,
            root,
            EventType::Warning,
            &dependencies.reason,
            &dependencies.message,
            "Place",
        )
        .await;
    }
    let targets = placement
        .as_ref()
        .map(|p| p.targets.clone())
        .unwrap_or_default();
    for dep in ctx.dependencies_to_place(root, &targets) {
        ctx.triggers.dependency(&dep);
    }
    let verdict = Verdict {
        ready,
        dependencies,
        placed: views.len(),
        healthy: views.iter().filter(|v| v.healthy).count(),
    };
    write_global(root, global.as_deref(), &views, verdict, &now, ctx).await?;
    Ok(Action::requeue(Duration::from_secs(600)))
}

/// Observes, once per root, the time from its creation until every target
/// cluster reported an address.
fn record_convergence(root: &Ingress, views: &[ClusterView], ctx: &Context) {
    if views.is_empty() || views.iter().any(|v| v.entries.is_empty()) {
        return;
    }
    let (Some(uid), Some(created)) = (root.uid(), root.creation_timestamp()) else {
        return;
    };
    if ctx
        .converged
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid)
    {
        let seconds = Timestamp::now().duration_since(created.0).as_secs_f64();
        ctx.metrics.root_convergence.observe(seconds.max(0.0));
    }
}

fn index_keys(root: &Ingress) -> Vec<DepKey> {
    let ns = root.namespace().unwrap_or_default();
    let deps = split::dependencies(root);
    deps.services
        .into_iter()
        .map(|s| (DepKind::Service, ns.clone(), s))
        .chain(
            deps.secrets
                .into_iter()
                .map(|s| (DepKind::Secret, ns.clone(), s)),
        )
        .collect()
}

fn lb_entries(leaf: &Ingress) -> Vec<IngressLoadBalancerIngress> {
    leaf.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
}

fn changed(previous: &[Condition], new: &Condition) -> bool {
    !previous.iter().any(|c| {
        c.type_ == new.type_
            && c.status == new.status
            && c.reason == new.reason
            && c.message == new.message
    })
}

async fn publish(
    ctx: &Context,
    root: &Ingress,
    type_: EventType,
    reason: &str,
    note: &str,
    action: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.to_string()),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &root.object_ref(&())).await {
        warn!(root = %root.name_any(), %err, "cannot publish an Event");
    }
}

/// Applies the leaves the placement wants and deletes the others.
async fn sync_leaves(
    root: &Ingress,
    placement: &Placement,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), &ns);
    let mut wanted = BTreeSet::new();
    // One Event for the leaves a reconcile creates, not one per leaf.
    let mut created = Vec::new();
    let mut failed = None;
    for cluster in &placement.targets {
        let desired = split::leaf(root, cluster);
        let leaf_name = desired.name_any();
        wanted.insert(leaf_name.clone());
        let current = ctx.ingresses.get(&ObjectRef::new(&leaf_name).within(&ns));
        if current
            .as_ref()
            .is_some_and(|c| split::leaf_is_current(c, &desired))
        {
            continue;
        }
        let mut body = serde_json::to_value(&desired)?;
        body["apiVersion"] = json!("networking.k8s.io/v1");
        body["kind"] = json!("Ingress");
        if let Err(err) = api
            .patch(&leaf_name, &apply_params(), &Patch::Apply(&body))
            .await
        {
            failed = Some(err);
            break;
        }
        if current.is_none() {
            info!(root = %name, namespace = %ns, leaf = %leaf_name, %cluster, "created leaf");
            created.push(format!("cluster {cluster} as {leaf_name}"));
        } else {
            info!(root = %name, namespace = %ns, leaf = %leaf_name, %cluster, "updated leaf");
        }
    }
    if !created.is_empty() {
        let note = format!("placed on {}", created.join(", "));
        publish(ctx, root, EventType::Normal, "LeafCreated", &note, "Place").await;
    }
    if let Some(err) = failed {
        return Err(err.into());
    }
    for stale in ctx.index.leaves(&ns, &name).difference(&wanted) {
        delete_leaf(root, stale, ctx).await?;
    }
    Ok(())
}

/// Deletes a leaf of `root` (only one that the root owns), once.
async fn delete_leaf(root: &Ingress, leaf_name: &str, ctx: &Context) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let Some(leaf) = ctx.ingresses.get(&ObjectRef::new(leaf_name).within(&ns)) else {
        return Ok(());
    };
    let owned = leaf
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == root.metadata.uid.as_ref());
    if !owned || leaf.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), &ns);
    let params = DeleteParams {
        preconditions: leaf.metadata.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(leaf_name, &params).await {
        Ok(_) => {
            let clusters = split::placed_clusters(&leaf.metadata).join(",");
            info!(root = %root.name_any(), namespace = %ns, leaf = %leaf_name, cluster = %clusters, "deleted leaf");
            publish(
                ctx,
                root,
                EventType::Normal,
                "LeafDeleted",
                &format!("removed from cluster {clusters} ({leaf_name})"),
                "Unplace",
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn write_root_status(
    root: &Ingress,
    entries: &[IngressLoadBalancerIngress],
    ctx: &Context,
) -> Result<(), ReconcileError> {
    if lb_entries(root) == entries {
        return Ok(());
    }
    let api: Api<Ingress> =
        Api::namespaced(ctx.client.clone(), &root.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "status": {"loadBalancer": {"ingress": entries}},
    });
    api.patch_status(&root.name_any(), &apply_params(), &Patch::Apply(&body))
        .await?;
    debug!(root = %root.name_any(), addresses = entries.len(), "merged root status");
    Ok(())
}

fn check_dependencies(
    root: &Ingress,
    previous: &[Condition],
    now: &Time,
    ctx: &Context,
) -> Condition {
    let ns = root.namespace().unwrap_or_default();
    let deps = split::dependencies(root);
    let mut missing: Vec<String> = deps
        .services
        .iter()
        .filter(|s| {
            ctx.services
                .get(&ObjectRef::new(s.as_str()).within(&ns))
                .is_none()
        })
        .map(|s| format!("Service {s}"))
        .collect();
    missing.extend(
        deps.secrets
            .iter()
            .filter(|s| {
                ctx.secrets
                    .get(&ObjectRef::new(s.as_str()).within(&ns))
                    .is_none()
            })
            .map(|s| format!("Secret {s}")),
    );
    if missing.is_empty() {
        condition(
            previous,
            conditions::DEPENDENCIES_READY,
            true,
            "AllFound",
            "",
            now.clone(),
        )
    } else {
        let message = format!("not found in namespace {ns}: {}", missing.join(", "));
        condition(
            previous,
            conditions::DEPENDENCIES_READY,
            false,
            "DependencyMissing",
            &message,
            now.clone(),
        )
    }
}

/// Applies the GlobalIngress's spec and the controller's part of its status,
/// each only when it differs.
async fn write_global(
    root: &Ingress,
    current: Option<&GlobalIngress>,
    views: &[ClusterView],
    verdict: Verdict,
    now: &Time,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let api: Api<GlobalIngress> = Api::namespaced(ctx.client.clone(), &ns);
    let hosts = split::hosts(root);
    let owner = split::owner_reference(root);
    let spec_current = current.is_some_and(|g| {
        g.spec.hosts == hosts
            && owner
                .iter()
                .all(|o| g.owner_references().iter().any(|c| c.uid == o.uid))
    });
    if !spec_current {
        let body = json!({
            "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
            "kind": "GlobalIngress",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": owner.iter().collect::<Vec<_>>()},
            "spec": {"hosts": hosts},
        });
        api.patch(&name, &apply_params(), &Patch::Apply(&body))
            .await?;
    }

    let status = current.and_then(|g| g.status.clone()).unwrap_or_default();
    let clusters = merge::cluster_statuses(views, &status.clusters, now);
    let mine = vec![
        verdict.ready,
        degraded(
            &status.conditions,
            verdict.placed,
            verdict.healthy,
            now.clone(),
        ),
        verdict.dependencies,
    ];
    let status_current = status.clusters == clusters
        && status.observed_generation == root.metadata.generation
        && mine.iter().all(|c| status.conditions.contains(c));
    if status_current {
        return Ok(());
    }
    let desired = GlobalIngressStatus {
        observed_generation: root.metadata.generation,
        clusters,
        conditions: mine,
        ..Default::default()
    };
    let body = json!({
        "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
        "kind": "GlobalIngress",
        "status": desired,
    });
    api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await?;
    debug!(root = %name, namespace = %ns, "wrote GlobalIngress status");
    Ok(())
}

/// Deleting a root: its leaves and its GlobalIngress go; the finalizer stays
/// until the leaves are gone (their syncers remove the downstream copies first).
async fn cleanup_root(root: &Ingress, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let leaves = ctx.index.leaves(&ns, &name);
    for leaf in &leaves {
        delete_leaf(root, leaf, ctx).await?;
    }
    if let Some(global) = ctx.globals.get(&ObjectRef::new(&name).within(&ns))
        && global.metadata.deletion_timestamp.is_none()
    {
        let api: Api<GlobalIngress> = Api::namespaced(ctx.client.clone(), &ns);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => info!(root = %name, namespace = %ns, "deleted GlobalIngress"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for dep in index_keys(root) {
        ctx.triggers.dependency(&dep);
    }
    let remaining = ctx
        .index
        .leaves(&ns, &name)
        .iter()
        .filter(|l| {
            ctx.ingresses
                .get(&ObjectRef::new(l.as_str()).within(&ns))
                .is_some_and(|leaf| {
                    leaf.owner_references()
                        .iter()
                        .any(|o| Some(&o.uid) == root.metadata.uid.as_ref())
                })
        })
        .count();
    if remaining > 0 {
        return Err(ReconcileError::LeavesRemain(remaining));
    }
    if let Some(uid) = root.uid() {
        ctx.converged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uid);
        ctx.forget_announcements(&uid);
    }
    info!(root = %name, namespace = %ns, "root cleaned up; releasing its finalizer");
    Ok(Action::await_change())
}

// ---------------------------------------------------------------- dependencies

/// Reconciles the placement labels of one Service or Secret: one label per
/// cluster that a root referencing it is placed on.
pub async fn reconcile_dependency<K>(
    object: Arc<PartialObjectMeta<K>>,
    ctx: Arc<Context>,
    kind: DepKind,
) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let ns = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let mut clusters = BTreeSet::new();
    for root_name in ctx.index.dependents(&(kind, ns.clone(), name.clone())) {
        let Some(root) = ctx.ingresses.get(&ObjectRef::new(&root_name).within(&ns)) else {
            continue;
        };
        if root.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(p) = targets_of(&root, &ctx.clusters) {
            clusters.extend(p.targets);
        }
    }
    let desired = super::dependencies::desired_labels(&clusters);
    if super::dependencies::labels_are_current(
        &object.metadata,
        labels::CONTROLLER_MANAGER,
        &desired,
    ) {
        return Ok(Action::await_change());
    }
    // The resourceVersion makes the apply fail instead of creating the object
    // if it was deleted meanwhile.
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {
            "name": name, "namespace": ns, "labels": desired,
            "resourceVersion": object.metadata.resource_version,
        },
    });
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .patch(&name, &apply_params(), &Patch::Apply(&body))
        .await
    {
        Ok(_) => {
            info!(kind = ?kind, namespace = %ns, %name, clusters = ?clusters, "placed dependency");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- errors

/// Retries with exponential backoff per object (0.5 s doubling to 5 min);
/// waiting for leaves to go is not a failure and retries quickly.
pub fn backoff(ctx: &Context, key: String, error: &dyn std::fmt::Display, waiting: bool) -> Action {
    if waiting {
        debug!(object = %key, "{error}");
        return Action::requeue(Duration::from_secs(2));
    }
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = Duration::from_millis(500u64.saturating_mul(1 << (*n - 1).min(10)))
        .min(Duration::from_secs(300));
    warn!(object = %key, attempt = *n, retry_in = ?delay, "reconcile failed: {error}");
    Action::requeue(delay)
}
