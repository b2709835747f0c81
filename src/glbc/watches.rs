//! The glbc's caches: GlobalIngresses and root Ingresses and Gateways
//! (metadata only, leaves left out; of one namespace, or all) and
//! Clusters, watched through [`runtime::Watch`]; every change wakes the
//! apply loop.
//!
//! Gateways are watched only when the control plane serves them
//! ([`gateways_served`], asked once at start): without the Gateway API, no
//! Gateway is live, and the glbc works as before.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::Notify;

use tracing::{info, warn};

use crate::apis::{Cluster, GlobalIngress};
use crate::gateway_api::gateway::Gateway;
use crate::labels;
use crate::runtime::{self, CancellationToken, Change, Readiness};

/// The caches the apply loop reads.
#[derive(Clone)]
pub struct Caches {
    pub globals: Store<GlobalIngress>,
    pub clusters: Store<Cluster>,
    /// Root Ingresses, metadata only: a GlobalIngress is published only
    /// while the root that controls it exists.
    pub roots: Store<PartialObjectMeta<Ingress>>,
    /// Root Gateways, metadata only, when the control plane serves them.
    pub gateways: Option<Store<PartialObjectMeta<Gateway>>>,
}

/// Whether the control plane serves Gateways (asked until it answers, or
/// `shutdown`: a glbc that wrongly believed Gateways absent would withdraw
/// their records).
pub async fn gateways_served(client: &Client, shutdown: &CancellationToken) -> bool {
    let mut attempt = 0;
    loop {
        match kube::discovery::group(client, labels::gateway_api::GROUP).await {
            Ok(group) => {
                let served = group
                    .recommended_resources()
                    .iter()
                    .any(|(ar, _)| ar.kind == labels::gateway_api::GATEWAY);
                if !served {
                    info!("the control plane serves no Gateways: only Ingress roots are published");
                }
                return served;
            }
            Err(kube::Error::Discovery(_)) => {
                info!(
                    "the control plane does not serve the Gateway API: only Ingress roots are published"
                );
                return false;
            }
            Err(err) => {
                warn!(%err, "cannot ask the control plane whether it serves Gateways; retrying");
                attempt += 1;
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(runtime::backoff(attempt, std::time::Duration::from_secs(10))) => {}
                }
            }
        }
    }
}

/// Starts the watches, registered with `readiness`; every change to a
/// cache signals `notify`. Nothing here reads managedFields: without them
/// the caches take about half the memory.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
    gateways_served: bool,
    notify: &Arc<Notify>,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Caches {
    let globals_api: Api<GlobalIngress> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let globals = runtime::Watch::new("globalingresses", globals_api)
        .without_managed_fields()
        .spawn(readiness, shutdown, wake(notify));
    let clusters = runtime::Watch::new("clusters", Api::<Cluster>::all(client.clone()))
        .without_managed_fields()
        .spawn(readiness, shutdown, wake(notify));
    let roots_api: Api<PartialObjectMeta<Ingress>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let roots = runtime::Watch::new("ingresses", roots_api)
        .config(roots_only())
        .without_managed_fields()
        .spawn(readiness, shutdown, wake(notify));
    let gateways = gateways_served.then(|| {
        let api: Api<PartialObjectMeta<Gateway>> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        runtime::Watch::new("gateways", api)
            .config(roots_only())
            .without_managed_fields()
            .spawn(readiness, shutdown, wake(notify))
    });
    Caches {
        globals,
        clusters,
        roots,
        gateways,
    }
}

/// Roots only: a leaf (labelled with its root) never controls a
/// GlobalIngress, and there are as many leaves as placements.
fn roots_only() -> watcher::Config {
    watcher::Config::default().labels(&format!("!{}", labels::ROOT_LABEL))
}

/// Signals `notify` on every change of a cache's content (not on a watch
/// failing or coming back, which changes nothing).
fn wake<K>(notify: &Arc<Notify>) -> impl FnMut(Change<K>) + Send + 'static {
    let notify = notify.clone();
    move |change| match change {
        Change::Applied { .. } | Change::Deleted(_) | Change::Relisted => notify.notify_one(),
        Change::Failed(_) | Change::Restored => {}
    }
}
