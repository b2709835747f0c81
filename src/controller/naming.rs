//! Naming (pure, the same for every kind of root): a leaf's name and where
//! it lives (its cluster's namespace, [`leaf_key`]), the labels that tie it
//! to its root, the clusters an object is placed on by hand, and which
//! namespaces hold objects that are placed.

use std::collections::BTreeMap;

use kube::core::ObjectMeta;

use crate::labels;
use crate::mailbox;

pub use crate::mailbox::{MAX_LABEL_VALUE, MAX_NAME, shorten};

/// Name of the leaf of `root` for `cluster`: `<root>--<cluster>`, shortened
/// deterministically when it would exceed the Kubernetes name limit.
pub fn leaf_name(root: &str, cluster: &str) -> String {
    shorten(&format!("{root}--{cluster}"), MAX_NAME)
}

/// Value of the `kcp-ingress.dev/root` label on the leaves of `root`.
pub fn root_label_value(root: &str) -> String {
    shorten(root, MAX_LABEL_VALUE)
}

/// Where the leaf of root `namespace/root` for `cluster` lives:
/// `(cluster_namespace(cluster), copy_name(namespace, leaf_name(root, cluster)))`.
/// When that name would be too long, the leaf name is shortened further
/// (deterministically) so that it fits; the syncer maps it back all the same.
pub fn leaf_key(namespace: &str, root: &str, cluster: &str) -> (String, String) {
    let room = MAX_NAME.saturating_sub(namespace.len() + 1).max(16);
    let leaf = shorten(&leaf_name(root, cluster), room);
    let name = mailbox::copy_name(namespace, &leaf).unwrap_or_else(|_| {
        // Only a namespace name longer than any the API allows gets here.
        shorten(&format!("{namespace}.{leaf}"), MAX_NAME)
    });
    (mailbox::cluster_namespace(cluster), name)
}

/// The labels that tie a leaf to its root `namespace/root`.
pub fn leaf_labels(namespace: &str, root: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::ROOT_LABEL.to_string(), root_label_value(root)),
        (
            labels::ROOT_NAMESPACE_LABEL.to_string(),
            namespace.to_string(),
        ),
    ])
}

/// The root a leaf names by its labels: `(root namespace, root label value)`.
pub fn root_of_leaf(meta: &ObjectMeta) -> Option<(String, String)> {
    let l = meta.labels.as_ref()?;
    Some((
        l.get(labels::ROOT_NAMESPACE_LABEL)?.clone(),
        l.get(labels::ROOT_LABEL)?.clone(),
    ))
}

pub use crate::mailbox::is_cluster_namespace;

/// Annotations of a root that its leaves do not carry.
const NOT_COPIED_ANNOTATIONS: [&str; 3] = [
    labels::PLACEMENT_ANNOTATION,
    labels::KUBECTL_LAST_APPLIED_ANNOTATION,
    labels::KCP_CLUSTER_ANNOTATION,
];

/// The labels and annotations a leaf takes from its root (any kind): the
/// root's own, less kcp-ingress's root and placement labels and the
/// annotations in [`NOT_COPIED_ANNOTATIONS`]; no annotations is `None`.
pub fn leaf_labels_and_annotations(
    root: &ObjectMeta,
) -> (BTreeMap<String, String>, Option<BTreeMap<String, String>>) {
    let leaf_labels = root
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            k.as_str() != labels::ROOT_LABEL
                && k.as_str() != labels::ROOT_NAMESPACE_LABEL
                && !k.starts_with(labels::STATE_LABEL_PREFIX)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let annotations: BTreeMap<String, String> = root
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !NOT_COPIED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (
        leaf_labels,
        (!annotations.is_empty()).then_some(annotations),
    )
}

/// Whether objects of `namespace` may be placed: not kcp-ingress' own, not
/// Kubernetes', not a cluster namespace.
pub fn is_placeable_namespace(namespace: &str) -> bool {
    !is_cluster_namespace(namespace) && !labels::UNPLACED_NAMESPACES.contains(&namespace)
}

/// The clusters an object is placed on by its `state.kcp-ingress.dev/<c>` labels.
pub fn placed_clusters(meta: &ObjectMeta) -> Vec<String> {
    meta.labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix(labels::STATE_LABEL_PREFIX))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn long_names_are_shortened_deterministically() {
        let root = "r".repeat(250);
        let a = leaf_name(&root, "east");
        let b = leaf_name(&root, "west");
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME);
        assert_ne!(a, b);
        assert_eq!(a, leaf_name(&root, "east"));
        let v = root_label_value(&root);
        assert!(v.len() <= MAX_LABEL_VALUE && v.starts_with("rrr"));
        assert_eq!(root_label_value("short"), "short");
    }

    #[test]
    fn leaves_live_in_their_cluster_namespace() {
        assert_eq!(
            leaf_key("shop", "web", "east"),
            (
                "kcp-ingress-cluster-east".to_string(),
                "shop.web--east".to_string()
            )
        );
        let (_, long) = leaf_key("shop", &"r".repeat(250), "east");
        assert!(
            long.len() <= MAX_NAME && long.starts_with("shop.rrr"),
            "{long}"
        );
        assert_ne!(long, leaf_key("shop", &"r".repeat(250), "west").1);
        assert!(mailbox::downstream_of_copy(&long).is_some());
        assert!(is_placeable_namespace("shop"));
        assert!(!is_placeable_namespace("kube-system"));
        assert!(!is_placeable_namespace("kcp-ingress-cluster-east"));
    }

    proptest! {
        #[test]
        fn shortened_names_fit_and_are_stable(root in "[a-z0-9]([a-z0-9-]{0,250}[a-z0-9])?", cluster in "[a-z0-9]{1,63}") {
            let name = leaf_name(&root, &cluster);
            prop_assert!(name.len() <= MAX_NAME);
            prop_assert_eq!(&name, &leaf_name(&root, &cluster));
            if root.len() + cluster.len() + 2 <= MAX_NAME {
                prop_assert_eq!(name, format!("{root}--{cluster}"));
            }
            let label = root_label_value(&root);
            prop_assert!(label.len() <= MAX_LABEL_VALUE);
            prop_assert!(label.ends_with(|c: char| c.is_ascii_alphanumeric()));
        }
    }
}
