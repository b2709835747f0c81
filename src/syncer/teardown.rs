//! A gone Cluster's copies (I/O): when the syncer saw its Cluster deleted
//! and has a client for the physical cluster ([`departure`]), it deletes
//! every copy it manages there (the objects with its managed-by and syncer
//! labels, of the synced types) before its finalizers are released
//! upstream. When the cluster does not answer, or there is no client, the
//! copies are kept and a log line and a Warning Event on the Cluster say
//! so, with the command that removes them by hand. Namespaces the syncer
//! created are left in place.

use std::pin::pin;
use std::time::Duration;

use futures::TryStreamExt;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions, PropagationPolicy};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::context::ClusterCtx;
use super::departure::Departure;
use super::discovery::{self, Resolved};
use super::error::{ReconcileError, api_code, down_err, up_err};
use super::naming;
use crate::apis::Cluster;
use crate::labels::reasons;
use crate::runtime::events::{Event, EventType};
use crate::runtime::list;

/// The longest the copies of a gone Cluster are waited for: a cluster that
/// does not answer within it keeps what is left.
const LIMIT: Duration = Duration::from_secs(60);

/// Performs `departure` for the gone Cluster `cluster` (its last state seen,
/// if any: the Event goes on it).
pub async fn depart(ctx: &ClusterCtx, cluster: Option<&Cluster>, departure: Departure) {
    let name = &ctx.cluster;
    let kept = match departure {
        Departure::KeepCopies(why) => why,
        Departure::DeleteCopies(client) => {
            match tokio::time::timeout(LIMIT, delete_copies(ctx, &client)).await {
                Ok(Ok(deleted)) => {
                    let note = format!(
                        "Cluster {name} was deleted: deleted the {deleted} copies its syncer \
                         managed in the physical cluster"
                    );
                    info!(cluster = name, deleted, "{note}");
                    announce(
                        ctx,
                        cluster,
                        EventType::Normal,
                        reasons::COPIES_DELETED,
                        note,
                    )
                    .await;
                    return;
                }
                Ok(Err(err)) if err.is_unreachable() => {
                    format!("the physical cluster's API server is unreachable ({err})")
                }
                Ok(Err(err)) => format!("deleting them failed: {err}"),
                Err(_) => format!(
                    "the physical cluster did not finish within {}",
                    humantime::format_duration(LIMIT)
                ),
            }
        }
    };
    let note = format!(
        "Cluster {name} is gone; its syncer's copies in the physical cluster are kept: {kept}. \
         To remove them, run against that cluster: kubectl delete {} -A -l {}",
        ctx.specs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        naming::ours_selector(name)
    );
    if cluster.is_some() {
        warn!(cluster = name, "{note}");
    } else {
        info!(cluster = name, "{note}");
    }
    announce(ctx, cluster, EventType::Warning, reasons::COPIES_KEPT, note).await;
}

/// Deletes every copy this syncer manages in the physical cluster; the
/// number deleted.
async fn delete_copies(
    ctx: &ClusterCtx,
    downstream: &kube::Client,
) -> Result<usize, ReconcileError> {
    let cluster = &ctx.cluster;
    let resolved = discovery::resolve(&ctx.upstream, downstream, &ctx.specs)
        .await
        .map_err(|e| match e.side {
            "cluster" => down_err("API discovery")(e.source),
            _ => up_err("API discovery")(e.source),
        })?;
    let mut deleted = 0;
    for ty in resolved.iter().filter_map(|r| match r {
        Resolved::Served(t) => Some(t),
        Resolved::NotServed { .. } => None,
    }) {
        let api: Api<DynamicObject> = Api::all_with(downstream.clone(), &ty.ar);
        let params = ListParams::default()
            .labels(&naming::ours_selector(cluster))
            .limit(500);
        let mut copies = pin!(list::all_metadata(api, params));
        while let Some(copy) = copies
            .try_next()
            .await
            .map_err(down_err(format!("listing the {} copies", ty.spec)))?
        {
            let meta = &copy.metadata;
            let (Some(ns), Some(copy_name)) = (&meta.namespace, &meta.name) else {
                continue;
            };
            // The selector says so; a copy is checked again before it goes.
            if !naming::is_ours(copy.labels(), cluster) {
                continue;
            }
            let one: Api<DynamicObject> = Api::namespaced_with(downstream.clone(), ns, &ty.ar);
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: meta.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match one.delete(copy_name, &params).await {
                Ok(_) => {
                    info!(
                        cluster,
                        "deleted {} {ns}/{copy_name}: its Cluster is gone", ty.spec
                    );
                    deleted += 1;
                }
                Err(err) if matches!(api_code(&err), Some(404 | 409)) => {}
                Err(err) => {
                    return Err(down_err(format!("deleting {} {ns}/{copy_name}", ty.spec))(
                        err,
                    ));
                }
            }
        }
    }
    Ok(deleted)
}

/// An Event on the gone Cluster, when this syncer saw it.
async fn announce(
    ctx: &ClusterCtx,
    cluster: Option<&Cluster>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let Some(cluster) = cluster else { return };
    let regarding: ObjectReference = cluster.object_ref(&());
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Unplace".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &regarding).await {
        warn!(cluster = ctx.cluster, %err, "cannot publish an Event on the deleted Cluster");
    }
}
