//! Splitting (pure): a root Ingress → its leaves and their labels, the
//! objects it depends on, its hosts, and what is wrong with it.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use kube::core::ObjectMeta;

use crate::controller::kind::Problem;
use crate::controller::naming::{
    is_placeable_namespace, leaf_labels_and_annotations, placed_clusters,
};
use crate::labels::{self, reasons};

/// Annotations of the root that are not copied to its leaves.
/// Whether an Ingress is a root: it lives in a namespace whose objects are
/// placed and carries no `kcp-ingress.dev/root` label.
pub fn is_root(ingress: &Ingress) -> bool {
    let ns = ingress.metadata.namespace.as_deref().unwrap_or_default();
    is_placeable_namespace(ns)
        && !ingress
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(labels::ROOT_LABEL))
}

/// The content of the leaf of `root` for `cluster`: the root's spec, labels
/// and annotations (less kcp-ingress's own). Its name, namespace and root
/// labels are set by the pipeline (`decide::leaf_for`), the same for every kind.
pub fn leaf(root: &Ingress, _cluster: &str) -> Ingress {
    let (leaf_labels, annotations) = leaf_labels_and_annotations(&root.metadata);
    Ingress {
        metadata: ObjectMeta {
            labels: Some(leaf_labels),
            annotations,
            ..Default::default()
        },
        spec: root.spec.clone(),
        status: None,
    }
}

/// Whether `leaf` already is `desired` as far as the controller owns it:
/// same spec, every desired label and annotation present.
pub fn leaf_is_current(leaf: &Ingress, desired: &Ingress) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>,
                    want: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    leaf.spec == desired.spec
        && contains(&leaf.metadata.labels, &desired.metadata.labels)
        && contains(&leaf.metadata.annotations, &desired.metadata.annotations)
}

/// The objects a root Ingress needs in every cluster it is placed on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Backend Services (default backend and rule paths), sorted, unique.
    pub services: Vec<String>,
    /// TLS Secrets, sorted, unique.
    pub secrets: Vec<String>,
}

