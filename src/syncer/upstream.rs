//! Writes to the object in the cluster namespace that stands for a synced
//! object (a leaf, a copy, or a `PlacedObject`) (I/O): the syncer's
//! finalizer on it, its reports (conflict and sync-error annotations, with
//! a Warning Event), its release — one object, or every object in the
//! cluster namespace once the Cluster is gone.

use std::pin::pin;

use futures::TryStreamExt;

use crate::runtime::events::{Event, EventType};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::context::ClusterCtx;
use super::discovery;
use super::error::{ReconcileError, api_code, up_err};
use super::layout::Carrier;
use super::naming::{self, ResourceSpec};
use crate::apis::PlacedObject;
use crate::labels::{self, reasons};
use crate::runtime::list;

/// Upper bound of a report's text (annotation value, Event note).
const MAX_REPORT: usize = 1000;

/// What the upstream object should report about this cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    Clear,
    Conflict(String),
    Error(String),
}

/// Merge patches of upstream metadata, attributed to the syncer's field manager.
pub fn merge_params(cluster: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(labels::syncer_manager(cluster)),
        ..PatchParams::default()
    }
}

/// Adds the syncer's finalizer to the current object (read fresh, written
/// with its resourceVersion as precondition). `None` when the object is
/// gone or no longer `placed` (e.g. being deleted).
pub async fn add_finalizer(
    api: &Api<DynamicObject>,
    name: &str,
    cluster: &str,
    placed: impl Fn(&DynamicObject) -> bool,
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
        if !placed(&object) {
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

/// The upstream object a report goes on: the object, its type and its Api.
pub struct Reported<'a> {
    pub ar: &'a ApiResource,
    pub api: &'a Api<DynamicObject>,
    pub object: &'a DynamicObject,
}

/// Brings the upstream object's reports (conflict and sync-error
/// annotations for this cluster) to `wanted`; a new report also becomes a
/// Warning Event on the object.
pub async fn report(
    ctx: &ClusterCtx,
    on: &Reported<'_>,
    wanted: Report,
) -> Result<(), ReconcileError> {
    let (api, up) = (on.api, on.object);
    let cluster = &ctx.cluster;
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
        on.ar.kind,
        up.namespace().unwrap_or_default(),
        name
    );
    let (reason, note) = match (&conflict, &error) {
        (Some(m), _) => (reasons::SYNC_CONFLICT, m.clone()),
        (None, Some(m)) => (reasons::SYNC_FAILED, m.clone()),
        (None, None) => {
            info!(cluster, "{what} syncs again; its report is cleared");
            return Ok(());
        }
    };
    warn!(cluster, reason, "{note}");
    let reference = object_reference(up, on.ar);
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &reference).await {
        warn!(cluster, %err, "cannot publish an Event on {what}");
    }
    Ok(())
}

fn object_reference(object: &DynamicObject, ar: &ApiResource) -> ObjectReference {
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

/// Removes the syncer's finalizer (and its reports) from every object in
/// the cluster namespace `namespace` of the configured types (and the
/// `PlacedObject`s there): the Cluster `cluster` is gone, so nothing may
/// wait for its syncer. Downstream copies are left as they are.
pub async fn release_finalizers(
    upstream: &kube::Client,
    cluster: &str,
    specs: &[ResourceSpec],
) -> Result<(), kube::Error> {
    let namespace = crate::mailbox::cluster_namespace(cluster);
    let native: Vec<&ResourceSpec> = specs
        .iter()
        .filter(|s| Carrier::of(s) == Carrier::Native)
        .collect();
    let mut types: Vec<ApiResource> = Vec::new();
    if !native.is_empty() {
        let owned: Vec<ResourceSpec> = native.into_iter().cloned().collect();
        let resolved = discovery::resolve_upstream(upstream, &owned)
            .await
            .map_err(|e| e.source)?;
        types.extend(resolved.into_iter().filter_map(|(_, ar)| ar));
    }
    if specs.iter().any(|s| Carrier::of(s) != Carrier::Native) {
        types.push(ApiResource::erase::<PlacedObject>(&()));
    }
    let mut released = 0usize;
    for ar in types {
        let api: Api<DynamicObject> = Api::namespaced_with(upstream.clone(), &namespace, &ar);
        let mut objects = pin!(list::all_metadata(
            api.clone(),
            ListParams::default().limit(500)
        ));
        while let Some(object) = objects.try_next().await? {
            let meta = &object.metadata;
            let finalizers = meta.finalizers.as_deref().unwrap_or_default();
            let annotated = meta.annotations.as_ref().is_some_and(|a| {
                a.contains_key(&labels::conflict_annotation(cluster))
                    || a.contains_key(&labels::sync_error_annotation(cluster))
            });
            if !naming::has_finalizer(finalizers, cluster) && !annotated {
                continue;
            }
            let Some(name) = &meta.name else { continue };
            if release(&api, name, cluster).await? {
                info!(
                    cluster,
                    "released {} {namespace}/{name}: the Cluster is gone", ar.kind
                );
                released += 1;
            }
        }
    }
    if released > 0 {
        info!(
            cluster,
            released, "released the objects that waited for this Cluster's syncer"
        );
    }
    Ok(())
}
