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

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::naming;
use super::session::{Key, Session, TypeState};
use super::spec;
use super::status;
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
/// Upper bound of a report's text (annotation value, Event note).
const MAX_REPORT: usize = 1000;

/// A failed step; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("control plane: {what}: {source}")]
    Upstream {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster: {what}: {source}")]
    Downstream {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot serialize the object: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl ReconcileError {
    /// Whether the failure says the cluster may be unreachable (no answer,
    /// as opposed to an answer with an error status).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ReconcileError::Downstream { source, .. }
            if !matches!(source, kube::Error::Api(_)))
    }
}

fn up_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let what = what.into();
    move |source| ReconcileError::Upstream { what, source }
}

fn down_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let what = what.into();
    move |source| ReconcileError::Downstream { what, source }
}

/// Merge patches of upstream metadata, attributed to the syncer's field manager.
fn merge_params(cluster: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(labels::syncer_manager(cluster)),
        ..PatchParams::default()
    }
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(e) => Some(e.code),
        _ => None,
    }
}

/// What the upstream object should report about this cluster.
#[derive(Debug, PartialEq, Eq)]
enum Report {
    Clear,
    Conflict(String),
    Error(String),
}

/// Syncs the object `key`.
pub async fn reconcile(s: &Session, key: &Key) -> Result<Outcome, ReconcileError> {
    let t = &s.types[key.ty];
    let cluster = &s.ctx.cluster;
    let oref = ObjectRef::new_with(&key.name, t.ty.ar.clone()).within(&key.namespace);
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
        Some(up) if placed => sync(s, t, key, &up_api, up).await,
        other => cleanup(s, t, key, &up_api, other).await,
    }
}

async fn sync(
    s: &Session,
    t: &TypeState,
    key: &Key,
    up_api: &Api<DynamicObject>,
    mut up: Arc<DynamicObject>,
) -> Result<Outcome, ReconcileError> {
    let cluster = &s.ctx.cluster;
    let ar = &t.ty.ar;
    let what = format!("{} {}/{}", t.ty.spec, key.namespace, key.name);

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
                s,
                t,
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
    let oref = ObjectRef::new_with(&key.name, ar.clone()).within(&key.namespace);
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
        report(s, t, up_api, &up, Report::Conflict(message)).await?;
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
                report(s, t, up_api, &up, Report::Error(message)).await?;
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
                    report(s, t, up_api, &up, Report::Error(message)).await?;
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
    report(s, t, up_api, &up, Report::Clear).await?;
    Ok(Outcome::Done)
}

async fn cleanup(
    s: &Session,
    t: &TypeState,
    key: &Key,
    up_api: &Api<DynamicObject>,
    up: Option<Arc<DynamicObject>>,
) -> Result<Outcome, ReconcileError> {
    let cluster = &s.ctx.cluster;
    let ar = &t.ty.ar;
    let what = format!("{} {}/{}", t.ty.spec, key.namespace, key.name);
    let down_api: Api<DynamicObject> =
        Api::namespaced_with(s.downstream.clone(), &key.namespace, ar);
    let oref = ObjectRef::new_with(&key.name, ar.clone()).within(&key.namespace);
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

/// Whether the object `name` is, read fresh, placed on `cluster` and not
/// being deleted (checked before a copy is created).
async fn still_placed(
    api: &Api<DynamicObject>,
    name: &str,
    cluster: &str,
) -> Result<bool, ReconcileError> {
    Ok(api
        .get_opt(name)
        .await
        .map_err(up_err("reading the object"))?
        .is_some_and(|o| {
            naming::is_placed(o.labels(), cluster) && o.metadata.deletion_timestamp.is_none()
        }))
}

/// Adds the syncer's finalizer to the current object (read fresh, written
/// with its resourceVersion as precondition). `None` when the object is
/// gone, being deleted or no longer placed.
async fn add_finalizer(
    api: &Api<DynamicObject>,
    name: &str,
    cluster: &str,
) -> Result<Option<DynamicObject>, ReconcileError> {
    let ours = labels::syncer_finalizer(cluster);
    for _ in 0..5 {
        let Some(object) = api
            .get_opt(name)
            .await
            .map_err(up_err("reading the object"))?
        else {
            return Ok(None);
        };
        if object.metadata.deletion_timestamp.is_some()
            || !naming::is_placed(object.labels(), cluster)
        {
            return Ok(None);
        }
        if naming::has_finalizer(object.finalizers(), cluster) {
            return Ok(Some(object));
        }
        let mut finalizers = object.finalizers().to_vec();
        finalizers.push(ours.clone());
        let patch = json!({"metadata": {
            "resourceVersion": object.resource_version(),
            "finalizers": finalizers,
        }});
        match api
            .patch(name, &merge_params(cluster), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => return Ok(Some(updated)),
            Err(err) if api_code(&err) == Some(409) => continue,
            Err(err) if api_code(&err) == Some(404) => return Ok(None),
            Err(err) => return Err(up_err("adding the finalizer")(err)),
        }
    }
    Err(ReconcileError::Upstream {
        what: "adding the finalizer".into(),
        source: kube::Error::Api(
            kube::core::Status::failure("the object kept changing", "Conflict")
                .with_code(409)
                .boxed(),
        ),
    })
}

/// Removes the syncer's finalizer and reports from the object `name` (read
/// fresh, written with its resourceVersion as precondition). Returns
/// whether something was removed.
pub async fn release(
    api: &Api<DynamicObject>,
    name: &str,
    cluster: &str,
) -> Result<bool, kube::Error> {
    let ours = labels::syncer_finalizer(cluster);
    let reports = [
        labels::conflict_annotation(cluster),
        labels::sync_error_annotation(cluster),
    ];
    let mut last = None;
    for _ in 0..5 {
        let Some(object) = api.get_opt(name).await? else {
            return Ok(false);
        };
        let had_finalizer = naming::has_finalizer(object.finalizers(), cluster);
        let present: Vec<&String> = reports
            .iter()
            .filter(|k| object.annotations().contains_key(*k))
            .collect();
        if !had_finalizer && present.is_empty() {
            return Ok(false);
        }
        let mut metadata = serde_json::Map::new();
        metadata.insert("resourceVersion".into(), json!(object.resource_version()));
        if had_finalizer {
            let rest: Vec<&String> = object.finalizers().iter().filter(|f| **f != ours).collect();
            metadata.insert("finalizers".into(), json!(rest));
        }
        if !present.is_empty() {
            let nulls: serde_json::Map<String, Value> = present
                .into_iter()
                .map(|k| (k.clone(), Value::Null))
                .collect();
            metadata.insert("annotations".into(), Value::Object(nulls));
        }
        let patch = json!({ "metadata": metadata });
        match api
            .patch(name, &merge_params(cluster), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(err) if api_code(&err) == Some(404) => return Ok(false),
            Err(err) if api_code(&err) == Some(409) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        kube::Error::Api(
            kube::core::Status::failure("the object kept changing", "Conflict")
                .with_code(409)
                .boxed(),
        )
    }))
}

