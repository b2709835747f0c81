//! One cluster's syncer (I/O), the same in pull and push mode: follows its
//! Cluster object and its downstream client, runs a sync session while both
//! are there, heartbeats the Cluster's status, and releases its finalizers
//! when the Cluster is deleted.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::context::ClusterCtx;
use super::health::Health;
use super::heartbeat::{self, Reachability};
use super::session;
use super::settings::Settings;
use super::source::{self, ClientState, DownstreamSource};
use super::tracked::{Tracked, track};
use super::upstream::release_finalizers;
use crate::apis::Cluster;
use crate::labels;
use crate::runtime::metrics::ClusterLabel;
use crate::runtime::{self, CancellationToken, Readiness, Watch};

/// The longest a failed heartbeat write waits before it is tried again.
const HEARTBEAT_RETRY_CAP: Duration = Duration::from_secs(1);

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

/// Runs the syncer of `cluster` until `shutdown`; its Events go through
/// `recorder`.
pub async fn run(
    upstream: kube::Client,
    cluster: String,
    source: DownstreamSource,
    settings: Settings,
    recorder: Recorder,
    shutdown: CancellationToken,
) {
    let Settings {
        specs,
        heartbeat_interval,
        metrics,
    } = settings;
    let ctx = Arc::new(ClusterCtx {
        recorder,
        health: Health::new(&cluster),
        cluster: cluster.clone(),
        upstream: upstream.clone(),
        specs,
        heartbeat_interval,
        manager: labels::syncer_manager(&cluster),
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
    let mut release_failures = 0u32;
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
                match release_finalizers(&ctx.upstream, &ctx.cluster, &ctx.specs).await {
                    Ok(()) => {
                        released = true;
                        release_failures = 0;
                    }
                    Err(err) => {
                        warn!(cluster, %err, "cannot release the finalizers of the deleted Cluster yet");
                        release_failures += 1;
                        retry = Some(runtime::backoff(release_failures, heartbeat_interval));
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
    let cluster = ctx.cluster.clone();
    let watch = Watch::new(
        format!("Cluster {cluster}"),
        Api::<Cluster>::all(ctx.upstream.clone()),
    )
    .config(watcher::Config::default().fields(&format!("metadata.name={cluster}")));
    let seen = track(watch, &Readiness::default(), &shutdown);
    tasks.spawn(async move {
        let mut seen = pin!(seen);
        while let Some(tracked) = seen.next().await {
            match tracked {
                Tracked::Present(c) => tx.send_replace(Presence::Present(c)),
                Tracked::Absent => tx.send_replace(Presence::Absent),
                // The runtime logs the failure and retries; what was seen holds.
                Tracked::Failed(_) => continue,
            };
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
    let mut failures = 0u32;
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
                failures = 0;
                debug!(cluster, reachable = ?seen, "heartbeat written");
                announce(&ctx, &written, &seen, &mut announced).await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                failures = 0;
                debug!(cluster, "no heartbeat: the Cluster is gone");
            }
            Err(err) => {
                failures += 1;
                let delay = runtime::backoff(failures, HEARTBEAT_RETRY_CAP);
                warn!(cluster, %err, "cannot write the Cluster's heartbeat; retrying in {}",
                    humantime::format_duration(delay));
                tick.reset_after(delay);
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
