//! Naming (pure, the same for every kind of root): a leaf's name, the
//! value of its root label, and the clusters an object is placed on.

use kube::core::ObjectMeta;

use crate::labels;

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
