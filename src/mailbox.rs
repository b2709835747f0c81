//! The per-cluster namespaces of the control plane (pure): where the
//! ingress-controller puts everything placed on a cluster, and how a syncer
//! maps what it finds there to the physical cluster.
//!
//! Cluster `C` has one namespace, [`cluster_namespace`]`(C)`, in the control
//! plane. Everything placed on `C` lives there and nothing else does, so a
//! pull-mode syncer is granted that one namespace by a RoleBinding and can
//! read or write nothing outside it:
//!
//! | placed object            | in the cluster namespace                     | in the physical cluster |
//! |--------------------------|----------------------------------------------|-------------------------|
//! | leaf of root `ns/r`      | Ingress `<ns>.<r>--<C>` ([`copy_name`])      | `ns/<r>--<C>`           |
//! | leaf Gateway, HTTPRoute, GRPCRoute of `ns/r` | the same kind, `<ns>.<r>--<C>` | `ns/<r>--<C>` |
//! | Secret, ConfigMap `ns/x` | the same kind, `<ns>.<x>` ([`copy_name`])    | `ns/x`                  |
//! | anything else `ns/x`     | `PlacedObject` `<ns>.<x>.<resource>` ([`placed_object_name`]) embedding it | `ns/x` |
//!
//! A namespace name holds no dot, so the first dot of a copy's name ends the
//! downstream namespace: the downstream name is a pure function of the
//! upstream one and back ([`downstream_of_copy`], [`downstream_of_placed`]).
//! Kinds that are stored natively ([`stored_natively`]) are those whose
//! copy in the control plane does nothing but sit there and whose status a
//! syncer writes up; a Service would get a ClusterIP and node ports in the
//! control plane, a Deployment would run where controllers run, so those
//! and every other kind travel inside a `PlacedObject`.

use std::fmt;

use crate::labels;

/// Longest object name (a DNS subdomain).
pub const MAX_NAME: usize = 253;
/// Longest label value, and longest namespace name (a DNS label).
pub const MAX_LABEL_VALUE: usize = 63;

/// `text` if it fits in `max` characters; otherwise a prefix and a hash of
/// the whole text, so that distinct long texts stay distinct.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hash: String = digest.as_ref()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Names and label values are ASCII; keep the prefix ending on an alphanumeric.
    let prefix =
        text[..max - hash.len() - 1].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hash}")
}

/// The control-plane namespace of `cluster`:
/// `kcp-ingress-cluster-<cluster>`, or, when the cluster's name is not a
/// short DNS label (Cluster names may hold dots and run to 253
/// characters), a sanitized prefix and a hash of the whole name.
pub fn cluster_namespace(cluster: &str) -> String {
    let plain = format!("{}{cluster}", labels::CLUSTER_NAMESPACE_PREFIX);
    if plain.len() <= MAX_LABEL_VALUE && is_dns_label(&plain) {
        return plain;
    }
    let sanitized: String = cluster
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    // The hash is of the real name, so two names that sanitize alike differ.
    let digest = ring::digest::digest(&ring::digest::SHA256, cluster.as_bytes());
    let hash: String = digest.as_ref()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let room = MAX_LABEL_VALUE - labels::CLUSTER_NAMESPACE_PREFIX.len() - hash.len() - 1;
    let prefix = sanitized[..sanitized.len().min(room)].trim_matches('-');
    if prefix.is_empty() {
        format!("{}{hash}", labels::CLUSTER_NAMESPACE_PREFIX)
    } else {
        format!("{}{prefix}-{hash}", labels::CLUSTER_NAMESPACE_PREFIX)
    }
}

/// Whether `namespace` is a cluster namespace of the control plane.
pub fn is_cluster_namespace(namespace: &str) -> bool {
    namespace.starts_with(labels::CLUSTER_NAMESPACE_PREFIX)
}

