//! A sync session (I/O): one downstream client, from discovery until the
//! session is cancelled. Per synced type it watches the placed objects
//! upstream and the copies downstream (each feeding a cache), routes every
//! change to the work queue by namespace/name, and runs the workers; a
//! prober keeps the cluster's reachability current.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::{self, watcher};
use kube::{Resource, ResourceExt};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::cluster::{ClusterCtx, TypeReport};
use super::discovery::{self, Resolved, SyncType};
use super::heartbeat::{self, Reachability, reasons};
use super::naming;
use super::queue::{WorkQueue, retry_delay};
use super::reconcile::{self, Outcome};
use crate::runtime::CancellationToken;

/// Reconciles running at once.
const WORKERS: usize = 8;
/// How long a probe of the cluster's API may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one probe per this long, however many failures ask for one.
const PROBE_MIN_GAP: Duration = Duration::from_millis(200);
/// How often discovery runs again, to pick up types that became served.
const REDISCOVERY: Duration = Duration::from_secs(300);

/// An upstream object (and its downstream copy): type index, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub ty: usize,
    pub namespace: String,
    pub name: String,
}

/// One synced type with its caches.
pub struct TypeState {
    pub ty: SyncType,
    /// Upstream objects placed on the cluster.
    pub up: Store<DynamicObject>,
    /// Downstream copies managed by this syncer.
    pub down: Store<DynamicObject>,
}

/// What a session's workers share.
pub struct Session {
    pub ctx: Arc<ClusterCtx>,
    pub downstream: kube::Client,
    pub types: Vec<TypeState>,
    pub queue: Arc<WorkQueue<Key>>,
    /// Namespaces known to exist downstream.
    pub namespaces: Mutex<HashSet<String>>,
    pub cancel: CancellationToken,
}

impl Session {
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
                let index = types.len();
                let ar = ty.ar.clone();
                let (up_writer, down_writer) = (Writer::new(ar.clone()), Writer::new(ar.clone()));
                let (up, down) = (up_writer.as_reader(), down_writer.as_reader());
                // Only an upstream Service's managedFields are read (the node
                // ports its user set); other cached objects drop them.
                let service = ar.group.is_empty() && ar.plural == "services";
                spawn_watch(
                    Api::all_with(ctx.upstream.clone(), &ar),
                    naming::placed_selector(&cluster),
                    up_writer,
                    down.clone(),
                    Side::Upstream,
                    service,
                    index,
                    &queue,
                    &ctx,
                    &cancel,
                    &mut tasks,
                );
                spawn_watch(
                    Api::all_with(downstream.clone(), &ar),
                    naming::ours_selector(&cluster),
                    down_writer,
                    up.clone(),
                    Side::Downstream,
                    false,
                    index,
                    &queue,
                    &ctx,
                    &cancel,
                    &mut tasks,
                );
                reports.push(TypeReport {
                    resource: ty.spec.to_string(),
                    served: true,
                    message: None,
                    copies: Some(down.clone()),
                });
                types.push(TypeState { ty, up, down });
            }
        }
    }
    info!(
        cluster,
        types = ?types.iter().map(|t| t.ty.spec.to_string()).collect::<Vec<_>>(),
        "syncing"
    );
    ctx.health.set_types(reports);
    let session = Arc::new(Session {
        ctx: ctx.clone(),
        downstream,
        types,
        queue,
        namespaces: Mutex::new(HashSet::new()),
        cancel: cancel.clone(),
    });
    for (index, _) in session.types.iter().enumerate() {
        tasks.spawn(find_unplaced_finalizers(session.clone(), index));
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
                let delay = retry_delay(failures + 2).min(ctx.heartbeat_interval);
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Upstream,
    Downstream,
}

/// Watches `api` (objects matching `selector`) into the store of `writer`;
/// every change queues its key. After a (re)list it also queues every key of
/// `other`, the other side's store: an object that vanished during a watch
/// gap leaves the store without an event, but its counterpart is there.
/// Cached objects keep their managedFields only if `keep_managed_fields`.
#[allow(clippy::too_many_arguments)]
fn spawn_watch(
    api: Api<DynamicObject>,
    selector: String,
    writer: Writer<DynamicObject>,
    other: Store<DynamicObject>,
    side: Side,
    keep_managed_fields: bool,
    index: usize,
    queue: &Arc<WorkQueue<Key>>,
    ctx: &Arc<ClusterCtx>,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default().labels(&selector))
            .modify(move |o: &mut DynamicObject| {
                if !keep_managed_fields {
                    o.metadata.managed_fields = None;
                }
            })
            .default_backoff(),
    );
    let (queue, ctx, cancel) = (queue.clone(), ctx.clone(), cancel.clone());
    tasks.spawn(route(stream, side, index, other, queue, ctx, cancel));
}

