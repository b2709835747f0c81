//! The glbc's caches: GlobalIngresses and root Ingresses and Gateways
//! (metadata only, leaves left out; of one namespace, or all) and
//! Clusters, watched through [`runtime::Watch`]; every change wakes the
//! apply loop, and a Cluster's change also signals
//! [`Caches::cluster_changes`] (a pass's status writes stop taking new
//! ones when it changes DNS).
//!
//! Gateways are watched only when the control plane serves them
//! ([`gateways_served`], asked once at start): without the Gateway API, no
//! Gateway is live, and the glbc works as before.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::Notify;

use tracing::{debug, info, warn};

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
    /// Signalled on every change of a Cluster (besides the apply loop's
    /// signal, which the glbc's own status writes fire too).
    pub cluster_changes: Arc<Notify>,
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
        .slim(slim_global)
        .spawn(readiness, shutdown, wake(notify));
    let cluster_changes = Arc::new(Notify::new());
    let clusters = runtime::Watch::new("clusters", Api::<Cluster>::all(client.clone()))
        .without_managed_fields()
        .spawn(
            readiness,
            shutdown,
            logged(wake_all(vec![notify.clone(), cluster_changes.clone()])),
        );
    let roots_api: Api<PartialObjectMeta<Ingress>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let roots = runtime::Watch::new("ingresses", roots_api)
        .config(roots_only())
        .without_managed_fields()
        .slim(slim_root::<Ingress>)
        .spawn(readiness, shutdown, wake(notify));
    let gateways = gateways_served.then(|| {
        let api: Api<PartialObjectMeta<Gateway>> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        runtime::Watch::new("gateways", api)
            .config(roots_only())
            .without_managed_fields()
            .slim(slim_root::<Gateway>)
            .spawn(readiness, shutdown, wake(notify))
    });
    Caches {
        globals,
        clusters,
        roots,
        gateways,
        cluster_changes,
    }
}

/// Drops what the glbc never reads of a GlobalIngress before it is stored:
/// labels, annotations, owner references other than the controller's, the
/// generations and the messages of conditions other than the glbc's own
/// (it reads only which the controller set, and compares its own).
fn slim_global(g: &mut GlobalIngress) {
    let meta = &mut g.metadata;
    meta.labels = None;
    meta.annotations = None;
    meta.generation = None;
    if let Some(owners) = meta.owner_references.as_mut() {
        owners.retain(|o| o.controller == Some(true));
    }
    if let Some(status) = g.status.as_mut() {
        status.observed_generation = None;
        for c in &mut status.conditions {
            if !GLBC_CONDITIONS.contains(&c.type_.as_str()) {
                c.message = String::new();
            }
        }
    }
}

/// The conditions the glbc writes (and compares with what it would write).
const GLBC_CONDITIONS: [&str; 2] = [
    labels::conditions::DNS_PUBLISHED,
    labels::conditions::DEGRADED,
];

/// Keeps of a root's metadata what the glbc reads: its name, namespace and
/// uid (whether it still controls a GlobalIngress) and its health-check
/// annotation.
fn slim_root<K>(root: &mut PartialObjectMeta<K>) {
    let meta = &mut root.metadata;
    meta.labels = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generation = None;
    meta.creation_timestamp = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| k == labels::HEALTH_CHECK_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
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
    wake_all(vec![notify.clone()])
}

/// Signals each of `notifies` as [`wake`] does.
fn wake_all<K>(notifies: Vec<Arc<Notify>>) -> impl FnMut(Change<K>) + Send + 'static {
    move |change| match change {
        Change::Applied { .. } | Change::Deleted(_) | Change::Relisted => {
            notifies.iter().for_each(|n| n.notify_one())
        }
        Change::Failed(_) | Change::Restored => {}
    }
}

/// Logs each Cluster change the watch delivers (debug), before `then`:
/// the moment the glbc sees a cluster's verdict, when timing a failover.
fn logged(
    mut then: impl FnMut(Change<Cluster>) + Send + 'static,
) -> impl FnMut(Change<Cluster>) + Send + 'static {
    move |change| {
        if let Change::Applied { new, .. } = &change {
            debug!(
                cluster = new.name_any(),
                rv = new.resource_version(),
                "Cluster changed"
            );
        }
        then(change)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, ObjectMeta, OwnerReference, Time,
    };
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::apis::GlobalIngressStatus;

    fn condition(type_: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: "True".into(),
            reason: "Test".into(),
            message: message.into(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    #[test]
    fn a_root_keeps_its_uid_and_health_check_only() {
        let mut root = PartialObjectMeta::<Ingress> {
            types: None,
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([("a".into(), "b".into())])),
                annotations: Some(BTreeMap::from([
                    (labels::HEALTH_CHECK_ANNOTATION.into(), "{}".into()),
                    ("other".into(), "x".repeat(100)),
                ])),
                finalizers: Some(vec!["f".into()]),
                ..ObjectMeta::default()
            },
            _phantom: Default::default(),
        };
        slim_root(&mut root);
        let meta = &root.metadata;
        assert_eq!(meta.uid.as_deref(), Some("u-1"));
        assert_eq!(
            meta.annotations,
            Some(BTreeMap::from([(
                labels::HEALTH_CHECK_ANNOTATION.into(),
                "{}".into()
            )]))
        );
        assert!(meta.labels.is_none() && meta.finalizers.is_none());
        root.metadata.annotations = Some(BTreeMap::from([("other".into(), "x".into())]));
        slim_root(&mut root);
        assert!(root.metadata.annotations.is_none());
    }

    #[test]
    fn a_global_ingress_keeps_what_the_glbc_plans_and_compares_from() {
        let owner = |name: &str, controller| OwnerReference {
            api_version: "networking.k8s.io/v1".into(),
            kind: "Ingress".into(),
            name: name.into(),
            uid: "u".into(),
            controller: Some(controller),
            block_owner_deletion: None,
        };
        let mut g = GlobalIngress::new("web", Default::default());
        g.metadata.finalizers = Some(vec![labels::DNS_FINALIZER.into()]);
        g.metadata.labels = Some(BTreeMap::from([("a".into(), "b".into())]));
        g.metadata.owner_references = Some(vec![owner("web", true), owner("x", false)]);
        g.status = Some(GlobalIngressStatus {
            observed_generation: Some(3),
            conditions: vec![
                condition(labels::conditions::READY, "placed on 3 clusters"),
                condition(labels::conditions::DNS_PUBLISHED, "published"),
                condition(labels::conditions::DEGRADED, "degraded"),
            ],
            ..GlobalIngressStatus::default()
        });
        slim_global(&mut g);
        assert_eq!(
            g.metadata.finalizers,
            Some(vec![labels::DNS_FINALIZER.to_string()])
        );
        assert_eq!(g.metadata.owner_references, Some(vec![owner("web", true)]));
        assert!(g.metadata.labels.is_none());
        let status = g.status.unwrap();
        let messages: Vec<&str> = status
            .conditions
            .iter()
            .map(|c| c.message.as_str())
            .collect();
        assert_eq!(messages, ["", "published", "degraded"]);
        assert_eq!(status.observed_generation, None);
    }
}
