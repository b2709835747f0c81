//! The I/O shell of the controller: dereference (read the caches), decide
//! (the pure [`decide`](super::decide)), apply (write only what differs),
//! status — for roots of any [`RootKind`], and for the placement labels of
//! the Services and Secrets they depend on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PartialObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::decide::{self, GlobalSpec, Observed, Plan};
use super::dependencies::{DepKey, DepKind};
use super::index::Index;
use super::kind::RootKind;
use super::memory::Memory;
use super::split;
use crate::apis::{Cluster, GlobalIngress, GlobalIngressStatus};
use crate::labels;
use crate::runtime::{self, metrics::Metrics};

/// Errors of one reconcile; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("waiting for {0} leaf object(s) to be deleted")]
    LeavesRemain(usize),
    #[error("cannot encode an object: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The longest wait between retries of a failing reconcile.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// The longest wait between looks at a deleted root whose leaves remain.
const MAX_LEAVES_WAIT: Duration = Duration::from_secs(2);
/// How often a root is reconciled without any change.
const RESYNC: Duration = Duration::from_secs(600);

/// Where reconciles and watches send follow-up work.
#[derive(Clone)]
pub struct Triggers<K: RootKind> {
    pub roots: UnboundedSender<ObjectRef<K>>,
    pub services: UnboundedSender<ObjectRef<PartialObjectMeta<Service>>>,
    pub secrets: UnboundedSender<ObjectRef<PartialObjectMeta<Secret>>>,
}

impl<K: RootKind> Triggers<K> {
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

/// The caches a reconcile reads.
#[derive(Clone)]
pub struct Caches<K: RootKind> {
    /// Roots and leaves.
    pub roots: Store<K>,
    pub clusters: Store<Cluster>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub globals: Store<GlobalIngress>,
}

impl<K: RootKind> Caches<K> {
    /// The metadata of a dependency, if it exists.
    fn dependency(&self, (kind, ns, name): &DepKey) -> Option<kube::core::ObjectMeta> {
        match kind {
            DepKind::Service => self
                .services
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
            DepKind::Secret => self
                .secrets
                .get(&ObjectRef::new(name).within(ns))
                .map(|o| o.metadata.clone()),
        }
    }

    fn exists(&self, (kind, ns, name): &DepKey) -> bool {
        match kind {
            DepKind::Service => self
                .services
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            DepKind::Secret => self.secrets.get(&ObjectRef::new(name).within(ns)).is_some(),
        }
    }
}

/// Everything a reconcile reads from, remembers, and writes through.
pub struct Context<K: RootKind> {
    pub client: kube::Client,
    pub caches: Caches<K>,
    pub index: Arc<Index>,
    pub memory: Arc<Memory>,
    pub triggers: Triggers<K>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub health_threshold: Duration,
}

impl<K: RootKind> Context<K> {
    /// Accounts for one finished reconcile of a root in metrics; a success
    /// resets its backoff.
    pub fn root_finished(&self, root: &K, started: Instant, ok: bool, failed: bool) {
        self.metrics
            .reconciled("roots", started.elapsed().as_secs_f64(), failed);
        if let (true, Some(uid)) = (ok, root.uid()) {
            self.memory.root_succeeded(&uid);
        }
    }

    /// Accounts for one finished reconcile of a dependency.
    pub fn dependency_finished(&self, dep: &DepKey, started: Instant, ok: bool) {
        self.metrics
            .reconciled(dep.0.metric_name(), started.elapsed().as_secs_f64(), !ok);
        if ok {
            self.memory.dependency_succeeded(dep);
        }
    }

    /// Whether an Event announcing `condition` of `root` is due.
    fn announce(
        &self,
        root: &K,
        condition: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition,
    ) -> bool {
        root.uid()
            .is_none_or(|uid| self.memory.announce(&uid, condition))
    }

