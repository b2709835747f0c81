//! One object's sync (I/O), level-based: from what the caches show of the
//! upstream object and its downstream copy, do what is missing and nothing
//! else. An upstream object the cache misses is read; a copy it misses is
//! created by an apply that fails if anything is there (then read), or
//! read first while the copies' cache has not listed yet.
//!
//! The upstream object is the one in the cluster namespace (a leaf, a
//! copy, or the `PlacedObject` carrying the object); its name says which
//! downstream object it is ([`Place`]). Finalizer, reports and status are
//! written on it.
//!
//! - placed (present in the cluster namespace, carrying this type, not
//!   being deleted): finalizer first, then the namespace and the copy
//!   (server-side apply, skipped when the copy already matches), then the
//!   leaf status up, then the upstream reports (conflict / sync error);
//! - otherwise: the copy is deleted if it is ours, then the finalizer and
//!   the reports go, then the downstream namespace if the syncer created it
//!   and no copy maps into it any more;
//! - an upstream object whose name maps to nothing, or whose embedded
//!   object is not what its name says: reported and skipped.
//!
//! A downstream object without this syncer's labels is never modified or
//! deleted.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use tracing::{debug, info};

use super::copy_record::{CopyRecord, applied_mark};
use super::downstream::{delete_namespace_if_unused, ensure_namespace};
use super::error::{ReconcileError, api_code, down_err, up_err};
use super::layout::{self, Carrier, Place, Target};
use super::naming;
use super::spec;
use super::state::{Key, Session};
use super::status;
use super::upstream::{Report, Reported, add_finalizer, release, report};
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
    let up_api: Api<DynamicObject> =
        Api::namespaced_with(s.ctx.upstream.clone(), &s.ctx.namespace, &t.up_ar);
    let upstream = match key.place.upstream() {
        None => None,
        Some(name) => match t.up.get(&t.up_ar, &s.ctx.namespace, name) {
            Some(o) => Some(Arc::new(o)),
            None => up_api
                .get_opt(name)
                .await
                .map_err(up_err("reading the object"))?
                .map(Arc::new),
        },
    };
    let placed = upstream
        .as_deref()
        .is_some_and(|o| is_placed(&t.carrier, o));
    match (&key.place, upstream) {
        (Place::Unmapped { upstream }, Some(up)) if placed => {
            let message = layout::unmapped_message(&t.ty.spec, &s.ctx.namespace, upstream);
            report(&s.ctx, &reported(key, &up_api, &up), Report::Error(message)).await?;
            Ok(Outcome::Done)
        }
        (Place::Unmapped { .. }, up) => {
            if let Some(up) = up {
                release_upstream(s, key, &up_api, &up).await?;
            }
            Ok(Outcome::Done)
        }
        (Place::Mapped { target, .. }, Some(up)) if placed => {
            let leaf_uid = up
                .labels()
                .contains_key(labels::ROOT_LABEL)
                .then(|| up.uid())
                .flatten();
            let mut copied = false;
            let outcome = sync(s, key, target, &up_api, up, &mut copied).await;
            // A leaf's first sync, for the controller beside (push mode):
            // its cluster has had its chance to report since. A failed
            // sync is retried; until one ends, the leaf is still pending.
            if outcome.is_ok()
                && let (Some(uid), Some(copies)) = (leaf_uid, s.ctx.shared.copies())
            {
                copies.synced(&uid, copied, Timestamp::now());
            }
            outcome
        }
        (Place::Mapped { target, .. } | Place::Orphan(target), up) => {
            cleanup(s, key, target, &up_api, up).await
        }
    }
}

/// Whether the upstream object is placed: it carries the type and is not
/// being deleted (everything in the cluster namespace is placed).
fn is_placed(carrier: &Carrier, o: &DynamicObject) -> bool {
    carrier.carries(o.labels()) && o.metadata.deletion_timestamp.is_none()
}

/// What a report on `up` needs.
fn reported<'a>(key: &'a Key, api: &'a Api<DynamicObject>, up: &'a DynamicObject) -> Reported<'a> {
    Reported {
        ar: &key.ty.up_ar,
        api,
        object: up,
    }
}

