//! The copies of a user's Service, Secret or ConfigMap in the cluster
//! namespaces (I/O): one per cluster that a root referencing it is placed
//! on or that its `state.kcp-ingress.dev/<cluster>=Sync` labels name,
//! shared by every root that needs it. The user's object is never written.
//!
//! A reconcile reads the metadata caches only, unless a copy is missing or
//! stale: then it reads the user's object with one `get` and applies the
//! copies that differ ([`copies::copy_body`]); copies that carry the current
//! hash are not written (a second run writes nothing). Copies the
//! controller wrote that are no longer needed are deleted.
//!
//! API calls: `get` services/secrets/configmaps in the user's namespace;
//! `patch` (server-side apply; `create` when it creates) and `delete` of
//! secrets, configmaps and placedobjects in cluster namespaces.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, Patch};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::context::{Context, ReconcileError, apply_params, delete_with_uid as delete};
use super::copies;
use super::dependencies::{DepKey, DepKind};
use super::kind::RootKind;
use crate::apis::PlacedObject;
use crate::gateway_api::reference_grant::ReferenceGrant;
use crate::mailbox;

/// Reconciles the copies of one user's object.
pub async fn reconcile_dependency<K: RootKind>(
    dep: &DepKey,
    ctx: &Context<K>,
) -> Result<(), ReconcileError> {
    let (kind, ns, name) = dep;
    let user = ctx.caches.dependency(dep, Clone::clone);
    let clusters = ctx.caches.clusters.state();
    let known: BTreeSet<String> = clusters
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .map(|c| c.name_any())
        .collect();
    let by_roots = ctx.all_clusters_needing(dep, &clusters);
    let by_hand = user
        .as_ref()
        .map(copies::hand_placed_clusters)
        .unwrap_or_default();
    let mut desired = copies::desired_clusters(dep, user.is_some(), &by_roots, &by_hand, &known);
    let copy_name = match copies::copy_name(dep) {
        Ok(n) => n,
        Err(err) => {
            if !desired.is_empty() {
                warn!(kind = ?kind, namespace = %ns, %name, "{err}");
            }
            return Ok(());
        }
    };
    let wanted: BTreeSet<String> = desired
        .iter()
        .map(|c| mailbox::cluster_namespace(c))
        .collect();

    // The copies as the caches show them, in the namespaces that need one.
    let current = |cluster_ns: &str| ctx.caches.metadata(*kind, cluster_ns, &copy_name, true);
    let rv = user
        .as_ref()
        .and_then(|m| m.resource_version.clone())
        .unwrap_or_default();
    let known_hash = ctx.memory.copy_hash(dep, &rv);
    let stale: Vec<&String> = wanted
        .iter()
        .filter(|cluster_ns| match current(cluster_ns) {
            None => true,
            // Being deleted: written again once it is gone.
            Some(meta) if meta.deletion_timestamp.is_some() => false,
            Some(meta) => known_hash.is_none() || copies::copy_hash(&meta) != known_hash.as_deref(),
        })
        .collect();
    if !stale.is_empty() {
        match get_user_object(ctx, dep).await? {
            None => {
                // Gone since the cache showed it: its copies go.
                ctx.memory.set_copy_hash(dep, None);
                desired.clear();
            }
            Some(object) => {
                let mut hash = None;
                for cluster_ns in &stale {
                    let body = copies::copy_body(dep, &object, cluster_ns)
                        .map_err(|e| ReconcileError::Copy(e.to_string()))?;
                    let body_hash = body["metadata"]["annotations"]
                        [crate::labels::COPY_HASH_ANNOTATION]
                        .as_str()
                        .map(str::to_string);
                    if body_hash.is_some()
                        && body_hash.as_deref()
                            == current(cluster_ns).as_ref().and_then(copies::copy_hash)
                    {
                        hash = body_hash;
                        continue;
                    }
                    apply_copy(ctx, *kind, cluster_ns, &copy_name, &body).await?;
                    info!(kind = ?kind, namespace = %ns, %name, cluster_namespace = %cluster_ns, "wrote copy");
                    hash = body_hash;
                }
                let version = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Some(hash) = hash {
                    ctx.memory.set_copy_hash(dep, Some((version, hash)));
                }
            }
        }
    }
    if user.is_none() {
        ctx.memory.set_copy_hash(dep, None);
    }
    let wanted: BTreeSet<String> = desired
        .iter()
        .map(|c| mailbox::cluster_namespace(c))
        .collect();
    for cluster_ns in ctx.index.copies(dep) {
        if wanted.contains(&cluster_ns) {
            continue;
        }
        let Some(meta) = current(&cluster_ns) else {
            ctx.index.set_copy(dep, &cluster_ns, false);
            continue;
        };
        if meta.deletion_timestamp.is_some() || !copies::is_controllers_copy(&meta) {
            continue;
        }
        delete_copy(ctx, *kind, &cluster_ns, &copy_name, meta.uid.clone()).await?;
        info!(kind = ?kind, namespace = %ns, %name, cluster_namespace = %cluster_ns, "deleted copy");
    }
    Ok(())
}