/// Brings the upstream object's reports (conflict and sync-error
/// annotations for this cluster) to `wanted`; a new report also becomes a
/// Warning Event on the object.
async fn report(
    s: &Session,
    t: &TypeState,
    api: &Api<DynamicObject>,
    up: &DynamicObject,
    wanted: Report,
) -> Result<(), ReconcileError> {
    let cluster = &s.ctx.cluster;
    let (conflict_key, error_key) = (
        labels::conflict_annotation(cluster),
        labels::sync_error_annotation(cluster),
    );
    let clip = |m: &str| -> String {
        let mut end = m.len().min(MAX_REPORT);
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m[..end].to_string()
    };
    let (conflict, error) = match &wanted {
        Report::Clear => (None, None),
        Report::Conflict(m) => (Some(clip(m)), None),
        Report::Error(m) => (None, Some(clip(m))),
    };
    let annotations = up.annotations();
    if annotations.get(&conflict_key) == conflict.as_ref()
        && annotations.get(&error_key) == error.as_ref()
    {
        return Ok(());
    }
    let patch = json!({"metadata": {"annotations": {
        conflict_key.clone(): conflict,
        error_key.clone(): error,
    }}});
    let name = up.name_any();
    match api
        .patch(&name, &merge_params(cluster), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(err) if api_code(&err) == Some(404) => return Ok(()),
        Err(err) => return Err(up_err("writing the report")(err)),
    }
    let what = format!(
        "{} {}/{}",
        t.ty.spec,
        up.namespace().unwrap_or_default(),
        name
    );
    let (reason, note) = match (&conflict, &error) {
        (Some(m), _) => ("SyncConflict", m.clone()),
        (None, Some(m)) => ("SyncFailed", m.clone()),
        (None, None) => {
            info!(cluster, "{what} syncs again; its report is cleared");
            return Ok(());
        }
    };
    warn!(cluster, reason, "{note}");
    let reference = object_reference(up, &t.ty.ar);
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(err) = s.ctx.recorder.publish(&event, &reference).await {
        warn!(cluster, %err, "cannot publish an Event on {what}");
    }
    Ok(())
}

fn object_reference(object: &DynamicObject, ar: &kube::api::ApiResource) -> ObjectReference {
    ObjectReference {
        api_version: Some(ar.api_version.clone()),
        kind: Some(ar.kind.clone()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        resource_version: object.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Makes sure `namespace` exists downstream: created (labelled as this
/// syncer's) when missing. `Ok(Err(message))` when it is being deleted.
async fn ensure_namespace(
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
/// the syncer's labels), the upstream namespace is gone or being deleted,
/// and no copy of this syncer (of any synced type) is left in it. Whatever
/// else was put into such a namespace goes with it, as it goes upstream. A
/// namespace the syncer did not create is never deleted.
async fn delete_namespace_if_unused(s: &Session, namespace: &str) -> Result<(), ReconcileError> {
    let cluster = &s.ctx.cluster;
    let upstream_ns: Api<Namespace> = Api::all(s.ctx.upstream.clone());
    let still_there = upstream_ns
        .get_opt(namespace)
        .await
        .map_err(up_err("reading the namespace"))?
        .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
    if still_there {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(s.downstream.clone());
    let Some(ns) = api
        .get_opt(namespace)
        .await
        .map_err(down_err("reading the namespace"))?
    else {
        return Ok(());
    };
    if !naming::is_ours(ns.labels(), cluster) || ns.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let one = ListParams::default()
        .labels(&naming::ours_selector(cluster))
        .limit(1);
    for t in &s.types {
        let copies: Api<DynamicObject> =
            Api::namespaced_with(s.downstream.clone(), namespace, &t.ty.ar);
        let left = copies
            .list_metadata(&one)
            .await
            .map_err(down_err("listing the copies left in the namespace"))?;
        if !left.items.is_empty() {
            return Ok(());
        }
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
                "deleted namespace {namespace} in the cluster: the syncer created it and it is gone upstream"
            );
        }
        Err(err) if matches!(api_code(&err), Some(404 | 409)) => {}
        Err(err) => warn!(cluster, %err, "cannot delete namespace {namespace} in the cluster"),
    }
    Ok(())
}
