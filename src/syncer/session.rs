//! A sync session (I/O): one downstream client, from discovery until the
//! session is cancelled. Per synced type it watches the placed objects
//! upstream — everything of the type in the cluster namespace, or the
//! `PlacedObject`s there labelled for it ([`Carrier`]); in push mode, for
//! the leaves, the controller's cache of them instead ([`super::shared`])
//! — and the copies downstream (each feeding a cache), routes every change
//! to the work queue as a [`Key`] (either side's name gives the same key),
//! and runs
//! the workers that [`reconcile`] each key; a prober keeps the cluster's
//! reachability current.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::watcher;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::cached::Cached;
use super::context::ClusterCtx;
use super::copy_record::CopyRecord;
use super::discovery::{self, Resolved};
use super::health::TypeReport;
use super::heartbeat::Reachability;
use super::layout::{Carrier, Place};
use super::naming;
use super::probe::probe;
use super::queue::{RETRY_CAP, WorkQueue};
use super::reconcile::{self, Outcome};
use super::shared::UpChange;
use super::state::{Key, Session, TypeState, Upstream};
use crate::apis::PlacedObject;
use crate::runtime::{self, CancellationToken, Change, Readiness, Watch, list};

/// Reconciles running at once.
const WORKERS: usize = 8;
/// How often discovery runs again, to pick up types that became served.
const REDISCOVERY: Duration = Duration::from_secs(300);

/// Runs a session until `cancel`.
pub async fn run(ctx: Arc<ClusterCtx>, downstream: kube::Client, cancel: CancellationToken) {
    let cluster = ctx.cluster.clone();
    let mut tasks = JoinSet::new();
    tasks.spawn(probe(ctx.clone(), downstream.clone(), cancel.clone()));

    let Some(resolved) = discover(&ctx, &downstream, &cancel).await else {
        tasks.shutdown().await;
        return;
    };
    let queue = Arc::new(WorkQueue::default());
    // The workers start at once (a key whose object is not cached yet is
    // read): nothing waits for these watches to list.
    let readiness = Readiness::default();
    let mut types = Vec::new();
    let mut reports = Vec::new();
    for r in resolved {
        match r {
            Resolved::NotServed { spec, message } => {
                warn!(cluster, "not syncing {spec}: {message}");
                reports.push(TypeReport {
                    resource: spec.to_string(),
                    served: false,
                    message: Some(message),
                    copies: None,
                });
            }
            Resolved::Served(ty) => {
                let ar = ty.ar.clone();
                let carrier = Carrier::of(&ty.spec);
                let (up_ar, what) = match carrier {
                    Carrier::Native => (ar.clone(), ty.spec.to_string()),
                    Carrier::Wrapped { .. } => (
                        ApiResource::erase::<PlacedObject>(&()),
                        format!("PlacedObjects of {}", ty.spec),
                    ),
                };
                let mut config = watcher::Config::default();
                if let Some(selector) = carrier.selector() {
                    config = config.labels(&selector);
                }
                // In push mode, the leaves are read from the controller's
                // own cache; else the upstream cache keeps objects as
                // compact text ([`Cached`]). The copies downstream are kept
                // as what the syncer compares of them ([`CopyRecord`]).
                let shared = match carrier {
                    Carrier::Native => ctx.shared.of(&ty.spec, &ar),
                    Carrier::Wrapped { .. } => None,
                };
                let (up, up_changes): (Upstream, UpChanges) = match shared {
                    Some(cache) => {
                        let changes = cache.subscribe(&ctx.namespace);
                        let changes = futures::stream::unfold(changes, |mut rx| async move {
                            rx.recv().await.map(|c| (c, rx))
                        });
                        let changes = changes.take_until(cancel.clone().cancelled_owned());
                        (Upstream::Shared(cache), Box::pin(changes))
                    }
                    None => {
                        let (store, changes) = Watch::with_dyntype(
                            format!("{what} in {}", ctx.namespace),
                            Api::<Cached>::namespaced_with(
                                ctx.upstream.clone(),
                                &ctx.namespace,
                                &Arc::new(up_ar.clone()),
                            ),
                            Arc::new(up_ar.clone()),
                        )
                        .config(config)
                        .without_managed_fields()
                        .slim(Cached::slim)
                        .changes(&readiness, &cancel);
                        let changes =
                            changes.filter_map(|c| futures::future::ready(UpChange::of(&c)));
                        (Upstream::Own(store), Box::pin(changes))
                    }
                };
                let (down, down_changes) = Watch::with_dyntype(
                    format!("{} copies in {cluster}", ty.spec),
                    Api::<CopyRecord>::all_with(downstream.clone(), &Arc::new(ar.clone())),
                    Arc::new(ar.clone()),
                )
                .config(watcher::Config::default().labels(&naming::ours_selector(&cluster)))
                .without_managed_fields()
                .slim(CopyRecord::forget_version)
                .changes(&readiness, &cancel);
                reports.push(TypeReport {
                    resource: ty.spec.to_string(),
                    served: true,
                    message: None,
                    copies: Some(down.clone()),
                });
                let state = Arc::new(TypeState::new(ty, carrier, up_ar, up, down));
                let router = Router {
                    ty: state.clone(),
                    queue: queue.clone(),
                    ctx: ctx.clone(),
                };
                tasks.spawn(router.clone().route_upstream(up_changes));
                tasks.spawn(router.route_downstream(down_changes));
                types.push(state);
            }
        }
    }
    info!(
        cluster,
        types = ?types.iter().map(|t| t.ty.spec.to_string()).collect::<Vec<_>>(),
        "syncing"
    );
    ctx.health.set_types(reports);
    let session = Arc::new(Session::new(
        ctx.clone(),
        downstream,
        types,
        queue,
        cancel.clone(),
    ));
    for ty in &session.types {
        if matches!(ty.carrier, Carrier::Wrapped { .. }) {
            tasks.spawn(find_unlabelled_finalizers(session.clone(), ty.clone()));
        }
    }
    tasks.spawn(requeue_on_recovery(session.clone()));
    for _ in 0..WORKERS {
        tasks.spawn(worker(session.clone()));
    }
    let served: Vec<String> = session
        .types
        .iter()
        .map(|t| t.ty.spec.to_string())
        .collect();
    tokio::select! {
        () = cancel.cancelled() => {}
        () = rediscover(&ctx, &session.downstream, served) => {}
    }
    tasks.shutdown().await;
    debug!(cluster, "sync session ended");
}

