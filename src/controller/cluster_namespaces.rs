//! The cluster namespaces of the control plane (I/O), one per Cluster
//! (`mailbox::cluster_namespace`): ensured to exist, labelled for its
//! Cluster, while the Cluster is there (kcp-ingress never deletes one);
//! emptied when the Cluster goes.
//!
//! A gone Cluster's namespace (one whose Cluster this controller saw
//! deleted, or whose objects still carry a syncer finalizer of a Cluster
//! that is not there) has everything placed in it deleted: leaves, copies
//! and `PlacedObject`s (what Kubernetes puts in every namespace stays). Their syncer, if it still runs, deletes the downstream
//! copies and releases its finalizers (its CopiesDeleted/CopiesKept
//! teardown); a finalizer still held [`FINALIZER_GRACE`] after the deletion
//! is removed by the controller, so that nothing is stuck forever.
//!
//! Also refused here: a Cluster whose `kubeconfigSecretRef` points into a
//! cluster namespace (a Warning Event on it; a syncer can read that Secret).
//!
//! API calls: `get`, `create`/`patch` (server-side apply) namespaces;
//! `delete` and `patch` (finalizers) of ingresses (the root kind),
//! secrets, configmaps and placedobjects in cluster namespaces; `create`
//! events.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{NamespaceResourceScope, ObjectMeta};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{info, warn};

use super::context::{Context, ReconcileError, apply_params, delete_with_uid as delete};
use super::copies;
use super::dependencies::{DepKey, DepKind};
use super::kind::{self, RootKind};
use super::naming;
use crate::apis::{Cluster, PlacedObject};
use crate::labels::{self, reasons};
use crate::mailbox;
use crate::runtime::events::{Event, EventType};
use crate::runtime::stored::Stored;

/// How long after its deletion a syncer finalizer of a gone Cluster is left
/// to its syncer (its teardown gives up after a minute).
pub const FINALIZER_GRACE: Duration = Duration::from_secs(90);
/// How soon a gone Cluster's namespace is looked at again while objects remain.
const RECHECK: Duration = Duration::from_secs(5);

/// Reconciles one cluster namespace; `Some(delay)` asks to come back.
pub async fn reconcile_cluster_namespace<K: RootKind>(
    ns: &str,
    ctx: &Context<K>,
) -> Result<Option<Duration>, ReconcileError> {
    let clusters = ctx.caches.clusters.state();
    if let Some(cluster) = clusters
        .iter()
        .find(|c| mailbox::cluster_namespace(&c.name_any()) == ns)
    {
        ctx.memory.set_departed(ns, false);
        if !ctx.memory.namespace_ensured(ns) {
            ensure_namespace(ns, &cluster.name_any(), ctx).await?;
            // Objects labelled for this Cluster before it (or this
            // controller) was there are copied now.
            for dep in hand_placed_on(&cluster.name_any(), ctx) {
                ctx.triggers.dependency(&dep);
            }
        }
        refuse_kubeconfig_in_cluster_namespace(cluster, ctx).await;
        return Ok(None);
    }
    ctx.memory.set_namespace_ensured(ns, false);
    let objects = objects_in(ns, ctx);
    let finalizer_of_gone = objects
        .iter()
        .any(|(_, meta)| !gone_cluster_finalizers(meta, ns).is_empty());
    if !ctx.memory.departed(ns) && !finalizer_of_gone {
        return Ok(None);
    }
    if objects.is_empty() {
        ctx.memory.set_departed(ns, false);
        info!(namespace = %ns, "the gone Cluster's namespace is empty");
        return Ok(None);
    }
    let now = Timestamp::now();
    for (what, meta) in &objects {
        let name = meta.name.clone().unwrap_or_default();
        match &meta.deletion_timestamp {
            None => {
                what.delete(ctx, ns, &name, meta.uid.clone()).await?;
                info!(namespace = %ns, %name, kind = what.kind(), "deleted an object of a gone Cluster");
            }
            Some(since) => {
                let waited = now.duration_since(since.0).as_secs_f64();
                let ours = gone_cluster_finalizers(meta, ns);
                if waited >= FINALIZER_GRACE.as_secs_f64() && !ours.is_empty() {
                    let keep: Vec<&String> = meta
                        .finalizers
                        .iter()
                        .flatten()
                        .filter(|f| !ours.contains(f))
                        .collect();
                    what.set_finalizers(ctx, ns, &name, &keep, meta.resource_version.clone())
                        .await?;
                    warn!(namespace = %ns, %name, kind = what.kind(), finalizers = ?ours,
                        "removed the finalizers of a gone Cluster's syncer after {}s", waited as u64);
                }
            }
        }
    }
    Ok(Some(RECHECK))
}

