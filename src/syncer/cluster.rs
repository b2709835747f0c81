//! One cluster's syncer (I/O), the same in pull and push mode: follows its
//! Cluster object and its downstream client, runs a sync session while both
//! are there, heartbeats the Cluster's status, and releases its finalizers
//! when the Cluster is deleted.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, watcher};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::discovery;
use super::heartbeat::{self, Reachability};
use super::naming::{self, ResourceSpec};
use super::reconcile;
use super::session;
use super::source::{self, ClientState, DownstreamSource};
use crate::apis::{Cluster, SyncedResource};
use crate::labels;
use crate::runtime::CancellationToken;
use crate::runtime::metrics::{ClusterLabel, Metrics};

/// What every part of one cluster's syncer shares.
pub struct ClusterCtx {
    /// Name of the Cluster object.
    pub cluster: String,
    pub upstream: kube::Client,
    pub specs: Vec<ResourceSpec>,
    pub heartbeat_interval: Duration,
    /// Events on upstream objects.
    pub recorder: Recorder,
    pub health: Health,
    /// The syncer's field manager.
    pub manager: String,
    /// Where the count of synced objects goes, when the process serves metrics.
    pub metrics: Option<Arc<Metrics>>,
}

/// How a syncer runs, the same for every cluster of a process.
#[derive(Clone)]
pub struct Settings {
    pub specs: Vec<ResourceSpec>,
    pub heartbeat_interval: Duration,
    pub metrics: Option<Arc<Metrics>>,
}

/// What the syncer knows of the physical cluster, for the heartbeat.
pub struct Health {
    reach: watch::Sender<Reachability>,
    probe: Notify,
    types: Mutex<Vec<TypeReport>>,
    cluster: String,
}

/// One `--resources` type as reported in `status.syncedResources`.
pub struct TypeReport {
    pub resource: String,
    pub served: bool,
    pub message: Option<String>,
    /// The downstream copies, while a session runs.
    pub copies: Option<Store<DynamicObject>>,
}

impl Health {
    fn new(cluster: &str) -> Self {
        Self {
            reach: watch::channel(Reachability::Unknown).0,
            probe: Notify::new(),
            types: Mutex::new(Vec::new()),
            cluster: cluster.to_string(),
        }
    }

    /// Records what was seen of the cluster's API; a change wakes the heartbeat.
    pub fn set(&self, seen: Reachability) {
        let cluster = &self.cluster;
        self.reach.send_if_modified(|current| {
            if *current == seen {
                return false;
            }
            match &seen {
                Reachability::Reachable => info!(cluster, "the cluster's API server is reachable"),
                Reachability::Unreachable { reason, message } => {
                    warn!(cluster, reason, "the cluster is not reachable: {message}");
                }
                Reachability::Unknown => {}
            }
            *current = seen;
            true
        });
    }

    /// The last reachability seen, and its changes.
    pub fn subscribe(&self) -> watch::Receiver<Reachability> {
        self.reach.subscribe()
    }

    /// Asks the prober to look at the cluster now (a request or watch failed).
    pub fn probe_now(&self) {
        self.probe.notify_one();
    }

    /// Resolves when someone asked for a probe.
    pub async fn probe_requested(&self) {
        self.probe.notified().await;
    }

    /// Sets what discovery found, with the stores of the copies.
    pub fn set_types(&self, reports: Vec<TypeReport>) {
        *self.types.lock().unwrap_or_else(|p| p.into_inner()) = reports;
    }

    /// Forgets the stores of an ended session (the counts are no longer known).
    fn session_ended(&self) {
        for report in self
            .types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            report.copies = None;
        }
    }

    fn synced_resources(&self) -> Vec<SyncedResource> {
        self.types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| SyncedResource {
                resource: r.resource.clone(),
                served: r.served,
                objects: r
                    .copies
                    .as_ref()
                    .map(|s| u32::try_from(s.len()).unwrap_or(u32::MAX)),
                message: r.message.clone(),
            })
            .collect()
    }
}

/// Whether the Cluster object is there.
#[derive(Clone, Debug)]
enum Presence {
    /// Not listed yet.
    Unknown,
    Absent,
    Present(Arc<Cluster>),
}

impl Presence {
    /// Present and not being deleted.
    fn active(&self) -> Option<&Cluster> {
        match self {
            Presence::Present(c) if c.metadata.deletion_timestamp.is_none() => Some(c),
            _ => None,
        }
    }

