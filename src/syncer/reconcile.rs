//! One object's sync (I/O), level-based: from what the caches (or, on a
//! miss, a read) show of the upstream object and its downstream copy, do
//! what is missing and nothing else.
//!
//! - placed upstream (label `state.kcp-ingress.dev/<cluster>=Sync`, not
//!   being deleted): finalizer first, then the namespace and the copy
//!   (server-side apply, skipped when the copy already matches), then the
//!   leaf status up, then the upstream reports (conflict / sync error);
//! - otherwise: the copy is deleted if it is ours, then the finalizer and
//!   the reports go.
//!
//! A downstream object without this syncer's labels is never modified or
//! deleted.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::{Resource, ResourceExt};
use tracing::{debug, info};

use super::downstream::{delete_namespace_if_unused, ensure_namespace};
use super::error::{ReconcileError, api_code, down_err, up_err};
use super::naming;
use super::spec;
use super::state::{Key, Session};
use super::status;
use super::upstream::{Report, add_finalizer, release, report, still_placed};
use crate::labels;

/// When to look again at an object that is fine for now.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Only a change wakes it.
    Done,
    /// A state no watch reports the end of (an object in the way that the
    /// syncer does not watch, a refusal that may be lifted): look again later.
    RecheckAfter(Duration),
}

/// How often an object blocked by a foreign downstream object is re-checked.
const CONFLICT_RECHECK: Duration = Duration::from_secs(30);
/// How often an object the cluster refused is tried again.
const REFUSED_RECHECK: Duration = Duration::from_secs(300);
/// How often an object waiting for a terminating namespace is re-checked.
const NAMESPACE_RECHECK: Duration = Duration::from_secs(15);

/// Syncs the object `key`.
pub async fn reconcile(s: &Session, key: &Key) -> Result<Outcome, ReconcileError> {
    let t = &key.ty;
    let cluster = &s.ctx.cluster;
    let oref = key.object_ref();
    let up_api: Api<DynamicObject> =
        Api::namespaced_with(s.ctx.upstream.clone(), &key.namespace, &t.ty.ar);
    let upstream = match t.up.get(&oref) {
        Some(o) => Some(o),
        None => up_api
            .get_opt(&key.name)
            .await
            .map_err(up_err("reading the object"))?
            .map(Arc::new),
    };
    let placed = upstream.as_deref().is_some_and(|o| {
        naming::is_placed(o.labels(), cluster) && o.metadata.deletion_timestamp.is_none()
    });
    match upstream {
        Some(up) if placed => sync(s, key, &up_api, up).await,
        other => cleanup(s, key, &up_api, other).await,
    }
}