    /// The dependencies of `root` whose placement labels may need to
    /// change: all of them when the root's clusters changed since its last
    /// reconcile, else those that lack a label for one of its clusters. A
    /// dependency's reconcile looks at every root that references it, so
    /// triggering it on every root's reconcile costs O(roots²) when many
    /// roots share one Service.
    fn dependencies_to_place(&self, root: &K, targets: &[String]) -> Vec<DepKey> {
        let moved = root
            .uid()
            .is_none_or(|uid| self.memory.moved(&uid, targets));
        let labelled = |meta: &kube::core::ObjectMeta| {
            targets.iter().all(|c| {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&labels::state_label(c)))
                    == Some(&labels::STATE_SYNC.to_string())
            })
        };
        K::dependencies(root)
            .into_iter()
            .filter(|dep| moved || self.caches.dependency(dep).map(|m| labelled(&m)) != Some(true))
            .collect()
    }
}

/// `Kind namespace/name`, for logs.
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

// ---------------------------------------------------------------- roots

/// Reconciles one root (leaves are ignored: they trigger their root).
pub async fn reconcile_root<K: RootKind>(
    root: Arc<K>,
    ctx: Arc<Context<K>>,
) -> Result<Action, finalizer::Error<ReconcileError>> {
    if !K::is_root(&root) {
        return Ok(Action::await_change());
    }
    let ns = root.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, labels::CLEANUP_FINALIZER, root, |event| async {
        match event {
            finalizer::Event::Apply(root) => apply_root(root.as_ref(), &ctx).await,
            finalizer::Event::Cleanup(root) => cleanup_root(root.as_ref(), &ctx).await,
        }
    })
    .await
}

/// Dereference, decide, apply.
async fn apply_root<K: RootKind>(root: &K, ctx: &Context<K>) -> Result<Action, ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let global = ctx.caches.globals.get(&ObjectRef::new(&name).within(&ns));
    let clusters = ctx.caches.clusters.state();
    let leaves = ctx.index.leaves(&ns, &name);
    let object = |n: &str| ctx.caches.roots.get(&ObjectRef::new(n).within(&ns));
    let exists = |dep: &DepKey| ctx.caches.exists(dep);
    let plan = decide::decide(&Observed {
        root,
        clusters: &clusters,
        object: &object,
        leaves: &leaves,
        exists: &exists,
        global: global.as_deref(),
        now: Timestamp::now(),
        health_threshold: ctx.health_threshold,
    });
    apply_plan(root, plan, ctx).await?;
    Ok(Action::requeue(RESYNC))
}

/// Performs a plan: Events, leaves, the root's status, dependency
/// triggers, the GlobalIngress.
async fn apply_plan<K: RootKind>(
    root: &K,
    plan: Plan<K>,
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    if plan.ready_changed && ctx.announce(root, &plan.ready) {
        let type_ = if plan.ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let ready = &plan.ready;
        publish(ctx, root, type_, &ready.reason, &ready.message, "Place").await;
    }
    if plan.placement.is_some() {
        write_leaves(root, &plan, ctx).await?;
    }
    if let Some(addresses) = &plan.root_status {
        write_root_status(root, addresses, ctx).await?;
    }
    if plan.converged {
        record_convergence(root, ctx);
    }
    let dependencies = &plan.dependencies;
    if plan.dependencies_changed
        && ctx.announce(root, dependencies)
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
    let targets = plan
        .placement
        .as_ref()
        .map(|p| p.targets.clone())
        .unwrap_or_default();
    for dep in ctx.dependencies_to_place(root, &targets) {
        ctx.triggers.dependency(&dep);
    }
    write_global(root, plan.global_spec, plan.global_status, ctx).await
}

