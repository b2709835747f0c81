//! A root's reconcile, for any [`RootKind`]: dereference (read the
//! caches), decide (the pure [`decide`](super::decide)), apply (write only
//! what differs: leaves in the cluster namespaces, the root's status, the
//! GlobalIngress) — or, for a deleted root, clean up behind the finalizer
//! (its leaves first). A leaf whose root is gone (an orphan), or a leaf of
//! the old layout in its root's namespace, is deleted (the latter's syncer
//! finalizers are released after `cluster_namespaces::FINALIZER_GRACE`:
//! no syncer watches root namespaces any more).
//!
//! API calls: `patch` (server-side apply; `create` when it creates) and
//! `delete` of the root kind in cluster namespaces (leaves); `delete` and
//! `patch` (finalizers) of old-layout leaves in users' namespaces; `patch`
//! of roots (the cleanup finalizer, a JSON patch), `patch` of their `status`; `patch`/`delete` of
//! globalingresses, `patch` of `globalingresses/status`; `create` events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::runtime::events::{Event, EventType};
use crate::runtime::finalizers;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::cluster_namespaces;
use super::context::{Context, ReconcileError, apply_params, object_key, retry};
use super::decide::{self, GlobalSpec, Observed, Plan};
use super::dependencies::DepKey;
use super::finalizing::AWAIT_FINALIZER;
use super::kind::{self, RootKind};
use super::memory::{WRITTEN_MEMORY, body_hash};
use super::naming;
use super::resync::RESYNC;
use crate::apis::{GlobalIngress, GlobalIngressStatus};
use crate::labels::{self, reasons};
use crate::mailbox;
use crate::runtime;
use crate::runtime::compact::Compact;
use crate::syncer::copied::CopyEvidence;

/// The prefix of the condition types under which a root's problems are
/// remembered as announced (one Event per problem, again if it comes back).
const PROBLEM: &str = "Problem/";
/// The longest wait between looks at a deleted root whose leaves remain.
const MAX_LEAVES_WAIT: Duration = Duration::from_secs(2);

