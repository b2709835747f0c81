//! The placement labels of the Services and Secrets roots depend on: one
//! `state.kcp-ingress.dev/<cluster>` label for every cluster that a root
//! referencing the object is placed on.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::{Api, PartialObjectMeta, Patch};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::context::{Context, ReconcileError, apply_params, retry};
use super::decide;
use super::dependencies::{self, DepKey, DepKind};
use super::kind::RootKind;
use crate::labels;

/// Reconciles the placement labels of one Service or Secret: one label per
/// cluster that a root referencing it is placed on.
pub async fn reconcile_dependency<D, K>(
    object: Arc<PartialObjectMeta<D>>,
    ctx: Arc<Context<K>>,
    kind: DepKind,
) -> Result<Action, ReconcileError>
where
    D: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K: RootKind,
{
    let ns = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let clusters = ctx.caches.clusters.state();
    let mut placed = BTreeSet::new();
    for root_name in ctx.index.dependents(&(kind, ns.clone(), name.clone())) {
        let Some(root) = ctx
            .caches
            .roots
            .get(&ObjectRef::new(&root_name).within(&ns))
        else {
            continue;
        };
        if root.meta().deletion_timestamp.is_some() {
            continue;
        }
        if let Some(p) = decide::targets_of(&*root, &clusters) {
            placed.extend(p.targets);
        }
    }
    let desired = dependencies::desired_labels(&placed);
    if dependencies::labels_are_current(&object.metadata, labels::CONTROLLER_MANAGER, &desired) {
        return Ok(Action::await_change());
    }
    // The resourceVersion makes the apply fail instead of creating the object
    // if it was deleted meanwhile.
    let body = json!({
        "apiVersion": D::api_version(&()),
        "kind": D::kind(&()),
        "metadata": {
            "name": name, "namespace": ns, "labels": desired,
            "resourceVersion": object.metadata.resource_version,
        },
    });
    let api: Api<D> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .patch(&name, &apply_params(), &Patch::Apply(&body))
        .await
    {
        Ok(_) => {
            info!(kind = ?kind, namespace = %ns, %name, clusters = ?placed, "placed dependency");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Retries a dependency with the one backoff schedule.
pub fn retry_dependency<K: RootKind>(
    dep: &DepKey,
    err: &ReconcileError,
    ctx: &Context<K>,
) -> Action {
    let failures = ctx.memory.dependency_failed(dep);
    retry(&format!("{:?} {}/{}", dep.0, dep.1, dep.2), failures, err)
}