async fn sync(
    s: &Session,
    key: &Key,
    up_api: &Api<DynamicObject>,
    mut up: Arc<DynamicObject>,
) -> Result<Outcome, ReconcileError> {
    let cluster = &s.ctx.cluster;
    let t = &key.ty;
    let ar = &t.ty.ar;
    let what = key.to_string();

    // 1. The finalizer, before anything exists downstream.
    let mut fresh = false;
    if !naming::has_finalizer(up.finalizers(), cluster) {
        match add_finalizer(up_api, &key.name, cluster).await? {
            Some(updated) => {
                debug!(cluster, "finalizer added to {what}");
                up = Arc::new(updated);
                fresh = true;
            }
            // Gone or no longer placed: the watch brings the next step.
            None => return Ok(Outcome::Done),
        }
    }

    // 2. What the copy should be.
    let up_json = serde_json::to_value(&*up)?;
    let desired = match spec::downstream_object(&up_json, &ar.api_version, &ar.kind, cluster) {
        Ok(desired) => desired,
        Err(err) => {
            report(
                &s.ctx,
                &t.ty,
                up_api,
                &up,
                Report::Error(format!("{what} cannot be synced: {err}")),
            )
            .await?;
            return Ok(Outcome::Done);
        }
    };

    // 3. The copy.
    let down_api: Api<DynamicObject> =
        Api::namespaced_with(s.downstream.clone(), &key.namespace, ar);
    let oref = key.object_ref();
    let current = match t.down.get(&oref) {
        Some(o) => Some(o),
        None => down_api
            .get_opt(&key.name)
            .await
            .map_err(down_err("reading the copy"))?
            .map(Arc::new),
    };
    if let Some(other) = current.as_deref()
        && !naming::is_ours(other.labels(), cluster)
    {
        let message = naming::conflict_message(&ar.kind, &key.namespace, &key.name, cluster);
        report(&s.ctx, &t.ty, up_api, &up, Report::Conflict(message)).await?;
        return Ok(Outcome::RecheckAfter(CONFLICT_RECHECK));
    }
    let copy = match current.as_deref() {
        Some(copy) => Some(serde_json::to_value(copy)?),
        None => None,
    };
    let copy = match copy {
        Some(copy) if spec::is_up_to_date(&desired, &copy) => Some(copy),
        _ => {
            if copy.is_none() && !fresh && !still_placed(up_api, &key.name, cluster).await? {
                // The cache was behind: do not create a copy of an object
                // that is going; its deletion or relabelling is on its way.
                return Ok(Outcome::Done);
            }
            if let Err(message) = ensure_namespace(s, &key.namespace).await? {
                report(&s.ctx, &t.ty, up_api, &up, Report::Error(message)).await?;
                return Ok(Outcome::RecheckAfter(NAMESPACE_RECHECK));
            }
            let params = PatchParams::apply(&s.ctx.manager).force();
            match down_api
                .patch(&key.name, &params, &Patch::Apply(&desired))
                .await
            {
                Ok(applied) => {
                    if copy.is_some() {
                        info!(cluster, "updated the copy of {what}");
                    } else {
                        info!(cluster, "created the copy of {what}");
                    }
                    Some(serde_json::to_value(&applied)?)
                }
                Err(kube::Error::Api(e)) if matches!(e.code, 400 | 403 | 422) => {
                    let message = format!(
                        "cluster {cluster} refused {what}: {} ({})",
                        e.message, e.reason
                    );
                    report(&s.ctx, &t.ty, up_api, &up, Report::Error(message)).await?;
                    return Ok(Outcome::RecheckAfter(REFUSED_RECHECK));
                }
                Err(err) => {
                    if api_code(&err) == Some(404) {
                        // Most likely the namespace went away.
                        s.forget_namespace(&key.namespace);
                    }
                    return Err(down_err("applying the copy")(err));
                }
            }
        }
    };

    // 4. Leaf status up.
    if t.ty.status_up && up.labels().contains_key(labels::ROOT_LABEL) {
        let up_json = serde_json::to_value(&*up)?;
        if let Some(body) =
            status::status_update(&up_json, copy.as_ref(), &ar.api_version, &ar.kind)
        {
            let params = PatchParams::apply(&s.ctx.manager).force();
            up_api
                .patch_status(&key.name, &params, &Patch::Apply(&body))
                .await
                .map_err(up_err("writing the status"))?;
            info!(
                cluster,
                load_balancer = %body["status"]["loadBalancer"],
                "copied the status of {what} up"
            );
        }
    }

    // 5. Nothing to report any more.
    report(&s.ctx, &t.ty, up_api, &up, Report::Clear).await?;
    Ok(Outcome::Done)
}

async fn cleanup(
    s: &Session,
    key: &Key,
    up_api: &Api<DynamicObject>,
    up: Option<Arc<DynamicObject>>,
) -> Result<Outcome, ReconcileError> {
    let cluster = &s.ctx.cluster;
    let t = &key.ty;
    let ar = &t.ty.ar;
    let what = key.to_string();
    let down_api: Api<DynamicObject> =
        Api::namespaced_with(s.downstream.clone(), &key.namespace, ar);
    let oref = key.object_ref();
    let current = match t.down.get(&oref) {
        Some(o) => Some(o),
        None => down_api
            .get_opt(&key.name)
            .await
            .map_err(down_err("reading the copy"))?
            .map(Arc::new),
    };
    let mut deleted = false;
    if let Some(copy) = current.as_deref()
        && naming::is_ours(copy.labels(), cluster)
    {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: copy.meta().uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match down_api.delete(&key.name, &params).await {
            Ok(_) => {
                let why = match up.as_deref() {
                    None => "it is gone upstream",
                    Some(o) if o.metadata.deletion_timestamp.is_some() => {
                        "it is being deleted upstream"
                    }
                    Some(_) => "it is no longer placed on the cluster",
                };
                info!(cluster, "deleted the copy of {what}: {why}");
                deleted = true;
            }
            Err(err) if api_code(&err) == Some(404) => {}
            Err(err) => return Err(down_err("deleting the copy")(err)),
        }
    }
    if let Some(up) = up.as_deref() {
        let reported = up
            .annotations()
            .contains_key(&labels::conflict_annotation(cluster))
            || up
                .annotations()
                .contains_key(&labels::sync_error_annotation(cluster));
        if (naming::has_finalizer(up.finalizers(), cluster) || reported)
            && release(up_api, &key.name, cluster)
                .await
                .map_err(up_err("removing the finalizer"))?
        {
            info!(cluster, "released {what}");
        }
    }
    if deleted {
        delete_namespace_if_unused(s, &key.namespace).await?;
    }
    Ok(Outcome::Done)
}