    fn gone(&self) -> bool {
        match self {
            Presence::Unknown => false,
            Presence::Absent => true,
            Presence::Present(c) => c.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Runs the syncer of `cluster` until `shutdown`.
pub async fn run(
    upstream: kube::Client,
    cluster: String,
    source: DownstreamSource,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let Settings {
        specs,
        heartbeat_interval,
        metrics,
    } = settings;
    let manager = labels::syncer_manager(&cluster);
    let ctx = Arc::new(ClusterCtx {
        recorder: Recorder::new(
            upstream.clone(),
            Reporter {
                controller: manager.clone(),
                instance: std::env::var("HOSTNAME").ok(),
            },
        ),
        health: Health::new(&cluster),
        cluster: cluster.clone(),
        upstream: upstream.clone(),
        specs,
        heartbeat_interval,
        manager,
        metrics,
    });
    let mut tasks = JoinSet::new();
    let pull_mode = !matches!(source, DownstreamSource::Secret(_));
    let mut presence = follow_cluster(&ctx, shutdown.clone(), &mut tasks);
    tasks.spawn(heartbeats(ctx.clone(), presence.clone(), shutdown.clone()));
    let mut clients = source::follow(
        source,
        upstream,
        cluster.clone(),
        heartbeat_interval,
        shutdown.clone(),
        &mut tasks,
    );
    let mut released = false;
    let mut said_absent = false;
    let mut said_push = false;
    while !shutdown.is_cancelled() {
        let mut retry = None;
        let now = presence.borrow_and_update().clone();
        if now.gone() {
            if !said_absent {
                warn!(
                    cluster,
                    "Cluster {cluster} does not exist in the control plane (or is being \
                     deleted); nothing is synced until it exists"
                );
                said_absent = true;
            }
            if !released {
                match release_all(&ctx).await {
                    Ok(()) => released = true,
                    Err(err) => {
                        warn!(cluster, %err, "cannot release the finalizers of the deleted Cluster yet");
                        retry = Some(heartbeat_interval);
                    }
                }
            }
        } else if let Some(object) = now.active() {
            released = false;
            said_absent = false;
            if pull_mode && object.spec.kubeconfig_secret_ref.is_some() && !said_push {
                warn!(
                    cluster,
                    "Cluster {cluster} has spec.kubeconfigSecretRef: a controller with \
                     --push-syncers also runs a syncer for it; run one or the other"
                );
                said_push = true;
            }
            let state = clients.borrow_and_update().clone();
            match state {
                ClientState::Pending => {}
                ClientState::Failed { reason, message } => {
                    ctx.health.set(Reachability::unreachable(reason, message));
                }
                ClientState::Ready { client, generation } => {
                    debug!(cluster, generation, "starting a sync session");
                    let cancel = shutdown.child_token();
                    let mut session =
                        tokio::spawn(session::run(ctx.clone(), client, cancel.clone()));
                    let ended = tokio::select! {
                        changed = clients.changed() => {
                            if changed.is_ok() {
                                info!(cluster, "the downstream configuration changed; restarting the session");
                            }
                            None
                        }
                        _ = presence.wait_for(|p| p.active().is_none()) => None,
                        () = shutdown.cancelled() => None,
                        // The session ends by itself when discovery changed.
                        ended = &mut session => Some(ended),
                    };
                    cancel.cancel();
                    let ended = match ended {
                        Some(ended) => ended,
                        None => session.await,
                    };
                    if let Err(err) = ended {
                        warn!(cluster, %err, "the sync session ended abnormally");
                    }
                    ctx.health.session_ended();
                    continue;
                }
            }
        }
        tokio::select! {
            changed = clients.changed() => if changed.is_err() { break },
            changed = presence.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
            () = async {
                match retry {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
    tasks.shutdown().await;
    info!(cluster, "syncer stopped");
}

/// Follows the Cluster object `ctx.cluster`.
fn follow_cluster(
    ctx: &ClusterCtx,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> watch::Receiver<Presence> {
    let (tx, rx) = watch::channel(Presence::Unknown);
    let api: Api<Cluster> = Api::all(ctx.upstream.clone());
    let cluster = ctx.cluster.clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={cluster}"));
    tasks.spawn(async move {
        let mut events = pin!(watcher(api, config).default_backoff());
        let mut listing = None;
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                () = shutdown.cancelled() => return,
            };
            match event {
                None => return,
                Some(Err(err)) => warn!(cluster, %err, "cannot watch the Cluster"),
                Some(Ok(watcher::Event::Init)) => listing = None,
                Some(Ok(watcher::Event::InitApply(c))) => listing = Some(c),
                Some(Ok(watcher::Event::InitDone)) => {
                    tx.send_replace(match listing.take() {
                        Some(c) => Presence::Present(Arc::new(c)),
                        None => Presence::Absent,
                    });
                }
                Some(Ok(watcher::Event::Apply(c))) => {
                    tx.send_replace(Presence::Present(Arc::new(c)));
                }
                Some(Ok(watcher::Event::Delete(_))) => {
                    tx.send_replace(Presence::Absent);
                }
            }
        }
    });
    rx
}

/// Writes the Cluster's status every heartbeat interval, and at once when
/// the cluster's reachability changes.
async fn heartbeats(
    ctx: Arc<ClusterCtx>,
    presence: watch::Receiver<Presence>,
    shutdown: CancellationToken,
) {
    let api: Api<Cluster> = Api::all(ctx.upstream.clone());
    let params = PatchParams::apply(&ctx.manager).force();
    let mut reach = ctx.health.subscribe();
    let mut tick = tokio::time::interval(ctx.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cluster = &ctx.cluster;
    let mut announced = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = reach.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
        let seen = reach.borrow_and_update().clone();
        let previous = match presence.borrow().active() {
            Some(c) => c.status.clone().unwrap_or_default().conditions,
            None => continue,
        };
        let synced = ctx.health.synced_resources();
        if let Some(metrics) = &ctx.metrics {
            let objects: u32 = synced.iter().filter_map(|r| r.objects).sum();
            metrics
                .synced_objects
                .get_or_create(&ClusterLabel {
                    cluster: ctx.cluster.clone(),
                })
                .set(i64::from(objects));
        }
        let Some(status) = heartbeat::cluster_status(
            &previous,
            &seen,
            synced,
            ctx.heartbeat_interval,
            Time(Timestamp::now()),
        ) else {
            continue;
        };
        let body = json!({
            "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
            "kind": "Cluster",
            "status": status,
        });
        match api
            .patch_status(cluster, &params, &Patch::Apply(&body))
            .await
        {
            Ok(written) => {
                debug!(cluster, reachable = ?seen, "heartbeat written");
                announce(&ctx, &written, &seen, &mut announced).await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                debug!(cluster, "no heartbeat: the Cluster is gone");
            }
            Err(err) => {
                warn!(cluster, %err, "cannot write the Cluster's heartbeat; retrying in 1s");
                tick.reset_after(Duration::from_secs(1));
            }
        }
    }
}

/// Publishes an Event on the Cluster when its reachability changes class
/// (reachable, or unreachable for a given reason); `announced` is the last
/// class announced (`None`: nothing yet, so a first "reachable" is quiet).
async fn announce(
    ctx: &ClusterCtx,
    cluster: &Cluster,
    seen: &Reachability,
    announced: &mut Option<Option<String>>,
) {
    let class = match seen {
        Reachability::Unknown => return,
        Reachability::Reachable => None,
        Reachability::Unreachable { reason, .. } => Some(reason.clone()),
    };
    if announced.as_ref() == Some(&class) {
        return;
    }
    let first = announced.is_none();
    *announced = Some(class);
    let (type_, reason, note) = match seen {
        Reachability::Unreachable { reason, message } => {
            (EventType::Warning, reason.clone(), message.clone())
        }
        _ if first => return,
        _ => (
            EventType::Normal,
            heartbeat::reasons::API_SERVER_REACHABLE.to_string(),
            "the cluster's API server answers again".to_string(),
        ),
    };
    let reference = ObjectReference {
        api_version: Some(format!("{}/{}", labels::GROUP, labels::VERSION)),
        kind: Some("Cluster".into()),
        name: cluster.metadata.name.clone(),
        uid: cluster.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_,
        reason,
        note: Some(note.chars().take(1000).collect()),
        action: "Heartbeat".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &reference).await {
        warn!(cluster = ctx.cluster, %err, "cannot publish an Event on the Cluster");
    }
}

/// Removes the syncer's finalizer (and its reports) from every object of the
/// configured types in the control plane: the Cluster is gone, so nothing
/// may wait for its syncer. Downstream copies are left as they are.
pub async fn release_all(ctx: &ClusterCtx) -> Result<(), kube::Error> {
    release_finalizers(&ctx.upstream, &ctx.cluster, &ctx.specs).await
}

/// [`release_all`] for a cluster by name (push mode, after its syncer stopped).
pub async fn release_finalizers(
    upstream: &kube::Client,
    cluster: &str,
    specs: &[ResourceSpec],
) -> Result<(), kube::Error> {
    let types = discovery::resolve_upstream(upstream, specs)
        .await
        .map_err(|e| e.source)?;
    let mut released = 0usize;
    for (spec, ar) in types {
        let Some(ar) = ar else { continue };
        let api: Api<DynamicObject> = Api::all_with(upstream.clone(), &ar);
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list_metadata(&params).await?;
            for object in &page.items {
                let meta = &object.metadata;
                let finalizers = meta.finalizers.as_deref().unwrap_or_default();
                let annotated = meta.annotations.as_ref().is_some_and(|a| {
                    a.contains_key(&labels::conflict_annotation(cluster))
                        || a.contains_key(&labels::sync_error_annotation(cluster))
                });
                if !naming::has_finalizer(finalizers, cluster) && !annotated {
                    continue;
                }
                let (Some(ns), Some(name)) = (&meta.namespace, &meta.name) else {
                    continue;
                };
                let api: Api<DynamicObject> = Api::namespaced_with(upstream.clone(), ns, &ar);
                if reconcile::release(&api, name, cluster).await? {
                    info!(cluster, "released {spec} {ns}/{name}: the Cluster is gone");
                    released += 1;
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    if released > 0 {
        info!(
            cluster,
            released, "released the objects that waited for this Cluster's syncer"
        );
    }
    Ok(())
}
