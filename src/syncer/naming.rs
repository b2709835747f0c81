//! Names the syncer derives (pure): which API resource a `--resources` entry
//! means, which downstream objects belong to a cluster's syncer, and how a
//! copy names its origin (which upstream object is which downstream one is
//! [`super::layout`]).

use std::collections::BTreeMap;
use std::fmt;

use crate::labels;

/// One entry of `--resources`: `resource.group`, or just `resource` for the
/// core group (`ingresses.networking.k8s.io`, `services`, `deployments.apps`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceSpec {
    /// Plural resource name, as in the API path (`ingresses`).
    pub resource: String,
    /// API group; empty for the core group.
    pub group: String,
}

/// A `--resources` entry that cannot name a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceSpecError {
    #[error("no resource types given")]
    Empty,
    #[error(
        "{0:?} is not a resource type; write resource.group, or just resource for core types \
         (e.g. ingresses.networking.k8s.io, services, deployments.apps)"
    )]
    Invalid(String),
}

impl ResourceSpec {
    /// Parses `resource.group` (or `resource`): lower-case DNS labels.
    pub fn parse(text: &str) -> Result<Self, ResourceSpecError> {
        let text = text.trim();
        let invalid = || ResourceSpecError::Invalid(text.to_string());
        let (resource, group) = match text.split_once('.') {
            Some((_, "")) => return Err(invalid()),
            Some(split) => split,
            None => (text, ""),
        };
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !label_ok(resource) || (!group.is_empty() && !group.split('.').all(label_ok)) {
            return Err(invalid());
        }
        Ok(Self {
            resource: resource.to_string(),
            group: group.to_string(),
        })
    }

    /// Parses every entry, dropping duplicates (first one wins).
    pub fn parse_all(entries: &[String]) -> Result<Vec<Self>, ResourceSpecError> {
        let mut out: Vec<Self> = Vec::new();
        for entry in entries.iter().filter(|e| !e.trim().is_empty()) {
            let spec = Self::parse(entry)?;
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
        if out.is_empty() {
            return Err(ResourceSpecError::Empty);
        }
        Ok(out)
    }
}

impl fmt::Display for ResourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// The label selector of the downstream objects `cluster`'s syncer manages.
pub fn ours_selector(cluster: &str) -> String {
    format!(
        "{}={},{}={cluster}",
        labels::MANAGED_BY_LABEL,
        labels::MANAGED_BY_VALUE,
        labels::SYNCER_LABEL
    )
}

/// Whether a downstream object (or namespace) with these labels is managed
/// by `cluster`'s syncer: the managed-by label and the syncer label naming
/// `cluster`. Nothing else may be modified or deleted.
pub fn is_ours(object_labels: &BTreeMap<String, String>, cluster: &str) -> bool {
    object_labels
        .get(labels::MANAGED_BY_LABEL)
        .is_some_and(|v| v == labels::MANAGED_BY_VALUE)
        && object_labels
            .get(labels::SYNCER_LABEL)
            .is_some_and(|v| v == cluster)
}

/// The labels that mark a downstream object as managed by `cluster`'s syncer.
pub fn ours_labels(cluster: &str) -> [(&'static str, String); 2] {
    [
        (
            labels::MANAGED_BY_LABEL,
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (labels::SYNCER_LABEL, cluster.to_string()),
    ]
}

/// Whether a label is a placement label (of any cluster); those are not
/// copied downstream.
pub fn is_placement_label(key: &str) -> bool {
    key.starts_with(labels::STATE_LABEL_PREFIX)
}

/// The value of the origin annotation: `namespace/name/uid` of the upstream object.
pub fn origin(namespace: &str, name: &str, uid: &str) -> String {
    format!("{namespace}/{name}/{uid}")
}

/// Whether a finalizer list holds `cluster`'s syncer finalizer.
pub fn has_finalizer(finalizers: &[String], cluster: &str) -> bool {
    let ours = labels::syncer_finalizer(cluster);
    finalizers.contains(&ours)
}

/// A downstream object of the same name that is not ours: what the conflict
/// annotation and Event say.
pub fn conflict_message(kind: &str, namespace: &str, name: &str, cluster: &str) -> String {
    format!(
        "{kind} {namespace}/{name} already exists in cluster {cluster} and is not managed by \
         kcp-ingress (no {}={} label for this cluster); it is left untouched",
        labels::MANAGED_BY_LABEL,
        labels::MANAGED_BY_VALUE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn resource_specs_parse() {
        assert_eq!(
            ResourceSpec::parse("ingresses.networking.k8s.io").unwrap(),
            ResourceSpec {
                resource: "ingresses".into(),
                group: "networking.k8s.io".into()
            }
        );
        let core = ResourceSpec::parse(" services ").unwrap();
        assert_eq!(
            (core.resource.as_str(), core.group.as_str()),
            ("services", "")
        );
        assert_eq!(core.to_string(), "services");
        assert_eq!(
            ResourceSpec::parse("deployments.apps").unwrap().to_string(),
            "deployments.apps"
        );
        for bad in ["", "Services", "svc/x", "a..b", ".apps", "x.", "-a", "a b"] {
            assert!(ResourceSpec::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn resource_lists_drop_duplicates_and_need_one_entry() {
        let list: Vec<String> = ["services", "secrets", "services", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let specs = ResourceSpec::parse_all(&list).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            ResourceSpec::parse_all(&[String::new()]),
            Err(ResourceSpecError::Empty)
        );
        assert!(ResourceSpec::parse_all(&["Bad".into()]).is_err());
    }

    #[test]
    fn ownership() {
        let ours = map(&[
            ("app.kubernetes.io/managed-by", "kcp-ingress"),
            ("kcp-ingress.dev/syncer", "east"),
        ]);
        assert!(is_ours(&ours, "east"));
        assert!(!is_ours(&ours, "west"), "another cluster's syncer's copy");
        assert!(!is_ours(
            &map(&[("app.kubernetes.io/managed-by", "kcp-ingress")]),
            "east"
        ));
        assert!(!is_ours(
            &map(&[("kcp-ingress.dev/syncer", "east")]),
            "east"
        ));
        assert!(!is_ours(&map(&[]), "east"));
        assert_eq!(
            ours_selector("east"),
            "app.kubernetes.io/managed-by=kcp-ingress,kcp-ingress.dev/syncer=east"
        );
        let labels: BTreeMap<String, String> = ours_labels("east")
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert!(is_ours(&labels, "east"));
    }

    #[test]
    fn upstream_only_names() {
        assert!(is_placement_label("state.kcp-ingress.dev/west"));
        assert!(!is_placement_label("kcp-ingress.dev/root"));
        assert!(has_finalizer(
            &["a".into(), "kcp-ingress.dev/syncer-east".into()],
            "east"
        ));
        assert!(!has_finalizer(
            &["kcp-ingress.dev/syncer-west".into()],
            "east"
        ));
        assert_eq!(origin("ns", "web", "u-1"), "ns/web/u-1");
    }
}