async fn sync(
    s: &Session,
    key: &Key,
    target: &Target,
    up_api: &Api<DynamicObject>,
    mut up: Arc<DynamicObject>,
    copied: &mut bool,
) -> Result<Outcome, ReconcileError> {
    let cluster = &s.ctx.cluster;
    let t = &key.ty;
    let ar = &t.ty.ar;
    let what = key.to_string();
    let up_name = up.name_any();
    let carrier = &t.carrier;

    // 1. The finalizer, before anything exists downstream. With it on the
    // object, a copy made from a cache that is behind (the object is being
    // deleted or lost its placement meanwhile) cannot outlive it: the
    // object cannot go before this syncer released it, and the change that
    // is on its way brings the key back here to remove the copy first. So
    // creating a copy needs no fresh read of the object.
    if !naming::has_finalizer(up.finalizers(), cluster) {
        match add_finalizer(up_api, &up_name, cluster, |o| is_placed(carrier, o)).await? {
            Some(updated) => {
                debug!(cluster, "finalizer added to {what}");
                up = Arc::new(updated);
            }
            // Gone or no longer placed: the watch brings the next step.
            None => return Ok(Outcome::Done),
        }
    }

    // 2. What the copy should be.
    let up_json = serde_json::to_value(&*up)?;
    let object = match carrier {
        Carrier::Native => Ok(layout::native(&up_json, target)),
        Carrier::Wrapped { .. } => layout::embedded(&up_json, &ar.api_version, &ar.kind, target)
            .map_err(|why| format!("PlacedObject {}/{up_name}: {why}", s.ctx.namespace)),
    };
    let desired = match object.and_then(|o| {
        spec::downstream_object(&o, &ar.api_version, &ar.kind, cluster).map_err(|e| e.to_string())
    }) {
        Ok(desired) => desired,
        Err(err) => {
            report(
                &s.ctx,
                &reported(key, up_api, &up),
                Report::Error(format!("{what} cannot be synced: {err}")),
            )
            .await?;
            return Ok(Outcome::Done);
        }
    };

    // 3. The copy. The cache holds this syncer's copies only; a copy it does
    // not hold is created only if nothing is there yet (one request, no read
    // first). What is there instead is read: someone else's object is left
    // alone and reported, this syncer's (not in the cache yet) is compared.
    let down_api: Api<DynamicObject> =
        Api::namespaced_with(s.downstream.clone(), &target.namespace, ar);
    let mut current = key.ty.stored_copy(target);
    if current.is_none() && !key.ty.copies_listed() {
        // Before the copies' first list a miss says nothing: read (a
        // restart does not try to create every copy it already made).
        match read_copy(s, target, &down_api).await? {
            Some(Found::Foreign) => return conflict(s, key, target, up_api, &up).await,
            found => current = found.and_then(Found::ours),
        }
    }
    let copy = loop {
        if let Some(copy) = current.as_deref() {
            let known = copy.verified();
            if copy.is_up_to_date(&desired) {
                if known != copy.verified() {
                    debug!(cluster, "the copy of {what} is up to date (compared)");
                }
                break Some(copy.status_object());
            }
        }
        if let Err(message) = ensure_namespace(s, &target.namespace).await? {
            report(&s.ctx, &reported(key, up_api, &up), Report::Error(message)).await?;
            return Ok(Outcome::RecheckAfter(NAMESPACE_RECHECK));
        }
        let creating = current.is_none();
        let create_only = creating.then(|| spec::create_only(&desired));
        let body = create_only.as_ref().unwrap_or(&desired);
        let params = PatchParams::apply(&s.ctx.manager).force();
        match down_api
            .patch(&target.name, &params, &Patch::Apply(body))
            .await
        {
            Ok(applied) => {
                if creating {
                    *copied = true;
                    info!(cluster, "created the copy of {what}");
                } else {
                    info!(cluster, "updated the copy of {what}");
                }
                let applied = CopyRecord::from(applied);
                if let Some(mark) = applied_mark(&desired) {
                    t.applied(target, &applied, mark);
                }
                break Some(applied.status_object());
            }
            // Something is there already: whose?
            Err(err) if creating && api_code(&err) == Some(409) => {
                match read_copy(s, target, &down_api).await? {
                    Some(Found::Foreign) => return conflict(s, key, target, up_api, &up).await,
                    Some(Found::Ours(copy)) => current = Some(copy),
                    // Gone again meanwhile: the retry creates it.
                    None => return Err(down_err("creating the copy")(err)),
                }
            }
            Err(kube::Error::Api(e)) if matches!(e.code, 400 | 403 | 422) => {
                let message = format!(
                    "cluster {cluster} refused {what}: {} ({})",
                    e.message, e.reason
                );
                report(&s.ctx, &reported(key, up_api, &up), Report::Error(message)).await?;
                return Ok(Outcome::RecheckAfter(REFUSED_RECHECK));
            }
            Err(err) => {
                if api_code(&err) == Some(404) {
                    // Most likely the namespace went away.
                    s.forget_namespace(&target.namespace);
                }
                return Err(down_err("applying the copy")(err));
            }
        }
    };

    // 4. Leaf status up, on the leaf in the cluster namespace; not again
    // while the cache is behind a write of the same status.
    if t.ty.status_up && up.labels().contains_key(labels::ROOT_LABEL) {
        let body = status::status_update(&up_json, copy.as_ref(), &ar.api_version, &ar.kind);
        let cached = up.metadata.resource_version.as_deref();
        if t.status_sent.repeats(&up_name, cached, body.as_ref()) {
            debug!(
                cluster,
                "the status of {what} is written already (the cache is behind)"
            );
        } else if let Some(body) = body {
            let params = PatchParams::apply(&s.ctx.manager).force();
            let written = up_api
                .patch_status(&up_name, &params, &Patch::Apply(&body))
                .await
                .map_err(up_err("writing the status"))?;
            t.status_sent.sent(
                &up_name,
                written.metadata.resource_version.as_deref(),
                &body,
            );
            info!(cluster, status = %body["status"], "copied the status of {what} up");
        }
    }

    // 5. Nothing to report any more.
    report(&s.ctx, &reported(key, up_api, &up), Report::Clear).await?;
    Ok(Outcome::Done)
}