/// Observes, once per root, the time from its creation until every target
/// cluster reported an address.
fn record_convergence<K: RootKind>(root: &K, ctx: &Context<K>) {
    let (Some(uid), Some(created)) = (root.uid(), root.creation_timestamp()) else {
        return;
    };
    if ctx.memory.first_convergence(&uid) {
        let seconds = Timestamp::now().duration_since(created.0).as_secs_f64();
        ctx.metrics.root_convergence.observe(seconds.max(0.0));
    }
}

async fn publish<K: RootKind>(
    ctx: &Context<K>,
    root: &K,
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

/// Applies the leaves the plan writes, then deletes the stale ones.
async fn write_leaves<K: RootKind>(
    root: &K,
    plan: &Plan<K>,
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    // One Event for the leaves a reconcile creates, not one per leaf.
    let mut created = Vec::new();
    let mut failed = None;
    for write in &plan.leaf_writes {
        let (cluster, leaf_name) = (&write.cluster, write.leaf.name_any());
        let mut body = serde_json::to_value(&write.leaf)?;
        body["apiVersion"] = json!(K::api_version(&()));
        body["kind"] = json!(K::kind(&()));
        if let Err(err) = api
            .patch(&leaf_name, &apply_params(), &Patch::Apply(&body))
            .await
        {
            failed = Some(err);
            break;
        }
        if write.create {
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
    for stale in &plan.stale_leaves {
        delete_leaf(root, stale, ctx).await?;
    }
    Ok(())
}

/// Deletes a leaf of `root` (only one that the root owns), once.
async fn delete_leaf<K: RootKind>(
    root: &K,
    leaf_name: &str,
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let Some(leaf) = ctx.caches.roots.get(&ObjectRef::new(leaf_name).within(&ns)) else {
        return Ok(());
    };
    if !owned_by(&*leaf, root) || leaf.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let params = DeleteParams {
        preconditions: leaf.meta().uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(leaf_name, &params).await {
        Ok(_) => {
            let clusters = split::placed_clusters(leaf.meta()).join(",");
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

fn owned_by<K: RootKind>(leaf: &K, root: &K) -> bool {
    leaf.owner_references()
        .iter()
        .any(|o| Some(&o.uid) == root.meta().uid.as_ref())
}

async fn write_root_status<K: RootKind>(
    root: &K,
    addresses: &[K::Address],
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &root.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": K::status_patch(addresses),
    });
    api.patch_status(&root.name_any(), &apply_params(), &Patch::Apply(&body))
        .await?;
    debug!(root = %root.name_any(), addresses = addresses.len(), "merged root status");
    Ok(())
}

/// Applies the GlobalIngress's spec and the controller's part of its
/// status, each when the plan says it differs.
async fn write_global<K: RootKind>(
    root: &K,
    spec: Option<GlobalSpec>,
    status: Option<GlobalIngressStatus>,
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let api: Api<GlobalIngress> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(GlobalSpec { hosts, owner }) = spec {
        let body = json!({
            "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
            "kind": "GlobalIngress",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": owner.iter().collect::<Vec<_>>()},
            "spec": {"hosts": hosts},
        });
        api.patch(&name, &apply_params(), &Patch::Apply(&body))
            .await?;
    }
    if let Some(status) = status {
        let body = json!({
            "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
            "kind": "GlobalIngress",
            "status": status,
        });
        api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
            .await?;
        debug!(root = %name, namespace = %ns, "wrote GlobalIngress status");
    }
    Ok(())
}

/// Deleting a root: its leaves and its GlobalIngress go; the finalizer stays
/// until the leaves are gone (their syncers remove the downstream copies first).
/// The root's memory is forgotten when its watch sees it go.
async fn cleanup_root<K: RootKind>(root: &K, ctx: &Context<K>) -> Result<Action, ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let leaves = ctx.index.leaves(&ns, &name);
    for leaf in &leaves {
        delete_leaf(root, leaf, ctx).await?;
    }
    if let Some(global) = ctx.caches.globals.get(&ObjectRef::new(&name).within(&ns))
        && global.metadata.deletion_timestamp.is_none()
    {
        let api: Api<GlobalIngress> = Api::namespaced(ctx.client.clone(), &ns);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => info!(root = %name, namespace = %ns, "deleted GlobalIngress"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for dep in K::dependencies(root) {
        ctx.triggers.dependency(&dep);
    }
    let remaining = ctx
        .index
        .leaves(&ns, &name)
        .iter()
        .filter(|l| {
            ctx.caches
                .roots
                .get(&ObjectRef::new(l.as_str()).within(&ns))
                .is_some_and(|leaf| owned_by(&*leaf, root))
        })
        .count();
    if remaining > 0 {
        return Err(ReconcileError::LeavesRemain(remaining));
    }
    info!(root = %name, namespace = %ns, "root cleaned up; releasing its finalizer");
    Ok(Action::await_change())
}

/// Whether a failed reconcile only waits for leaves to go (not a failure).
pub fn leaves_remain(err: &finalizer::Error<ReconcileError>) -> bool {
    matches!(
        err,
        finalizer::Error::CleanupFailed(ReconcileError::LeavesRemain(_))
    )
}

/// Retries a root with the one backoff schedule; waiting for its leaves to
/// go is not a failure and retries within seconds.
pub fn retry_root<K: RootKind>(
    root: &K,
    err: &finalizer::Error<ReconcileError>,
    ctx: &Context<K>,
) -> Action {
    let failures = root.uid().map_or(1, |uid| ctx.memory.root_failed(&uid));
    let key = object_key(K::kind(&()).as_ref(), root.meta());
    if leaves_remain(err) {
        debug!(object = %key, "{err}");
        return Action::requeue(runtime::backoff(failures, MAX_LEAVES_WAIT));
    }
    retry(&key, failures, err)
}

/// Retries a dependency with the one backoff schedule.
pub fn retry_dependency<K: RootKind>(
    dep: &DepKey,
    err: &ReconcileError,
    ctx: &Context<K>,
) -> Action {
    let failures = ctx.memory.dependency_failed(dep);
    retry(&format!("{:?} {}/{}", dep.0, dep.1, dep.2), failures, err)
}

fn retry(key: &str, failures: u32, error: &dyn std::fmt::Display) -> Action {
    let delay = runtime::backoff(failures, MAX_RETRY);
    warn!(object = %key, attempt = failures, retry_in = ?delay, "reconcile failed: {error}");
    Action::requeue(delay)
}

// ---------------------------------------------------------------- dependencies

/// Reconciles the placement labels of one Service or Secret: one label per
/// cluster that a root referencing it is placed on.
pub async fn reconcile_dependency<D, K>(
    object: Arc<PartialObjectMeta<D>>,
    ctx: Arc<Context<K>>,
    kind: DepKind,
) -> Result<Action, ReconcileError>
where
    D: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K: RootKind,
{
    let ns = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let clusters = ctx.caches.clusters.state();
    let mut placed = BTreeSet::new();
    for root_name in ctx.index.dependents(&(kind, ns.clone(), name.clone())) {
        let Some(root) = ctx
            .caches
            .roots
            .get(&ObjectRef::new(&root_name).within(&ns))
        else {
            continue;
        };
        if root.meta().deletion_timestamp.is_some() {
            continue;
        }
        if let Some(p) = decide::targets_of(&*root, &clusters) {
            placed.extend(p.targets);
        }
    }
    let desired = super::dependencies::desired_labels(&placed);
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
        "apiVersion": D::api_version(&()),
        "kind": D::kind(&()),
        "metadata": {
            "name": name, "namespace": ns, "labels": desired,
            "resourceVersion": object.metadata.resource_version,
        },
    });
    let api: Api<D> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .patch(&name, &apply_params(), &Patch::Apply(&body))
        .await
    {
        Ok(_) => {
            info!(kind = ?kind, namespace = %ns, %name, clusters = ?placed, "placed dependency");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