/// The Services and Secrets `root` references.
pub fn dependencies(root: &Ingress) -> Dependencies {
    let Some(spec) = root.spec.as_ref() else {
        return Dependencies::default();
    };
    let service = |b: &IngressBackend| b.service.as_ref().map(|s| s.name.clone());
    let mut services: Vec<String> = spec
        .default_backend
        .iter()
        .filter_map(service)
        .chain(
            spec.rules
                .iter()
                .flatten()
                .filter_map(|r| r.http.as_ref())
                .flat_map(|h| h.paths.iter())
                .filter_map(|p| service(&p.backend)),
        )
        .filter(|n| !n.is_empty())
        .collect();
    services.sort();
    services.dedup();
    let mut secrets: Vec<String> = spec
        .tls
        .iter()
        .flatten()
        .filter_map(|t| t.secret_name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    secrets.sort();
    secrets.dedup();
    Dependencies { services, secrets }
}

/// The hosts of a root (rules and TLS entries), sorted, unique.
pub fn hosts(root: &Ingress) -> Vec<String> {
    let Some(spec) = root.spec.as_ref() else {
        return Vec::new();
    };
    let mut hosts: Vec<String> = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|r| r.host.clone())
        .chain(
            spec.tls
                .iter()
                .flatten()
                .flat_map(|t| t.hosts.iter().flatten().cloned()),
        )
        .filter(|h| !h.is_empty())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// What is wrong with `root`, if anything. The apiserver validates hosts of
/// built-in Ingresses, but a control plane that serves Ingress from a CRD
/// (kcp) may not, so they are checked here as well.
pub fn validate(root: &Ingress) -> Vec<Problem> {
    let mut problems = Vec::new();
    let placement_labels = placed_clusters(&root.metadata);
    if !placement_labels.is_empty() {
        problems.push(Problem {
            reason: reasons::ROOT_HAS_PLACEMENT_LABEL,
            message: format!(
                "a root Ingress must not carry {}<cluster> labels (found for {}); \
                 placement is chosen with the {} annotation",
                labels::STATE_LABEL_PREFIX,
                placement_labels.join(", "),
                labels::PLACEMENT_ANNOTATION
            ),
        });
    }
    let spec = root.spec.as_ref();
    let has_rules = spec
        .and_then(|s| s.rules.as_ref())
        .is_some_and(|r| !r.is_empty());
    let has_default = spec.and_then(|s| s.default_backend.as_ref()).is_some();
    if !has_rules && !has_default {
        problems.push(Problem {
            reason: reasons::NO_BACKENDS,
            message: "the Ingress has neither rules nor a default backend".into(),
        });
    }
    for host in hosts(root) {
        if let Err(why) = check_host(&host) {
            problems.push(Problem {
                reason: reasons::INVALID_HOST,
                message: format!("host {host:?}: {why}"),
            });
        }
    }
    problems
}

/// A host is a lowercase DNS name of at least two labels, optionally with a
/// wildcard as its whole first label (`*.example.com`).
pub fn check_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.contains('*') {
        return Err("a wildcard may only be the whole first label, as in *.example.com".into());
    }
    if host.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("not a fully qualified name (at least two labels)".into());
    }
    for label in labels {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if !ok {
            return Err(format!(
                "label {label:?} is not a lowercase DNS label (letters, digits, '-', at most 63)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(yaml: serde_json::Value) -> Ingress {
        serde_json::from_value(yaml).unwrap()
    }

    fn sample() -> Ingress {
        root(serde_json::json!({
            "metadata": {
                "name": "shop", "namespace": "apps", "uid": "u-1",
                "labels": {"team": "web"},
                "annotations": {
                    "kcp-ingress.dev/placement": "region=eu",
                    "nginx.ingress.kubernetes.io/rewrite-target": "/"
                }
            },
            "spec": {
                "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                "tls": [{"hosts": ["shop.example.test"], "secretName": "shop-tls"}],
                "rules": [
                    {"host": "shop.example.test", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
                        {"path": "/x", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 8080}}}}
                    ]}},
                    {"host": "*.shop.example.test", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"resource": {"kind": "Bucket", "name": "b"}}}
                    ]}}
                ]
            }
        }))
    }

    #[test]
    fn leaf_carries_spec_labels_and_annotations() {
        let r = sample();
        let l = leaf(&r, "east");
        let labels = l.metadata.labels.clone().unwrap();
        assert_eq!(labels["team"], "web");
        assert!(
            !labels
                .keys()
                .any(|k| k.starts_with(labels::STATE_LABEL_PREFIX))
        );
        let annotations = l.metadata.annotations.clone().unwrap();
        assert!(!annotations.contains_key(labels::PLACEMENT_ANNOTATION));
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/rewrite-target"],
            "/"
        );
        assert_eq!(l.metadata.owner_references, None);
        assert_eq!(l.spec, r.spec);
        assert!(leaf_is_current(&l, &leaf(&r, "east")));
        assert!(is_root(&r));
        let mut in_cluster_namespace = r.clone();
        in_cluster_namespace.metadata.namespace = Some("kcp-ingress-cluster-east".into());
        assert!(!is_root(&in_cluster_namespace));
    }

    #[test]
    fn leaf_is_not_current_after_a_spec_change() {
        let r = sample();
        let old = leaf(&r, "east");
        let mut changed = r.clone();
        changed.spec.as_mut().unwrap().default_backend = None;
        assert!(!leaf_is_current(&old, &leaf(&changed, "east")));
    }

    #[test]
    fn dependencies_and_hosts_are_sorted_and_unique() {
        let d = dependencies(&sample());
        assert_eq!(d.services, ["api", "fallback", "web"]);
        assert_eq!(d.secrets, ["shop-tls"]);
        assert_eq!(
            hosts(&sample()),
            ["*.shop.example.test", "shop.example.test"]
        );
    }

    #[test]
    fn validation_reports_each_problem() {
        assert_eq!(validate(&sample()), vec![]);
        let bad = root(serde_json::json!({
            "metadata": {"name": "bad", "labels": {"state.kcp-ingress.dev/east": "Sync"}},
            "spec": {"tls": [{"hosts": ["Shop.example.test", "foo.*.test", "localhost"]}]}
        }));
        let reasons: Vec<&str> = validate(&bad).iter().map(|p| p.reason).collect();
        assert_eq!(
            reasons,
            [
                "RootHasPlacementLabel",
                "NoBackends",
                "InvalidHost",
                "InvalidHost",
                "InvalidHost"
            ]
        );
    }

    #[test]
    fn hosts_are_checked() {
        assert!(check_host("a.example.test").is_ok());
        assert!(check_host("*.example.test").is_ok());
        for bad in [
            "*", "*.com.*", "a_b.test", "-a.test", "a..test", "test", "*.test",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