/// Resolves when discovery finds a different set of types to sync (a CRD
/// installed or removed on either side); the session then ends and the
/// cluster's syncer starts a new one.
async fn rediscover(ctx: &ClusterCtx, downstream: &kube::Client, served: Vec<String>) {
    loop {
        tokio::time::sleep(REDISCOVERY).await;
        let Ok(resolved) = discovery::resolve(&ctx.upstream, downstream, &ctx.specs).await else {
            continue;
        };
        let now: Vec<String> = resolved
            .iter()
            .filter_map(|r| match r {
                Resolved::Served(t) => Some(t.spec.to_string()),
                Resolved::NotServed { .. } => None,
            })
            .collect();
        if now != served {
            info!(
                cluster = ctx.cluster,
                before = ?served,
                now = ?now,
                "the types both sides serve changed; restarting the session"
            );
            return;
        }
    }
}

/// Discovery on both sides, retried until it works or `cancel`.
async fn discover(
    ctx: &ClusterCtx,
    downstream: &kube::Client,
    cancel: &CancellationToken,
) -> Option<Vec<Resolved>> {
    let mut failures = 0u32;
    loop {
        match discovery::resolve(&ctx.upstream, downstream, &ctx.specs).await {
            Ok(resolved) => return Some(resolved),
            Err(err) => {
                failures += 1;
                let delay = runtime::backoff(failures + 2, RETRY_CAP.min(ctx.heartbeat_interval));
                if failures == 1 || failures.is_multiple_of(10) {
                    warn!(cluster = ctx.cluster, %err, "retrying in {}", humantime::format_duration(delay));
                }
                if err.side == "cluster" {
                    ctx.health.probe_now();
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => return None,
                }
            }
        }
    }
}

/// The changes of a type's upstream objects, from either source.
type UpChanges = std::pin::Pin<Box<dyn Stream<Item = UpChange> + Send>>;

/// Queues every key of `ty`'s caches (both sides); how many.
fn queue_all(ty: &Arc<TypeState>, queue: &WorkQueue<Key>, cluster_namespace: &str) -> usize {
    let mut queued = 0;
    for (name, _) in ty.up.names(cluster_namespace) {
        queue.add(Key::of_upstream(ty, &name));
        queued += 1;
    }
    for o in ty.down.state() {
        if let Some(key) = Key::of_downstream(ty, &o) {
            queue.add(key);
            queued += 1;
        }
    }
    queued
}

/// Turns the changes of one type's watches into keys on the work queue.
#[derive(Clone)]
struct Router {
    ty: Arc<TypeState>,
    queue: Arc<WorkQueue<Key>>,
    ctx: Arc<ClusterCtx>,
}

impl Router {
    /// Queues the key of every upstream object that changes. After a
    /// (re)list it queues every key of both sides: an object that vanished
    /// during a watch gap leaves its store without an event, but its
    /// counterpart on the other side is there.
    async fn route_upstream(self, changes: UpChanges) {
        let mut changes = changes;
        while let Some(change) = changes.next().await {
            match change {
                UpChange::Object(name) => self.queue.add(Key::of_upstream(&self.ty, &name)),
                UpChange::Relisted => self.relisted("upstream"),
            }
        }
    }