/// Reconciles one root (leaves are ignored: they trigger their root).
pub async fn reconcile_root<K: RootKind>(
    root: Arc<K>,
    ctx: Arc<Context<K>>,
) -> Result<Action, finalizer::Error<ReconcileError>> {
    if !K::is_root(&root) {
        return delete_if_orphan(root.as_ref(), &ctx)
            .await
            .map_err(finalizer::Error::ApplyFailed);
    }
    let ours = K::is_ours(&root, &ctx.world);
    let held = root
        .finalizers()
        .iter()
        .any(|f| f == labels::CLEANUP_FINALIZER);
    if !ours && !held {
        // Another implementation's (a Gateway of another class): not touched.
        return Ok(Action::await_change());
    }
    let uid = root.uid().unwrap_or_default();
    // Without the finalizer (and not being deleted), it is added below; a
    // reconcile from a cache that does not show it yet would send the same
    // patch again, doomed (`finalizing`).
    let adds = !held && root.meta().deletion_timestamp.is_none();
    if !adds {
        ctx.finalizers_sent.seen(&uid);
    } else if ctx.finalizers_sent.on_its_way(&uid, Instant::now()) {
        // The watch wakes it when it shows the finalizer; the requeue is for
        // a finalizer removed meanwhile (kube's scheduler keeps the earlier).
        debug!(root = %root.name_any(), "the cleanup finalizer was added moments ago: waiting for the watch to show it");
        return Ok(Action::requeue(AWAIT_FINALIZER));
    }
    let ns = root.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    // The finalizer first; the patch answers with the root as it is now,
    // so the leaves follow in the same reconcile instead of after the
    // watch has shown the finalizer (one round trip less for every new
    // root).
    let root = if adds {
        let patch = finalizers::add_patch(
            root.uid().as_deref(),
            root.finalizers(),
            labels::CLEANUP_FINALIZER,
        );
        let patched = api
            .patch(
                &root.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(finalizer::Error::AddFinalizer)?;
        ctx.finalizers_sent.added(&uid, Instant::now());
        debug!(root = %root.name_any(), "added the cleanup finalizer");
        Arc::new(patched)
    } else {
        root
    };
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
    // What it references may depend on other objects (a ReferenceGrant):
    // the index follows, and what it no longer references is re-placed.
    for dropped in ctx.index.upsert(root, &ctx.world) {
        ctx.triggers.dependency(&dropped);
    }
    started();
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let global = K::global_name(&name)
        .and_then(|g| ctx.caches.globals.get(&ObjectRef::new(&g).within(&ns)))
        .and_then(|g| typed_global(&g));
    let clusters = ctx.caches.clusters.state();
    let leaves = ctx.index.leaves(&ns, &name);
    let object = |leaf_ns: &str, n: &str| ctx.caches.root(leaf_ns, n);
    let exists = |dep: &DepKey| ctx.caches.exists(dep);
    let conflicts = |dep: &DepKey| ctx.conflicts(dep);
    let now = Timestamp::now();
    let partial_since = root
        .uid()
        .and_then(|uid| ctx.memory.partial_since(&uid, false, now));
    let glbc_live = runtime::presence::covers(&ctx.caches.presence.state(), &ns, now);
    let windows = decide::report_windows(ctx.memory.slowest_recent());
    let copies = |cluster: &str, leaf: Option<&K>| copy_evidence(root, ctx, cluster, leaf, now);
    let plan = decide::decide(&Observed {
        root,
        clusters: &clusters,
        world: &ctx.world,
        object: &object,
        leaves: &leaves,
        exists: &exists,
        conflicts: &conflicts,
        global: global.as_ref(),
        now,
        health_threshold: ctx.health_threshold,
        partial_since,
        glbc_live,
        windows,
        copies: &copies,
    });
    if plan.partial
        && partial_since.is_none()
        && let Some(uid) = root.uid()
    {
        // The first reconcile that sees some clusters reported (and
        // decided with `now` as the start of the spread window).
        ctx.memory.partial_since(&uid, true, now);
    }
    // A draining cluster's leaves go when its drain completes; held
    // statuses are written when their window ends.
    let drain_wake = plan.placement.as_ref().and_then(|p| p.drain_wake);
    let wake = drain_wake.into_iter().chain(plan.held).min();
    let repeats = Repeats::default();
    apply_plan(root, plan, ctx, &repeats).await?;
    let mut wait = wake.map(|at| {
        let ms = at
            .as_millisecond()
            .saturating_sub(Timestamp::now().as_millisecond());
        Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 100).min(RESYNC)
    });
    if repeats.skipped.load(Ordering::Relaxed) {
        // A write not repeated: look again once it is forgotten.
        let forgotten = WRITTEN_MEMORY + Duration::from_millis(100);
        wait = Some(wait.map_or(forgotten, |w| w.min(forgotten)));
    }
    // Settled: the watches bring any change, and the resync sweep
    // (`resync`) looks again within RESYNC, without a timer per root.
    Ok(wait.map_or_else(Action::await_change, Action::requeue))
}

/// What the push-mode syncer of `cluster` in this process did with the
/// root's `leaf` (`decide::held_until`); a leaf it has not synced yet
/// wakes the root's reconcile when it is.
fn copy_evidence<K: RootKind>(
    root: &K,
    ctx: &Context<K>,
    cluster: &str,
    leaf: Option<&K>,
    now: Timestamp,
) -> CopyEvidence {
    let Some(copies) = ctx.copies.as_deref() else {
        return CopyEvidence::Unknown;
    };
    let uid = leaf.and_then(|l| l.meta().uid.as_deref());
    let evidence = copies.evidence(cluster, uid, now);
    if evidence == CopyEvidence::Pending
        && let Some(uid) = uid
    {
        let roots = ctx.triggers.roots.clone();
        let key = ObjectRef::new(&root.name_any()).within(&root.namespace().unwrap_or_default());
        copies.wake_when_synced(
            uid,
            now,
            Box::new(move || {
                let _ = roots.unbounded_send(key);
            }),
        );
    }
    evidence
}

/// Writes that repeat one sent moments ago, not sent again: a reconcile
/// that follows a write often sees the cache before it shows the write
/// (one write of several, or one of their watch events, triggered it).
#[derive(Default)]
struct Repeats {
    skipped: AtomicBool,
}

impl Repeats {
    /// Whether the write `key` with `body` repeats one sent less than
    /// [`WRITTEN_MEMORY`] ago (then it is skipped, and noted).
    fn repeated<K: RootKind>(&self, ctx: &Context<K>, key: &str, body: &serde_json::Value) -> bool {
        let repeated = ctx.memory.recently_written(key, body_hash(body));
        if repeated {
            debug!(write = key, "skipped: the same write was sent moments ago");
            self.skipped.store(true, Ordering::Relaxed);
        }
        repeated
    }

