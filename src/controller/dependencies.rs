//! Dependencies (pure): which placement labels a Service or Secret needs —
//! one `state.kcp-ingress.dev/<cluster>=Sync` for every cluster that a root
//! referencing it is placed on — and which of its labels the controller owns;
//! and how a dependency is named ([`DepKey`]).

use std::collections::{BTreeMap, BTreeSet};

use kube::core::ObjectMeta;

use crate::labels;

/// The kind of a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DepKind {
    Service,
    Secret,
}

impl DepKind {
    /// The controller label of its reconciles in metrics.
    pub fn metric_name(self) -> &'static str {
        match self {
            DepKind::Service => "services",
            DepKind::Secret => "secrets",
        }
    }
}

/// A dependency: kind, namespace, name.
pub type DepKey = (DepKind, String, String);

/// The labels the controller wants on a dependency placed on `clusters`.
pub fn desired_labels<'a>(
    clusters: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, String> {
    clusters
        .into_iter()
        .map(|c| (labels::state_label(c), labels::STATE_SYNC.to_string()))
        .collect()
}

/// The label keys that field manager `manager` set by server-side apply,
/// read from the object's managed fields.
pub fn applied_label_keys(meta: &ObjectMeta, manager: &str) -> BTreeSet<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.manager.as_deref() == Some(manager) && m.operation.as_deref() == Some("Apply")
        })
        .filter_map(|m| m.fields_v1.as_ref())
        .filter_map(|f| f.0.get("f:metadata")?.get("f:labels")?.as_object())
        .flat_map(|labels| labels.keys())
        .filter_map(|k| k.strip_prefix("f:"))
        .map(str::to_string)
        .collect()
}

/// The clusters whose syncer reports a conflict on a dependency (its
/// `conflict.kcp-ingress.dev/<cluster>` annotations: an object of its name
/// that kcp-ingress does not manage is in the way there), sorted.
pub fn conflicted_clusters(meta: &ObjectMeta) -> Vec<String> {
    meta.annotations
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix(labels::CONFLICT_ANNOTATION_PREFIX))
        .filter(|cluster| !cluster.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the object already carries exactly the placement labels the
/// controller wants, applied by the controller: then nothing is written.
pub fn labels_are_current(
    meta: &ObjectMeta,
    manager: &str,
    desired: &BTreeMap<String, String>,
) -> bool {
    let present = desired
        .iter()
        .all(|(k, v)| meta.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
    let owned = applied_label_keys(meta, manager);
    present && owned.iter().eq(desired.keys())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    use super::*;

    fn meta(labels: &[&str], applied: &[&str]) -> ObjectMeta {
        let fields: serde_json::Map<String, serde_json::Value> = applied
            .iter()
            .map(|k| (format!("f:{k}"), serde_json::json!({})))
            .collect();
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|k| (k.to_string(), "Sync".to_string()))
                    .collect(),
            ),
            managed_fields: Some(vec![
                ManagedFieldsEntry {
                    manager: Some("kcp-ingress-controller".into()),
                    operation: Some("Apply".into()),
                    fields_v1: Some(FieldsV1(
                        serde_json::json!({"f:metadata": {"f:labels": fields}}),
                    )),
                    ..Default::default()
                },
                ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    operation: Some("Update".into()),
                    fields_v1: Some(FieldsV1(
                        serde_json::json!({"f:metadata": {"f:labels": {"f:app": {}}}}),
                    )),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn conflicts_are_read_from_the_annotations() {
        let meta = ObjectMeta {
            annotations: Some(
                [
                    ("conflict.kcp-ingress.dev/west", "in the way"),
                    ("conflict.kcp-ingress.dev/east", "in the way"),
                    ("sync-error.kcp-ingress.dev/north", "refused"),
                    ("note", "x"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(conflicted_clusters(&meta), ["east", "west"]);
        assert!(conflicted_clusters(&ObjectMeta::default()).is_empty());
    }

    #[test]
    fn reads_the_keys_a_manager_applied() {
        let m = meta(&["state.kcp-ingress.dev/a"], &["state.kcp-ingress.dev/a"]);
        assert_eq!(
            applied_label_keys(&m, "kcp-ingress-controller"),
            BTreeSet::from(["state.kcp-ingress.dev/a".to_string()])
        );
        assert!(applied_label_keys(&m, "kubectl").is_empty());
    }

    #[test]
    fn current_only_when_present_and_exactly_owned() {
        let want = desired_labels(&["a".to_string(), "b".to_string()]);
        let keys = ["state.kcp-ingress.dev/a", "state.kcp-ingress.dev/b"];
        assert!(labels_are_current(
            &meta(&keys, &keys),
            "kcp-ingress-controller",
            &want
        ));
        // One label too many that we own: it must go.
        let three = [
            "state.kcp-ingress.dev/a",
            "state.kcp-ingress.dev/b",
            "state.kcp-ingress.dev/c",
        ];
        assert!(!labels_are_current(
            &meta(&three, &three),
            "kcp-ingress-controller",
            &want
        ));
        // A label set by hand for a cluster is not ours to remove.
        assert!(labels_are_current(
            &meta(&three, &keys),
            "kcp-ingress-controller",
            &want
        ));
        // Missing label.
        assert!(!labels_are_current(
            &meta(&keys[..1], &keys[..1]),
            "kcp-ingress-controller",
            &want
        ));
    }
}