/// Why a push-mode Cluster's `kubeconfigSecretRef` to `namespace/name` is
/// refused, if it is: it points into a cluster namespace, whose syncer can
/// read it (the kubeconfigs belong where only the controller reads).
pub fn refused_kubeconfig_ref(namespace: &str, name: &str) -> Option<String> {
    is_cluster_namespace(namespace).then(|| {
        format!(
            "kubeconfigSecretRef {namespace}/{name} is refused: it points into a cluster \
             namespace, which a syncer can read; keep kubeconfig Secrets in kcp-ingress' own \
             namespace"
        )
    })
}

/// Why an object cannot be placed: the name of its copy would not be a
/// valid object name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTooLong {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for NameTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} cannot be placed: the name of its copy in a cluster namespace \
             (`<namespace>.<name>`) would be longer than {MAX_NAME} characters",
            self.namespace, self.name
        )
    }
}

impl std::error::Error for NameTooLong {}

/// The name, in a cluster namespace, of the copy of `namespace/name`:
/// `<namespace>.<name>` (leaves, Secrets, ConfigMaps).
pub fn copy_name(namespace: &str, name: &str) -> Result<String, NameTooLong> {
    let copy = format!("{namespace}.{name}");
    if copy.len() > MAX_NAME {
        return Err(NameTooLong {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }
    Ok(copy)
}

/// The downstream `(namespace, name)` of the copy named `copy` (the inverse
/// of [`copy_name`]); `None` when `copy` is not such a name.
pub fn downstream_of_copy(copy: &str) -> Option<(&str, &str)> {
    let (namespace, name) = copy.split_once('.')?;
    (is_dns_label(namespace) && !name.is_empty()).then_some((namespace, name))
}

/// The suffix that names a resource in a `PlacedObject`'s name:
/// `<plural>` for the core group, `<plural>.<group>` otherwise (the form of
/// a `--resources` entry).
pub fn resource_suffix(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// The value of [`labels::PLACED_RESOURCE_LABEL`] on a `PlacedObject`
/// embedding an object of `plural`/`group` (a syncer watches its namespace's
/// `PlacedObject`s by this label, one watch per synced type).
pub fn placed_resource_label_value(plural: &str, group: &str) -> String {
    shorten(&resource_suffix(plural, group), MAX_LABEL_VALUE)
}

/// The name of the `PlacedObject` embedding `namespace/name` of
/// `plural`/`group`: `<namespace>.<name>.<resource suffix>`.
pub fn placed_object_name(
    namespace: &str,
    name: &str,
    plural: &str,
    group: &str,
) -> Result<String, NameTooLong> {
    let placed = format!("{namespace}.{name}.{}", resource_suffix(plural, group));
    if placed.len() > MAX_NAME {
        return Err(NameTooLong {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }
    Ok(placed)
}

/// The downstream `(namespace, name)` of the `PlacedObject` named `placed`
/// embedding a `plural`/`group` object (the inverse of
/// [`placed_object_name`]); `None` when `placed` is not such a name.
pub fn downstream_of_placed<'a>(
    placed: &'a str,
    plural: &str,
    group: &str,
) -> Option<(&'a str, &'a str)> {
    let suffix = resource_suffix(plural, group);
    let copy = placed.strip_suffix(&suffix)?.strip_suffix('.')?;
    downstream_of_copy(copy)
}

/// Whether objects of `plural`/`group` are copied into a cluster namespace
/// as themselves (leaves and the kinds that only hold data); every other
/// kind travels inside a `PlacedObject`.
pub fn stored_natively(plural: &str, group: &str) -> bool {
    matches!(
        (group, plural),
        ("", "secrets")
            | ("", "configmaps")
            | ("networking.k8s.io", "ingresses")
            | (
                labels::gateway_api::GROUP,
                "gateways" | "httproutes" | "grpcroutes" | "tlsroutes" | "tcproutes" | "udproutes"
            )
    )
}

/// Whether `text` is a DNS label (RFC 1123): what a namespace name is.
pub fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_LABEL_VALUE
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cluster_namespaces() {
        assert_eq!(cluster_namespace("east"), "kcp-ingress-cluster-east");
        let dotted = cluster_namespace("east.example.com");
        assert!(dotted.starts_with("kcp-ingress-cluster-east-example-com-"));
        assert!(is_dns_label(&dotted));
        // Two names that sanitize alike stay apart.
        assert_ne!(cluster_namespace("a.b"), cluster_namespace("a-b"));
        let long = cluster_namespace(&"c".repeat(200));
        assert!(is_dns_label(&long), "{long}");
        assert!(is_dns_label(&cluster_namespace("...")));
    }

    #[test]
    fn kubeconfigs_in_cluster_namespaces_are_refused() {
        assert!(refused_kubeconfig_ref("kcp-ingress-cluster-east", "kc").is_some());
        assert!(refused_kubeconfig_ref("kcp-ingress-system", "kc").is_none());
    }

    #[test]
    fn copies_map_back_to_their_origin() {
        let copy = copy_name("shop", "web--east").unwrap();
        assert_eq!(copy, "shop.web--east");
        assert_eq!(downstream_of_copy(&copy), Some(("shop", "web--east")));
        // A name with dots keeps them: only the first dot ends the namespace.
        assert_eq!(downstream_of_copy("ns.a.b.c"), Some(("ns", "a.b.c")));
        assert_eq!(downstream_of_copy("nodot"), None);
        assert_eq!(downstream_of_copy("ns."), None);
        assert_eq!(downstream_of_copy("Bad.x"), None);
        assert!(copy_name("ns", &"x".repeat(251)).is_err());
        assert!(copy_name("ns", &"x".repeat(250)).is_ok());
    }

    #[test]
    fn placed_objects_name_their_resource() {
        let svc = placed_object_name("shop", "backend", "services", "").unwrap();
        assert_eq!(svc, "shop.backend.services");
        assert_eq!(
            downstream_of_placed(&svc, "services", ""),
            Some(("shop", "backend"))
        );
        let dep = placed_object_name("shop", "api.v2", "deployments", "apps").unwrap();
        assert_eq!(dep, "shop.api.v2.deployments.apps");
        assert_eq!(
            downstream_of_placed(&dep, "deployments", "apps"),
            Some(("shop", "api.v2"))
        );
        // The wrong resource does not map.
        assert_eq!(downstream_of_placed(&svc, "deployments", "apps"), None);
        assert_eq!(
            placed_resource_label_value("deployments", "apps"),
            "deployments.apps"
        );
        assert!(
            stored_natively("secrets", "") && stored_natively("ingresses", "networking.k8s.io")
        );
        assert!(!stored_natively("services", "") && !stored_natively("deployments", "apps"));
        for leaf in [
            "gateways",
            "httproutes",
            "grpcroutes",
            "tlsroutes",
            "tcproutes",
            "udproutes",
        ] {
            assert!(stored_natively(leaf, "gateway.networking.k8s.io"), "{leaf}");
        }
        // ReferenceGrants and GatewayClasses are not leaves.
        assert!(!stored_natively(
            "referencegrants",
            "gateway.networking.k8s.io"
        ));
        assert!(!stored_natively("gateways", "example.com"));
    }

    proptest! {
        #[test]
        fn names_round_trip(ns in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name in "[a-z0-9]([a-z0-9.-]{0,100}[a-z0-9])?") {
            let copy = copy_name(&ns, &name).unwrap();
            prop_assert_eq!(downstream_of_copy(&copy), Some((ns.as_str(), name.as_str())));
            let placed = placed_object_name(&ns, &name, "services", "").unwrap();
            prop_assert_eq!(downstream_of_placed(&placed, "services", ""), Some((ns.as_str(), name.as_str())));
        }

        #[test]
        fn cluster_namespaces_are_dns_labels(cluster in "[a-z0-9]([a-z0-9.-]{0,200}[a-z0-9])?") {
            prop_assert!(is_dns_label(&cluster_namespace(&cluster)));
        }
    }
}
