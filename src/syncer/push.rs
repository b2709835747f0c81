//! Push mode: the controller runs one syncer task for every Cluster that has
//! `spec.kubeconfigSecretRef`. A Cluster that gains such a reference gets a
//! syncer; one that loses it has its syncer stopped; the syncer of a
//! deleted Cluster removes its copies in the physical cluster, releases its
//! finalizers in its cluster namespace and stops by itself. The finalizers
//! of a Cluster deleted while no syncer of it ran are the controller's to
//! remove (it empties the namespaces of gone Clusters).

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::Store;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info, warn};

use super::cluster;
use super::error::SyncerError;
use super::naming::ResourceSpec;
use super::queue::RETRY_CAP;
use super::settings::{Settings, check_interval};
use super::shared::SharedCaches;
use super::source::DownstreamSource;
use super::upstream::release_finalizers;
use crate::apis::{Cluster, KubeconfigSecretRef};
use crate::labels;
use crate::runtime::metrics::Metrics;
use crate::runtime::{self, CancellationToken, Change, Readiness, Watch};

struct Running {
    secret: KubeconfigSecretRef,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs a syncer for every Cluster with a kubeconfig Secret, starting and
/// stopping them as such Clusters come and go, until `shutdown`; they read
/// the types of `shared` from the controller's caches.
pub async fn run(
    upstream: kube::Client,
    resources: Vec<String>,
    heartbeat_interval: Duration,
    namespace_grace: Duration,
    metrics: Option<Arc<Metrics>>,
    shared: SharedCaches,
    shutdown: CancellationToken,
) -> Result<(), SyncerError> {
    let checked = ResourceSpec::parse_all(&resources)
        .map_err(SyncerError::from)
        .and_then(|specs| check_interval(heartbeat_interval).map(|()| specs));
    let specs = match checked {
        Ok(specs) => specs,
        Err(err) => {
            error!(%err, "push-mode syncers cannot start");
            return Err(err);
        }
    };
    info!(
        resources = %specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        "push mode: running a syncer for every Cluster with spec.kubeconfigSecretRef"
    );
    let settings = Settings {
        specs,
        heartbeat_interval,
        namespace_grace,
        metrics,
        shared,
    };
    let (store, changes) = Watch::new("Clusters", Api::<Cluster>::all(upstream.clone()))
        .without_managed_fields()
        .changes(&Readiness::default(), &shutdown);
    let mut changes = pin!(changes);
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut releases = JoinSet::new();
    let mut listed = false;
    while let Some(change) = changes.next().await {
        match change {
            Change::Failed(_) | Change::Restored => continue,
            Change::Relisted => listed = true,
            Change::Applied { .. } | Change::Deleted(_) => {}
        }
        if !listed {
            continue;
        }
        converge(
            &store,
            &mut running,
            &mut releases,
            &upstream,
            &settings,
            &shutdown,
        )
        .await;
        while releases.try_join_next().is_some() {}
    }
    for (name, r) in running.drain() {
        r.cancel.cancel();
        if let Err(err) = r.task.await {
            warn!(cluster = name, %err, "push-mode syncer ended abnormally");
        }
    }
    releases.shutdown().await;
    info!("push-mode syncers stopped");
    Ok(())
}

/// How long the syncer of a deleted Cluster may take to remove its copies
/// and release its finalizers before it is stopped.
const DEPARTURE_LIMIT: Duration = Duration::from_secs(120);

/// Releases the finalizers of the gone Cluster `name`, retrying with backoff
/// until it worked or `shutdown`.
async fn release_until_done(
    upstream: &kube::Client,
    name: &str,
    specs: &[ResourceSpec],
    shutdown: &CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        match release_finalizers(upstream, name, specs).await {
            Ok(()) => return,
            Err(err) => {
                failures += 1;
                warn!(cluster = name, %err, "cannot release the finalizers yet; retrying");
                let delay = runtime::backoff(failures + 2, RETRY_CAP);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Starts and stops syncers so that exactly the Clusters with a kubeconfig
/// Secret (and not being deleted) have one.
async fn converge(
    store: &Store<Cluster>,
    running: &mut HashMap<String, Running>,
    releases: &mut JoinSet<()>,
    upstream: &kube::Client,
    settings: &Settings,
    shutdown: &CancellationToken,
) {
    let clusters: BTreeMap<String, Arc<Cluster>> = store
        .state()
        .into_iter()
        .map(|c| (c.name_any(), c))
        .collect();
    let wanted: BTreeMap<&String, &KubeconfigSecretRef> = clusters
        .iter()
        .filter(|(_, c)| c.metadata.deletion_timestamp.is_none())
        .filter_map(|(name, c)| Some((name, c.spec.kubeconfig_secret_ref.as_ref()?)))
        .collect();

    let stale: Vec<String> = running
        .iter()
        .filter(|(name, r)| wanted.get(name).is_none_or(|s| **s != r.secret))
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        let Some(r) = running.remove(&name) else {
            continue;
        };
        let gone = clusters
            .get(&name)
            .is_none_or(|c| c.metadata.deletion_timestamp.is_some());
        if gone {
            // The syncer sees its Cluster go by itself: it deletes its
            // copies in the physical cluster while it still has a client
            // for it, releases its finalizers and ends. Its end is awaited
            // aside (this loop keeps starting and stopping others); should it
            // not end in time, it is stopped and the finalizers released
            // here.
            info!(
                cluster = name,
                "Cluster deleted: its syncer removes its copies, releases its finalizers and stops"
            );
            let (upstream, specs) = (upstream.clone(), settings.specs.clone());
            let shutdown = shutdown.clone();
            releases.spawn(async move {
                let mut task = r.task;
                let ended = tokio::select! {
                    ended = &mut task => Some(ended),
                    () = tokio::time::sleep(DEPARTURE_LIMIT) => None,
                    () = shutdown.cancelled() => None,
                };
                match ended {
                    Some(Ok(())) => return,
                    Some(Err(err)) => {
                        warn!(cluster = name, %err, "push-mode syncer ended abnormally");
                    }
                    None => {
                        r.cancel.cancel();
                        let _ = task.await;
                        if shutdown.is_cancelled() {
                            return;
                        }
                        warn!(
                            cluster = name,
                            "the syncer of the deleted Cluster did not stop in time"
                        );
                    }
                }
                release_until_done(&upstream, &name, &specs, &shutdown).await;
            });
        } else {
            r.cancel.cancel();
            if let Err(err) = r.task.await {
                warn!(cluster = name, %err, "push-mode syncer ended abnormally");
            }
            info!(
                cluster = name,
                "Cluster has no (or another) kubeconfig Secret: its push-mode syncer stopped"
            );
        }
    }

    for (name, secret) in wanted {
        if running.contains_key(name) {
            continue;
        }
        info!(
            cluster = name,
            secret = %format!("{}/{}", secret.namespace, secret.name),
            "starting a push-mode syncer"
        );
        let cancel = shutdown.child_token();
        // No Component per cluster: each syncer reports as its own manager.
        let recorder = runtime::events::recorder(upstream, &labels::syncer_manager(name));
        let task = tokio::spawn(cluster::run(
            upstream.clone(),
            name.clone(),
            DownstreamSource::Secret(secret.clone()),
            settings.clone(),
            recorder,
            cancel.clone(),
        ));
        running.insert(
            name.clone(),
            Running {
                secret: secret.clone(),
                cancel,
                task,
            },
        );
    }
}
