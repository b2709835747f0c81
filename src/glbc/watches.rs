//! The glbc's caches: GlobalIngresses and root Ingresses (metadata only; of
//! one namespace, or all) and Clusters, watched through [`runtime::Watch`]; every change wakes the
//! apply loop.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::Store;
use tokio::sync::Notify;

use crate::apis::{Cluster, GlobalIngress};
use crate::runtime::{self, CancellationToken, Change, Readiness};

/// The caches the apply loop reads.
#[derive(Clone)]
pub struct Caches {
    pub globals: Store<GlobalIngress>,
    pub clusters: Store<Cluster>,
    /// Root Ingresses, metadata only: a GlobalIngress is published only
    /// while the root that controls it exists.
    pub roots: Store<PartialObjectMeta<Ingress>>,
}

/// Starts the watches, registered with `readiness`; every change to a
/// cache signals `notify`. Nothing here reads managedFields: without them
/// the caches take about half the memory.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
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
        .without_managed_fields()
        .spawn(readiness, shutdown, wake(notify));
    Caches {
        globals,
        clusters,
        roots,
    }
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