/// The users' Services, Secrets and ConfigMaps labelled
/// `state.kcp-ingress.dev/<cluster>=Sync` (placed on `cluster` by hand).
fn hand_placed_on<K: RootKind>(cluster: &str, ctx: &Context<K>) -> Vec<DepKey> {
    let on = |meta: &ObjectMeta| {
        let ns = meta.namespace.as_deref().unwrap_or_default();
        naming::is_placeable_namespace(ns) && copies::hand_placed_clusters(meta).contains(cluster)
    };
    let key = |kind: DepKind, meta: &ObjectMeta| {
        (
            kind,
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    };
    let caches = &ctx.caches;
    let mut out = Vec::new();
    out.extend(
        caches
            .services
            .state()
            .iter()
            .filter(|o| on(&o.metadata))
            .map(|o| key(DepKind::Service, &o.metadata)),
    );
    out.extend(
        caches
            .secrets
            .state()
            .iter()
            .filter(|o| on(&o.metadata))
            .map(|o| key(DepKind::Secret, &o.metadata)),
    );
    out.extend(
        caches
            .configmaps
            .state()
            .iter()
            .filter(|o| on(&o.metadata))
            .map(|o| key(DepKind::ConfigMap, &o.metadata)),
    );
    out
}

/// The syncer finalizers on `meta` of Clusters whose namespace is `ns`.
fn gone_cluster_finalizers(meta: &ObjectMeta, ns: &str) -> Vec<String> {
    meta.finalizers
        .iter()
        .flatten()
        .filter(|f| {
            f.strip_prefix(labels::SYNCER_FINALIZER_PREFIX)
                .is_some_and(|c| mailbox::cluster_namespace(c) == ns)
        })
        .cloned()
        .collect()
}

/// What kind of object in a cluster namespace.
#[derive(Clone, Copy)]
enum What {
    Leaf,
    Secret,
    ConfigMap,
    Placed,
}

/// Every object placed in a cluster namespace, with its metadata: leaves,
/// `PlacedObject`s, and the Secrets and ConfigMaps the controller copied
/// there or a syncer holds (not what else lives in any namespace, such as
/// `kube-root-ca.crt`).
fn objects_in<K: RootKind>(ns: &str, ctx: &Context<K>) -> Vec<(What, ObjectMeta)> {
    let placed = |m: &ObjectMeta| {
        copies::is_controllers_copy(m) || !gone_cluster_finalizers(m, ns).is_empty()
    };
    let in_ns = |m: &ObjectMeta| m.namespace.as_deref() == Some(ns);
    let leaf = |m: &ObjectMeta| in_ns(m) && naming::root_of_leaf(m).is_some();
    let mut out: Vec<(What, ObjectMeta)> = Vec::new();
    // The namespace's leaves, found by what the store keeps typed, then
    // read typed (parsed from a compact store: one namespace's leaves).
    out.extend(
        ctx.caches
            .roots
            .state_filter(|o| {
                o.stored_namespace() == Some(ns) && kind::root_of_leaf::<K>(o).is_some()
            })
            .iter()
            .filter_map(K::Stored::typed)
            .filter(|o| leaf(o.meta()))
            .map(|o| (What::Leaf, o.meta().clone())),
    );
    out.extend(
        ctx.caches
            .secrets
            .state()
            .iter()
            .filter(|o| in_ns(&o.metadata) && placed(&o.metadata))
            .map(|o| (What::Secret, o.metadata.clone())),
    );
    out.extend(
        ctx.caches
            .configmaps
            .state()
            .iter()
            .filter(|o| in_ns(&o.metadata) && placed(&o.metadata))
            .map(|o| (What::ConfigMap, o.metadata.clone())),
    );
    out.extend(
        ctx.caches
            .placed
            .state()
            .iter()
            .filter(|o| in_ns(&o.metadata))
            .map(|o| (What::Placed, o.metadata.clone())),
    );
    out
}

impl What {
    fn kind(self) -> &'static str {
        match self {
            What::Leaf => "leaf",
            What::Secret => "Secret",
            What::ConfigMap => "ConfigMap",
            What::Placed => "PlacedObject",
        }
    }

    async fn delete<K: RootKind>(
        self,
        ctx: &Context<K>,
        ns: &str,
        name: &str,
        uid: Option<String>,
    ) -> Result<(), ReconcileError> {
        let client = &ctx.client;
        match self {
            What::Leaf => delete::<K>(client, ns, name, uid).await,
            What::Secret => delete::<Secret>(client, ns, name, uid).await,
            What::ConfigMap => delete::<ConfigMap>(client, ns, name, uid).await,
            What::Placed => delete::<PlacedObject>(client, ns, name, uid).await,
        }
    }

    async fn set_finalizers<K: RootKind>(
        self,
        ctx: &Context<K>,
        ns: &str,
        name: &str,
        keep: &[&String],
        rv: Option<String>,
    ) -> Result<(), ReconcileError> {
        let client = &ctx.client;
        let body = json!({"metadata": {"finalizers": keep, "resourceVersion": rv}});
        match self {
            What::Leaf => merge::<K>(client, ns, name, &body).await,
            What::Secret => merge::<Secret>(client, ns, name, &body).await,
            What::ConfigMap => merge::<ConfigMap>(client, ns, name, &body).await,
            What::Placed => merge::<PlacedObject>(client, ns, name, &body).await,
        }
    }
}

