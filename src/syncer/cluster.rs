//! One cluster's syncer (I/O), the same in pull and push mode: follows its
//! Cluster object and its downstream client, runs a sync session while both
//! are there, heartbeats the Cluster's status, and when the Cluster is
//! deleted, deletes its copies in the physical cluster ([`teardown`]) and
//! releases its finalizers in its cluster namespace. In push mode it then
//! ends; in pull mode it waits for the Cluster to come back.

use std::sync::Arc;

use crate::runtime::events::Recorder;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::cluster_status;
use super::context::ClusterCtx;
use super::departure::departure;
use super::health::Health;
use super::heartbeat::Reachability;
use super::presence::{self, Presence};
use super::session;
use super::settings::Settings;
use super::source::{self, ClientState, DownstreamSource};
use super::teardown;
use super::upstream::release_finalizers;
use crate::labels;
use crate::runtime::{self, CancellationToken};

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
        namespace_grace,
        metrics,
        shared,
    } = settings;
    let ctx = Arc::new(ClusterCtx {
        recorder,
        health: Health::new(&cluster),
        namespace: crate::mailbox::cluster_namespace(&cluster),
        cluster: cluster.clone(),
        upstream: upstream.clone(),
        specs,
        heartbeat_interval,
        namespace_grace,
        manager: labels::syncer_manager(&cluster),
        metrics,
        shared,
    });
    let mut tasks = JoinSet::new();
    let pull_mode = !matches!(source, DownstreamSource::Secret(_));
    let mut presence = presence::follow(&upstream, &cluster, shutdown.clone(), &mut tasks);
    tasks.spawn(cluster_status::heartbeats(
        ctx.clone(),
        presence.clone(),
        shutdown.clone(),
    ));
    let mut clients = source::follow(
        source,
        upstream,
        cluster.clone(),
        heartbeat_interval,
        shutdown.clone(),
        &mut tasks,
    );
    // The Cluster as last seen active, since its last departure.
    let mut seen: Option<Arc<crate::apis::Cluster>> = None;
    let mut departed = false;
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
            if !departed {
                let last = match &now {
                    Presence::Present(c) => Some(c.clone()),
                    Presence::Absent | Presence::Unknown => seen.clone(),
                };
                let plan = departure(seen.is_some(), &clients.borrow().clone());
                tokio::select! {
                    () = teardown::depart(&ctx, last.as_deref(), plan) => {}
                    () = shutdown.cancelled() => break,
                }
                departed = true;
                seen = None;
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
            if released && !pull_mode {
                // Push mode: the controller started this syncer for the
                // Cluster; a new one starts if it comes back.
                break;
            }
        } else if let Some(object) = now.active() {
            if let Presence::Present(c) = &now {
                seen = Some(c.clone());
            }
            departed = false;
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
