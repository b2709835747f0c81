//! Dependencies (pure): how a user's object that is placed with the roots
//! that need it, or by hand, is named ([`DepKey`]), and the conflicts its
//! syncers report on its copies. Where its copies go and what they hold is
//! in [`copies`](super::copies).

use kube::core::ObjectMeta;

use crate::labels;

/// The kind of a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DepKind {
    Service,
    Secret,
    /// Placed by hand only (no root kind references one today).
    ConfigMap,
    /// A Gateway API ReferenceGrant that allows a root's reference into
    /// another namespace (copied as a `PlacedObject`, like a Service).
    ReferenceGrant,
}

impl DepKind {
    /// The controller label of its reconciles in metrics.
    pub fn metric_name(self) -> &'static str {
        match self {
            DepKind::Service => "services",
            DepKind::Secret => "secrets",
            DepKind::ConfigMap => "configmaps",
            DepKind::ReferenceGrant => "referencegrants",
        }
    }
}

/// A dependency: kind, namespace, name.
pub type DepKey = (DepKind, String, String);

/// The clusters whose syncer reports a conflict on a copy of a dependency
/// (its `conflict.kcp-ingress.dev/<cluster>` annotations: an object of its
/// name that kcp-ingress does not manage is in the way there), sorted.
pub fn conflicted_clusters(meta: &ObjectMeta) -> Vec<String> {
    meta.annotations
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix(labels::CONFLICT_ANNOTATION_PREFIX))
        .filter(|cluster| !cluster.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
