//! Namespaces on the physical cluster (I/O): created (labelled as this
//! syncer's) before the first copy in them, deleted when the syncer created
//! them and, as its caches show, no placed object maps into them and no copy
//! of the syncer is left in them.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tracing::{info, warn};

use super::error::{ReconcileError, api_code, down_err};
use super::naming;
use super::state::Session;

/// Makes sure `namespace` exists downstream: created (labelled as this
/// syncer's) when missing. `Ok(Err(message))` when it is being deleted.
pub async fn ensure_namespace(
    s: &Session,
    namespace: &str,
) -> Result<Result<(), String>, ReconcileError> {
    if s.knows_namespace(namespace) {
        return Ok(Ok(()));
    }
    let cluster = &s.ctx.cluster;
    let api: Api<Namespace> = Api::all(s.downstream.clone());
    match api
        .get_opt(namespace)
        .await
        .map_err(down_err("reading the namespace"))?
    {
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => {
            return Ok(Err(format!(
                "namespace {namespace} is being deleted in cluster {cluster}; waiting for it to go"
            )));
        }
        Some(_) => {}
        None => {
            let mut ns = Namespace::default();
            ns.metadata.name = Some(namespace.to_string());
            ns.metadata.labels = Some(
                naming::ours_labels(cluster)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            );
            let params = PostParams {
                field_manager: Some(s.ctx.manager.clone()),
                ..PostParams::default()
            };
            match api.create(&params, &ns).await {
                Ok(_) => info!(cluster, "created namespace {namespace} in the cluster"),
                Err(err) if api_code(&err) == Some(409) => {}
                Err(err) => return Err(down_err("creating the namespace")(err)),
            }
        }
    }
    s.remember_namespace(namespace);
    Ok(Ok(()))
}

/// Deletes `namespace` downstream when this syncer created it (it carries
/// the syncer's labels) and, as the caches of every synced type show, no
/// upstream object has mapped into it and no copy of this syncer has been
/// left in it for the namespace grace (`--namespace-grace`): a root
/// deleted and created again meanwhile keeps its namespace. Whatever else
/// was put into such a namespace goes with it. A namespace the syncer did
/// not create is never deleted. `Some(wait)` while the grace runs: look
/// again after `wait`.
pub async fn delete_namespace_if_unused(
    s: &Session,
    namespace: &str,
) -> Result<Option<Duration>, ReconcileError> {
    let cluster = &s.ctx.cluster;
    if s.types
        .iter()
        .any(|t| t.maps_into(&s.ctx.namespace, namespace))
    {
        s.namespace_used(namespace);
        return Ok(None);
    }
    if let Some(wait) = s.namespace_unused(namespace, s.ctx.namespace_grace) {
        return Ok(Some(wait));
    }
    let api: Api<Namespace> = Api::all(s.downstream.clone());
    let Some(ns) = api
        .get_opt(namespace)
        .await
        .map_err(down_err("reading the namespace"))?
    else {
        return Ok(None);
    };
    if !naming::is_ours(ns.labels(), cluster) || ns.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let params = DeleteParams {
        preconditions: ns.uid().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(namespace, &params).await {
        Ok(_) => {
            s.forget_namespace(namespace);
            info!(
                cluster,
                "deleted namespace {namespace} in the cluster: the syncer created it and nothing placed maps into it"
            );
        }
        Err(err) if matches!(api_code(&err), Some(404 | 409)) => {}
        Err(err) => warn!(cluster, %err, "cannot delete namespace {namespace} in the cluster"),
    }
    Ok(None)
}