async fn route(
    stream: impl Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>>,
    side: Side,
    index: usize,
    other: Store<DynamicObject>,
    queue: Arc<WorkQueue<Key>>,
    ctx: Arc<ClusterCtx>,
    cancel: CancellationToken,
) {
    let cluster = &ctx.cluster;
    let mut stream = pin!(stream);
    let mut failing = false;
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            () = cancel.cancelled() => return,
        };
        let add = |o: &DynamicObject| {
            if let (Some(namespace), Some(name)) = (o.namespace(), o.meta().name.clone()) {
                queue.add(Key {
                    ty: index,
                    namespace,
                    name,
                });
            }
        };
        match event {
            None => return,
            Some(Ok(event)) => {
                if failing {
                    info!(cluster, ?side, "watch restored");
                    failing = false;
                }
                match event {
                    watcher::Event::Apply(o)
                    | watcher::Event::Delete(o)
                    | watcher::Event::InitApply(o) => add(&o),
                    watcher::Event::Init => {}
                    watcher::Event::InitDone => {
                        for o in other.state() {
                            add(&o);
                        }
                        debug!(cluster, ?side, "watch (re)listed");
                    }
                }
            }
            Some(Err(err)) => {
                if !failing {
                    warn!(cluster, ?side, %err, "watch failed; retrying with backoff");
                    failing = true;
                } else {
                    debug!(cluster, ?side, %err, "watch still failing");
                }
                if side == Side::Downstream {
                    ctx.health.probe_now();
                }
            }
        }
    }
}

/// Queues the objects that carry this syncer's finalizer but are not (or no
/// longer) placed on the cluster: they lost their label while no watch saw it.
async fn find_unplaced_finalizers(session: Arc<Session>, index: usize) {
    let ctx = &session.ctx;
    let ty = &session.types[index].ty;
    let api: Api<DynamicObject> = Api::all_with(ctx.upstream.clone(), &ty.ar);
    let mut failures = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        match api.list_metadata(&params).await {
            Ok(page) => {
                for object in &page.items {
                    let meta = &object.metadata;
                    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
                    if !naming::has_finalizer(finalizers, &ctx.cluster) {
                        continue;
                    }
                    if let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name) {
                        session.queue.add(Key {
                            ty: index,
                            namespace: namespace.clone(),
                            name: name.clone(),
                        });
                    }
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => return,
                }
            }
            Err(err) => {
                failures += 1;
                if failures == 1 {
                    warn!(cluster = ctx.cluster, %err, "cannot list {} for finalizers; retrying", ty.spec);
                }
                tokio::select! {
                    () = tokio::time::sleep(retry_delay(failures + 2)) => {}
                    () = session.cancel.cancelled() => return,
                }
            }
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
            let mut queued = 0;
            for (index, t) in session.types.iter().enumerate() {
                for o in t.up.state().into_iter().chain(t.down.state()) {
                    if let (Some(namespace), Some(name)) = (o.namespace(), o.meta().name.clone()) {
                        session.queue.add(Key {
                            ty: index,
                            namespace,
                            name,
                        });
                        queued += 1;
                    }
                }
            }
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
        let what = format!(
            "{} {}/{}",
            session.types[key.ty].ty.spec, key.namespace, key.name
        );
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
                let delay = retry_delay(failures);
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

/// Looks at the cluster's API every probe interval, and at once when a
/// request or watch failed.
async fn probe(ctx: Arc<ClusterCtx>, client: kube::Client, cancel: CancellationToken) {
    let interval = heartbeat::probe_interval(ctx.heartbeat_interval);
    loop {
        let seen = check(&client).await;
        let wait = if seen == Reachability::Reachable {
            interval
        } else {
            interval.min(Duration::from_secs(1))
        };
        ctx.health.set(seen);
        tokio::select! {
            () = tokio::time::sleep(PROBE_MIN_GAP) => {}
            () = cancel.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(wait.saturating_sub(PROBE_MIN_GAP)) => {}
            () = ctx.health.probe_requested() => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// One look at the API server (`/version`). A failure to connect is tried
/// once more after 100 ms before it counts; no answer within the timeout
/// counts at once (waiting twice would delay failover).
async fn check(client: &kube::Client) -> Reachability {
    let mut last = Reachability::Unknown;
    for attempt in 0..2 {
        last = match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => return Reachability::Reachable,
            Ok(Err(kube::Error::Api(e))) if e.code == 401 || e.code == 403 => {
                return Reachability::unreachable(
                    reasons::KUBECONFIG_INVALID,
                    format!(
                        "the API server refuses the syncer's credentials: {}",
                        e.message
                    ),
                );
            }
            Ok(Err(err)) => {
                Reachability::unreachable(reasons::API_SERVER_UNREACHABLE, err.to_string())
            }
            Err(_) => {
                return Reachability::unreachable(
                    reasons::API_SERVER_UNREACHABLE,
                    format!(
                        "no answer within {}",
                        humantime::format_duration(PROBE_TIMEOUT)
                    ),
                );
            }
        };
        if attempt == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    last
}