/// The user's object as a whole (managedFields included), or `None` when
/// it is gone.
async fn get_user_object<K: RootKind>(
    ctx: &Context<K>,
    (kind, ns, name): &DepKey,
) -> Result<Option<serde_json::Value>, ReconcileError> {
    async fn get<D>(
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, ReconcileError>
    where
        D: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let api: Api<D> = Api::namespaced(client.clone(), ns);
        match api.get_opt(name).await? {
            None => Ok(None),
            Some(object) => {
                let mut value = serde_json::to_value(&object)?;
                value["apiVersion"] = D::api_version(&()).into();
                value["kind"] = D::kind(&()).into();
                Ok(Some(value))
            }
        }
    }
    match kind {
        DepKind::Service => get::<Service>(&ctx.client, ns, name).await,
        DepKind::Secret => get::<Secret>(&ctx.client, ns, name).await,
        DepKind::ConfigMap => get::<ConfigMap>(&ctx.client, ns, name).await,
        DepKind::ReferenceGrant => get::<ReferenceGrant>(&ctx.client, ns, name).await,
    }
}

/// Applies a copy (a `PlacedObject` for a Service).
async fn apply_copy<K: RootKind>(
    ctx: &Context<K>,
    kind: DepKind,
    ns: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), ReconcileError> {
    async fn apply<D>(
        client: &kube::Client,
        ns: &str,
        name: &str,
        body: &serde_json::Value,
    ) -> kube::Result<()>
    where
        D: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<D> = Api::namespaced(client.clone(), ns);
        api.patch(name, &apply_params(), &Patch::Apply(body))
            .await
            .map(|_| ())
    }
    match kind {
        DepKind::Service | DepKind::ReferenceGrant => {
            apply::<PlacedObject>(&ctx.client, ns, name, body).await?
        }
        DepKind::Secret => apply::<Secret>(&ctx.client, ns, name, body).await?,
        DepKind::ConfigMap => apply::<ConfigMap>(&ctx.client, ns, name, body).await?,
    }
    Ok(())
}

/// Deletes a copy (uid as precondition); gone or replaced already is fine.
pub async fn delete_copy<K: RootKind>(
    ctx: &Context<K>,
    kind: DepKind,
    ns: &str,
    name: &str,
    uid: Option<String>,
) -> Result<(), ReconcileError> {
    match kind {
        DepKind::Service | DepKind::ReferenceGrant => {
            delete::<PlacedObject>(&ctx.client, ns, name, uid).await?
        }
        DepKind::Secret => delete::<Secret>(&ctx.client, ns, name, uid).await?,
        DepKind::ConfigMap => delete::<ConfigMap>(&ctx.client, ns, name, uid).await?,
    }
    Ok(())
}