    /// Notes that the write `key` with `body` was sent.
    fn sent<K: RootKind>(ctx: &Context<K>, key: String, body: &serde_json::Value) {
        ctx.memory.wrote(key, body_hash(body));
    }
}

/// Performs a plan: Events, leaves, the root's status, dependency
/// triggers, the GlobalIngress.
async fn apply_plan<K: RootKind>(
    root: &K,
    plan: Plan<K>,
    ctx: &Context<K>,
    repeats: &Repeats,
) -> Result<(), ReconcileError> {
    // The leaves first: the Event of a `Ready` change names the leaves
    // created with it (one Event, not two); one created without it gets
    // its own. The root's first verdict on the happy path gets none: its
    // GlobalIngress's `Ready` shows it, and the log says it, with the
    // leaves created.
    let (created, written) = if plan.placement.is_some() {
        write_leaves(root, &plan, ctx, repeats).await
    } else {
        (Vec::new(), Ok(()))
    };
    let created = (!created.is_empty()).then(|| created.join(", "));
    let announced = plan.ready_changed && announce(root, &plan.ready, ctx);
    if announced && plan.ready_quiet {
        info!(
            root = %root.name_any(),
            namespace = %root.namespace().unwrap_or_default(),
            reason = %plan.ready.reason,
            leaves_created = created.as_deref().unwrap_or("none"),
            "{} (the first verdict: no Event, the GlobalIngress's Ready condition shows it)",
            plan.ready.message
        );
    } else if announced {
        let type_ = if plan.ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let ready = &plan.ready;
        let note = match &created {
            Some(leaves) => format!("{}; leaves created: {leaves}", ready.message),
            None => ready.message.clone(),
        };
        publish(ctx, root, type_, &ready.reason, &note, "Place").await;
    } else if let Some(leaves) = &created {
        let note = format!("placed on {leaves}");
        publish(
            ctx,
            root,
            EventType::Normal,
            reasons::LEAF_CREATED,
            &note,
            "Place",
        )
        .await;
    }
    written?;
    for stale in &plan.stale_leaves {
        delete_leaf(root, stale, ctx).await?;
    }
    if let Some(status) = &plan.root_status {
        write_root_status(root, status, ctx, repeats).await?;
    }
    let problem_types: Vec<String> = plan
        .problems
        .iter()
        .map(|p| format!("{PROBLEM}{}", p.reason))
        .collect();
    if let Some(uid) = root.uid() {
        ctx.memory.retain_announced(&uid, PROBLEM, &problem_types);
    }
    for problem in &plan.problems {
        let announced = Condition {
            type_: format!("{PROBLEM}{}", problem.reason),
            status: "True".into(),
            reason: problem.reason.into(),
            message: problem.message.clone(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        };
        if announce(root, &announced, ctx) {
            let (reason, note) = (problem.reason, &problem.message);
            publish(ctx, root, EventType::Warning, reason, note, "Validate").await;
        }
    }
    if plan.converged {
        record_convergence(root, ctx);
    }
    let dependencies = &plan.dependencies;
    if plan.dependencies_changed
        && announce(root, dependencies, ctx)
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
    for dep in dependencies_to_place(root, &targets, ctx) {
        ctx.triggers.dependency(&dep);
    }
    write_global(root, plan.global_spec, plan.global_status, ctx, repeats).await
}

/// Observes, once per root, the time from its creation until every target
/// cluster reported an address; for a root created since the controller
/// started, also for the report windows (`decide::report_windows`).
fn record_convergence<K: RootKind>(root: &K, ctx: &Context<K>) {
    let (Some(uid), Some(created)) = (root.uid(), root.creation_timestamp()) else {
        return;
    };
    if ctx.memory.first_convergence(&uid) {
        let took = Timestamp::now().duration_since(created.0);
        ctx.metrics
            .root_convergence
            .observe(took.as_secs_f64().max(0.0));
        if created.0 >= started() {
            ctx.memory
                .converged_after(took.unsigned_abs().min(decide::MAX_REPORT_WINDOW));
        }
    }
}

/// When this process first reconciled a root: roots created before it
/// (converged long ago, seen converged only now) say nothing of how long
/// clusters take to report.
fn started() -> Timestamp {
    static STARTED: std::sync::OnceLock<Timestamp> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Timestamp::now)
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

/// Applies the leaves the plan writes, all at once (a root's clusters do
/// not wait for each other: one round trip per reconcile, not one per
/// cluster); the leaves it created (`cluster C as ns/name`, in the plan's
/// order, for one Event per reconcile, not one per leaf) and the first
/// failure, if any.
async fn write_leaves<K: RootKind>(
    root: &K,
    plan: &Plan<K>,
    ctx: &Context<K>,
    repeats: &Repeats,
) -> (Vec<String>, Result<(), ReconcileError>) {
    let ns = root.namespace().unwrap_or_default();
    let name = root.name_any();
    let writes = plan.leaf_writes.iter().map(|write| {
        let (ns, name) = (&ns, &name);
        async move {
            let (cluster, leaf_name) = (&write.cluster, write.leaf.name_any());
            let leaf_ns = write.leaf.namespace().unwrap_or_default();
            let api: Api<K> = Api::namespaced(ctx.client.clone(), &leaf_ns);
            let mut body = serde_json::to_value(&write.leaf)?;
            body["apiVersion"] = json!(K::api_version(&()));
            body["kind"] = json!(K::kind(&()));
            let key = format!("{} {leaf_ns}/{leaf_name}", K::kind(&()));
            if repeats.repeated(ctx, &key, &body) {
                return Ok(None);
            }
            api.patch(&leaf_name, &apply_params(), &Patch::Apply(&body))
                .await?;
            Repeats::sent(ctx, key, &body);
            if write.create {
                info!(root = %name, namespace = %ns, leaf = %leaf_name, %cluster, "created leaf");
                Ok(Some(format!("cluster {cluster} as {leaf_ns}/{leaf_name}")))
            } else {
                info!(root = %name, namespace = %ns, leaf = %leaf_name, %cluster, "updated leaf");
                Ok(None)
            }
        }
    });
    let results: Vec<Result<Option<String>, ReconcileError>> =
        futures::future::join_all(writes).await;
    let mut created = Vec::new();
    let mut outcome = Ok(());
    for result in results {
        match result {
            Ok(leaf) => created.extend(leaf),
            Err(err) if outcome.is_ok() => outcome = Err(err),
            Err(_) => {}
        }
    }
    (created, outcome)
}

/// Deletes a leaf of `root` (only one labelled as the root's), once.
async fn delete_leaf<K: RootKind>(
    root: &K,
    (leaf_ns, leaf_name): &(String, String),
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let Some(leaf) = ctx.caches.root(leaf_ns, leaf_name) else {
        return Ok(());
    };
    if !owned_by(&*leaf, root) || leaf.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), leaf_ns);
    let params = DeleteParams {
        preconditions: leaf.meta().uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(leaf_name, &params).await {
        Ok(_) => {
            // The Cluster may be gone already: then its namespace names it.
            let cluster = ctx
                .caches
                .clusters
                .state()
                .iter()
                .map(|c| c.name_any())
                .find(|c| mailbox::cluster_namespace(c) == *leaf_ns)
                .unwrap_or_else(|| format!("of namespace {leaf_ns}"));
            info!(root = %root.name_any(), namespace = %ns, leaf = %leaf_name, %cluster, "deleted leaf");
            publish(
                ctx,
                root,
                EventType::Normal,
                reasons::LEAF_DELETED,
                &format!("removed from cluster {cluster} ({leaf_ns}/{leaf_name})"),
                "Unplace",
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `leaf` is labelled as `root`'s (the labels name the root's
/// namespace and, possibly shortened with a hash, its name).
fn owned_by<K: RootKind>(leaf: &K, root: &K) -> bool {
    naming::root_of_leaf(leaf.meta())
        == Some((
            root.namespace().unwrap_or_default(),
            naming::root_label_value(&root.name_any()),
        ))
}

/// [`owned_by`] of a leaf as the store keeps it.
fn stored_owned_by<K: RootKind>(leaf: &K::Stored, root: &K) -> bool {
    kind::root_of_leaf::<K>(leaf)
        == Some((
            root.namespace().unwrap_or_default(),
            naming::root_label_value(&root.name_any()),
        ))
}

/// Deletes a leaf whose root is gone (no root of its labels' namespace and
/// label value), or a leaf of the layout before cluster namespaces (in its
/// root's namespace, owned by it); anything else of the root kind that is
/// not a root is left alone.
async fn delete_if_orphan<K: RootKind>(
    object: &K,
    ctx: &Context<K>,
) -> Result<Action, ReconcileError> {
    let meta = object.meta();
    let ns = object.namespace().unwrap_or_default();
    let old_layout = naming::root_of_leaf(meta).is_none()
        && naming::is_placeable_namespace(&ns)
        && meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(labels::ROOT_LABEL))
        && object
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.kind == K::kind(&()));
    if let Some(since) = &meta.deletion_timestamp {
        // An old-layout leaf's syncer finalizer: no syncer watches its
        // namespace any more, so it is released after the grace period.
        if !old_layout {
            return Ok(Action::await_change());
        }
        let waited = Timestamp::now().duration_since(since.0).as_secs_f64();
        if waited < cluster_namespaces::FINALIZER_GRACE.as_secs_f64() {
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        let keep: Vec<&String> = meta
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !f.starts_with(labels::SYNCER_FINALIZER_PREFIX))
            .collect();
        let body =
            json!({"metadata": {"finalizers": keep, "resourceVersion": meta.resource_version}});
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        return match api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            Ok(_) => {
                info!(namespace = %ns, leaf = %object.name_any(), "released the syncer finalizers of an old-layout leaf");
                Ok(Action::await_change())
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                Ok(Action::await_change())
            }
            Err(e) => Err(e.into()),
        };
    }
    let why = match naming::root_of_leaf(meta) {
        Some((root_ns, label)) if naming::is_cluster_namespace(&ns) => {
            if !ctx.index.roots_labelled(&root_ns, &label).is_empty() {
                return Ok(Action::await_change());
            }
            format!("its root {root_ns}/{label} is gone")
        }
        None if old_layout => "it is a leaf of the layout before cluster namespaces".to_string(),
        _ => return Ok(Action::await_change()),
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let params = DeleteParams {
        preconditions: meta.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&object.name_any(), &params).await {
        Ok(_) => {
            info!(namespace = %ns, leaf = %object.name_any(), "deleted a leaf: {why}");
            // An old-layout leaf may be held by a syncer finalizer: look again.
            Ok(if old_layout {
                Action::requeue(Duration::from_secs(5))
            } else {
                Action::await_change()
            })
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

async fn write_root_status<K: RootKind>(
    root: &K,
    status: &serde_json::Value,
    ctx: &Context<K>,
    repeats: &Repeats,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let key = format!("{} {ns}/{} status", K::kind(&()), root.name_any());
    if repeats.repeated(ctx, &key, &body) {
        return Ok(());
    }
    api.patch_status(&root.name_any(), &apply_params(), &Patch::Apply(&body))
        .await?;
    Repeats::sent(ctx, key, &body);
    debug!(root = %root.name_any(), "merged root status");
    Ok(())
}

/// Applies the GlobalIngress's spec and the controller's part of its
/// status, each when the plan says it differs.
async fn write_global<K: RootKind>(
    root: &K,
    spec: Option<GlobalSpec>,
    status: Option<GlobalIngressStatus>,
    ctx: &Context<K>,
    repeats: &Repeats,
) -> Result<(), ReconcileError> {
    let ns = root.namespace().unwrap_or_default();
    let Some(name) = K::global_name(&root.name_any()) else {
        return Ok(());
    };
    let api: Api<GlobalIngress> = Api::namespaced(ctx.client.clone(), &ns);
    // The generation of the spec just written, for the status.
    let mut generation = None;
    // A spec sent moments ago that the cache does not show yet: its
    // generation is not known here.
    let mut spec_unseen = false;
    if let Some(GlobalSpec {
        hosts,
        root: root_ref,
        owner,
        finalizers,
    }) = spec
    {
        let mut body = json!({
            "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
            "kind": "GlobalIngress",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": owner.iter().collect::<Vec<_>>()},
            "spec": {"hosts": hosts, "root": root_ref},
        });
        if let Some(finalizers) = finalizers {
            body["metadata"]["finalizers"] = json!(finalizers);
        }
        let key = format!("GlobalIngress {ns}/{name}");
        if repeats.repeated(ctx, &key, &body) {
            spec_unseen = true;
        } else {
            let written = api
                .patch(&name, &apply_params(), &Patch::Apply(&body))
                .await?;
            Repeats::sent(ctx, key, &body);
            generation = written.metadata.generation;
        }
    }
    if spec_unseen {
        // The status would carry the generation the cache shows (none, for
        // a GlobalIngress just created), and be written again once the
        // cache shows the spec: it waits for the watch, which wakes the
        // root (a bulk's clusters may report before the controller's
        // watch shows the GlobalIngress it created).
        debug!(root = %name, namespace = %ns, "GlobalIngress status waits for the cache to show its spec");
        return Ok(());
    }
    if let Some(mut status) = status {
        if generation.is_some() {
            status.observed_generation = generation;
        }
        let body = json!({
            "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
            "kind": "GlobalIngress",
            "status": status,
        });
        let key = format!("GlobalIngress {ns}/{name} status");
        if repeats.repeated(ctx, &key, &body) {
            return Ok(());
        }
        api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
            .await?;
        Repeats::sent(ctx, key, &body);
        let reported = status
            .clusters
            .iter()
            .filter(|c| !c.addresses.is_empty())
            .count();
        debug!(root = %name, namespace = %ns, clusters = status.clusters.len(), reported, generation = ?status.observed_generation, "wrote GlobalIngress status");
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
    // Its GlobalIngress, unless another root controls the one of that name.
    if let Some(global_name) = K::global_name(&name)
        && let Some(global) = ctx
            .caches
            .globals
            .get(&ObjectRef::new(&global_name).within(&ns))
        && global.meta().deletion_timestamp.is_none()
        && let Some(global) = typed_global(&global)
        && !global
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && root.uid().as_deref() != Some(o.uid.as_str()))
    {
        let api: Api<GlobalIngress> = Api::namespaced(ctx.client.clone(), &ns);
        match api.delete(&global_name, &DeleteParams::default()).await {
            Ok(_) => info!(root = %name, namespace = %ns, "deleted GlobalIngress {global_name}"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for dep in K::dependencies(root, &ctx.world) {
        ctx.triggers.dependency(&dep);
    }
    let remaining = ctx
        .index
        .leaves(&ns, &name)
        .iter()
        .filter(|(leaf_ns, l)| {
            // The root labels are kept typed: no parse of a compact store.
            ctx.caches
                .roots
                .get(&ObjectRef::new(l.as_str()).within(leaf_ns))
                .is_some_and(|leaf| stored_owned_by::<K>(&leaf, root))
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

/// Whether an Event announcing `condition` of `root` is due: it differs
/// from what was last announced (always, for a root without a uid).
fn announce<K: RootKind>(root: &K, condition: &Condition, ctx: &Context<K>) -> bool {
    root.uid()
        .is_none_or(|uid| ctx.memory.announce(&uid, condition))
}

/// The dependencies of `root` whose copies may need to change: all of them
/// when the root's clusters changed since its last reconcile, else those
/// that lack a copy in one of its clusters' namespaces. A dependency's
/// reconcile looks at every root that references it, so triggering it on
/// every root's reconcile costs O(roots²) when many roots share one Service.
fn dependencies_to_place<K: RootKind>(
    root: &K,
    targets: &[String],
    ctx: &Context<K>,
) -> Vec<DepKey> {
    let moved = root.uid().is_none_or(|uid| ctx.memory.moved(&uid, targets));
    K::dependencies(root, &ctx.world)
        .into_iter()
        .filter(|dep| {
            if moved {
                return true;
            }
            let copies = ctx.index.copies(dep);
            !targets
                .iter()
                .all(|c| copies.contains(&mailbox::cluster_namespace(c)))
        })
        .collect()
}

/// The typed form of a cached GlobalIngress. Its text is serde_json's own
/// output of a typed object, so it parses back; were it not to, the
/// reconcile goes on as if the cache did not hold it (an apply writes what
/// the root wants either way) and says so.
fn typed_global(global: &Compact<GlobalIngress>) -> Option<GlobalIngress> {
    global
        .typed()
        .inspect_err(|err| {
            warn!(
                namespace = global.namespace().unwrap_or_default(),
                global_ingress = global.name().unwrap_or_default(),
                %err,
                "cannot read a cached GlobalIngress"
            );
        })
        .ok()
}