    /// Queues the key of every copy that changes, and all keys after a
    /// (re)list; a failing downstream watch asks for a probe of the
    /// cluster.
    /// A new version of a copy first keeps what the syncer already knows
    /// of it ([`TypeState::copy_changed`]).
    async fn route_downstream(self, changes: impl Stream<Item = Change<CopyRecord>>) {
        let mut changes = pin!(changes);
        while let Some(change) = changes.next().await {
            match change {
                Change::Applied { old, new: o } => {
                    if let Some(key) = Key::of_downstream(&self.ty, &o) {
                        if let Some(target) = key.place.target() {
                            self.ty.copy_changed(target, old.as_deref());
                        }
                        self.queue.add(key);
                    }
                }
                Change::Deleted(o) => {
                    if let Some(key) = Key::of_downstream(&self.ty, &o) {
                        if let Some(target) = key.place.target() {
                            self.ty.copy_deleted(target);
                        }
                        self.queue.add(key);
                    }
                }
                Change::Relisted => self.relisted("downstream"),
                Change::Failed(_) => self.ctx.health.probe_now(),
                Change::Restored => {}
            }
        }
    }

    fn relisted(&self, side: &str) {
        queue_all(&self.ty, &self.queue, &self.ctx.namespace);
        debug!(cluster = self.ctx.cluster, side, "watch (re)listed");
    }
}

/// Queues the `PlacedObject`s of a wrapped type that carry this syncer's
/// finalizer but lost their resource label while no watch saw it (the
/// watch selects by that label): their copies go and the finalizer is
/// released. Natively stored objects need no such pass, everything in the
/// cluster namespace is watched.
async fn find_unlabelled_finalizers(session: Arc<Session>, state: Arc<TypeState>) {
    let ctx = &session.ctx;
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.upstream.clone(), &ctx.namespace, &state.up_ar);
    let mut failures = 0;
    loop {
        // Queueing a key twice is harmless: after an error the listing
        // starts over.
        let listed = list::all_metadata(api.clone(), ListParams::default().limit(500))
            .try_for_each(|object| {
                let meta = &object.metadata;
                let finalizers = meta.finalizers.as_deref().unwrap_or_default();
                if naming::has_finalizer(finalizers, &ctx.cluster)
                    && let Some(name) = &meta.name
                    && let place @ Place::Mapped { .. } = Place::of_upstream(&state.ty.spec, name)
                {
                    session.queue.add(Key {
                        ty: state.clone(),
                        place,
                    });
                }
                futures::future::ready(Ok(()))
            })
            .await;
        let Err(err) = listed else { return };
        failures += 1;
        if failures == 1 {
            warn!(cluster = ctx.cluster, %err, "cannot list the PlacedObjects of {} for finalizers; retrying", state.ty.spec);
        }
        tokio::select! {
            () = tokio::time::sleep(runtime::backoff(failures + 2, RETRY_CAP)) => {}
            () = session.cancel.cancelled() => return,
        }
    }
}

/// When the cluster becomes reachable again, queues every known key: the
/// watches may still be in their backoff.
async fn requeue_on_recovery(session: Arc<Session>) {
    let mut reach = session.ctx.health.subscribe();
    let mut was_reachable = true;
    loop {
        tokio::select! {
            changed = reach.changed() => if changed.is_err() { return },
            () = session.cancel.cancelled() => return,
        }
        let reachable = matches!(*reach.borrow_and_update(), Reachability::Reachable);
        if reachable && !was_reachable {
            let queued: usize = session
                .types
                .iter()
                .map(|t| queue_all(t, &session.queue, &session.ctx.namespace))
                .sum();
            info!(
                cluster = session.ctx.cluster,
                queued, "cluster reachable again; re-checking every object"
            );
        }
        was_reachable = reachable;
    }
}

async fn worker(session: Arc<Session>) {
    let cluster = &session.ctx.cluster;
    loop {
        let key = tokio::select! {
            key = session.queue.next() => key,
            () = session.cancel.cancelled() => return,
        };
        let result = reconcile::reconcile(&session, &key).await;
        if result.is_ok()
            && let Some(copies) = session.ctx.shared.copies()
        {
            copies.progressed(cluster, Timestamp::now());
        }
        let what = key.to_string();
        match result {
            Ok(Outcome::Done) => {
                session.queue.done(&key, true);
            }
            Ok(Outcome::RecheckAfter(delay)) => {
                session.queue.done(&key, true);
                session.queue.add_after(key, delay, &session.cancel);
            }
            Err(err) => {
                let failures = session.queue.done(&key, false);
                if err.is_unreachable() {
                    session.ctx.health.probe_now();
                }
                let delay = runtime::backoff(failures, RETRY_CAP);
                if failures == 1 || failures.is_multiple_of(10) {
                    warn!(
                        cluster,
                        failures,
                        "syncing {what} failed, retrying in {}: {err}",
                        humantime::format_duration(delay)
                    );
                } else {
                    debug!(cluster, failures, "syncing {what} failed again: {err}");
                }
                session.queue.add_after(key, delay, &session.cancel);
            }
        }
    }
}