/// A JSON merge patch (the resourceVersion in `body` makes it conditional).
async fn merge<D>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), ReconcileError>
where
    D: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<D> = Api::namespaced(client.clone(), ns);
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure the namespace `ns` of `cluster` exists, labelled for it:
/// a `get`, and an apply only when it is missing or unlabelled.
async fn ensure_namespace<K: RootKind>(
    ns: &str,
    cluster: &str,
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    if ctx.memory.namespace_ensured(ns) {
        return Ok(());
    }
    let label = mailbox::shorten(cluster, mailbox::MAX_LABEL_VALUE);
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let current = api.get_opt(ns).await?;
    let labelled = current
        .as_ref()
        .and_then(|n| n.labels().get(labels::CLUSTER_LABEL))
        .is_some_and(|v| *v == label);
    if !labelled {
        let body = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {labels::CLUSTER_LABEL: label}},
        });
        api.patch(ns, &apply_params(), &Patch::Apply(&body)).await?;
        info!(namespace = %ns, %cluster, "ensured the cluster namespace");
    }
    ctx.memory.set_namespace_ensured(ns, true);
    Ok(())
}

/// A Warning Event, once per reason, on a Cluster whose
/// `kubeconfigSecretRef` points into a cluster namespace.
async fn refuse_kubeconfig_in_cluster_namespace<K: RootKind>(cluster: &Cluster, ctx: &Context<K>) {
    let Some(secret) = &cluster.spec.kubeconfig_secret_ref else {
        return;
    };
    let Some(note) = mailbox::refused_kubeconfig_ref(&secret.namespace, &secret.name) else {
        return;
    };
    let uid = cluster.uid().unwrap_or_default();
    if !ctx.memory.announce_refusal(&uid, &note) {
        return;
    }
    warn!(cluster = %cluster.name_any(), "{note}");
    let event = Event {
        type_: EventType::Warning,
        reason: reasons::KUBECONFIG_SECRET_REFUSED.to_string(),
        note: Some(note),
        action: "Validate".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        warn!(cluster = %cluster.name_any(), %err, "cannot publish an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_finalizers_of_the_namespace_s_cluster_count() {
        let meta = ObjectMeta {
            finalizers: Some(vec![
                "kcp-ingress.dev/syncer-east".into(),
                "kcp-ingress.dev/syncer-west".into(),
                "example.com/other".into(),
            ]),
            ..Default::default()
        };
        assert_eq!(
            gone_cluster_finalizers(&meta, &mailbox::cluster_namespace("east")),
            ["kcp-ingress.dev/syncer-east"]
        );
        assert!(gone_cluster_finalizers(&meta, &mailbox::cluster_namespace("north")).is_empty());
    }
}