/// The downstream object where a copy goes.
enum Found {
    /// This syncer's copy.
    Ours(Arc<CopyRecord>),
    /// Someone else's object, never modified or deleted.
    Foreign,
}

impl Found {
    fn ours(self) -> Option<Arc<CopyRecord>> {
        match self {
            Found::Ours(copy) => Some(copy),
            Found::Foreign => None,
        }
    }
}

/// Someone else's object is where the copy of `key` goes: reported on the
/// upstream object, looked at again later (the syncer does not watch it).
async fn conflict(
    s: &Session,
    key: &Key,
    target: &Target,
    up_api: &Api<DynamicObject>,
    up: &DynamicObject,
) -> Result<Outcome, ReconcileError> {
    let message = naming::conflict_message(
        &key.ty.ty.ar.kind,
        &target.namespace,
        &target.name,
        &s.ctx.cluster,
    );
    report(
        &s.ctx,
        &reported(key, up_api, up),
        Report::Conflict(message),
    )
    .await?;
    Ok(Outcome::RecheckAfter(CONFLICT_RECHECK))
}

/// The downstream object at `target`, from the cache (which holds this
/// syncer's copies only) or, on a miss, read.
async fn find_copy(
    s: &Session,
    key: &Key,
    target: &Target,
    down_api: &Api<DynamicObject>,
) -> Result<Option<Found>, ReconcileError> {
    if let Some(copy) = key.ty.stored_copy(target) {
        return Ok(Some(Found::Ours(copy)));
    }
    read_copy(s, target, down_api).await
}

/// The downstream object at `target`, read from the cluster.
async fn read_copy(
    s: &Session,
    target: &Target,
    down_api: &Api<DynamicObject>,
) -> Result<Option<Found>, ReconcileError> {
    Ok(down_api
        .get_opt(&target.name)
        .await
        .map_err(down_err("reading the copy"))?
        .map(|o| {
            if naming::is_ours(o.labels(), &s.ctx.cluster) {
                Found::Ours(Arc::new(CopyRecord::from(o)))
            } else {
                Found::Foreign
            }
        }))
}

/// Removes this syncer's finalizer and reports from the upstream object,
/// if it has any.
async fn release_upstream(
    s: &Session,
    key: &Key,
    up_api: &Api<DynamicObject>,
    up: &DynamicObject,
) -> Result<(), ReconcileError> {
    let cluster = &s.ctx.cluster;
    let reported = up
        .annotations()
        .contains_key(&labels::conflict_annotation(cluster))
        || up
            .annotations()
            .contains_key(&labels::sync_error_annotation(cluster));
    if (naming::has_finalizer(up.finalizers(), cluster) || reported)
        && release(up_api, &up.name_any(), cluster)
            .await
            .map_err(up_err("removing the finalizer"))?
    {
        info!(cluster, "released {key}");
    }
    Ok(())
}

async fn cleanup(
    s: &Session,
    key: &Key,
    target: &Target,
    up_api: &Api<DynamicObject>,
    up: Option<Arc<DynamicObject>>,
) -> Result<Outcome, ReconcileError> {
    let cluster = &s.ctx.cluster;
    let ar = &key.ty.ty.ar;
    let what = key.to_string();
    let down_api: Api<DynamicObject> =
        Api::namespaced_with(s.downstream.clone(), &target.namespace, ar);
    let current = find_copy(s, key, target, &down_api).await?;
    if let Some(Found::Ours(copy)) = &current {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: copy.uid().map(|uid| Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match down_api.delete(&target.name, &params).await {
            Ok(_) => {
                let why = match up.as_deref() {
                    None => "it is gone upstream",
                    Some(o) if o.metadata.deletion_timestamp.is_some() => {
                        "it is being deleted upstream"
                    }
                    Some(_) => "it is no longer placed on the cluster",
                };
                info!(cluster, "deleted the copy of {what}: {why}");
            }
            Err(err) if api_code(&err) == Some(404) => {}
            Err(err) => return Err(down_err("deleting the copy")(err)),
        }
    }
    if let Some(name) = key.place.upstream() {
        key.ty.status_sent.forget(name);
    }
    if let Some(up) = up.as_deref() {
        release_upstream(s, key, up_api, up).await?;
    }
    // A copy just deleted is still cached: its deletion event brings the
    // key back, with no copy.
    if current.is_none()
        && let Some(wait) = delete_namespace_if_unused(s, &target.namespace).await?
    {
        return Ok(Outcome::RecheckAfter(wait));
    }
    Ok(Outcome::Done)
}
